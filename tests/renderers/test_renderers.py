"""Renderers: the exact tokens and the exact per-token weights, checked token by token."""

from __future__ import annotations

from typing import cast

import pytest
from transformers import PreTrainedTokenizerFast

from cookbook.errors import UserError
from cookbook.renderers import get_renderer
from cookbook.renderers.base import Message, TrainOnWhat
from cookbook.renderers.hf import HFChatTemplateRenderer
from cookbook.renderers.tiny import TinyRenderer
from cookbook.tokenizers import ByteTokenizer, Tokenizer

CONVERSATION: list[Message] = [
    Message(role="system", content="You are helpful."),
    Message(role="user", content="hello world"),
    Message(role="assistant", content="it is 4."),
    Message(role="user", content="reverse cat"),
    Message(role="assistant", content="tac"),
]

ALL = TrainOnWhat.ALL_ASSISTANT_MESSAGES
LAST = TrainOnWhat.LAST_ASSISTANT_MESSAGE


def expected_from_segments(
    encode_segment: object, segments: list[tuple[str, float]]
) -> tuple[list[int], list[float]]:
    """Tokens and weights built piece by piece (each piece encoded alone, with its weight)."""
    assert callable(encode_segment)
    tokens: list[int] = []
    weights: list[float] = []
    for text, w in segments:
        ids = list(encode_segment(text))
        tokens += ids
        weights += [w] * len(ids)
    return tokens, weights


# ----------------------------------------------------------------------------- tiny


def tiny_segment_encoder(tok: ByteTokenizer) -> object:
    def encode(text: str) -> list[int]:
        if text in tok.SPECIAL_TOKENS:
            return [tok.special(text)]
        return tok.encode(text)

    return encode


@pytest.mark.parametrize("mode", [ALL, LAST])
def test_tiny_weights_token_by_token(mode: TrainOnWhat) -> None:
    tok = ByteTokenizer()
    first = 1.0 if mode == ALL else 0.0
    segments = [
        ("<|system|>", 0.0),
        ("You are helpful.", 0.0),
        ("<|eos|>", 0.0),
        ("<|user|>", 0.0),
        ("hello world", 0.0),
        ("<|eos|>", 0.0),
        ("<|assistant|>", 0.0),
        ("it is 4.", first),
        ("<|eos|>", first),
        ("<|user|>", 0.0),
        ("reverse cat", 0.0),
        ("<|eos|>", 0.0),
        ("<|assistant|>", 0.0),
        ("tac", 1.0),
        ("<|eos|>", 1.0),
    ]
    want_tokens, want_weights = expected_from_segments(tiny_segment_encoder(tok), segments)
    tokens, weights = TinyRenderer(tok).build_supervised_example(CONVERSATION, mode)
    assert tokens == want_tokens
    assert weights == want_weights


def test_tiny_prompt_is_the_prefix_before_the_trained_turn_and_parses_back() -> None:
    tok = ByteTokenizer()
    renderer = TinyRenderer(tok)
    tokens, weights = renderer.build_supervised_example(CONVERSATION, LAST)
    prompt = renderer.build_generation_prompt(CONVERSATION[:-1]).to_ints()
    assert tokens[: len(prompt)] == prompt
    assert weights.index(1.0) == len(prompt)
    reply = tokens[len(prompt) :]
    assert renderer.parse_response(reply) == (Message(role="assistant", content="tac"), True)
    assert renderer.parse_response(tok.encode("ta")) == (
        Message(role="assistant", content="ta"),
        False,
    )
    assert renderer.get_stop_sequences() == [tok.eos_token_id]


def test_tiny_forged_specials_in_text_stay_bytes() -> None:
    tok = ByteTokenizer()
    msgs = [Message(role="user", content="hi"), Message(role="assistant", content="<|eos|>x")]
    tokens, weights = TinyRenderer(tok).build_supervised_example(msgs, ALL)
    assert tokens.count(tok.eos_token_id) == 2  # only the two real turn ends
    assert sum(weights) == len("<|eos|>x") + 1


def test_tiny_without_assistant_turn_is_an_error() -> None:
    with pytest.raises(ValueError, match="no assistant"):
        TinyRenderer(ByteTokenizer()).build_supervised_example(
            [Message(role="user", content="hi")], ALL
        )


# ----------------------------------------------------------------------------- HF


def hf_segment_encoder(tok: PreTrainedTokenizerFast) -> object:
    return lambda text: tok.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("mode", [ALL, LAST])
