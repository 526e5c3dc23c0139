"""The RL loop: sample groups from the env, centre rewards per group, train, repeat.

`Config` is the whole description of a run: it holds the env's builder, the evaluator builders and
the warm-start dataset builder themselves, so `config.json` (written with
`cookbook.runs.config_to_json`) reruns it exactly, and the loop runs from Python without the
plugin registry. Its fields are the `KEY=VALUE` options of `cookbook rl`; `Config.for_env` builds
one from a registered env exactly as the command line does (recommended settings included):

    from cookbook.rl.train import Config, main
    main(Config(env=MyEnvBuilder(), log_dir="runs/mine", max_steps=50))
    main(Config.for_env("tictactoe", "env.opponent=optimal", max_steps=300))

One step, in `train`: (1) make sure the batches this step may use are being sampled, every env of
every group concurrently; (2) wait for this step's batch; (3) advantages, datums,
`forward_backward` + `optim_step`, while the next batch's envs are made and observed; (4) new
sampler weights, with which that batch starts sampling; (5) evals, the step's metrics,
transcript and progress handed to a worker thread (`step_log.py`), a checkpoint. With
`max_steps_off_policy = k > 0`, batches up to k steps ahead are sampled with the weights of the
moment while the current one trains. Before the first step the evals run once on the starting
weights (`eval_before_rl`).

With `search` set (`cookbook/rl/search.py`), (1)-(3) are instead one search of the step's roots
(every candidate action played out in a fork of its env, with the current weights) and a
`cross_entropy` update on the best candidates; (4) and (5) are the same. With
`max_steps_off_policy = k > 0` the searches of up to k later steps run while the current step
trains (with the weights of the moment, one update old: at horizon 1 the policy plays no
turn, so nothing is stale). On the local CPU backend the update and the search share the GIL,
so the overlap is partial (tic-tac-toe on 2 cores: 0.21-0.23 s a step with whole-game branches,
0.24-0.31 s without).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import chz

from cookbook.errors import UserError
from cookbook.eval.types import EvaluatorBuilder
from cookbook.lr_schedule import (
    LR_PROGRESS,
    LRSchedule,
    decayed_rate,
    schedule_check,
    step_progress,
)
from cookbook.rl.search import (
    ProbeMeans,
    RevisitStore,
    SearchBatch,
    SearchConfig,
    SearchReplay,
)
from cookbook.rl.serial_sampling import Gate, SerialSamplingClient
from cookbook.rl.types import RLDatasetBuilder
from cookbook.rl.warm_start import WarmStartConfig

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.backends.protocol import SamplingClient, ServiceClient, TrainingClient
    from cookbook.eval.types import Evaluator
    from cookbook.rl.data import FloatArray, TrainSequence
    from cookbook.rl.rollouts import (
        BatchRollout,
        BusyTimer,
        SampledTokens,
        SamplingPolicy,
        TokenPolicy,
    )
    from cookbook.rl.types import Observation, RLDataset, StopCondition
    from cookbook.runs.checkpoints import Checkpoint
    from cookbook.runs.run_dir import RunDir


@chz.chz
class Config:
    """Everything an RL run needs. Build one from Python, or let `cookbook rl` build it."""

    # ----- what to train on, and where the run lives
    env: RLDatasetBuilder
    """The env (what a plugin registers), with its options set (`env.KEY=VALUE`)."""
    log_dir: str
    """Run directory: config.json, metrics.jsonl, checkpoints, transcripts. An existing run
    there is resumed (`cookbook rl` default: runs/rl-<env>)."""

    # ----- model and backend
    model_name: str = "tiny"
    """Base model: `tiny` (built in, trains on CPU) or a local Hugging Face directory."""
    backend: str = "local"
    """`local` (in-process PyTorch) or `tinker` (the Tinker service, needs TINKER_API_KEY)."""
    base_url: str | None = None
    """Server of `backend=tinker` (a `cookbook serve`, say; None: $TINKER_BASE_URL, else the
    Tinker service)."""
    device: str | None = None
    """Torch device for the local backend (default: CUDA when present, else CPU)."""
    num_threads: int | None = None
    """Torch CPU threads while the run lasts (local backend). None: 1 for the tiny model, whose
    ops are too small for a thread pool to pay off (a training step measured ~7 ms on one thread
    against ~100 ms on two busy cores), torch's own default for other models."""
    lora_rank: int = 32
    """LoRA rank (Hugging Face models; the tiny model trains all weights)."""
    seed: int = 0
    """Seeds the model initialisation, the env's random choices and every sample."""
    deterministic: bool = False
    """Send sampling requests one at a time, so a rerun with the same seed replays exactly on
    the same machine (batched requests differ in the last bits, and runs part after a few
    dozen steps; `cookbook/rl/serial_sampling.py` says why). Several times slower."""
    load_checkpoint_path: str | None = None
    """Start from these weights (a checkpoint state path or a run directory) instead of the base
    model. Ignored when the run resumes from its own checkpoint."""

    # ----- optimiser and loss
    learning_rate: float = 1e-3
    """Adam learning rate (1e-3 suits the tiny model; 3e-3 was unstable in the prototype)."""
    lr_schedule: LRSchedule = "constant"
    """`constant`, or a decay to 0 at `max_steps` (`linear`, `cosine`; a function of the step,
    so a resumed run continues it). A run that stops at `max_minutes` first stops part-way,
    unless `lr_schedule_by_time` is set."""
    lr_schedule_by_time: bool = False
    """With `max_minutes`, the decay also follows the clock: a step's progress along it is the
    larger of its share of `max_steps` and the share already spent of this call's time after the
    warm start, so the rate reaches 0 at whichever limit comes first. A slower machine decays in
    fewer steps (seeded reruns then differ). A resumed run goes on from the progress its
    checkpoint reached."""
    adam_beta1: float = 0.9
    """Adam beta1."""
    adam_beta2: float = 0.95
    """Adam beta2."""
    adam_eps: float = 1e-8
    """Adam epsilon."""
    grad_clip_norm: float = 0.0
    """Clip the global gradient norm to this (0: no clipping)."""
    loss_fn: str = "importance_sampling"
    """Policy loss: importance_sampling, ppo, cispo or dro (tinker semantics)."""
    loss_fn_config: dict[str, float] | None = None
    """Extra loss settings passed to the backend (e.g. clip thresholds for ppo)."""
    num_substeps: int = 1
    """Optimiser steps per batch (the batch is split into this many parts)."""
    kl_penalty_coef: float = 0.0
    """Weight of a KL penalty against the starting policy (0: off)."""

    # ----- sampling and advantages
    group_size: int = 8
    """Envs per group (rewards are centred within a group)."""
    groups_per_batch: int = 16
    """Groups per step."""
    max_tokens: int = 16
    """Longest action the policy may sample per turn."""
    temperature: float = 1.0
    """Sampling temperature."""
    remove_constant_reward_groups: bool = True
    """Drop groups whose trajectories all got the same reward (they carry no signal)."""
    scale_advantages_by_std: bool = False
    """Divide each group's centred rewards by the group's standard deviation."""

    # ----- length of the run, off-policy sampling, env faults
    max_steps: int | None = 100
    """Steps to run (None: one pass over the env's training batches)."""
    max_minutes: float = 0.0
    """Also stop after this many minutes of wall time in this call, warm start included (0: no
    limit). The step running when time is up is the last: it evaluates and checkpoints."""
    max_steps_off_policy: int = 0
    """How many steps ahead batches may be sampled (or searched, with `search`) while
    training (0: fully on-policy)."""
    env_step_timeout_s: float = 60.0
    """An env call (make_envs, initial_observation, step, compute_group_rewards) running longer
    loses its group (0: no limit)."""
    max_error_fraction: float = 0.5
    """Stop the run when a step loses more than this fraction of its groups to env errors or
    timeouts."""

    # ----- evals, checkpoints, logs
    eval_every: int = 10
    """Run the evaluators after every this many steps (0: only at the end)."""
    eval_before_rl: bool = True
    """Also run them once before the first RL step (after the warm start), logged in the step-0
    line as `eval_before_rl/<name>/<metric>`: where the policy started. A resumed run keeps the
    result of its first start."""
    evals: dict[str, EvaluatorBuilder] = chz.field(default_factory=dict)
    """Evaluators by name, run beside the env's own test split (`evals=a,b` names registered
    evals; `evals.NAME.KEY=VALUE` sets their options)."""
    test_max_batches: int | None = 4
    """Batches of the env's test split each eval rolls out (None: all)."""
    save_every: int = 10
    """Checkpoint after every this many steps (0: only at the end)."""
    transcript_groups: int = 2
    """Groups per step written to transcripts/ as readable text."""
    show_progress: bool = True
    """Live progress display on stderr."""
    log_to: str | None = None
    """Also mirror each metrics line to experiment trackers: `trackio`, `wandb` or both
    (`log_to=trackio,wandb`; `cookbook.trackers`). metrics.jsonl stays the record."""

    # ----- search targets instead of sampled rollouts
    search: SearchConfig | None = None
    """Train on one-ply search targets (expert iteration, `cookbook/rl/search.py`): every
    candidate action of each root is played out in a fork of the env and `cross_entropy` goes
    to the best ones. Needs an env that can fork (two-player games against an opponent);
    `search.horizon=1` (any `search.KEY=VALUE`) turns it on. Roots per step: the envs of the
    step's batch; loss_fn, temperature and kl_penalty_coef do not apply."""

    # ----- supervised warm start
    warm_start: WarmStartConfig | None = None
    """A supervised phase run before RL (`cookbook rl` sets it from the env's registered
    warm-start dataset when the model starts untrained; `warm_start.dataset=NAME` picks
    another, `warm_start=None` turns it off)."""

    @classmethod
    def for_env(cls, env: str, /, *overrides: str, **values: object) -> Config:
        """The config `cookbook rl --env ENV OVERRIDES...` runs: the registered env, its
        warm-start dataset and recommended settings, then `overrides` (`KEY=VALUE` strings, as
        on the command line) and `values` (Python values of top-level fields)."""
        from cookbook.runs.blueprints import rl_config

        return rl_config(env, overrides, values=values)


