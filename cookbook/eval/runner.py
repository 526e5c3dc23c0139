"""Run evaluators: inline from the training loops, or on their own (`cookbook eval`).

`EvalConfig` is the serialisable description of a stand-alone eval run (the evaluator builders
themselves, the model and where its weights come from); `run_eval` carries it out and writes
`results.json` (which holds the config: `cookbook eval --config results.json` reruns it).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import chz

from cookbook.errors import UserError
from cookbook.eval.types import Evaluator, EvaluatorBuilder

if TYPE_CHECKING:
    from cookbook.backends.protocol import SamplingClient


@dataclass
class EvalOutcome:
    """Metrics of several evaluators, prefixed `eval/<name>/`, plus the ones that failed."""

    metrics: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    """Evaluator name -> one-line error, for evaluators that raised."""
    time_s: float = 0.0


async def run_evaluators(
    evaluators: Mapping[str, Evaluator], sampling_client: SamplingClient
) -> EvalOutcome:
    """Run `evaluators` concurrently against `sampling_client`. An evaluator that raises does not
    stop the others (nor a training run): it is reported in `failures` (and as
    `eval/<name>/failed` = 1)."""
    t0 = time.perf_counter()
    names = list(evaluators)
    results = await asyncio.gather(
        *(evaluators[n](sampling_client) for n in names), return_exceptions=True
    )
    outcome = EvalOutcome()
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result  # cancellation, KeyboardInterrupt: never swallowed
            outcome.failures[name] = f"{type(result).__name__}: {result}"
            outcome.metrics[f"eval/{name}/failed"] = 1.0
            continue
        for key, value in result.items():
            outcome.metrics[f"eval/{name}/{key}"] = float(value)
    outcome.time_s = time.perf_counter() - t0
    return outcome


@chz.chz
class EvalConfig:
    """A stand-alone eval run; its fields are the `KEY=VALUE` options of `cookbook eval`, and
    `EvalConfig.for_evals` builds one from registered evals as the command line does."""

    # ----- what to evaluate
    evals: dict[str, EvaluatorBuilder]
    """Evaluators by name (`evals.NAME.KEY=VALUE`; their metrics are `eval/<name>/<metric>`)."""
    load_checkpoint_path: str | None = None
    """Weights to evaluate: a checkpoint state path or a run's log directory; `None` evaluates the
    starting model."""
    output_path: str = "runs/eval/results.json"
    """Where the JSON result is written (`cookbook eval` default: runs/eval-<names>/)."""

    # ----- model and backend
    model_name: str = "tiny"
    """Base model (`tiny`, or a local Hugging Face directory)."""
    backend: str = "local"
    """`local` or `tinker` (the Tinker service, needs TINKER_API_KEY)."""
    base_url: str | None = None
    """Server of `backend=tinker` (a `cookbook serve`, say; None: $TINKER_BASE_URL, else the
    Tinker service)."""
    device: str | None = None
    """Torch device for the local backend (default: CUDA when present, else CPU)."""
    lora_rank: int = 32
    """LoRA rank of the training client the weights are loaded into."""
    seed: int = 0
    """Seed for the model's initialisation and the evaluators' random choices."""

    @classmethod
    def for_evals(cls, evals: str, /, *overrides: str, **values: object) -> EvalConfig:
        """The config `cookbook eval --eval EVALS OVERRIDES...` runs: the registered evals
        (comma-separated names), then `overrides` (`KEY=VALUE` strings, as on the command
        line) and `values` (Python values of top-level fields)."""
        from cookbook.runs.blueprints import eval_config

        return eval_config(evals.split(","), overrides, values=values)


@dataclass
class EvalResult:
    """What `run_eval` measured."""

    metrics: dict[str, float]
    failures: dict[str, str]
    time_s: float


def run_eval(config: EvalConfig, argv: list[str] | None = None) -> EvalResult:
    """Load the model (and checkpoint), build every evaluator, run them, write the result
    (`argv`: the command line recorded with it). An evaluator that raises is reported in
    `failures` (and the JSON) while the others still run."""
    from cookbook.runs.checkpoints import resolve_checkpoint
    from cookbook.runs.config_io import config_to_json
    from cookbook.runs.files import atomic_write_json
    from cookbook.runs.run_dir import os_errors_as_user_errors
    from cookbook.runs.setup import build_context, make_service, weights_training_client

    validate_eval_config(config)
    service = make_service(config.backend, config.device, config.base_url)
    state_path = (
        None
        if config.load_checkpoint_path is None
        else resolve_checkpoint(config.load_checkpoint_path)
    )
    training_client = weights_training_client(
        service, config.model_name, config.lora_rank, config.seed, state_path
    )
    sampling_client = training_client.save_weights_and_get_sampling_client().result()
    ctx = build_context(config.model_name, training_client, seed=config.seed)
    evaluators = {name: builder(ctx) for name, builder in config.evals.items()}
    outcome = asyncio.run(run_evaluators(evaluators, sampling_client))
    result = EvalResult(metrics=outcome.metrics, failures=outcome.failures, time_s=outcome.time_s)
    output = Path(config.output_path)
    with os_errors_as_user_errors(output):
        atomic_write_json(
            output,
            {
                "config": config_to_json(config),
                "command": list(sys.argv if argv is None else argv),
                "metrics": result.metrics,
                "failures": result.failures,
                "time_s": result.time_s,
            },
        )
    return result


def validate_eval_config(config: EvalConfig) -> None:
    """One `UserError` line for settings that cannot work, a model or checkpoint that is not
    there, or an output path that cannot be a file: before any model loads."""
    from cookbook.runs.checks import check_lora_rank, check_seed, check_start_inputs

    if not config.evals:
        raise UserError("no eval given; name one with --eval NAME")
    check_seed(config.seed)
    check_lora_rank(config.lora_rank)
    check_start_inputs(config.model_name, config.backend, config.load_checkpoint_path)
    output = Path(config.output_path)
    if output.is_dir():
        raise UserError(f"output_path {output} is a directory; give a file path (results.json)")
    for parent in output.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"output_path {output}: {parent} is a file, not a directory")
            break
