"""`cookbook sft`: supervised fine-tuning with `cross_entropy`, synchronous on purpose.

`Config` names everything (the dataset builder, the model, the optimiser and its schedule,
cadences, evals); its fields are the `KEY=VALUE` options of `cookbook sft`, and
`Config.for_dataset` builds one from a registered dataset as the command line does. The loop:

    build the dataset -> for each step: batch, forward_backward + optim_step, log, maybe eval,
    maybe checkpoint -> final checkpoint (loadable by `cookbook rl load_checkpoint_path=`).

A run resumes from its last checkpoint after a crash: the data order of every epoch is a
function of the seed, so step k sees the same batch again, and `metrics.jsonl` keeps each step
exactly once. `sft_step` and `train_steps` are the reusable inner loop (the RL warm start runs
them too).
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError
from cookbook.eval.types import EvaluatorBuilder
from cookbook.lr_schedule import LRSchedule, learning_rate_at, schedule_check
from cookbook.supervised.lengths import LongExamples
from cookbook.supervised.types import SupervisedDataset, SupervisedDatasetBuilder

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.backends.protocol import ServiceClient, TrainingClient
    from cookbook.eval.types import Evaluator
    from cookbook.runs.checkpoints import Checkpoint
    from cookbook.runs.run_dir import RunDir
    from cookbook.supervised.nll_eval import NLLEvaluator


@chz.chz
class Config:
    """Everything one supervised run needs; `config.json` of the run is this, serialised."""

    # ----- what to train on, and where the run lives
    dataset: SupervisedDatasetBuilder
    """Builds `(train, test | None)` (`dataset.KEY=VALUE`); `batch_size` and `seed` reach it
    through the context."""
    log_dir: str
    """Where config.json, metrics.jsonl and checkpoints go; an existing run there resumes
    (`cookbook sft` default: runs/sft-<dataset>)."""

    # ----- model and backend
    model_name: str = "tiny"
    """Base model: `tiny` (built in) or a local Hugging Face directory."""
    backend: str = "local"
    """`local` (in-process PyTorch) or `tinker` (the Tinker service, needs TINKER_API_KEY)."""
    base_url: str | None = None
    """Server of `backend=tinker` (a `cookbook serve`, say; None: $TINKER_BASE_URL, else the
    Tinker service)."""
    device: str | None = None
    """Local backend device (`cpu`, `cuda`); default: CUDA when present, else CPU."""
    lora_rank: int = 32
    """LoRA rank (Hugging Face models; the tiny model trains all its weights)."""
    seed: int = 0
    """Seed of the data order and the model initialisation."""
    load_checkpoint_path: str | None = None
    """Start from these weights (a checkpoint state path, or a run directory: its newest
    checkpoint) instead of the base model. Ignored when the run resumes from its own checkpoint."""

    # ----- optimiser and schedule
    learning_rate: float = 3e-3
    """Peak Adam learning rate."""
    lr_schedule: LRSchedule = "linear"
    """After warm-up: `constant`, or decay to 0 at the last step (`linear`, `cosine`)."""
    warmup_steps: int = 0
    """Steps of linear warm-up from ~0 to `learning_rate`."""
    adam_beta1: float = 0.9
    """Adam beta1."""
    adam_beta2: float = 0.95
    """Adam beta2."""
    adam_eps: float = 1e-8
    """Adam epsilon."""
    weight_decay: float = 0.0
    """Decoupled weight decay."""
    grad_clip_norm: float = 0.0
    """Clip the global gradient norm to this (0: no clipping)."""

    # ----- batches, length of the run, long examples
    batch_size: int = 32
    """Examples per step."""
    num_epochs: int = 1
    """Passes over the training set (ignored when `max_steps` is set)."""
    max_steps: int | None = None
    """Run exactly this many steps (cycling through epochs as needed)."""
    max_length: int | None = None
    """Longest example in tokens; longer ones are handled by `long_examples` (None: no limit)."""
    long_examples: LongExamples = LongExamples.TRUNCATE
    """`truncate` or `drop` examples longer than `max_length` (both are counted)."""

    # ----- evals, checkpoints, logs
    eval_every: int = 10
    """Held-out NLL (and `evals`) every this many steps and at the end (0: only at the end)."""
    evals: dict[str, EvaluatorBuilder] = chz.field(default_factory=dict)
    """Evaluators by name, run with the held-out NLL; metrics logged as `eval/<name>/<metric>`
    (`evals=a,b` names registered evals; `evals.NAME.KEY=VALUE` sets their options)."""
    save_every: int = 50
    """Checkpoint every this many steps (0: only at the end)."""
    show_progress: bool = True
    """Show a progress bar (or a plain line every few seconds when not on a terminal)."""
    log_to: str | None = None
    """Also mirror each metrics line to experiment trackers: `trackio`, `wandb` or both
    (`log_to=trackio,wandb`; `cookbook.trackers`). metrics.jsonl stays the record."""

    @classmethod
    def for_dataset(cls, dataset: str, /, *overrides: str, **values: object) -> Config:
        """The config `cookbook sft --dataset DATASET OVERRIDES...` runs: the registered
        dataset, then `overrides` (`KEY=VALUE` strings, as on the command line) and `values`
        (Python values of top-level fields)."""
        from cookbook.runs.blueprints import sft_config

        return sft_config(dataset, overrides, values=values)


@dataclass
class SFTResult:
    """What a finished `main` reports."""

    log_dir: Path
    steps: int
    """Total steps of the run (all done)."""
    final_checkpoint: str
    """The last `save_state` path: pass it as `load_checkpoint_path=` to `cookbook rl`."""
    final_sampler_path: str | None
    """Sampler weights of the final model (for `create_sampling_client`)."""
    last_metrics: dict[str, float] = field(default_factory=dict)
    """The final step's metrics plus the final evaluation."""