CHANGEABLE_ON_RESUME = frozenset(
    {
        "max_minutes",
        "num_threads",
        "env_step_timeout_s",
        "max_error_fraction",
        "transcript_groups",
        "eval_before_rl",
        "deterministic",
    }
)
"""Config fields a resumed RL run may change besides those of every loop
(`cookbook.runs.setup.CHANGEABLE_ON_RESUME`): its time limit, threads, env fault limits and how
many transcripts it writes, whether it evaluates before RL and whether it samples one request at
a time."""


class RolloutFailureError(UserError):
    """Too many groups of a step were lost to env errors or timeouts."""


@dataclass
class RunSummary:
    """What `train` returns."""

    log_dir: Path
    steps_run: int
    """Steps run by this call (0 when the run was already complete)."""
    last_metrics: dict[str, float] = field(default_factory=dict)
    time_s: float = 0.0
    """Wall time of this call, warm start included."""
    stopped_by_time: bool = False
    """Whether `max_minutes` ended the run before `max_steps`."""


def validate_config(config: Config) -> None:
    """Raise `UserError` for settings that cannot work: before anything heavy, the run directory
    included (`cookbook.runs.checks`)."""
    from cookbook.backends.protocol import loss_fn_names
    from cookbook.runs.checks import (
        check_episodes_fit,
        check_lora_rank,
        check_seed,
        check_start_inputs,
        finite_numbers,
        require,
    )

    rl_losses = [name for name in loss_fn_names() if name != "cross_entropy"]
    checks = [
        (config.group_size >= 1, "group_size must be at least 1"),
        (config.groups_per_batch >= 1, "groups_per_batch must be at least 1"),
        (config.max_tokens >= 1, "max_tokens must be at least 1"),
        (config.temperature >= 0, "temperature must be >= 0"),
        (config.learning_rate > 0, "learning_rate must be > 0"),
        schedule_check(config.lr_schedule),
        (0 <= config.adam_beta1 < 1, "adam_beta1 must be in [0, 1)"),
        (0 <= config.adam_beta2 < 1, "adam_beta2 must be in [0, 1)"),
        (config.adam_eps > 0, "adam_eps must be > 0"),
        (config.grad_clip_norm >= 0, "grad_clip_norm must be >= 0 (0: no clipping)"),
        (config.num_substeps >= 1, "num_substeps must be at least 1"),
        (config.max_steps is None or config.max_steps >= 0, "max_steps must be >= 0"),
        (config.max_steps_off_policy >= 0, "max_steps_off_policy must be >= 0"),
        (config.max_minutes >= 0, "max_minutes must be >= 0 (0: no time limit)"),
        (config.env_step_timeout_s >= 0, "env_step_timeout_s must be >= 0 (0: no limit)"),
        (
            config.num_threads is None or config.num_threads >= 1,
            "num_threads must be at least 1 (or None for the default)",
        ),
        (0 <= config.max_error_fraction <= 1, "max_error_fraction must be between 0 and 1"),
        (config.eval_every >= 0, "eval_every must be >= 0 (0: only at the end)"),
        (config.save_every >= 0, "save_every must be >= 0 (0: only at the end)"),
        (config.kl_penalty_coef >= 0, "kl_penalty_coef must be >= 0"),
        (
            config.loss_fn in rl_losses,
            f"loss_fn={config.loss_fn!r} is not an RL loss; choose one of: {', '.join(rl_losses)}",
        ),
    ]
    if config.search is not None:
        checks += config.search.problems()
        checks += [
            (config.kl_penalty_coef == 0, "search has no KL penalty: set kl_penalty_coef=0"),
        ]
    warm = config.warm_start
    if warm is not None:
        checks += [
            (warm.steps >= 0, "warm_start.steps must be >= 0 (0: no warm start)"),
            (warm.learning_rate > 0, "warm_start.learning_rate must be > 0"),
            (warm.batch_size >= 1, "warm_start.batch_size must be at least 1"),
            (warm.save_every >= 0, "warm_start.save_every must be >= 0 (0: only at the end)"),
        ]
    require(finite_numbers(config, "warm_start", "search"), checks)
    check_seed(config.seed)
    check_lora_rank(config.lora_rank)
    check_episodes_fit(
        config.group_size * config.groups_per_batch * (config.max_steps_off_policy + 1),
        "group_size x groups_per_batch x (max_steps_off_policy + 1)",
    )
    check_start_inputs(
        config.model_name, config.backend, config.load_checkpoint_path, config.log_dir
    )
    if warm is not None and warm.steps > 0:
        warm.dataset.check_inputs()


