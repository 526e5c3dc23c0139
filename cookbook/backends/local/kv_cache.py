"""The tiny model's KV cache: preallocated key/value buffers with an explicit fill length.

Every row of a batch shares one write position (generation left-pads prompts), so appending a
step is a slice write at `length`; which cached positions a row may attend to is the caller's
`key_mask_B_S`. Buffers are allocated once for the whole generation, which is what a static cache
for CUDA graphs needs: a later version can write with a tensor index (`index_copy_`) and attend
over the full buffer under the mask, without changing this interface.
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of each layer, shaped `[B, H, S_max, D]`, filled up to `length`."""

    def __init__(self, keys_L: list[torch.Tensor], values_L: list[torch.Tensor]) -> None:
        self.keys_L = keys_L
        self.values_L = values_L
        self.length = 0
        """Positions filled so far (the same for every row)."""

    @classmethod
    def allocate(
        cls,
        n_layers: int,
        batch_size: int,
        n_heads: int,
        max_length: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> KVCache:
        """Empty buffers for `batch_size` rows of up to `max_length` positions."""
        shape = (batch_size, n_heads, max_length, head_dim)
        keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        return cls(keys, values)

    @property
    def max_length(self) -> int:
        """Positions the buffers hold."""
        return self.keys_L[0].shape[2]

    @property
    def batch_size(self) -> int:
        """Rows in the buffers."""
        return self.keys_L[0].shape[0]

    def append(
        self, layer: int, k_B_H_T_D: torch.Tensor, v_B_H_T_D: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write `T` new positions of `layer` at `length`; returns the keys and values of
        positions `[0, length + T)`. Call `advance(T)` once all layers have appended."""
        t = k_B_H_T_D.shape[2]
        end = self.length + t
        if end > self.max_length:
            raise ValueError(f"KV cache overflow: {end} positions > {self.max_length} allocated")
        self.keys_L[layer][:, :, self.length : end] = k_B_H_T_D
        self.values_L[layer][:, :, self.length : end] = v_B_H_T_D
        return self.keys_L[layer][:, :, :end], self.values_L[layer][:, :, :end]

    def advance(self, n_positions: int) -> None:
        """Mark `n_positions` more positions as filled."""
        self.length += n_positions

    def select_rows(self, index_B: torch.Tensor) -> KVCache:
        """A cache whose row `i` is row `index_B[i]` of this one (repeats allowed): the samples
        of one prompt share its prefill."""
        out = KVCache(
            [k.index_select(0, index_B) for k in self.keys_L],
            [v.index_select(0, index_B) for v in self.values_L],
        )
        out.length = self.length
        return out
