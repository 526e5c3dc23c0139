"""The chat format of the built-in tiny model: a role token before each turn, `<|eos|>` after.

    <|user|>board...<|eos|><|assistant|>4<|eos|>

Compact on purpose: every prompt byte costs compute on 2 CPU cores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cookbook.renderers.base import Message, TrainOnWhat

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.tokenizers import ByteTokenizer


class TinyRenderer:
    """`Renderer` for `ByteTokenizer`."""

    def __init__(self, tokenizer: ByteTokenizer) -> None:
        self.tokenizer = tokenizer
        self._eos = tokenizer.eos_token_id

    def _role_token(self, message: Message) -> int:
        role = message["role"]
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"unknown role {role!r}: expected system, user or assistant")
        return self.tokenizer.special(f"<|{role}|>")

    def _render_turn(self, message: Message) -> list[int]:
        return [
            self._role_token(message),
            *self.tokenizer.encode(message["content"]),
            self._eos,
        ]

    def build_generation_prompt(self, messages: list[Message]) -> tinker_types.ModelInput:
        """All turns, then the assistant role token the model continues from."""
        from tinker import types as tinker_types

        tokens = [t for m in messages for t in self._render_turn(m)]
        tokens.append(self.tokenizer.special("<|assistant|>"))
        return tinker_types.ModelInput.from_ints(tokens)

    def get_stop_sequences(self) -> list[int]:
        """A turn ends at `<|eos|>`."""
        return [self._eos]

    def parse_response(self, tokens: list[int]) -> tuple[Message, bool]:
        """The text up to the first `<|eos|>`; `False` when there was none (cut by length)."""
        if self._eos in tokens:
            body = tokens[: tokens.index(self._eos)]
            return Message(role="assistant", content=self.tokenizer.decode(body)), True
        return Message(role="assistant", content=self.tokenizer.decode(tokens)), False

    def build_supervised_example(
        self, messages: list[Message], train_on_what: TrainOnWhat
    ) -> tuple[list[int], list[float]]:
        """Tokens of the whole conversation; weight 1 on the trained assistant turns' content and
        their closing `<|eos|>` (so the model learns to stop), 0 elsewhere."""
        assistant_idx = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if not assistant_idx:
            raise ValueError("conversation has no assistant turn to train on")
        if train_on_what == TrainOnWhat.LAST_ASSISTANT_MESSAGE:
            trained = {assistant_idx[-1]}
        else:
            trained = set(assistant_idx)
        tokens: list[int] = []
        weights: list[float] = []
        for i, message in enumerate(messages):
            turn = self._render_turn(message)
            w = 1.0 if i in trained else 0.0
            tokens.extend(turn)
            # The role token is the prompt for the turn: never a target.
            weights.extend([0.0] + [w] * (len(turn) - 1))
        return tokens, weights