def main(
    config: Config, *, fresh: bool = False, argv: list[str] | None = None, label: str | None = None
) -> RunSummary:
    """Run (or resume) the RL run described by `config`; `fresh` deletes an existing run first.
    `label` names the env in progress lines and errors (default: its builder's class name)."""
    return asyncio.run(train(config, fresh=fresh, argv=argv, label=label))


async def train(
    config: Config, *, fresh: bool = False, argv: list[str] | None = None, label: str | None = None
) -> RunSummary:
    """The RL loop (see the module docstring), on `config.num_threads` torch threads (the
    previous setting is restored afterwards), holding the run directory's lock."""
    from cookbook.runs.setup import CHANGEABLE_ON_RESUME as ANY_LOOP
    from cookbook.runs.setup import make_service, start_run

    t_start = time.perf_counter()
    validate_config(config)
    # Before the run directory: an unreachable server or a bad key leaves nothing behind.
    service = make_service(config.backend, config.device, config.base_url)
    changeable = ANY_LOOP | CHANGEABLE_ON_RESUME
    with (
        start_run(config, config.log_dir, fresh=fresh, argv=argv, changeable=changeable) as run,
        _torch_threads(_num_threads(config)),
        _deterministic_kernels(config.deterministic and config.backend == "local"),
    ):
        label = label or type(config.env).__name__
        return await _train(config, run, service, argv, label, t_start)


