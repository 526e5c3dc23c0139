"""The continuous-batching engine against an independent reference: every row, whatever joins or
leaves the batch around it, gets the tokens a plain no-cache loop draws with the same uniforms."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from backend_helpers import ce_datum, random_tokens
from tinker import types

from cookbook.backends.local import generation
from cookbook.backends.local.generation import (
    DecodeEngine,
    GenResult,
    GenRow,
    SamplerFlags,
    StopReason,
    StopStrings,
    row_uniforms,
    rows_uniforms,
    sample_tokens,
)
from cookbook.backends.local.kv_cache import SlotCache
from cookbook.backends.local.models import LocalModel
from cookbook.backends.local.service import LocalServiceClient
from cookbook.tokenizers import ByteTokenizer

TOK = ByteTokenizer()
EOS = TOK.eos_token_id


@pytest.fixture(scope="module")
def model() -> LocalModel:
    """The tiny model with a random output head (the fresh one is all zeros: uniform)."""
    sampler = LocalServiceClient(device="cpu").create_sampling_client(base_model="tiny", seed=3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        head = sampler.model.module.head.weight
        head.copy_(torch.randn(head.shape, generator=gen) * 0.4)
    return sampler.model


def reference(model: LocalModel, row: GenRow) -> GenResult:
    """What `row` must produce: the plain forward over the whole sequence for every token, and
    the sampling rule written out token by token in float64."""
    u = np.minimum(row_uniforms(row.seed, row.sample_index, row.max_new).astype(np.float32), 1.0)
    tokens: list[int] = []
    logprobs: list[float] = []
    for step in range(row.max_new):
        with torch.no_grad():
            logits = model.logits(torch.tensor([row.prompt + tokens]))[0, -1].double().numpy()
        logp = logits - np.logaddexp.reduce(logits)
        if row.temperature <= 0:
            token = int(np.argmax(logits))
        else:
            scaled = logits / row.temperature
            p = np.exp(scaled - np.logaddexp.reduce(scaled))
            keep = np.zeros_like(p, dtype=bool)
            mass = 0.0
            for rank, t in enumerate(np.argsort(-p, kind="stable")):
                if (row.top_k > 0 and rank >= row.top_k) or (row.top_p < 1 and mass >= row.top_p):
                    break
                keep[t] = True
                mass += p[t]
            cdf = np.cumsum(np.where(keep, p, 0.0))
            token = int(np.searchsorted(cdf, u[step] * cdf[-1], side="right"))
        tokens.append(token)
        logprobs.append(float(logp[token]))
        if token in row.stop_ids or any(s in TOK.decode(tokens) for s in row.stop_strings):
            return _result(tokens, logprobs, "stop")
    return _result(tokens, logprobs, "length")


def _result(tokens: list[int], logprobs: list[float], reason: StopReason) -> GenResult:
    return GenResult(np.array(tokens, np.int32), np.array(logprobs, np.float32), reason)


def _row(prompt: str, max_new: int, seed: int, j: int = 0, **kw: object) -> GenRow:
    params: dict[str, object] = {
        "temperature": 1.0,
        "top_k": 0,
        "top_p": 1.0,
        "stop_ids": frozenset(),
        "stop_strings": (),
    }
    params.update(kw)
    return GenRow(TOK.encode(prompt), max_new, seed=seed, sample_index=j, **params)  # type: ignore[arg-type]  # the dict holds the other fields


ROWS = [
    _row("a", 12, 1),
    _row("the quick brown fox", 7, 2, temperature=0.0),
    _row("the quick brown fox", 9, 2, j=1, temperature=0.7, top_k=5),
    _row("hello", 15, 3, temperature=1.5, top_p=0.6, stop_ids=frozenset({EOS, ord("e")})),
    _row("xy", 1, 4),
    _row("one two three four five six seven", 10, 5, stop_strings=("ab", "e ")),
    _row("zz", 20, 6, temperature=2.0, stop_ids=frozenset({ord("a"), ord("b"), ord("c")})),
    _row("q", 5, 7, temperature=0.0, stop_ids=frozenset({EOS})),
]


def _check(model: LocalModel, rows: list[GenRow], got: list[GenResult]) -> None:
    for row, result in zip(rows, got, strict=True):
        want = reference(model, row)
        assert result.tokens == want.tokens, row
        assert result.stop_reason == want.stop_reason, row
        np.testing.assert_allclose(result.logprobs, want.logprobs, atol=1e-4)


def _run_in_waves(
    engine: DecodeEngine, waves: list[tuple[int, list[GenRow]]]
) -> dict[int, list[GenResult]]:
    """Submit each wave of rows after that many steps; results by wave."""
    out: dict[int, list[GenResult]] = {}
    step = 0
    pending = sorted(waves, key=lambda w: w[0])
    while pending or engine.busy:
        while pending and pending[0][0] <= step:
            at, rows = pending.pop(0)
            engine.submit(rows, lambda results, at=at: out.__setitem__(at, results))
        engine.step()
        step += 1
    return out


@pytest.mark.parametrize("graphs", [False, True], ids=["eager", "graph-buckets"])
def test_rows_joining_and_leaving_get_the_reference_tokens(
    model: LocalModel, graphs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # max_rows 5 < 8 rows: some wait for a slot; later waves join a running batch, one of
    # them with a longer prompt than the cache holds; the cache starts with room for 2 new
    # tokens per row, so it also grows while rows decode.
    monkeypatch.setattr(generation, "_LENGTH_HEADROOM", 2)
    long_row = _row("a much longer prompt than any before it, to grow the cache", 40, 8)
    waves = [(0, ROWS[:5]), (3, ROWS[5:]), (4, [long_row]), (30, ROWS[:2])]
    engine = DecodeEngine(model, TOK.decode, max_rows=5, cuda_graphs=graphs)
    out = _run_in_waves(engine, waves)
    for at, rows in waves:
        _check(model, rows, out[at])
    assert not engine.busy and engine.rows == 0
    assert engine.buffer_bytes > 0  # kept for the next requests


def test_a_row_gets_the_same_tokens_alone_or_in_a_crowd(model: LocalModel) -> None:
    alone = {}
    for i, row in enumerate(ROWS):
        engine = DecodeEngine(model, TOK.decode)
        engine.submit([row], lambda r, i=i: alone.__setitem__(i, r[0]))
        engine.run()
    crowd = DecodeEngine(model, TOK.decode, max_rows=3)
    for _ in range(2):  # the second time on buffers allocated again after release()
        got: list[GenResult] = []
        crowd.submit(ROWS[::-1], got.extend)
        crowd.run()
        for i, result in enumerate(got[::-1]):
            assert result.tokens == alone[i].tokens
            assert result.stop_reason == alone[i].stop_reason
        crowd.release()
        assert crowd.buffer_bytes == 0


def test_a_prompt_shared_by_many_samples_is_prefilled_once(
    model: LocalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefills: list[int] = []
    plan = SlotCache.plan_prefill

    def counting(cache: SlotCache, *args: torch.Tensor, **kw: int) -> torch.Tensor:
        prefills.append(len(args[2]))  # prompts in this forward
        return plan(cache, *args, **kw)

    monkeypatch.setattr(SlotCache, "plan_prefill", counting)
    rows = [_row("shared prompt", 6, 11, j=j) for j in range(6)]
    engine = DecodeEngine(model, TOK.decode)
    got: list[GenResult] = []
    engine.submit(rows, got.extend)
    engine.run()
    assert prefills == [1]
    _check(model, rows, got)
    assert len({tuple(r.tokens) for r in got}) > 1  # the samples differ


def test_groups_reading_their_prompt_once_get_the_reference_tokens(
    model: LocalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Groups of samples of one prompt each, of different prompt lengths and budgets: whole
    # groups finish mid-run (the last group's prompt moves into the freed prefix slot), rows
    # wait for slots and join later, one group's prompt is longer than the prefix store holds,
    # and the cache's length grows while rows decode.
    monkeypatch.setattr(generation, "_LENGTH_HEADROOM", 2)
    plans: list[str] = []
    for name in ("plan_decode", "plan_decode_shared"):
        method = getattr(SlotCache, name)

        def recording(cache: SlotCache, *args: object, _m: object = method, _n: str = name) -> None:
            plans.append(_n)
            _m(cache, *args)  # type: ignore[operator]  # the method recorded

        monkeypatch.setattr(SlotCache, name, recording)

    def group(prompt: str, seed: int, budgets: list[int], **kw: object) -> list[GenRow]:
        return [_row(prompt, m, seed, j=j, **kw) for j, m in enumerate(budgets)]

    first = (
        group("to be or", 21, [3, 3, 3])
        + group("a longer prompt, here", 22, [9, 14, 6, 11], temperature=0.8)
        + group("q", 23, [12, 12, 12])
        + group("the longest prompt of them all, far beyond the first ones", 24, [8, 5])
    )
    later = group("late", 25, [7, 4, 9], top_k=5)
    waves = [(0, first), (2, later)]
    engine = DecodeEngine(model, TOK.decode, max_rows=10)
    out = _run_in_waves(engine, waves)
    for at, rows in waves:
        _check(model, rows, out[at])
    assert plans and set(plans) == {"plan_decode_shared"}
    # A run that starts with distinct prompts keeps each row's prompt in its slot.
    plans.clear()
    got: list[GenResult] = []
    engine.submit(ROWS, got.extend)
    engine.run()
    _check(model, ROWS, got)
    assert plans and set(plans) == {"plan_decode"}


def test_zero_budget_and_empty_requests_finish_at_once(model: LocalModel) -> None:
    engine = DecodeEngine(model, TOK.decode)
    got: list[list[GenResult]] = []
    engine.submit([_row("a", 0, 1)], got.append)
    engine.submit([], got.append)
    assert [[(r.tokens, r.logprobs, r.stop_reason) for r in rs] for rs in got] == [
        [([], [], "length")],
        [],
    ]
    assert not engine.busy


@pytest.mark.parametrize("vocab", [300, 5000], ids=["narrow-path", "wide-path"])
def test_sample_tokens_follows_the_inverse_cdf_rule(vocab: int) -> None:
    gen = torch.Generator().manual_seed(vocab)
    logits = torch.randn(8, vocab, generator=gen) * 4
    u = torch.rand(8, 1, generator=gen)
    temperature = torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0], [1.0], [1.0], [1.0]])
    zeros = torch.zeros(8, 1)
    token, logprob = sample_tokens(
        logits, u, temperature, zeros.long(), zeros + 1, SamplerFlags(any_greedy=True)
    )
    cdf = torch.softmax(logits.double(), -1).cumsum(-1)
    want = torch.searchsorted(cdf, u.double() * cdf[:, -1:], right=True)
    want = torch.where(temperature == 0, logits.argmax(-1, keepdim=True), want)
    assert torch.equal(token, want)
    lse = logits.double().logsumexp(-1, keepdim=True)
    np.testing.assert_allclose(logprob, logits.double().gather(1, want) - lse, atol=1e-5)


def _watch(stops: tuple[str, ...], decode: Callable[[list[int]], str], text: str) -> int | None:
    """Byte index (1-based count of tokens) at which a stop string is seen, or None."""
    watch = StopStrings(stops, decode)
    for i, token in enumerate(text.encode()):
        if watch.push(token):
            return i + 1
    return None


def test_stop_strings_are_found_across_tokens_and_multibyte_characters() -> None:
    assert _watch(("fox j",), TOK.decode, "the quick brown fox jumps") == len(
        b"the quick brown fox j"
    )
    # "é" is two bytes: the stop string is complete only with the second one.
    assert _watch(("café",), TOK.decode, "un café noir") == len("un café".encode())
    assert _watch(("é!",), TOK.decode, "olé olé!") == len("olé olé!".encode())
    assert _watch(("zz",), TOK.decode, "no stop here") is None
    assert _watch(("a", "quick"), TOK.decode, "the quick") == len(b"the quick")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_replays_match_eager_decoding() -> None:
    sampler = LocalServiceClient(device="cuda").create_sampling_client(base_model="tiny", seed=3)
    with torch.no_grad():
        head = sampler.model.module.head.weight
        head.copy_(torch.randn(head.shape, generator=torch.Generator().manual_seed(0)).cuda())
    results = {}
    for graphs in (False, True):
        engine = DecodeEngine(sampler.model, TOK.decode, max_rows=5, cuda_graphs=graphs)
        results[graphs] = _run_in_waves(engine, [(0, ROWS[:5]), (3, ROWS[5:])])
        if graphs:
            assert engine._graphs is not None and engine._graphs.captures > 0
    for at in (0, 3):
        for eager, graphed in zip(results[False][at], results[True][at], strict=True):
            assert graphed.tokens == eager.tokens
            np.testing.assert_allclose(graphed.logprobs, eager.logprobs, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_capture_while_other_threads_use_the_gpu() -> None:
    """What an RL run does on a GPU: each step's snapshot sampler captures its decode graphs on
    its own thread while the previous step's sampler still decodes and the trainer updates (a
    capture on the process's shared capture stream, or one entered with a device-wide
    synchronisation, was invalidated by the others: `cookbook rl --env tictactoe` stopped at
    step 9 on an H200)."""
    trainer = LocalServiceClient(device="cuda").create_lora_training_client("tiny", seed=0)
    rng = np.random.default_rng(0)
    data = [ce_datum(random_tokens(rng, 24)) for _ in range(32)]
    prompts = [types.ModelInput.from_ints(TOK.encode("x" * n)) for n in (3, 17, 40, 90)]
    pending, samplers = [], []
    for step in range(6):
        sampler = trainer.save_weights_and_get_sampling_client()
        samplers.append(sampler)
        pending += [
            (
                70 - 10 * i,
                sampler.sample(
                    p, 8, types.SamplingParams(max_tokens=70 - 10 * i, seed=step, stop=[])
                ),
            )
            for i, p in enumerate(prompts)
        ]
        trainer.forward_backward(data, "cross_entropy")
        trainer.optim_step(types.AdamParams(learning_rate=1e-3))
    for length, future in pending:
        for sequence in future.result().sequences:
            assert len(sequence.tokens) == length
            assert sequence.logprobs is not None and np.isfinite(sequence.logprobs).all()
    captured = [s._engine._graphs.captures for s in samplers if s._engine and s._engine._graphs]
    assert len(captured) == len(samplers) and min(captured) > 0


def test_slot_cache_stores_each_position_where_decoding_reads_it() -> None:
    """Keys land at their position of their slot, whether written by a prefill of padded
    prompts (distinct ones with no copy, or one shared by several slots), a decode at a
    position per row or at one shared position; compaction and resizing keep them."""
    heads, dim = 2, 3
    cache = SlotCache(1, 4, 8, heads, dim, torch.float32, torch.device("cpu"))

    def keys(n: int, t: int, base: float) -> torch.Tensor:
        return base + torch.arange(n * t * heads * dim, dtype=torch.float32).view(n, t, heads, dim)

    def stored(slot: int, upto: int) -> torch.Tensor:
        return cache.keys_L[0][slot, :upto].view(upto, heads, dim)

    # Two distinct prompts of 2 and 3 tokens, left-padded to 3, into slots 0 and 1.
    prompt_k = keys(2, 3, 0.0)
    cache.plan_prefill(torch.tensor([0, 1]), None, torch.tensor([1, 0]), 3)
    cache.update(0, prompt_k, -prompt_k)
    step_k = keys(2, 1, 1000.0)
    cache.plan_decode(2, torch.tensor([[2], [3]]), 4)
    read_k, read_v = cache.update(0, step_k, -step_k)
    assert read_k.shape == (2, 4, heads, dim)
    want_0 = torch.cat([prompt_k[0, 1:], step_k[0]])  # the padding column is not stored
    want_1 = torch.cat([prompt_k[1], step_k[1]])
    assert torch.equal(read_k[0, :3], want_0) and torch.equal(stored(0, 3), want_0)
    assert torch.equal(read_k[1], want_1) and torch.equal(read_v[1], -want_1)
    shared_k = keys(2, 1, 2000.0)
    cache.plan_decode(2, torch.tensor([[4], [4]]), 5, position=4)
    read_k, _ = cache.update(0, shared_k, -shared_k)
    assert torch.equal(read_k[:, 4], shared_k[:, 0])

    # A shared prompt: slots 2 and 3 both take prompt 0 of the forward.
    cache.plan_prefill(torch.tensor([2, 3]), torch.tensor([0, 0]), torch.tensor([0]), 2)
    one_k = keys(1, 2, 3000.0)
    cache.update(0, one_k, -one_k)
    assert torch.equal(stored(2, 2), one_k[0]) and torch.equal(stored(3, 2), one_k[0])

    cache.move_rows(torch.tensor([0]), torch.tensor([1]), 5)
    assert torch.equal(stored(0, 5), stored(1, 5))
    grown = cache.resized(8, 16, 4, 5)
    assert (grown.slots, grown.length) == (8, 16)
    assert torch.equal(grown.keys_L[0][:4, :5], cache.keys_L[0][:, :5])
    assert torch.equal(grown.values_L[0][:4, :5], cache.values_L[0][:, :5])


def test_uniforms_are_a_stream_per_row_whatever_the_batch() -> None:
    seeds = [7, 7, 7, 8, -3, 2**70]
    indices = [0, 1, 2, 0, 5, 1]
    batch = rows_uniforms(seeds, indices, 50)
    assert batch.dtype == np.float32 and batch.shape == (6, 50)
    # A row's draws do not depend on the rows beside it or on how many are drawn.
    for i, (seed, index) in enumerate(zip(seeds, indices, strict=True)):
        assert np.array_equal(batch[i], row_uniforms(seed, index, 50))
        assert np.array_equal(batch[i, :20], rows_uniforms([seed], [index], 20)[0])
    assert len({row.tobytes() for row in batch}) == 6  # every (seed, index) its own stream
    # Uniform on [0, 1) (deterministic: fixed seeds), never 1, so a draw lands on mass.
    many = rows_uniforms(list(range(256)), [3] * 256, 256).ravel()
    assert many.min() >= 0.0 and many.max() < 1.0
    counts = np.histogram(many, bins=16, range=(0.0, 1.0))[0]
    assert np.all(np.abs(counts / (many.size / 16) - 1.0) < 0.05)
    assert abs(np.corrcoef(many[:-1], many[1:])[0, 1]) < 0.01
