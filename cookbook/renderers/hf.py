"""The chat format of a Hugging Face model: its tokenizer's own chat template.

Prompts are the template rendered with `add_generation_prompt=True`. For supervised examples the
whole conversation is rendered once; the trained tokens are found by rendering prefixes (the
prompt before an assistant turn, and the conversation up to the end of that turn) and mapping
those character spans onto the tokens through the tokenizer's offsets. A turn carries loss on its
content and its end-of-turn token, not on the whitespace the template puts after it (the model
stops sampling at the end-of-turn token, so it never produces that whitespace).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from cookbook.errors import UserError
from cookbook.renderers.base import Message, TrainOnWhat

if TYPE_CHECKING:
    from tinker import types as tinker_types
    from transformers import PreTrainedTokenizerBase

    from cookbook.tokenizers import Tokenizer

# A plain marker (no whitespace, which templates may trim) to find where assistant content sits.
_PROBE = "cookbook-probe-7f3a"


class HFChatTemplateRenderer:
    """`Renderer` for a Hugging Face tokenizer that has a chat template."""

    def __init__(self, tokenizer: Tokenizer | PreTrainedTokenizerBase) -> None:
        if not hasattr(tokenizer, "apply_chat_template"):
            raise UserError(
                f"{type(tokenizer).__name__} is not a Hugging Face tokenizer; "
                "HFChatTemplateRenderer needs one with a chat template"
            )
        self.tokenizer = cast("PreTrainedTokenizerBase", tokenizer)
        if not getattr(self.tokenizer, "chat_template", None):
            name = getattr(self.tokenizer, "name_or_path", "") or "this model"
            raise UserError(
                f"the tokenizer of {name} has no chat template; use an instruct/chat model or "
                "add a chat_template to its tokenizer_config.json"
            )
        self._stop_tokens = self._find_stop_tokens()

    # ------------------------------------------------------------------ rendering helpers

    def _render(self, messages: list[Message], add_generation_prompt: bool) -> str:
        """The template's text for `messages` (template errors become `ValueError`)."""
        try:
            text = self.tokenizer.apply_chat_template(
                [{"role": m["role"], "content": m["content"]} for m in messages],
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
            )
        except Exception as e:
            # Jinja raises TemplateError (or anything from `raise_exception`) for conversations
            # the template rejects, e.g. a system turn or roles that do not alternate.
            raise ValueError(f"the chat template rejected the conversation: {e}") from None
        if not isinstance(text, str):
            raise ValueError("the chat template did not return text")
        return text

    def _encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = cast("list[int]", enc["input_ids"])
        offsets = cast("list[tuple[int, int]]", enc["offset_mapping"])
        return list(ids), [(int(a), int(b)) for a, b in offsets]

    def _special_ids(self) -> set[int]:
        ids = set(self.tokenizer.all_special_ids)
        for token_id, added in self.tokenizer.added_tokens_decoder.items():
            if added.special:
                ids.add(int(token_id))
        return ids

    def _find_stop_tokens(self) -> list[int]:
        """The eos token, plus the end-of-turn token the template closes assistant turns with
        (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`...) when it uses one."""
        stops: list[int] = []
        eos = self.tokenizer.eos_token_id
        if isinstance(eos, int):
            stops.append(eos)
        try:
            text = self._render(
                [Message(role="user", content="hi"), Message(role="assistant", content=_PROBE)],
                add_generation_prompt=False,
            )
        except ValueError:
            text = ""
        if _PROBE in text:
            after = text[text.index(_PROBE) + len(_PROBE) :]
            special = self._special_ids()
            for token_id in self.tokenizer.encode(after, add_special_tokens=False):
                if token_id in special:
                    if token_id not in stops:
                        stops.append(token_id)
                    break
        if not stops:
            raise UserError(
                "cannot tell where an assistant turn ends: the tokenizer has no eos token and "
                "its chat template no end-of-turn special token"
            )
        return stops

    def _prompt_before(self, messages: list[Message], i: int) -> str:
        """The text the model is prompted with before assistant turn `i`."""
        try:
            return self._render(messages[:i], add_generation_prompt=True)
        except ValueError:
            if i == 0:
                return ""  # some templates refuse an empty conversation
            raise

    # ------------------------------------------------------------------ Renderer protocol

    def build_generation_prompt(self, messages: list[Message]) -> tinker_types.ModelInput:
        """The conversation rendered by the template with its generation prompt."""
        from tinker import types as tinker_types

        text = self._render(messages, add_generation_prompt=True)
        return tinker_types.ModelInput.from_ints(
            self.tokenizer.encode(text, add_special_tokens=False)
        )

    def get_stop_sequences(self) -> list[int]:
        """The eos token and the template's end-of-turn token."""
        return list(self._stop_tokens)

    def parse_response(self, tokens: list[int]) -> tuple[Message, bool]:
        """The text before the first stop token; `False` when there was none."""
        stop_at = next((i for i, t in enumerate(tokens) if t in self._stop_tokens), None)
        body = tokens if stop_at is None else tokens[:stop_at]
        content = str(self.tokenizer.decode(body, skip_special_tokens=False))
        return Message(role="assistant", content=content), stop_at is not None

    def build_supervised_example(
        self, messages: list[Message], train_on_what: TrainOnWhat
    ) -> tuple[list[int], list[float]]:
        """Tokens of the rendered conversation; weight 1 on the trained assistant turns' tokens
        up to and including their end-of-turn token, 0 elsewhere."""
        assistant_idx = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if not assistant_idx:
            raise ValueError("conversation has no assistant turn to train on")
        trained = (
            assistant_idx[-1:]
            if train_on_what == TrainOnWhat.LAST_ASSISTANT_MESSAGE
            else assistant_idx
        )
        full = self._render(messages, add_generation_prompt=False)
        tokens_T, offsets_T = self._encode_with_offsets(full)
        weights_T = [0.0] * len(tokens_T)
        for i in trained:
            start_text = self._prompt_before(messages, i)
            end_text = self._render(messages[: i + 1], add_generation_prompt=False)
            if not (full.startswith(start_text) and full.startswith(end_text)):
                raise ValueError(
                    "the chat template renders a conversation differently from its prefixes "
                    "(it rewrites earlier turns), so the trained tokens cannot be located"
                )
            start, end = len(start_text), len(end_text)
            span = [t for t, (a, _) in enumerate(offsets_T) if start <= a < end]
            # Stop after the turn's end-of-turn token: what follows it is never sampled.
            stop_pos = [t for t in span if tokens_T[t] in self._stop_tokens]
            if stop_pos:
                span = [t for t in span if t <= stop_pos[-1]]
            for t in span:
                weights_T[t] = 1.0
        return tokens_T, weights_T
