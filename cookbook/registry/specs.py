"""What a plugin registers: a name, a one-line summary and a lazy reference to its chz builder.

References are `"package.module:ClassName"` strings so that listing plugins imports nothing heavy;
the class is imported only when the user asks for it (`load()`)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from cookbook.errors import UserError

Kind = Literal["env", "dataset", "eval", "preference_model"]


@dataclass(frozen=True)
class Spec:
    """One registered env, dataset, eval or preference model."""

    name: str
    """What users type (`tictactoe`). Lower-case, digits, `-` and `_`."""
    builder: str
    """`"module:attr"` of the chz builder class (`RLDatasetBuilder` for envs,
    `SupervisedDatasetBuilder` for datasets, `EvaluatorBuilder` for evals,
    `PreferenceModelBuilder` for preference models)."""
    summary: str = ""
    """One line for `cookbook list`."""
    distribution: str = field(default="", kw_only=True)
    """The distribution that registered it; filled in by the catalog (plugins leave it out)."""

    kind: ClassVar[Kind]
    """`env`, `dataset`, `eval` or `preference_model` (set by each subclass)."""

    @property
    def qualified_name(self) -> str:
        """`distribution:name`, the form that picks one of two plugins registering one name."""
        if not self.distribution:
            return self.name
        return f"{normalize_distribution(self.distribution)}:{self.name}"

    def load(self) -> type:
        """Import and return the builder class.

        A failed import is a `UserError` naming the thing, its distribution and the fix; the
        original exception is chained (`--debug` shows it)."""
        module_name, _, attr = self.builder.partition(":")
        kind = getattr(type(self), "kind", "plugin item")
        origin = f" from {self.distribution}" if self.distribution else ""
        what = f"{kind} '{self.name}'{origin}"
        reinstall = f"pip install {self.distribution}" if self.distribution else "the plugin"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            missing = e.name or module_name
            if module_name == missing or module_name.startswith(missing + "."):
                hint = f"its builder path '{self.builder}' is wrong or the plugin is half-installed"
            else:
                hint = f"a dependency is missing; reinstall it with its dependencies ({reinstall})"
            raise UserError(f"{what} cannot be loaded: no module named '{missing}'; {hint}") from e
        except Exception as e:
            first_line = (str(e).splitlines() or [""])[0]
            raise UserError(
                f"{what} cannot be loaded: importing {module_name} raised "
                f"{type(e).__name__}: {first_line} (--debug shows the traceback)"
            ) from e
        obj = getattr(module, attr, None)
        if not isinstance(obj, type):
            problem = "has no" if obj is None else "has a non-class"
            raise UserError(
                f"{what} cannot be loaded: {module_name} {problem} '{attr}' "
                f"(the plugin registered builder='{self.builder}'); report it to the plugin's authors"
            )
        return obj


@dataclass(frozen=True)
class EnvSpec(Spec):
    """An RL environment (its builder is an `RLDatasetBuilder`)."""

    kind: ClassVar[Kind] = "env"

    warm_start_dataset: str | None = None
    """A registered dataset `cookbook rl` fine-tunes on first when the model starts untrained
    (the tiny model learns the answer format from it); `None` for none."""
    recommended: dict[str, str] = field(default_factory=dict)
    """Run-config overrides this env works best with (`{"max_tokens": "4"}`); the user's own
    `key=value` arguments win over these."""
    recommended_tiny: dict[str, str] = field(default_factory=dict)
    """More overrides, applied over `recommended` only when the run uses the built-in tiny
    model: settings that need its compact prompts (`{"search.symmetries": "true"}`), which a
    Hugging Face model given as `model_name=PATH` runs without."""

    def settings_lines(self) -> list[tuple[str, str]]:
        """(what, `KEY=VALUE ...`) for `recommended` and `recommended_tiny`, each that has any:
        what `cookbook describe` and `cookbook rl --env NAME --help` show."""
        parts = [
            ("recommended run settings", self.recommended),
            ("with the tiny model also", self.recommended_tiny),
        ]
        return [
            (what, " ".join(f"{k}={v}" for k, v in settings.items()))
            for what, settings in parts
            if settings
        ]


@dataclass(frozen=True)
class DatasetSpec(Spec):
    """A supervised dataset (its builder is a `SupervisedDatasetBuilder`)."""

    kind: ClassVar[Kind] = "dataset"


@dataclass(frozen=True)
class EvalSpec(Spec):
    """An evaluator (its builder is an `EvaluatorBuilder`)."""

    kind: ClassVar[Kind] = "eval"


@dataclass(frozen=True)
class PreferenceModelSpec(Spec):
    """A preference model: compares two completions of a prompt (its builder is a
    `PreferenceModelBuilder`, `cookbook/preference/types.py`)."""

    kind: ClassVar[Kind] = "preference_model"


def normalize_distribution(name: str) -> str:
    """PEP 503 form of a distribution name, as qualified names spell it: `Cookbook_Env.X` ->
    `cookbook-env-x`."""
    parts = name.strip().lower().replace("_", "-").replace(".", "-").split("-")
    return "-".join(part for part in parts if part)
