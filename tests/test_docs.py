"""The docs and docstrings cite files of this repo only: nothing points at notes kept outside
the repo, and every repo path a Markdown doc names exists."""

from __future__ import annotations

import inspect
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import chz
import pytest

REPO = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"DESIGN\.md|DEVELOPMENT-seed|\bnotes/[\w-]+\.md|\.\./shared/")
CITED = re.compile(
    r"(?<![\w/.-])((?:cookbook|plugins|tests|benchmarks|scripts|docs|envs_contrib)/"
    r"[\w./-]*\w\.(?:py|md|toml|sh|jsonl))"
)


def _tracked() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / name for name in listed if name.endswith((".py", ".md", ".toml", ".tmpl"))]


def test_nothing_points_outside_the_repo() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in _tracked()
        if path.is_file() and path.name != "test_docs.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not offenders, offenders


def test_every_repo_path_the_docs_cite_exists() -> None:
    missing = []
    for path in _tracked():
        if not path.is_file() or path.suffix != ".md":
            continue
        base = path.parent
        for cited in CITED.findall(path.read_text(encoding="utf-8")):
            # a path from the repo root, or (in a plugin's own files) from its distribution
            if not any((root / cited).exists() for root in (REPO, base, *base.parents)):
                missing.append(f"{path.relative_to(REPO)}: {cited}")
    assert not missing, missing


def _parameters(function: Callable[..., object]) -> list[str]:
    return [p for p in inspect.signature(function).parameters if p not in ("self", "cls")]


def test_the_plugin_guide_names_only_apis_that_exist() -> None:
    """docs/plugins.md names these functions, classes, fields and settings: each exists, with
    the parameters the guide gives it (update the guide when this fails)."""
    import cookbook.testing
    from cookbook.build_context import BuildContext
    from cookbook.eval.episodes import EpisodeEvaluator, EpisodeResults, play_episodes
    from cookbook.eval.types import SMALL_SIZES, EvaluatorBuilder
    from cookbook.registry import EnvSpec, EvalSpec, hookimpl, hookspecs
    from cookbook.renderers.base import Renderer, TrainOnWhat
    from cookbook.rl.train import Config
    from cookbook.rl.types import EnvGroupBuilder, StepResult
    from cookbook.rl.warm_start import WarmStartConfig
    from cookbook.supervised.datasets import DatumDataset
    from cookbook.supervised.datums import datum_from_tokens

    guide = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert _parameters(EpisodeEvaluator.from_env) == [
        "env", "ctx", "num_groups", "split", "group_size", "max_tokens", "temperature",
        "step_timeout_s",
    ]  # fmt: skip
    assert _parameters(EpisodeEvaluator.__init__) == [
        "groups_P", "max_tokens", "temperature", "seed", "step_timeout_s",
    ]  # fmt: skip
    assert _parameters(play_episodes) == ["groups_P", "policy", "seed", "step_timeout_s"]
    assert callable(EpisodeEvaluator.play)
    for name in ("groups_P", "group_indices_P", "num_groups", "lost", "error_messages", "metrics"):
        assert hasattr(EpisodeResults, name) or name in EpisodeResults.__dataclass_fields__, name
    assert _parameters(datum_from_tokens) == ["tokens_T", "weights_T"]
    assert _parameters(DatumDataset.__init__)[:3] == ["datums_D", "batch_size", "seed"]
    assert _parameters(Renderer.build_generation_prompt) == ["messages"]
    assert _parameters(Renderer.get_stop_sequences) == []
    assert _parameters(Renderer.parse_response) == ["tokens"]
    assert _parameters(Renderer.build_supervised_example) == ["messages", "train_on_what"]
    assert TrainOnWhat.LAST_ASSISTANT_MESSAGE
    sizes = ", ".join(f"`{name}`" for name in SMALL_SIZES)
    assert sizes in " ".join(guide.split()), f"the guide must list SMALL_SIZES: {sizes}"
    assert callable(EvaluatorBuilder.small)
    for name in ("assert_env_contract", "assert_eval_contract", "assert_dataset_contract"):
        assert callable(getattr(cookbook.testing, name)), name
    for name in ("check_env", "check_dataset", "check_eval", "ScriptedPolicy", "tiny_context"):
        assert callable(getattr(cookbook.testing, name)), name
    for name in ("assert_preference_model_contract",):
        assert callable(getattr(cookbook.testing, name)), name
    assert callable(hookimpl) and callable(EvalSpec)
    for hook in (
        "register_envs",
        "register_datasets",
        "register_evals",
        "register_preference_models",
    ):
        assert hasattr(hookspecs, hook), hook
    assert {"name", "builder", "summary", "warm_start_dataset", "recommended"} <= set(
        EnvSpec.__dataclass_fields__
    )
    context = set(BuildContext.__dataclass_fields__) | {"is_tiny"}
    for name in re.findall(r"^\| `(\w+)` \|", guide, flags=re.MULTILINE):
        assert name in context, f"BuildContext has no {name}"
    assert hasattr(BuildContext, "is_tiny")
    assert set(StepResult.__annotations__) == {
        "reward", "episode_done", "next_observation", "next_stop_condition", "metrics", "logs",
    }  # fmt: skip
    for name in ("make_envs", "compute_group_rewards", "logging_tags"):
        assert hasattr(EnvGroupBuilder, name), name
    # Run settings the guide names.
    config_keys = set(chz.chz_fields(Config))
    for key in ("eval_before_rl", "deterministic", "env_step_timeout_s", "max_error_fraction"):
        assert key in config_keys and key in guide, key
    for key in ("eval_every", "test_max_batches", "evals", "warm_start", "load_checkpoint_path"):
        assert key in config_keys and key in guide, key
    for key in re.findall(r"warm_start\.(\w+)", guide):
        assert key in chz.chz_fields(WarmStartConfig), f"warm_start.{key}"
