"""A loop's config from what a user names: registered envs, datasets and evals, a plugin's
recommended settings, a saved `config.json`, and `KEY=VALUE` overrides.

`cookbook rl|sft|eval` and the Python constructors (`cookbook.rl.train.Config.for_env`,
`cookbook.supervised.train.Config.for_dataset`, `cookbook.eval.runner.EvalConfig.for_evals`) all
come here, so a run set up either way is the same run. The keys are the config's own field names
(`learning_rate=3e-4`, `env.opponent=random`, `warm_start.steps=600`), and so are the keys of a
plugin's recommended settings. The few settings that take registered names instead of values are
translated here:

    evals=a,b                  the registered evals a and b (replaces the list; `evals=` for none)
    evals.NAME.KEY=VALUE       an option of eval NAME (NAME is added when it was not listed)
    warm_start.dataset=NAME    another registered dataset for the RL warm start
    eval.KEY=VALUE             `cookbook eval` with a single eval: an option of that eval

Layers, later ones winning: the registry's (the builder, the default log directory, the
warm-start dataset), the env's recommended settings, Python values, the command line. A saved
config (`--config RUN_DIR/config.json`) takes the place of the first two, so the run is rebuilt
exactly and the overrides change only what they name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import chz
from chz.blueprint import Castable

from cookbook.configs import (
    COMMAND_LINE,
    Layer,
    make_from_settings,
    merge_layers,
    parse_overrides,
)
from cookbook.errors import UserError
from cookbook.model_names import is_tiny_model

if TYPE_CHECKING:
    from cookbook.eval.runner import EvalConfig
    from cookbook.registry.catalog import Catalog
    from cookbook.registry.specs import Kind, Spec
    from cookbook.rl.train import Config as RLConfig
    from cookbook.supervised.train import Config as SFTConfig

T = TypeVar("T")


def rl_config(
    env: str | None,
    overrides: Sequence[str] = (),
    *,
    config_file: str | None = None,
    values: Mapping[str, object] | None = None,
    label: str = "cookbook rl",
) -> RLConfig:
    """The RL config of `cookbook rl --env ENV` (or `--config FILE`) with `overrides`; `label`
    starts its error messages (`cookbook play` builds its env this way too).

    The env's warm-start dataset (and the warm-start part of its recommended settings) applies
    when the run starts from an untrained tiny model: no other model needs to learn the answer
    format first. Its `recommended_tiny` settings apply whenever the model is the tiny one."""
    from cookbook.registry.catalog import load_catalog
    from cookbook.rl.train import Config
    from cookbook.rl.types import RLDatasetBuilder
    from cookbook.supervised.types import SupervisedDatasetBuilder

    catalog = load_catalog()
    user = _user_layers(catalog, overrides, values, label)
    if config_file is not None:
        if env is not None:
            raise UserError("give --env NAME or --config FILE, not both (the file names its env)")
        return _make(Config, catalog, [_saved(config_file, Config, label), *user], label)
    if env is None:
        raise UserError("name an env: cookbook rl --env NAME (`cookbook list envs` shows them)")
    spec = catalog.get_env(env)
    home = spec.distribution or None
    registry: dict[str, object] = {
        "env": _load(spec, RLDatasetBuilder),
        "log_dir": default_log_dir("rl", env),
    }

    def recommended_layer(settings: Mapping[str, str]) -> Layer:
        values = {key: Castable(value) for key, value in settings.items()}
        name = f"the recommended settings of env {spec.name}"
        return _translate(Layer(name, values), catalog, home)

    recommended = recommended_layer(spec.recommended)
    layers = [Layer(f"env {spec.name}", registry), recommended, *user]
    if spec.warm_start_dataset is not None or spec.recommended_tiny:
        without = [_without(layer, "warm_start") for layer in layers]
        start = _make(Config, catalog, without, label)
        tiny = is_tiny_model(start.model_name)
        if tiny and spec.recommended_tiny:
            recommended = recommended_layer({**spec.recommended, **spec.recommended_tiny})
            layers[1] = recommended
        if spec.warm_start_dataset is not None and tiny and start.load_checkpoint_path is None:
            dataset = _lookup(catalog, "dataset", spec.warm_start_dataset, home)
            registry["warm_start.dataset"] = _load(dataset, SupervisedDatasetBuilder)
    if "warm_start.dataset" not in registry:
        layers[1] = _without(recommended, "warm_start")
    return _make(Config, catalog, layers, label)


def sft_config(
    dataset: str | None,
    overrides: Sequence[str] = (),
    *,
    config_file: str | None = None,
    values: Mapping[str, object] | None = None,
) -> SFTConfig:
    """The supervised config of `cookbook sft --dataset DATASET` (or `--config FILE`) with
    `overrides`."""
    from cookbook.registry.catalog import load_catalog
    from cookbook.supervised.train import Config
    from cookbook.supervised.types import SupervisedDatasetBuilder

    label = "cookbook sft"
    catalog = load_catalog()
    user = _user_layers(catalog, overrides, values, label)
    if config_file is not None:
        if dataset is not None:
            raise UserError("give --dataset NAME or --config FILE, not both")
        return _make(Config, catalog, [_saved(config_file, Config, label), *user], label)
    if dataset is None:
        raise UserError("sft needs --dataset NAME; `cookbook list datasets` shows the datasets")
    spec = catalog.get_dataset(dataset)
    registry = {
        "dataset": _load(spec, SupervisedDatasetBuilder),
        "log_dir": default_log_dir("sft", dataset),
    }
    return _make(Config, catalog, [Layer(f"dataset {spec.name}", registry), *user], label)


def eval_config(
    evals: Sequence[str],
    overrides: Sequence[str] = (),
    *,
    config_file: str | None = None,
    values: Mapping[str, object] | None = None,
) -> EvalConfig:
    """The config of `cookbook eval --eval A,B` (or `--config FILE`, a `results.json`) with
    `overrides`; with a single eval, `eval.KEY=VALUE` sets its options."""
    from cookbook.eval.runner import EvalConfig
    from cookbook.eval.types import EvaluatorBuilder
    from cookbook.registry.catalog import load_catalog

    label = "cookbook eval"
    catalog = load_catalog()
    names = [n.strip() for raw in evals for n in raw.split(",") if n.strip()]
    if config_file is not None:
        if names:
            raise UserError("give --eval NAME or --config FILE, not both")
        user = _user_layers(catalog, overrides, values, label)
        saved = _saved(config_file, EvalConfig, label)
        return _make(EvalConfig, catalog, [saved, *user], label)
    if not names:
        raise UserError(
            "name an eval: cookbook eval --eval NAME (`cookbook list evals` shows them)"
        )
    specs = [catalog.get_eval(name) for name in names]
    if len({spec.name for spec in specs}) != len(specs):
        raise UserError("an eval is named twice in --eval; name each once")
    registry: dict[str, object] = {
        f"evals.{spec.name}": _load(spec, EvaluatorBuilder) for spec in specs
    }
    joined = "-".join(spec.name for spec in specs)
    registry["output_path"] = f"runs/eval-{joined}/results.json"
    user = _user_layers(catalog, overrides, values, label, [spec.name for spec in specs])
    return _make(EvalConfig, catalog, [Layer("--eval", registry), *user], label)


def default_log_dir(loop: str, name: str) -> str:
    """`runs/<loop>-<name>`: the same command resumes the same run (a qualified `dist:name` keeps
    only the name for sft, both parts for rl)."""
    if loop == "sft":
        name = name.rsplit(":", 1)[-1]
    return f"runs/{loop}-{name.replace(':', '-').replace('/', '-')}"


# ----- layers -----


def _user_layers(
    catalog: Catalog,
    overrides: Sequence[str],
    values: Mapping[str, object] | None,
    label: str,
    names: Sequence[str] = (),
) -> list[Layer]:
    """Python values, then the command line's `KEY=VALUE` arguments, registered names
    translated. `names`: the evals of `cookbook eval` (one of them: `eval.KEY` sets its
    options)."""
    layers = []
    if values:
        layers.append(Layer("the Python arguments", dict(values)))
    if overrides:
        layers.append(Layer(COMMAND_LINE, parse_overrides(overrides, label)))
    if names:
        layers = [_single_eval_options(layer, list(names)) for layer in layers]
    return [_translate(layer, catalog) for layer in layers]


def _saved(path: str, cls: type, label: str) -> Layer:
    """The settings of a saved config (a run's `config.json`, its directory, or an eval's
    `results.json`)."""
    from cookbook.configs import blueprint_values
    from cookbook.runs.config_io import load_config_file

    file = Path(path)
    if file.is_dir():
        file = file / "config.json"
    try:
        config = load_config_file(file)
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        raise UserError(
            f"{file} cannot be rebuilt ({type(e).__name__}: {e}); is the plugin it names installed?"
        ) from e
    if not chz.is_chz(config):
        raise UserError(
            f"{file} holds no saved config; give a run's config.json (or its directory) or an "
            "eval's results.json"
        )
    if not isinstance(config, cls):
        raise UserError(
            f"{file} holds a {type(config).__module__}.{type(config).__name__}, not the config "
            f"of {label}"
        )
    return Layer(str(file), blueprint_values(config))


def _without(layer: Layer, top: str) -> Layer:
    """`layer` less its settings of `top` and below."""
    kept = {k: v for k, v in layer.values.items() if k != top and not k.startswith(top + ".")}
    return Layer(layer.name, kept, tuple(k for k in layer.replaces if k != top))


def _single_eval_options(layer: Layer, names: list[str]) -> Layer:
    """`eval.KEY=VALUE` -> `evals.NAME.KEY=VALUE` when one eval is run."""
    mine = [key for key in layer.values if key.startswith("eval.")]
    if not mine:
        return layer
    if len(names) != 1:
        raise UserError(
            "with several evals, set their options as evals.NAME.KEY=VALUE, not eval.KEY"
        )
    values = {
        (f"evals.{names[0]}." + key.removeprefix("eval.") if key in mine else key): value
        for key, value in layer.values.items()
    }
    return Layer(layer.name, values, layer.replaces)


def _make(cls: type[T], catalog: Catalog, layers: Sequence[Layer], label: str) -> T:
    """Merge `layers` (registered names already translated, see `_translate`) and build
    `cls`."""
    from cookbook.eval.types import EvaluatorBuilder

    values, origins = merge_layers(layers)
    # `evals.NAME.KEY=VALUE` for an eval no layer listed: add it from the registry.
    for key in list(values):
        parts = key.split(".")
        if parts[0] == "evals" and len(parts) > 2 and f"evals.{parts[1]}" not in values:
            spec = _lookup(catalog, "eval", parts[1], None)
            values[f"evals.{parts[1]}"] = _load(spec, EvaluatorBuilder)
            origins[f"evals.{parts[1]}"] = origins[key]
    return make_from_settings(cls, values, origins, label=label)


def _translate(layer: Layer, catalog: Catalog, home: str | None = None) -> Layer:
    """`layer` with registered names turned into builder classes (see the module docstring).
    `home`: the distribution whose own names are looked up first (for an env's recommended
    settings: its own evals and datasets)."""
    from cookbook.eval.types import EvaluatorBuilder
    from cookbook.supervised.types import SupervisedDatasetBuilder

    values: dict[str, object] = {}
    replaces = list(layer.replaces)
    for key, value in layer.values.items():
        text = (
            value.value
            if isinstance(value, Castable)
            else value
            if isinstance(value, str)
            else None
        )
        parts = key.split(".")
        if key == "evals" and text is not None:
            replaces.append("evals")
            names = [n.strip() for n in text.split(",") if n.strip()]
            if not names:
                values["evals"] = {}
            for name in names:
                spec = _lookup(catalog, "eval", name, home)
                values[f"evals.{spec.name}"] = _load(spec, EvaluatorBuilder)
        elif key == "warm_start.dataset" and text is not None:
            spec = _lookup(catalog, "dataset", text, home)
            values[key] = _load(spec, SupervisedDatasetBuilder)
        elif parts[0] == "evals" and len(parts) > 2 and ":" in parts[1]:
            # A qualified name (`evals.dist:name.KEY`) sets the eval listed by its plain name.
            name = _lookup(catalog, "eval", parts[1], None).name
            values[".".join(["evals", name, *parts[2:]])] = value
        elif parts[0] == "evals" and len(parts) > 2 and home is not None:
            # An env's own eval named only by its options: found in the env's distribution
            # first, here, before `_make` would look the plain name up everywhere.
            values[key] = value
            if f"evals.{parts[1]}" not in layer.values:
                spec = _lookup(catalog, "eval", parts[1], home)
                values.setdefault(f"evals.{spec.name}", _load(spec, EvaluatorBuilder))
        else:
            values[key] = value
    return Layer(layer.name, values, tuple(replaces))


def _lookup(catalog: Catalog, kind: Kind, name: str, home: str | None) -> Spec:
    """The spec of `name`; an unqualified name is looked up in the `home` distribution first,
    so an env's own evals and datasets are found even when another plugin clashes with them."""
    if home is not None and ":" not in name:
        from cookbook.registry.specs import normalize_distribution

        try:
            return catalog.get(kind, f"{normalize_distribution(home)}:{name}")
        except UserError:
            pass
    return catalog.get(kind, name)


def _load(spec: Spec, base: type) -> type:
    """The builder class of `spec`, checked to be a `base` (a plugin mistake otherwise)."""
    from cookbook.configs import check_decorated

    cls = spec.load()
    if not issubclass(cls, base):
        raise UserError(
            f"{spec.kind} {spec.name}: its plugin's builder {spec.builder} is not a "
            f"{base.__name__}; report it to the plugin's authors"
        )
    check_decorated(cls, f"{spec.kind} {spec.name}: its builder {spec.builder}")
    return cls
