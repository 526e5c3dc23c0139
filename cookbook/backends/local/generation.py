"""Continuous batching over a static KV cache, the token sampler, and prompt scoring.

`DecodeEngine` keeps up to `max_rows` sequences ("rows") in the slots of a preallocated
`SlotCache` and moves all of them one token forward per `step()`:

1. decode: one forward of `[rows, 1]` tokens, each row at its own position;
2. admit: waiting rows take the free slots; their prompts are prefilled (each distinct prompt
   once, its keys and values copied into every slot that samples from it);
3. sample the next token of every row at once (`sample_tokens`), with its logprob;
4. retire the rows that finished (stop token, stop string or token budget): the result goes to
   the request's callback, and the last running rows move into the freed slots, so the running
   rows are always slots `[0, rows)`.

A request submitted while others run joins at the next step; a row that finishes frees its slot
for a waiting one at once. Per token the host does no per-row work: each row's last step is known
when it is admitted, stop tokens are compared on the device, and generated tokens and logprobs
stay in device buffers until the row retires. The one exception is stop strings: a row with stop
strings decodes its new token incrementally (`StopStrings`), never the whole text.

Randomness is per row and independent of the batch: a row's uniforms are a counter-based stream
keyed by (seed, sample_index) (`rows_uniforms`, computed up front for all new rows at once), and
it picks each token by inverse-CDF sampling with one uniform per step. A seeded request therefore gets the same tokens whatever else runs
beside it (up to float rounding of the logits, which moves a draw only when it lands within
~1e-7 of a boundary).

On CUDA the decode forward of step 1 is replayed from CUDA graphs (`cuda_graphs.py`).

Shared prefixes: with a decoder that supports them (`TinySlotDecoder.shared_prefixes`), on CPU,
a run whose first rows come in groups of samples of one prompt (the RL pattern:
at least `_MIN_GROUP_ROWS` rows per distinct prompt) keeps every prompt admitted until the
engine is idle again once in the cache's `PrefixStore`, and decode steps read each prompt once
per group (`SlotCache.plan_decode_shared`). Other runs keep each row's whole sequence in its slot.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import torch

from cookbook.backends.local.models import LocalModel, target_logprobs

if TYPE_CHECKING:
    from cookbook.backends.local.cuda_graphs import GraphedDecode
    from cookbook.backends.local.kv_cache import PrefixPlan, SlotCache

StopReason = Literal["stop", "length"]

_LENGTH_HEADROOM = 128
"""New tokens a row's first cache allocation makes room for."""

_MIN_GROUP_ROWS = 2
"""A run whose first rows have this many rows per distinct prompt on average keeps each prompt
once (`SlotCache.prefixes`); below, each row's slot holds its whole sequence."""

_WIDE_VOCAB = 4096
"""From this many logits per row, `sample_tokens` takes the path with the fewest passes over
them; below, the one with the fewest ops."""

_U_MAX = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
"""The largest float32 below 1: `u * total` then stays below the CDF's last value, so the
inverse-CDF draw always lands on a token with mass (see `sample_tokens`)."""


@dataclass
class GenRow:
    """One sequence to generate."""

    prompt: list[int]
    max_new: int
    """Token budget (already capped by the context length)."""
    temperature: float
    """0 means greedy."""
    top_k: int
    """Keep the k most likely tokens (<= 0: all)."""
    top_p: float
    """Keep the smallest set of tokens with this much probability (1: all)."""
    stop_ids: frozenset[int]
    stop_strings: tuple[str, ...]
    seed: int
    """The request's seed; with `sample_index` it fixes the row's random draws."""
    sample_index: int
    """Which of the request's samples this row is."""


@dataclass(eq=False)
class GenResult:
    """A generated sequence: tokens, their logprobs under the model, and why it ended. The
    arrays are rows (views) of one array per retiring step: no per-token Python."""

    tokens_np: np.ndarray
    """int32 `[n]`."""
    logprobs_np: np.ndarray
    """float32 `[n]`."""
    stop_reason: StopReason

    @property
    def tokens(self) -> list[int]:
        """The tokens as a list."""
        return list(self.tokens_np.tolist())

    @property
    def logprobs(self) -> list[float]:
        """The logprobs as a list."""
        return list(self.logprobs_np.tolist())