async def _train(
    config: Config,
    run_dir: RunDir,
    service: ServiceClient,
    argv: list[str] | None,
    label: str,
    t_start: float,
) -> RunSummary:
    from cookbook.eval.runner import run_evaluators
    from cookbook.rl.evaluators import RLTestSetEvaluator
    from cookbook.rl.rollouts import BusyTimer
    from cookbook.rl.step_log import StepLog, StepRecord
    from cookbook.rl.warm_start import WARM_START_DONE, run_warm_start, warm_start_steps_done
    from cookbook.runs.progress import RunProgress
    from cookbook.runs.setup import (
        build_context,
        make_starting_training_client,
        save_checkpoint,
    )

    # --- model, env, evaluators
    # Blocking set-up calls run off the event loop (the tinker SDK warns about, and may stall
    # on, its synchronous methods called from async code).
    # Starting weights: own checkpoint > load_checkpoint_path > base model (+ warm start below).
    training_client = await asyncio.to_thread(
        make_starting_training_client,
        service,
        config.model_name,
        config.lora_rank,
        config.seed,
        run_dir,
        config.load_checkpoint_path,
    )
    ctx = await asyncio.to_thread(
        functools.partial(
            build_context,
            config.model_name,
            training_client,
            seed=config.seed,
            group_size=config.group_size,
            groups_per_batch=config.groups_per_batch,
            log_dir=run_dir.path,
        )
    )
    train_ds, test_ds = config.env(ctx)
    if len(train_ds) == 0:
        raise UserError(f"env {label} has no training batches")
    evaluators: dict[str, Evaluator] = {}
    if test_ds is not None and len(test_ds) > 0:
        evaluators["test"] = RLTestSetEvaluator(
            test_ds,
            config.max_tokens,
            config.temperature,
            seed=config.seed,
            step_timeout_s=config.env_step_timeout_s,
            max_batches=config.test_max_batches,
        )
    evaluators.update({name: b(ctx) for name, b in config.evals.items()})

    if config.search is not None:
        from cookbook.rl.search import check_searchable

        # before the warm start, not after it
        await check_searchable(
            train_ds, label, config.search.probe_opponent, config.search.symmetries
        )

    # --- warm start
    warm_done = warm_start_steps_done(run_dir.resume_from)
    if config.warm_start is not None and run_dir.start_step == 0:
        await run_warm_start(
            training_client, config.warm_start, ctx, run_dir, warm_done, config.show_progress
        )
        warm_done = max(warm_done, config.warm_start.steps)
    # deterministic=true: every sampling client of the run shares one request slot.
    gate = Gate() if config.deterministic else None
    reference_client = await _reference_sampler(config, training_client, run_dir, service, gate)

    # --- the loop
    num_steps = config.max_steps if config.max_steps is not None else len(train_ds)
    start_step = run_dir.start_step
    if start_step >= num_steps:
        done = f"{start_step} steps" + (
            f"; max_steps={num_steps} is lower" if start_step > num_steps else ""
        )
        print(f"{run_dir.path}: run already complete ({done}); nothing to do", file=sys.stderr)
        return RunSummary(log_dir=run_dir.path, steps_run=0)
    run_dir.start_steps(config, argv)
    timer = BusyTimer()
    sampler = await _Sampler.create(training_client, timer, sampler_step=start_step, gate=gate)
    before_rl: dict[str, float] = {}
    if evaluators and config.eval_before_rl and start_step == 0:
        before_rl = await _eval_before_rl(evaluators, sampler.client)
    t_mark = time.perf_counter()
    replay = SearchReplay(config.search.replay) if config.search and config.search.replay else None
    probe_means = ProbeMeans(config.search.probe_visits) if config.search else None
    revisits = (
        RevisitStore(config.search.revisit_size)
        if config.search and config.search.revisit
        else None
    )
    pending: dict[int, asyncio.Task[BatchRollout]] = {}
    searches: dict[int, asyncio.Task[SearchBatch]] = {}
    deadline = t_start + config.max_minutes * 60 if config.max_minutes > 0 else None
    decay = _DecayClock(config, num_steps, t_mark, deadline, run_dir.resume_from)
    out_of_time = False
    steps_run = 0
    with (
        RunProgress(
            label,
            num_steps,
            start_step=start_step,
            headline=("reward/mean",) if config.search is None else ("search/best_return_mean",),
            enabled=config.show_progress,
            time_limit_s=None if deadline is None else deadline - time.perf_counter(),
        ) as progress,
        _loop_gc(),
    ):
        log = StepLog(
            run_dir.metrics,
            run_dir.transcripts_dir,
            ctx.tokenizer,
            config.transcript_groups,
            progress,
        )
        try:
            for step in range(start_step, num_steps):
                t_step = time.perf_counter()
                upcoming: _UpcomingWeights | None = None
                lr_progress = decay.progress(step)
                adam = _adam_params(
                    config, decayed_rate(config.learning_rate, config.lr_schedule, lr_progress)
                )
                if config.search is not None:
                    # Search mode: (1)-(3) are one search of the step's roots and a
                    # cross_entropy update on its targets. The searches of up to
                    # max_steps_off_policy later steps run meanwhile (current weights).
                    for s in range(step, min(step + config.max_steps_off_policy + 1, num_steps)):
                        if s not in searches:
                            searches[s] = _launch_search(
                                config,
                                config.search,
                                train_ds,
                                s,
                                sampler,
                                timer,
                                label,
                                probe_means,
                                revisits,
                            )
                    found = await searches.pop(step)
                    t_sampled = time.perf_counter()
                    batch, train_out = await _train_on_search(
                        config,
                        config.search,
                        found,
                        step,
                        training_client,
                        adam,
                        timer,
                        label,
                        replay,
                        revisits,
                    )
                    t_trained = time.perf_counter()
                else:
                    # (1) this step's batch, and up to max_steps_off_policy later ones,
                    # sampling now.
                    for s in range(step, min(step + config.max_steps_off_policy + 1, num_steps)):
                        if s not in pending:
                            pending[s] = _launch_batch(
                                config, train_ds, s, sampler.policy(config), sampler.sampler_step
                            )
                    # (2) wait for it; a step that lost too many groups ends the run.
                    batch = await pending.pop(step)
                    t_sampled = time.perf_counter()
                    _check_lost_groups(config, batch, step, label)
                    # (3) train. Meanwhile the envs of the next batch to launch get ready; it
                    # samples with the weights this step makes, once they exist.
                    later = step + config.max_steps_off_policy + 1
                    if later < num_steps and later not in pending:
                        upcoming = _UpcomingWeights(config, timer)
                        pending[later] = _launch_batch(config, train_ds, later, upcoming, step + 1)
                    train_out = await _train_on_batch(
                        config, training_client, batch, adam, reference_client, timer
                    )
                    t_trained = time.perf_counter()
                # (4) weights for the next samples (unchanged weights: keep the sampler).
                if train_out.skipped:
                    sampler.sampler_step = step + 1  # same weights as after step + 1
                else:
                    await sampler.refresh(step + 1)
                if upcoming is not None:
                    upcoming.ready(sampler.client)
                # (5) evals; the step's metrics line, transcript and progress go to the log's
                # worker; a checkpoint.
                out_of_time = deadline is not None and time.perf_counter() >= deadline
                last = step + 1 == num_steps or out_of_time
                metrics = dict(train_out.metrics)
                if step == 0:
                    metrics.update(before_rl)
                eval_time = 0.0
                if evaluators and (
                    last or (config.eval_every and (step + 1) % config.eval_every == 0)
                ):
                    outcome = await run_evaluators(evaluators, sampler.client)
                    metrics.update(outcome.metrics)
                    eval_time = outcome.time_s
                    for name, error in outcome.failures.items():
                        print(f"warning: step {step}: eval {name} failed: {error}", file=sys.stderr)
                # Step time runs from the previous step's snapshot to this one, so the previous
                # step's checkpoint is counted too.
                t_now = time.perf_counter()
                backend_s = timer.take()
                step_s, t_mark = t_now - t_mark, t_now
                metrics.update(
                    {
                        "progress/done_frac": (step + 1) / num_steps,
                        "optim/learning_rate": adam.learning_rate,
                        "time/sample_wait": t_sampled - t_step,
                        "time/train": t_trained - t_sampled,
                        "time/eval": eval_time,
                        "time/step": step_s,
                        "time/backend": backend_s,
                        "time/runner": max(step_s - backend_s - eval_time, 0.0),
                    }
                )
                log.submit(
                    StepRecord(
                        step,
                        batch,
                        train_out.advantages_P_G,
                        metrics,
                        train_out.sequences_D,
                        train_out.train_logprobs_D,
                        transcript_header=(
                            f"# step {step}: sampled by the policy of step {batch.sampler_step}"
                        ),
                    )
                )
                if last or (config.save_every and (step + 1) % config.save_every == 0):
                    log.flush()  # the step's line goes in before its checkpoint
                    await timer.track(
                        save_checkpoint(
                            training_client,
                            run_dir,
                            step + 1,
                            extra={WARM_START_DONE: warm_done, LR_PROGRESS: lr_progress},
                        )
                    )
                steps_run += 1
                if last:
                    break
        finally:
            for task in [*pending.values(), *searches.values()]:
                task.cancel()
            try:
                log.close()  # its last lines reach the trackers before they close
            finally:
                run_dir.close()
    return RunSummary(
        log_dir=run_dir.path,
        steps_run=steps_run,
        last_metrics=log.last_metrics,
        time_s=time.perf_counter() - t_start,
        stopped_by_time=out_of_time and start_step + steps_run < num_steps,
    )


