"""Batched generation with a KV cache, and the token sampler.

One call generates every row of a batch together: identical prompts are prefilled once and their
cache rows repeated for each sample; prompts are left-padded so all rows write the same cache
position at each step; each row has its own positions, stop tokens, stop strings, token budget,
temperature, top-k and top-p.

Randomness is per row and independent of the batch: a row draws its uniforms up front from
`numpy.random.default_rng([seed, sample_index])` and picks each token by inverse-CDF sampling
with one uniform per step. A seeded request therefore gets the same tokens whatever else shares
its batch (up to float rounding of the logits, which moves a draw only when it lands within
~1e-7 of a boundary).

The decode step (`_decode_step`) takes fixed-shape tensors (`[B, 1]` tokens and positions, a
`[B, S_max]` key mask, the cache), which is the shape a static cache and a captured CUDA graph
need later. Finished rows keep running until the whole batch is done; their outputs are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from cookbook.backends.local.models import GenerationCache, LocalModel, target_logprobs

StopReason = Literal["stop", "length"]


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


@dataclass
class GenResult:
    """A generated sequence: tokens, their logprobs under the model, and why it ended."""

    tokens: list[int]
    logprobs: list[float]
    stop_reason: StopReason


def row_uniforms(seed: int, sample_index: int, n: int) -> np.ndarray:
    """The `n` uniforms of sample `sample_index` of a request seeded with `seed`."""
    rng = np.random.default_rng([seed % (1 << 64), sample_index])
    return rng.random(n)


def sample_tokens(
    logits_B_V: torch.Tensor,
    temperature_B: torch.Tensor,
    top_k_B: torch.Tensor,
    top_p_B: torch.Tensor,
    u_B: torch.Tensor,
    *,
    filtered: bool,
    any_greedy: bool,
) -> torch.Tensor:
    """One token per row: greedy where temperature is 0, else inverse-CDF sampling from
    softmax(logits / temperature) restricted to top-k / top-p. `filtered` / `any_greedy` say
    whether any row restricts / is greedy (the work for them is skipped otherwise)."""
    if any_greedy:
        greedy_B = temperature_B <= 0
        temperature_B = torch.where(greedy_B, torch.ones_like(temperature_B), temperature_B)
    probs_B_V = torch.softmax(logits_B_V / temperature_B[:, None], dim=-1)
    if filtered:
        sorted_B_V, order_B_V = probs_B_V.sort(dim=-1, descending=True)
        rank_V = torch.arange(probs_B_V.shape[1], device=probs_B_V.device)
        keep_k = (top_k_B[:, None] <= 0) | (rank_V[None, :] < top_k_B[:, None])
        # Keep a token while the mass before it is below top_p (the first one always stays);
        # rows with top_p 1 keep everything, whatever the rounding of the cumulative sum.
        mass_before = sorted_B_V.cumsum(dim=-1) - sorted_B_V
        keep_p = (mass_before < top_p_B[:, None]) | (top_p_B[:, None] >= 1.0)
        # Back to vocabulary order: the CDF is always taken in that order, so a row draws the
        # same token whether or not other rows of its batch filter.
        keep_B_V = torch.zeros_like(keep_k).scatter(1, order_B_V, keep_k & keep_p)
        probs_B_V = torch.where(keep_B_V, probs_B_V, torch.zeros_like(probs_B_V))
    cdf_B_V = probs_B_V.cumsum(dim=-1)
    total_B = cdf_B_V[:, -1:]
    idx_B = torch.searchsorted(cdf_B_V, u_B[:, None] * total_B, right=True)
    # Rounding can put the draw at the very top: clamp to the last token with mass.
    last_B = (cdf_B_V < total_B).sum(dim=-1, keepdim=True)
    idx_B = torch.minimum(idx_B, last_B)[:, 0]
    if any_greedy:
        return torch.where(greedy_B, logits_B_V.argmax(dim=-1), idx_B)
    return idx_B


def _decode_step(
    model: LocalModel,
    tokens_B_1: torch.Tensor,
    positions_B_1: torch.Tensor,
    key_mask_B_S: torch.Tensor,
    cache: GenerationCache,
) -> torch.Tensor:
    """Logits `[B, V]` for one new token per row."""
    return model.logits(tokens_B_1, positions_B_1, key_mask_B_S, cache, last_only=True)[:, -1]


def _stop_check(
    row: GenRow, generated: list[int], decode: Callable[[list[int]], str]
) -> StopReason | None:
    if generated[-1] in row.stop_ids:
        return "stop"
    if row.stop_strings:
        # A stop string of k characters spans at most ~4k tokens (byte-level pieces).
        tail = decode(generated[-(4 * max(len(s) for s in row.stop_strings) + 4) :])
        if any(s in tail for s in row.stop_strings):
            return "stop"
    if len(generated) >= row.max_new:
        return "length"
    return None


@torch.inference_mode()
def generate(
    model: LocalModel, rows: Sequence[GenRow], decode: Callable[[list[int]], str]
) -> list[GenResult]:
    """Generate all `rows` in one batch (see the module docstring)."""
    device = model.device
    results = [GenResult([], [], "length") for _ in rows]
    live = [i for i, r in enumerate(rows) if r.max_new > 0]
    if not live:
        return results
    rows = [rows[i] for i in live]

    # Prefill each distinct prompt once, left-padded to the longest.
    unique: dict[tuple[int, ...], int] = {}
    row_to_unique = [unique.setdefault(tuple(r.prompt), len(unique)) for r in rows]
    p_max = max(len(p) for p in unique)
    steps = max(r.max_new for r in rows)
    s_max = p_max + steps
    n_unique = len(unique)
    tokens_U_P = torch.full((n_unique, p_max), model.pad_token_id, dtype=torch.long)
    key_mask_U_S = torch.zeros((n_unique, s_max), dtype=torch.bool)
    for prompt, u in unique.items():
        tokens_U_P[u, p_max - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        key_mask_U_S[u, p_max - len(prompt) : p_max] = True
    tokens_U_P = tokens_U_P.to(device)
    key_mask_U_S = key_mask_U_S.to(device)
    positions_U_P = (key_mask_U_S[:, :p_max].long().cumsum(dim=1) - 1).clamp(min=0)
    cache = model.new_cache(n_unique, s_max)
    logits_U_V = model.logits(tokens_U_P, positions_U_P, key_mask_U_S, cache, last_only=True)[:, -1]

    index_B = torch.tensor(row_to_unique, dtype=torch.long, device=device)
    cache = cache.select_rows(index_B)
    key_mask_B_S = key_mask_U_S.index_select(0, index_B)
    logits_B_V = logits_U_V.index_select(0, index_B)
    prompt_len_B = torch.tensor([len(r.prompt) for r in rows], dtype=torch.long, device=device)
    max_pos = model.context_length - 1
    temperature_B = torch.tensor([r.temperature for r in rows], dtype=torch.float32, device=device)
    top_k_B = torch.tensor([r.top_k for r in rows], dtype=torch.long, device=device)
    top_p_B = torch.tensor([r.top_p for r in rows], dtype=torch.float32, device=device)
    filtered = any(r.top_k > 0 or r.top_p < 1.0 for r in rows)
    any_greedy = any(r.temperature <= 0 for r in rows)
    steps_M = torch.arange(steps, device=device)
    positions_B_M = (prompt_len_B[:, None] + steps_M[None, :]).clamp(max=max_pos)
    uniforms = np.zeros((len(rows), steps), dtype=np.float64)
    for b, r in enumerate(rows):
        uniforms[b, : r.max_new] = row_uniforms(r.seed, r.sample_index, r.max_new)
    uniforms_B_M = torch.from_numpy(uniforms).to(device=device, dtype=torch.float32)

    generated: list[list[int]] = [[] for _ in rows]
    logprobs: list[list[float]] = [[] for _ in rows]
    reasons: list[StopReason | None] = [None] * len(rows)
    for step in range(steps):
        logits_f = logits_B_V.float()
        token_B = sample_tokens(
            logits_f,
            temperature_B,
            top_k_B,
            top_p_B,
            uniforms_B_M[:, step],
            filtered=filtered,
            any_greedy=any_greedy,
        )
        token_lp_B = target_logprobs(logits_f[:, None, :], token_B[:, None])[:, 0]
        if device.type == "cpu":
            tokens_host, lps_host = token_B.tolist(), token_lp_B.tolist()
        else:  # one transfer: ids are exact in float32 (vocabularies are far below 2**24)
            tokens_host, lps_host = torch.stack([token_B.float(), token_lp_B]).cpu().tolist()
        for b, row in enumerate(rows):
            if reasons[b] is not None:
                continue
            generated[b].append(int(tokens_host[b]))
            logprobs[b].append(lps_host[b])
            reasons[b] = _stop_check(row, generated[b], decode)
        if all(r is not None for r in reasons):
            break
        key_mask_B_S[:, p_max + step] = True
        positions_B_1 = positions_B_M[:, step : step + 1]
        logits_B_V = _decode_step(model, token_B[:, None], positions_B_1, key_mask_B_S, cache)

    for b, i in enumerate(live):
        results[i] = GenResult(generated[b], logprobs[b], reasons[b] or "length")
    return results


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
