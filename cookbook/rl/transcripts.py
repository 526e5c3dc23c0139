"""Readable transcripts of a few groups per step: what the policy saw, what it said, what it got.

One text file per step under `<log_dir>/transcripts/`; a resumed step overwrites its file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cookbook.rl.types import TrajectoryGroup
from cookbook.tokenizers import Tokenizer


def format_group(
    group: TrajectoryGroup,
    advantages_G: Sequence[float] | None,
    tokenizer: Tokenizer,
    title: str,
) -> str:
    """A group as text. A turn whose observation extends the previous one shows only the new
    tokens, so multi-turn games read like a conversation."""
    lines = [f"=== {title}" + (f"  tags: {', '.join(group.tags)}" if group.tags else "")]
    totals_G = group.get_total_rewards()
    for g, trajectory in enumerate(group.trajectories_G):
        adv = f"  advantage {advantages_G[g]:+.3f}" if advantages_G is not None else ""
        lines.append(
            f"--- env {g}: total reward {totals_G[g]:+.3f} "
            f"(group reward {group.final_rewards_G[g]:+.3f}){adv}"
        )
        if group.metrics_G[g]:
            lines.append(f"    group metrics: {_fmt_metrics(group.metrics_G[g])}")
        seen: list[int] = []
        for turn, transition in enumerate(trajectory.transitions):
            ob = transition.ob.to_ints()
            new_ob = ob[len(seen) :] if seen and ob[: len(seen)] == seen else ob
            lines.append(f"  [turn {turn}] observation: {tokenizer.decode(new_ob)!r}")
            lines.append(f"  [turn {turn}] action:      {tokenizer.decode(transition.ac_tokens)!r}")
            lines.append(f"  [turn {turn}] reward {transition.reward:+.3f}")
            if transition.metrics:
                lines.append(f"  [turn {turn}] metrics: {_fmt_metrics(transition.metrics)}")
            for key, text in transition.logs.items():
                lines.append(f"  [turn {turn}] {key}: {text}")
            seen = ob + transition.ac_tokens
    return "\n".join(lines)


def _fmt_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in metrics.items())


def write_step_transcript(
    directory: Path,
    step: int,
    groups_P: Sequence[TrajectoryGroup],
    group_indices_P: Sequence[int],
    advantages_P_G: Sequence[Sequence[float]] | None,
    tokenizer: Tokenizer,
    max_groups: int,
    header: str = "",
) -> Path | None:
    """Write the first `max_groups` groups of a step to `transcripts/step<NNNNNN>.txt`."""
    if max_groups <= 0 or not groups_P:
        return None
    parts = [header] if header else []
    for i, group in enumerate(groups_P[:max_groups]):
        advantages_G = advantages_P_G[i] if advantages_P_G is not None else None
        parts.append(
            format_group(group, advantages_G, tokenizer, f"step {step} group {group_indices_P[i]}")
        )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step{step:06d}.txt"
    # Plain write (no fsync): a transcript torn by a kill is rewritten when the step reruns.
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path
