"""The local backend's AdamW: the same updates and state layout as `torch.optim.AdamW`, and a
training process that never imports `torch._dynamo` (what torch.optim's constructor costs)."""

from __future__ import annotations

import subprocess
import sys

import torch

from cookbook.backends.local.adamw import AdamW


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in ((4, 3), (5,), (2, 2))]


def _grads(step: int, params: list[torch.nn.Parameter]) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(100 + step)
    grads: list[torch.Tensor | None] = [torch.randn(p.shape, generator=g) for p in params]
    if step == 1:
        grads[1] = None  # a parameter without a gradient is left alone, as torch.optim does
    return grads


def _hyper(step: int) -> dict[str, float | tuple[float, float]]:
    return {
        "lr": 1e-2 / (step + 1),
        "betas": (0.9, 0.95 if step < 2 else 0.99),
        "eps": 1e-8,
        "weight_decay": 0.1 * step,
    }


def _step_both(
    step: int,
    ours: AdamW,
    ours_p: list[torch.nn.Parameter],
    theirs: torch.optim.AdamW,
    theirs_p: list[torch.nn.Parameter],
) -> None:
    """One step of both optimizers with the same gradients and hyperparameters; the weights
    must stay bit-identical."""
    hyper = _hyper(step)
    for params in (ours_p, theirs_p):
        for p, grad in zip(params, _grads(step, params), strict=True):
            p.grad = grad
    ours.step(**hyper)  # type: ignore[arg-type]
    for group in theirs.param_groups:
        group.update(hyper)
    theirs.step()
    for a, b in zip(ours_p, theirs_p, strict=True):
        assert torch.equal(a, b)


def test_updates_are_bit_identical_to_torch_optim_adamw_and_states_load_both_ways() -> None:
    ours_p, theirs_p = _params(0), _params(0)
    ours = AdamW(ours_p)
    theirs = torch.optim.AdamW(theirs_p, lr=0.0)
    for step in range(4):
        _step_both(step, ours, ours_p, theirs, theirs_p)

    # a state saved by torch.optim (checkpoints of earlier releases) continues exactly here,
    # and ours loads into torch.optim
    from_theirs_p, into_theirs_p = _params(1), _params(1)
    with torch.no_grad():
        for src, a, b in zip(theirs_p, from_theirs_p, into_theirs_p, strict=True):
            a.copy_(src)
            b.copy_(src)
    from_theirs = AdamW(from_theirs_p)
    from_theirs.load_state_dict(theirs.state_dict())
    into_theirs = torch.optim.AdamW(into_theirs_p, lr=0.0)
    into_theirs.load_state_dict(ours.state_dict())
    for step in range(4, 6):
        _step_both(step, from_theirs, from_theirs_p, into_theirs, into_theirs_p)


def test_a_state_for_other_parameters_is_refused() -> None:
    saved = AdamW(_params(0)).state_dict()
    other = AdamW(_params(0)[:2])
    try:
        other.load_state_dict(saved)
    except ValueError as e:
        assert "for 3 parameters, this model trains 2" in str(e)
    else:
        raise AssertionError("a state for 3 parameters loaded into 2")


def test_training_does_not_import_torch_dynamo() -> None:
    program = """
import sys
import tinker
from tinker import types
from cookbook.backends.local.service import LocalServiceClient
service = LocalServiceClient()
client = service.create_lora_training_client(base_model="tiny", rank=4).result()
datum = types.Datum(
    model_input=types.ModelInput.from_ints([1, 2, 3]),
    loss_fn_inputs={"target_tokens": [2, 3, 4], "weights": [1.0, 1.0, 1.0]},
)
client.forward_backward([datum], "cross_entropy").result()
client.optim_step(types.AdamParams(learning_rate=1e-3)).result()
print("dynamo" if "torch._dynamo" in sys.modules else "no dynamo")
"""
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "no dynamo", out.stdout + out.stderr
