"""Kill a run at random moments, resume it, kill it again, until it finishes; the run directory
must hold after every kill, and the finished run must equal one never interrupted.

After every kill (what the next resume starts from): `metrics.jsonl` holds each step at most once
and in order, `checkpoints.json` parses and every checkpoint it lists is complete on disk. After
the run finishes: the same steps as the uninterrupted run, each exactly once, the same checkpoint
steps, no temp folder of a save left anywhere, and the same weights and optimizer state: bit for
bit in SFT and in RL's warm start (the tiny model on one CPU thread is deterministic, and a resume
replays from its checkpoint with the same data), within `RL_TOLERANCE` after RL steps (why there).

A kill lands at a uniformly random moment of the run's training, from its first step-log write
(a first line, or the rewrite of a resume) to as long after as the whole uninterrupted run took:
warm start, RL steps, evals and saves are all hit (`save_every=1` makes saves a large share).
The seed of the kill times is in every failure message. The default suite kills the RL loop (with
its warm start) once, as a subprocess start is most of the cost; `--runslow` kills the SFT and
the RL loop 12 times each.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cookbook.cli import main as cookbook_main
from cookbook.runs.checkpoints import CheckpointIndex
from cookbook.runs.metrics import MetricsLog

if TYPE_CHECKING:
    import torch

SFT = [
    "sft",
    "--dataset",
    "fixture-sft",
    "dataset.num_examples=16",
    "batch_size=4",
    "max_steps=10",
    "save_every=1",
    "eval_every=4",
]
RL = [
    "rl",
    "--env",
    "fixture-warm",
    "warm_start.steps=6",
    "warm_start.save_every=2",
    "group_size=2",
    "groups_per_batch=2",
    "max_steps=6",
    "save_every=1",
    "eval_every=3",
    "num_threads=1",
]
COMMON = ["show_progress=false"]
RL_TOLERANCE = 1e-5
"""RL is not bit-exact across processes: the local sampler serves the requests that arrive
together in one batched forward pass, so the batch (and the last bits of a logprob) depends on
timing, and Adam turns a 1e-8 difference in a near-zero gradient into a visible one (up to 6.6e-5
in one bias after 6 steps, in runs that logged the same rewards). A whole-step mistake (a step
run twice or skipped, a resume from the wrong weights) moves almost every weight by about the
learning rate (1e-3), so the RL loop is held to a mean absolute difference of 1e-5; its warm
start (supervised) is held to bit equality."""
LEFTOVERS = (".*.tmp-*", ".*.old-*", ".*.tmp")


@dataclass(frozen=True)
class Finished:
    """What the invariants compare between a run and the uninterrupted one."""

    steps: list[object]
    warm_steps: list[object]
    checkpoint_steps: list[int]
    first_state: Path
    """The oldest checkpoint still listed (in RL: the end of the warm start)."""
    final_state: Path


def _steps(path: Path) -> list[object]:
    return [r.get("step") for r in MetricsLog(path).read()]


def check_after_kill(log_dir: Path, context: str) -> None:
    """What any kill must leave: steps logged at most once and in order, an index that parses
    and lists only complete checkpoints."""
    for name in ("metrics.jsonl", "warm_start_metrics.jsonl"):
        steps = _steps(log_dir / name)
        assert all(isinstance(s, int) for s in steps), f"{context}: {name}: {steps}"
        assert steps == sorted(set(steps)), f"{context}: {name} repeats a step: {steps}"  # type: ignore[type-var]
    checkpoints = CheckpointIndex(log_dir).all()  # raises if checkpoints.json is torn
    assert [c.step for c in checkpoints] == sorted({c.step for c in checkpoints}), context
    for c in checkpoints:
        for path in (c.state_path, c.sampler_path):
            if path is not None:
                assert (Path(path) / "weights.pt").is_file(), f"{context}: {path} incomplete"
                assert (Path(path) / "meta.json").is_file(), f"{context}: {path} incomplete"


def check_finished(log_dir: Path, context: str) -> Finished:
    """What a finished run must hold, beyond `check_after_kill`."""
    check_after_kill(log_dir, context)
    leftovers = [str(p) for pattern in LEFTOVERS for p in log_dir.rglob(pattern)]
    assert not leftovers, f"{context}: temp files left: {leftovers}"
    checkpoints = CheckpointIndex(log_dir).all()
    assert checkpoints, context
    return Finished(
        steps=_steps(log_dir / "metrics.jsonl"),
        warm_steps=_steps(log_dir / "warm_start_metrics.jsonl"),
        checkpoint_steps=[c.step for c in checkpoints],
        first_state=Path(checkpoints[0].state_path),
        final_state=Path(checkpoints[-1].state_path),
    )


def assert_same_state(a: Path, b: Path, context: str, tolerance: float = 0.0) -> None:
    """Weights and optimizer state equal: bit for bit when `tolerance` is 0, else with a mean
    absolute difference of at most `tolerance` (over every number of the file)."""
    import torch

    for name in ("weights.pt", "optimizer.pt"):
        left, right = _tensors(torch.load(a / name)), _tensors(torch.load(b / name))
        assert left.keys() == right.keys(), f"{context}: {name} holds other tensors"
        if tolerance == 0.0:
            differ = sorted(k for k in left if not torch.equal(left[k], right[k]))
            assert not differ, f"{context}: {name} differs from the uninterrupted run's in {differ}"
            continue
        total = sum(float((left[k].double() - right[k].double()).abs().sum()) for k in left)
        mean = total / max(1, sum(t.numel() for t in left.values()))
        assert mean <= tolerance, f"{context}: {name} differs by {mean:.3g} on average"


def _tensors(tree: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested state dict, by its path."""
    import torch

    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    items = (
        tree.items()
        if isinstance(tree, dict)
        else enumerate(tree)
        if isinstance(tree, list | tuple)
        else []
    )
    found: dict[str, torch.Tensor] = {}
    for key, value in items:
        found.update(_tensors(value, f"{prefix}/{key}"))
    return found


