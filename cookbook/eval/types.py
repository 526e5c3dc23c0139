"""The eval contract: an `EvaluatorBuilder` (chz config, what an eval plugin registers) builds an
`Evaluator`, which scores a sampling client and returns metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Self

import chz

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext

SMALL_SIZES: dict[str, int] = {
    "num_games": 2,
    "num_problems": 4,
    "max_problems": 4,
    "max_examples": 4,
    "num_episodes": 2,
    "num_groups": 2,
    "num_tasks": 4,
}
"""The size fields the default `EvaluatorBuilder.small` lowers, and the value it lowers them to."""


class Evaluator(ABC):
    """Scores a policy. Metrics are flat `name -> float` (e.g. `win_rate`, `accuracy`)."""

    @abstractmethod
    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Run the evaluation against `sampling_client` and return its metrics."""


@chz.chz
class EvaluatorBuilder:
    """A chz config whose call builds an `Evaluator`; its fields are the eval's options
    (`eval.FIELD=value` on the command line). Subclass it and override `__call__`; override
    `small` when the eval's size is not one of the fields `SMALL_SIZES` names."""

    def __call__(self, ctx: BuildContext) -> Evaluator:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(ctx)")

    def small(self) -> Self:
        """This eval at a size that runs in seconds on an untrained tiny model (a couple of
        games, a few problems): what `cookbook check` and `cookbook.testing.check_eval` run.
        Options the user set on the command line are applied on top of it.

        The default lowers each field named in `SMALL_SIZES` (`num_games`, `num_problems`,
        `max_examples`, ...) that the builder has, holding an int above that value or None (no
        limit), and changes nothing else. Override it to say what small means for your eval:

            def small(self) -> Self:
                return chz.replace(self, num_puzzles=3, max_turns=4)
        """
        fields = chz.chz_fields(self)
        changes: dict[str, int] = {}
        for name, small_value in SMALL_SIZES.items():
            if name not in fields:
                continue
            value = getattr(self, name)
            if value is None or (
                isinstance(value, int) and not isinstance(value, bool) and value > small_value
            ):
                changes[name] = small_value
        return chz.replace(self, **changes) if changes else self
