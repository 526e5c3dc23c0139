"""Fixtures for the local backend tests: a CPU service client and tiny random HF models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cookbook.backends.local.service import LocalServiceClient


@pytest.fixture
def service(tmp_path: Path) -> LocalServiceClient:
    """A CPU service client whose bare-name checkpoints go under `tmp_path`."""
    return LocalServiceClient(device="cpu", base_dir=tmp_path / "ckpt")


@pytest.fixture(scope="session")
def hf_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random tiny Llama and a random tiny Qwen2 (tied head), each with a BPE tokenizer."""
    from cookbook.backends.local.random_hf import Arch, save_random_hf_model

    root = tmp_path_factory.mktemp("hf")
    archs: tuple[Arch, ...] = ("llama", "qwen2")
    return {arch: save_random_hf_model(root / arch, arch, seed=i) for i, arch in enumerate(archs)}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Run these tests on one intra-op thread, restored afterwards.

    The tiny model's ops are small: on a 2-core machine shared with other work, two OpenMP
    threads spend most of a step waiting on each other (measured ~100 ms vs ~7 ms per step).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