# --------------------------------------------------------------------------- the inner loop


def batch_weight(data_D: Sequence[tinker_types.Datum]) -> float:
    """Total loss weight of a batch (its trained tokens, for 0/1 weights)."""
    return sum(float(d.loss_fn_inputs["weights"].to_numpy().sum()) for d in data_D)


def sft_step(
    training_client: TrainingClient,
    data_D: list[tinker_types.Datum],
    adam_params: tinker_types.AdamParams,
) -> dict[str, float]:
    """One optimiser step on `data_D`; returns `train/loss` (NLL per weighted token), `tokens` (input
    tokens), `train/tokens` (weighted tokens), `time/step` and `tokens_per_s`.

    `optim_step` is submitted before waiting on `forward_backward`, so the backend runs both
    back to back while this thread sums the batch's weights.
    """
    t0 = time.perf_counter()
    fwd_bwd = training_client.forward_backward(data_D, "cross_entropy")
    optim = training_client.optim_step(adam_params)
    weight = batch_weight(data_D)
    tokens = sum(d.model_input.length for d in data_D)
    loss_sum = fwd_bwd.result().metrics.get("loss:sum", math.nan)
    optim.result()
    dt = time.perf_counter() - t0
    return {
        "train/loss": loss_sum / weight if weight > 0 else math.nan,
        "tokens": float(tokens),
        "train/tokens": weight,
        "time/step": dt,
        "tokens_per_s": tokens / dt if dt > 0 else math.nan,
    }


def batch_at(dataset: SupervisedDataset, step: int, current_epoch: int | None) -> tuple[int, int]:
    """`(epoch, batch index)` of `step`, calling `dataset.set_epoch` when the epoch changes
    (pass the epoch last set, or `None` when none was)."""
    epoch, index = divmod(step, len(dataset))
    if epoch != current_epoch:
        dataset.set_epoch(epoch)
    return epoch, index


def train_steps(
    training_client: TrainingClient,
    dataset: SupervisedDataset,
    *,
    start_step: int,
    end_step: int,
    adam_params_at: Callable[[int], tinker_types.AdamParams],
) -> Iterator[tuple[int, dict[str, float]]]:
    """The reusable inner loop: run steps `start_step .. end_step - 1` over `dataset` (epochs
    follow each other, each reshuffled by `set_epoch(epoch)`), yielding `(step, metrics)` after
    each. Nothing is submitted for the next step until the caller resumes the generator, so it
    can checkpoint or evaluate the exact weights after `step`."""
    if len(dataset) == 0:
        raise UserError("the training set has no batches; check the dataset and batch_size")
    epoch: int | None = None
    for step in range(start_step, end_step):
        epoch, index = batch_at(dataset, step, epoch)
        adam_params = adam_params_at(step)
        try:
            metrics = sft_step(training_client, dataset.get_batch(index), adam_params)
        except UserError as e:
            raise UserError(_name_sources(str(e), dataset, index)) from e
        metrics["epoch"] = float(epoch)
        metrics["learning_rate"] = adam_params.learning_rate
        yield step, metrics


