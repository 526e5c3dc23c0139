"""AdamW for the local training client, without `torch.optim.Optimizer`.

Constructing any `torch.optim.Optimizer` imports `torch._dynamo` (its `add_param_group` is
wrapped by `torch._disable_dynamo`), which costs ~1.5 s in every fresh process that trains: more
than the rest of a tiny run's start-up. This class keeps the same per-parameter state and calls
the same functional update (`torch.optim.adamw.adamw`, the kernel `torch.optim.AdamW.step` runs),
so the weights it produces are bit-identical to `torch.optim.AdamW`'s, and its `state_dict` has
`torch.optim.AdamW`'s layout (checkpoints written before and after this change load both ways).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.optim.adamw import adamw

_STATE_KEYS = ("step", "exp_avg", "exp_avg_sq")


class AdamW:
    """AdamW over a fixed list of parameters; the hyperparameters are given at each `step`."""

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self._params = list(params)
        self._state: dict[int, dict[str, torch.Tensor]] = {}
        self._group: dict[str, object] = {
            "lr": 0.0,
            "betas": (0.9, 0.95),
            "eps": 1e-12,
            "weight_decay": 0.0,
        }

    @torch.no_grad()
    def step(
        self, *, lr: float, betas: tuple[float, float], eps: float, weight_decay: float
    ) -> None:
        """One update of the parameters that have a gradient (as `torch.optim.AdamW.step`)."""
        self._group.update(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for i, p in enumerate(self._params):
            if p.grad is None:
                continue
            state = self._state.get(i)
            if state is None:  # lazily, as torch.optim does: float32 step count on the CPU
                state = self._state[i] = {
                    "step": torch.tensor(0.0, dtype=torch.float32),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        if not params:
            return
        adamw(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            foreach=None,
            capturable=False,
            differentiable=False,
            fused=None,
            grad_scale=None,
            found_inf=None,
            has_complex=any(torch.is_complex(p) for p in params),
            amsgrad=False,
            beta1=betas[0],
            beta2=betas[1],
            lr=lr,
            weight_decay=weight_decay,
            eps=eps,
            maximize=False,
        )

    def state_dict(self) -> dict[str, object]:
        """`torch.optim.AdamW.state_dict()`'s layout: state by parameter index, one group."""
        group = {
            **self._group,
            "amsgrad": False,
            "maximize": False,
            "foreach": None,
            "capturable": False,
            "differentiable": False,
            "fused": None,
            "decoupled_weight_decay": True,
            "params": list(range(len(self._params))),
        }
        state = {i: dict(s) for i, s in self._state.items()}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, saved: Mapping[str, object]) -> None:
        """Restore a `state_dict` (this class's or `torch.optim.AdamW`'s) for the same
        parameters: moments go to each parameter's device and dtype, as torch.optim does."""
        groups = saved.get("param_groups")
        state = saved.get("state")
        if not isinstance(groups, list) or len(groups) != 1 or not isinstance(state, Mapping):
            raise ValueError("not an AdamW state dict with one parameter group")
        indices = groups[0].get("params") if isinstance(groups[0], Mapping) else None
        if not isinstance(indices, list) or len(indices) != len(self._params):
            got = len(indices) if isinstance(indices, list) else "no"
            raise ValueError(
                f"the saved optimizer state is for {got} parameters, this model trains "
                f"{len(self._params)}"
            )
        restored: dict[int, dict[str, torch.Tensor]] = {}
        for position, index in enumerate(indices):
            entry = state.get(index)
            if entry is None:
                continue
            p = self._params[position]
            if not isinstance(entry, Mapping) or any(k not in entry for k in _STATE_KEYS):
                raise ValueError(f"optimizer state of parameter {index} lacks {_STATE_KEYS}")
            restored[position] = {
                "step": torch.as_tensor(entry["step"], dtype=torch.float32).detach().clone(),
                "exp_avg": entry["exp_avg"].detach().to(p.device, p.dtype).clone(),
                "exp_avg_sq": entry["exp_avg_sq"].detach().to(p.device, p.dtype).clone(),
            }
        self._state = restored
        group = groups[0]
        self._group.update(
            {k: group[k] for k in ("lr", "betas", "eps", "weight_decay") if k in group}
        )
