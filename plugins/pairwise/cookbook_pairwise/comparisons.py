"""The `comparisons` dataset: (prompt, chosen, rejected) triples, to train a judge with
`cookbook sft --dataset comparisons`.

Each comparison becomes two examples, one per order: the judge sees the prompt and both replies
(`cookbook_pairwise.preference.prompt_format.judge_messages`) and learns to answer `A` when the
chosen reply is shown first and `B` when it is shown second, so it cannot score by position. The
`trained:RUN_DIR` preference model then asks in exactly this format.

Sources:
- a JSONL file (`path`), one `{"prompt": ..., "chosen": ..., "rejected": ...}` per line, held-out
  comparisons from `test_path` or a hashed `test_fraction` share;
- without `path`, a built-in synthetic set: replies of 1 to `max_letters` letters with varied vowel
  shares, answering the built-in prompts, labelled by a programmatic preference model (`rule`,
  default `vowels`; pairs it calls a tie are skipped). The held-out comparisons use held-out
  prompts and are the same for every seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError
from cookbook.renderers.base import Message
from cookbook.supervised.types import SupervisedDataset, SupervisedDatasetBuilder
from cookbook.validators import non_negative, positive
from cookbook_pairwise.builders import ConversationsDataset
from cookbook_pairwise.preference.prompt_format import (
    JUDGE_STYLES,
    JudgeStyle,
    answer_text,
    judge_messages,
    resolve_style,
)
from cookbook_pairwise.synthetic import builtin_prompts, is_heldout, varied_completion

if TYPE_CHECKING:
    from cookbook.build_context import BuildContext
    from cookbook_pairwise.preference.rules import ScoreRule

FIELDS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class Comparison:
    """A prompt and two replies, the first preferred."""

    prompt: str
    chosen: str
    rejected: str


def read_comparisons(path: str) -> list[Comparison]:
    """The comparisons of a JSONL file (one-line `UserError`s for every mistake)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(
            f"no comparisons file at {path!r}; give a JSONL file with prompt, chosen and "
            "rejected per line"
        )
    out: list[Comparison] = []
    with file.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{number}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{number}: expected an object with {', '.join(FIELDS)}")
            missing = [k for k in FIELDS if not isinstance(record.get(k), str)]
            if missing:
                raise UserError(f"{path}:{number}: needs string fields {', '.join(missing)}")
            out.append(Comparison(record["prompt"], record["chosen"], record["rejected"]))
    if not out:
        raise UserError(f"{path} holds no comparisons")
    return out


def synthetic_comparisons(
    rule: ScoreRule, prompts: list[str], n: int, rng: random.Random, max_letters: int
) -> list[Comparison]:
    """`n` comparisons of two `varied_completion`s to prompts drawn from `prompts`, the one
    `rule` scores higher chosen (ties are redrawn)."""
    out: list[Comparison] = []
    while len(out) < n:
        prompt = rng.choice(prompts)
        a, b = varied_completion(rng, max_letters), varied_completion(rng, max_letters)
        sa, sb = rule.score(prompt, a), rule.score(prompt, b)
        if sa == sb:
            continue
        out.append(Comparison(prompt, a, b) if sa > sb else Comparison(prompt, b, a))
    return out


def both_orders(comparison: Comparison, style: JudgeStyle) -> list[list[Message]]:
    """The two training conversations of one comparison: chosen shown first (answer A), then
    chosen shown second (answer B)."""
    c = comparison
    return [
        [
            *judge_messages(c.prompt, c.chosen, c.rejected, style),
            Message(role="assistant", content=answer_text(1.0)),
        ],
        [
            *judge_messages(c.prompt, c.rejected, c.chosen, style),
            Message(role="assistant", content=answer_text(0.0)),
        ],
    ]


def rule_model(spec: str) -> ScoreRule:
    """The programmatic preference model `spec` names (the synthetic set needs a score)."""
    from cookbook_pairwise.preference.resolve import make_builder
    from cookbook_pairwise.preference.rules import ScoreRule

    model = make_builder(spec)()
    if not isinstance(model, ScoreRule):
        raise UserError(
            f"rule={spec!r} is not a programmatic preference model; the synthetic comparisons "
            "need one that scores text (vowels, length:N)"
        )
    return model


