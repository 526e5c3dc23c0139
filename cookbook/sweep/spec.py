"""What a sweep runs: `key=value` arguments with swept values, expanded into one set of overrides
per run. Pure Python, no heavy import (used by `cookbook sweep --help` and `--dry-run`).

The value syntax (docs/sweeps.md has the full story):

    key=v                   fixed: every run gets `key=v`
    key=v1,v2,v3            grid: one run per value (crossed with the other grid keys)
    key=LO..HI              grid over the integers LO..HI, both included (seed=0..4)
    key=loguniform:LO:HI    random (needs --samples N): log-uniform float in [LO, HI]
    key=uniform:LO:HI       random: uniform float in [LO, HI]
    key=randint:LO:HI       random: uniform integer in LO..HI, both included
    key=choice:v1,v2        random: one of the values, equally likely

A comma inside a value is written `\\,`. For a key whose field holds a list (`evals=a,b`), the
comma builds that one list, exactly as `cookbook rl` reads it; its alternatives are separated
with `;` instead (`'evals=a,b;c'` runs `evals=a,b` and `evals=c`). The sweep learns which keys are
lists from the loop's config classes, so a line copied from `cookbook rl` keeps its meaning.

With `--samples N`, N points are drawn for the random keys (seeded by `--search-seed`); every
grid point runs at each drawn point, so `seed=0,1,2 --samples 8` is 8 settings times 3 seeds.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cookbook.errors import UserError

DistKind = Literal["loguniform", "uniform", "randint", "choice"]
DIST_KINDS: tuple[DistKind, ...] = ("loguniform", "uniform", "randint", "choice")

_INT_RANGE = re.compile(r"(-?\d+)\.\.(-?\d+)")
_MAX_RUNS = 10_000
"""More runs than this is almost surely a typo (a grid of many long lists)."""


@dataclass(frozen=True)
class Distribution:
    """A random key of a sweep: how to draw its value."""

    key: str
    kind: DistKind
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()

    def draw(self, rng: random.Random) -> str:
        """One value, as the text passed on the run's command line."""
        if self.kind == "choice":
            return rng.choice(self.choices)
        if self.kind == "randint":
            return str(rng.randint(int(self.low), int(self.high)))
        if self.kind == "loguniform":
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return format(value, ".4g")

    def text(self) -> str:
        """The definition as the user wrote it (normalised)."""
        if self.kind == "choice":
            return "choice:" + ",".join(self.choices)
        return f"{self.kind}:{self.low:g}:{self.high:g}"


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep definition: fixed keys, grid axes and random keys, in the typed order."""

    fixed: dict[str, str] = field(default_factory=dict)
    grid: dict[str, tuple[str, ...]] = field(default_factory=dict)
    random: dict[str, Distribution] = field(default_factory=dict)
    samples: int | None = None
    """Random draws (`--samples`); `None` for a pure grid."""
    search_seed: int = 0
    """Seed of the random draws."""
    order: tuple[str, ...] = ()
    """Every key, in the order it was typed (run names and tables follow it)."""

    @property
    def swept_keys(self) -> list[str]:
        """Keys whose value differs between runs, in the order they were typed."""
        swept = [*self.grid, *self.random]
        return sorted(swept, key=lambda k: self.order.index(k) if k in self.order else len(swept))

    def runs(self) -> list[dict[str, str]]:
        """The swept overrides of every run, in launch order: for each random draw (one, if
        there are no random keys), every grid point, the first grid key varying slowest."""
        rng = random.Random(self.search_seed)
        draws: list[dict[str, str]] = [{}]
        if self.random:
            assert self.samples is not None  # parse_sweep_args requires --samples for these
            draws = [
                {key: dist.draw(rng) for key, dist in self.random.items()}
                for _ in range(self.samples)
            ]
        points = [
            dict(zip(self.grid, values, strict=True))
            for values in itertools.product(*self.grid.values())
        ]
        keys = self.swept_keys
        return [{k: {**draw, **point}[k] for k in keys} for draw in draws for point in points]

    def definition(self) -> dict[str, object]:
        """A JSON-able record of the definition (stored in sweep.json; equal definitions run
        the same runs)."""
        return {
            "fixed": dict(self.fixed),
            "grid": {k: list(v) for k, v in self.grid.items()},
            "random": {k: d.text() for k, d in self.random.items()},
            "samples": self.samples,
            "search_seed": self.search_seed,
        }


def parse_sweep_args(
    args: Sequence[str],
    *,
    is_list_key: Callable[[str], bool] = lambda key: False,
    samples: int | None = None,
    search_seed: int = 0,
) -> SweepSpec:
    """Parse `key=value` sweep arguments (module docstring). `is_list_key(key)` says whether a
    key's field holds a list. Every malformed value is a one-line `UserError`."""
    if samples is not None and samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    fixed: dict[str, str] = {}
    grid: dict[str, tuple[str, ...]] = {}
    dists: dict[str, Distribution] = {}
    seen_order: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key or key != key.strip() or key.startswith("-"):
            raise UserError(
                f"'{arg}' is not a key=value sweep argument "
                "(for example learning_rate=1e-3,3e-3 or seed=0..2)"
            )
        if key in seen_order:
            raise UserError(f"{key} is given twice; give its values once (key=a,b,c)")
        seen_order.append(key)
        is_list = is_list_key(key)
        kind, colon, rest = value.partition(":")
        if colon and kind in DIST_KINDS:
            dists[key] = _parse_distribution(key, kind, rest, is_list)
            continue
        values = _split(value, ";" if is_list else ",")
        if not is_list and len(values) == 1:
            values = _int_range(key, values[0]) or values
        if any(v == "" for v in values) and len(values) > 1:
            raise UserError(f"{key}={value}: empty value in the list; remove the stray separator")
        if len(values) == 1:
            fixed[key] = values[0]
        else:
            grid[key] = tuple(values)
    if dists and samples is None:
        keys = ", ".join(dists)
        raise UserError(f"{keys}: random values need a number of draws; add --samples N")
    if samples is not None and not dists:
        raise UserError(
            "--samples N draws the random keys, but none is given "
            "(for example learning_rate=loguniform:1e-4:1e-2)"
        )
    spec = SweepSpec(
        fixed=fixed,
        grid=grid,
        random=dists,
        samples=samples,
        search_seed=search_seed,
        order=tuple(seen_order),
    )
    count = math.prod(len(v) for v in grid.values()) * (samples or 1)
    if count > _MAX_RUNS:
        raise UserError(f"this sweep has {count} runs (more than {_MAX_RUNS}); narrow the grid")
    return spec


