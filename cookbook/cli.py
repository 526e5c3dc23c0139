"""The `cookbook` command: thin parsing in front of library code.

    cookbook list [envs|datasets|evals] [--json]
    cookbook plugins [--json]
    cookbook describe KIND NAME [--json]
    cookbook rl|sft|eval ...      (when those modules are installed)

`--debug` is accepted anywhere. A `UserError` prints `error: <message>` on one line to stderr
and exits 2 (`--debug` adds the traceback). Listing and help import no torch, tinker,
transformers or textarena: heavy modules are imported by the command that needs them.
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
from dataclasses import asdict
from typing import TYPE_CHECKING, NoReturn

from cookbook import __version__
from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.registry.discovery import PluginInfo
    from cookbook.registry.specs import Kind

EXIT_USER_ERROR = 2
"""Exit status for a mistake the user can fix."""

# Subcommands implemented in their own modules, each with `main(argv: list[str]) -> int`; one
# shows up (in --help and for dispatch) only when its module is installed.
EXTERNAL_COMMANDS: dict[str, tuple[str, str]] = {
    "rl": ("cookbook.rl.train_cli", "train a policy with RL on an env"),
    "sft": ("cookbook.supervised.train_cli", "fine-tune a model on a dataset"),
    "eval": ("cookbook.eval.cli", "score a model with an eval"),
    "check": ("cookbook.testing.cli", "check that an env, dataset or eval keeps the contract"),
}

_BUILTIN_HELP: dict[str, tuple[str, str]] = {
    "list": ("list [envs|datasets|evals] [--json]", "what the installed plugins provide"),
    "plugins": ("plugins [--json]", "plugin distributions: version, status, what they provide"),
    "describe": ("describe KIND NAME [--json]", "the options of an env, dataset or eval"),
}

_KIND_WORDS: dict[str, Kind] = {
    "env": "env",
    "envs": "env",
    "dataset": "dataset",
    "datasets": "dataset",
    "eval": "eval",
    "evals": "eval",
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
    except _Exit as e:
        return e.status
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
    return [*_BUILTIN_HELP, *(name for name in EXTERNAL_COMMANDS if _module_exists(name))]


# ----- dispatch -----


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        print(_main_help())
        return 0
    if args[0] == "--version":
        print(f"cookbook {__version__}")
        return 0
    command, rest = args[0], args[1:]
    builtin: dict[str, Callable[[list[str]], int]] = {
        "list": _cmd_list,
        "plugins": _cmd_plugins,
        "describe": _cmd_describe,
    }
    if command in builtin:
        return builtin[command](rest)
    if command in EXTERNAL_COMMANDS and _module_exists(command):
        module = importlib.import_module(EXTERNAL_COMMANDS[command][0])
        run: Callable[[list[str]], int] = module.main
        return int(run(rest))
    from cookbook.registry.errors import did_you_mean

    if command.startswith("-"):
        raise UserError(f"unknown option '{command}'; `cookbook --help` lists the options")
    hint = did_you_mean(command, available_commands())
    raise UserError(f"unknown command '{command}'{hint}; `cookbook --help` lists the commands")


def _module_exists(command: str) -> bool:
    try:
        return importlib.util.find_spec(EXTERNAL_COMMANDS[command][0]) is not None
    except ImportError:  # the parent package itself is missing
        return False


def _main_help() -> str:
    rows = [(usage, text) for usage, text in _BUILTIN_HELP.values()]
    rows += [
        (f"{name} ...", text)
        for name, (_, text) in EXTERNAL_COMMANDS.items()
        if _module_exists(name)
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


class _Exit(Exception):
    """argparse finished early (`--help`): return this status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one-line `UserError`s instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message} (`{self.prog} --help` shows the usage)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, file=sys.stderr, end="")
        raise _Exit(status)


def _parser(command: str, description: str) -> _Parser:
    parser = _Parser(prog=f"cookbook {command}", description=description)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _kind(text: str, *, allow_none: bool = False) -> Kind | None:
    """`envs`/`env` -> `env`; a `UserError` with a did-you-mean for anything else."""
    from cookbook.registry.errors import did_you_mean

    kind = _KIND_WORDS.get(text.lower())
    if kind is None and not (allow_none and not text):
        hint = did_you_mean(text.lower(), _KIND_WORDS)
        raise UserError(f"unknown kind '{text}'{hint}; use env, dataset or eval")
    return kind


# ----- list -----


def _cmd_list(argv: list[str]) -> int:
    parser = _parser("list", "List the envs, datasets and evals the installed plugins provide.")
    parser.add_argument(
        "kind", nargs="?", default="", help="envs, datasets or evals (default: all)"
    )
    opts = parser.parse_args(argv)
    from cookbook.registry.catalog import load_catalog
    from cookbook.registry.errors import KINDS, PLURALS

    catalog = load_catalog()
    chosen = _kind(opts.kind, allow_none=True)
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


def _cmd_plugins(argv: list[str]) -> int:
    parser = _parser(
        "plugins",
        "Show the installed plugin distributions and their status: ok, broken (failed to "
        "import or register), incompatible (built for another plugin API) or disabled (by "
        "COOKBOOK_DISABLE_PLUGINS=dist,dist or =*, which never disables the core).",
    )
    opts = parser.parse_args(argv)
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


def _cmd_describe(argv: list[str]) -> int:
    parser = _parser("describe", "Show the options of an env, dataset or eval.")
    parser.add_argument("kind", help="env, dataset or eval")
    parser.add_argument("name", help="its name, or distribution:name")
    opts = parser.parse_args(argv)
    kind = _kind(opts.kind)
    assert kind is not None  # _kind raises for anything that is not a kind
    from cookbook.configs import describe_fields, format_config_help
    from cookbook.registry.catalog import load_catalog
    from cookbook.registry.specs import EnvSpec

    catalog = load_catalog()
    spec = catalog.get(kind, opts.name)
    builder = spec.load()
    info = catalog.plugin(spec.distribution)
    version = info.version if info is not None else "?"
    if opts.json:
        record: dict[str, object] = {"kind": spec.kind, "version": version, **asdict(spec)}
        record["fields"] = [asdict(f) for f in describe_fields(builder)]
        print(json.dumps(record, indent=2))
        return 0
    lines = [f"{kind} {spec.name}  (from {spec.distribution} {version})"]
    if spec.summary:
        lines.append(f"  {spec.summary}")
    lines.append(f"  builder: {spec.builder}")
    if isinstance(spec, EnvSpec):
        if spec.warm_start_dataset:
            lines.append(f"  warm-start dataset: {spec.warm_start_dataset}")
        if spec.recommended:
            pairs = " ".join(f"{k}={v}" for k, v in spec.recommended.items())
            lines.append(f"  recommended run settings: {pairs}")
    lines.append("")
    lines.append(format_config_help(builder, f"options (set as {kind}.KEY=VALUE):"))
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
