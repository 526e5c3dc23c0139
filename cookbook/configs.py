"""chz configs from `key=value` command-line overrides, and their help text.

    cfg = make_config(GameConfig, ["learning_rate=3e-4", "rewards.win=2"])
    cfg = build_config(Config, [Layer("defaults", {...}), Layer("the command line", {...})])

Overrides use chz's Blueprint syntax (dotted paths into nested configs, `a,b` for lists,
`key@=other_key` references). Settings come in layers (defaults, a plugin's recommended settings,
a saved config, the command line); a later layer wins, and setting a node replaces what earlier
layers set below it (`env=X` drops an earlier `env.opponent=...`). Every mistake (unknown key,
bad value, missing required field, an argument without `=`) becomes one `UserError` line that
names the key, the layer it came from when that is not the command line, and the fix.
"""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import itertools
import re
import shutil
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import chz
from chz.blueprint import (
    Blueprint,
    Castable,
    ExtraneousBlueprintArg,
    InvalidBlueprintArg,
    MissingBlueprintArg,
    Reference,
)
from chz.blueprint._entrypoint import EntrypointException  # chz exports only its subclasses
from chz.tiepin import type_repr
from chz.util import MISSING

from cookbook.errors import UserError
from cookbook.registry.errors import close_matches

T = TypeVar("T")

REQUIRED = "required"
"""What `FieldInfo.default` says for a field without a default."""


@dataclass(frozen=True)
class FieldInfo:
    """One settable field of a config, as `describe` shows it."""

    name: str
    """Dotted path, as typed on the command line (`reward.win`)."""
    type: str
    """The type as text (`int`, `float | None`, `heads|tails`)."""
    default: str
    """The default as text, or `"required"`."""
    doc: str
    """The field's docstring (or `chz.field(doc=...)`), on one line."""


@dataclass(frozen=True)
class Layer:
    """Settings from one source. Values are `Castable` strings (parsed as the field's type, as on
    the command line) or Python values (type-checked as they are)."""

    name: str
    """Where the settings come from, for error messages (`the command line`, `the defaults`)."""
    values: Mapping[str, object]
    """Dotted key -> value."""
    replaces: tuple[str, ...] = ()
    """Keys whose earlier settings this layer drops without setting them itself (`evals=a,b`
    sets `evals.a` and `evals.b` and replaces whatever `evals` was)."""


COMMAND_LINE = "the command line"
"""The name of the layer of the user's own `KEY=VALUE` arguments."""


def split_overrides(args: Sequence[str], prefix: str) -> tuple[list[str], list[str]]:
    """Take the `prefix.key=value` arguments out of `args`.

    `split_overrides(["env.opponent=x", "lr=1"], "env")` -> `(["opponent=x"], ["lr=1"])`."""
    lead = prefix.rstrip(".") + "."
    mine: list[str] = []
    rest: list[str] = []
    for arg in args:
        if arg.startswith(lead) and "=" in arg:
            mine.append(arg[len(lead) :])
        else:
            rest.append(arg)
    return mine, rest


def parse_overrides(overrides: Sequence[str], label: str) -> dict[str, Castable | Reference]:
    """`["a=1", "b.c=x", "d@=a"]` -> `{"a": Castable("1"), "b.c": Castable("x"), "d":
    Reference("a")}` (`KEY@=OTHER`: chz's reference, KEY takes the value OTHER is set to); a
    malformed argument is a `UserError` starting with `label`."""
    out: dict[str, Castable | Reference] = {}
    for arg in overrides:
        key, sep, value = arg.partition("=")
        if arg.startswith("-"):
            plain = arg.lstrip("-")
            fix = f"write {plain}" if sep else "overrides are key=value"
            raise UserError(f"{label}: unknown option '{arg}' ({fix}, without dashes)")
        reference = key.endswith("@")
        key = key.removesuffix("@")
        if not sep or not key.strip() or key != key.strip():
            raise UserError(
                f"{label}: '{arg}' is not a key=value override (for example learning_rate=3e-4)"
            )
        if reference and not value.strip():
            raise UserError(f"{label}: '{arg}' names no key to take the value of ({key}@=OTHER)")
        # A repeated key: the last one wins, as on any command line.
        out[key] = Reference(value.strip()) if reference else Castable(value)
    return out


