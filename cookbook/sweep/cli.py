"""`cookbook sweep rl|sft ...`: run a grid or a random search of training runs.

    cookbook sweep rl --env tictactoe learning_rate=1e-3,3e-3 group_size=4,8 seed=0..2
    cookbook sweep rl --env tictactoe --samples 8 learning_rate=loguniform:1e-4:1e-2 seed=0,1
    cookbook sweep sft --dataset tictactoe-demos --parallel 2 learning_rate=1e-3,3e-3

Imported for `cookbook --help`: nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from cookbook.errors import UserError
from cookbook.sweep.spec import SweepSpec, parse_sweep_args, run_args, run_name
from cookbook.sweep.state import (
    LOCK_FILE,
    RunRecord,
    SweepState,
    is_sweep_dir,
    read_state,
    sweep_lock,
)

USAGE = (
    "cookbook sweep rl --env NAME [options] KEY=VALUES ...\n"
    "       cookbook sweep sft --dataset NAME [options] KEY=VALUES ..."
)

VALUES_HELP = """\
values:
  key=v                  fixed: every run gets key=v
  key=v1,v2,v3           grid: one run per value, crossed with the other grid keys
  key=LO..HI             grid over the integers LO..HI (seed=0..4)
  key=loguniform:LO:HI   random (with --samples N): log-uniform in [LO, HI]
  key=uniform:LO:HI      random: uniform in [LO, HI]
  key=randint:LO:HI      random: an integer in LO..HI
  key=choice:v1,v2       random: one of the values

  Any option of the command works, env or dataset options included (env.opponent=random,
  optimal). A key whose option is a list keeps `a,b` as one list, as the command reads it
  (evals=a,b); separate its alternatives with ';' ('evals=a,b;c'). Write a literal comma in
  a value as '\\,'.

Each run is a `cookbook rl|sft` subprocess logging to DIR/<run>/; DIR/sweep.json records the
runs and their status. Rerunning the same command resumes the sweep: finished runs are
skipped, interrupted ones resume from their checkpoints. `cookbook report DIR` shows the
results."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one-line `UserError`s."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"cookbook sweep: {message} (`cookbook sweep --help` shows the usage)")


