"""The `cookbook` command: one argument parser in front of library code.

    cookbook list [envs|datasets|evals|preference-models] [--json]
    cookbook plugins [--json]
    cookbook describe KIND NAME [--json]
    cookbook rl|sft|eval|check|new|play ...   (when those modules are installed)

Every subcommand's command line is read by the same parser (`parse_command_line`, argparse
underneath) into a `CommandLine`; `rl`, `sft`, `eval`, `check`, `new` and `play` then run their
module's `run(CommandLine)`. `--debug` is accepted anywhere. A `UserError` prints
`error: <message>` on one line to stderr and exits 2 (`--debug` adds the traceback). Listing and
help import no torch, tinker, transformers or textarena: heavy modules are imported by the
command that needs them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import sys
import textwrap
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, NoReturn

from cookbook import __version__
from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.registry.discovery import PluginInfo
    from cookbook.registry.specs import Kind

EXIT_USER_ERROR = 2
"""Exit status for a mistake the user can fix."""


@dataclass(frozen=True)
class CommandLine:
    """What the parser read from one subcommand's arguments."""

    command: str
    help_text: str
    """The command's usage and options, as `--help` prints them first."""
    name: str | None = None
    """`--env`/`--dataset`/`--eval` NAME, or the NAME of `check` and `describe`."""
    kind: str | None = None
    """The KIND of `list` and `describe`, or `check --kind`."""
    overrides: tuple[str, ...] = ()
    """The `KEY=VALUE` arguments, in order."""
    config: str | None = None
    """`--config FILE`: a saved config to rerun."""
    directory: str | None = None
    """`--dir DIR` of `new`: where the new plugin goes."""
    against: str | None = None
    """`--against CHECKPOINT` of `play`: the policy playing the other seats."""
    fresh: bool = False
    help: bool = False
    json: bool = False
    seed: int = 0


@dataclass(frozen=True)
class _Command:
    """A subcommand: what `cookbook --help` says about it and what its command line takes."""

    usage: str
    summary: str
    arguments: tuple[str, ...]
    """Names of `_ARGUMENTS`, in order."""
    module: str | None = None
    """The module whose `run(CommandLine) -> int` runs it (None: built in here)."""
    own_parser: bool = False
    """The module reads its own arguments instead: its `main(argv) -> int` gets them as typed
    (`serve`, `sweep` and `report`, whose options are not a run's)."""


_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], object]] = {
    "--env": lambda p: p.add_argument(
        "--env", dest="name", metavar="NAME", help="the env to train on (`cookbook list envs`)"
    ),
    "--dataset": lambda p: p.add_argument(
        "--dataset", dest="name", metavar="NAME", help="the dataset (`cookbook list datasets`)"
    ),
    "--eval": lambda p: p.add_argument(
        "--eval", dest="name", metavar="NAME[,NAME...]", help="the evals (`cookbook list evals`)"
    ),
    "--config": lambda p: p.add_argument(
        "--config",
        metavar="FILE",
        help="rerun the config saved in FILE (a run's config.json or its directory, an eval's "
        "results.json); KEY=VALUE arguments change it",
    ),
    "--fresh": lambda p: p.add_argument(
        "--fresh", action="store_true", help="start the run over instead of resuming it"
    ),
    "--dir": lambda p: p.add_argument(
        "--dir", dest="directory", metavar="DIR", help="where to write it (default: ./DIST)"
    ),
    "--against": lambda p: p.add_argument(
        "--against",
        metavar="CHECKPOINT",
        help="a checkpoint (or run directory) whose policy plays the game's other seats",
    ),
    "--kind": lambda p: p.add_argument(
        "--kind",
        choices=["env", "dataset", "eval", "preference-model"],
        help="check only this kind",
    ),
    "--seed": lambda p: p.add_argument(
        "--seed", type=int, default=0, help="seed of the builds and rollouts"
    ),
    "--json": lambda p: p.add_argument(
        "--json", action="store_true", help="print JSON instead of a table"
    ),
    # Positionals are optional to the parser, so `--help` works without them; the commands say
    # what is missing.
    "NAME": lambda p: p.add_argument(
        "name", nargs="?", metavar="NAME", help="a name, or distribution:name"
    ),
    "KIND": lambda p: p.add_argument(
        "kind", nargs="?", metavar="KIND", help="env, dataset, eval or preference-model"
    ),
    "[KIND]": lambda p: p.add_argument(
        "kind",
        nargs="?",
        default="",
        metavar="KIND",
        help="envs, datasets, evals or preference-models (default: all)",
    ),
    "KEY=VALUE": lambda p: p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="settings (`--help` lists them)"
    ),
}

