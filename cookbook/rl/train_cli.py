"""`cookbook rl --env NAME [key=value ...]`: the small `CLIConfig` a person types, turned into the
detailed `cookbook.rl.train.Config` and run.

    cookbook rl --env tictactoe
    cookbook rl --env tictactoe env.opponent=random learning_rate=3e-4 max_steps=50
    cookbook rl --env tictactoe --help      # run options and the env's own options
    cookbook rl --env tictactoe --fresh     # start over instead of resuming runs/rl-tictactoe

`env.KEY=VALUE` sets the env's options; every other override sets the run options below, on top
of the env's recommended settings. Imported for `--help`: nothing heavy at module level.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.registry.catalog import Catalog
    from cookbook.registry.specs import EnvSpec
    from cookbook.rl.train import Config
    from cookbook.rl.types import RLDatasetBuilder

USAGE = "usage: cookbook rl --env NAME [--fresh] [env.KEY=VALUE ...] [KEY=VALUE ...]"


@chz.chz
class CLIConfig:
    """Run options of `cookbook rl` (set as KEY=VALUE)."""

    model: str = "tiny"
    """Base model: tiny (built in, CPU-friendly) or a local Hugging Face model directory."""
    backend: str = "local"
    """local (in-process PyTorch) or tinker (the Tinker service, needs TINKER_API_KEY)."""
    device: str | None = None
    """Torch device for the local backend (default: cuda when present, else cpu)."""
    num_threads: int | None = None
    """Torch CPU threads (default: 1 for the tiny model, whose small ops lose time in a thread
    pool; torch's default otherwise)."""
    lora_rank: int = 32
    """LoRA rank for Hugging Face models."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    group_size: int = 8
    """Envs per group; rewards are centred within a group."""
    groups_per_batch: int = 16
    """Groups per training step."""
    max_tokens: int = 16
    """Longest action per turn, in tokens."""
    temperature: float = 1.0
    """Sampling temperature."""
    loss_fn: str = "importance_sampling"
    """Policy loss: importance_sampling, ppo, cispo or dro."""
    num_substeps: int = 1
    """Optimiser steps per batch."""
    max_steps: int = 100
    """Training steps."""
    max_minutes: float = 0.0
    """Also stop after this many minutes, warm start included (0: no time limit)."""
    max_steps_off_policy: int = 0
    """Sample up to this many batches ahead while training (0: on-policy)."""
    kl_penalty_coef: float = 0.0
    """KL penalty against the starting policy (0: off)."""
    remove_constant_reward_groups: bool = True
    """Skip groups whose rewards are all equal."""
    scale_advantages_by_std: bool = False
    """Divide centred rewards by the group's standard deviation."""
    seed: int = 0
    """Seed for the model, the env and sampling."""
    eval_every: int = 10
    """Evaluate every this many steps (0: only at the end)."""
    evals: list[str] = chz.field(default_factory=list)
    """Registered evals to run beside the env's test split (evals=a,b)."""
    save_every: int = 10
    """Checkpoint every this many steps (0: only at the end)."""
    warm_start_steps: int = 200
    """Supervised steps on the env's warm-start dataset before RL (untrained tiny model only;
    0: skip)."""
    warm_start_learning_rate: float = 3e-3
    """Learning rate of the warm start."""
    warm_start_batch_size: int = 64
    """Examples per warm-start batch."""
    env_step_timeout_s: float = 60.0
    """An env call slower than this loses its group (0: no limit)."""
    max_error_fraction: float = 0.5
    """Stop when a step loses more than this fraction of its groups."""
    transcript_groups: int = 2
    """Groups per step written to transcripts/."""
    log_dir: str | None = None
    """Run directory (default runs/rl-<env>; an existing run there resumes)."""
    load_checkpoint_path: str | None = None
    """Start from these weights: a checkpoint state path or a run directory."""


def default_log_dir(env_name: str) -> str:
    """`runs/rl-<env>`: the same command resumes the same run."""
    return f"runs/rl-{env_name.replace(':', '-').replace('/', '-')}"


def build_config(
    cli: CLIConfig,
    env_name: str,
    env_builder: RLDatasetBuilder,
    spec: EnvSpec,
    catalog: Catalog,
) -> Config:
    """The detailed run config: the env builder, evaluator builders and (when it applies) the
    warm-start dataset builder, with the run options copied over."""
    from cookbook.rl.train import Config
    from cookbook.rl.warm_start import WarmStartConfig

    evaluator_builders = {}
    for name in cli.evals:
        eval_spec = catalog.get_eval(name)
        evaluator_builders[eval_spec.name] = _load_builder(eval_spec.load, f"eval {name}")()
    warm_start = None
    untrained = cli.model.startswith("tiny") and cli.load_checkpoint_path is None
    if spec.warm_start_dataset and untrained and cli.warm_start_steps > 0:
        dataset_spec = catalog.get_dataset(spec.warm_start_dataset)
        dataset_cls = _load_builder(dataset_spec.load, f"dataset {spec.warm_start_dataset}")
        warm_start = WarmStartConfig(
            dataset_builder=dataset_cls(),
            steps=cli.warm_start_steps,
            learning_rate=cli.warm_start_learning_rate,
            batch_size=cli.warm_start_batch_size,
        )
    return Config(
        dataset_builder=env_builder,
        log_dir=cli.log_dir or default_log_dir(env_name),
        model_name=cli.model,
        backend=cli.backend,
        device=cli.device,
        num_threads=cli.num_threads,
        lora_rank=cli.lora_rank,
        seed=cli.seed,
        load_checkpoint_path=cli.load_checkpoint_path,
        learning_rate=cli.learning_rate,
        loss_fn=cli.loss_fn,
        num_substeps=cli.num_substeps,
        kl_penalty_coef=cli.kl_penalty_coef,
        group_size=cli.group_size,
        groups_per_batch=cli.groups_per_batch,
        max_tokens=cli.max_tokens,
        temperature=cli.temperature,
        max_steps=cli.max_steps,
        max_minutes=cli.max_minutes,
        max_steps_off_policy=cli.max_steps_off_policy,
        remove_constant_reward_groups=cli.remove_constant_reward_groups,
        scale_advantages_by_std=cli.scale_advantages_by_std,
        env_step_timeout_s=cli.env_step_timeout_s,
        max_error_fraction=cli.max_error_fraction,
        eval_every=cli.eval_every,
        evaluator_builders=evaluator_builders,
        save_every=cli.save_every,
        transcript_groups=cli.transcript_groups,
        warm_start=warm_start,
    )


def _load_builder(load: Callable[[], type], what: str) -> type:
    """`spec.load()`, with an import failure in the plugin turned into one line."""
    try:
        return load()
    except (ImportError, AttributeError) as e:
        raise UserError(f"{what} cannot be loaded from its plugin: {e}") from e


def _parse_args(argv: list[str]) -> tuple[str | None, bool, bool, list[str]]:
    """`(env name, --fresh, --help, overrides)`."""
    env: str | None = None
    fresh = False
    show_help = False
    overrides: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--env":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                raise UserError("--env needs a name: cookbook rl --env NAME")
            env = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--env="):
            env = arg.partition("=")[2]
        elif arg == "--fresh":
            fresh = True
        elif arg in ("-h", "--help"):
            show_help = True
        elif arg.startswith("-"):
            raise UserError(f"cookbook rl: unknown option '{arg}'; {USAGE}")
        else:
            overrides.append(arg)
        i += 1
    return env, fresh, show_help, overrides


def main(argv: list[str]) -> int:
    """Run `cookbook rl` with `argv` (the arguments after `rl`); returns the exit status.
    User mistakes raise `UserError` (the `cookbook` command prints them on one line)."""
    from cookbook.configs import format_config_help, make_config, split_overrides

    env_name, fresh, show_help, overrides = _parse_args(argv)
    if env_name is None:
        if show_help:
            print(USAGE + "\n\n" + format_config_help(CLIConfig, "run options (KEY=VALUE):"))
            print("\n`cookbook list envs` shows the envs; add --env NAME --help for its options.")
            return 0
        raise UserError("name an env: cookbook rl --env NAME (`cookbook list envs` shows them)")
    from cookbook.registry.catalog import load_catalog

    catalog = load_catalog()
    spec = catalog.get_env(env_name)
    builder_cls = _load_builder(spec.load, f"env {env_name}")
    if show_help:
        print(USAGE + "\n\n" + format_config_help(CLIConfig, "run options (KEY=VALUE):"))
        if spec.recommended:
            pairs = " ".join(f"{k}={v}" for k, v in spec.recommended.items())
            print(f"\n  recommended for {spec.name} (applied unless you override): {pairs}")
        print("\n" + format_config_help(builder_cls, f"env {spec.name} options (env.KEY=VALUE):"))
        return 0
    env_args, run_args = split_overrides(overrides, "env")
    from cookbook.rl.types import RLDatasetBuilder

    if not issubclass(builder_cls, RLDatasetBuilder):
        raise UserError(
            f"env {spec.name}: its plugin's builder {spec.builder} is not an RLDatasetBuilder"
        )
    env_builder: RLDatasetBuilder = make_config(builder_cls, env_args, label=f"env {spec.name}")
    cli = make_config(CLIConfig, run_args, defaults=spec.recommended, label="cookbook rl")
    config = build_config(cli, spec.name, env_builder, spec, catalog)

    from cookbook.rl.summary import summary_text
    from cookbook.rl.train import main as train_main

    summary = train_main(config, fresh=fresh, argv=["cookbook", "rl", *argv])
    print(
        summary_text(
            summary.log_dir,
            spec.name,
            summary.steps_run,
            summary.time_s,
            summary.stopped_by_time,
        )
    )
    return 0


if __name__ == "__main__":
    from cookbook.cli import main as cookbook_main

    sys.exit(cookbook_main(["rl", *sys.argv[1:]]))
