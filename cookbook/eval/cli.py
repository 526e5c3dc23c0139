"""`cookbook eval --eval NAME[,NAME...] [key=value ...]`: run registered evals on their own.

    cookbook eval --eval arithmetic
    cookbook eval --eval arithmetic,tictactoe-vs-random load_checkpoint_path=runs/rl-tictactoe
    cookbook eval --eval arithmetic eval.num_problems=50     # the eval's own options
    cookbook eval --eval a,b a.num_problems=50 b.games=20    # per eval when there are several

Prints a table and writes the JSON result (default `runs/eval-<names>/results.json`).
Imported for `--help`: nothing heavy at module level.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import chz

from cookbook.errors import UserError

USAGE = "usage: cookbook eval --eval NAME[,NAME...] [eval.KEY=VALUE ...] [KEY=VALUE ...]"


@chz.chz
class EvalCLIConfig:
    """Options of `cookbook eval` (set as KEY=VALUE)."""

    model: str = "tiny"
    """Base model: tiny or a local Hugging Face model directory."""
    backend: str = "local"
    """local (in-process PyTorch) or tinker (the Tinker service)."""
    device: str | None = None
    """Torch device for the local backend (default: cuda when present, else cpu)."""
    lora_rank: int = 32
    """LoRA rank the checkpoint was trained with (Hugging Face models)."""
    seed: int = 0
    """Seed for the model's initialisation and the evals' random choices."""
    load_checkpoint_path: str | None = None
    """Weights to evaluate: a run directory (its newest checkpoint) or a checkpoint state path;
    unset: the starting model."""
    output: str | None = None
    """Where to write the JSON result (default runs/eval-<names>/results.json)."""


def _parse_args(argv: list[str]) -> tuple[list[str], bool, list[str]]:
    """`(eval names, --help, overrides)`."""
    names: list[str] = []
    show_help = False
    overrides: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        value: str | None = None
        if arg == "--eval":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                raise UserError("--eval needs a name: cookbook eval --eval NAME")
            value = argv[i + 1]
            i += 1
        elif arg.startswith("--eval="):
            value = arg.partition("=")[2]
        elif arg in ("-h", "--help"):
            show_help = True
        elif arg.startswith("-"):
            raise UserError(f"cookbook eval: unknown option '{arg}'; {USAGE}")
        else:
            overrides.append(arg)
        if value is not None:
            names.extend(n.strip() for n in value.split(",") if n.strip())
        i += 1
    return names, show_help, overrides


def format_results(metrics: Mapping[str, float], failures: Mapping[str, str]) -> str:
    """The metrics as an aligned `eval  metric  value` table."""
    rows = [("EVAL", "METRIC", "VALUE")]
    for key, value in metrics.items():
        _, name, metric = key.split("/", 2) if key.count("/") >= 2 else ("", key, "")
        rows.append((name, metric, f"{value:.4g}"))
    for name, error in failures.items():
        rows.append((name, "error", error))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}" for r in rows)


def main(argv: list[str]) -> int:
    """Run `cookbook eval` with `argv` (the arguments after `eval`); returns the exit status.
    User mistakes raise `UserError` (the `cookbook` command prints them on one line)."""
    from cookbook.configs import format_config_help, make_config, split_overrides

    names, show_help, overrides = _parse_args(argv)
    if not names:
        if show_help:
            print(USAGE + "\n\n" + format_config_help(EvalCLIConfig, "options (KEY=VALUE):"))
            print(
                "\n`cookbook list evals` shows the evals; add --eval NAME --help for its options."
            )
            return 0
        raise UserError(
            "name an eval: cookbook eval --eval NAME (`cookbook list evals` shows them)"
        )
    from cookbook.registry.catalog import load_catalog

    catalog = load_catalog()
    specs = [catalog.get_eval(name) for name in names]
    if len({s.name for s in specs}) != len(specs):
        raise UserError("an eval is named twice in --eval; name each once")
    from cookbook.eval.types import EvaluatorBuilder

    classes: dict[str, type[EvaluatorBuilder]] = {}
    for spec in specs:
        try:
            cls = spec.load()
        except (ImportError, AttributeError) as e:
            raise UserError(f"eval {spec.name} cannot be loaded from its plugin: {e}") from e
        if not issubclass(cls, EvaluatorBuilder):
            raise UserError(
                f"eval {spec.name}: its builder {spec.builder} is not an EvaluatorBuilder"
            )
        classes[spec.name] = cls
    if show_help:
        print(USAGE + "\n\n" + format_config_help(EvalCLIConfig, "options (KEY=VALUE):"))
        prefix = "eval" if len(specs) == 1 else None
        for name, cls in classes.items():
            title = f"eval {name} options ({prefix or name}.KEY=VALUE):"
            print("\n" + format_config_help(cls, title))
        return 0

    rest = overrides
    builders: dict[str, EvaluatorBuilder] = {}
    shared: list[str] = []
    if len(specs) == 1:
        shared, rest = split_overrides(rest, "eval")
    elif any(arg.startswith("eval.") for arg in rest):
        raise UserError("with several evals, set their options as NAME.KEY=VALUE, not eval.KEY")
    for name, cls in classes.items():
        own, rest = split_overrides(rest, name)
        builders[name] = make_config(cls, [*shared, *own], label=f"eval {name}")
    cli = make_config(EvalCLIConfig, rest, label="cookbook eval")

    from cookbook.eval.runner import EvalConfig, run_eval

    joined = "-".join(builders).replace(":", "-").replace("/", "-")
    config = EvalConfig(
        evaluator_builders=builders,
        model_name=cli.model,
        backend=cli.backend,
        device=cli.device,
        lora_rank=cli.lora_rank,
        seed=cli.seed,
        load_checkpoint_path=cli.load_checkpoint_path,
        output_path=cli.output or f"runs/eval-{joined}/results.json",
    )
    result = run_eval(config, argv=["cookbook", "eval", *argv])
    print(format_results(result.metrics, result.failures))
    print(f"\nresults written to {config.output_path} ({result.time_s:.1f} s)")
    if result.failures:
        print(
            f"error: {len(result.failures)} eval(s) failed: {', '.join(result.failures)}",
            file=sys.stderr,
        )
        return 1
    return 0
