"""Find plugin distributions and collect what each registers, one distribution at a time.

Every distribution gets its own pluggy `PluginManager`, so a plugin module that raises on import,
a hook that raises, or a registration that breaks the contract marks only that distribution
broken; the others load as usual. A plugin built for another plugin API is marked incompatible
(`hookspecs.py` explains the versions), and one named in `COOKBOOK_DISABLE_PLUGINS` is not
imported at all. Nothing here imports a builder: specs keep `"module:attr"` strings until
someone asks for the thing they name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Literal

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from cookbook import __version__ as CORE_VERSION
from cookbook.errors import UserError
from cookbook.registry import hookspecs
from cookbook.registry.errors import (
    KINDS,
    PLURALS,
    PluginError,
    close_matches,
    did_you_mean,
    label,
    normalize_distribution,
)
from cookbook.registry.specs import (
    DatasetSpec,
    EnvSpec,
    EvalSpec,
    Kind,
    PreferenceModelSpec,
    Spec,
)

ENTRY_POINT_GROUP = "cookbook"
"""The entry-point group plugins publish their hook modules under."""

CORE_PLUGIN_MODULE = "cookbook.builtin_plugin"
"""The hook module of the core's own envs, datasets and evals; its distribution (`cookbook-core`)
can never be disabled."""

DISABLE_ENV = "COOKBOOK_DISABLE_PLUGINS"
"""Environment variable: comma-separated distribution names whose plugins are not loaded, or
`*` for every plugin but the core's own."""

Status = Literal["ok", "broken", "incompatible", "disabled"]
"""What `cookbook plugins` shows for a distribution: `ok`; `broken` (importing or registering
failed); `incompatible` (built for another plugin API); `disabled` (by `COOKBOOK_DISABLE_PLUGINS`,
not imported)."""

_HOOKS: dict[Kind, tuple[str, type[Spec]]] = {
    "env": ("register_envs", EnvSpec),
    "dataset": ("register_datasets", DatasetSpec),
    "eval": ("register_evals", EvalSpec),
    "preference_model": ("register_preference_models", PreferenceModelSpec),
}
# Matched with `fullmatch`: `$` also matches before a final newline, so "coin\n" would pass.
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_BUILDER_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


@dataclass(frozen=True)
class PluginSource:
    """One distribution's plugin modules, not imported yet."""

    distribution: str
    """The distribution's name as its metadata spells it."""
    version: str
    """Its installed version."""
    entry_points: Sequence[tuple[str, Callable[[], object]]]
    """`(entry-point name, loader)` pairs; a loader imports and returns the hook module."""
    core: bool = False
    """Whether this is the core's own plugin (see `CORE_PLUGIN_MODULE`)."""


@dataclass(frozen=True)
class PluginInfo:
    """What `cookbook plugins` shows for one distribution."""

    distribution: str
    """Distribution name (`cookbook-env-tictactoe`)."""
    version: str
    """Installed version."""
    status: Status
    """`ok`, `broken`, `incompatible` or `disabled` (see `Status`)."""
    error: str | None
    """Why it is not `ok`, one line: `ExceptionType: message` of a failure, the two plugin API
    versions of an incompatible one, how to enable a disabled one."""
    provides: dict[Kind, list[str]] = field(default_factory=dict)
    """Names registered per kind (for a broken one, whatever it managed before failing; nothing
    for a disabled one, which was not imported)."""
    entry_points: list[str] = field(default_factory=list)
    """The entry-point names it publishes in the `cookbook` group."""
    plugin_api: str | None = None
    """The plugin API range it declared (`COOKBOOK_PLUGIN_API`), if any."""

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
            "plugin_api": self.plugin_api,
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
    by_dist: dict[str, tuple[str, str, list[tuple[str, Callable[[], object]]], bool]] = {}
    for ep in metadata.entry_points(group=group):
        dist = ep.dist
        name = dist.name if dist is not None else f"<unknown distribution of {ep.value}>"
        version = dist.version if dist is not None else "?"
        key = normalize_distribution(name)
        entry = by_dist.setdefault(key, (name, version, [], False))
        entry[2].append((ep.name, ep.load))
        if ep.value == CORE_PLUGIN_MODULE:
            by_dist[key] = (*entry[:3], True)
    return [
        PluginSource(distribution=name, version=version, entry_points=eps, core=core)
        for _, (name, version, eps, core) in sorted(by_dist.items())
    ]


@dataclass(frozen=True)
class DisabledPlugins:
    """The setting of `COOKBOOK_DISABLE_PLUGINS`: distribution names (any spelling) separated
    by commas, or `*` for every plugin but the core's own. The core cannot be disabled: the CLI's
    own dataset and eval come from it, and naming it is an error (with `*` it stays on)."""

    names: frozenset[str] = frozenset()
    """Normalised distribution names."""
    everything: bool = False
    """`*`: every plugin except the core's."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DisabledPlugins:
        """Read `COOKBOOK_DISABLE_PLUGINS` (unset or empty: nothing disabled)."""
        raw = (os.environ if environ is None else environ).get(DISABLE_ENV, "")
        parts = {part.strip() for part in raw.split(",")} - {""}
        return cls(
            names=frozenset(normalize_distribution(p) for p in parts if p != "*"),
            everything="*" in parts,
        )

    def covers(self, source: PluginSource) -> bool:
        """Whether `source` is disabled (never the core)."""
        if source.core:
            return False
        return self.everything or normalize_distribution(source.distribution) in self.names

    def check(self, sources: Sequence[PluginSource]) -> None:
        """A one-line `UserError` if the setting names the core's own distribution."""
        for source in sources:
            if source.core and normalize_distribution(source.distribution) in self.names:
                raise UserError(
                    f"{DISABLE_ENV} names {source.distribution}, the core's own plugin, which "
                    f"cannot be disabled; remove it from {DISABLE_ENV}"
                )

    def unknown(self, sources: Sequence[PluginSource]) -> list[str]:
        """Named distributions that are not installed, each with a did-you-mean hint."""
        installed = [normalize_distribution(s.distribution) for s in sources]
        return [
            f"{name}{did_you_mean(name, close_matches(name, installed, n=1))}"
            for name in sorted(self.names)
            if name not in installed
        ]


