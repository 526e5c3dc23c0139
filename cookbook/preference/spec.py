"""One string names a configured preference model wherever one is asked for (a plugin's
`env.preference_model`, `cookbook check`, `cookbook describe preference-model`):

    NAME[:ARG][,KEY=VALUE...]        vowels   length:12   trained:runs/sft-comparisons
                                     judge:/models/qwen,mode=sample,max_tokens=4

NAME is a registered preference model (`distribution:NAME` when two plugins register one name);
ARG sets its builder's `arg_field` (`PreferenceModelBuilder.arg_field`); `KEY=VALUE` sets any
other option. `parse_spec` splits the string, `builder_settings` turns it into the builder's
`KEY=VALUE` settings. Importing it costs nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.preference.types import PreferenceModelBuilder

_OPTION = re.compile(r"^[A-Za-z_][\w.]*=")


@dataclass(frozen=True)
class ParsedSpec:
    """The parts of a preference-model string."""

    name: str
    """The registered name, possibly qualified (`dist:name`)."""
    arg: str | None
    """What follows the name's colon (None: nothing)."""
    options: tuple[str, ...]
    """`KEY=VALUE` settings after the commas."""


def parse_spec(spec: str, distributions: frozenset[str] = frozenset()) -> ParsedSpec:
    """Split `NAME[:ARG][,KEY=VALUE...]`. A comma not followed by `KEY=` belongs to the argument
    (a path may hold one); a first part that is one of `distributions` makes the name qualified
    (`cookbook-env-pairwise:trained:runs/x`)."""
    parts = spec.strip().split(",")
    head, options = parts[0], []
    for part in parts[1:]:
        if _OPTION.match(part.strip()):
            options.append(part.strip())
        elif options:
            options[-1] += "," + part
        else:
            head += "," + part
    name, sep, arg = head.partition(":")
    name = name.strip().lower()
    if sep and name in distributions:
        bare, sep, arg = arg.partition(":")
        name = f"{name}:{bare.strip().lower()}"
    return ParsedSpec(name, arg if sep else None, tuple(options))


def builder_settings(
    builder: type[PreferenceModelBuilder], parsed: ParsedSpec, spec: str
) -> list[str]:
    """The `KEY=VALUE` settings of `builder` that `spec` (parsed as `parsed`) gives: its ARG as
    the builder's `arg_field`, then its options. A `UserError` when the builder takes no ARG."""
    import chz

    settings = list(parsed.options)
    if parsed.arg is not None:
        field = builder.arg_field
        if field is None or field not in chz.chz_fields(builder):
            raise UserError(
                f"preference model {parsed.name} takes no argument; write {parsed.name}, not {spec}"
            )
        settings.insert(0, f"{field}={parsed.arg}")
    return settings
