"""Contract checks for a supervised dataset: it builds for the tiny model, has batches, batch 0
holds well-formed `cross_entropy` datums (target tokens and weights aligned with the input,
shifted by one, some weight, ids inside the vocabulary), and a second build with the same seed
gives the same batches (also after `set_epoch(1)`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cookbook.supervised.types import SupervisedDataset, SupervisedDatasetBuilder
from cookbook.testing.context import tiny_context
from cookbook.testing.report import CheckFailed, Checklist, ContractReport, describe_error
from cookbook.testing.shared import (
    asserting,
    batches_text,
    builder_pair,
    configure,
    first_batch,
    import_check,
    load_tinker,
    resolve_target,
)

if TYPE_CHECKING:
    from tinker import types as tinker_types

    from cookbook.build_context import BuildContext

DatasetTarget = str | type[SupervisedDatasetBuilder] | SupervisedDatasetBuilder
"""A registered dataset name, a builder class, or a configured builder."""


def check_dataset(
    target: DatasetTarget,
    overrides: Sequence[str] = (),
    *,
    ctx: BuildContext | None = None,
    seed: int = 0,
    check_imports: bool = True,
) -> ContractReport:
    """Check a supervised dataset against the contract and return the report: it builds for the
    tiny model, has batches, batch 0 holds well-formed `cross_entropy` datums (target tokens and
    weights aligned with the input, shifted by one, some weight, ids inside the vocabulary), and
    a second build with the same seed gives the same batches (also after `set_epoch(1)`)."""
    label, loader, modules = resolve_target("dataset", target, overrides)
    report = ContractReport("dataset", label)
    checks = Checklist(report)
    ctx = ctx or tiny_context(seed)
    state = _DatasetState()

    def config() -> str:
        state.builder, detail = configure(
            loader, SupervisedDatasetBuilder, overrides, "dataset", label
        )
        return detail

    import_check(checks, modules, check_imports)
    load_tinker()
    checks.run("config", config)
    checks.run("builds", lambda: _build_dataset(state, ctx), needs=["config"])
    checks.run("batches", lambda: _dataset_batches(state), needs=["builds"])
    checks.run("datums", lambda: _datums(state), needs=["batches"])
    checks.run("token ids", lambda: _token_ids(state, ctx), needs=["datums"])
    checks.run("determinism", lambda: _dataset_determinism(state, ctx), needs=["datums"])
    return report


@dataclass
class _DatasetState:
    builder: SupervisedDatasetBuilder | None = None
    train: SupervisedDataset | None = None
    test: SupervisedDataset | None = None
    batches: list[tuple[str, list[tinker_types.Datum]]] = field(default_factory=list)
    arrays: list[tuple[str, list[_DatumArrays]]] = field(default_factory=list)


@dataclass(frozen=True)
class _DatumArrays:
    """A datum as plain lists."""

    input_T: list[int]
    targets_T: list[int]
    weights_T: list[float]


def _build_dataset(state: _DatasetState, ctx: BuildContext) -> str:
    assert state.builder is not None
    train, test = _sft_pair(state.builder(ctx))
    state.train, state.test = train, test
    tested = batches_text(len(test)) if test is not None else "none"
    return f"train: {batches_text(len(train))}; test: {tested} (tiny model, seed {ctx.seed})"


def _dataset_batches(state: _DatasetState) -> str:
    from tinker import types as tinker_types

    parts: list[str] = []
    for split, dataset in (("train", state.train), ("test", state.test)):
        if dataset is None:
            continue
        batch: list[tinker_types.Datum] = []
        for i, item in enumerate(first_batch(dataset, split)):
            if not isinstance(item, tinker_types.Datum):
                raise CheckFailed(
                    f"{split} batch 0 item {i} is a {type(item).__name__}, not a tinker Datum"
                )
            batch.append(item)
        state.batches.append((split, batch))
        parts.append(f"{split} batch 0: {len(batch)} datums")
    return "; ".join(parts)


def _datums(state: _DatasetState) -> str:
    lengths: list[int] = []
    trained = 0
    for split, batch in state.batches:
        arrays = [_datum_arrays(d, f"{split} datum {i}") for i, d in enumerate(batch)]
        state.arrays.append((split, arrays))
        if not any(w != 0 for a in arrays for w in a.weights_T):
            raise CheckFailed(
                f"every weight of {split} batch 0 is zero: nothing would be trained (weight 1.0 "
                "on the tokens to learn, e.g. the assistant's reply)"
            )
        lengths += [len(a.input_T) for a in arrays]
        trained += sum(1 for a in arrays for w in a.weights_T if w != 0)
    return (
        f"{len(lengths)} datums of {min(lengths)}-{max(lengths)} tokens, {trained} weighted "
        "targets; targets are the input shifted by one"
    )


def _datum_arrays(datum: tinker_types.Datum, where: str) -> _DatumArrays:
    try:
        input_T = list(datum.model_input.to_ints())
    except Exception as e:
        raise CheckFailed(f"{where}: model_input is not plain tokens ({describe_error(e)})") from e
    inputs = datum.loss_fn_inputs
    missing = [k for k in ("target_tokens", "weights") if k not in inputs]
    if missing:
        raise CheckFailed(
            f"{where}: loss_fn_inputs lacks {', '.join(missing)} (cross_entropy needs "
            "target_tokens and weights)"
        )
    targets = inputs["target_tokens"].to_numpy().reshape(-1).tolist()
    weights = inputs["weights"].to_numpy().reshape(-1).tolist()
    n = len(input_T)
    if n == 0:
        raise CheckFailed(f"{where}: model_input is empty")
    if len(targets) != n or len(weights) != n:
        raise CheckFailed(
            f"{where}: model_input has {n} tokens but target_tokens {len(targets)} and weights "
            f"{len(weights)}; all three must have one entry per input position"
        )
    if not all(float(t).is_integer() for t in targets):
        raise CheckFailed(f"{where}: target_tokens are not integers")
    targets_T = [int(t) for t in targets]
    weights_T = [float(w) for w in weights]
    if not all(math.isfinite(w) for w in weights_T):
        raise CheckFailed(f"{where}: weights are not all finite")
    if input_T[1:] != targets_T[:-1]:
        at = next(i for i, (a, b) in enumerate(zip(input_T[1:], targets_T, strict=False)) if a != b)
        raise CheckFailed(
            f"{where}: target {at} is {targets_T[at]} but input {at + 1} is {input_T[at + 1]}; "
            "position i must predict token i+1 (input = tokens[:-1], targets = tokens[1:])"
        )
    return _DatumArrays(input_T, targets_T, weights_T)


def _token_ids(state: _DatasetState, ctx: BuildContext) -> str:
    vocab = ctx.tokenizer.vocab_size
    for split, arrays in state.arrays:
        for i, a in enumerate(arrays):
            bad = [t for t in (*a.input_T, *a.targets_T) if not 0 <= t < vocab]
            if bad:
                raise CheckFailed(
                    f"{split} datum {i} has token ids outside the vocabulary (0-{vocab - 1}): "
                    f"{bad[:5]}; encode with ctx.tokenizer / ctx.renderer"
                )
    return f"every id inside the tokenizer's vocabulary (0-{vocab - 1})"


def _dataset_determinism(state: _DatasetState, ctx: BuildContext) -> str:
    assert state.builder is not None and state.train is not None
    train, test = _sft_pair(state.builder(ctx))
    again = {"train": train, "test": test}
    for split, arrays in state.arrays:
        other = again[split]
        if other is None:
            raise CheckFailed(f"a second build with seed {ctx.seed} has no {split} set")
        second = [_datum_arrays(d, f"{split} datum {i}") for i, d in enumerate(other.get_batch(0))]
        if second != arrays:
            raise CheckFailed(
                f"{split} batch 0 differs between two builds with seed {ctx.seed}; derive every "
                "random choice from ctx.seed"
            )
    state.train.set_epoch(1)
    train.set_epoch(1)
    epoch_a = [_datum_arrays(d, "train datum") for d in state.train.get_batch(0)]
    epoch_b = [_datum_arrays(d, "train datum") for d in train.get_batch(0)]
    if epoch_a != epoch_b:
        raise CheckFailed(
            f"after set_epoch(1), train batch 0 differs between two builds with seed {ctx.seed}; "
            "shuffle with a generator seeded from the dataset seed and the epoch"
        )
    return "a second build gives the same batch 0, also after set_epoch(1)"


def _sft_pair(result: object) -> tuple[SupervisedDataset, SupervisedDataset | None]:
    train, test = builder_pair(result, "SupervisedDataset")
    if not isinstance(train, SupervisedDataset):
        raise CheckFailed(f"the train set is a {type(train).__name__}, not a SupervisedDataset")
    if test is not None and not isinstance(test, SupervisedDataset):
        raise CheckFailed(
            f"the test set is a {type(test).__name__}, not a SupervisedDataset or None"
        )
    return train, test


assert_dataset_contract = asserting(check_dataset, "assert_dataset_contract")
"""`check_dataset`, raising `AssertionError` with the report when a check fails."""