# ---------------------------------------------------------------------------------------------
# Helpers of the loop, in the order the loop uses them.


def _num_threads(config: Config) -> int | None:
    """The torch thread count for this run (None: leave torch's setting alone)."""
    if config.backend != "local":
        return None
    if config.num_threads is not None:
        return config.num_threads
    from cookbook.backends.local.tiny_model import is_tiny_name

    return 1 if is_tiny_name(config.model_name) else None


GC_YOUNG_THRESHOLD = 100_000
"""Net new container objects between the cyclic collector's young passes while the loop runs
(Python's default is 700)."""


@contextlib.contextmanager
def _loop_gc() -> Iterator[None]:
    """The cyclic garbage collector, set for the loop (and restored afterwards).

    A step at 1024 trajectories makes ~70k short-lived container objects (requests, futures,
    trajectories, datums); with the default thresholds they set off ~100 young passes and about
    one full pass per step, and a full pass also walks everything alive before the loop (torch,
    the model, the env: ~350k objects, measured at ~1.8 s on a busy 2-core machine, holding the
    GIL). So the objects alive before the loop are frozen (no pass visits them; none of them is
    garbage the loop could free), and a young pass waits for 100k net new objects: reference
    counting frees a step's objects anyway, the collector is left with real cycles."""
    import gc

    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for the block. Threads the backend starts inside it
    (its worker threads start on their first job) take the setting over."""
    if num_threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _deterministic_kernels(enabled: bool) -> Iterator[None]:
    """With `deterministic=true` on the local backend, torch's deterministic kernels for the
    block, the previous settings restored afterwards. On CUDA, `index_add_` (the output head's
    gradient) and cuBLAS otherwise add in an order that varies between runs (seen on an H200: a
    rerun parted at step 2), and attention runs on its plain math kernel (the fused ones'
    backward passes are not deterministic); on CPU the default kernels already are. Memory
    from `torch.empty` stays unfilled (the backend reads none it has not written)."""
    if not enabled:
        yield
        return
    import os

    import torch
    import torch.utils.deterministic

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,  # type: ignore[attr-defined]
    )
    cuda = torch.backends.cuda
    switches = (cuda.enable_flash_sdp, cuda.enable_mem_efficient_sdp, cuda.enable_cudnn_sdp)
    fused = (cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled(), cuda.cudnn_sdp_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    for switch in switches:
        switch(False)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.utils.deterministic.fill_uninitialized_memory = before[2]  # type: ignore[attr-defined]
        for switch, was in zip(switches, fused, strict=True):
            switch(was)


async def _reference_sampler(
    config: Config,
    training_client: TrainingClient,
    run_dir: RunDir,
    service: ServiceClient,
    gate: Gate | None,
) -> SamplingClient | None:
    """The frozen starting policy the KL penalty compares against (saved once per run)."""
    if config.kl_penalty_coef <= 0:
        return None
    path = run_dir.reference_sampler_path()
    if path is None:
        saved = await training_client.save_weights_for_sampler(
            str(run_dir.reference_dir / "sampler")
        )
        path = saved.path
        run_dir.set_reference_sampler_path(path)
    client: SamplingClient = await service.create_sampling_client(model_path=path)
    return client if gate is None else SerialSamplingClient(client, gate)


async def _eval_before_rl(
    evaluators: Mapping[str, Evaluator], sampling_client: SamplingClient
) -> dict[str, float]:
    """The evaluators on the starting weights, as `eval_before_rl/<name>/<metric>` for the
    step-0 line (that line's `eval/...` keys, when step 0 evaluates, are after its update)."""
    from cookbook.eval.runner import run_evaluators

    outcome = await run_evaluators(evaluators, sampling_client)
    for name, error in outcome.failures.items():
        print(f"warning: before RL: eval {name} failed: {error}", file=sys.stderr)
    metrics = {"eval_before_rl/" + k.removeprefix("eval/"): v for k, v in outcome.metrics.items()}
    metrics["time/eval_before_rl"] = outcome.time_s
    return metrics


class _DecayClock:
    """Each step's progress along the learning-rate decay: its share of the steps, or with
    `lr_schedule_by_time` the larger of that and the share of the loop's time already spent,
    never below the progress the resumed checkpoint reached."""

    def __init__(
        self,
        config: Config,
        num_steps: int,
        t_loop: float,
        deadline: float | None,
        resume_from: Checkpoint | None,
    ) -> None:
        self.num_steps = num_steps
        self.by_time = config.lr_schedule_by_time
        self.t_loop = t_loop
        self.deadline = deadline if self.by_time else None
        resumed = resume_from.extra.get(LR_PROGRESS, 0.0) if resume_from is not None else 0.0
        self.floor = float(resumed) if self.by_time and isinstance(resumed, int | float) else 0.0

    def progress(self, step: int) -> float:
        progress = max(step_progress(step, self.num_steps), self.floor)
        if self.deadline is not None:
            span = self.deadline - self.t_loop
            spent = 1.0 if span <= 0 else min((time.perf_counter() - self.t_loop) / span, 1.0)
            progress = max(progress, self.floor + (1.0 - self.floor) * spent)
        return progress


def _adam_params(config: Config, learning_rate: float) -> tinker_types.AdamParams:
    from tinker import types as tinker_types

    return tinker_types.AdamParams(
        learning_rate=learning_rate,
        beta1=config.adam_beta1,
        beta2=config.adam_beta2,
        eps=config.adam_eps,
        grad_clip_norm=config.grad_clip_norm,
    )


class _Sampler:
    """The current sampling weights and which step produced them; with a `gate`
    (`deterministic=true`) its clients serve one request at a time. Made by `create`."""

    def __init__(
        self,
        training_client: TrainingClient,
        timer: BusyTimer,
        sampler_step: int,
        client: SamplingClient,
        gate: Gate | None = None,
    ):
        self.training_client = training_client
        self.timer = timer
        self.sampler_step = sampler_step
        self.gate = gate
        self.client = client

    @classmethod
    async def create(
        cls,
        training_client: TrainingClient,
        timer: BusyTimer,
        sampler_step: int,
        gate: Gate | None = None,
    ) -> _Sampler:
        """A sampler on `training_client`'s current weights."""
        client = await _save_sampler(training_client, timer, gate)
        return cls(training_client, timer, sampler_step, client, gate)

    async def refresh(self, sampler_step: int) -> None:
        """New weights after an optimiser step."""
        self.client = await _save_sampler(self.training_client, self.timer, self.gate)
        self.sampler_step = sampler_step

    def policy(self, config: Config) -> SamplingPolicy:
        """A policy sampling with the current weights."""
        from cookbook.rl.rollouts import SamplingPolicy

        return SamplingPolicy(self.client, config.max_tokens, config.temperature, self.timer)


async def _save_sampler(
    training_client: TrainingClient, timer: BusyTimer, gate: Gate | None
) -> SamplingClient:
    """A sampling client on the current weights. The SDK returns a future of it, awaited here:
    using the future as the client is deprecated there, and blocks the event loop on its first
    request (locally the client is its own finished future: nothing to wait for)."""
    timer.enter()
    try:
        client: SamplingClient = await training_client.save_weights_and_get_sampling_client()
    finally:
        timer.exit()
    return client if gate is None else SerialSamplingClient(client, gate)


class _UpcomingWeights:
    """A policy for a batch launched before its weights exist: its envs are made and observed
    while the step trains (env code off the critical path), and its first sample waits for
    `ready`. The samples are those a launch after the step would draw (same weights, same
    seeds)."""

    def __init__(self, config: Config, timer: BusyTimer) -> None:
        self.config = config
        self.timer = timer
        self._policy: SamplingPolicy | None = None
        # A thread-safe future, not an asyncio.Event: groups await it on their own threads'
        # event loops (cookbook.rl.rollouts), and an Event belongs to one loop.
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        # One waiter per loop: a group's envs then wake in the same loop tick, so those asking
        # for the same prompt share one sample call (cookbook.rl.coalesce) in every run alike.
        self._waiters: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}

    def ready(self, client: SamplingClient) -> None:
        """The weights are there: sampling may start."""
        from cookbook.rl.rollouts import SamplingPolicy

        config = self.config
        self._policy = SamplingPolicy(client, config.max_tokens, config.temperature, self.timer)
        self._ready.set_result(None)

    async def __call__(self, ob: Observation, stop: StopCondition, seed: int) -> SampledTokens:
        loop = asyncio.get_running_loop()
        waiter = self._waiters.get(loop)
        if waiter is None:
            waiter = self._waiters[loop] = asyncio.wrap_future(self._ready, loop=loop)
        await asyncio.shield(waiter)  # shared: one env cancelled must not cancel the others' wait
        assert self._policy is not None  # set before the event
        return await self._policy(ob, stop, seed)


