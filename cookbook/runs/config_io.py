"""chz configs to JSON and back, so `config.json` is enough to rerun a run exactly.

Every chz object is written as `{"__chz__": "module:QualName", field: value, ...}`; the reverse
imports the class and calls it with the fields. Plain values (numbers, strings, lists, dicts,
enums by value) are kept as they are.
"""

from __future__ import annotations

import importlib
import json
from enum import Enum
from pathlib import Path, PurePath
from typing import cast

import chz

from cookbook.errors import UserError

JSON = None | bool | int | float | str | list["JSON"] | dict[str, "JSON"]
_TYPE_KEY = "__chz__"


def config_to_json(obj: object) -> JSON:
    """A JSON-able tree of `obj` (a chz config or a plain value)."""
    if chz.is_chz(obj):
        cls = type(obj)
        out: dict[str, JSON] = {_TYPE_KEY: f"{cls.__module__}:{cls.__qualname__}"}
        for name in chz.chz_fields(obj):
            out[name] = config_to_json(getattr(obj, name))
        return out
    if isinstance(obj, Enum):
        return config_to_json(obj.value)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): config_to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [config_to_json(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot serialise {type(obj).__name__} in a config: use plain values")


def config_from_json(data: JSON) -> object:
    """Rebuild what `config_to_json` wrote."""
    if isinstance(data, dict):
        if _TYPE_KEY in data:
            module_name, _, qualname = cast(str, data[_TYPE_KEY]).partition(":")
            target: object = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
            fields = {k: config_from_json(v) for k, v in data.items() if k != _TYPE_KEY}
            return cast(type, target)(**fields)
        return {k: config_from_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [config_from_json(v) for v in data]
    return data


def load_config_file(path: str | Path) -> object:
    """Read a `config.json` written by a run."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no config file at {path}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    return config_from_json(data.get("config", data))
