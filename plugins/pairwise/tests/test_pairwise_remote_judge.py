"""The `judge` preference model on a Tinker server (`backend=tinker`): a real `cookbook serve` on
a background thread, reached through the `tinker` SDK, with the tiny model."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from cookbook_pairwise import weights
from cookbook_pairwise.preference.judge import ModelJudge
from cookbook_pairwise.preference.resolve import make_builder

from cookbook.errors import UserError
from cookbook.preference.types import Verdict
from cookbook.testing import assert_preference_model_contract
from cookbook.testing.preference_checks import sample_comparisons
from tests.serve.server_thread import running_server

PAIRS = [("cat", "aeiou", "xyz"), ("dog", "b", "eee"), ("sun", "same", "same")]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import torch

    patch = pytest.MonkeyPatch()
    patch.setenv("TINKER_API_KEY", "tml-test")
    patch.setenv("TINKER_TELEMETRY", "0")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the server's torch work; the machine's cores are shared
    try:
        with running_server(tmp_path_factory.mktemp("serve")) as (url, _state):
            yield url
            # Let go of the SDK clients made on this server while it runs: their sessions close
            # instead of failing heartbeats for the rest of the test process.
            for key in [key for key in weights._clients if key[2] == url]:
                del weights._clients[key]
            gc.collect()
    finally:
        torch.set_num_threads(threads)
        patch.undo()


def _verdicts(judge: ModelJudge) -> list[tuple[Verdict, Verdict]]:
    async def both_orders() -> list[tuple[Verdict, Verdict]]:
        return [(await judge.compare(p, a, b), await judge.compare(p, b, a)) for p, a, b in PAIRS]

    return asyncio.run(both_orders())


def _judge(spec: str) -> ModelJudge:
    judge = make_builder(spec)()
    assert isinstance(judge, ModelJudge)
    return judge


def test_judge_on_a_server_answers_like_the_same_weights_here(server_url: str) -> None:
    remote = _verdicts(_judge(f"judge:tiny,backend=tinker,base_url={server_url}"))
    local = _verdicts(_judge("judge:tiny"))  # the server's base tiny model is seed 0's too
    for (forward, backward), (here, here_swapped) in zip(remote, local, strict=True):
        assert 0.0 <= forward.p_first <= 1.0
        assert forward.p_first + backward.p_first == pytest.approx(1.0, abs=1e-6)
        assert forward.p_first == pytest.approx(here.p_first, abs=1e-4)
        assert backward.p_first == pytest.approx(here_swapped.p_first, abs=1e-4)
    assert remote[-1][0].p_first == pytest.approx(0.5, abs=1e-6)  # a reply against itself


def test_judge_on_a_server_keeps_the_preference_model_contract(server_url: str) -> None:
    options = ["backend=tinker", f"base_url={server_url}"]
    # Four comparisons (the empty reply and a reply against itself among them), both orders,
    # from two builds: symmetry and determinism over HTTP.
    assert_preference_model_contract(
        "judge", options, comparisons=sample_comparisons(0, n=4), check_imports=False
    )


def test_judge_on_saved_server_weights_by_tinker_path(server_url: str) -> None:
    import tinker

    service = tinker.ServiceClient(base_url=server_url)
    trainer = service.create_lora_training_client("tiny", rank=4).result()
    path = trainer.save_weights_for_sampler("judge").result().path
    assert path.startswith("tinker://")
    judge = _judge(f"judge:{path},backend=tinker,base_url={server_url}")
    assert judge.mode == "logprobs"  # the server told it the base model: tiny, compact style
    (forward, backward), *_ = _verdicts(judge)
    assert forward.p_first + backward.p_first == pytest.approx(1.0, abs=1e-6)
    service.close("success").result()


def test_an_unreachable_server_or_a_misplaced_option_is_one_line(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINKER_API_KEY", "tml-test")
        with pytest.raises(UserError, match="cannot reach a Tinker server"):
            make_builder("judge:tiny,backend=tinker,base_url=http://127.0.0.1:9")()
    with pytest.raises(UserError, match="add backend=tinker"):
        make_builder("judge:tiny,base_url=http://127.0.0.1:9")
    with pytest.raises(UserError, match="choose one of: local, tinker"):
        make_builder("judge:tiny,backend=remote")
    (tmp_path / "meta.json").write_text("{}")
    with pytest.raises(UserError, match="local checkpoint"):
        make_builder(f"judge:{tmp_path},backend=tinker")()
