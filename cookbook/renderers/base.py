"""The renderer contract. A renderer is the chat format of one model family: SFT trains on what
`build_supervised_example` produces and RL samples from `build_generation_prompt`, so a model
fine-tuned by `cookbook sft` talks in the format `cookbook rl` samples in."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict

if TYPE_CHECKING:
    from tinker import types as tinker_types

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    """One chat turn."""

    role: Role
    content: str


class TrainOnWhat(StrEnum):
    """Which tokens of a conversation carry loss in supervised training."""

    LAST_ASSISTANT_MESSAGE = "last_assistant_message"
    ALL_ASSISTANT_MESSAGES = "all_assistant_messages"


class Renderer(Protocol):
    """Messages to tokens (and weights), and sampled tokens back to a message."""

    def build_generation_prompt(self, messages: list[Message]) -> tinker_types.ModelInput:
        """The prompt that asks the model for the next assistant turn."""
        ...

    def get_stop_sequences(self) -> list[int]:
        """Token ids that end an assistant turn."""
        ...

    def parse_response(self, tokens: list[int]) -> tuple[Message, bool]:
        """The assistant message in `tokens`, and whether it ended cleanly (saw a stop token)."""
        ...

    def build_supervised_example(
        self, messages: list[Message], train_on_what: TrainOnWhat
    ) -> tuple[list[int], list[float]]:
        """All tokens of the conversation and a weight per token (1.0 where loss applies).

        Weights are aligned with the tokens: weight i says whether token i is a target. The
        datum built from this shifts by one (position i predicts token i+1).
        """
        ...
