"""Proof by foreign code: tinker-cookbook 0.6.1's own RL and SFT loops, unchanged, on (a) the
in-process local backend (the only change: `tinker.ServiceClient` is `LocalServiceClient`) and
(b) `cookbook serve` through the real SDK (`base_url`). The model is a small random Llama saved
to a temp dir (`random_hf.py`); nothing is downloaded.

The default suite runs, on each path, the RL loop with its default loss (one step) and the SFT
loop (two steps), and through the server a resume that finds its checkpoint over REST;
`--runslow` adds every other RL loss on both paths and the in-process resume.

tinker-cookbook installs with `pip install -r requirements/tinker-cookbook.txt` and
`pip install --no-deps tinker-cookbook==0.6.1` (scripts/install.sh does it); without it these
tests skip.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import tinker

from cookbook.backends.local.service import LocalServiceClient
from cookbook.serve.state import ServerState

pytest.importorskip("tinker_cookbook", reason="tinker-cookbook is not installed")

DEFAULT_LOSS = "importance_sampling"
"""tinker-cookbook's `rl.train.Config.loss_fn` default."""
OTHER_LOSSES = ["ppo", "cispo", "dro", "stable_reinforce"]
"""stable_reinforce is its math recipe's default."""


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """tinker-cookbook's `tinker.ServiceClient(...)` builds the local backend instead."""

    def local(*args: object, **kwargs: object) -> LocalServiceClient:
        return LocalServiceClient(
            *args,  # type: ignore[arg-type]  # the SDK's positional arguments, passed on
            **kwargs,  # type: ignore[arg-type]
            device="cpu",
            base_dir=tmp_path / "ckpt",
        )

    monkeypatch.setattr(tinker, "ServiceClient", local)
    yield


def _rl_config(model_dir: str, log_path: Path, loss_fn: str, base_url: str | None) -> object:
    from tinker_cookbook.recipes.math_rl.arithmetic_env import ArithmeticDatasetBuilder
    from tinker_cookbook.rl.train import Config

    return Config(
        learning_rate=1e-3,
        dataset_builder=ArithmeticDatasetBuilder(
            batch_size=2,
            model_name_for_tokenizer=model_dir,
            renderer_name="role_colon",
            n_batches=1,
            group_size=2,
            include_fewshot=False,
        ),
        model_name=model_dir,
        recipe_name="cookbook-test",
        max_tokens=6,
        log_path=str(log_path),
        eval_every=0,
        save_every=1,
        lora_rank=4,
        loss_fn=loss_fn,  # type: ignore[arg-type]
        base_url=base_url,
        num_groups_to_log=0,
        rollout_json_export=False,
    )


def _run_rl(model_dir: str, log_path: Path, loss_fn: str, base_url: str | None = None) -> None:
    from tinker_cookbook.rl.train import main

    asyncio.run(main(_rl_config(model_dir, log_path, loss_fn, base_url)))  # type: ignore[arg-type]
    checkpoints = [json.loads(line) for line in (log_path / "checkpoints.jsonl").open()]
    assert checkpoints and all("state_path" in c for c in checkpoints)
    metrics = [json.loads(line) for line in (log_path / "metrics.jsonl").open()]
    assert any("env/all/reward/total" in m or "optim/lr" in m for m in metrics)


def _run_sft(model_dir: str, log_path: Path, data: Path, base_url: str | None = None) -> None:
    from tinker_cookbook.renderers import TrainOnWhat
    from tinker_cookbook.supervised.data import FromConversationFileBuilder
    from tinker_cookbook.supervised.train import Config, main
    from tinker_cookbook.supervised.types import ChatDatasetBuilderCommonConfig

    common = ChatDatasetBuilderCommonConfig(
        model_name_for_tokenizer=model_dir,
        renderer_name="role_colon",
        max_length=64,
        batch_size=2,
        train_on_what=TrainOnWhat.ALL_ASSISTANT_MESSAGES,
    )
    config = Config(
        log_path=str(log_path),
        model_name=model_dir,
        dataset_builder=FromConversationFileBuilder(common_config=common, file_path=str(data)),
        recipe_name="cookbook-test",
        learning_rate=1e-3,
        lora_rank=4,
        num_epochs=1,
        save_every=2,
        eval_every=0,
        base_url=base_url,
    )
    asyncio.run(main(config))
    metrics = [json.loads(line) for line in (log_path / "metrics.jsonl").open()]
    losses = [m["train_mean_nll"] for m in metrics if "train_mean_nll" in m]
    assert len(losses) >= 2 and all(loss > 0 for loss in losses)


@pytest.fixture
def chats(tmp_path: Path) -> Path:
    path = tmp_path / "chats.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"{a}+{a}?"},
                {"role": "assistant", "content": str(2 * a)},
            ]
        }
        for a in range(4)  # two steps of two
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rl_then_resume(model_dir: str, log: Path, loss_fn: str, base_url: str | None = None) -> None:
    _run_rl(model_dir, log, loss_fn, base_url)
    before = (log / "checkpoints.jsonl").read_text()
    _run_rl(model_dir, log, loss_fn, base_url)  # finds its checkpoint (REST), resumes, ends
    assert (log / "checkpoints.jsonl").read_text().startswith(before)


def test_rl_and_sft_loops_in_process(
    hf_model_dir: str, tmp_path: Path, in_process: None, chats: Path
) -> None:
    _run_rl(hf_model_dir, tmp_path / "rl", DEFAULT_LOSS)
    _run_sft(hf_model_dir, tmp_path / "sft", chats)


def test_rl_and_sft_loops_through_cookbook_serve(
    hf_model_dir: str, tmp_path: Path, shared_server: tuple[str, ServerState], chats: Path
) -> None:
    url, _ = shared_server
    _rl_then_resume(hf_model_dir, tmp_path / "rl", DEFAULT_LOSS, base_url=url)
    _run_sft(hf_model_dir, tmp_path / "sft", chats, base_url=url)


@pytest.mark.slow
def test_rl_loop_resumes_in_process(hf_model_dir: str, tmp_path: Path, in_process: None) -> None:
    _rl_then_resume(hf_model_dir, tmp_path / "rl", DEFAULT_LOSS)


@pytest.mark.slow
@pytest.mark.parametrize("loss_fn", OTHER_LOSSES)
def test_rl_loop_every_loss_in_process(
    hf_model_dir: str, tmp_path: Path, in_process: None, loss_fn: str
) -> None:
    _run_rl(hf_model_dir, tmp_path / "rl", loss_fn)


@pytest.mark.slow
@pytest.mark.parametrize("loss_fn", OTHER_LOSSES)
def test_rl_loop_every_loss_through_cookbook_serve(
    hf_model_dir: str, tmp_path: Path, shared_server: tuple[str, ServerState], loss_fn: str
) -> None:
    _run_rl(hf_model_dir, tmp_path / "rl", loss_fn, base_url=shared_server[0])