def make_config(
    cls: type[T],
    overrides: Sequence[str],
    *,
    defaults: Mapping[str, str] | None = None,
    label: str = "config",
) -> T:
    """Build `cls` (a chz class) from `key=value` strings.

    `defaults` (same syntax, as a mapping) apply first; `overrides` win over them. `label`
    starts every error message (`env tictactoe: unknown key 'opponet' ...`).

    chz semantics to know: setting one field of a nested config (`rewards.loss=-2`) builds that
    nested config from its class defaults, not from the parent's default instance."""
    layers = [Layer(COMMAND_LINE, parse_overrides(overrides, label))]
    if defaults:
        layers.insert(0, Layer("the defaults", {k: Castable(v) for k, v in defaults.items()}))
    return build_config(cls, layers, label=label)


def build_config(cls: type[T], layers: Sequence[Layer], *, label: str) -> T:
    """Build `cls` from `layers` (see `Layer`; later layers win)."""
    values, origins = merge_layers(layers)
    return make_from_settings(cls, values, origins, label=label)


def make_from_settings(
    cls: type[T], values: Mapping[str, object], origins: Mapping[str, str], *, label: str
) -> T:
    """Build `cls` from merged settings (`merge_layers`); `origins` names the layer of each key
    for error messages."""
    blueprint = Blueprint(cls)
    if values:
        blueprint.apply(values, layer_name="settings")
    try:
        return blueprint.make()
    except EntrypointException as e:
        raise UserError(_explain(e, cls, origins, label, values)) from e
    except (ValueError, TypeError) as e:
        # chz validators and type checks reject a value while the config is built.
        raise UserError(f"{label}: {_first_line(e)}") from e
    except (KeyError, RecursionError) as e:
        # A reference (`KEY@=OTHER`) to a key no layer sets, or references in a cycle.
        references = {k: v.ref for k, v in values.items() if isinstance(v, Reference)}
        if not references:
            raise
        pairs = " ".join(f"{k}@={ref}" for k, ref in references.items())
        if isinstance(e, RecursionError):
            raise UserError(f"{label}: the references {pairs} go round in a circle") from e
        target = str(e.args[0]) if e.args else "?"
        raise UserError(
            f"{label}: {pairs}: {target} is not set, so there is no value to take; set it too "
            f"({target}=VALUE) or give a value instead of the reference"
        ) from e


def merge_layers(layers: Iterable[Layer]) -> tuple[dict[str, object], dict[str, str]]:
    """The settings of `layers` as one mapping (a later layer wins; a key it sets or replaces
    drops the earlier settings below that key) and the name of the layer each came from."""
    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for layer in layers:
        for top in (*layer.replaces, *layer.values):
            for key in [k for k in values if k == top or k.startswith(top + ".")]:
                del values[key], origins[key]
        for key, value in layer.values.items():
            values[key] = value
            origins[key] = layer.name
    return values, origins


def blueprint_values(config: object) -> dict[str, object]:
    """The settings that rebuild `config` (a chz object) through a blueprint: every leaf field
    by its dotted key, each nested config by its class, so later layers can change any leaf
    (`cookbook rl --config RUN/config.json learning_rate=...`)."""
    if not chz.is_chz(config):
        raise TypeError(f"{type(config).__name__} is not a chz config")
    out: dict[str, object] = {}
    _flatten(config, "", out)
    return out


