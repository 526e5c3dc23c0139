"""Plugin discovery: pluggy hooks loaded from the entry-point group `cookbook`."""

from cookbook.registry.hookspecs import PLUGIN_API_VERSION, hookimpl
from cookbook.registry.specs import DatasetSpec, EnvSpec, EvalSpec, PreferenceModelSpec, Spec

__all__ = [
    "PLUGIN_API_VERSION",
    "DatasetSpec",
    "EnvSpec",
    "EvalSpec",
    "PreferenceModelSpec",
    "Spec",
    "hookimpl",
]
