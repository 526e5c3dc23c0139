"""Runs and sweeps read back from disk, for `cookbook report` and for notebooks.

A run directory holds `config.json` and `metrics.jsonl` (`cookbook.runs`); a sweep directory
holds `sweep.json` and one run directory per run (`cookbook.sweep`). Nothing here imports the
training code or the plugins: the config is read as its JSON tree.

    from cookbook.analysis import load_run, load_sweep, load_runs
    run = load_run("runs/rl-tictactoe")
    run.series("reward/mean")          # [(step, value), ...]
    sweep = load_sweep("runs/sweep-rl-tictactoe")
    [r.params for r in sweep.runs]      # {"learning_rate": "1e-3", "seed": "0"}, ...
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cookbook.errors import UserError
from cookbook.runs.metrics import MetricsLog, MetricValue
from cookbook.sweep.state import SweepState, is_sweep_dir, read_state

if TYPE_CHECKING:
    from cookbook.runs.config_io import JSON

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
WALL_TIME = "wall_time"
"""Name of the derived metric: seconds of training steps up to and including a step (the sum of
the loops' `time/step`; start-up, warm start and time between resumes are not counted)."""

_IGNORED_IN_DIFFS = frozenset({"log_dir", "num_threads", "show_progress"})
"""Config keys that never make two runs different experiments."""


@dataclass
class Run:
    """One run directory, read back."""

    path: Path
    name: str
    config: dict[str, JSON]
    """The resolved config as written in config.json (a JSON tree, `__chz__` marks classes)."""
    command: list[str]
    """The command line that made the run."""
    records: list[dict[str, MetricValue]]
    """metrics.jsonl, one record per step."""
    params: dict[str, str] = field(default_factory=dict)
    """What sets it apart from the runs it was loaded with: the sweep's swept values, else the
    config keys that differ between them (`load_runs` fills it in)."""
    status: str | None = None
    """Its status in a sweep (`done`, `running`, `failed`, ...); `None` outside a sweep."""
    sweep: Path | None = None
    """The sweep directory it belongs to, if any."""

    @property
    def steps(self) -> int:
        """Training steps logged: records with a step time (`time/step`), or every record with a
        step when none has one (an SFT run's closing eval record is not a step)."""
        stepped = [r for r in self.records if isinstance(r.get("step"), int)]
        timed = [r for r in stepped if _number(r.get("time/step")) is not None]
        return len({r["step"] for r in (timed or stepped)})

    def metric_names(self) -> list[str]:
        """Every numeric metric the run logged (plus `wall_time` when it logged step times)."""
        names: dict[str, None] = {}
        for record in self.records:
            for key, value in record.items():
                if key != "step" and _number(value) is not None:
                    names[key] = None
        if "time/step" in names:
            names[WALL_TIME] = None
        return list(names)

    def series(self, metric: str) -> list[tuple[int, float]]:
        """`(step, value)` of every record that logged `metric` as a finite number."""
        if metric == WALL_TIME:
            return sorted(self.wall_times().items())
        out = []
        for record in self.records:
            step, value = record.get("step"), _number(record.get(metric))
            if isinstance(step, int) and value is not None:
                out.append((step, value))
        return out

    def wall_times(self) -> dict[int, float]:
        """Seconds of training up to the end of each step (see `WALL_TIME`)."""
        out: dict[int, float] = {}
        total = 0.0
        for record in sorted(self.records, key=_step_of):
            step, dt = record.get("step"), _number(record.get("time/step"))
            if not isinstance(step, int):
                continue
            if dt is not None:
                total += dt
            if dt is not None or out:  # a record without a step time (a final eval) keeps
                out[step] = total  # the time reached
        return out

    def flat_config(self) -> dict[str, str]:
        """The config flattened to dotted keys with text values (`env.opponent`)."""
        return flatten_config(self.config)

    def load_config(self) -> object:
        """The config rebuilt as the chz objects the run used (imports the run's plugins)."""
        from cookbook.runs.config_io import load_config_file

        return load_config_file(self.path / CONFIG_FILE)


@dataclass
class Sweep:
    """A sweep directory, read back."""

    path: Path
    state: SweepState
    runs: list[Run]
    """The runs that have a directory yet, in the sweep's order."""

    @property
    def swept_keys(self) -> list[str]:
        """Keys whose value differs between runs."""
        return self.state.swept_keys


def is_run_dir(path: Path) -> bool:
    """Whether `path` holds a run (a config.json or a metrics.jsonl)."""
    return (path / CONFIG_FILE).is_file() or (path / METRICS_FILE).is_file()


def load_run(path: str | Path, name: str | None = None) -> Run:
    """Read the run in `path`; a one-line `UserError` when it is not a run directory."""
    path = Path(path)
    if not path.is_dir():
        what = "a file" if path.exists() else "no such directory"
        raise UserError(f"{path}: {what}; give a run directory (holding {CONFIG_FILE})")
    if not is_run_dir(path):
        hint = "; it is a sweep: use load_sweep" if is_sweep_dir(path) else ""
        raise UserError(f"{path} is not a run directory (no {CONFIG_FILE} or {METRICS_FILE}){hint}")
    config: dict[str, JSON] = {}
    command: list[str] = []
    config_path = path / CONFIG_FILE
    if config_path.is_file():
        try:
            data = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{config_path} is unreadable ({e})") from None
        if isinstance(data, dict):
            tree = data.get("config", data)
            config = tree if isinstance(tree, dict) else {}
            raw_command = data.get("command")
            if isinstance(raw_command, list):
                command = [str(a) for a in raw_command]
    records = MetricsLog(path / METRICS_FILE).read()
    return Run(path=path, name=name or path.name, config=config, command=command, records=records)


def load_sweep(path: str | Path) -> Sweep:
    """Read the sweep in `path` and the runs it has started."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such directory; give a sweep directory (holding sweep.json)")
    if not is_sweep_dir(path):
        hint = "; it is a run: use load_run" if is_run_dir(path) else ""
        raise UserError(f"{path} is not a sweep directory (no sweep.json){hint}")
    state = read_state(path)
    runs = []
    for record in state.runs:
        run_path = path / record.name
        if not is_run_dir(run_path):
            continue  # not started yet
        run = load_run(run_path)
        run.params = dict(record.overrides)
        run.status = record.status
        run.sweep = path
        runs.append(run)
    return Sweep(path=path, state=state, runs=runs)


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run under `paths`: a run directory, a sweep directory (its runs), or a directory
    of those. Runs outside a sweep get as `params` the config keys that differ between all
    the runs loaded; a sweep's runs keep its swept values, plus such differences when runs of
    several sweeps or single runs are mixed."""
    runs: list[Run] = []
    sweeps = 0
    for raw in paths:
        path = Path(raw)
        if is_sweep_dir(path):
            runs.extend(load_sweep(path).runs)
            sweeps += 1
        elif is_run_dir(path):
            runs.append(load_run(path))
        elif path.is_dir() and (children := _runs_and_sweeps_in(path)):
            for child in children:
                if is_sweep_dir(child):
                    runs.extend(load_sweep(child).runs)
                    sweeps += 1
                else:
                    runs.append(load_run(child))
        elif path.is_dir():
            raise UserError(
                f"{path} is not a run or a sweep (no {CONFIG_FILE}, {METRICS_FILE} or sweep.json, "
                "and no run or sweep directly inside it)"
            )
        else:
            load_run(path)  # raises the one-line error for a missing path or a file
    _make_names_unique(runs)
    if not (sweeps == 1 and all(run.sweep is not None for run in runs)):
        differences = config_differences(runs)
        for run in runs:
            run.params = {**run.params, **differences[run.name]}
    return runs


def config_differences(runs: Sequence[Run]) -> dict[str, dict[str, str]]:
    """For each run (by name), the flattened config keys whose values differ between `runs`."""
    flats = [run.flat_config() for run in runs]
    keys: dict[str, None] = {}
    for flat in flats:
        keys.update(dict.fromkeys(flat))
    differing = [
        key
        for key in keys
        if key.split(".")[-1] not in _IGNORED_IN_DIFFS
        and len({flat.get(key, "-") for flat in flats}) > 1
    ]
    return {
        run.name: {key: flat.get(key, "-") for key in differing}
        for run, flat in zip(runs, flats, strict=True)
    }


def flatten_config(tree: JSON, prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": 1}}` -> `{"a.b": "1"}`; a nested config's class shows under its own key."""
    out: dict[str, str] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "__chz__":
                if prefix:
                    out[prefix.rstrip(".")] = str(value).rpartition(":")[2]
                continue
            out.update(flatten_config(value, f"{prefix}{key}."))
        return out
    key = prefix.rstrip(".")
    out[key] = _text(tree)
    return out


def _text(value: JSON) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return format(value, "g")
    return json.dumps(value)


def _runs_and_sweeps_in(path: Path) -> list[Path]:
    return sorted(
        child
        for child in path.iterdir()
        if child.is_dir() and (is_sweep_dir(child) or is_run_dir(child))
    )


def _make_names_unique(runs: list[Run]) -> None:
    """Runs of two sweeps may share a name: prefix those with their parent directory's."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.name] = counts.get(run.name, 0) + 1
    for run in runs:
        if counts[run.name] > 1:
            run.name = f"{run.path.parent.name}/{run.path.name}"


def _number(value: object) -> float | None:
    """`value` as a float when it is a finite number (not a bool), else `None`."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _step_of(record: dict[str, MetricValue]) -> int:
    step = record.get("step")
    return step if isinstance(step, int) else -1
