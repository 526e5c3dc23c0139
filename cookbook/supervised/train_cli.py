"""`cookbook sft --dataset NAME [KEY=VALUE ...]`: the supervised loop from the command line.

    cookbook sft --dataset jsonl dataset.path=chats.jsonl learning_rate=1e-3 max_steps=200
    cookbook sft --dataset jsonl evals=nll evals.nll.split=all
    cookbook sft --dataset jsonl --help        # the run's options, with the values it would use
    cookbook sft --config runs/sft-jsonl/config.json log_dir=runs/again

Every `KEY=VALUE` is a field of `cookbook.supervised.train.Config` (`dataset.KEY` the dataset's
options). The log directory defaults to `runs/sft-<dataset>`, so running the same command again
resumes; `--fresh` starts over. Imported for `--help`: nothing heavy at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cookbook.cli import CommandLine


def run(line: CommandLine) -> int:
    """Run `cookbook sft` as `line` asks; returns the exit status. Mistakes are raised as
    `UserError` (the `cookbook` command prints them as one line)."""
    from cookbook.configs import format_config_help

    if line.help and line.name is None and line.config is None:
        from cookbook.supervised.train import Config

        print(line.help_text + "\n\n" + format_config_help(Config, "run options (KEY=VALUE):"))
        print("\n`cookbook sft --dataset NAME --help` adds the dataset's options;")
        print("`cookbook list datasets` shows the datasets.")
        return 0
    from cookbook.runs.blueprints import sft_config

    config = sft_config(line.name, line.overrides, config_file=line.config)
    if line.help:
        title = "run options (KEY=VALUE), with this command's values:"
        print(line.help_text + "\n\n" + format_config_help(config, title, skip=("dataset",)))
        name = line.name or type(config.dataset).__name__
        title = f"dataset {name} options:"
        print("\n" + format_config_help(config.dataset, title, prefix="dataset."))
        return 0
    from cookbook.supervised.train import main

    args = [f"--dataset={line.name}"] if line.name else []
    args += [f"--config={line.config}"] if line.config else []
    args += ["--fresh"] if line.fresh else []
    main(config, fresh=line.fresh, argv=["cookbook", "sft", *args, *line.overrides])
    return 0
