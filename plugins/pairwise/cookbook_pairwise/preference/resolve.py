"""One string names a configured preference model wherever one is asked for
(`env.preference_model`, `env.monitor`, `eval.preference_model`):

    NAME[:ARG][,KEY=VALUE...]        vowels   length:12   trained:runs/sft-comparisons
                                     judge:/models/qwen,mode=sample,max_tokens=4

NAME is a registered preference model (`cookbook list preference-models`; `distribution:NAME`
when two plugins register one name); ARG sets its builder's `arg_field` (`target` for `length`,
`model` for `judge`, `path` for `trained`); `KEY=VALUE` sets any other option
(`cookbook describe preference-model NAME`); the string is parsed by the core
(`cookbook/preference/spec.py`). Built models are cached per process and string, so
every group of a run shares one judge and its loaded weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cookbook.errors import UserError
from cookbook.preference.spec import ParsedSpec, builder_settings, parse_spec

if TYPE_CHECKING:
    from cookbook.preference.types import PreferenceModel, PreferenceModelBuilder

__all__ = ["ParsedSpec", "check_spec", "make_builder", "parse_spec", "preference_model"]


def make_builder(spec: str) -> PreferenceModelBuilder:
    """The configured builder `spec` names (its argument and options cast to their fields'
    types); one `UserError` line for an unknown name or a bad value."""
    from cookbook.configs import make_config
    from cookbook.preference.types import PreferenceModelBuilder
    from cookbook.registry.catalog import load_catalog
    from cookbook.registry.specs import normalize_distribution

    catalog = load_catalog()
    dists = frozenset(normalize_distribution(p.distribution) for p in catalog.plugins())
    parsed = parse_spec(spec, dists)
    entry = catalog.get_preference_model(parsed.name)
    cls = entry.load()
    if not issubclass(cls, PreferenceModelBuilder):
        raise UserError(
            f"preference model {entry.name}: its plugin's builder {entry.builder} is not a "
            "PreferenceModelBuilder; report it to the plugin's authors"
        )
    settings = builder_settings(cls, parsed, spec)
    return make_config(cls, settings, label=f"preference model {entry.name}")


_models: dict[str, PreferenceModel] = {}


def preference_model(spec: str) -> PreferenceModel:
    """The preference model `spec` names, built once per process."""
    model = _models.get(spec)
    if model is None:
        model = make_builder(spec)()
        _models[spec] = model
    return model


def check_spec(spec: str) -> None:
    """Raise `UserError` now for an unknown name or a bad argument (configs check it when they
    are made, so a typo fails before the run starts, not in its first step)."""
    make_builder(spec)
