"""KV caches: `SlotCache`, the static cache continuous batching decodes over, and `KVCache`, the
tiny model's simpler cache behind `LocalModel.new_cache`.

`SlotCache` holds, for every layer, keys and values shaped `[slots, length, kv_heads * head_dim]`,
allocated once. Each slot holds one sequence at its own positions (position p of a sequence is at
index p of its slot), so a sequence can join or leave the batch at any decode step. Before each
forward the caller plans the call (`plan_prefill` / `plan_decode`): which slots and positions the
new keys and values go to, what the queries attend to, and the attention mask. The model then calls
`update(layer, k, v)` once per layer. Every index is a tensor computed from tensors, with fixed
shapes for a given batch size and length, so a decode step can be captured in a CUDA graph.

Shared prefixes (`PrefixStore`, `plan_decode_shared`, `prefix_attention`): when rows come in
groups that sample from one prompt, the prompt's keys and values can be kept once per group in
`prefixes`, and each slot then holds only its row's generated tokens (index i: the i-th new
token fed). A decode query attends to its group's prompt, read once for the whole group, and to
its own slot; the two softmax halves are merged by their log-sum-exps, which is the same
attention up to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class _Plan:
    """What the next forward writes and reads."""

    rows: int
    """Rows in the forward's batch."""
    write_index: torch.Tensor | None
    """Flat `[slots * length]` row of every new position (None: slice write at `write_at`,
    or, in a prefill, no write to the slots)."""
    position: int | None
    """The decode position shared by every row, when there is one (one row of the position
    table)."""
    write_at: int | None
    """The slot index every row's new position goes to, when it is the same (slice write)."""
    source_rows: torch.Tensor | None
    """Prefill: the forward row whose keys each written slot takes (a prompt shared by several
    samples is computed once; None: row i goes to the i-th written slot)."""
    read_length: int
    """Decode: positions `[0, read_length)` of each slot are attended to (0: prefill, the
    queries attend to the forward's own keys)."""
    mask: torch.Tensor | None
    """`[B, 1, T, S]` booleans, True where a query may attend (None: attend to everything)."""
    query_positions: torch.Tensor
    """`[B, T]` model positions of the forward's tokens."""
    key_positions: torch.Tensor
    """`[B or 1, S]` model positions of the keys attended to."""
    prefix: PrefixPlan | None = None
    """Decode with shared prefixes: each row attends to its group's prompt in the
    `PrefixStore` and to its own slot, which holds its generated tokens only (None: to its
    slot alone, which holds the whole sequence)."""
    suffix_mask: torch.Tensor | None = None
    """With `prefix`: `[B, 1, 1, read_length]` additive mask, 0 up to the row's newest slot
    index, -inf beyond (None: every row sees `[0, read_length)`)."""
    prefix_write: torch.Tensor | None = None
    """Prefill: flat `[prefix_slots * length]` index of every forward position in the
    `PrefixStore` (None: the prompts are not stored as shared prefixes)."""


@dataclass
class PrefixPlan:
    """A decode step's shared-prefix attention (`SlotCache.plan_decode`). Rows sampling from
    one prompt form a group; group g's prompt is in slot g of the `PrefixStore`."""

    groups: int
    """Groups of the running rows (prefix slots `[0, groups)`)."""
    length: int
    """Prefix positions read (the longest prompt of a running group)."""
    grid_rows: torch.Tensor | None
    """`[groups * width]` the row of each cell of the `[groups, width]` query grid (each
    group's rows, then repeats of its first row to fill the width; None: row i is cell i)."""
    width: int
    """Cells per group in the query grid (the largest group)."""
    row_cells: torch.Tensor | None
    """`[B]` each row's cell of the query grid (None: row i is cell i)."""
    prefix_mask: torch.Tensor
    """`[groups, 1, 1, length]` additive mask: 0 on each group's prompt, -inf beyond."""


class _SlotBuffers:
    """Per-layer key and value buffers shaped `[slots, length, width]`, zero-filled: attention
    multiplies masked positions by 0, and 0 * NaN is NaN."""

    def __init__(
        self, n_layers: int, slots: int, length: int, width: int, like: torch.Tensor
    ) -> None:
        shape = (slots, length, width)
        self.keys_L = [like.new_zeros(shape) for _ in range(n_layers)]
        self.values_L = [like.new_zeros(shape) for _ in range(n_layers)]

    @property
    def slots(self) -> int:
        """Sequences (or prompts) the buffers hold."""
        return self.keys_L[0].shape[0]

    @property
    def length(self) -> int:
        """Positions per slot."""
        return self.keys_L[0].shape[1]