def _empty_result() -> GenResult:
    return GenResult(np.zeros(0, np.int32), np.zeros(0, np.float32), "length")


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
"""SplitMix64's increment (2^64 / golden ratio)."""


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function, elementwise: a bijection of uint64 in which every input bit
    flips each output bit with probability ~1/2 (uint64 arithmetic wraps)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def rows_uniforms(seeds: Sequence[int], sample_indices: Sequence[int], n: int) -> np.ndarray:
    """`[rows, n]` float32 uniforms in [0, 1) (at most `_U_MAX`): row i's are those of sample
    `sample_indices[i]` of a request seeded with `seeds[i]`, whatever the other rows and `n`.

    Each row is a SplitMix64 stream (value j is `mix(key + j * golden)`) whose key hashes the
    seed and the sample index, all rows in a few vectorised passes: a numpy `Generator` per row
    cost ~30 us, 31 ms for the 1,024 rows of an RL batch of 128 groups of 8."""
    seed_R = np.array([seed % (1 << 64) for seed in seeds], dtype=np.uint64)
    index_R = np.array([index % (1 << 64) for index in sample_indices], dtype=np.uint64)
    key_R = _mix64(seed_R ^ _mix64(index_R + _GOLDEN))
    count_N = np.arange(1, n + 1, dtype=np.uint64) * _GOLDEN
    bits_R_N = _mix64(key_R[:, None] + count_N[None, :]) >> np.uint64(40)
    return bits_R_N.astype(np.float32) * np.float32(2.0**-24)  # 24 bits: exact in float32


def row_uniforms(seed: int, sample_index: int, n: int) -> np.ndarray:
    """The `n` uniforms of sample `sample_index` of a request seeded with `seed`."""
    return rows_uniforms([seed], [sample_index], n)[0]


# --- the sampler ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplerFlags:
    """Which kinds of rows a batch holds (the work for the others is skipped)."""

    any_greedy: bool = False
    all_greedy: bool = False
    scaled: bool = False
    """Some sampled row has a temperature other than 1."""
    filtered: bool = False
    """Some row restricts to top-k / top-p."""