def _name_sources(message: str, dataset: SupervisedDataset, index: int) -> str:
    """A backend error about `datum K` of batch `index`, with `datum K` replaced by where that
    datum came from (`file:line`) when the dataset knows."""
    from cookbook.supervised.datasets import DatumDataset

    sources = dataset.batch_sources(index) if isinstance(dataset, DatumDataset) else None
    if not sources:
        return message

    def source(match: re.Match[str]) -> str:
        k = int(match.group(1))
        return sources[k] if k < len(sources) else match.group(0)

    return re.sub(r"\bdatum (\d+)\b", source, message)


# --------------------------------------------------------------------------- helpers of main


def _validate(config: Config) -> None:
    """One clear line for each impossible setting, and for a model or dataset file that is not
    there: before anything heavy, the run directory included (`cookbook.runs.checks`)."""
    from cookbook.runs.checks import (
        check_lora_rank,
        check_seed,
        check_start_inputs,
        finite_numbers,
        require,
    )

    checks: list[tuple[bool, str]] = [
        (config.batch_size >= 1, f"batch_size must be at least 1, got {config.batch_size}"),
        (config.num_epochs >= 1, f"num_epochs must be at least 1, got {config.num_epochs}"),
        (
            config.max_steps is None or config.max_steps >= 1,
            f"max_steps must be at least 1 (or unset), got {config.max_steps}",
        ),
        (config.learning_rate > 0, f"learning_rate must be positive, got {config.learning_rate}"),
        (0 <= config.adam_beta1 < 1, f"adam_beta1 must be in [0, 1), got {config.adam_beta1}"),
        (0 <= config.adam_beta2 < 1, f"adam_beta2 must be in [0, 1), got {config.adam_beta2}"),
        (config.adam_eps > 0, f"adam_eps must be > 0, got {config.adam_eps}"),
        (config.weight_decay >= 0, f"weight_decay must be >= 0, got {config.weight_decay}"),
        (
            config.grad_clip_norm >= 0,
            f"grad_clip_norm must be >= 0 (0: no clipping), got {config.grad_clip_norm}",
        ),
        (config.warmup_steps >= 0, f"warmup_steps must be >= 0, got {config.warmup_steps}"),
        (config.eval_every >= 0, f"eval_every must be >= 0, got {config.eval_every}"),
        (config.save_every >= 0, f"save_every must be >= 0, got {config.save_every}"),
        (
            config.max_length is None or config.max_length >= 2,
            f"max_length must be at least 2 tokens (or unset), got {config.max_length}",
        ),
        schedule_check(config.lr_schedule),
    ]
    require(finite_numbers(config), checks)
    try:
        LongExamples(config.long_examples)
    except ValueError:
        raise UserError(
            f"long_examples={config.long_examples!r} is not one of: truncate, drop"
        ) from None
    check_seed(config.seed)
    check_lora_rank(config.lora_rank)
    check_start_inputs(
        config.model_name, config.backend, config.load_checkpoint_path, config.log_dir
    )
    config.dataset.check_inputs()


CHANGEABLE_ON_RESUME = frozenset({"num_epochs"})
"""Config fields a resumed supervised run may change besides those of every loop
(`cookbook.runs.setup.CHANGEABLE_ON_RESUME`): a longer run by epochs too (the learning-rate
schedule is then recomputed for the new length)."""


def _limit_length(
    dataset: SupervisedDataset, what: str, config: Config
) -> tuple[SupervisedDataset, dict[str, int]]:
    """Apply `max_length` to a dataset of fixed datums (other datasets must respect it
    themselves); tells the user what was cut and returns the counts."""
    from cookbook.supervised.datasets import DatumDataset
    from cookbook.supervised.lengths import fit_datums

    if config.max_length is None or not isinstance(dataset, DatumDataset):
        return dataset, {}
    mode = LongExamples(config.long_examples)
    kept_D, report = fit_datums(dataset.datums_D, config.max_length, mode)
    if report.truncated or report.dropped:
        print(f"sft: {report.describe(what, mode)}", file=sys.stderr)
    if not kept_D:
        raise UserError(
            f"every {what} example is longer than max_length={config.max_length} tokens; raise "
            "max_length or use long_examples=truncate"
        )
    counts = {f"{what}_truncated": report.truncated, f"{what}_dropped": report.dropped}
    limited = DatumDataset(
        kept_D,
        batch_size=dataset.batch_size,
        seed=dataset.seed,
        shuffle=dataset.shuffle,
        counts={**dataset.counts, **counts},
        sources_D=None
        if dataset.sources_D is None
        else [dataset.sources_D[i] for i in report.kept],
    )
    return limited, counts


