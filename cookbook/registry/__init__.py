"""Plugin discovery: pluggy hooks loaded from the entry-point group `cookbook`."""

from cookbook.registry.hookspecs import hookimpl
from cookbook.registry.specs import DatasetSpec, EnvSpec, EvalSpec, Spec

__all__ = ["DatasetSpec", "EnvSpec", "EvalSpec", "Spec", "hookimpl"]