def _flatten(obj: object, prefix: str, out: dict[str, object]) -> None:
    for name, fld in chz.chz_fields(obj).items():
        value = getattr(obj, name)
        key = prefix + name
        if chz.is_chz(value):
            out[key] = type(value)
            _flatten(value, key + ".", out)
        elif (
            isinstance(value, dict)
            and value
            and all(isinstance(k, str) and chz.is_chz(v) for k, v in value.items())
        ):
            for item_key, item in value.items():
                out[f"{key}.{item_key}"] = type(item)
                _flatten(item, f"{key}.{item_key}.", out)
        else:
            out[key] = _typed(value, fld.final_type)


def _typed(value: object, tp: object) -> object:
    """`value` as the field's enum type when a saved config holds the enum's plain value."""
    for option in (tp, *typing.get_args(tp)):
        if isinstance(option, type) and issubclass(option, enum.Enum):
            try:
                return value if isinstance(value, option) else option(value)
            except ValueError:
                return value
    return value


def undecorated_fields(cls: type) -> list[str]:
    """Fields `cls` declares that chz does not know because a class declaring them lacks its own
    `@chz.chz` (a subclass of a chz class inherits chz's machinery, not the decoration: its
    annotated fields are silently ignored). Empty when every declaring class is decorated."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__chz_fields__" in klass.__dict__ or klass is object:
            break
        for name, annotation in inspect.get_annotations(klass).items():
            if name.startswith("_") or "ClassVar" in str(annotation):
                continue
            names.append(name)
    return names


def check_decorated(cls: type, what: str) -> None:
    """Raise `UserError` when `cls` declares fields without `@chz.chz` (`undecorated_fields`);
    `what` names it in the message (`env coin's builder cbcoin.env:CoinBuilder`)."""
    missing = undecorated_fields(cls)
    if missing:
        raise UserError(
            f"{what} declares {', '.join(missing)} but its class is not decorated with "
            f"@chz.chz, so no option can be set; put @chz.chz above `class {cls.__name__}`"
        )


def describe_fields(config: object, prefix: str = "") -> list[FieldInfo]:
    """Every field a user can set on `config` (a chz class, or a chz object: then its values are
    shown as the defaults), nested chz configs flattened to dotted names, each name after
    `prefix` (`env.`: the keys as a run's command line sets them)."""
    if isinstance(config, type):
        if not chz.is_chz(config):
            raise UserError(
                f"{_type_name(config)} is not a chz config class; it has no fields to set"
            )
        check_decorated(config, _type_name(config))
        return _fields(config, prefix, None)
    if not chz.is_chz(config):
        raise UserError(f"{type(config).__name__} is not a chz config; it has no fields to set")
    return _fields(type(config), prefix, config)


def format_config_help(
    config: object, title: str, *, prefix: str = "", skip: Sequence[str] = ()
) -> str:
    """A readable table of the fields of `config` (a chz class or object, see `describe_fields`):
    key, type, default, description, under `title`. Keys in `skip` (and below them) are left
    out."""
    fields = [
        f
        for f in describe_fields(config, prefix)
        if not any(f.name == k or f.name.startswith(k + ".") for k in skip)
    ]
    lines = [title]
    doc = _class_doc(config if isinstance(config, type) else type(config))
    if doc:
        lines.extend("  " + line for line in textwrap.wrap(doc, width=_width() - 2))
    lines.append("")
    if not fields:
        lines.append("  (no options)")
        return "\n".join(lines)
    rows = [("KEY", "TYPE", "DEFAULT", "DESCRIPTION")]
    rows += [(f.name, f.type, f.default, f.doc) for f in fields]
    widths = [min(max(len(row[i]) for row in rows), cap) for i, cap in enumerate((32, 24, 20))]
    doc_col = 2 + sum(w + 2 for w in widths)
    doc_width = max(_width() - doc_col, 30)
    for key, typ, default, text in rows:
        head = "  " + "  ".join(
            cell.ljust(width) for cell, width in zip((key, typ, default), widths, strict=True)
        )
        wrapped = textwrap.wrap(text, width=doc_width) or [""]
        if len(head) > doc_col:  # an over-long cell pushes the description to its own line
            lines.append(head.rstrip())
            lines.extend(" " * doc_col + part for part in wrapped if part)
            continue
        lines.append((head + "  " + wrapped[0]).rstrip())
        lines.extend(" " * doc_col + part for part in wrapped[1:])
    return "\n".join(lines)


# ----- errors -----


def _explain(
    e: EntrypointException,
    cls: type,
    origins: Mapping[str, str],
    label: str,
    values: Mapping[str, object] | None = None,
) -> str:
    """One line for a chz error; `values` (the settings) tell which class a nested key's parent
    was set to, so an unknown `evals.NAME.KEY` lists that eval's keys."""
    message = str(e)

    def origin(key: str) -> str:
        where = origins.get(key, COMMAND_LINE)
        return "" if where == COMMAND_LINE else f" in {where}"

    if isinstance(e, ExtraneousBlueprintArg):
        key = _group(r"Extraneous argument '([^']*)'", message) or "?"
        suggestion = _group(r"Did you mean '([^']*)'", message)
        known = _keys_beside(key, cls, values or {})
        if suggestion is None:
            matches = close_matches(key, known, n=1)
            suggestion = matches[0] if matches else None
        if suggestion is not None:
            return f"{label}: unknown key '{key}'{origin(key)} (did you mean '{suggestion}'?)"
        listed = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        return f"{label}: unknown key '{key}'{origin(key)}; valid keys: {listed or 'none'}"
    if isinstance(e, InvalidBlueprintArg):
        match = re.search(
            r"Could not interpret argument '(.*)' provided for param '([^']*)'", message
        )
        if match is not None:
            value, param = match.group(1), match.group(2)
            types_by_name = {f.name: f.type for f in _safe_fields(cls)}
            expected = types_by_name.get(param) or _group(r"Could not cast '.*' to (.+)", message)
            want = f" (expected {expected})" if expected else ""
            return f"{label}: bad value '{value}' for {param}{origin(param)}{want}"
    if isinstance(e, MissingBlueprintArg):
        names = [n.strip() for n in message.partition(":")[2].split(",") if n.strip()]
        if names:
            noun = "field" if len(names) == 1 else "fields"
            sets = " ".join(f"{n}=VALUE" for n in names)
            return f"{label}: missing required {noun} {', '.join(names)}; add {sets}"
    return f"{label}: {_first_line(e)}"


def _keys_beside(key: str, cls: type, values: Mapping[str, object]) -> list[str]:
    """The valid keys next to `key`: those of the config class its nearest parent was set to
    (`evals.NAME` -> that eval's keys, as `evals.NAME.KEY`), else those of `cls`."""
    parts = key.split(".")
    for end in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:end])
        node = values.get(parent)
        if isinstance(node, type) and chz.is_chz(node):
            return [f.name for f in _safe_fields(node, parent + ".")]
    return [f.name for f in _safe_fields(cls)]


