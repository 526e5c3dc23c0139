"""The chz configs this plugin registers for the env and its warm start.

Light at import time: the preference models, tinker and torch load when a config is called.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError
from cookbook.renderers.base import Message, TrainOnWhat
from cookbook.rl.types import RLDatasetBuilder
from cookbook.supervised.types import SupervisedDataset, SupervisedDatasetBuilder
from cookbook.validators import non_negative, positive
from cookbook_pairwise.prompts import BUILTIN, load_prompt_set, prompt_messages

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.build_context import BuildContext
    from cookbook.renderers.base import Renderer
    from cookbook.rl.types import RLDataset


def preference_spec(option: str) -> Callable[[object, str], None]:
    """A chz validator: a known preference model with a valid argument (fails at config time, not
    in the run's first step)."""

    def check(obj: object, attr: str) -> None:
        from cookbook_pairwise.preference.resolve import check_spec

        value = getattr(obj, attr)
        if value is None:
            return
        try:
            check_spec(value)
        except UserError as e:
            raise UserError(f"{option}: {e}") from None

    return check


@chz.chz
class PairwiseEnvBuilder(RLDatasetBuilder):
    """G single-turn replies per prompt, rewarded by pairwise comparisons of a preference model."""

    preference_model: str = chz.field(
        default="vowels",
        validator=preference_spec("env.preference_model"),
        doc="who judges the pairs: vowels, length[:N] (rules), judge:MODEL (any model asked A/B/"
        "tie in both orders) or trained:RUN_DIR (a judge trained with cookbook sft --dataset "
        "comparisons)",
    )
    monitor: str | None = chz.field(
        default=None,
        validator=preference_spec("env.monitor"),
        doc="a second preference model judged on the same pairs for metrics only "
        "(env/monitor_agreement, env/monitor_score): e.g. the hidden rule behind a trained judge",
    )
    prompt_set: str = chz.field(
        default=BUILTIN,
        doc="synthetic (a built-in set of short words) or the path of a JSONL file of prompts",
    )
    prompt_field: str = chz.field(default="prompt", doc="the JSONL key holding each prompt")
    test_path: str | None = chz.field(
        default=None, doc="a JSONL file of held-out prompts (default: a hashed share of the set)"
    )
    test_fraction: float = chz.field(
        default=0.1, doc="share of a prompt file held out when test_path is unset"
    )
    num_test_prompts: int = chz.field(
        default=0,
        validator=non_negative("env.num_test_prompts"),
        doc="held-out prompts in the env's own test split, rolled out at every eval (0: none; "
        "the pairwise-win-rate eval measures progress on held-out prompts)",
    )
    comparisons_per_completion: int = chz.field(
        default=7,
        validator=positive("env.comparisons_per_completion"),
        doc="comparisons each reply takes part in: every pair when group_size - 1 is not more, "
        "else a sampled round robin (rounded up to an even number)",
    )
    format_penalty: float = chz.field(
        default=0.5,
        validator=non_negative("env.format_penalty"),
        doc="subtracted from the reward of a reply that is cut off, blank or unprintable",
    )
    judge_timeout_s: float = chz.field(
        default=20.0,
        validator=non_negative("env.judge_timeout_s"),
        doc="time limit of one comparison; a slower one is a judge failure (0: no limit)",
    )
    num_batches: int = chz.field(
        default=100_000,
        validator=positive("env.num_batches"),
        doc="training batches (the run's max_steps usually stops first)",
    )

    def reward_range(self) -> tuple[float, float]:
        """Comparisons give [-1, 1]; a malformed reply loses `format_penalty` more."""
        return (-1.0 - self.format_penalty, 1.0)

    def __call__(self, ctx: BuildContext) -> tuple[RLDataset, RLDataset | None]:
        """Train: prompts drawn per batch from the training prompts. Test: the first
        `num_test_prompts` held-out prompts, in order."""
        from cookbook_pairwise.env import PairwiseSettings, PromptsDataset
        from cookbook_pairwise.preference.resolve import preference_model

        if ctx.group_size < 2:
            raise UserError(
                f"the pairwise env compares replies within a group: group_size must be >= 2, "
                f"got {ctx.group_size}"
            )
        # Built now (and cached for the groups): a judge that cannot load fails before the run.
        preference_model(self.preference_model)
        if self.monitor is not None:
            preference_model(self.monitor)
        prompts = load_prompt_set(
            self.prompt_set, self.prompt_field, self.test_path, self.test_fraction
        )
        settings = PairwiseSettings(
            preference_model=self.preference_model,
            monitor=self.monitor,
            comparisons_per_completion=self.comparisons_per_completion,
            format_penalty=self.format_penalty,
            judge_timeout_s=self.judge_timeout_s,
        )
        train = PromptsDataset(
            prompts.train,
            renderer=ctx.renderer,
            is_tiny=ctx.is_tiny,
            settings=settings,
            seed=ctx.seed,
            groups_per_batch=ctx.groups_per_batch,
            group_size=ctx.group_size,
            num_batches=self.num_batches,
        )
        heldout = prompts.test[: self.num_test_prompts]
        if not heldout:
            return train, None
        test = PromptsDataset(
            heldout,
            renderer=ctx.renderer,
            is_tiny=ctx.is_tiny,
            settings=settings,
            seed=ctx.seed,
            groups_per_batch=ctx.groups_per_batch,
            group_size=ctx.group_size,
            num_batches=1,
            fixed=True,
        )
        return train, test


@chz.chz
class PairwiseWarmupBuilder(SupervisedDatasetBuilder):
    """Replies of the right shape for the tiny model's warm start: each prompt answered with a
    word of uniformly random letters (about 19% vowels), so RL starts from well-formed replies
    and the preference model decides which ones get better."""

    prompt_set: str = chz.field(default=BUILTIN, doc="synthetic or a JSONL prompt file")
    prompt_field: str = chz.field(default="prompt", doc="the JSONL key holding each prompt")
    min_letters: int = chz.field(
        default=3, validator=positive("dataset.min_letters"), doc="shortest reply"
    )
    max_letters: int = chz.field(
        default=10, validator=positive("dataset.max_letters"), doc="longest reply"
    )
    num_examples: int = chz.field(
        default=20_000, validator=positive("dataset.num_examples"), doc="examples per epoch"
    )
    num_test: int = chz.field(
        default=200, validator=non_negative("dataset.num_test"), doc="held-out examples"
    )

    @chz.validate
    def _check(self) -> None:
        if self.min_letters > self.max_letters:
            raise UserError(
                f"min_letters ({self.min_letters}) must not exceed max_letters ({self.max_letters})"
            )

    def __call__(self, ctx: BuildContext) -> tuple[SupervisedDataset, SupervisedDataset | None]:
        """Train on training prompts, test on held-out ones; replies drawn with `ctx.seed`."""
        from cookbook_pairwise.synthetic import uniform_word

        prompts = load_prompt_set(self.prompt_set, self.prompt_field)
        rng = random.Random(f"pairwise-warmup:{ctx.seed}")

        def examples(pool: list[str], n: int) -> list[list[Message]]:
            return [
                [
                    *prompt_messages(rng.choice(pool), ctx.is_tiny),
                    Message(
                        role="assistant",
                        content=uniform_word(rng, self.min_letters, self.max_letters),
                    ),
                ]
                for _ in range(n)
            ]

        batch = max(1, ctx.groups_per_batch)
        train = ConversationsDataset(
            examples(prompts.train, self.num_examples), ctx.renderer, batch, ctx.seed
        )
        if not self.num_test or not prompts.test:
            return train, None
        test = ConversationsDataset(
            examples(prompts.test, self.num_test), ctx.renderer, batch, None
        )
        return train, test


class ConversationsDataset(SupervisedDataset):
    """Conversations rendered into datums on demand (loss on the last assistant turn), in batches;
    reshuffled per epoch when `shuffle_seed` is set."""

    def __init__(
        self,
        conversations: list[list[Message]],
        renderer: Renderer,
        batch_size: int,
        shuffle_seed: int | None,
    ) -> None:
        self.conversations = conversations
        self.renderer = renderer
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.order = list(range(len(conversations)))
        self.set_epoch(0)

    def set_epoch(self, seed: int = 0) -> None:
        """A new order for epoch `seed` (a test set keeps its order)."""
        self.order = list(range(len(self.conversations)))
        if self.shuffle_seed is not None:
            random.Random(f"pairwise-epoch:{self.shuffle_seed}:{seed}").shuffle(self.order)

    def get_batch(self, index: int) -> list[tinker_types.Datum]:
        """Conversations `[index * batch_size, (index + 1) * batch_size)` of the current order."""
        from cookbook.supervised.datums import datum_from_tokens

        chunk = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        data = []
        for i in chunk:
            tokens, weights = self.renderer.build_supervised_example(
                self.conversations[i], TrainOnWhat.LAST_ASSISTANT_MESSAGE
            )
            data.append(datum_from_tokens(tokens, weights))
        return data

    def __len__(self) -> int:
        return -(-len(self.conversations) // self.batch_size)
