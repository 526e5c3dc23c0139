"""`NAME[:ARG]` -> a preference model: how the env and evals name one (`vowels`, `length:12`,
`judge:/models/qwen`, `trained:runs/sft-comparisons`).

`ARG` sets the builder's `arg_field` (`target` for `length`, `model` for `judge`, `path` for
`trained`). Built models are cached per process and spec, so every group of a run shares one
judge (and its loaded weights).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from cookbook.errors import UserError
from cookbook.registry.errors import did_you_mean

if TYPE_CHECKING:
    from cookbook_pairwise.preference.types import PreferenceModel, PreferenceModelBuilder

_PKG = "cookbook_pairwise.preference"

BUILTIN: dict[str, tuple[str, str]] = {
    "vowels": (f"{_PKG}.rules:VowelsBuilder", "Prefers the completion with more vowels (a rule)"),
    "length": (
        f"{_PKG}.rules:LengthBuilder",
        "Prefers the length closer to a target (a rule; length:N)",
    ),
    "judge": (
        f"{_PKG}.judge:JudgeBuilder",
        "Any model asked 'A, B or tie?' in both orders (judge:MODEL)",
    ),
    "trained": (
        f"{_PKG}.judge:TrainedBuilder",
        "A judge trained with cookbook sft --dataset comparisons (trained:RUN_DIR)",
    ),
}
"""The preference models this plugin provides: name -> (builder reference, summary)."""


def split_spec(spec: str) -> tuple[str, str | None]:
    """`"trained:runs/x"` -> `("trained", "runs/x")`; `"vowels"` -> `("vowels", None)`."""
    name, sep, arg = spec.strip().partition(":")
    return name.strip().lower(), (arg if sep else None)


def builder_class(name: str) -> type[PreferenceModelBuilder]:
    """The builder class registered as `name`; a `UserError` for an unknown name."""
    from cookbook_pairwise.preference.types import PreferenceModelBuilder

    entry = BUILTIN.get(name)
    if entry is None:
        raise UserError(
            f"unknown preference model {name!r}{did_you_mean(name, BUILTIN)}; choose one of: "
            f"{', '.join(sorted(BUILTIN))}"
        )
    module_name, _, attr = entry[0].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    assert isinstance(cls, type) and issubclass(cls, PreferenceModelBuilder)
    return cls


def make_builder(spec: str) -> PreferenceModelBuilder:
    """The configured builder for `NAME[:ARG]` (the argument is cast to its field's type)."""
    import chz

    from cookbook.configs import make_config

    name, arg = split_spec(spec)
    cls = builder_class(name)
    if arg is None:
        return make_config(cls, [], label=f"preference model {name}")
    if cls.arg_field is None:
        raise UserError(f"preference model {name} takes no argument; write {name}, not {spec}")
    assert cls.arg_field in chz.chz_fields(cls)
    return make_config(cls, [f"{cls.arg_field}={arg}"], label=f"preference model {name}")


_models: dict[str, PreferenceModel] = {}


def preference_model(spec: str) -> PreferenceModel:
    """The preference model `spec` names, built once per process."""
    model = _models.get(spec)
    if model is None:
        model = make_builder(spec)()
        _models[spec] = model
    return model


def check_spec(spec: str) -> None:
    """Raise `UserError` now for an unknown name or a bad argument (builders are checked when the
    config is made, so a typo fails before the run starts, not in its first step)."""
    make_builder(spec)