def test_hf_chatml_weights_token_by_token(
    chatml_tokenizer: PreTrainedTokenizerFast, mode: TrainOnWhat
) -> None:
    first = 1.0 if mode == ALL else 0.0
    # Loss on the content and <|im_end|>; not on the newline after it (never sampled).
    segments = [
        ("<|im_start|>", 0.0),
        ("system\nYou are helpful.", 0.0),
        ("<|im_end|>", 0.0),
        ("\n", 0.0),
        ("<|im_start|>", 0.0),
        ("user\nhello world", 0.0),
        ("<|im_end|>", 0.0),
        ("\n", 0.0),
        ("<|im_start|>", 0.0),
        ("assistant\n", 0.0),
        ("it is 4.", first),
        ("<|im_end|>", first),
        ("\n", 0.0),
        ("<|im_start|>", 0.0),
        ("user\nreverse cat", 0.0),
        ("<|im_end|>", 0.0),
        ("\n", 0.0),
        ("<|im_start|>", 0.0),
        ("assistant\n", 0.0),
        ("tac", 1.0),
        ("<|im_end|>", 1.0),
        ("\n", 0.0),
    ]
    want_tokens, want_weights = expected_from_segments(
        hf_segment_encoder(chatml_tokenizer), segments
    )
    renderer = HFChatTemplateRenderer(chatml_tokenizer)
    tokens, weights = renderer.build_supervised_example(CONVERSATION, mode)
    assert tokens == want_tokens
    assert weights == want_weights


def test_hf_chatml_prompt_stop_and_parse(chatml_tokenizer: PreTrainedTokenizerFast) -> None:
    renderer = HFChatTemplateRenderer(chatml_tokenizer)
    im_end = chatml_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert renderer.get_stop_sequences() == [chatml_tokenizer.eos_token_id, im_end]
    tokens, weights = renderer.build_supervised_example(CONVERSATION, LAST)
    prompt = renderer.build_generation_prompt(CONVERSATION[:-1]).to_ints()
    # RL samples from exactly the prefix SFT trained the reply after.
    assert tokens[: len(prompt)] == prompt
    assert weights.index(1.0) == len(prompt)
    reply = tokens[len(prompt) :]
    assert renderer.parse_response(reply) == (Message(role="assistant", content="tac"), True)
    cut = chatml_tokenizer.encode("ta", add_special_tokens=False)
    assert renderer.parse_response(cut) == (Message(role="assistant", content="ta"), False)


@pytest.mark.parametrize("mode", [ALL, LAST])
def test_hf_llama_style_default_system_prompt_and_eot(
    llama_tokenizer: PreTrainedTokenizerFast, mode: TrainOnWhat
) -> None:
    renderer = HFChatTemplateRenderer(llama_tokenizer)
    eot = llama_tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert renderer.get_stop_sequences() == [llama_tokenizer.eos_token_id, eot]
    msgs = CONVERSATION[1:]  # no system turn: the template injects its own
    first = 1.0 if mode == ALL else 0.0
    segments = [
        ("<|begin_of_text|>", 0.0),
        ("<|start_header_id|>", 0.0),
        ("system", 0.0),
        ("<|end_header_id|>", 0.0),
        ("\n\nYou are helpful.", 0.0),
        ("<|eot_id|>", 0.0),
        ("<|start_header_id|>", 0.0),
        ("user", 0.0),
        ("<|end_header_id|>", 0.0),
        ("\n\nhello world", 0.0),
        ("<|eot_id|>", 0.0),
        ("<|start_header_id|>", 0.0),
        ("assistant", 0.0),
        ("<|end_header_id|>", 0.0),
        ("\n\n", 0.0),
        ("it is 4.", first),
        ("<|eot_id|>", first),
        ("<|start_header_id|>", 0.0),
        ("user", 0.0),
        ("<|end_header_id|>", 0.0),
        ("\n\nreverse cat", 0.0),
        ("<|eot_id|>", 0.0),
        ("<|start_header_id|>", 0.0),
        ("assistant", 0.0),
        ("<|end_header_id|>", 0.0),
        ("\n\n", 0.0),
        ("tac", 1.0),
        ("<|eot_id|>", 1.0),
    ]
    want_tokens, want_weights = expected_from_segments(
        hf_segment_encoder(llama_tokenizer), segments
    )
    tokens, weights = renderer.build_supervised_example(msgs, mode)
    assert tokens == want_tokens
    assert weights == want_weights


def test_hf_template_that_rejects_a_turn_is_a_value_error(
    no_system_tokenizer: PreTrainedTokenizerFast,
) -> None:
    renderer = HFChatTemplateRenderer(no_system_tokenizer)
    end = no_system_tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end in renderer.get_stop_sequences()
    with pytest.raises(ValueError, match="System role not supported"):
        renderer.build_supervised_example(CONVERSATION, ALL)
    tokens, weights = renderer.build_supervised_example(CONVERSATION[1:], LAST)
    trained = [t for t, w in zip(tokens, weights, strict=True) if w]
    assert no_system_tokenizer.decode(trained) == "tac<end_of_turn>"


def test_hf_tokenizer_without_template_is_a_user_error(
    plain_tokenizer: PreTrainedTokenizerFast,
) -> None:
    with pytest.raises(UserError, match="no chat template"):
        HFChatTemplateRenderer(plain_tokenizer)


def test_get_renderer_picks_by_tokenizer(chatml_tokenizer: PreTrainedTokenizerFast) -> None:
    assert isinstance(get_renderer("tiny", ByteTokenizer()), TinyRenderer)
    # An HF tokenizer is used through the `Tokenizer` protocol's subset of its API.
    hf = cast(Tokenizer, chatml_tokenizer)
    assert isinstance(get_renderer("/models/x", hf), HFChatTemplateRenderer)
