"""Optional experiment trackers that mirror a run's metrics.jsonl: `log_to=wandb`, `log_to=trackio`.

metrics.jsonl stays the record of a run; a tracker only mirrors it, so it is never required
and never imported unless asked for. A loop opens the sinks once and logs each metrics line:

    sink = open_trackers(["trackio"], run_name="rl-tictactoe", config_json=tree, log_dir=path)
    sink.log(step, record)       # after run_dir.metrics.log(step, ...)
    sink.close()                 # when the run ends (also on errors)

- trackio (`pip install 'cookbook[trackio]'`) stores runs locally in SQLite under `TRACKIO_DIR`
  (default `~/.cache/huggingface/trackio`); no account or network. `trackio show` opens the
  dashboard.
- wandb (`pip install 'cookbook[wandb]'`) needs `wandb login`, or `WANDB_MODE=offline` to write
  the run under `<log_dir>/wandb/` and `wandb sync` it later.

A resumed run continues the same tracker run: `<log_dir>/trackers.json` keeps each tracker's
run id and the last step mirrored, and steps a resume reruns are not sent twice (the tracker
keeps the values it got first; metrics.jsonl has the rerun's). A tracker that fails while the
run goes on is dropped with one warning; the run itself never stops for a tracker.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Protocol

from cookbook.errors import UserError
from cookbook.registry.errors import did_you_mean

TRACKERS: dict[str, str] = {
    "trackio": "pip install 'cookbook[trackio]' (local, no account)",
    "wandb": "pip install 'cookbook[wandb]'",
}
"""Tracker names `log_to` accepts, and how to install each."""
STATE_FILE = "trackers.json"


class MetricsSink(Protocol):
    """Something that receives a run's metrics lines."""

    def log(self, step: int, metrics: Mapping[str, object]) -> None:
        """Record the metrics of `step` (numbers only are kept)."""
        ...

    def close(self) -> None:
        """Flush and finish (the sink is not used afterwards)."""
        ...


class NullSink:
    """No tracker: does nothing."""

    def log(self, step: int, metrics: Mapping[str, object]) -> None:
        pass

    def close(self) -> None:
        pass