def _adam_params_fn(config: Config, total_steps: int) -> Callable[[int], tinker_types.AdamParams]:
    from tinker import types as tinker_types

    def adam_params_at(step: int) -> tinker_types.AdamParams:
        return tinker_types.AdamParams(
            learning_rate=learning_rate_at(
                step, total_steps, config.learning_rate, config.lr_schedule, config.warmup_steps
            ),
            beta1=config.adam_beta1,
            beta2=config.adam_beta2,
            eps=config.adam_eps,
            weight_decay=config.weight_decay,
            grad_clip_norm=config.grad_clip_norm,
        )

    return adam_params_at


def _evaluate(
    training_client: TrainingClient,
    test_nll: NLLEvaluator | None,
    evaluators: Mapping[str, Evaluator],
) -> dict[str, float]:
    """The held-out NLL (`test/*`) and every evaluator (`eval/<name>/*`) on the current weights.
    An evaluator that raises is reported (`eval/<name>/failed`) and does not end the run."""
    import asyncio

    from cookbook.eval.runner import run_evaluators

    if test_nll is None and not evaluators:
        return {}
    t0 = time.perf_counter()
    # No name: an in-memory snapshot, nothing written to disk for an eval.
    sampling_client = training_client.save_weights_and_get_sampling_client().result()

    async def run_all() -> dict[str, float]:
        out: dict[str, float] = {}
        if test_nll is not None:
            out.update({f"test/{k}": v for k, v in (await test_nll(sampling_client)).items()})
        outcome = await run_evaluators(evaluators, sampling_client)
        for name, error in outcome.failures.items():
            print(f"warning: sft: eval {name} failed: {error}", file=sys.stderr)
        out.update(outcome.metrics)
        return out

    metrics = asyncio.run(run_all())
    metrics["time/eval"] = time.perf_counter() - t0
    return metrics


def _save_checkpoint(
    training_client: TrainingClient, run_dir: RunDir, step: int, with_sampler: bool
) -> Checkpoint:
    """`cookbook.runs.setup.save_checkpoint`, from this synchronous loop."""
    import asyncio

    from cookbook.runs.setup import save_checkpoint

    return asyncio.run(save_checkpoint(training_client, run_dir, step, with_sampler=with_sampler))


@contextmanager
def _hint_max_length(config: Config) -> Iterator[None]:
    """Add the fix to a backend's "longer than the context" error when no limit was set."""
    try:
        yield
    except UserError as e:
        if config.max_length is None and "context" in str(e):
            raise UserError(
                f"{e}; set max_length=N (and long_examples=truncate or drop) to cut long examples"
            ) from e
        raise


def _already_complete(run_dir: RunDir, final: Checkpoint, total_steps: int) -> SFTResult:
    """A run that got to `final.step` >= `total_steps`: say so and change nothing (a run never
    trains backwards; its checkpoint at `final.step` stays its last)."""
    lower = f"; max_steps={total_steps} is lower" if final.step > total_steps else ""
    print(
        f"sft: {run_dir.path}: run already complete ({final.step} steps{lower}); nothing to do",
        file=sys.stderr,
    )
    last = run_dir.metrics.read()
    metrics = {k: v for k, v in last[-1].items() if isinstance(v, float)} if last else {}
    return SFTResult(
        log_dir=run_dir.path,
        steps=final.step,
        final_checkpoint=final.state_path,
        final_sampler_path=final.sampler_path,
        last_metrics=metrics,
    )


def total_steps_of(config: Config, batches_per_epoch: int) -> int:
    """Steps of the whole run: `max_steps`, else `num_epochs` passes."""
    if config.max_steps is not None:
        return config.max_steps
    return config.num_epochs * batches_per_epoch


# --------------------------------------------------------------------------- main


def main(config: Config, *, fresh: bool = False, argv: list[str] | None = None) -> SFTResult:
    """Run (or resume) the supervised run `config` describes; returns where its results are."""
    from cookbook.runs.setup import CHANGEABLE_ON_RESUME as ANY_LOOP
    from cookbook.runs.setup import make_service, start_run

    _validate(config)
    # Before the run directory: an unreachable server or a bad key leaves nothing behind.
    service = make_service(config.backend, config.device, config.base_url)
    changeable = ANY_LOOP | CHANGEABLE_ON_RESUME
    with start_run(config, config.log_dir, fresh=fresh, argv=argv, changeable=changeable) as run:
        return _train(config, run, service, argv)