def _launch_batch(
    config: Config, train_ds: RLDataset, step: int, policy: TokenPolicy, sampler_step: int
) -> asyncio.Task[BatchRollout]:
    """Start rolling out batch `step` with `policy`, whose weights are those of `sampler_step`
    (fixed here, not when the task first runs, so a sampler refreshed in between cannot leak
    into an off-policy batch). The env's `get_batch` runs in the task too."""
    from cookbook.rl.rollouts import do_batch_rollout, mix_seed

    async def rollout() -> BatchRollout:
        return await do_batch_rollout(
            train_ds.get_batch(step % len(train_ds)),
            policy,
            seed=mix_seed(config.seed, step),
            sampler_step=sampler_step,
            step_timeout_s=config.env_step_timeout_s,
        )

    return asyncio.create_task(rollout())


def _check_lost_groups(config: Config, batch: BatchRollout, step: int, label: str) -> None:
    if not batch.lost:
        return
    fraction = batch.lost / batch.num_groups
    summary = (
        f"step {step}: {batch.lost} of {batch.num_groups} groups lost "
        f"({batch.errors} errors, {batch.timeouts} timeouts); first: {batch.error_messages[0]}"
    )
    if fraction > config.max_error_fraction:
        raise RolloutFailureError(
            f"{label}: stopping, {summary} - more than max_error_fraction="
            f"{config.max_error_fraction:g}; fix the env or raise max_error_fraction "
            "(env_step_timeout_s for timeouts)"
        )
    print(f"warning: {summary}", file=sys.stderr)


