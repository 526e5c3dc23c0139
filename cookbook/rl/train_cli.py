"""`cookbook rl --env NAME [KEY=VALUE ...]`: the RL loop from the command line.

    cookbook rl --env tictactoe
    cookbook rl --env tictactoe env.opponent=random learning_rate=3e-4 max_steps=50
    cookbook rl --env tictactoe evals=tictactoe-vs-optimal evals.tictactoe-vs-optimal.num_games=50
    cookbook rl --env tictactoe --help      # the run's options, with the values it would use
    cookbook rl --env tictactoe --fresh     # start over instead of resuming runs/rl-tictactoe
    cookbook rl --config runs/rl-tictactoe/config.json log_dir=runs/again   # rerun a run

Every `KEY=VALUE` is a field of `cookbook.rl.train.Config` (`env.KEY` the env's options), set on
top of the env's recommended settings; `cookbook.runs.blueprints` builds the config, exactly as
`Config.for_env` does from Python. Imported for `--help`: nothing heavy at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cookbook.cli import CommandLine
    from cookbook.rl.train import Config


def run(line: CommandLine) -> int:
    """Run `cookbook rl` as `line` asks; returns the exit status. User mistakes raise
    `UserError` (the `cookbook` command prints them on one line)."""
    from cookbook.configs import format_config_help

    if line.help and line.name is None and line.config is None:
        from cookbook.rl.train import Config as RLConfig

        print(line.help_text + "\n\n" + format_config_help(RLConfig, "run options (KEY=VALUE):"))
        print("\n`cookbook list envs` shows the envs; add --env NAME --help for its options.")
        return 0
    from cookbook.runs.blueprints import rl_config

    config = rl_config(line.name, line.overrides, config_file=line.config)
    label = _env_label(line.name, type(config.env).__name__)
    if line.help:
        _print_help(line, config, label)
        return 0
    from cookbook.rl.summary import summary_text
    from cookbook.rl.train import main

    argv = ["cookbook", "rl", *_argv(line)]
    summary = main(config, fresh=line.fresh, argv=argv, label=label)
    print(
        summary_text(
            summary.log_dir, label, summary.steps_run, summary.time_s, summary.stopped_by_time
        )
    )
    return 0


def _env_label(name: str | None, builder: str) -> str:
    """The env's registered name (as the user typed it, for a qualified name its plain part),
    else its builder's class name."""
    return name.rsplit(":", 1)[-1] if name else builder


def _argv(line: CommandLine) -> list[str]:
    """The command line as typed, for config.json."""
    args = [f"--env={line.name}"] if line.name else []
    args += [f"--config={line.config}"] if line.config else []
    return [*args, *(["--fresh"] if line.fresh else []), *line.overrides]


def _print_help(line: CommandLine, config: Config, label: str) -> None:
    from cookbook.configs import format_config_help
    from cookbook.registry.catalog import load_catalog

    print(line.help_text + "\n")
    print(
        format_config_help(
            config, "run options (KEY=VALUE), with this command's values:", skip=("env",)
        )
    )
    if line.name is not None:
        spec = load_catalog().get_env(line.name)
        lines = spec.settings_lines()
        if lines:
            print(f"\n  settings for {spec.name} (applied unless you override):")
        for what, pairs in lines:
            print(f"  {what}: {pairs}")
    print("\n" + format_config_help(config.env, f"env {label} options:", prefix="env."))
