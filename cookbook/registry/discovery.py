"""Find plugin distributions and collect what each registers, one distribution at a time.

Every distribution gets its own pluggy `PluginManager`, so a plugin module that raises on import,
a hook that raises, or a registration that breaks the contract marks only that distribution
broken; the others load as usual. Nothing here imports a builder: specs keep `"module:attr"`
strings until someone asks for the thing they name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata

import pluggy

from cookbook.registry import hookspecs
from cookbook.registry.errors import KINDS, PLURALS, PluginError, normalize_distribution
from cookbook.registry.specs import DatasetSpec, EnvSpec, EvalSpec, Kind, Spec

ENTRY_POINT_GROUP = "cookbook"
"""The entry-point group plugins publish their hook modules under."""

_HOOKS: dict[Kind, tuple[str, type[Spec]]] = {
    "env": ("register_envs", EnvSpec),
    "dataset": ("register_datasets", DatasetSpec),
    "eval": ("register_evals", EvalSpec),
}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_BUILDER_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class PluginSource:
    """One distribution's plugin modules, not imported yet."""

    distribution: str
    """The distribution's name as its metadata spells it."""
    version: str
    """Its installed version."""
    entry_points: Sequence[tuple[str, Callable[[], object]]]
    """`(entry-point name, loader)` pairs; a loader imports and returns the hook module."""


@dataclass(frozen=True)
class PluginInfo:
    """What `cookbook plugins` shows for one distribution."""

    distribution: str
    """Distribution name (`cookbook-env-tictactoe`)."""
    version: str
    """Installed version."""
    status: str
    """`ok`, or `broken` when importing or registering failed."""
    error: str | None
    """`ExceptionType: message` of the failure, for broken ones."""
    provides: dict[Kind, list[str]] = field(default_factory=dict)
    """Names registered per kind (for a broken one, whatever it managed before failing)."""
    entry_points: list[str] = field(default_factory=list)
    """The entry-point names it publishes in the `cookbook` group."""

    @property
    def ok(self) -> bool:
        """Whether everything it provides is usable."""
        return self.status == "ok"

    def to_json(self) -> dict[str, object]:
        """The `cookbook plugins --json` record."""
        return {
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "provides": {PLURALS[k]: list(self.provides.get(k, [])) for k in KINDS},
            "entry_points": list(self.entry_points),
        }


@dataclass(frozen=True)
class LoadedPlugin:
    """A distribution after its hooks ran: its info, its specs and, if broken, why."""

    info: PluginInfo
    specs: list[Spec]
    """Specs it registered, with `distribution` filled in."""
    exception: BaseException | None = None
    """The failure, kept so `--debug` can show its traceback."""


def find_sources(group: str = ENTRY_POINT_GROUP) -> list[PluginSource]:
    """Every installed distribution that publishes entry points in `group`, sorted by name.

    Reads metadata only; no plugin module is imported."""
    by_dist: dict[str, tuple[str, str, list[tuple[str, Callable[[], object]]]]] = {}
    for ep in metadata.entry_points(group=group):
        dist = ep.dist
        name = dist.name if dist is not None else f"<unknown distribution of {ep.value}>"
        version = dist.version if dist is not None else "?"
        key = normalize_distribution(name)
        entry = by_dist.setdefault(key, (name, version, []))
        entry[2].append((ep.name, ep.load))
    return [
        PluginSource(distribution=name, version=version, entry_points=eps)
        for _, (name, version, eps) in sorted(by_dist.items())
    ]


def load_source(source: PluginSource) -> LoadedPlugin:
    """Import one distribution's hook modules and run its hooks in a manager of its own."""
    specs: list[Spec] = []
    seen: set[tuple[Kind, str]] = set()

    def registrar(kind: Kind) -> Callable[[Spec], None]:
        hook_name, spec_cls = _HOOKS[kind]

        def register(spec: Spec) -> None:
            _check_spec(spec, spec_cls, hook_name)
            if (kind, spec.name) in seen:
                raise PluginError(f"{hook_name} registered the {kind} '{spec.name}' twice")
            seen.add((kind, spec.name))
            specs.append(replace(spec, distribution=source.distribution))

        return register

    exception: BaseException | None = None
    try:
        manager = pluggy.PluginManager(hookspecs.PROJECT)
        manager.add_hookspecs(hookspecs)
        for ep_name, loader in source.entry_points:
            manager.register(loader(), name=f"{source.distribution}:{ep_name}")
        # A misspelt hook name (`register_env`) would otherwise be ignored silently.
        manager.check_pending()
        for kind in KINDS:
            hook_name, _ = _HOOKS[kind]
            getattr(manager.hook, hook_name)(register=registrar(kind))
    # Isolation: any failure (even a plugin calling sys.exit) marks only this distribution broken.
    except (Exception, SystemExit) as e:
        exception = e

    provides: dict[Kind, list[str]] = {k: [s.name for s in specs if s.kind == k] for k in KINDS}
    info = PluginInfo(
        distribution=source.distribution,
        version=source.version,
        status="ok" if exception is None else "broken",
        error=None if exception is None else describe_exception(exception),
        provides={k: names for k, names in provides.items() if names},
        entry_points=[name for name, _ in source.entry_points],
    )
    return LoadedPlugin(info=info, specs=specs, exception=exception)


def describe_exception(e: BaseException) -> str:
    """`Type: first line of the message`, short enough for one line of output."""
    lines = str(e).strip().splitlines()
    message = lines[0] if lines else ""
    if isinstance(e, pluggy.PluginValidationError):
        # pluggy's message embeds the module repr, which says nothing the user can act on.
        message = re.sub(r" in plugin <.*>$", "", message)
    text = f"{type(e).__name__}: {message}" if message else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _check_spec(spec: object, expected: type[Spec], hook_name: str) -> None:
    """Raise `PluginError` unless `spec` is a well-formed `expected`."""
    if not isinstance(spec, expected):
        raise PluginError(
            f"{hook_name} got {type(spec).__name__}, expected {expected.__name__}(name=..., builder=...)"
        )
    if not _NAME_RE.fullmatch(spec.name):
        raise PluginError(
            f"{hook_name}: bad name '{spec.name}' (use lower-case letters, digits, '-' and '_')"
        )
    if not _BUILDER_RE.match(spec.builder):
        raise PluginError(
            f"{hook_name}: {spec.kind} '{spec.name}' has builder '{spec.builder}'; "
            "write it as 'package.module:ClassName'"
        )
