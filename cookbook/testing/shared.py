"""What the env, dataset and eval checks share: resolving what to check (a registered name, a
builder class or a configured builder), configuring it, the import-cost check, small helpers,
and the pytest form of a check (raise with the whole report)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import chz

from cookbook.rl.types import RLDataset
from cookbook.supervised.types import SupervisedDataset
from cookbook.testing.imports import HEAVY_MODULES, hook_modules, probe_imports
from cookbook.testing.report import CheckFailed, Checklist, ContractReport, describe_error

if TYPE_CHECKING:
    from cookbook.registry.specs import Kind

_T = TypeVar("_T")
_B = TypeVar("_B")
_P = ParamSpec("_P")


def resolve_target(
    kind: Kind, target: object, overrides: Sequence[str]
) -> tuple[str, Callable[[], object], list[tuple[str, str]]]:
    """`(label, loader, modules to probe)`; the loader returns the builder class or instance.
    An unknown name raises `UserError` (nothing to check)."""
    if isinstance(target, str):
        from cookbook.registry.catalog import load_catalog

        spec = load_catalog().get(kind, target)
        hooks = hook_modules(spec.distribution) if spec.distribution else []
        modules = [("hook module", m) for m in hooks]
        modules.append(("builder module", spec.builder.partition(":")[0]))
        return spec.name, spec.load, modules
    if isinstance(target, type):
        return target.__qualname__, lambda: target, [("builder module", target.__module__)]
    if overrides:
        raise ValueError(
            "overrides apply to a name or a builder class, not to a configured builder"
        )
    cls = type(target)
    return cls.__qualname__, lambda: target, [("builder module", cls.__module__)]


def configure(
    loader: Callable[[], object],
    base: type[_B],
    overrides: Sequence[str],
    kind: str,
    label: str,
    small: Callable[[_B], _B] | None = None,
) -> tuple[_B, str]:
    """The configured builder and the detail line of the `config` check. `small` (the eval
    check's) makes a small version of the configured builder; the user's `overrides` are then
    applied on top of it."""
    from cookbook.configs import (
        COMMAND_LINE,
        Layer,
        blueprint_values,
        build_config,
        make_config,
        parse_overrides,
        undecorated_fields,
    )

    loaded = loader()
    if isinstance(loaded, type):
        name = f"{loaded.__module__}:{loaded.__qualname__}"
        if not issubclass(loaded, base):
            raise CheckFailed(f"{name} is not a {base.__name__} subclass")
        if not chz.is_chz(loaded):
            raise CheckFailed(f"{name} is not a chz class; decorate it with @chz.chz")
        missing = undecorated_fields(loaded)
        if missing:
            raise CheckFailed(
                f"{name} declares {', '.join(missing)} without @chz.chz on its class, so they "
                "are not options; decorate it with @chz.chz"
            )
        instance = make_config(loaded, overrides, label=f"{kind} {label}")
    else:
        if not isinstance(loaded, base):
            raise CheckFailed(f"{type(loaded).__name__} is not a {base.__name__}")
        instance = loaded
    assert isinstance(instance, base)
    full = instance
    if small is not None:
        instance = small(instance)
        if type(instance) is not type(full):
            raise CheckFailed(
                f"small() returned {type(instance).__name__}, not a {type(full).__name__}"
            )
        if overrides:  # the user's own settings win over the small ones
            layers = [
                Layer("its small() version", blueprint_values(instance)),
                Layer(COMMAND_LINE, parse_overrides(overrides, f"{kind} {label}")),
            ]
            instance = build_config(type(full), layers, label=f"{kind} {label}")
    round_trip_config(instance)
    detail = f"{type(instance).__name__}, round-trips through config.json"
    if overrides:
        detail += f"; set: {' '.join(overrides)}"
    changed = changed_fields(full, instance)
    if changed:
        detail += "; small: " + " ".join(f"{k}={v}" for k, v in changed.items())
    return instance, detail


def changed_fields(before: object, after: object) -> dict[str, str]:
    """The leaf settings of chz config `after` that differ from `before`'s, as text."""
    from cookbook.configs import blueprint_values

    old, new = blueprint_values(before), blueprint_values(after)
    return {k: str(v) for k, v in new.items() if k not in old or old[k] != v}


def round_trip_config(instance: object) -> None:
    """A run stores its config as JSON and rebuilds it to resume: the builder must survive."""
    from cookbook.runs.config_io import config_from_json, config_to_json

    try:
        data = config_to_json(instance)
        text = json.dumps(data)
    except (TypeError, ValueError) as e:
        raise CheckFailed(f"the config cannot be written to config.json: {e}") from e
    try:
        back = config_from_json(json.loads(text))
    except Exception as e:
        raise CheckFailed(
            f"the config cannot be read back from config.json: {describe_error(e)}"
        ) from e
    if config_to_json(back) != data:
        raise CheckFailed("the config changes when written to config.json and read back")


def import_check(checks: Checklist, modules: list[tuple[str, str]], enabled: bool) -> None:
    name = "import cost"
    if not enabled:
        checks.skip(name, "turned off (check_imports=False)")
        return
    testish = [m for _, m in modules if _is_test_module(m)]
    if testish:
        checks.skip(name, f"builder defined in {testish[0]}, not in a plugin module")
        return
    checks.run(name, lambda: _import_cost(modules))


def _is_test_module(module: str) -> bool:
    base = module.rpartition(".")[2]
    return (
        module == "__main__"
        or base.startswith("test_")
        or base.endswith("_test")
        or base == "conftest"
    )


def _import_cost(modules: list[tuple[str, str]]) -> str:
    probes = probe_imports(modules)
    for probe in probes:
        if probe.error is not None:
            raise CheckFailed(f"importing {probe.role} {probe.module} failed: {probe.error}")
        if probe.heavy:
            lib, where = next(iter(probe.heavy.items()))
            raise CheckFailed(
                f"{probe.role} {probe.module} imports {lib} at module level ({_tail(where)}); "
                "import it inside the function that needs it (or under TYPE_CHECKING)"
            )
    timings = ", ".join(f"{p.module} {p.time_s * 1000:.0f} ms" for p in probes)
    return f"{timings}; no {'/'.join(HEAVY_MODULES)}"


def builder_pair(result: object, what: str) -> tuple[object, object]:
    """A builder's `(train, test | None)`, or a failure saying what came back instead."""
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CheckFailed(
            f"the builder returned {short_repr(result)}; __call__(ctx) must return "
            f"(train, test | None) {what}s"
        )
    train, test = result
    if train is None:
        raise CheckFailed(f"the train set is None; it must be an {what}")
    return train, test


def first_batch(dataset: RLDataset | SupervisedDataset, split: str) -> list[object]:
    size = len(dataset)
    if size <= 0:
        raise CheckFailed(f"the {split} set has {size} batches; it needs at least one")
    batch = dataset.get_batch(0)
    if not isinstance(batch, Sequence) or not batch:
        raise CheckFailed(
            f"{split} get_batch(0) returned {short_repr(batch)}; expected a non-empty list"
        )
    return list(batch)


def load_tinker() -> None:
    """Import tinker (and torch with it) up front, so the seconds it takes are not billed to
    whichever check happens to touch a `ModelInput` first."""
    import tinker.types  # noqa: F401


def run_async(coro: Coroutine[object, object, _T]) -> _T:
    """Run `coro` to the end, also when called from inside a running event loop (an async test):
    then on a worker thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def batches_text(n: int) -> str:
    return f"{n} batch" if n == 1 else f"{n} batches"


def names_text(keys: set[str]) -> str:
    if not keys:
        return "none"
    ordered = sorted(keys)
    return ", ".join(ordered[:6]) + (f", ... ({len(ordered)})" if len(ordered) > 6 else "")


def short_repr(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tail(path_and_line: str) -> str:
    parts = path_and_line.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def check_metrics(metrics: Mapping[str, float], where: str) -> set[str]:
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise CheckFailed(f"{where}: metric key {short_repr(key)} is not a string")
        if not is_number(value) or not math.isfinite(value):
            raise CheckFailed(
                f"{where}: {key} = {short_repr(value)}; metrics must be finite floats (the "
                "runner averages them)"
            )
    return set(metrics)


def asserting(check: Callable[_P, ContractReport], name: str) -> Callable[_P, ContractReport]:
    """`check`, raising `AssertionError` with the whole report when a check failed."""

    def run(*args: _P.args, **kwargs: _P.kwargs) -> ContractReport:
        report = check(*args, **kwargs)
        report.raise_for_failures()
        return report

    run.__name__ = run.__qualname__ = name
    run.__doc__ = (
        f"`{check.__name__}` with the same arguments, for pytest: raises `AssertionError` listing "
        "the failed checks and the whole report; returns the report when every check passed."
    )
    return run