def parse_tracker_names(value: str | Sequence[str] | None) -> list[str]:
    """`"wandb,trackio"` or `["wandb"]` -> checked names; an unknown one is a `UserError`."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [item.strip().lower() for item in items if item.strip()]
    for name in names:
        if name not in TRACKERS:
            hint = did_you_mean(name, TRACKERS) or f"; choose from {', '.join(TRACKERS)}"
            raise UserError(f"log_to: unknown tracker '{name}'{hint}")
    return list(dict.fromkeys(names))


def open_trackers(
    names: str | Sequence[str] | None,
    run_name: str,
    config_json: object,
    log_dir: str | os.PathLike[str],
    project: str = "cookbook",
) -> MetricsSink:
    """Open the trackers in `names` for the run in `log_dir` (resuming its tracker runs when it
    has some). No names: a `NullSink`. A tracker that is not installed, or that cannot start
    (wandb without a login), is a one-line `UserError`."""
    chosen = parse_tracker_names(names)
    if not chosen:
        return NullSink()
    log_dir = Path(log_dir)
    state = _read_state(log_dir / STATE_FILE)
    sinks: dict[str, MetricsSink] = {}
    try:
        for name in chosen:
            opener = _OPENERS[name]
            sinks[name] = opener(run_name, config_json, log_dir, project, state)
    except BaseException:
        for sink in sinks.values():
            with contextlib.suppress(Exception):
                sink.close()
        raise
    _write_state(log_dir / STATE_FILE, state)  # the run ids, before the first step
    return _Trackers(sinks, log_dir / STATE_FILE, state)


def replay_run(
    log_dir: str | os.PathLike[str],
    names: str | Sequence[str],
    project: str = "cookbook",
) -> int:
    """Send a run's metrics.jsonl to trackers (a run made without `log_to`); returns the number
    of records passed on (steps an earlier replay mirrored are not sent again)."""
    from cookbook.runs.metrics import MetricsLog

    log_dir = Path(log_dir)
    config: object = {}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        data = json.loads((log_dir / "config.json").read_text(encoding="utf-8"))
        config = data.get("config", data) if isinstance(data, dict) else {}
    sink = open_trackers(names, log_dir.name, config, log_dir, project)
    sent = 0
    try:
        for record in MetricsLog(log_dir / "metrics.jsonl").read():
            step = record.get("step")
            if isinstance(step, int):
                sink.log(step, record)
                sent += 1
    finally:
        sink.close()
    return sent


# ----- the fan-out every loop talks to -----


class _Trackers:
    """Sends each line to every open tracker, once per step, dropping a tracker that fails."""

    def __init__(
        self, sinks: dict[str, MetricsSink], state_path: Path, state: dict[str, object]
    ) -> None:
        self.sinks = sinks
        self.state_path = state_path
        self.state = state
        last = state.get("last_step")
        self.last_step = last if isinstance(last, int) else -1

    def log(self, step: int, metrics: Mapping[str, object]) -> None:
        if step <= self.last_step:
            return  # sent before a resume; the tracker keeps the first values
        numbers = _numbers(metrics)
        for name, sink in list(self.sinks.items()):
            try:
                sink.log(step, numbers)
            except Exception as e:
                print(
                    f"warning: log_to={name} failed ({_first_line(e)}); no longer mirroring "
                    "metrics to it (metrics.jsonl is complete)",
                    file=sys.stderr,
                )
                del self.sinks[name]
        self.last_step = step
        self.state["last_step"] = step
        _write_state(self.state_path, self.state)

    def close(self) -> None:
        for name, sink in self.sinks.items():
            try:
                sink.close()
            except Exception as e:
                print(f"warning: log_to={name}: closing failed ({_first_line(e)})", file=sys.stderr)
        self.sinks = {}


# ----- trackio and wandb -----


class _TrackerRun(Protocol):
    """What trackio's and wandb's run objects have in common."""

    def log(self, data: dict[str, float], step: int | None = None) -> None: ...

    def finish(self) -> None: ...


class _RunSink:
    """A trackio or wandb run as a `MetricsSink`."""

    def __init__(self, run: _TrackerRun, finish: Callable[[], object] | None = None) -> None:
        self.run = run
        self.finish = finish or run.finish
        """How to end the run: trackio's module-level `finish` also forgets it as the current
        run (else its exit hook finishes it a second time)."""

    def log(self, step: int, metrics: Mapping[str, object]) -> None:
        self.run.log(_numbers(metrics), step=step)

    def close(self) -> None:
        with contextlib.redirect_stdout(sys.stderr):  # trackio prints; keep stdout clean
            self.finish()


def _open_trackio(
    run_name: str, config_json: object, log_dir: Path, project: str, state: dict[str, object]
) -> MetricsSink:
    trackio = _import("trackio")
    entry = _entry(state, "trackio")
    name = entry.get("name")
    if not isinstance(name, str):
        name = f"{run_name}-{time.strftime('%Y%m%d-%H%M%S')}"  # unique: a --fresh rerun is new
    wanted: dict[str, object] = {
        "project": project,
        "name": name,
        "config": flat_config(config_json),
        "resume": "allow",
        "embed": False,
        "auto_log_cpu": False,
        "auto_log_gpu": False,
    }
    accepted = inspect.signature(trackio.init).parameters
    try:
        with contextlib.redirect_stdout(sys.stderr):
            run = trackio.init(**{k: v for k, v in wanted.items() if k in accepted})
    except Exception as e:
        raise UserError(f"log_to=trackio could not start: {_first_line(e)}") from None
    entry["name"] = name
    return _RunSink(run, finish=trackio.finish)


def _open_wandb(
    run_name: str, config_json: object, log_dir: Path, project: str, state: dict[str, object]
) -> MetricsSink:
    wandb = _import("wandb")
    entry = _entry(state, "wandb")
    run_id = entry.get("id")
    if not isinstance(run_id, str):
        run_id = secrets.token_hex(8)
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or project,
            name=run_name,
            id=run_id,
            resume="allow",
            dir=str(log_dir),
            config=flat_config(config_json),
        )
    except Exception as e:
        raise UserError(
            f"log_to=wandb could not start ({_first_line(e)}); run `wandb login`, or set "
            "WANDB_MODE=offline to log locally and `wandb sync` later"
        ) from None
    entry["id"] = run_id
    return _RunSink(run)


_OPENERS = {"trackio": _open_trackio, "wandb": _open_wandb}


# ----- helpers -----


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise UserError(f"log_to={name} needs the {name} package: {TRACKERS[name]}") from None


def flat_config(tree: object, prefix: str = "") -> dict[str, object]:
    """A config tree (`cookbook.runs.config_io.config_to_json`) as dotted keys, for trackers'
    config tables: `{"env": "TicTacToeEnvBuilder", "env.opponent": "random",
    "learning_rate": 0.002, ...}`."""
    if not isinstance(tree, dict):
        return {prefix.rstrip(".") or "config": tree}
    out: dict[str, object] = {}
    for key, value in tree.items():
        if key == "__chz__":
            if prefix:
                out[prefix.rstrip(".")] = str(value).rpartition(":")[2]
        elif isinstance(value, dict) and value:
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _entry(state: dict[str, object], name: str) -> dict[str, object]:
    entry = state.get(name)
    if not isinstance(entry, dict):
        entry = {}
        state[name] = entry
    return entry


def _numbers(metrics: Mapping[str, object]) -> dict[str, float]:
    """Finite numbers only (trackers chart numbers; metrics.jsonl keeps the rest)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def _read_state(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(path: Path, state: dict[str, object]) -> None:
    """Replace the state file (no fsync: it is rewritten every step, and losing the last update
    to a power cut only means a step sent twice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
