"""The catalog: every env, dataset and eval the installed plugins register, looked up by name.

    from cookbook.registry.catalog import load_catalog

    spec = load_catalog().get_env("tictactoe")   # or "cookbook-env-tictactoe:tictactoe"
    builder_cls = spec.load()                    # imports the plugin's builder only now

Lookups that fail raise `UserError` with one line that says what to do: a did-you-mean for
typos, a hint when the name is of another kind, both qualified names when two distributions
register one name, and why the plugin cannot be used when the name belongs to a broken,
incompatible or disabled one (`COOKBOOK_DISABLE_PLUGINS`, see `discovery.py`).
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Sequence
from typing import cast

from cookbook.errors import UserError
from cookbook.registry.discovery import (
    DisabledPlugins,
    LoadedPlugin,
    PluginInfo,
    disabled_plugin,
    find_sources,
    load_source,
)
from cookbook.registry.errors import KINDS, PLURALS, a_kind, did_you_mean, label
from cookbook.registry.specs import (
    DatasetSpec,
    EnvSpec,
    EvalSpec,
    Kind,
    PreferenceModelSpec,
    Spec,
    normalize_distribution,
)

__all__ = ["Catalog", "PluginInfo", "load_catalog"]


class Catalog:
    """What the installed plugins provide. Build it with `load_catalog()`."""

    def __init__(
        self, loaded: Sequence[LoadedPlugin], unknown_disabled: Sequence[str] = ()
    ) -> None:
        """Index loaded distributions (see `discovery.load_source`). `unknown_disabled`: names
        in `COOKBOOK_DISABLE_PLUGINS` that match no installed distribution."""
        self.unknown_disabled = list(unknown_disabled)
        """Names `COOKBOOK_DISABLE_PLUGINS` gives that are not installed (a typo disables
        nothing), each with a did-you-mean hint; `cookbook plugins` shows them."""
        self._loaded = sorted(loaded, key=lambda p: normalize_distribution(p.info.distribution))
        self._by_dist = {normalize_distribution(p.info.distribution): p for p in self._loaded}
        # kind -> name -> specs from every working distribution that registers it
        self._usable: dict[Kind, dict[str, list[Spec]]] = {k: {} for k in KINDS}
        for plugin in self._loaded:
            if plugin.info.ok:
                for spec in plugin.specs:
                    self._usable[spec.kind].setdefault(spec.name, []).append(spec)

    @classmethod
    def discover(cls) -> Catalog:
        """Load every distribution in the `cookbook` entry-point group (uncached), except the
        ones `COOKBOOK_DISABLE_PLUGINS` names: those are listed, never imported."""
        sources = find_sources()
        disabled = DisabledPlugins.from_environ()
        disabled.check(sources)
        loaded = [
            disabled_plugin(s, disabled) if disabled.covers(s) else load_source(s) for s in sources
        ]
        return cls(loaded, unknown_disabled=disabled.unknown(sources))

    # ----- listing (after `list` below, annotations spell the builtin `builtins.list`) -----

    def list(self, kind: Kind) -> list[Spec]:
        """Every usable spec of `kind`, sorted by name; a clashing name appears once per
        distribution (see `is_clash`)."""
        specs = [spec for specs in self._usable[kind].values() for spec in specs]
        return sorted(specs, key=lambda s: (s.name, normalize_distribution(s.distribution)))

    def is_clash(self, spec: Spec) -> bool:
        """Whether another distribution registers the same name for the same kind."""
        return len(self._usable[spec.kind].get(spec.name, [])) > 1

    def plugins(self) -> builtins.list[PluginInfo]:
        """Every plugin distribution, whatever its status, sorted by name."""
        return [p.info for p in self._loaded]

    def broken(self) -> builtins.list[PluginInfo]:
        """The distributions that cannot be used though nobody asked for that: failed to import
        or register (`broken`), or built for another plugin API (`incompatible`)."""
        return [p.info for p in self._loaded if p.info.status in ("broken", "incompatible")]

    def disabled(self) -> builtins.list[PluginInfo]:
        """The distributions `COOKBOOK_DISABLE_PLUGINS` disabled."""
        return [p.info for p in self._loaded if p.info.status == "disabled"]

    # ----- lookup -----

    def get(self, kind: Kind, name: str) -> Spec:
        """The spec registered as `name` (or `distribution:name`) for `kind`.

        Raises `UserError` for an unknown name, a name of another kind, a name two
        distributions register, or a name that belongs to a broken plugin."""
        text = name.strip().lower()
        if ":" in text:
            dist, _, bare = text.partition(":")
            return self._get_qualified(kind, normalize_distribution(dist), bare.strip(), name)
        found = self._usable[kind].get(text, [])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            choices = " or ".join(f"'{s.qualified_name}'" for s in found)
            dists = " and ".join(s.distribution for s in found)
            raise UserError(
                f"{label(kind)} '{text}' is registered by both {dists}; pick one with its qualified "
                f"name: {choices} (or uninstall one)"
            )
        self._raise_if_unavailable(kind, text)
        for other in KINDS:
            if other != kind and text in self._usable[other]:
                raise UserError(
                    f"'{text}' is {a_kind(other)}, not {a_kind(kind)}; "
                    f"`cookbook list {PLURALS[kind]}` shows the {PLURALS[kind]}"
                )
        raise UserError(f"unknown {label(kind)} '{name}'{self._unknown_hint(kind, text)}")

    def get_env(self, name: str) -> EnvSpec:
        """`get("env", name)`, typed."""
        return cast(EnvSpec, self.get("env", name))

    def get_dataset(self, name: str) -> DatasetSpec:
        """`get("dataset", name)`, typed."""
        return cast(DatasetSpec, self.get("dataset", name))

    def get_eval(self, name: str) -> EvalSpec:
        """`get("eval", name)`, typed."""
        return cast(EvalSpec, self.get("eval", name))

    def get_preference_model(self, name: str) -> PreferenceModelSpec:
        """`get("preference_model", name)`, typed."""
        return cast(PreferenceModelSpec, self.get("preference_model", name))

    def plugin(self, distribution: str) -> PluginInfo | None:
        """The info of one distribution, by any spelling of its name."""
        found = self._by_dist.get(normalize_distribution(distribution))
        return found.info if found is not None else None

    # ----- helpers -----

    def _get_qualified(self, kind: Kind, dist: str, bare: str, raw: str) -> Spec:
        plugin = self._by_dist.get(dist)
        if plugin is None:
            hint = did_you_mean(dist, self._by_dist)
            raise UserError(
                f"no plugin distribution '{dist}' is installed{hint}; "
                "`cookbook plugins` lists the installed ones"
            )
        specs = [s for s in plugin.specs if s.kind == kind and s.name == bare]
        if specs and plugin.info.ok:
            return specs[0]
        if not plugin.info.ok:
            raise self._unavailable_error(plugin, f"{label(kind)} '{raw}' comes from")
        names = [s.name for s in plugin.specs if s.kind == kind]
        offered = ", ".join(names) if names else "none"
        raise UserError(
            f"{plugin.info.distribution} has no {label(kind)} '{bare}'{did_you_mean(bare, names)}; "
            f"its {PLURALS[kind]}: {offered}"
        )

    def _raise_if_unavailable(self, kind: Kind, name: str) -> None:
        """If a distribution that cannot be used registered `name` (or, not having been imported
        or having failed to import, looks like it would have), why it cannot is the answer."""
        for plugin in self._loaded:
            if plugin.info.ok:
                continue
            if any(s.kind == kind and s.name == name for s in plugin.specs):
                raise self._unavailable_error(plugin, f"{label(kind)} '{name}' comes from")
            if not plugin.specs and _looks_like_provider(plugin.info, name):
                raise self._unavailable_error(plugin, f"{label(kind)} '{name}' may come from")

    def _unavailable_error(self, plugin: LoadedPlugin, where: str) -> UserError:
        """`where` is `env 'x' comes from` (or `may come from`, for a guess)."""
        info = plugin.info
        if info.status == "disabled":
            return UserError(f"{where} {info.distribution}, which is {info.error}")
        if info.status == "incompatible":
            error = UserError(f"{where} {info.distribution}, which was {info.error}")
        else:
            error = UserError(
                f"{where} {info.distribution}, which failed to load ({info.error}); fix or "
                "reinstall that plugin (`cookbook plugins` lists plugin errors, --debug shows "
                "the traceback)"
            )
        error.__cause__ = plugin.exception
        return error

    def _unknown_hint(self, kind: Kind, name: str) -> str:
        hint = did_you_mean(name, self._usable[kind])
        if not hint:
            hint = f"; `cookbook list {PLURALS[kind]}` shows the {PLURALS[kind]}"
            if not self._usable[kind]:
                hint = f"; no plugin provides any {PLURALS[kind]} (is the plugin installed?)"
        unusable = [p for p in self.plugins() if not p.ok]
        if unusable:
            names = ", ".join(f"{p.distribution} ({p.status})" for p in unusable)
            hint += f" (note: plugins not loaded, see `cookbook plugins`: {names})"
        return hint


def _looks_like_provider(info: PluginInfo, name: str) -> bool:
    """A plugin that failed to import, or was not imported, registered nothing; guess from its
    names whether the user meant it (entry point `tictactoe` for `tictactoe` and
    `tictactoe-demos`, distribution `cookbook-env-tictactoe`)."""
    wanted = normalize_distribution(name)
    for ep in info.entry_points:
        prefix = normalize_distribution(ep)
        if wanted == prefix or wanted.startswith(prefix + "-"):
            return True
    dist = normalize_distribution(info.distribution)
    return dist == wanted or dist.endswith("-" + wanted)


@functools.cache
def load_catalog() -> Catalog:
    """The catalog of installed plugins, discovered once per process.

    Discovery imports each plugin's hook module (kept light by contract) and nothing else:
    no builder, no torch. `load_catalog.cache_clear()` forgets it (tests that install plugins)."""
    return Catalog.discover()
