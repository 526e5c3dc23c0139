"""What a plugin registers: a name, a one-line summary and a lazy reference to its chz builder.

References are `"package.module:ClassName"` strings so that listing plugins imports nothing heavy;
the class is imported only when the user asks for it (`load()`)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["env", "dataset", "eval"]


@dataclass(frozen=True)
class Spec:
    """One registered env, dataset or eval."""

    name: str
    """What users type (`tictactoe`). Lower-case, digits, `-` and `_`."""
    builder: str
    """`"module:attr"` of the chz builder class (`RLDatasetBuilder` for envs,
    `SupervisedDatasetBuilder` for datasets, `EvaluatorBuilder` for evals)."""
    summary: str = ""
    """One line for `cookbook list`."""

    def load(self) -> type:
        """Import and return the builder class."""
        module_name, _, attr = self.builder.partition(":")
        module = importlib.import_module(module_name)
        obj: type = getattr(module, attr)
        return obj


@dataclass(frozen=True)
class EnvSpec(Spec):
    """An RL environment (its builder is an `RLDatasetBuilder`)."""

    warm_start_dataset: str | None = None
    """A registered dataset `cookbook rl` fine-tunes on first when the model starts untrained
    (the tiny model learns the answer format from it); `None` for none."""
    recommended: dict[str, str] = field(default_factory=dict)
    """Run-config overrides this env works best with (`{"max_tokens": "4"}`); the user's own
    `key=value` arguments win over these."""


@dataclass(frozen=True)
class DatasetSpec(Spec):
    """A supervised dataset (its builder is a `SupervisedDatasetBuilder`)."""


@dataclass(frozen=True)
class EvalSpec(Spec):
    """An evaluator (its builder is an `EvaluatorBuilder`)."""
