"""The training commands a sweep can drive, and what the sweep needs to know about them: the
keys their command line accepts, which keys hold lists, and a check of one run's arguments
that builds the configs exactly as the command will (so a bad value fails before any run).

This is the one place that knows how `cookbook rl` and `cookbook sft` read their arguments:
`LOOPS` names each command's run-option class and the flag and prefix of its env or dataset.
"""

from __future__ import annotations

import collections.abc
import importlib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import chz

from cookbook.errors import UserError
from cookbook.registry.errors import close_matches
from cookbook.registry.specs import Kind

_LIST_ORIGINS = (
    list,
    tuple,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Set,
)


@dataclass(frozen=True)
class Loop:
    """A training command: `cookbook <command> <flag> NAME [key=value ...]`."""

    command: str
    flag: str
    """The flag naming what it trains on (`--env`)."""
    kind: Kind
    """The registry kind that flag names."""
    prefix: str
    """Keys under `<prefix>.` set the env's or dataset's own options."""
    run_options: str
    """`module:Class` of the chz class of its other `key=value` options."""


LOOPS: dict[str, Loop] = {
    "rl": Loop("rl", "--env", "env", "env", "cookbook.rl.train:Config"),
    "sft": Loop("sft", "--dataset", "dataset", "dataset", "cookbook.supervised.train:Config"),
}


@dataclass
class Target:
    """One loop on one env or dataset: its keys and their types."""

    loop: Loop
    name: str
    """The env or dataset name, as given."""
    run_options: type
    builder: type
    defaults: Mapping[str, str] = field(default_factory=dict)
    """Settings the command applies before the user's (an env's recommended settings)."""
    types: dict[str, object] = field(default_factory=dict)
    """Every settable key (`learning_rate`, `env.opponent`) and its type."""

    def is_list_key(self, key: str) -> bool:
        """Whether `key`'s field holds a list (so `a,b` is one value, not two)."""
        return _is_list_type(self.types.get(key))

    def check_keys(self, keys: Sequence[str]) -> None:
        """A `UserError` naming the first key the command would not accept."""
        for key in keys:
            if key == "log_dir":
                raise UserError(
                    "the sweep sets each run's log_dir (a folder of the sweep directory); "
                    "pick the sweep directory with --dir"
                )
            if key in self.types or any(key.startswith(k + ".") for k in self.types):
                continue
            matches = close_matches(key, self.types, n=1)
            hint = f" (did you mean '{matches[0]}'?)" if matches else ""
            raise UserError(
                f"cookbook {self.loop.command} has no option '{key}'{hint}; "
                f"`cookbook {self.loop.command} {self.loop.flag} {self.name} --help` lists them"
            )

    def check_run(self, args: Sequence[str]) -> None:
        """Build the config from one run's `key=value` arguments as the command does; a bad
        value raises the command's own one-line `UserError`."""
        from cookbook.runs.blueprints import rl_config, sft_config

        build = rl_config if self.loop.command == "rl" else sft_config
        build(self.name, args)


def resolve(command: str, name: str) -> Target:
    """The `Target` of `cookbook <command> <flag> <name>`; unknown names are `UserError`s."""
    loop = LOOPS[command]
    from cookbook.registry.catalog import load_catalog
    from cookbook.registry.specs import EnvSpec

    spec = load_catalog().get(loop.kind, name)
    try:
        builder = spec.load()
    except (ImportError, AttributeError) as e:
        raise UserError(f"{loop.kind} {name} cannot be loaded from its plugin: {e}") from e
    module_name, _, class_name = loop.run_options.partition(":")
    run_options = getattr(importlib.import_module(module_name), class_name)
    defaults = dict(spec.recommended) if isinstance(spec, EnvSpec) else {}
    key_types = dict(field_types(run_options))
    key_types.update(field_types(builder, loop.prefix + "."))
    key_types["evals"] = list[str]  # `evals=a,b` names registered evals: one value
    return Target(
        loop=loop,
        name=name,
        run_options=run_options,
        builder=builder,
        defaults=defaults,
        types=key_types,
    )


def field_types(cls: type, prefix: str = "") -> dict[str, object]:
    """`{dotted key: type}` of every field of chz class `cls`, nested chz configs included."""
    out: dict[str, object] = {}
    if not chz.is_chz(cls):
        return out
    for name, fld in chz.chz_fields(cls).items():
        ftype: object = fld.final_type
        out[prefix + name] = ftype
        for option in (ftype, *typing.get_args(ftype)):  # `WarmStartConfig | None` too
            if isinstance(option, type) and chz.is_chz(option):
                out.update(field_types(option, f"{prefix}{name}."))
    return out


def _is_list_type(tp: object) -> bool:
    if tp is None:
        return False
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return any(_is_list_type(arg) for arg in typing.get_args(tp))
    origin = typing.get_origin(tp) or tp
    return isinstance(origin, type) and issubclass(origin, _LIST_ORIGINS) and origin is not str