class PrefixStore(_SlotBuffers):
    """Keys and values of each group's prompt, once per group, per layer, shaped
    `[slots, length, kv_heads * head_dim]`; groups stay in slots `[0, groups)`."""

    def resized(self, slots: int, length: int, keep: int) -> PrefixStore:
        """A store of `slots` x `length` holding this one's first `keep` prompts."""
        k0 = self.keys_L[0]
        out = PrefixStore(len(self.keys_L), slots, length, k0.shape[2], k0)
        rows, upto = min(keep, slots), min(self.length, length)
        for new, old in zip(out.keys_L + out.values_L, self.keys_L + self.values_L, strict=True):
            new[:rows, :upto] = old[:rows, :upto]
        return out

    def move(self, dest: torch.Tensor, source: torch.Tensor) -> None:
        """Copy prompts `source` into slots `dest` (compaction)."""
        for buf in self.keys_L + self.values_L:
            buf[dest] = buf[source]

    def write_index(self, slots_U: torch.Tensor, shifted_U_T: torch.Tensor) -> torch.Tensor:
        """Flat index of each prefill position (`shifted_U_T`, as in `plan_prefill`) of
        prompt u at slot `slots_U[u]`: the prompt fills `[0, len)`, its padding lands beyond."""
        t = shifted_U_T.shape[1]
        return ((shifted_U_T % t) + slots_U[:, None] * self.length).reshape(-1)