def _parser() -> _Parser:
    parser = _Parser(
        prog="cookbook sweep",
        usage=USAGE,
        description="Run a grid or a random search of training runs, N at a time.",
        epilog=VALUES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument("loop", choices=["rl", "sft"], help="the training command to sweep")
    parser.add_argument("--env", metavar="NAME", help="the env (cookbook sweep rl)")
    parser.add_argument("--dataset", metavar="NAME", help="the dataset (cookbook sweep sft)")
    parser.add_argument("--dir", help="the sweep directory (default runs/sweep-<command>-<name>)")
    parser.add_argument(
        "--samples",
        type=int,
        metavar="N",
        help="random search: draw N points of the random keys (each crossed with the grid)",
    )
    parser.add_argument(
        "--search-seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the random draws (default 0)",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        default=None,
        help="runs at a time (default 1; with --ray, all); the CPU threads are divided "
        "between them",
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run on a Ray cluster: HOST:PORT, ray://HOST:PORT, auto, or local (a private "
        "one on this machine); needs pip install 'cookbook[ray]'",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the runs, start nothing")
    parser.add_argument(
        "--fresh", action="store_true", help="delete the sweep directory first and start over"
    )
    parser.add_argument("args", nargs="*", metavar="KEY=VALUES", help="options and swept values")
    return parser


@dataclass
class _Plan:
    """Everything decided before a run starts."""

    base: list[str]
    """`["rl", "--env", "tictactoe"]`: the command every run starts with."""
    spec: SweepSpec
    runs: list[RunRecord]
    sweep_dir: Path
    parallel: int
    threads: int
    """CPU threads per run."""
    thread_args: list[str]
    thread_env: dict[str, str]
    absolute_dirs: bool
    """Pass absolute log_dirs (runs start on other machines)."""

    def run_args(self, run: RunRecord) -> list[str]:
        """The `key=value` arguments of `run`, log_dir included."""
        log_dir = self.sweep_dir / run.name
        if self.absolute_dirs:
            log_dir = log_dir.absolute()
        return [*run_args(self.spec.fixed, run.overrides), *self.thread_args, f"log_dir={log_dir}"]


def main(argv: list[str]) -> int:
    """Run `cookbook sweep` with `argv` (the arguments after `sweep`); returns the exit status:
    0 when every run is done, 1 when some failed. User mistakes raise `UserError`."""
    parser = _parser()
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(parser.format_help().rstrip())
        return 0
    opts = parser.parse_intermixed_args(argv)
    from cookbook.sweep.loops import LOOPS, resolve

    loop = LOOPS[opts.loop]
    name: str | None = opts.env if loop.flag == "--env" else opts.dataset
    other = "--dataset" if loop.flag == "--env" else "--env"
    if (opts.dataset if loop.flag == "--env" else opts.env) is not None:
        raise UserError(f"cookbook sweep {loop.command} takes {loop.flag}, not {other}")
    if not name:
        raise UserError(
            f"cookbook sweep {loop.command} needs {loop.flag} NAME "
            f"(`cookbook list {loop.kind}s` shows them)"
        )
    if opts.parallel is not None and opts.parallel < 1:
        raise UserError(f"--parallel must be at least 1, got {opts.parallel}")

    target = resolve(loop.command, name)
    spec = parse_sweep_args(
        opts.args,
        is_list_key=target.is_list_key,
        samples=opts.samples,
        search_seed=opts.search_seed,
    )
    target.check_keys([*spec.fixed, *spec.swept_keys])
    runs = [
        RunRecord(name=run_name(i, overrides), overrides=overrides)
        for i, overrides in enumerate(spec.runs())
    ]
    parallel = opts.parallel or (len(runs) if opts.ray else 1)
    threads = _threads_per_run(spec, parallel, on_ray=opts.ray is not None)
    thread_args, thread_env = _thread_settings(spec, threads, "num_threads" in target.types)
    plan = _Plan(
        base=[loop.command, loop.flag, name],
        spec=spec,
        runs=runs,
        sweep_dir=Path(opts.dir or f"runs/sweep-{loop.command}-{_safe(name)}"),
        parallel=parallel,
        threads=threads,
        thread_args=thread_args,
        thread_env=thread_env,
        absolute_dirs=opts.ray is not None,
    )
    for run in plan.runs:  # every run's arguments, checked as the command will check them
        target.check_run(plan.run_args(run))
    if opts.dry_run:
        _print_plan(plan)
        return 0
    return _run(plan, opts, argv)


def _run(plan: _Plan, opts: argparse.Namespace, argv: list[str]) -> int:
    from cookbook.sweep.launch import Job, Launcher, LocalLauncher, connect_ray
    from cookbook.sweep.runner import run_sweep

    sweep_dir = plan.sweep_dir
    if not is_sweep_dir(sweep_dir) and _has_other_files(sweep_dir):
        raise UserError(
            f"{sweep_dir} is not empty and holds no sweep; pick another --dir "
            "(a sweep directory holds only its runs and sweep.json)"
        )
    with sweep_lock(sweep_dir):
        # Connect first: a cluster that cannot be reached leaves no sweep behind.
        launcher: Launcher = (
            connect_ray(opts.ray, num_cpus=os.cpu_count()) if opts.ray else LocalLauncher()
        )
        try:
            state = _open_state(plan, argv, opts.fresh)
        except BaseException:
            launcher.close()
            raise
        cwd = str(Path.cwd())

        def make_job(run: RunRecord) -> Job:
            return Job(
                name=run.name,
                args=[*plan.base, *plan.run_args(run)],
                cwd=cwd,
                env=plan.thread_env,
                log_path=(sweep_dir / "logs" / f"{run.name}.log").absolute(),
                threads=plan.threads,
            )

        where = f"on Ray ({opts.ray})" if opts.ray else f"{plan.threads} thread(s) each"
        print(
            f"sweep {sweep_dir}: {len(state.runs)} runs of cookbook {' '.join(plan.base)}, "
            f"{plan.parallel} at a time, {where}",
            file=sys.stderr,
        )
        try:
            result = run_sweep(sweep_dir, state, make_job, launcher, plan.parallel)
        finally:
            launcher.close()
    print(f"sweep {sweep_dir}: {result.done} of {len(state.runs)} runs done")
    for run in result.failed:
        print(f"  FAILED {run.name}: {run.error}  (output: {sweep_dir}/logs/{run.name}.log)")
    print(f"  cookbook report {sweep_dir}    tables and plots of the results")
    return 0 if not result.failed else 1


def _open_state(plan: _Plan, argv: list[str], fresh: bool) -> SweepState:
    """The sweep's state: read back for a rerun of the same sweep, or new."""
    sweep_dir = plan.sweep_dir
    command, target = plan.base[0], plan.base[2]
    definition = json.loads(json.dumps(plan.spec.definition()))
    if fresh and is_sweep_dir(sweep_dir):
        for child in sweep_dir.iterdir():
            if child.name == LOCK_FILE:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    if is_sweep_dir(sweep_dir):
        state = read_state(sweep_dir)
        if (state.command, state.target, state.definition) != (command, target, definition):
            described = _describe(state.command, state.target, state.definition)
            raise UserError(
                f"{sweep_dir} holds another sweep ({described}); rerun that sweep's command to "
                "resume it, pick another --dir, or add --fresh to delete it and start this one"
            )
        return state
    state = SweepState(
        command=command,
        target=target,
        definition=definition,
        runs=plan.runs,
        argv=["cookbook", "sweep", *argv],
    )
    state.save(sweep_dir)
    return state


def _describe(command: str, target: str, definition: dict[str, object]) -> str:
    swept = [*_keys(definition.get("grid")), *_keys(definition.get("random"))]
    return f"{command} on {target}, sweeping {', '.join(swept) or 'nothing'}"


def _keys(value: object) -> list[str]:
    return [str(k) for k in value] if isinstance(value, dict) else []


def _has_other_files(path: Path) -> bool:
    return path.is_dir() and any(child.name != LOCK_FILE for child in path.iterdir())


def _threads_per_run(spec: SweepSpec, parallel: int, on_ray: bool) -> int:
    """CPU threads for each run: the machine's divided between the parallel runs locally, one
    on Ray (where the cluster places tasks by free CPUs), or the user's own num_threads."""
    fixed = spec.fixed.get("num_threads")
    if fixed is not None and fixed.isdigit() and int(fixed) > 0:
        return int(fixed)
    if on_ray:
        return 1
    return max(1, _cpu_count() // parallel)


def _thread_settings(
    spec: SweepSpec, threads: int, loop_has_option: bool
) -> tuple[list[str], dict[str, str]]:
    """`num_threads=N` for loops that take it (unless the user sets or sweeps it), and the
    thread variables of the math libraries for every run."""
    if "num_threads" in spec.swept_keys:
        return [], {}
    user_set = "num_threads" in spec.fixed
    args = [f"num_threads={threads}"] if loop_has_option and not user_set else []
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return args, env


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _safe(name: str) -> str:
    return name.replace(":", "-").replace("/", "-")


def _print_plan(plan: _Plan) -> None:
    print(
        f"sweep {plan.sweep_dir}: {len(plan.runs)} runs of cookbook {' '.join(plan.base)}, "
        f"{plan.parallel} at a time, {plan.threads} thread(s) each (dry run: nothing started)"
    )
    if plan.spec.fixed:
        print("every run: " + " ".join(f"{k}={v}" for k, v in plan.spec.fixed.items()))
    keys = plan.spec.swept_keys
    rows = [["RUN", *keys]] + [[run.name, *(run.overrides[k] for k in keys)] for run in plan.runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
