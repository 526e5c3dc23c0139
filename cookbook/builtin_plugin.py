"""The core's own envs, datasets and evals, registered through the same hooks as any plugin.

Builder strings only: this module is imported while plugins are listed, so it imports nothing
heavy (the builders are imported when a user asks for them).
"""

from __future__ import annotations

from collections.abc import Callable

from cookbook.registry import DatasetSpec, EvalSpec, hookimpl


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """The `jsonl` dataset: chat conversations from a local file."""
    register(
        DatasetSpec(
            name="jsonl",
            builder="cookbook.supervised.jsonl:JsonlDatasetBuilder",
            summary="Chat conversations from a local JSONL file (default: a shipped demo)",
        )
    )


@hookimpl
def register_evals(register: Callable[[EvalSpec], None]) -> None:
    """The `nll` eval: held-out negative log-likelihood per trained token."""
    register(
        EvalSpec(
            name="nll",
            builder="cookbook.supervised.nll_eval:NLLEvaluatorBuilder",
            summary="Negative log-likelihood per token on chat conversations (JSONL)",
        )
    )