@dataclass
class _TrainOutput:
    metrics: dict[str, float]
    advantages_P_G: list[list[float]]
    skipped: bool
    sequences_D: list[TrainSequence] = field(default_factory=list)
    """What was trained on (empty when skipped)."""
    train_logprobs_D: list[FloatArray] = field(default_factory=list)
    """The learner's logprobs of each sequence's targets (for the train metrics)."""


async def _train_on_batch(
    config: Config,
    training_client: TrainingClient,
    batch: BatchRollout,
    adam: tinker_types.AdamParams,
    reference_client: SamplingClient | None,
    timer: BusyTimer,
) -> _TrainOutput:
    """Advantages -> sequences -> datums -> forward_backward + optim_step (per substep)."""
    from cookbook.rl.data import (
        all_advantages_zero,
        compute_advantages,
        groups_to_sequences,
        is_constant_reward_group,
        sequences_to_data,
    )

    t0 = time.perf_counter()
    groups_P = batch.groups_P
    advantages_P_G = compute_advantages(groups_P, config.scale_advantages_by_std)
    keep_P = [
        p
        for p, group in enumerate(groups_P)
        if not (config.remove_constant_reward_groups and is_constant_reward_group(group))
    ]
    metrics: dict[str, float] = {"rollout/dropped_constant_groups": len(groups_P) - len(keep_P)}
    sequences_D = groups_to_sequences(
        [groups_P[p] for p in keep_P], [advantages_P_G[p] for p in keep_P]
    )
    if reference_client is not None and sequences_D:
        metrics.update(
            await _kl_penalty(sequences_D, reference_client, config.kl_penalty_coef, timer)
        )
    if not sequences_D or all_advantages_zero(sequences_D):
        # No signal: a step would only decay Adam's second moments, and the next batch with a
        # signal would then take an outsized step.
        metrics["optim/skipped"] = 1.0
        return _TrainOutput(metrics, advantages_P_G, skipped=True)
    data_D = sequences_to_data(sequences_D)
    metrics["time/data"] = time.perf_counter() - t0
    loss_config = dict(config.loss_fn_config) if config.loss_fn_config else None
    loss_fn = cast("tinker_types.LossFnType", config.loss_fn)
    # Submit every substep before waiting: requests run in order and the backend never idles.
    # The backend is busy from the first submission (its synchronous part, checking and laying
    # out the batch, is backend work, as with `sample`).
    bounds = [round(i * len(data_D) / config.num_substeps) for i in range(config.num_substeps + 1)]
    train_logprobs_D: list[FloatArray] = []
    loss_sum = 0.0
    timer.enter()
    try:
        futures = []
        for lo, hi in itertools.pairwise(bounds):
            if hi > lo:
                fwd_bwd = training_client.forward_backward(data_D[lo:hi], loss_fn, loss_config)
                optim = training_client.optim_step(adam)
                futures.append((fwd_bwd, optim))
        for fwd_bwd, optim in futures:
            out = await fwd_bwd
            await optim
            loss_sum += out.metrics.get("loss:sum", 0.0)
            train_logprobs_D.extend(o["logprobs"].to_numpy() for o in out.loss_fn_outputs)
    finally:
        timer.exit()
    metrics["optim/loss_sum"] = loss_sum
    metrics["optim/skipped"] = 0.0
    return _TrainOutput(metrics, advantages_P_G, False, sequences_D, train_logprobs_D)


