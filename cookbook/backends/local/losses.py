"""The built-in losses, with tinker's semantics.

Every loss is per token and summed over tokens and datums (no averaging). Position i of
`model_input` predicts `target_tokens[i]`; `lp` below is log p_theta(target_tokens[i]) under the
model being trained, `q` the sampler's logprob of the same token (`logprobs` input), `A` the
`advantages`, `w` the `weights`, `r = exp(lp - q)` and `sg` stops the gradient:

    cross_entropy        -lp * w                       (targets [N] or top-K targets [N, K])
    importance_sampling  -r * A
    ppo                  -min(r * A, clip(r, lo, hi) * A)
    cispo                -sg(clip(r, lo, hi)) * lp * A
    dro                  -(lp * A - beta / 2 * (lp - q) ** 2)
    gspo                 -min(s_t * A, clip(s_t, lo, hi) * A)
                         s_t = sg(s) * exp(lp - sg(lp)), s = exp(mean over M of (lp - q))
    stable_reinforce     -sg(min(r, 1)) * lp * A

Config (`loss_fn_config`, numbers or numeric strings) and its defaults when absent:
`clip_low_threshold`/`clip_high_threshold` are ratios, 0.8/1.2 for ppo and gspo (tinker's
eps = 0.2) and 0.0/4.0 for cispo; dro's `beta` defaults to 0.05 (tinker documents none).

GSPO (the token-level variant tinker implements) ratios a whole sequence: `s` is the geometric
mean of the token ratios over the positions M that the optional `sequence_ratio_mask` input
marks (non-zero), else over the positions with a non-zero advantage (the sampled tokens), and
every token of the datum carries that value with the gradient of its own logprob.

`stable_reinforce`: tinker's service computes it from stability data recorded at sampling time
and has not published its formula. Locally sampler and trainer share weights and numerics, so
the recorded data is the sampler's own logprobs (`logprobs` input), and the loss is REINFORCE
with the importance weight truncated at 1 (the weight, not the gradient path, sees the ratio):
on-policy it equals importance_sampling's gradient; off-policy it never up-weights a token.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

RL_INPUTS = ("target_tokens", "logprobs", "advantages")

LOSS_INPUTS: dict[str, tuple[str, ...]] = {
    "cross_entropy": ("target_tokens", "weights"),
    "importance_sampling": RL_INPUTS,
    "ppo": RL_INPUTS,
    "cispo": RL_INPUTS,
    "dro": RL_INPUTS,
    "gspo": RL_INPUTS,
    "stable_reinforce": RL_INPUTS,
}
"""The `loss_fn_inputs` each loss requires."""

OPTIONAL_INPUTS: dict[str, tuple[str, ...]] = {"gspo": ("sequence_ratio_mask",)}
"""Inputs a loss accepts but does not require."""

LOSS_CONFIG_DEFAULTS: dict[str, dict[str, float]] = {
    "cross_entropy": {},
    "importance_sampling": {},
    "ppo": {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2},
    "cispo": {"clip_low_threshold": 0.0, "clip_high_threshold": 4.0},
    "dro": {"beta": 0.05},
    "gspo": {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2},
    "stable_reinforce": {},
}
"""The `loss_fn_config` keys each loss takes, with their defaults."""


def per_token_loss(
    loss_fn: str,
    lp_B_T: torch.Tensor,
    inputs: Mapping[str, torch.Tensor],
    config: Mapping[str, float],
    mask_B_T: torch.Tensor,
) -> torch.Tensor:
    """The loss of every position, `[B, T]` (`[B, T, K]` for top-K cross-entropy); callers mask
    padding (`mask_B_T`, True at real positions) and sum."""
    if loss_fn == "cross_entropy":
        return -lp_B_T * inputs["weights"]
    q_B_T = inputs["logprobs"]
    adv_B_T = inputs["advantages"]
    ratio = torch.exp(lp_B_T - q_B_T)
    if loss_fn == "importance_sampling":
        return -ratio * adv_B_T
    if loss_fn == "ppo":
        clipped = ratio.clamp(config["clip_low_threshold"], config["clip_high_threshold"])
        return -torch.minimum(ratio * adv_B_T, clipped * adv_B_T)
    if loss_fn == "cispo":
        clipped = ratio.clamp(config["clip_low_threshold"], config["clip_high_threshold"])
        return -clipped.detach() * lp_B_T * adv_B_T
    if loss_fn == "dro":
        return -(lp_B_T * adv_B_T - 0.5 * config["beta"] * (lp_B_T - q_B_T) ** 2)
    if loss_fn == "gspo":
        seq_ratio = _sequence_ratio(lp_B_T, q_B_T, adv_B_T, inputs, mask_B_T)
        token_ratio = seq_ratio[:, None] * torch.exp(lp_B_T - lp_B_T.detach())
        clipped = token_ratio.clamp(config["clip_low_threshold"], config["clip_high_threshold"])
        return -torch.minimum(token_ratio * adv_B_T, clipped * adv_B_T)
    if loss_fn == "stable_reinforce":
        return -ratio.detach().clamp(max=1.0) * lp_B_T * adv_B_T
    raise ValueError(f"unknown loss {loss_fn!r}")


def _sequence_ratio(
    lp_B_T: torch.Tensor,
    q_B_T: torch.Tensor,
    adv_B_T: torch.Tensor,
    inputs: Mapping[str, torch.Tensor],
    mask_B_T: torch.Tensor,
) -> torch.Tensor:
    """GSPO's `sg(s)` per datum, `[B]`: exp of the mean log-ratio over the ratio positions (1
    for a datum that has none)."""
    marked = inputs.get("sequence_ratio_mask")
    in_ratio_B_T = (marked != 0) if marked is not None else (adv_B_T != 0)
    in_ratio_B_T = in_ratio_B_T & mask_B_T
    log_ratio = torch.where(in_ratio_B_T, lp_B_T.detach() - q_B_T, torch.zeros_like(lp_B_T))
    count_B = in_ratio_B_T.sum(dim=1).clamp(min=1)
    return torch.exp(log_ratio.sum(dim=1) / count_B)
