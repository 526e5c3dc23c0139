"""What a builder (env, dataset, eval) is told about the model it will serve.

Builders are chz configs with user-facing options only; the model-dependent parts (the tokenizer,
the chat format, the run's seed, the batch shape the runner wants) arrive here at build time, so
one registered env works with the tiny model and with a Hugging Face model alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cookbook.renderers.base import Renderer
    from cookbook.tokenizers import Tokenizer


@dataclass(frozen=True)
class BuildContext:
    """Passed to `RLDatasetBuilder`, `SupervisedDatasetBuilder` and `EvaluatorBuilder` calls."""

    model_name: str
    """The base model (`tiny`, or a local Hugging Face directory). Envs may pick a prompt style
    from it (a compact board for `tiny`, the full text for chat models)."""
    tokenizer: Tokenizer
    """The model's tokenizer."""
    renderer: Renderer
    """Messages to tokens and back, in the model's chat format."""
    seed: int = 0
    """The run's seed; builders derive every random choice from it."""
    group_size: int = 8
    """Envs per group the runner asks for (RL)."""
    groups_per_batch: int = 16
    """Groups per batch (RL) or examples per batch (supervised)."""
    log_dir: str | None = None
    """The run's log directory, for builders that keep files (frozen opponents, caches)."""

    @property
    def is_tiny(self) -> bool:
        """Whether the model is the built-in byte-level model (short prompts matter there)."""
        return self.model_name.startswith("tiny")
