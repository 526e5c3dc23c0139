"""`cookbook sft --dataset NAME [key=value ...]`: the small command-line face of `train.Config`.

    cookbook sft --dataset jsonl dataset.path=chats.jsonl learning_rate=1e-3 max_steps=200
    cookbook sft --dataset jsonl --help        # run options and the dataset's own options

`dataset.FIELD=value` sets the dataset's options; every other `key=value` sets a `CLIConfig`
field. The log directory defaults to `runs/sft-<dataset>`, so running the same command again
resumes; `--fresh` starts over.
"""

from __future__ import annotations

import sys

import chz

from cookbook.errors import UserError
from cookbook.supervised.data import LongExamples
from cookbook.supervised.train import Config, LRSchedule

USAGE = "usage: cookbook sft --dataset NAME [--fresh] [key=value ...] [dataset.KEY=value ...]"


@chz.chz
class CLIConfig:
    """Run options of `cookbook sft`."""

    model: str = "tiny"
    """Base model: `tiny` (built in) or a local Hugging Face directory."""
    backend: str = "local"
    """`local` (in-process PyTorch) or `tinker` (the Tinker service)."""
    learning_rate: float = 3e-3
    """Peak Adam learning rate."""
    lr_schedule: LRSchedule = "linear"
    """constant, linear or cosine (decay to 0 at the last step, after warm-up)."""
    warmup_steps: int = 0
    """Steps of linear warm-up."""
    batch_size: int = 32
    """Examples per step."""
    num_epochs: int = 1
    """Passes over the training set (ignored when max_steps is set)."""
    max_steps: int | None = None
    """Run exactly this many steps instead of num_epochs passes."""
    eval_every: int = 10
    """Held-out NLL every this many steps and at the end (0: only at the end)."""
    save_every: int = 50
    """Checkpoint every this many steps and at the end (0: only at the end)."""
    seed: int = 0
    """Seed of the data order and the model initialisation."""
    log_dir: str | None = None
    """Run directory (default runs/sft-<dataset>; an existing run there resumes)."""
    load_checkpoint_path: str | None = None
    """Start from saved weights: a checkpoint state path, or a run directory (its newest)."""
    lora_rank: int = 32
    """LoRA rank for Hugging Face models."""
    device: str | None = None
    """cpu or cuda (default: cuda when present)."""
    max_length: int | None = None
    """Longest example in tokens (None: no limit)."""
    long_examples: LongExamples = LongExamples.TRUNCATE
    """What to do with longer examples: truncate or drop (both counted)."""
    show_progress: bool = True
    """Show a progress display."""


def default_log_dir(dataset_name: str) -> str:
    """`runs/sft-<dataset>` (a qualified `dist:name` keeps only the name)."""
    safe = dataset_name.rsplit(":", 1)[-1].replace("/", "-")
    return f"runs/sft-{safe}"


def config_from_cli(cli: CLIConfig, dataset_builder: object, dataset_name: str) -> Config:
    """The detailed `Config` for `cli` and an already-built dataset builder."""
    from cookbook.supervised.types import SupervisedDatasetBuilder

    if not isinstance(dataset_builder, SupervisedDatasetBuilder):
        raise UserError(
            f"dataset '{dataset_name}' is registered with a builder that is not a "
            "SupervisedDatasetBuilder; report it to the plugin's authors"
        )
    return Config(
        dataset_builder=dataset_builder,
        log_dir=cli.log_dir or default_log_dir(dataset_name),
        model_name=cli.model,
        backend=cli.backend,
        device=cli.device,
        lora_rank=cli.lora_rank,
        load_checkpoint_path=cli.load_checkpoint_path,
        learning_rate=cli.learning_rate,
        lr_schedule=cli.lr_schedule,
        warmup_steps=cli.warmup_steps,
        batch_size=cli.batch_size,
        num_epochs=cli.num_epochs,
        max_steps=cli.max_steps,
        max_length=cli.max_length,
        long_examples=cli.long_examples,
        eval_every=cli.eval_every,
        save_every=cli.save_every,
        seed=cli.seed,
        show_progress=cli.show_progress,
    )


def _parse_flags(argv: list[str]) -> tuple[str | None, bool, bool, list[str]]:
    """`(dataset, fresh, help, key=value args)` from the command line."""
    dataset: str | None = None
    fresh = False
    show_help = False
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--dataset":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-") or "=" in argv[i + 1]:
                raise UserError("--dataset needs a name (`cookbook list datasets` shows them)")
            dataset = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--dataset="):
            dataset = arg.partition("=")[2]
        elif arg == "--fresh":
            fresh = True
        elif arg in ("-h", "--help"):
            show_help = True
        elif arg.startswith("-"):
            raise UserError(
                f"unknown option '{arg}'; sft takes --dataset NAME, --fresh, --help and "
                "key=value overrides"
            )
        else:
            rest.append(arg)
        i += 1
    return dataset, fresh, show_help, rest


def main(argv: list[str]) -> int:
    """Run `cookbook sft` with `argv` (the arguments after `sft`); returns the exit status.
    Mistakes are raised as `UserError` (the `cookbook` command prints them as one line)."""
    from cookbook.configs import format_config_help, make_config, split_overrides

    dataset_name, fresh, show_help, args = _parse_flags(argv)
    if dataset_name is None:
        if show_help:
            print(USAGE + "\n")
            print(format_config_help(CLIConfig, "run options (key=value):"))
            print("\n`cookbook sft --dataset NAME --help` adds the dataset's options;")
            print("`cookbook list datasets` shows the datasets.")
            return 0
        raise UserError("sft needs --dataset NAME; `cookbook list datasets` shows the datasets")

    from cookbook.registry.catalog import load_catalog

    spec = load_catalog().get_dataset(dataset_name)
    builder_cls = spec.load()
    dataset_args, run_args = split_overrides(args, "dataset")
    if show_help:
        print(USAGE + "\n")
        print(format_config_help(CLIConfig, "run options (key=value):"))
        print()
        print(format_config_help(builder_cls, f"dataset {spec.name} options (dataset.KEY=value):"))
        return 0
    cli = make_config(CLIConfig, run_args, label="sft")
    builder: object = make_config(builder_cls, dataset_args, label=f"dataset {spec.name}")
    config = config_from_cli(cli, builder, spec.name)

    from cookbook.supervised.train import main as train_main

    train_main(config, fresh=fresh, argv=["cookbook", "sft", *argv])
    return 0


if __name__ == "__main__":
    from cookbook.cli import main as cookbook_main

    sys.exit(cookbook_main(["sft", *sys.argv[1:]]))