@chz.chz
class ComparisonSource:
    """Where comparisons come from (shared by the dataset and the `comparison-accuracy` eval)."""

    path: str | None = chz.field(
        default=None,
        doc="a JSONL file of {prompt, chosen, rejected} (default: the built-in synthetic set)",
    )
    test_path: str | None = chz.field(
        default=None, doc="a JSONL file of held-out comparisons (default: a hashed share of path)"
    )
    test_fraction: float = chz.field(
        default=0.1, doc="share of path held out when test_path is unset"
    )
    rule: str = chz.field(
        default="vowels",
        doc="the programmatic preference model that labels the synthetic set (vowels, length:N)",
    )
    num_examples: int = chz.field(
        default=20_000,
        validator=positive("num_examples"),
        doc="synthetic training comparisons (two examples each, one per order)",
    )
    num_test: int = chz.field(
        default=500, validator=non_negative("num_test"), doc="synthetic held-out comparisons"
    )
    max_letters: int = chz.field(
        default=12, validator=positive("max_letters"), doc="longest synthetic reply, in letters"
    )

    def load_test(self) -> list[Comparison]:
        """The held-out comparisons (the same for every seed)."""
        if self.path is None:
            _, test_prompts = builtin_prompts()
            rng = random.Random("pairwise-comparisons-test")
            return synthetic_comparisons(
                rule_model(self.rule), test_prompts, self.num_test, rng, self.max_letters
            )
        if self.test_path is not None:
            return read_comparisons(self.test_path)
        return [c for c in read_comparisons(self.path) if self._held_out(c)]

    def load_train(self, seed: int) -> list[Comparison]:
        """The training comparisons (synthetic ones drawn with `seed`)."""
        if self.path is None:
            train_prompts, _ = builtin_prompts()
            rng = random.Random(f"pairwise-comparisons-train:{seed}")
            return synthetic_comparisons(
                rule_model(self.rule), train_prompts, self.num_examples, rng, self.max_letters
            )
        comparisons = read_comparisons(self.path)
        if self.test_path is None:
            comparisons = [c for c in comparisons if not self._held_out(c)]
        if not comparisons:
            raise UserError(f"every comparison of {self.path} was held out; lower test_fraction")
        return comparisons

    def _held_out(self, c: Comparison) -> bool:
        return is_heldout(f"{c.prompt}\n{c.chosen}\n{c.rejected}", self.test_fraction)


@chz.chz
class ComparisonsBuilder(ComparisonSource, SupervisedDatasetBuilder):
    """Comparisons in both orders with the answer A or B: trains a judge for `trained:RUN_DIR`."""

    prompt_style: str = chz.field(
        default="auto",
        doc="the judge format: compact (three lines, for the tiny model), text (an instruction, "
        "for chat models) or auto (compact for tiny)",
    )

    @chz.validate
    def _check(self) -> None:
        if self.prompt_style not in JUDGE_STYLES:
            raise UserError(
                f"unknown dataset.prompt_style {self.prompt_style!r}; choose one of: "
                f"{', '.join(JUDGE_STYLES)}"
            )

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        """Two examples per comparison, batches of `ctx.groups_per_batch` examples."""
        style = resolve_style(self.prompt_style, ctx.is_tiny)
        batch = max(1, ctx.groups_per_batch)
        train = [conv for c in self.load_train(ctx.seed) for conv in both_orders(c, style)]
        test_comparisons = self.load_test()
        train_ds = ConversationsDataset(train, ctx.renderer, batch, shuffle_seed=ctx.seed)
        if not test_comparisons:
            return train_ds, None
        test = [conv for c in test_comparisons for conv in both_orders(c, style)]
        return train_ds, ConversationsDataset(test, ctx.renderer, batch, shuffle_seed=None)