def run_args(fixed: Mapping[str, str], overrides: Mapping[str, str]) -> list[str]:
    """The `key=value` arguments of one run: the fixed keys, then its swept values."""
    return [f"{k}={v}" for k, v in {**fixed, **overrides}.items()]


def run_name(index: int, overrides: Mapping[str, str], max_len: int = 80) -> str:
    """A readable directory name: `003-learning_rate=0.001-seed=2` (unsafe characters become
    `_`; long names are cut, the index keeps them unique)."""
    parts = [f"{index:03d}", *(f"{k}={v}" for k, v in overrides.items())]
    name = re.sub(r"[^A-Za-z0-9._=+-]", "_", "-".join(parts))
    return name[:max_len].rstrip("-_.")


def _split(value: str, sep: str) -> list[str]:
    """Split on `sep`, honouring `\\,` / `\\;` escapes (the backslash is dropped)."""
    out: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value) and value[i + 1] in ",;\\":
            current.append(value[i + 1])
            i += 2
            continue
        if char == sep:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    out.append("".join(current))
    return out


def _int_range(key: str, value: str) -> list[str] | None:
    match = _INT_RANGE.fullmatch(value)
    if match is None:
        return None
    low, high = int(match.group(1)), int(match.group(2))
    if high < low:
        raise UserError(f"{key}={value}: the range is empty; write LO..HI with LO <= HI")
    if high - low >= _MAX_RUNS:
        raise UserError(f"{key}={value}: the range has more than {_MAX_RUNS} values")
    return [str(v) for v in range(low, high + 1)]


def _parse_distribution(key: str, kind: DistKind, rest: str, is_list: bool) -> Distribution:
    if kind == "choice":
        choices = tuple(_split(rest, ";" if is_list else ","))
        if not rest or any(c == "" for c in choices):
            raise UserError(f"{key}=choice:{rest}: give the values, as in choice:a,b,c")
        return Distribution(key, kind, choices=choices)
    example = f"{key}={kind}:1e-4:1e-2" if kind != "randint" else f"{key}=randint:1:8"
    parts = rest.split(":")
    if len(parts) != 2:
        raise UserError(f"{key}={kind}:{rest}: write {kind}:LOW:HIGH (for example {example})")
    try:
        if kind == "randint":
            low, high = float(int(parts[0])), float(int(parts[1]))
        else:
            low, high = float(parts[0]), float(parts[1])
    except ValueError:
        what = "integers" if kind == "randint" else "numbers"
        raise UserError(
            f"{key}={kind}:{rest}: LOW and HIGH must be {what} (for example {example})"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise UserError(f"{key}={kind}:{rest}: need finite LOW <= HIGH (for example {example})")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"{key}={kind}:{rest}: loguniform needs LOW > 0 (for example {example})")
    return Distribution(key, kind, low=low, high=high)
