"""The model interface the local clients use.

A `LocalModel` wraps an `nn.Module` with what training and generation need: logits (plain for
training, cached for generation), the tokenizer, which parameters train, and a frozen snapshot
for sampling. Two families implement it: `tiny_model.TinyLocalModel` and
`hf_model.HFLocalModel`; `factory.py` builds either. This module imports neither, so both can
import it.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from cookbook.errors import UserError

if TYPE_CHECKING:
    from cookbook.backends.local.head import OutputHead
    from cookbook.tokenizers import Tokenizer


@dataclass(frozen=True)
class LoraSpec:
    """What a LoRA training client adapts (recorded for the tiny model, which trains fully)."""

    rank: int = 32
    train_mlp: bool = True
    train_attn: bool = True
    train_unembed: bool = True

    def to_dict(self) -> dict[str, int | bool]:
        """Plain values, for checkpoint metadata."""
        return asdict(self)


class GenerationCache(Protocol):
    """A model's KV cache during one batched generation."""

    length: int
    """Positions filled (shared by all rows: prompts are left-padded)."""

    def select_rows(self, index_B: torch.Tensor) -> GenerationCache:
        """A cache whose row i is row `index_B[i]` of this one."""
        ...


class LocalModel(ABC):
    """A causal LM the local backend trains and samples from."""

    def __init__(
        self,
        module: nn.Module,
        *,
        base_model: str,
        tokenizer: Tokenizer,
        vocab_size: int,
        context_length: int,
        pad_token_id: int,
        lora: LoraSpec | None,
        arch: str,
    ) -> None:
        self.module = module
        self.base_model = base_model
        """`tiny...` or the Hugging Face directory."""
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        """Ids the embedding has (token ids must be below it)."""
        self.context_length = context_length
        """Longest sequence the model takes."""
        self.pad_token_id = pad_token_id
        """A valid id used to fill padding (never trained on or attended to)."""
        self.lora = lora
        self.arch = arch

    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return next(self.module.parameters()).device

    @abstractmethod
    def logits(
        self,
        tokens_B_T: torch.Tensor,
        positions_B_T: torch.Tensor | None = None,
        key_mask_B_S: torch.Tensor | None = None,
        cache: GenerationCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Next-token logits `[B, T, V]` (`[B, 1, V]` with `last_only`).

        Without a cache the rows are right-padded and causal masking alone is exact. With a
        cache the T tokens are appended at `cache.length`; `key_mask_B_S` (S >= length + T)
        says which cache positions hold real tokens, `positions_B_T` are per-row positions.
        """

    def training_head(self) -> OutputHead | None:
        """The output layer as tensors, for training's chunked logprobs (`head.py`), or None
        where the model cannot be split into `final_hidden` and a plain head (training then
        takes the full `logits`)."""
        return None

    def final_hidden(
        self, tokens_R_W: torch.Tensor, positions_R_W: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The hidden states `[R, W, H]` that `training_head` turns into logits (no cache).

        Without positions each row is one sequence, right-padded. With `positions_R_W` a row
        may hold several sequences back to back (packed): positions restart at 0 where one
        begins, and each attends only within itself."""
        raise NotImplementedError(f"{type(self).__name__} has no training_head")

    @abstractmethod
    def new_cache(self, batch_size: int, max_length: int) -> GenerationCache:
        """An empty cache for `batch_size` rows of up to `max_length` positions."""

    @abstractmethod
    def metadata(self) -> dict[str, object]:
        """What a checkpoint records to rebuild this model before loading its weights."""

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The parameters the optimizer updates, in a fixed order."""
        return [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Copies (on CPU) of the trainable weights: what checkpoints store."""
        return {n: p.detach().to("cpu", copy=True) for n, p in self.trainable_named_parameters()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Copy `state` into the trainable weights; names and shapes must match exactly."""
        params = dict(self.trainable_named_parameters())
        if set(state) != set(params):
            missing = sorted(set(params) - set(state))[:3]
            extra = sorted(set(state) - set(params))[:3]
            raise UserError(
                f"checkpoint {source} does not fit this model (missing {missing}, "
                f"unexpected {extra}); load it into a client of the same base model and LoRA rank"
            )
        with torch.no_grad():
            for name, p in params.items():
                if state[name].shape != p.shape:
                    raise UserError(
                        f"checkpoint {source}: {name} has shape {tuple(state[name].shape)}, "
                        f"the model has {tuple(p.shape)}; use a client of the same model size"
                    )
                p.copy_(state[name])

    def snapshot(self) -> LocalModel:
        """A frozen copy for sampling. Frozen weights (the base under LoRA) are shared, not
        copied; trainable ones are copied, so later training does not change the snapshot."""
        frozen = {id(p): p for p in self.module.parameters() if not p.requires_grad}
        module = copy.deepcopy(self.module, memo=dict(frozen))
        for p in module.parameters():
            p.requires_grad_(False)
        clone = copy.copy(self)
        clone.module = module
        return clone


def target_logprobs(logits_B_T_V: torch.Tensor, targets_B_T: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position, in float32 (one fused log-softmax + gather)."""
    b, t, v = logits_B_T_V.shape
    nll = F.cross_entropy(
        logits_B_T_V.reshape(b * t, v).float(), targets_B_T.reshape(b * t), reduction="none"
    )
    return -nll.view(b, t)


def packed_causal_mask(positions_B_T: torch.Tensor) -> torch.Tensor:
    """`[B, 1, T, T]` booleans for packed rows: query i sees key j <= i of its own sequence (a
    sequence starts where the position is 0)."""
    t = positions_B_T.shape[1]
    seq_B_T = (positions_B_T == 0).cumsum(dim=1)
    idx = torch.arange(t, device=positions_B_T.device)
    causal_T_T = idx[None, :] <= idx[:, None]
    same_B_T_T = seq_B_T[:, :, None] == seq_B_T[:, None, :]
    return (same_B_T_T & causal_T_T).unsqueeze(1)
