"""Held-out negative log-likelihood: how well a policy predicts the trained tokens of examples it
did not train on, scored through the sampling client's `compute_logprobs`.

`cookbook sft` runs it on its held-out split every `eval_every` steps; the core also registers it
as the `nll` eval (`cookbook eval --eval nll eval.path=my.jsonl`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import chz

from cookbook.errors import UserError
from cookbook.eval.types import Evaluator, EvaluatorBuilder
from cookbook.renderers.base import TrainOnWhat

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext


class NLLEvaluator(Evaluator):
    """Weighted NLL per trained token over fixed datums (`target_tokens` + `weights`)."""

    def __init__(
        self, datums_D: Sequence[tinker_types.Datum], sources_D: Sequence[str] | None = None
    ) -> None:
        if not datums_D:
            raise ValueError("NLLEvaluator needs at least one datum")
        self.datums_D = list(datums_D)
        self.sources_D = None if sources_D is None else list(sources_D)
        """Where each datum came from (`file:line`), named when the backend refuses one."""

    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """`nll` (nats per weighted token), `tokens` (total weight) and `examples`."""
        from tinker import types as tinker_types

        # Submit every request before waiting on any: the backend can work through them in order
        # while this coroutine collects results.
        futures = []
        for k, datum in enumerate(self.datums_D):
            tokens_T = datum.model_input.to_ints()
            tokens_T.append(int(datum.loss_fn_inputs["target_tokens"].tolist()[-1]))
            try:
                futures.append(
                    sampling_client.compute_logprobs(tinker_types.ModelInput.from_ints(tokens_T))
                )
            except UserError as e:
                where = self.sources_D[k] if self.sources_D else f"held-out example {k}"
                raise UserError(f"{where}: {e}") from e
        total_nll = 0.0
        total_weight = 0.0
        for datum, future in zip(self.datums_D, futures, strict=True):
            logprobs_T = await future
            weights = datum.loss_fn_inputs["weights"].tolist()
            for i, w in enumerate(weights):
                if not w:
                    continue
                # Target i is token i + 1 of the full sequence.
                lp = logprobs_T[i + 1]
                if lp is None:
                    raise RuntimeError(f"backend returned no logprob for scored token {i + 1}")
                total_nll -= float(w) * lp
                total_weight += float(w)
        nll = total_nll / total_weight if total_weight else math.nan
        return {"nll": nll, "tokens": total_weight, "examples": float(len(self.datums_D))}


@chz.chz
class NLLEvaluatorBuilder(EvaluatorBuilder):
    """Negative log-likelihood per trained token on chat conversations from a JSONL file (by
    default the held-out split of the shipped demo, the same split `cookbook sft --dataset jsonl`
    holds out with the same options)."""

    path: str | None = chz.field(
        default=None, doc="The JSONL file. Default: the demo conversations shipped with cookbook."
    )
    split: Literal["test", "train", "all"] = chz.field(
        default="test", doc="Which part to score: the held-out split, the rest, or all of it."
    )
    train_on_what: TrainOnWhat = chz.field(
        default=TrainOnWhat.ALL_ASSISTANT_MESSAGES,
        doc="Which turns are scored: all_assistant_messages or last_assistant_message.",
    )
    test_fraction: float = chz.field(default=0.1, doc="Share held out (as the jsonl dataset).")
    split_seed: int = chz.field(default=0, doc="Seed of the held-out split (as the jsonl dataset).")
    max_examples: int | None = chz.field(default=None, doc="Score at most this many examples.")
    skip_bad_lines: bool = chz.field(
        default=False, doc="Skip (and count) malformed lines instead of stopping at the first."
    )

    def __call__(self, ctx: BuildContext) -> Evaluator:
        from cookbook.supervised.jsonl import JsonlDatasetBuilder

        if self.split not in ("test", "train", "all"):
            raise UserError(f"split={self.split!r} is not one of: test, train, all")
        source = JsonlDatasetBuilder(
            path=self.path,
            train_on_what=self.train_on_what,
            test_fraction=self.test_fraction,
            split_seed=self.split_seed,
            skip_bad_lines=self.skip_bad_lines,
        )
        train_D, test_D, _ = source.load_split(ctx)
        datums_D = {"test": test_D, "train": train_D, "all": train_D + test_D}[self.split]
        if self.max_examples is not None:
            if self.max_examples < 1:
                raise UserError(f"max_examples must be at least 1, got {self.max_examples}")
            datums_D = datums_D[: self.max_examples]
        if not datums_D:
            raise UserError(
                f"the {self.split} split of {source.resolved_path()} is empty; "
                "raise test_fraction or use split=all"
            )
        return NLLEvaluator(datums_D)