class SlotCache(_SlotBuffers):
    """Keys and values of `slots` sequences of up to `length` positions, per layer."""

    def __init__(
        self,
        n_layers: int,
        slots: int,
        length: int,
        kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        like = torch.empty(0, dtype=dtype, device=device)
        super().__init__(n_layers, slots, length, kv_heads * head_dim, like)
        self.kv_heads = kv_heads
        self.head_dim = head_dim
        self._slot_start = torch.arange(slots, device=device) * length
        self._arange = torch.arange(length, device=device)
        self._plan: _Plan | None = None
        self.prefixes: PrefixStore | None = None
        """Each group's prompt once, for shared-prefix decoding (None: not used)."""

    @property
    def device(self) -> torch.device:
        """Where the buffers live."""
        return self.keys_L[0].device

    @property
    def plan(self) -> _Plan:
        """The current forward's plan (set by `plan_prefill` or `plan_decode`)."""
        if self._plan is None:
            raise RuntimeError("SlotCache: plan the forward (plan_prefill/plan_decode) first")
        return self._plan

    # --- planning ---------------------------------------------------------------------------

    def plan_prefill(
        self,
        slots_N: torch.Tensor | None,
        source_N: torch.Tensor | None,
        pad_U: torch.Tensor,
        t: int,
        prefix_slots_U: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Plan a forward over `U` prompts left-padded to `t` tokens (`pad_U` padding tokens
        each). Slot `slots_N[i]` receives the keys of prompt `source_N[i]` (None: of prompt i,
        with N = U, and no copy of the forward's keys to pick them): column j of a prompt
        goes to position `(j - pad) mod t`, so the prompt fills `[0, len)` and its padding lands
        beyond, where decoding overwrites it before anything reads it. Queries attend causally
        to their own prompt's tokens. With `prefix_slots_U`, prompt u is stored in slot
        `prefix_slots_U[u]` of `prefixes` (then `slots_N` may be None: the slots get none of
        it). Returns the `[U, t]` model positions of the tokens."""
        cols_T = self._arange[:t] if t <= self.length else torch.arange(t, device=self.device)
        shifted_U_T = cols_T[None, :] - pad_U[:, None]
        positions_U_T = shifted_U_T.clamp(min=0)
        shifted_N_T = shifted_U_T if source_N is None else shifted_U_T.index_select(0, source_N)
        dest_N_T = None if slots_N is None else (shifted_N_T % t) + self._slot_start[slots_N, None]
        causal_T_T = cols_T[None, :] <= cols_T[:, None]
        real_U_T = shifted_U_T >= 0
        # Each query also sees itself, so a padding query never has an empty row (NaN).
        itself_T_T = cols_T[None, :] == cols_T[:, None]
        mask = (causal_T_T[None] & real_U_T[:, None, :]) | itself_T_T[None]
        prefix_write = None
        if prefix_slots_U is not None:
            assert self.prefixes is not None
            prefix_write = self.prefixes.write_index(prefix_slots_U, shifted_U_T)
        self._plan = _Plan(
            rows=int(pad_U.shape[0]),
            write_index=None if dest_N_T is None else dest_N_T.reshape(-1),
            position=None,
            write_at=None,
            source_rows=source_N,
            read_length=0,
            mask=mask[:, None],
            query_positions=positions_U_T,
            key_positions=positions_U_T,
            prefix_write=prefix_write,
        )
        return positions_U_T

    def plan_decode(
        self,
        rows: int,
        positions_B_1: torch.Tensor,
        read_length: int,
        position: int | None = None,
    ) -> None:
        """Plan a forward of one new token for each of slots `[0, rows)`, at `positions_B_1`
        (`position` when every row is at the same one: slice writes and no mask). Queries
        attend to positions `<=` their own among `[0, read_length)`."""
        keys_S = self._arange[:read_length]
        mask = None
        write_index = None
        if position is None:
            mask = (keys_S <= positions_B_1)[:, None, None, :]
            write_index = (self._slot_start[:rows, None] + positions_B_1).view(-1)
        self._plan = _Plan(
            rows=rows,
            write_index=write_index,
            position=position,
            write_at=position,
            source_rows=None,
            read_length=read_length,
            mask=mask,
            query_positions=positions_B_1,
            key_positions=keys_S[None, :],
        )

    def plan_decode_shared(
        self,
        prefix: PrefixPlan,
        positions_B_1: torch.Tensor,
        position: int | None,
        index_B_1: torch.Tensor,
        index: int | None,
        read_length: int,
    ) -> None:
        """Plan a forward of one new token for each of slots `[0, rows)` whose prompts are in
        `prefixes` and whose slots hold only their generated tokens: the new token is at model
        position `positions_B_1` (`position` when the same for every row) and goes to slot
        index `index_B_1` (`index` when the same: a slice write and no mask). Queries attend to
        their group's prompt and to their own slot's indices `<=` theirs among
        `[0, read_length)`."""
        rows = int(index_B_1.shape[0])
        write_index = None
        suffix_mask = None
        if index is None:
            write_index = (self._slot_start[:rows, None] + index_B_1).view(-1)
            beyond = self._arange[:read_length] > index_B_1
            zero = torch.zeros((), device=self.device, dtype=self.keys_L[0].dtype)
            suffix_mask = zero.masked_fill(beyond, -math.inf)[:, None, None, :]
        self._plan = _Plan(
            rows=rows,
            write_index=write_index,
            position=position,
            write_at=index,
            source_rows=None,
            read_length=read_length,
            mask=None,
            query_positions=positions_B_1,
            key_positions=positions_B_1,
            prefix=prefix,
            suffix_mask=suffix_mask,
        )

    # --- the model's side ---------------------------------------------------------------------

    def update(
        self, layer: int, k_B_T_H_D: torch.Tensor, v_B_T_H_D: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the forward's new keys and values of `layer` as planned; returns the keys and
        values its queries attend to, `[B, S, H, D]`."""
        plan = self.plan
        keys, values = self.keys_L[layer], self.values_L[layer]
        b = k_B_T_H_D.shape[0]
        width = self.kv_heads * self.head_dim
        if plan.read_length == 0:  # prefill: attend to the prompt's own keys
            k_src, v_src = k_B_T_H_D, v_B_T_H_D
            if plan.source_rows is not None:
                k_src = k_src.index_select(0, plan.source_rows)
                v_src = v_src.index_select(0, plan.source_rows)
            if plan.write_index is not None:
                keys.view(-1, width).index_copy_(0, plan.write_index, k_src.reshape(-1, width))
                values.view(-1, width).index_copy_(0, plan.write_index, v_src.reshape(-1, width))
            if plan.prefix_write is not None:
                assert self.prefixes is not None
                k_flat, v_flat = k_B_T_H_D.reshape(-1, width), v_B_T_H_D.reshape(-1, width)
                p_keys, p_values = self.prefixes.keys_L[layer], self.prefixes.values_L[layer]
                p_keys.view(-1, width).index_copy_(0, plan.prefix_write, k_flat)
                p_values.view(-1, width).index_copy_(0, plan.prefix_write, v_flat)
            return k_B_T_H_D, v_B_T_H_D
        if plan.write_at is not None:
            keys[:b, plan.write_at] = k_B_T_H_D.reshape(b, width)
            values[:b, plan.write_at] = v_B_T_H_D.reshape(b, width)
        else:
            assert plan.write_index is not None
            keys.view(-1, width).index_copy_(0, plan.write_index, k_B_T_H_D.reshape(b, width))
            values.view(-1, width).index_copy_(0, plan.write_index, v_B_T_H_D.reshape(b, width))
        shape = (b, plan.read_length, self.kv_heads, self.head_dim)
        return keys[:b, : plan.read_length].view(shape), values[:b, : plan.read_length].view(shape)

    # --- rows ---------------------------------------------------------------------------------

    def move_rows(self, dest: torch.Tensor, source: torch.Tensor, upto: int) -> None:
        """Copy positions `[0, upto)` of slots `source` into slots `dest` (compaction)."""
        for buffers in (self.keys_L, self.values_L):
            for buf in buffers:
                buf[dest, :upto] = buf[source, :upto]

    def resized(self, slots: int, length: int, keep_rows: int, keep_length: int) -> SlotCache:
        """A cache of `slots` x `length` holding this one's first `keep_rows` slots (positions
        `[0, keep_length)`)."""
        k0 = self.keys_L[0]
        out = SlotCache(
            len(self.keys_L), slots, length, self.kv_heads, self.head_dim, k0.dtype, k0.device
        )
        rows, upto = min(keep_rows, slots), min(keep_length, length)
        for new, old in zip(out.keys_L + out.values_L, self.keys_L + self.values_L, strict=True):
            new[:rows, :upto] = old[:rows, :upto]
        out.prefixes = self.prefixes
        return out

    def prefix_attention(
        self, layer: int, q_B_H_1_D: torch.Tensor, k_B_S_H_D: torch.Tensor, v_B_S_H_D: torch.Tensor
    ) -> torch.Tensor:
        """Attention `[B, H, 1, D]` of one decode query per row over its group's prompt (read
        once per group) and its own generated tokens (`k_B_S_H_D` and `v_B_S_H_D`: what
        `update` returned), the two halves merged by their log-sum-exps."""
        p = self.plan.prefix
        assert p is not None and self.prefixes is not None
        b, heads, _, d = q_B_H_1_D.shape
        shape = (p.groups, p.length, heads, d)
        k_g = self.prefixes.keys_L[layer][: p.groups, : p.length].view(shape).transpose(1, 2)
        v_g = self.prefixes.values_L[layer][: p.groups, : p.length].view(shape).transpose(1, 2)
        q_grid = q_B_H_1_D.view(b, heads, d)
        if p.grid_rows is not None:
            q_grid = q_grid.index_select(0, p.grid_rows)
        q_grid = q_grid.view(p.groups, p.width, heads, d).transpose(1, 2)
        out_g, lse_g = _attention_lse(q_grid, k_g, v_g, p.prefix_mask)
        out_1 = out_g.transpose(1, 2).reshape(-1, heads, d)
        lse_1 = lse_g.transpose(1, 2).reshape(-1, heads)
        if p.row_cells is not None:
            out_1, lse_1 = out_1.index_select(0, p.row_cells), lse_1.index_select(0, p.row_cells)
        k_own, v_own = k_B_S_H_D.transpose(1, 2), v_B_S_H_D.transpose(1, 2)
        out_2, lse_2 = _attention_lse(q_B_H_1_D, k_own, v_own, self.plan.suffix_mask)
        # softmax over both halves = w * out_1 + (1 - w) * out_2, w = sigmoid(lse_1 - lse_2)
        weight_1 = torch.sigmoid(lse_1 - lse_2.view(b, heads))
        out = torch.lerp(out_2.view(b, heads, d), out_1, weight_1[..., None])
        return out.view(b, heads, 1, d)


def _attention_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention and the log-sum-exp of each query's scores (`mask` additive), from
    the CPU kernel `scaled_dot_product_attention` itself runs there."""
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=mask)
    return out, lse


class KVCache:
    """Keys and values of each layer, shaped `[B, H, S_max, D]`, filled up to `length` (every row
    shares the write position; the caller left-pads and passes a key mask)."""

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
        """A cache whose row `i` is row `index_B[i]` of this one (repeats allowed)."""
        out = KVCache(
            [k.index_select(0, index_B) for k in self.keys_L],
            [v.index_select(0, index_B) for v in self.values_L],
        )
        out.length = self.length
        return out