def _train(
    config: Config, run_dir: RunDir, service: ServiceClient, argv: list[str] | None
) -> SFTResult:
    from cookbook.runs.progress import RunProgress
    from cookbook.runs.setup import build_context, make_starting_training_client
    from cookbook.supervised.datasets import DatumDataset, all_datums
    from cookbook.supervised.nll_eval import NLLEvaluator

    training_client = make_starting_training_client(
        service,
        config.model_name,
        config.lora_rank,
        config.seed,
        run_dir,
        config.load_checkpoint_path,
    )
    ctx = build_context(
        config.model_name,
        training_client,
        seed=config.seed,
        groups_per_batch=config.batch_size,
        log_dir=run_dir.path,
    )
    train_ds, test_ds = config.dataset(ctx)
    train_ds, _ = _limit_length(train_ds, "train", config)
    test_nll = None
    if test_ds is not None:
        test_ds, _ = _limit_length(test_ds, "test", config)
        sources = test_ds.sources_D if isinstance(test_ds, DatumDataset) else None
        test_nll = NLLEvaluator(all_datums(test_ds), sources)
    evaluators = {name: builder(ctx) for name, builder in config.evals.items()}

    total_steps = total_steps_of(config, len(train_ds))
    start_step = run_dir.start_step
    resume = run_dir.resume_from
    if resume is not None and (
        resume.step > total_steps or (resume.step == total_steps and resume.sampler_path)
    ):
        return _already_complete(run_dir, resume, total_steps)
    if run_dir.resume_from is not None:
        print(f"sft: resuming {run_dir.path} at step {start_step}/{total_steps}", file=sys.stderr)
    run_dir.start_steps(config, argv)

    def eval_due(step: int) -> bool:
        return config.eval_every > 0 and step % config.eval_every == 0

    last: dict[str, float] = {}
    loop_start = time.perf_counter()
    pending_eval = _evaluate(training_client, test_nll, evaluators) if eval_due(start_step) else {}
    with (
        RunProgress(
            "sft",
            total_steps,
            start_step=start_step,
            headline=("train/loss", "test/nll"),
            enabled=config.show_progress,
        ) as progress,
        _hint_max_length(config),
    ):
        for step, metrics in train_steps(
            training_client,
            train_ds,
            start_step=start_step,
            end_step=total_steps,
            adam_params_at=_adam_params_fn(config, total_steps),
        ):
            # Eval metrics in a step's record were measured on the weights before its update.
            metrics.update(pending_eval)
            metrics["time/total"] = time.perf_counter() - loop_start
            run_dir.metrics.log(step, metrics)
            progress.update(step, metrics)
            last = metrics
            done = step + 1
            if config.save_every > 0 and done % config.save_every == 0 and done < total_steps:
                _save_checkpoint(training_client, run_dir, done, with_sampler=False)
            pending_eval = (
                _evaluate(training_client, test_nll, evaluators)
                if eval_due(done) and done < total_steps
                else {}
            )

    # The final evaluation is a record of its own, at step == total_steps (after every update).
    final_eval = _evaluate(training_client, test_nll, evaluators)
    if final_eval:
        run_dir.metrics.log(total_steps, final_eval)
    run_dir.close()  # the trackers (an exception leaves them to interpreter exit)
    final = run_dir.checkpoints.latest()
    if final is None or final.step != total_steps or final.sampler_path is None:
        final = _save_checkpoint(training_client, run_dir, total_steps, with_sampler=True)
    state_path, sampler_path = final.state_path, final.sampler_path
    last = {**last, **final_eval}
    summary = "  ".join(
        f"{k} {last[k]:.4f}" for k in ("train/loss", "test/nll") if k in last and last[k] == last[k]
    )
    print(
        f"sft: done, {total_steps} steps  {summary}\n"
        f"sft: final checkpoint {state_path} (cookbook rl ... load_checkpoint_path={state_path})",
        file=sys.stderr,
    )
    return SFTResult(
        log_dir=run_dir.path,
        steps=total_steps,
        final_checkpoint=state_path,
        final_sampler_path=sampler_path,
        last_metrics=last,
    )


__all__ = [
    "Config",
    "SFTResult",
    "batch_at",
    "batch_weight",
    "learning_rate_at",
    "main",
    "sft_step",
    "total_steps_of",
    "train_steps",
]