def _progress(log_dir: Path) -> tuple[tuple[int, int], ...]:
    """Sizes and modification times of the step logs: they change once a run is training."""
    stamps = []
    for name in ("metrics.jsonl", "warm_start_metrics.jsonl"):
        try:
            stat = (log_dir / name).stat()
        except FileNotFoundError:
            stamps.append((-1, -1))
        else:
            stamps.append((stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


def run_killed(
    args: Sequence[str], env: dict[str, str], log_dir: Path, delay_s: float, context: str
) -> bool:
    """Start the run in a subprocess and SIGKILL it `delay_s` after it starts training (its step
    logs change: a first line, or the rewrite of a resume); whether it was killed (False: it
    finished first)."""
    before = _progress(log_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cookbook", *args, f"log_dir={log_dir}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and _progress(log_dir) == before:
            assert time.monotonic() < deadline, f"{context}: the run never started training"
            time.sleep(0.002)
        try:
            proc.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
    if proc.returncode == -signal.SIGKILL:
        return True
    assert proc.returncode == 0, f"{context}: the run failed:\n{stderr[-3000:]}"
    return False


@pytest.fixture(scope="module")
def _plugin(rl_plugin: Path) -> Iterator[None]:
    yield


def training_time(args: Sequence[str], log_dir: Path) -> float:
    """Run to the end in this process; seconds from its first step-log write to its end."""
    before = _progress(log_dir)
    first_write: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if _progress(log_dir) != before:
                first_write.append(time.monotonic())
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert cookbook_main([*args, f"log_dir={log_dir}"]) == 0
    finally:
        done.set()
        watcher.join()
    return time.monotonic() - first_write[0]


def kill_loop(
    args: Sequence[str], env: dict[str, str], tmp_path: Path, kills: int, tolerance: float
) -> None:
    """The uninterrupted run, then `kills` kills of another at random moments, then its end;
    the final state equals the uninterrupted run's within `tolerance`."""
    args = [*args, *COMMON]
    reference = tmp_path / "reference"
    budget_s = training_time(args, reference)
    expected = check_finished(reference, "the uninterrupted run")

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    log_dir = tmp_path / "killed"
    killed = 0
    where: list[str] = []
    for attempt in range(kills * 3):
        if killed == kills:
            break
        delay_s = rng.uniform(0.0, budget_s)
        context = f"seed {seed}, try {attempt} (kill {delay_s:.2f} s into training)"
        if run_killed(args, env, log_dir, delay_s, context):
            killed += 1
            check_after_kill(log_dir, context)
            latest = CheckpointIndex(log_dir).latest()
            where.append(
                f"killed at warm {_steps(log_dir / 'warm_start_metrics.jsonl')[-1:]} "
                f"rl {_steps(log_dir / 'metrics.jsonl')[-1:]} "
                f"ckpt {None if latest is None else (latest.step, latest.extra)}"
            )
        else:  # it ran faster than the reference (a load spike ended): start over, sooner
            check_finished(log_dir, context)
            shutil.rmtree(log_dir)
            killed, budget_s = 0, budget_s / 2
    context = f"seed {seed}, after {killed} kills"
    assert killed == kills, f"{context}: the tries kept finishing before their kill"
    assert cookbook_main([*args, f"log_dir={log_dir}"]) == 0, context
    finished = check_finished(log_dir, context)
    assert finished.steps == expected.steps, context
    assert finished.warm_steps == expected.warm_steps, context
    assert finished.checkpoint_steps == expected.checkpoint_steps, context
    context = f"{context} ({'; '.join(where)}; {first_divergence(log_dir, reference)})"
    assert_same_state(finished.first_state, expected.first_state, context)
    assert_same_state(finished.final_state, expected.final_state, context, tolerance)


def first_divergence(log_dir: Path, reference: Path) -> str:
    """Where the step logs of two runs first differ (timings aside), to explain a failure."""
    for name in ("warm_start_metrics.jsonl", "metrics.jsonl"):
        pairs = zip(
            MetricsLog(log_dir / name).read(), MetricsLog(reference / name).read(), strict=False
        )
        for got, want in pairs:
            keys = sorted(
                k
                for k in got.keys() | want.keys()
                if "time" not in k and "per_s" not in k and got.get(k) != want.get(k)
            )
            if keys:
                return f"{name} step {got.get('step')} differs first, in {keys[:6]}"
    return "the step logs agree"


LOOPS = pytest.mark.parametrize(
    ("args", "tolerance"), [(SFT, 0.0), (RL, RL_TOLERANCE)], ids=["sft", "rl"]
)


def test_killed_once_the_run_equals_an_uninterrupted_one(
    _plugin: None, rl_plugin_env: dict[str, str], tmp_path: Path
) -> None:
    """The short version: the RL loop (its warm start is the SFT step) killed once."""
    kill_loop(RL, rl_plugin_env, tmp_path, kills=1, tolerance=RL_TOLERANCE)


@pytest.mark.slow
@LOOPS
def test_killed_a_dozen_times_the_run_equals_an_uninterrupted_one(
    _plugin: None, rl_plugin_env: dict[str, str], tmp_path: Path, args: list[str], tolerance: float
) -> None:
    kill_loop(args, rl_plugin_env, tmp_path, kills=12, tolerance=tolerance)


def test_the_invariants_catch_a_step_logged_twice_and_a_torn_index(tmp_path: Path) -> None:
    """The checks above can fail: a repeated step, a temp folder and a torn index are caught."""
    log_dir = tmp_path / "run"
    (log_dir / "checkpoints" / "step000001" / ".state.tmp-x").mkdir(parents=True)
    metrics = MetricsLog(log_dir / "metrics.jsonl")
    for step in (0, 1, 1):
        metrics.log(step, {"loss": 1.0})
    with pytest.raises(AssertionError, match="repeats a step"):
        check_after_kill(log_dir, "t")
    metrics.truncate_from(1)
    with pytest.raises(AssertionError, match="temp files left"):
        check_finished(log_dir, "t")
    (log_dir / "checkpoints.json").write_text('[{"step": 1, "state_pa')
    with pytest.raises(ValueError):
        check_after_kill(log_dir, "t")
