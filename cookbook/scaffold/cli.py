"""`cookbook new env|dataset|eval NAME [--dir DIR]`: write a new plugin distribution.

    cookbook new env coin                      # ./cookbook-env-coin/
    cookbook new eval coin-accuracy --dir ~/src/coin-eval

The command line is read by the parser every `cookbook` subcommand shares (`cookbook.cli`); the
files come from `cookbook.scaffold.write_plugin`. Imported for `--help`: nothing heavy here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.cli import CommandLine

NEXT_STEPS = (
    ("cd {dir}", ""),
    ("pip install -e .", "registers it with cookbook (entry point group `cookbook`)"),
    ("pytest tests", "the contract checks and the example's own test"),
    ("cookbook check {name}", "the same checks, as a table"),
)
"""What to run next: (command, comment) pairs."""


def run(line: CommandLine) -> int:
    """Run `cookbook new` as `line` asks; returns the exit status. Mistakes raise `UserError`."""
    from cookbook.scaffold import KINDS, write_plugin

    if line.help:
        print(line.help_text + "\n\n" + (__doc__ or "").split("\n\n")[1])
        return 0
    if line.kind is None or line.name is None:
        raise UserError(
            "cookbook new: name a kind and a name; usage: cookbook new env|dataset|eval NAME "
            "[--dir DIR]"
        )
    kind = next((k for k in KINDS if k == line.kind.lower().rstrip("s")), None)
    if kind is None:
        raise UserError(f"cookbook new: unknown kind '{line.kind}'; use env, dataset or eval")
    target = write_plugin(kind, line.name, line.directory)
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    print(f"wrote the {kind} plugin {line.name} in {target}/:")
    print("\n".join(f"  {f}" for f in files))
    steps = [(command.format(dir=target, name=line.name), note) for command, note in NEXT_STEPS]
    width = max(len(command) for command, note in steps if note) + 2
    print("next:")
    for command, note in steps:
        print(f"  {command.ljust(width)}# {note}" if note else f"  {command}")
    return 0