def _launch_search(
    config: Config,
    search: SearchConfig,
    train_ds: RLDataset,
    step: int,
    sampler: _Sampler,
    timer: BusyTimer,
    label: str,
    probe_means: ProbeMeans | None = None,
    revisits: RevisitStore | None = None,
) -> asyncio.Task[SearchBatch]:
    """Search mode's (1)-(2): start searching the roots of batch `step` with the sampler's
    current weights (`cookbook.rl.search`). Roots to revisit are drawn now, from the searches
    trained on so far: which ones does not depend on how far the searches running meanwhile
    have got."""
    from cookbook.rl.rollouts import SamplingPolicy, mix_seed
    from cookbook.rl.search import search_batch

    policy = SamplingPolicy(sampler.client, config.max_tokens, search.temperature, timer)
    found = search_batch(
        train_ds,
        step,
        policy,
        search.horizon_at(step),
        search.max_turns,
        config.seed,
        label,
        config.env_step_timeout_s,
        sampler_step=sampler.sampler_step,
        early_tie_break=search.early_tie_break,
        own_choice=search.own_choice,
        probe_opponent=search.probe_opponent,
        probe_means=probe_means,
        probe_margin=search.probe_margin,
        revisit_roots=None
        if revisits is None
        else revisits.draw(
            round(config.groups_per_batch * search.revisit), mix_seed(config.seed, step, 2)
        ),
        walk_turns=search.walk_turns,
        symmetries=search.symmetries,
    )
    return asyncio.ensure_future(found)


async def _train_on_search(
    config: Config,
    search: SearchConfig,
    found: SearchBatch,
    step: int,
    training_client: TrainingClient,
    adam: tinker_types.AdamParams,
    timer: BusyTimer,
    label: str,
    replay: SearchReplay | None,
    revisits: RevisitStore | None = None,
) -> tuple[BatchRollout, _TrainOutput]:
    """Search mode's (3): one `cross_entropy` update on the targets of batch `step`'s search
    (with `replay`: on roots drawn from the kept ones, this step's added). Returns an empty
    rollout (for the step's log: search has no trajectories) and the training output."""
    from cookbook.rl.rollouts import BatchRollout, mix_seed
    from cookbook.rl.search import root_data

    batch = BatchRollout(
        groups_P=[],
        group_indices_P=[],
        num_groups=found.num_roots,
        sampler_step=found.sampler_step,
        errors=found.lost,
        error_messages=found.errors,
        time_s=found.time_s,
    )
    _check_lost_groups(config, batch, step, label)
    metrics = found.metrics()
    if revisits is not None:
        revisits.update(found.roots)
        metrics["search/revisit_kept"] = float(len(revisits))
    if replay is None:
        data_D = found.data(search.one_target)
    else:
        replay.add(found.roots)
        drawn = replay.draw(search.train_roots, mix_seed(config.seed, step, 1))
        data_D = root_data(drawn, search.one_target, step)
        metrics["search/replay_roots"] = float(len(replay))
    metrics["optim/datums"] = float(len(data_D))
    if not data_D:
        metrics["optim/skipped"] = 1.0
        return batch, _TrainOutput(metrics, [], skipped=True)
    timer.enter()
    try:
        fwd_bwd = training_client.forward_backward(data_D, "cross_entropy")
        optim = training_client.optim_step(adam)
        out = await fwd_bwd
        await optim
    finally:
        timer.exit()
    # The targets' mean logprob under the weights before this update (how far the policy was).
    weighted = total = 0.0
    for datum, output in zip(data_D, out.loss_fn_outputs, strict=True):
        weights_T = datum.loss_fn_inputs["weights"].to_numpy()
        weighted += float((output["logprobs"].to_numpy() * weights_T).sum())
        total += float(weights_T.sum())
    metrics["search/target_logprob"] = weighted / total if total else 0.0
    metrics["optim/loss_sum"] = out.metrics.get("loss:sum", 0.0)
    metrics["optim/skipped"] = 0.0
    return batch, _TrainOutput(metrics, [], skipped=False)


async def _kl_penalty(
    sequences_D: list[TrainSequence],
    reference_client: SamplingClient,
    coef: float,
    timer: BusyTimer,
) -> Mapping[str, float]:
    """Reference logprobs of every sequence (concurrently), folded into the advantages."""
    from tinker import types as tinker_types

    from cookbook.rl.data import apply_kl_penalty

    reference_logprobs_D = await timer.track(
        asyncio.gather(
            *(
                reference_client.compute_logprobs(tinker_types.ModelInput.from_ints(s.tokens))
                for s in sequences_D
            )
        )
    )
    return apply_kl_penalty(sequences_D, reference_logprobs_D, coef)