def sample_tokens(
    logits_B_V: torch.Tensor,
    u_B_1: torch.Tensor,
    temperature_B_1: torch.Tensor,
    top_k_B_1: torch.Tensor,
    top_p_B_1: torch.Tensor,
    flags: SamplerFlags,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row, `[B, 1]`, and its logprob under the model (temperature 1, no
    filtering, as tinker reports it). Greedy where the temperature is 0; else the first token
    whose cumulative probability under softmax(logits / temperature), restricted to top-k /
    top-p, exceeds `u * total` (`u` in [0, 1), at most `_U_MAX`, so the draw always lands on a
    token with mass)."""
    logits_f = logits_B_V.float()
    if flags.all_greedy:
        token_B_1 = logits_f.argmax(dim=-1, keepdim=True)
        return token_B_1, logits_f.gather(1, token_B_1) - logits_f.logsumexp(-1, keepdim=True)
    wide = logits_f.shape[1] >= _WIDE_VOCAB and not flags.scaled and not flags.filtered
    if wide:
        # The fewest passes over many logits: an unnormalised CDF whose last value is the
        # softmax denominator (CPU cumsum accumulates in float64).
        max_B_1 = logits_f.amax(dim=-1, keepdim=True)
        cdf_B_V = (logits_f - max_B_1).exp_().cumsum_(dim=-1)
    else:  # the fewest ops
        logprobs_B_V = torch.log_softmax(logits_f, dim=-1)
        if flags.scaled:  # greedy rows divide by 1; their draw is replaced below
            divisor_B_1 = torch.where(temperature_B_1 > 0, temperature_B_1, 1.0)
            probs_B_V = torch.softmax(logits_f / divisor_B_1, dim=-1)
        else:
            probs_B_V = logprobs_B_V.exp()
        if flags.filtered:
            probs_B_V = _filter_top_k_top_p(probs_B_V, top_k_B_1, top_p_B_1)
        cdf_B_V = probs_B_V.cumsum(dim=-1)
    total_B_1 = cdf_B_V[:, -1:]
    token_B_1 = torch.searchsorted(cdf_B_V, u_B_1 * total_B_1, right=True)
    if flags.any_greedy:
        greedy_B_1 = logits_f.argmax(dim=-1, keepdim=True)
        token_B_1 = torch.where(temperature_B_1 <= 0, greedy_B_1, token_B_1)
    if wide:
        return token_B_1, logits_f.gather(1, token_B_1) - max_B_1 - total_B_1.log()
    return token_B_1, logprobs_B_V.gather(1, token_B_1)


def _filter_top_k_top_p(
    probs_B_V: torch.Tensor, top_k_B_1: torch.Tensor, top_p_B_1: torch.Tensor
) -> torch.Tensor:
    """`probs_B_V` with the tokens outside each row's top-k / top-p set to 0."""
    sorted_B_V, order_B_V = probs_B_V.sort(dim=-1, descending=True)
    rank_V = torch.arange(probs_B_V.shape[1], device=probs_B_V.device)
    keep_k = (top_k_B_1 <= 0) | (rank_V[None, :] < top_k_B_1)
    # Keep a token while the mass before it is below top_p (the first one always stays); rows
    # with top_p 1 keep everything, whatever the rounding of the cumulative sum.
    mass_before = sorted_B_V.cumsum(dim=-1) - sorted_B_V
    keep_p = (mass_before < top_p_B_1) | (top_p_B_1 >= 1.0)
    # Back to vocabulary order: the CDF is always taken in that order, so a row draws the same
    # token whether or not other rows of its batch filter.
    keep_B_V = torch.zeros_like(keep_k).scatter(1, order_B_V, keep_k & keep_p)
    return torch.where(keep_B_V, probs_B_V, torch.zeros_like(probs_B_V))


# --- stop strings -----------------------------------------------------------------------------


class StopStrings:
    """Watches one row's output for stop strings, decoding only what each new token adds.

    The text a token adds is `decode(tokens[prefix:])` minus `decode(tokens[prefix:read])`
    (decoding a few tokens with one of context keeps tokenizers that merge or strip spaces
    right); while it ends in an incomplete UTF-8 sequence it waits for the next token. Only the
    last `longest - 1` characters are kept to find a stop string that spans tokens."""

    def __init__(self, stops: tuple[str, ...], decode: Callable[[list[int]], str]) -> None:
        self._stops = stops
        self._decode = decode
        self._keep = max(len(s) for s in stops) - 1
        self._tokens: list[int] = []
        self._prefix = 0
        self._read = 0
        self._tail = ""

    def push(self, token: int) -> bool:
        """Add `token`; True when the output now contains a stop string."""
        self._tokens.append(token)
        before = self._decode(self._tokens[self._prefix : self._read])
        text = self._decode(self._tokens[self._prefix :])
        if len(text) <= len(before) or text.endswith("\ufffd"):
            return False
        window = self._tail + text[len(before) :]
        self._prefix, self._read = self._read, len(self._tokens)
        self._tail = window[-self._keep :] if self._keep else ""
        return any(s in window for s in self._stops)


# --- the engine -------------------------------------------------------------------------------


class SlotDecoder(Protocol):
    """A model's forward over a `SlotCache` (`TinySlotDecoder`, `HFSlotDecoder`)."""

    vocab_size: int
    shared_prefixes: bool
    """Whether its decode steps can read each group's prompt once (`SlotCache.prefixes`)."""

    def new_cache(self, slots: int, length: int) -> SlotCache:
        """An empty static cache of `slots` sequences of `length` positions."""
        ...

    def __call__(self, tokens_B_T: torch.Tensor, cache: SlotCache) -> torch.Tensor:
        """Logits `[B, V]` after the last of `T` new tokens per row, as `cache`'s plan says."""
        ...


def slot_decoder(model: LocalModel) -> SlotDecoder:
    """The decoder of `model`'s family."""
    from cookbook.backends.local.tiny_model import TinyGPT, TinySlotDecoder

    if isinstance(model.module, TinyGPT):
        return TinySlotDecoder(model.module)
    from cookbook.backends.local.hf_model import HFSlotDecoder

    return HFSlotDecoder(model.module, model.vocab_size)


@dataclass
class _Request:
    rows: Sequence[GenRow]
    on_done: Callable[[list[GenResult]], None]
    results: list[GenResult | None]
    pending: int


@dataclass
class _Group:
    """Rows admitted together that sample from one prompt (shared-prefix decoding)."""

    slot: int
    """Its prompt's slot in the cache's `PrefixStore`."""
    length: int
    """Tokens in the prompt."""
    live: int
    """Its rows still running."""


@dataclass
class _Running:
    """A row in a slot."""

    request: _Request
    index: int
    """Which of the request's rows it is."""
    slot: int
    start: int
    """The step that sampled its first token (token i is sampled at step start + i)."""
    offset: int
    """At step s it feeds the token at position offset + s."""
    stop_strings: StopStrings | None
    group: _Group | None = None
    done: bool = False

    @property
    def row(self) -> GenRow:
        """What it generates."""
        return self.request.rows[self.index]


@dataclass
class _Counts:
    """How many running rows are of each kind (sampler flags, stop checks)."""

    greedy: int = 0
    scaled: int = 0
    filtered: int = 0
    stop_ids: int = 0
    offsets: Counter[int] = field(default_factory=Counter)
    starts: Counter[int] = field(default_factory=Counter)

    def add(self, r: _Running, sign: int) -> None:
        row = r.row
        self.greedy += sign * (row.temperature <= 0)
        self.scaled += sign * (row.temperature > 0 and row.temperature != 1.0)
        self.filtered += sign * (row.top_k > 0 or row.top_p < 1.0)
        self.stop_ids += sign * bool(row.stop_ids)
        self.offsets[r.offset] += sign
        if self.offsets[r.offset] == 0:
            del self.offsets[r.offset]
        self.starts[r.start] += sign
        if self.starts[r.start] == 0:
            del self.starts[r.start]


class DecodeEngine:
    """Continuous batching of `GenRow`s on one model (see the module docstring). Not
    thread-safe: one thread submits and steps."""

    def __init__(
        self,
        model: LocalModel,
        decode: Callable[[list[int]], str],
        *,
        max_rows: int = 512,
        prefill_tokens: int = 1 << 14,
        cuda_graphs: bool | None = None,
    ) -> None:
        """`decode` turns tokens into text (stop strings); `prefill_tokens` bounds the padded
        tokens of one prefill forward; `cuda_graphs` (default: on CUDA) replays decode steps."""
        self.model = model
        self.max_rows = max_rows
        self._decode_text = decode
        self._decoder = slot_decoder(model)
        self._device = model.device
        self._prefill_tokens = prefill_tokens
        self._use_graphs = self._device.type == "cuda" if cuda_graphs is None else cuda_graphs
        self._graphs: GraphedDecode | None = None
        # Shared prefixes: the decoder attends to a group's prompt once (on CPU, not over CUDA
        # graphs), when the rows that start a run from idle are groups (`_sharing`, until idle).
        self._share = (
            self._decoder.shared_prefixes and self._device.type == "cpu" and not self._use_graphs
        )
        self._sharing = False
        self._groups: list[_Group] = []
        self._prefix_plan: PrefixPlan | None = None
        self._waiting: deque[tuple[_Request, int]] = deque()
        self._slots: list[_Running] = []
        self._ends: dict[int, list[_Running]] = {}
        self._counts = _Counts()
        self._watch: list[_Running] = []
        self._watch_index: torch.Tensor | None = None
        self._max_offset = 0
        self._step = 0
        self._cache: SlotCache | None = None
        self._state: dict[str, torch.Tensor] = {}
        self._views: dict[str, torch.Tensor] = {}
        """`_state` cut to the running rows."""
        self._flags = SamplerFlags()
        self.steps_run = 0
        """Decode steps run so far."""

    # --- public -------------------------------------------------------------------------------

    def submit(self, rows: Sequence[GenRow], on_done: Callable[[list[GenResult]], None]) -> None:
        """Queue `rows`; `on_done(results)` runs (on the stepping thread) once all finished."""
        request = _Request(rows, on_done, [None] * len(rows), len(rows))
        for i, row in enumerate(rows):
            if row.max_new > 0:
                self._waiting.append((request, i))
            else:
                self._deliver(request, i, _empty_result())
        if not rows:
            on_done([])

    @property
    def busy(self) -> bool:
        """Whether any row is running or waiting."""
        return bool(self._slots or self._waiting)

    @property
    def rows(self) -> int:
        """Rows running now."""
        return len(self._slots)

    @property
    def buffer_bytes(self) -> int:
        """Bytes held by the cache and the per-slot buffers."""
        tensors = list(self._state.values())
        if self._cache is not None:
            tensors += self._cache.keys_L + self._cache.values_L
        return sum(t.numel() * t.element_size() for t in tensors)

    @torch.inference_mode()
    def run(self) -> None:
        """Step until every submitted row has finished."""
        while self.busy:
            self.step_inference()

    def release(self) -> None:
        """Free the cache and buffers (only while idle; the next step allocates them again)."""
        if self.busy:
            raise RuntimeError("DecodeEngine.release: rows are still running")
        self._cache = None
        self._state = {}
        self._views = {}
        self._graphs = None

    @torch.inference_mode()
    def step(self) -> None:
        """Advance every running row by one token and admit waiting rows (module docstring)."""
        self.step_inference()

    def step_inference(self) -> None:
        """`step()` for a caller already in `torch.inference_mode()` (entering it costs as much
        as a few small ops; a loop of steps enters it once)."""
        t = self._step
        self._step += 1
        parts: list[torch.Tensor] = []
        if self._slots:
            parts.append(self._decode_running(t))
        admitted = self._admit(t)
        if admitted is not None:
            parts.append(admitted)
        if not parts:
            return
        self.steps_run += 1
        v = self._views
        logits_B_V = parts[0] if len(parts) == 1 else torch.cat(parts)
        index_B_1 = torch.rsub(v["start"], t)  # which of its tokens each row samples now
        token_B_1, logprob_B_1 = sample_tokens(
            logits_B_V,
            v["uniforms"].gather(1, index_B_1),
            v["temperature"],
            v["top_k"],
            v["top_p"],
            self._flags,
        )
        v["out_tokens"].scatter_(1, index_B_1, token_B_1)
        v["out_logprobs"].scatter_(1, index_B_1, logprob_B_1)
        v["token"].copy_(token_B_1)
        finished = self._finished(t, token_B_1)
        if finished:
            self._retire(finished, t)

    # --- decode -------------------------------------------------------------------------------

    def _decode_running(self, t: int) -> torch.Tensor:
        """Logits `[rows, V]` of one decode forward over the running rows at step `t`."""
        if self._sharing:
            return self._decode_shared(t)
        n = len(self._slots)
        read_length = self._max_offset + t + 1
        assert self._cache is not None
        if read_length > self._cache.length:
            self._grow_length(read_length)
            assert self._cache is not None
        if self._use_graphs:
            if self._graphs is None:
                from cookbook.backends.local.cuda_graphs import GraphedDecode

                max_position = min(self._cache.length, self.model.context_length) - 1
                self._graphs = GraphedDecode(
                    self._decoder, self._cache, self._state, max_position=max_position
                )
            return self._graphs.run(n, t, read_length)
        offsets = self._counts.offsets
        shared = next(iter(offsets)) + t if len(offsets) == 1 else None
        self._cache.plan_decode(n, self._views["offset"] + t, read_length, shared)
        return self._decoder(self._views["token"], self._cache)

    def _decode_shared(self, t: int) -> torch.Tensor:
        """`_decode_running` when the prompts are in the cache's `PrefixStore`: a row's slot
        holds its generated tokens only (the one fed at step t at index t - start - 1)."""
        c, v = self._counts, self._views
        read_length = t - min(c.starts)
        assert self._cache is not None and self._prefix_plan is not None
        if read_length > self._cache.length:
            self._grow_length(read_length)
            assert self._cache is not None
        position = next(iter(c.offsets)) + t if len(c.offsets) == 1 else None
        index = t - 1 - next(iter(c.starts)) if len(c.starts) == 1 else None
        self._cache.plan_decode_shared(
            self._prefix_plan,
            v["offset"] + t,
            position,
            torch.rsub(v["start"], t - 1),
            index,
            read_length,
        )
        return self._decoder(v["token"], self._cache)

    # --- admission ----------------------------------------------------------------------------

    def _admit(self, t: int) -> torch.Tensor | None:
        """Move waiting rows into free slots and prefill them; their first logits, or None."""
        free = self.max_rows - len(self._slots)
        if free <= 0 or not self._waiting:
            return None
        taken = [self._waiting.popleft() for _ in range(min(free, len(self._waiting)))]
        rows = [req.rows[i] for req, i in taken]
        first = len(self._slots)
        if not first:  # a run starts: groups of samples read their prompt once
            distinct = len({tuple(r.prompt) for r in rows})
            self._sharing = self._share and len(rows) >= _MIN_GROUP_ROWS * distinct
        k = len(rows)
        # The cache starts with room for the prompts and a few tokens and doubles as rows
        # grow (`_grow_length`): a budget of the whole context is rarely used.
        self._reserve(
            first + k,
            max(len(r.prompt) + min(r.max_new, _LENGTH_HEADROOM) for r in rows),
            max(r.max_new for r in rows),
            max(len(r.stop_ids) for r in rows),
        )
        logits_K_V, groups = self._prefill([r.prompt for r in rows], first)

        # Per-slot state of the new rows, built on the host and copied once.
        s, dev = self._state, self._device
        m = s["uniforms"].shape[1]
        uniforms = np.zeros((k, m), dtype=np.float32)
        sampled = [j for j, r in enumerate(rows) if r.temperature > 0]
        if sampled:  # greedy rows draw nothing (their uniforms stay 0, unused)
            n = max(rows[j].max_new for j in sampled)
            seeds = [rows[j].seed for j in sampled]
            uniforms[sampled, :n] = rows_uniforms(seeds, [rows[j].sample_index for j in sampled], n)
        stop_ids = np.full((k, s["stop_ids"].shape[1]), -1, dtype=np.int64)
        for j, r in enumerate(rows):
            if r.stop_ids:
                stop_ids[j, : len(r.stop_ids)] = sorted(r.stop_ids)
        new = slice(first, first + k)
        offsets = [len(r.prompt) - t - 1 for r in rows]

        def put(name: str, values: object, dtype: torch.dtype) -> None:
            host = torch.as_tensor(values, dtype=dtype).view(s[name][new].shape)
            s[name][new] = host.to(dev, non_blocking=True)

        put("offset", offsets, torch.long)
        put("start", [t] * k, torch.long)
        put("temperature", [r.temperature for r in rows], torch.float32)
        put("top_k", [r.top_k for r in rows], torch.long)
        put("top_p", [r.top_p for r in rows], torch.float32)
        put("uniforms", uniforms, torch.float32)
        put("stop_ids", stop_ids, torch.long)

        for j, ((req, i), r) in enumerate(zip(taken, rows, strict=True)):
            watch = StopStrings(r.stop_strings, self._decode_text) if r.stop_strings else None
            running = _Running(req, i, first + j, t, offsets[j], watch, groups[j])
            self._slots.append(running)
            self._ends.setdefault(t + r.max_new - 1, []).append(running)
            self._counts.add(running, +1)
            if watch is not None:
                self._watch.append(running)
        self._rows_changed()
        return logits_K_V

    def _prefill(
        self, prompts: list[list[int]], first: int
    ) -> tuple[torch.Tensor, list[_Group | None]]:
        """Prefill `prompts` into slots `first, first + 1, ...`; logits `[len(prompts), V]`
        after each, and each one's group (shared prefixes; else None). Each distinct prompt
        runs once, in forwards of at most `prefill_tokens` padded tokens."""
        assert self._cache is not None
        unique: dict[tuple[int, ...], int] = {}
        source = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
        prompts_U = list(unique)
        groups: list[_Group | None] = [None] * len(prompts)
        base = len(self._groups)
        if self._sharing:
            self._reserve_prefixes(base + len(prompts_U), max(len(p) for p in prompts_U))
            counts = Counter(source)
            new = [_Group(base + u, len(p), counts[u]) for u, p in enumerate(prompts_U)]
            self._groups += new
            groups = [new[u] for u in source]
        chunks: list[tuple[int, int]] = []
        start = 0
        while start < len(prompts_U):
            end, longest = start + 1, len(prompts_U[start])
            while end < len(prompts_U):
                longer = max(longest, len(prompts_U[end]))
                if (end - start + 1) * longer > self._prefill_tokens:
                    break
                longest, end = longer, end + 1
            chunks.append((start, end))
            start = end
        pad_id = self.model.pad_token_id
        dev = self._device
        out: torch.Tensor | None = None
        for lo, hi in chunks:
            chunk = prompts_U[lo:hi]
            t = max(len(p) for p in chunk)
            tokens_U_T = torch.full((len(chunk), t), pad_id, dtype=torch.long)
            for u, p in enumerate(chunk):
                tokens_U_T[u, t - len(p) :] = torch.tensor(p, dtype=torch.long)
            rows = [j for j, u in enumerate(source) if lo <= u < hi]
            slots_N = torch.tensor([first + j for j in rows], device=dev)
            sources = [source[j] - lo for j in rows]
            # Distinct prompts in order (one sample each): the forward's rows are the slots'.
            identity = sources == list(range(len(chunk)))
            source_N = None if identity else torch.tensor(sources, device=dev)
            pad_U = torch.tensor([t - len(p) for p in chunk], device=dev)
            if self._sharing:  # the prompts go to the prefix store only
                prefix_slots_U = torch.arange(base + lo, base + hi, device=dev)
                self._cache.plan_prefill(None, source_N, pad_U, t, prefix_slots_U)
            else:
                self._cache.plan_prefill(slots_N, source_N, pad_U, t)
            logits_U_V = self._decoder(tokens_U_T.to(dev), self._cache)
            logits_N_V = logits_U_V if source_N is None else logits_U_V.index_select(0, source_N)
            if len(chunks) == 1:
                return logits_N_V, groups
            if out is None:
                out = logits_N_V.new_empty((len(prompts), logits_N_V.shape[1]))
            out.index_copy_(0, slots_N - first, logits_N_V)
        assert out is not None
        return out, groups

    def _reserve_prefixes(self, groups: int, length: int) -> None:
        """Make the cache's `PrefixStore` hold `groups` prompts of `length` tokens."""
        from cookbook.backends.local.kv_cache import PrefixStore

        cache = self._cache
        assert cache is not None
        store = cache.prefixes
        if store is not None and groups <= store.slots and length <= store.length:
            return
        slots = max(store.slots if store else 0, min(cache.slots, _round_up_pow2(groups, 8)))
        new_length = max(store.length if store else 0, _round_up(length, 32))
        if store is None:
            width = cache.kv_heads * cache.head_dim
            store = PrefixStore(len(cache.keys_L), slots, new_length, width, cache.keys_L[0])
        else:
            store = store.resized(slots, new_length, len(self._groups))
        cache.prefixes = store

    def _reserve(self, rows: int, length: int, max_new: int, n_stop_ids: int) -> None:
        """Grow the cache and per-slot buffers to hold `rows` rows of `length` positions,
        `max_new` new tokens and `n_stop_ids` stop ids each (capacities round up)."""
        s, cache = self._state, self._cache
        have_rows = cache.slots if cache is not None else 0
        have_length = cache.length if cache is not None else 0
        have_new = s["uniforms"].shape[1] if s else 0
        have_stops = s["stop_ids"].shape[1] if s else 0
        if (
            rows <= have_rows
            and length <= have_length
            and max_new <= have_new
            and n_stop_ids <= have_stops
        ):
            return
        new_rows = max(have_rows, min(self.max_rows, _round_up_pow2(rows, 8)))
        new_length = max(have_length, _round_up(length, 32))
        new_new = max(have_new, _round_up(max_new, 32))
        new_stops = max(have_stops, n_stop_ids, 1)
        live = len(self._slots)
        if cache is None:
            self._cache = self._decoder.new_cache(new_rows, new_length)
        elif new_rows > have_rows or new_length > have_length:
            self._cache = cache.resized(new_rows, new_length, live, have_length)
        dev = self._device
        shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
            "token": ((new_rows, 1), torch.long),
            "offset": ((new_rows, 1), torch.long),
            "start": ((new_rows, 1), torch.long),
            "temperature": ((new_rows, 1), torch.float32),
            "top_k": ((new_rows, 1), torch.long),
            "top_p": ((new_rows, 1), torch.float32),
            "stop_ids": ((new_rows, new_stops), torch.long),
            "uniforms": ((new_rows, new_new), torch.float32),
            "out_tokens": ((new_rows, new_new), torch.long),
            "out_logprobs": ((new_rows, new_new), torch.float32),
        }
        grown: dict[str, torch.Tensor] = {}
        for name, (shape, dtype) in shapes.items():
            buf = torch.zeros(shape, dtype=dtype, device=dev)
            if name == "stop_ids":
                buf.fill_(-1)
            old = s.get(name)
            if old is not None and live:
                buf[(slice(0, live), *(slice(0, d) for d in old.shape[1:]))] = old[:live]
            grown[name] = buf
        self._state = grown
        self._graphs = None  # captured over the old buffers

    def _grow_length(self, need: int) -> None:
        """Make the cache hold `need` positions per row: at least double, at most what the
        running rows can reach."""
        cache = self._cache
        assert cache is not None
        cap = max(len(r.row.prompt) + r.row.max_new for r in self._slots)
        length = min(max(2 * cache.length, need), _round_up(cap, 32))
        self._cache = cache.resized(cache.slots, max(length, need), len(self._slots), cache.length)
        self._graphs = None  # captured over the old cache

    # --- finishing ----------------------------------------------------------------------------

    def _finished(self, t: int, token_B_1: torch.Tensor) -> dict[int, StopReason]:
        """Slots whose row ended at step `t`, and why."""
        reasons: dict[int, StopReason] = {}
        if self._counts.stop_ids:
            hit_B = (token_B_1 == self._views["stop_ids"]).any(dim=1)
            for slot in hit_B.nonzero()[:, 0].tolist():
                reasons[slot] = "stop"
        if self._watch:
            assert self._watch_index is not None
            tokens = token_B_1[:, 0].index_select(0, self._watch_index).tolist()
            for r, token in zip(self._watch, tokens, strict=True):
                assert r.stop_strings is not None
                if r.stop_strings.push(token) and r.slot not in reasons:
                    reasons[r.slot] = "stop"
        for r in self._ends.pop(t, []):
            if not r.done:
                reasons.setdefault(r.slot, "length")
        return reasons

    def _retire(self, reasons: dict[int, StopReason], t: int) -> None:
        """Deliver the finished rows' results and compact the running rows into `[0, rows)`."""
        slots = sorted(reasons)
        lengths = [t - self._slots[slot].start + 1 for slot in slots]
        index = torch.tensor(slots, device=self._device)
        upto = max(lengths)
        tokens_R_N = self._state["out_tokens"][index, :upto].to(torch.int32).cpu().numpy()
        logprobs_R_N = self._state["out_logprobs"][index, :upto].cpu().numpy()
        for j, (slot, n_tokens) in enumerate(zip(slots, lengths, strict=True)):
            r = self._slots[slot]
            r.done = True
            self._counts.add(r, -1)
            if r.group is not None:
                r.group.live -= 1
            result = GenResult(tokens_R_N[j, :n_tokens], logprobs_R_N[j, :n_tokens], reasons[slot])
            self._deliver(r.request, r.index, result)

        n = len(self._slots)
        kept = n - len(slots)
        gone = set(slots)
        holes = [slot for slot in slots if slot < kept]
        movers = [slot for slot in range(kept, n) if slot not in gone]
        if holes:
            dest = torch.tensor(holes, device=self._device)
            source = torch.tensor(movers, device=self._device)
            for buf in self._state.values():
                buf[dest] = buf[source]
            assert self._cache is not None
            self._cache.move_rows(dest, source, min(self._cache.length, self._max_offset + t + 2))
            for hole, mover in zip(holes, movers, strict=True):
                self._slots[hole] = self._slots[mover]
                self._slots[hole].slot = hole
        del self._slots[kept:]
        self._watch = [r for r in self._watch if not r.done]
        if not self._slots:
            # Rows that stopped before their last allowed step are still listed there; idle,
            # they would stay (with their requests and callbacks) until this engine's step
            # count reached them, and a snapshot's engine may never run again.
            self._ends.clear()
        if self._sharing:
            self._compact_groups()
        self._rows_changed()

    def _compact_groups(self) -> None:
        """Drop the groups whose rows all finished; the last ones move into their slots."""
        n = len(self._groups)
        gone = [g.slot for g in self._groups if g.live == 0]
        if not gone:
            return
        kept = n - len(gone)
        holes = [slot for slot in gone if slot < kept]
        movers = [slot for slot in range(kept, n) if self._groups[slot].live > 0]
        if holes:
            assert self._cache is not None and self._cache.prefixes is not None
            dest = torch.tensor(holes, device=self._device)
            source = torch.tensor(movers, device=self._device)
            self._cache.prefixes.move(dest, source)
            for hole, mover in zip(holes, movers, strict=True):
                self._groups[hole] = self._groups[mover]
                self._groups[hole].slot = hole
        del self._groups[kept:]

    def _rows_changed(self) -> None:
        """Recompute what depends on the set of running rows (not on the step)."""
        n = len(self._slots)
        c = self._counts
        self._views = {name: buf[:n] for name, buf in self._state.items()}
        self._flags = SamplerFlags(
            any_greedy=c.greedy > 0,
            all_greedy=c.greedy == n,
            scaled=c.scaled > 0,
            filtered=c.filtered > 0,
        )
        self._max_offset = max(c.offsets) if c.offsets else 0
        self._watch_index = (
            torch.tensor([r.slot for r in self._watch], device=self._device)
            if self._watch
            else None
        )
        self._prefix_plan = self._plan_prefixes() if self._sharing and self._slots else None

    def _plan_prefixes(self) -> PrefixPlan:
        """The shared-prefix layout of the running rows: which rows form each group."""
        from cookbook.backends.local.kv_cache import PrefixPlan

        groups, n = self._groups, len(self._slots)
        members: list[list[int]] = [[] for _ in groups]
        for r in self._slots:
            assert r.group is not None
            members[r.group.slot].append(r.slot)
        width = max(len(m) for m in members)
        grid: list[int] = []
        cells = [0] * n
        for g, rows in enumerate(members):
            for j, slot in enumerate(rows):
                cells[slot] = g * width + j
            grid += rows + [rows[0]] * (width - len(rows))
        identity = grid == list(range(n))  # groups of one size, each in consecutive slots
        lengths = [g.length for g in groups]
        longest = max(lengths)
        dev = self._device
        assert self._cache is not None
        dtype = self._cache.keys_L[0].dtype
        beyond = torch.arange(longest, device=dev) >= torch.tensor(lengths, device=dev)[:, None]
        mask = torch.zeros((), device=dev, dtype=dtype).masked_fill(beyond, -float("inf"))
        return PrefixPlan(
            groups=len(groups),
            length=longest,
            grid_rows=None if identity else torch.tensor(grid, device=dev),
            width=width,
            row_cells=None if identity else torch.tensor(cells, device=dev),
            prefix_mask=mask[:, None, None, :],
        )

    def _deliver(self, request: _Request, index: int, result: GenResult) -> None:
        request.results[index] = result
        request.pending -= 1
        if request.pending == 0:
            request.on_done([r for r in request.results if r is not None])


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _round_up_pow2(n: int, minimum: int) -> int:
    size = minimum
    while size < n:
        size *= 2
    return size


