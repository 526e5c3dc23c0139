"""What a builder (env, dataset, eval) is told about the model it will serve.

Builders are chz configs with user-facing options only; the model-dependent parts (the tokenizer,
the chat format, the run's seed, the batch shape the runner wants) arrive here at build time, so
one registered env works with the tiny model and with a Hugging Face model alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cookbook.model_names import is_tiny_model

if TYPE_CHECKING:
    from cookbook.renderers.base import Renderer
    from cookbook.tokenizers import Tokenizer


@dataclass(frozen=True)
class BuildContext:
    """Passed to `RLDatasetBuilder`, `SupervisedDatasetBuilder` and `EvaluatorBuilder` calls.

    The runners make theirs with `BuildContext.for_model`, which picks the renderer."""

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

    @classmethod
    def for_model(
        cls,
        model_name: str,
        tokenizer: Tokenizer,
        *,
        seed: int = 0,
        group_size: int = 8,
        groups_per_batch: int = 16,
        log_dir: str | None = None,
    ) -> BuildContext:
        """The context for `model_name` and its tokenizer, with the renderer of its chat format
        (`cookbook.renderers.get_renderer`)."""
        from cookbook.renderers import get_renderer

        return cls(
            model_name=model_name,
            tokenizer=tokenizer,
            renderer=get_renderer(model_name, tokenizer),
            seed=seed,
            group_size=group_size,
            groups_per_batch=groups_per_batch,
            log_dir=log_dir,
        )

    @property
    def is_tiny(self) -> bool:
        """Whether the model is the built-in byte-level model (short prompts matter there)."""
        return is_tiny_model(self.model_name)
