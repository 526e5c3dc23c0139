"""Every setting is checked before anything heavy runs and before the run directory is made:
numbers finite and in range, a seed the generators take, a batch that fits in memory, a model
and data files that exist, chz references that resolve, plugin names without a trailing newline.
Each mistake is one `error:` line (exit status 2) and leaves no run directory behind."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path

import pytest

from cookbook.cli import main as cookbook_main
from cookbook.registry import EnvSpec, hookimpl
from cookbook.registry.catalog import Catalog
from cookbook.registry.discovery import PluginSource, load_source


def _refused(capsys: pytest.CaptureFixture[str], args: list[str], log_dir: Path) -> str:
    status = cookbook_main(args)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert not log_dir.exists()  # nothing made before the check
    return err


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("learning_rate=inf", "learning_rate=inf is not a finite number"),
        ("learning_rate=1e999", "learning_rate=inf is not a finite number"),
        ("learning_rate=nan", "learning_rate=nan is not a finite number"),
        ("temperature=inf", "temperature=inf is not a finite number"),
        ("warm_start.learning_rate=inf", "warm_start.learning_rate=inf is not a finite"),
        ("loss_fn_config.clip=nan", "loss_fn_config.clip=nan is not a finite number"),
        ("adam_beta1=1.5", "adam_beta1 must be in [0, 1)"),
        ("env_step_timeout_s=-1", "env_step_timeout_s must be >= 0"),
        ("seed=99999999999999999999999", "seed=99999999999999999999999 is out of range"),
        ("group_size=100000000000", "episodes per batch would not fit in this machine's"),
        ("lora_rank=0", "lora_rank=0 is out of range"),
        ("model_name=/nonexistent", "model_name=/nonexistent: does not exist"),
        ("load_checkpoint_path=/nonexistent", "load_checkpoint_path /nonexistent does not exist"),
        ("learning_rate@=seed", "learning_rate@=seed: seed is not set"),
        ("learning_rate@=", "names no key to take the value of"),
    ],
)
def test_rl_settings_are_checked_first(
    rl_plugin: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    message: str,
) -> None:
    log_dir = tmp_path / "run"
    err = _refused(capsys, ["rl", "--env", "fixture-warm", setting, f"log_dir={log_dir}"], log_dir)
    assert message in err


def test_a_reference_to_a_set_key_is_taken(rl_plugin: Path) -> None:
    from cookbook.rl.train import Config

    config = Config.for_env("fixture-letters", "temperature=0.5", "learning_rate@=temperature")
    assert config.learning_rate == 0.5


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("learning_rate=1e999", "learning_rate=inf is not a finite number"),
        ("adam_beta2=1", "adam_beta2 must be in [0, 1)"),
        ("seed=-1", "seed=-1 is out of range"),
        ("dataset.path=/nonexistent.jsonl", "dataset file /nonexistent.jsonl does not exist"),
        ("model_name=/nonexistent", "model_name=/nonexistent: does not exist"),
    ],
)
def test_sft_settings_are_checked_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str, message: str
) -> None:
    log_dir = tmp_path / "run"
    err = _refused(capsys, ["sft", "--dataset", "jsonl", setting, f"log_dir={log_dir}"], log_dir)
    assert message in err


def test_a_model_directory_without_a_model_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model").mkdir()
    log_dir = tmp_path / "run"
    args = ["sft", "--dataset", "jsonl", f"model_name={tmp_path / 'model'}", f"log_dir={log_dir}"]
    assert "has no config.json" in _refused(capsys, args, log_dir)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("seed=99999999999999999999999", "seed=99999999999999999999999 is out of range"),
        ("model_name=/nonexistent", "model_name=/nonexistent: does not exist"),
        ("load_checkpoint_path=/nonexistent", "load_checkpoint_path /nonexistent does not exist"),
        ("output_path=AFILE/sub/results.json", "AFILE is a file, not a directory"),
    ],
)
def test_eval_settings_are_checked_first(
    rl_plugin: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    message: str,
) -> None:
    (tmp_path / "AFILE").write_text("x")
    output = tmp_path / "out" / "results.json"
    args = ["eval", "--eval", "fixture-echo", f"output_path={output}"]
    args.append(setting.replace("AFILE", str(tmp_path / "AFILE")))
    err = _refused(capsys, args, output.parent)
    assert message.replace("AFILE", str(tmp_path / "AFILE")) in err


@pytest.mark.parametrize(
    ("name", "builder", "says"),
    [
        ("coin\n", "pkg.mod:Builder", "bad name 'coin\\n'"),
        ("coin", "pkg.mod:Builder\n", "has builder 'pkg.mod:Builder\\n'"),
    ],
)
def test_a_plugin_name_with_a_trailing_newline_is_refused(
    name: str, builder: str, says: str
) -> None:
    """A regex's `$` matches before a final newline: the patterns must match the whole string,
    and the message shows the newline instead of breaking the line."""

    def register_envs(register: Callable[[EnvSpec], None]) -> None:
        register(EnvSpec(name=name, builder=builder))

    module = types.ModuleType("cbfix_newline")
    module.register_envs = hookimpl(register_envs)  # type: ignore[attr-defined]
    catalog = Catalog(
        [load_source(PluginSource("newline-dist", "0.0.0", [("ep", lambda: module)]))]
    )
    (info,) = catalog.plugins()
    assert info.status == "broken"
    assert info.error is not None and says in info.error and "\n" not in info.error