def generate(
    model: LocalModel,
    rows: Sequence[GenRow],
    decode: Callable[[list[int]], str],
    max_rows: int = 512,
) -> list[GenResult]:
    """Generate all `rows` (at most `max_rows` at a time) with a fresh `DecodeEngine`."""
    engine = DecodeEngine(model, decode, max_rows=max_rows)
    out: list[GenResult] = []
    engine.submit(rows, out.extend)
    engine.run()
    return out


@torch.inference_mode()
def score_prompts(
    model: LocalModel, prompts: Sequence[list[int]], max_logit_elements: int = 1 << 27
) -> list[list[float | None]]:
    """log p(token i | tokens < i) for every prompt position (None for the first token), from a
    plain forward in chunks of at most `max_logit_elements` logits."""
    out: list[list[float | None]] = []
    start = 0
    while start < len(prompts):
        end = start + 1
        longest = len(prompts[start])
        while end < len(prompts):
            longest_next = max(longest, len(prompts[end]))
            if (end - start + 1) * longest_next * model.vocab_size > max_logit_elements:
                break
            longest = longest_next
            end += 1
        chunk = prompts[start:end]
        tokens_B_T = torch.full((len(chunk), longest), model.pad_token_id, dtype=torch.long)
        for b, p in enumerate(chunk):
            tokens_B_T[b, : len(p)] = torch.tensor(p, dtype=torch.long)
        tokens_B_T = tokens_B_T.to(model.device)
        logits = model.logits(tokens_B_T)
        lp_B_T = target_logprobs(logits[:, :-1], tokens_B_T[:, 1:]).cpu().tolist()
        for b, p in enumerate(chunk):
            first: list[float | None] = [None]
            out.append(first + lp_B_T[b][: len(p) - 1])
        start = end
    return out