COMMANDS: dict[str, _Command] = {
    "list": _Command(
        "list [envs|datasets|evals|preference-models] [--json]",
        "what the installed plugins provide",
        ("[KIND]", "--json"),
    ),
    "plugins": _Command(
        "plugins [--json]", "plugin distributions: version, status, what they provide", ("--json",)
    ),
    "describe": _Command(
        "describe KIND NAME [--json]",
        "the options of an env, dataset, eval or preference model",
        ("KIND", "NAME", "--json"),
    ),
    "rl": _Command(
        "rl --env NAME [--fresh] [KEY=VALUE ...]",
        "train a policy with RL on an env",
        ("--env", "--config", "--fresh", "KEY=VALUE"),
        "cookbook.rl.train_cli",
    ),
    "sft": _Command(
        "sft --dataset NAME [--fresh] [KEY=VALUE ...]",
        "fine-tune a model on a dataset",
        ("--dataset", "--config", "--fresh", "KEY=VALUE"),
        "cookbook.supervised.train_cli",
    ),
    "eval": _Command(
        "eval --eval NAME[,NAME...] [KEY=VALUE ...]",
        "score a model with an eval",
        ("--eval", "--config", "KEY=VALUE"),
        "cookbook.eval.cli",
    ),
    "check": _Command(
        "check NAME [--kind env|dataset|eval|preference-model] [--seed N] [--json] "
        "[KIND.KEY=VALUE ...]",
        "check that an env, dataset, eval or preference model keeps the contract",
        ("NAME", "--kind", "--seed", "--json", "KEY=VALUE"),
        "cookbook.testing.cli",
    ),
    "new": _Command(
        "new env|dataset|eval NAME [--dir DIR]",
        "write a new plugin distribution, ready to install and check",
        ("KIND", "NAME", "--dir"),
        "cookbook.scaffold.cli",
    ),
    "play": _Command(
        "play --env NAME [--against CHECKPOINT] [--seed N] [KEY=VALUE ...]",
        "play an env's policy side yourself, in the terminal",
        ("--env", "--against", "--seed", "KEY=VALUE"),
        "cookbook.play",
    ),
    "serve": _Command(
        "serve [--host H] [--port P] [--api-key KEY] [--device D] [--checkpoint-dir DIR]",
        "serve the Tinker API over the local backend",
        (),
        "cookbook.serve.cli",
        own_parser=True,
    ),
    "sweep": _Command(
        "sweep rl|sft ...",
        "run a grid or random search of rl/sft runs, N at a time",
        (),
        "cookbook.sweep.cli",
        own_parser=True,
    ),
    "report": _Command(
        "report DIR... [--compare RUN_A RUN_B]",
        "tables, plots and comparisons of runs and sweeps",
        (),
        "cookbook.analysis.cli",
        own_parser=True,
    ),
}
"""Every subcommand. One with a module shows up (in --help and for dispatch) only when its
module is installed."""

_KIND_WORDS: dict[str, Kind] = {
    "env": "env",
    "envs": "env",
    "dataset": "dataset",
    "datasets": "dataset",
    "eval": "eval",
    "evals": "eval",
    "preference-model": "preference_model",
    "preference-models": "preference_model",
    "preference_model": "preference_model",
    "preference_models": "preference_model",
}