def disabled_plugin(source: PluginSource, disabled: DisabledPlugins) -> LoadedPlugin:
    """A disabled distribution, as listed: nothing imported, nothing registered; its `error`
    says how to enable it."""
    name = normalize_distribution(source.distribution)
    if name in disabled.names:
        how = f"disabled by {DISABLE_ENV}; remove {name} from it (or unset it) to enable it"
    else:
        how = (
            f"disabled by {DISABLE_ENV}=*; name only the plugins to disable there (or unset it) "
            "to enable it"
        )
    info = PluginInfo(
        distribution=source.distribution,
        version=source.version,
        status="disabled",
        error=how,
        entry_points=[name for name, _ in source.entry_points],
    )
    return LoadedPlugin(info=info, specs=[])


def load_source(source: PluginSource) -> LoadedPlugin:
    """Import one distribution's hook modules and run its hooks in a manager of its own."""
    specs: list[Spec] = []
    seen: set[tuple[Kind, str]] = set()

    def registrar(kind: Kind) -> Callable[[Spec], None]:
        hook_name, spec_cls = _HOOKS[kind]

        def register(spec: Spec) -> None:
            _check_spec(spec, spec_cls, hook_name)
            if (kind, spec.name) in seen:
                raise PluginError(f"{hook_name} registered the {label(kind)} '{spec.name}' twice")
            seen.add((kind, spec.name))
            specs.append(replace(spec, distribution=source.distribution))

        return register

    exception: BaseException | None = None
    declared: list[str] = []
    try:
        manager = pluggy.PluginManager(hookspecs.PROJECT)
        manager.add_hookspecs(hookspecs)
        for ep_name, loader in source.entry_points:
            module = loader()
            declared += _declared_api(module, f"{source.distribution}:{ep_name}")
            manager.register(module, name=f"{source.distribution}:{ep_name}")
        # A misspelt hook name (`register_env`) would otherwise be ignored silently.
        manager.check_pending()
        for kind in KINDS:
            hook_name, _ = _HOOKS[kind]
            getattr(manager.hook, hook_name)(register=registrar(kind))
    # Isolation: any failure (even a plugin calling sys.exit) marks only this distribution broken.
    except (Exception, SystemExit) as e:
        exception = e

    incompatible = api_mismatch(source, declared)
    status: Status = "ok"
    error: str | None = None
    if incompatible is not None:
        # The version mismatch explains a failure of its hooks too: it is the line to show.
        status, error = "incompatible", incompatible
    elif exception is not None:
        status, error = "broken", describe_exception(exception)
    provides: dict[Kind, list[str]] = {k: [s.name for s in specs if s.kind == k] for k in KINDS}
    info = PluginInfo(
        distribution=source.distribution,
        version=source.version,
        status=status,
        error=error,
        provides={k: names for k, names in provides.items() if names},
        entry_points=[name for name, _ in source.entry_points],
        plugin_api=", ".join(declared) or None,
    )
    return LoadedPlugin(info=info, specs=specs, exception=exception)


def _declared_api(module: object, where: str) -> list[str]:
    """The plugin API range a hook module declares (`[]` for none); a malformed declaration
    is a `PluginError`."""
    value = getattr(module, hookspecs.PLUGIN_API_ATTRIBUTE, None)
    if value is None:
        return []
    example = "'>=1.0,<2'"
    if not isinstance(value, str):
        raise PluginError(
            f"{where}: {hookspecs.PLUGIN_API_ATTRIBUTE} must be a version range string such as "
            f"{example}, got {type(value).__name__}"
        )
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise PluginError(
            f"{where}: {hookspecs.PLUGIN_API_ATTRIBUTE} = {value!r} is not a version range such "
            f"as {example}"
        ) from None
    return [value.strip()]


def api_mismatch(
    source: PluginSource, declared: Collection[str], provided: str = hookspecs.PLUGIN_API_VERSION
) -> str | None:
    """One line naming both versions when a declared range excludes the `provided` plugin API
    version, else `None`."""
    for wanted in declared:
        if not SpecifierSet(wanted).contains(provided, prereleases=True):
            return (
                f"built for cookbook plugin API {wanted}, but this cookbook-core "
                f"({CORE_VERSION}) provides plugin API {provided}; install a release of "
                f"{source.distribution} made for plugin API {provided}, or a cookbook-core "
                f"that provides {wanted}"
            )
    return None


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
            f"{hook_name}: bad name {spec.name!r} (use lower-case letters, digits, '-' and '_')"
        )
    if not _BUILDER_RE.fullmatch(spec.builder):
        raise PluginError(
            f"{hook_name}: {label(spec.kind)} '{spec.name}' has builder {spec.builder!r}; "
            "write it as 'package.module:ClassName'"
        )