def _group(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _safe_fields(cls: type, prefix: str = "") -> list[FieldInfo]:
    """Fields for an error message; never let describing fail hide the real error."""
    try:
        return describe_fields(cls, prefix)
    except Exception:
        return []


# ----- field descriptions -----


def _fields(cls: type, prefix: str, instance: object | None) -> list[FieldInfo]:
    """Fields of chz class `cls` under `prefix`; defaults come from `instance` when there is one
    (a parent field's configured default, or a whole config being described), and configs
    nested in it, alone or in a dict, are flattened too (`reward.win`, `evals.NAME.num_games`)."""
    out: list[FieldInfo] = []
    for name, fld in chz.chz_fields(cls).items():
        path = prefix + name
        ftype: object = fld.final_type
        if instance is not None:
            value: object = getattr(instance, name, MISSING)
        else:
            value = _default_value(fld)
        nested = isinstance(ftype, type) and chz.is_chz(ftype)
        doc = _field_doc(cls, name, str(getattr(fld, "_doc", "") or ""))
        if chz.is_chz(value) or (nested and value is MISSING):
            nested_cls = type(value) if chz.is_chz(value) else ftype
            assert isinstance(nested_cls, type)
            if nested_cls is not ftype:  # a subclass chosen for the field: say which
                out.append(FieldInfo(path, _type_text(ftype), nested_cls.__name__, doc))
            out.extend(_fields(nested_cls, path + ".", value if value is not MISSING else None))
            continue
        if isinstance(value, dict) and value and all(chz.is_chz(v) for v in value.values()):
            item_type = (typing.get_args(ftype) or (object, object))[-1]
            for key, item in value.items():
                shown = FieldInfo(f"{path}.{key}", _type_text(item_type), type(item).__name__, doc)
                out.append(shown)
                out.extend(_fields(type(item), f"{path}.{key}.", item))
            continue
        out.append(
            FieldInfo(
                name=path,
                type=_type_text(ftype),
                default=REQUIRED if value is MISSING else _value_text(value),
                doc=doc,
            )
        )
    return out


def _default_value(fld: object) -> object:
    """A field's default value (calling its factory), or `MISSING`."""
    default = getattr(fld, "_default", MISSING)
    if default is not MISSING:
        return default
    factory = getattr(fld, "_default_factory", MISSING)
    if factory is MISSING or not callable(factory):
        return MISSING
    try:
        return factory()
    except Exception:  # a factory that needs its environment: name it instead
        return _DescribedFactory(factory)


class _DescribedFactory:
    """Stands in for a default that could not be computed for display."""

    def __init__(self, factory: object) -> None:
        self.text = f"{getattr(factory, '__name__', 'factory')}()"


def _value_text(value: object) -> str:
    """How a default reads on the command line."""
    if isinstance(value, _DescribedFactory):
        return value.text
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, str):
        return value if value else "''"
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        if all(isinstance(v, str | int | float | bool) for v in value):
            return ",".join(str(v) for v in value)
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, type):
        return value.__name__
    if chz.is_chz(value):
        return f"{type(value).__name__}(...)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_text(tp: object) -> str:
    """`int`, `str | None`, and the choices for Literal and Enum types (`heads|tails`)."""
    if typing.get_origin(tp) is typing.Literal:
        return "|".join(
            str(v.value if isinstance(v, enum.Enum) else v) for v in typing.get_args(tp)
        )
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "|".join(str(member.value) for member in tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return " | ".join(_type_text(arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and chz.is_chz(tp):
        return tp.__name__
    return type_repr(tp)


def _field_doc(cls: type, name: str, explicit: str) -> str:
    """`chz.field(doc=...)`, else the docstring under the field in the class that declares it."""
    if explicit:
        return _one_line(explicit)
    for klass in cls.__mro__:
        doc = _attribute_docs(klass).get(name)
        if doc:
            return doc
    return ""


@functools.cache
def _attribute_docs(klass: type) -> dict[str, str]:
    """`{field: docstring}` from the source of `klass` (a string right after `name: type`)."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):  # no source (built in, REPL, zipped)
        return {}
    body = next((n.body for n in tree.body if isinstance(n, ast.ClassDef)), [])
    docs: dict[str, str] = {}
    for stmt, after in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            name = stmt.target.id.removeprefix("X_")
            docs[name] = _one_line(after.value.value)
    return docs


def _class_doc(cls: type) -> str:
    """The first paragraph of the class docstring, unless it is inherited from a base."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return ""
    return _one_line(inspect.cleandoc(doc).split("\n\n")[0])


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _type_name(cls: object) -> str:
    return getattr(cls, "__qualname__", None) or repr(cls)


def _width() -> int:
    return max(shutil.get_terminal_size(fallback=(100, 24)).columns, 60)