def main(argv: list[str] | None = None) -> int:
    """Run the `cookbook` command with `argv` (default: `sys.argv[1:]`); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        return _dispatch(args)
    except UserError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `cookbook list | head`: the reader left; stop quietly (and keep Python's exit flush
        # from raising again on the closed pipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def available_commands() -> list[str]:
    """Every subcommand this installation can run, built-in ones first."""
    return [name for name, command in COMMANDS.items() if _installed(command)]


def parse_command_line(command: str, argv: Sequence[str]) -> CommandLine:
    """Read `argv` (the arguments after `cookbook COMMAND`) with the parser every subcommand
    shares; options may come before or after the `KEY=VALUE` arguments. Mistakes raise
    `UserError`."""
    spec = COMMANDS[command]
    parser = _Parser(
        prog=f"cookbook {command}",
        usage=f"cookbook {spec.usage}",
        description=spec.summary,
        add_help=False,
        allow_abbrev=False,
    )
    for argument in spec.arguments:
        _ARGUMENTS[argument](parser)
    parser.add_argument("-h", "--help", action="store_true", help="show this help")
    opts = parser.parse_intermixed_args(list(argv))
    return CommandLine(
        command=command,
        help_text=parser.format_help().rstrip(),
        name=getattr(opts, "name", None),
        kind=getattr(opts, "kind", None),
        overrides=tuple(getattr(opts, "overrides", ())),
        config=getattr(opts, "config", None),
        directory=getattr(opts, "directory", None),
        against=getattr(opts, "against", None),
        fresh=getattr(opts, "fresh", False),
        help=opts.help,
        json=getattr(opts, "json", False),
        seed=getattr(opts, "seed", 0),
    )


# ----- dispatch -----


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        print(_main_help())
        return 0
    if args[0] == "--version":
        print(f"cookbook {__version__}")
        return 0
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None or not _installed(command):
        from cookbook.registry.errors import did_you_mean

        if name.startswith("-"):
            raise UserError(f"unknown option '{name}'; `cookbook --help` lists the options")
        hint = did_you_mean(name, available_commands())
        raise UserError(f"unknown command '{name}'{hint}; `cookbook --help` lists the commands")
    if command.own_parser:
        assert command.module is not None
        own: Callable[[list[str]], int] = importlib.import_module(command.module).main
        return int(own(rest))
    line = parse_command_line(name, rest)
    if command.module is None:
        if line.help:
            print(line.help_text)
            return 0
        builtin: dict[str, Callable[[CommandLine], int]] = {
            "list": _cmd_list,
            "plugins": _cmd_plugins,
            "describe": _cmd_describe,
        }
        return builtin[name](line)
    run: Callable[[CommandLine], int] = importlib.import_module(command.module).run
    return int(run(line))


def _installed(command: _Command) -> bool:
    if command.module is None:
        return True
    try:
        return importlib.util.find_spec(command.module) is not None
    except ImportError:  # the parent package itself is missing
        return False


def _main_help() -> str:
    rows = [
        (f"{name} ..." if command.module else command.usage, command.summary)
        for name, command in COMMANDS.items()
        if _installed(command)
    ]
    width = max(len(usage) for usage, _ in rows)
    commands = "\n".join(f"  {usage.ljust(width)}  {text}" for usage, text in rows)
    return (
        "usage: cookbook [--debug] COMMAND [ARGS...]\n\n"
        "Post-train language models with RL and SFT; envs, datasets and evals are plugins.\n\n"
        f"commands:\n{commands}\n\n"
        "options:\n"
        "  --debug    show the traceback of an error (accepted anywhere on the line)\n"
        "  --version  print the version\n"
        "  -h, --help show this help\n\n"
        "`cookbook COMMAND --help` shows a command's options."
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one-line `UserError`s instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        unknown = message.removeprefix("unrecognized arguments: ")
        if unknown != message:
            first = unknown.split()[0]
            if not first.startswith("-"):
                message = f"unexpected argument '{first}'"
            elif "=" in first:
                message = f"unknown option '{first}' (write {first.lstrip('-')}, without dashes)"
            else:
                message = f"unknown option '{first}'"
        raise UserError(f"{self.prog}: {message}; usage: {self.usage}")


def _kind(text: str, *, allow_none: bool = False) -> Kind | None:
    """`envs`/`env` -> `env`; a `UserError` with a did-you-mean for anything else."""
    from cookbook.registry.errors import did_you_mean

    kind = _KIND_WORDS.get(text.lower())
    if kind is None and not (allow_none and not text):
        hint = did_you_mean(text.lower(), _KIND_WORDS)
        raise UserError(f"unknown kind '{text}'{hint}; use env, dataset, eval or preference-model")
    return kind


# ----- list -----


def _cmd_list(opts: CommandLine) -> int:
    from cookbook.registry.catalog import load_catalog
    from cookbook.registry.errors import KINDS, PLURALS

    catalog = load_catalog()
    chosen = _kind(opts.kind or "", allow_none=True)
    kinds: list[Kind] = [k for k in KINDS if chosen is None or k == chosen]
    if opts.json:
        records = [
            {
                "kind": spec.kind,
                "qualified_name": spec.qualified_name,
                "clash": catalog.is_clash(spec),
                **asdict(spec),
            }
            for kind in kinds
            for spec in catalog.list(kind)
        ]
        print(json.dumps(records, indent=2))
    else:
        blocks = []
        for kind in kinds:
            specs = catalog.list(kind)
            rows = [
                (
                    spec.qualified_name if catalog.is_clash(spec) else spec.name,
                    spec.distribution,
                    spec.summary
                    + ("  [name clash: use this qualified name]" if catalog.is_clash(spec) else ""),
                )
                for spec in specs
            ]
            body = _table(rows) if rows else ["  (none installed)"]
            blocks.append("\n".join([f"{PLURALS[kind]}:", *body]))
        print("\n\n".join(blocks))
    _note_broken(catalog.broken())
    return 0


# ----- plugins -----


def _cmd_plugins(opts: CommandLine) -> int:
    """Each plugin's status: ok, broken (failed to import or register), incompatible (built for
    another plugin API) or disabled (by COOKBOOK_DISABLE_PLUGINS, which never disables the
    core); then the core's version and plugin API version."""
    from cookbook import __version__
    from cookbook.registry.catalog import load_catalog
    from cookbook.registry.discovery import DISABLE_ENV
    from cookbook.registry.errors import KINDS, PLURALS
    from cookbook.registry.hookspecs import PLUGIN_API_VERSION

    catalog = load_catalog()
    infos = catalog.plugins()
    if opts.json:
        print(json.dumps([info.to_json() for info in infos], indent=2))
        return 0
    rows = [("DISTRIBUTION", "VERSION", "STATUS", "PROVIDES")]
    for info in infos:
        provides = "; ".join(
            f"{PLURALS[k]}: {', '.join(info.provides[k])}" for k in KINDS if info.provides.get(k)
        )
        rows.append((info.distribution, info.version, info.status, provides or "-"))
    lines = _table(rows)
    for info in infos:
        if info.error:
            lines.append(f"  {info.distribution}: {info.error}")
    for name in catalog.unknown_disabled:
        lines.append(f"  note: {DISABLE_ENV} names {name}, which is not installed")
    lines.append(f"cookbook-core {__version__} provides plugin API {PLUGIN_API_VERSION}")
    print("\n".join(lines))
    return 0


