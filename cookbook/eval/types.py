"""The eval contract: an `EvaluatorBuilder` (chz config, what an eval plugin registers) builds an
`Evaluator`, which scores a sampling client and returns metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import chz

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient
    from cookbook.build_context import BuildContext


class Evaluator(ABC):
    """Scores a policy. Metrics are flat `name -> float` (e.g. `win_rate`, `accuracy`)."""

    @abstractmethod
    async def __call__(self, sampling_client: SamplingClient) -> dict[str, float]:
        """Run the evaluation against `sampling_client` and return its metrics."""


@chz.chz
class EvaluatorBuilder:
    """A chz config whose call builds an `Evaluator`; its fields are the eval's options
    (`eval.FIELD=value` on the command line). Subclass it and override `__call__`."""

    def __call__(self, ctx: BuildContext) -> Evaluator:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(ctx)")
