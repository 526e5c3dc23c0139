"""Who the policy plays in training: one opponent or a weighted mixture, chosen per group.

    env.opponent=random                              one kind
    env.opponent=random:1,optimal:1,self:1,pool:1    a mixture (weights of any scale)

The kinds:

- `random`, `optimal`: scripted players (`players.py`; `optimal` needs a game with a solver);
- `checkpoint`: frozen weights at `env.opponent_checkpoint` (a previous run's sampler weights);
- `self`: the policy itself: a self-play group of G envs plays G/2 games, both seats trained;
- `pool`: a frozen snapshot of the policy from earlier in this run: the sampler weights of one of
  the run's newest `env.pool_size` checkpoints (so `save_every` sets how often a snapshot is
  added). Until the run has saved one, pool groups play self-play instead.

Each batch gives every kind its share of the groups (largest remainders: 16 groups at 1:1:1:1
are exactly 4 of each, 3:1 are 12 and 4), in an order shuffled from the batch's seed, and within
a kind the seats alternate as `env.seat` says. A group's games share their opponent and seat, so
its advantages compare like with like.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient

OPPONENT_KINDS = ("random", "optimal", "checkpoint", "self", "pool")
"""What `env.opponent` may name, alone or weighted."""

MODEL_KINDS = ("checkpoint", "pool")
"""Kinds played by a frozen model (its unusable replies are replaced by random legal moves)."""


def parse_mixture(text: str, option: str = "env.opponent") -> dict[str, float]:
    """Weights by kind from `random` or `random:1,optimal:2` (weights need not sum to 1; a kind
    with weight 0 is left out). Raises a one-line `UserError` for anything else."""
    example = f"{option}=random or {option}=random:1,optimal:1,self:1,pool:1"
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition(":")
        name = name.strip()
        if name not in OPPONENT_KINDS:
            where = "" if name == text else f" in {option}={text!r}"
            raise UserError(
                f"unknown {option} {name!r}{where}; choose one of: {', '.join(OPPONENT_KINDS)} "
                "(or weights, such as random:1,optimal:1)"
            )
        if name in weights:
            raise UserError(f"opponent {name!r} appears twice in {option}={text!r}")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise UserError(
                f"bad weight {value!r} for {name} in {option}={text!r} ({example})"
            ) from None
        if not weight >= 0 or weight == float("inf"):
            raise UserError(f"the weight of {name} in {option}={text!r} must be a number >= 0")
        if weight > 0:
            weights[name] = weight
    if not weights:
        raise UserError(f"{option}={text!r} gives every opponent weight 0 ({example})")
    return weights


def allocate(weights: dict[str, float], num_groups: int, rng: random.Random) -> list[str]:
    """The kind of each of `num_groups` groups: every kind gets the integer part of its share, the
    largest remainders (ties in `weights` order) the groups left over; the order is shuffled."""
    total = sum(weights.values())
    shares = {kind: weight / total * num_groups for kind, weight in weights.items()}
    counts = {kind: int(share) for kind, share in shares.items()}
    left = num_groups - sum(counts.values())
    by_remainder = sorted(shares, key=lambda kind: counts[kind] - shares[kind])
    for kind in by_remainder[:left]:
        counts[kind] += 1
    kinds = [kind for kind in weights for _ in range(counts[kind])]
    rng.shuffle(kinds)
    return kinds


@dataclass(frozen=True)
class Snapshot:
    """Frozen sampler weights of the policy, saved by the run before `step`."""

    step: int
    path: str


class SnapshotPool:
    """The policy's frozen snapshots: the sampler weights listed in the run's checkpoint index
    (`checkpoints.json` in its log directory), newest `size` of them. Snapshots saved after a
    batch's step are never offered to it, so a resumed run replays the same choices."""

    def __init__(self, log_dir: str | None, size: int) -> None:
        self.log_dir = log_dir
        self.size = size

    def snapshots(self, step: int) -> list[Snapshot]:
        """The snapshots batch `step` may play, oldest first."""
        if self.log_dir is None or self.size <= 0:
            return []
        from cookbook.runs.checkpoints import CheckpointIndex

        saved = [
            Snapshot(c.step, c.sampler_path)
            for c in CheckpointIndex(self.log_dir).all()
            if c.sampler_path and c.step <= step
        ]
        return saved[-self.size :]


class SnapshotClients:
    """Sampling clients of pool snapshots, loaded once each; the least recently used one goes
    when more than `size` are held (a frozen model per snapshot: a run with hundreds of
    checkpoints holds only the pool's)."""

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self._clients: OrderedDict[str, SamplingClient] = OrderedDict()

    def get(self, path: str, size: int) -> SamplingClient:
        """The client for the snapshot at `path`, in a pool of `size` snapshots."""
        self.size = max(size, 1)
        client = self._clients.pop(path, None)
        if client is None:
            from cookbook.backends import make_service_client

            client = make_service_client("local").create_sampling_client(model_path=path).result()
        self._clients[path] = client
        while len(self._clients) > self.size:
            self._clients.popitem(last=False)
        return client

    def __len__(self) -> int:
        """Clients held."""
        return len(self._clients)


POOL_CLIENTS = SnapshotClients()
"""The process's snapshot clients (group builders are plain data: they reach them through this)."""
