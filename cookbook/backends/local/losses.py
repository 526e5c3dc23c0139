"""The built-in losses, with tinker's semantics.

Every loss is per token and summed over tokens and datums (no averaging). Position i of
`model_input` predicts `target_tokens[i]`; `lp` below is log p_theta(target_tokens[i]) under the
model being trained, `q` the sampler's logprob of the same token (`logprobs` input), `A` the
`advantages` and `w` the `weights`:

    cross_entropy        -lp * w
    importance_sampling  -exp(lp - q) * A
    ppo                  -min(r * A, clip(r, lo, hi) * A)          r = exp(lp - q)
    cispo                -sg(clip(r, lo, hi)) * lp * A
    dro                  -(lp * A - beta / 2 * (lp - q) ** 2)

`lo`/`hi` are `loss_fn_config["clip_low_threshold"]`/`["clip_high_threshold"]` (ratios, default
0.8 and 1.2), `beta` is `loss_fn_config["beta"]` (default 0.05).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

LOSS_INPUTS: dict[str, tuple[str, ...]] = {
    "cross_entropy": ("target_tokens", "weights"),
    "importance_sampling": ("target_tokens", "logprobs", "advantages"),
    "ppo": ("target_tokens", "logprobs", "advantages"),
    "cispo": ("target_tokens", "logprobs", "advantages"),
    "dro": ("target_tokens", "logprobs", "advantages"),
}
"""The `loss_fn_inputs` each loss requires (and accepts)."""

LOSS_CONFIG_DEFAULTS: dict[str, dict[str, float]] = {
    "cross_entropy": {},
    "importance_sampling": {},
    "ppo": {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2},
    "cispo": {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2},
    "dro": {"beta": 0.05},
}
"""The `loss_fn_config` keys each loss takes, with their defaults."""


def per_token_loss(
    loss_fn: str,
    lp_B_T: torch.Tensor,
    inputs: Mapping[str, torch.Tensor],
    config: Mapping[str, float],
) -> torch.Tensor:
    """The loss of every position `[B, T]` (callers mask padding and sum)."""
    if loss_fn == "cross_entropy":
        return -lp_B_T * inputs["weights"]
    q_B_T = inputs["logprobs"]
    adv_B_T = inputs["advantages"]
    if loss_fn == "importance_sampling":
        return -torch.exp(lp_B_T - q_B_T) * adv_B_T
    if loss_fn == "ppo":
        ratio = torch.exp(lp_B_T - q_B_T)
        clipped = ratio.clamp(config["clip_low_threshold"], config["clip_high_threshold"])
        return -torch.minimum(ratio * adv_B_T, clipped * adv_B_T)
    if loss_fn == "cispo":
        ratio = torch.exp(lp_B_T - q_B_T)
        clipped = ratio.clamp(config["clip_low_threshold"], config["clip_high_threshold"])
        return -clipped.detach() * lp_B_T * adv_B_T
    if loss_fn == "dro":
        return -(lp_B_T * adv_B_T - 0.5 * config["beta"] * (lp_B_T - q_B_T) ** 2)
    raise ValueError(f"unknown loss {loss_fn!r}")