# ----- describe -----


def _cmd_describe(opts: CommandLine) -> int:
    if opts.kind is None or opts.name is None:
        raise UserError(
            f"cookbook describe: name a KIND and a NAME; usage: cookbook {COMMANDS['describe'].usage}"
        )
    kind = _kind(opts.kind)
    assert kind is not None  # _kind raises for anything that is not a kind
    from cookbook.configs import check_decorated, describe_fields, format_config_help
    from cookbook.registry.catalog import load_catalog
    from cookbook.registry.specs import EnvSpec

    catalog = load_catalog()
    name = opts.name
    if kind == "preference_model":
        # The form preference models are named in elsewhere (`trained:runs/judge,mode=sample`)
        # describes the builder it names.
        from cookbook.preference.spec import parse_spec
        from cookbook.registry.specs import normalize_distribution

        dists = frozenset(normalize_distribution(p.distribution) for p in catalog.plugins())
        name = parse_spec(name, dists).name
    spec = catalog.get(kind, name)
    builder = spec.load()
    check_decorated(builder, f"{kind} {spec.name}: its builder {spec.builder}")
    info = catalog.plugin(spec.distribution)
    version = info.version if info is not None else "?"
    if opts.json:
        record: dict[str, object] = {"kind": spec.kind, "version": version, **asdict(spec)}
        record["fields"] = [asdict(f) for f in describe_fields(builder)]
        print(json.dumps(record, indent=2))
        return 0
    from cookbook.registry.errors import label

    lines = [f"{label(kind)} {spec.name}  (from {spec.distribution} {version})"]
    if spec.summary:
        lines.append(f"  {spec.summary}")
    lines.append(f"  builder: {spec.builder}")
    if isinstance(spec, EnvSpec):
        if spec.warm_start_dataset:
            lines.append(f"  warm-start dataset: {spec.warm_start_dataset}")
        for what, pairs in spec.settings_lines():
            lines.append(f"  {what}: {pairs}")
    lines.append("")
    where = f"set as {kind}.KEY=VALUE"
    if kind == "preference_model":
        # Named in one string where used: env.preference_model=NAME[:ARG][,KEY=VALUE...]
        where = f"set as {spec.name}[:ARG],KEY=VALUE where a preference model is named"
    lines.append(format_config_help(builder, f"options ({where}):"))
    print("\n".join(lines))
    return 0


# ----- output helpers -----


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Aligned columns, indented by two; the last column wraps to the terminal."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    indent = 2 + sum(w + 2 for w in widths)
    last_width = max(shutil.get_terminal_size(fallback=(100, 24)).columns - indent, 30)
    lines = []
    for row in rows:
        head = "  " + "".join(cell.ljust(w + 2) for cell, w in zip(row, widths, strict=False))
        wrapped = textwrap.wrap(row[-1], width=last_width) or [""]
        lines.append((head + wrapped[0]).rstrip())
        lines.extend(" " * indent + part for part in wrapped[1:])
    return lines


def _note_broken(broken: Sequence[PluginInfo]) -> None:
    """A one-line note on stderr, so a broken plugin is noticed without spoiling stdout."""
    if broken:
        names = ", ".join(info.distribution for info in broken)
        print(
            f"note: {len(broken)} plugin(s) failed to load ({names}); `cookbook plugins` shows why",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
