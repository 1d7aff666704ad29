"""What attention costs: analytic FLOPs and memory of a pattern, and a real measurement to check them.

Why: a sliding window with a few global tokens is chosen because full attention stops fitting.
This module says, for one :class:`~attnviz.AttentionPattern` and model shape, how many query-key
pairs are allowed, how many a given implementation actually computes, and how many bytes it
materialises, so a view can show where dense attention stops fitting a budget
(:func:`max_length_within`) and :func:`measure` can hold the model to a real run.
:func:`cost_curves` sweeps lengths for the cost explorer (``attnviz.explore.costs``);
:func:`measure_isolated` runs :func:`measure` in a fresh process (exact CPU peaks from a notebook).

Counting is structural: :func:`keys_per_query` adds up bands, global rows and columns and random
blocks in O(L · random_blocks) with prefix sums, never building ``(L, L)`` masks, and equals
``build_masks(...).sum(-1)`` exactly (tested).

Notation below: ``B`` batch, ``H`` query heads, ``H_kv`` key/value heads, ``d`` head dim, ``L``
length, ``s`` bytes per element of ``dtype``, ``n`` allowed pairs of a layer (per batch item and
head), ``S`` bytes of one ``(B, H, ·)`` score tensor of the implementation, ``O = B·H·L·d·s``
(one of out, grad_out, dq, dk, dv), ``lse = B·H·L·4`` (a float32 logsumexp).

Implementations (:data:`IMPLEMENTATIONS`), what they compute and materialise per layer:

=========  ======================  =====================  ==========================================
name       computed pairs          ``S`` (scores, probs)  mask
=========  ======================  =====================  ==========================================
dense      ``L²`` (masked too)     ``B·H·L²·s``           additive float ``(L, L)``: ``L²·s``
sparse     ``n`` (only allowed)    ``B·H·n·s``            none (structure is implicit)
sdpa       ``L²`` (masked too)     none (fused kernel)    additive float ``(L, L)``: ``L²·s``
flex       pairs in non-empty      none (fused kernel)    BlockMask: int32 block tables
           ``block × block`` tiles
longformer ``L'·(2w+1+g) + g·L'``  ``B·H·L'·(2w+1+g)``,   ``(B, L')`` (counted as 0)
           (band of every padded   probs in float32
           query, global keys and
           global queries)
=========  ======================  =====================  ==========================================

``dense`` is an eager masked softmax (HF's ``eager`` attention): ``scores = q @ kᵀ * scale + mask``,
``probs = softmax(scores)``, ``out = probs @ v``. ``sparse`` is the same algebra on the allowed
pairs only (banded / block-sparse kernels such as Longformer's, idealised to no padding); nothing
in attnviz runs it. ``sdpa`` is torch's ``scaled_dot_product_attention`` with the float mask,
which dispatches to a fused kernel (CPU flash, CUDA memory-efficient) that never stores probs.
``flex`` is compiled FlexAttention with a ``BlockMask``, which skips empty tiles.
``longformer`` is transformers' ``LongformerSelfAttention`` (native Longformer / LED), costed
exactly from its code (see :func:`_longformer_memory`): ``w = window // 2`` each side, ``g`` global
tokens, the input padded to ``L' = ceil(L / window)·window`` (as ``LongformerModel`` pads it; with
per-layer windows, to a multiple of the widest), and its chunked kernel, which computes the band as
``L'/w - 1`` overlapping ``2w × 2w`` chunks and copies them twice (padded, then into the
``(L', 2w + 1)`` band): about ``8·w·L'`` scores per head at the peak of the forward, ~2.2× the
``2·(2w + 1)·L'`` of the idealised ``sparse`` model. Its op starts from the hidden states, so the
q, k, v projections it makes itself are included. Only bidirectional, undilated windows without
random blocks (what Longformer runs). Checked against real runs at batch 1 and 2, float32 and
bfloat16 (with batch > 1 some reshapes become copies; they were never at the peak in those runs).

Memory of one layer's op, net of its inputs ``q, k, v`` (what :func:`measure` checks):

* dense / sparse, forward: ``mask + max(2·S, S + O)``: the softmax reads scores while it writes
  probs, so both live at once (in-place scale and mask keep it at two, and HF's out-of-place
  ``* scale`` / ``+ mask`` also peak at two); then probs and out.
* dense / sparse, forward + backward: ``max(mask + 2·S, 3·S + 3·O)``: autograd keeps probs (not
  the mask: adding it saves nothing, so it is freed before the backward); the backward holds
  probs, grad_probs and grad_scores at once (softmax backward), with out, grad_out and dv.
* sdpa / flex, forward: ``mask + O + lse``; forward + backward: ``mask + 5·O + 2·lse`` (the kernel
  saves out, lse and the mask; grad_out, dq, dk, dv, delta). Kernel workspace (per-thread tiles
  on CPU) is not modelled, so small sizes read low; the float mask dominates sdpa at long lengths.

A stack of layers (:attr:`AttentionCost.peak_bytes`): inference (``backward=False``, as under
``torch.no_grad``) keeps nothing between layers, so its peak is the mask plus the largest layer's;
in training each layer's forward runs on top of the mask and what earlier layers saved, and the
backward on top of everything saved.

FLOPs: forward ``4·B·H·d`` per computed pair (``q·k`` and ``p·v``, 2·d each); backward ``2.5×``
forward (``10·B·H·d`` per pair). Softmax and masking (~5 per pair) are left out, ``d ≫ 5``.
KV: ``2·B·H_kv·L·d·s`` per layer.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache

import torch

from .memory import MALLOC_ENV, peak_memory
from .blockmask import FLEX_BLOCK
from .checks import is_int
from .patterns import AttentionPattern, allowed, mask_mod
from .patterns import as_layout as _as_layout
from .placement import Segment, SequenceLayout

#: Bytes per element of the dtypes attnviz costs.
DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2}
#: Implementations the analytic model knows (see the module docstring).
IMPLEMENTATIONS = ("dense", "sparse", "sdpa", "flex", "longformer")
#: What :func:`measure` can run (each is costed as the implementation of the same name); not
#: :data:`attnviz.models.interface.BACKENDS`, the backends of ``with_pattern``.
MEASURABLE = ("dense", "sdpa", "flex", "longformer")

_FUSED = ("sdpa", "flex")


# ---- layouts and argument checks ---------------------------------------------------------------
def _plain(length: int) -> SequenceLayout:
    # what patterns.as_layout(length) returns (one "text" segment), built without its per-token loop
    # (50 ms at 32k tokens; the cost curves ask for dozens of lengths per redraw)
    return SequenceLayout(length, (), (Segment("text", 0, length),), tuple(range(length)))


_plain_cached = lru_cache(maxsize=64)(_plain)


def as_layout(layout: SequenceLayout | int) -> SequenceLayout:
    """:func:`attnviz.patterns.as_layout`, fast for plain lengths (cached up to 64k tokens, where
    a layout's ``token_index`` stays under ~2 MB)."""
    if is_int(layout) and layout >= 1:
        return _plain_cached(int(layout)) if layout <= 1 << 16 else _plain(int(layout))
    return _as_layout(layout)


def _dtype_name(dtype) -> str:
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
        if name in DTYPES:
            return name
    elif isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)} (as a string or torch dtype)")


def _check_choice(kind: str, value, allowed_values: tuple[str, ...]) -> None:
    if value not in allowed_values:
        raise ValueError(f"unknown {kind} {value!r}; allowed: {', '.join(allowed_values)}")


def _check_positive(name: str, value) -> None:
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


# ---- allowed pairs, from the pattern's structure -----------------------------------------------
def _floor_div(a: torch.Tensor, d: int) -> torch.Tensor:
    return torch.div(a, d, rounding_mode="floor")


def _residue_prefix(mask: torch.Tensor, d: int) -> torch.Tensor:
    """int64 ``(m + 1, d)``, ``m = ceil(L / d)``: ``[i, c]`` = True entries of ``mask`` among
    positions ``c, c + d, ..., c + (i - 1)·d``."""
    L = mask.shape[0]
    m = -(-L // d)
    padded = torch.zeros(m * d, dtype=torch.int64)
    padded[:L] = mask.to(torch.int64)
    return torch.cat([torch.zeros(1, d, dtype=torch.int64), padded.view(m, d).cumsum(0)])


def _progression(q: torch.Tensor, d: int, a: torch.Tensor, b: torch.Tensor, residue_prefix: torch.Tensor):
    """For broadcastable ``q, a, b`` with ``0 <= a`` and ``b <= L - 1``: how many positions
    ``p ≡ q (mod d)`` lie in ``[a, b]`` (0 where ``a > b``), and how many of them are True in the
    mask that ``residue_prefix`` was built from."""
    c = q % d
    first = -_floor_div(c - a, d)                                   # ceil((a - c) / d) >= 0
    last = torch.maximum(_floor_div(b - c, d), first - 1)           # floor((b - c) / d), empty -> first-1
    return last + 1 - first, residue_prefix[last + 1, c] - residue_prefix[first, c]


def _random_blocks(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(nb, r)`` key-block indices per query block, padded with 0, and their validity."""
    flags, order = table.to(torch.int8).sort(dim=1, descending=True, stable=True)
    r = max(int(table.sum(1).max()), 1)
    return order[:, :r], flags[:, :r].bool()


def keys_per_query(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int) -> torch.Tensor:
    """int64 ``(L,)``: how many keys each query may attend in ``layer``; equals
    ``build_masks(pattern, layout, n)[layer].sum(-1)`` exactly, in O(L · random_blocks) time.

    A global query sees every key (under ``causal`` the ``q + 1`` keys ``k <= q``). Any other query
    ``q`` sees the union of its dilated window ``W``, the global columns ``G`` (``k <= q`` under
    causal) and its block's random key blocks ``R`` (earlier blocks only under causal), counted by
    inclusion-exclusion ``|W| + |G| - |G∩W| + |R| - |R∩W| - |R∩G| + |R∩W∩G|``. Window terms are
    arithmetic progressions ``q + t·d``, counted with per-residue prefix sums of the global mask.
    """
    layout = as_layout(layout)
    L = layout.length
    window, d = pattern.window_at(layer), pattern.dilation_at(layer)
    is_global = pattern.global_mask(layout)
    q = torch.arange(L)
    visible = q + 1 if pattern.causal else torch.full((L,), L, dtype=torch.int64)
    if window is None:
        return visible
    if pattern.causal:   # keys q, q - d, ..., q - (w - 1)·d
        lo, hi = (q - (window - 1) * d).clamp(min=0), q
    else:                # keys q + t·d, |t| <= w // 2
        lo, hi = (q - (window // 2) * d).clamp(min=0), (q + (window // 2) * d).clamp(max=L - 1)
    prefix = torch.cat([torch.zeros(1, dtype=torch.int64), is_global.to(torch.int64).cumsum(0)])
    residues = _residue_prefix(is_global, d)
    n_window, g_window = _progression(q, d, lo, hi, residues)
    n_global = prefix[q + 1] if pattern.causal else prefix[L].expand(L)
    rows = n_window + n_global - g_window

    table = pattern.random_block_table(layer, L)
    if table is not None:
        bs = pattern.block_size
        blocks, valid = _random_blocks(table)
        kb, valid = blocks[q // bs], valid[q // bs]                  # (L, r)
        start = kb * bs
        stop = torch.clamp((kb + 1) * bs, max=L) - 1                   # inclusive
        g_block = prefix[stop + 1] - prefix[start]
        n_rw, g_rw = _progression(q[:, None], d, torch.maximum(lo[:, None], start),
                                  torch.minimum(hi[:, None], stop), residues)
        rows = rows + ((stop + 1 - start - n_rw - g_block + g_rw) * valid).sum(1)
    return torch.where(is_global, visible, rows)


def allowed_pairs(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int) -> int:
    """Query-key pairs ``layer`` allows (per batch item and head): ``build_masks(...)[layer].sum()``
    without the ``(L, L)`` mask. E.g. ``L=10``, bidirectional ``window=4``: 44."""
    return int(keys_per_query(pattern, layout, layer).sum())


def _tiles(pattern: AttentionPattern, layout: SequenceLayout, layer: int, block: int):
    """bool ``(nt, nt)`` of ``block × block`` tiles holding any allowed pair, and tile sizes ``(nt,)``.
    O(nt² + blocks²) from the structure; the same tiles as FlexAttention's ``BlockMask``."""
    L = layout.length
    nt = -(-L // block)
    start = torch.arange(nt) * block
    stop = torch.clamp(start + block, max=L) - 1
    qa, qb, ka, kb = start[:, None], stop[:, None], start[None, :], stop[None, :]
    window, d = pattern.window_at(layer), pattern.dilation_at(layer)
    if window is None:
        local = (ka <= qb) if pattern.causal else torch.ones(nt, nt, dtype=torch.bool)
    else:
        # k - q ranges over every integer of [ka - qb, kb - qa]; the window allows offsets t·d.
        t_lo, t_hi = (-(window - 1), 0) if pattern.causal else (-(window // 2), window // 2)
        first = torch.clamp(-_floor_div(qb - ka, d), min=t_lo)
        last = torch.clamp(_floor_div(kb - qa, d), max=t_hi)
        local = first <= last
    glob = pattern.global_mask(layout).nonzero().flatten()
    tile = glob // block
    row_max = torch.full((nt,), -1, dtype=torch.int64).scatter_reduce(0, tile, glob, "amax")
    col_min = torch.full((nt,), L, dtype=torch.int64).scatter_reduce(0, tile, glob, "amin")
    if pattern.causal:   # a global query sees k <= q; a global key is seen by q >= k
        tiles = local | (ka <= row_max[:, None]) | (col_min[None, :] <= qb)
    else:
        tiles = local | (row_max >= 0)[:, None] | (col_min < L)[None, :]
    table = pattern.random_block_table(layer, L)
    if table is not None:  # random key blocks are all earlier blocks under causal: no k <= q check
        bs = pattern.block_size
        b = torch.arange(table.shape[0])
        overlap = ((b[None, :] * bs <= stop[:, None]) & ((b[None, :] + 1) * bs > start[:, None])).float()
        tiles |= (overlap @ table.float() @ overlap.T) > 0
    return tiles, stop + 1 - start


def block_pairs(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int,
                block_size: int = FLEX_BLOCK) -> int:
    """Pairs a block-sparse kernel computes in ``layer``: all pairs of every
    ``block_size × block_size`` tile that holds an allowed pair (FlexAttention: ``BLOCK_SIZE=128``)."""
    _check_positive("block_size", block_size)
    tiles, size = _tiles(pattern, as_layout(layout), layer, block_size)
    return int((tiles.to(torch.int64) * size[:, None] * size[None, :]).sum())


# ---- the cost model ----------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerCost:
    """Analytic cost of one layer's attention (see the module docstring for the formulas).

    Attributes:
        layer, window: which layer, and its window (None = full).
        pairs: allowed query-key pairs per batch item and head.
        computed_pairs: pairs the implementation computes (``L²`` dense / sdpa, tiles for flex).
        flops_forward, flops_backward: ``4·B·H·d`` and ``10·B·H·d`` per computed pair.
        probs_bytes: attention probabilities materialised, ``S`` (0 for fused kernels).
        kv_bytes: keys and values of this layer, ``2·B·H_kv·L·d·s``.
        mask_bytes: the mask the implementation takes (shared by all layers).
        mask_in_backward: whether the backward needs the mask, so it stays alive (sdpa, flex);
            dense and sparse add it in the forward and free it before the backward.
        saved_bytes: kept from forward for backward beyond q, k, v (probs; fused: out + lse).
        forward_peak_bytes: transient peak of the forward op, mask excluded.
        backward_peak_bytes: transient peak of the backward op on top of ``saved_bytes``.
    """

    layer: int
    window: int | None
    pairs: int
    computed_pairs: int
    flops_forward: int
    flops_backward: int
    probs_bytes: int
    kv_bytes: int
    mask_bytes: int
    mask_in_backward: bool
    saved_bytes: int
    forward_peak_bytes: int
    backward_peak_bytes: int

    def op_peak_bytes(self, backward: bool = False) -> int:
        """Net peak of this layer's op run alone, mask included (what :func:`measure` predicts)."""
        return _stack_peak(self.mask_bytes, self.mask_in_backward,
                           [(self.saved_bytes, self.forward_peak_bytes, self.backward_peak_bytes)], backward)


@dataclass(frozen=True)
class AttentionCost:
    """Analytic cost of a model's attention: per-layer :class:`LayerCost` and totals.

    Attributes:
        implementation, dtype, length, batch, num_heads, num_kv_heads, head_dim, backward: the
            configuration costed (``backward`` decides whether ``flops`` and ``peak_bytes`` include
            the backward pass).
        per_layer: one :class:`LayerCost` per layer.
    """

    implementation: str
    dtype: str
    length: int
    batch: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    backward: bool
    per_layer: tuple[LayerCost, ...]

    @property
    def num_layers(self) -> int:
        return len(self.per_layer)

    @property
    def pairs(self) -> int:
        """Allowed pairs over all layers (per batch item and head)."""
        return sum(c.pairs for c in self.per_layer)

    @property
    def density(self) -> float:
        """Share of the ``layers · L²`` pairs that are allowed."""
        return self.pairs / (self.num_layers * self.length ** 2)

    @property
    def computed_pairs(self) -> int:
        return sum(c.computed_pairs for c in self.per_layer)

    @property
    def flops_forward(self) -> int:
        return sum(c.flops_forward for c in self.per_layer)

    @property
    def flops_backward(self) -> int:
        return sum(c.flops_backward for c in self.per_layer)

    @property
    def flops(self) -> int:
        """Forward FLOPs, plus backward ones when ``backward``."""
        return self.flops_forward + (self.flops_backward if self.backward else 0)

    @property
    def probs_bytes(self) -> int:
        """Probabilities of all layers: what training keeps alive until the backward."""
        return sum(c.probs_bytes for c in self.per_layer)

    @property
    def kv_bytes(self) -> int:
        """Keys and values of all layers (a KV cache)."""
        return sum(c.kv_bytes for c in self.per_layer)

    @property
    def mask_bytes(self) -> int:
        """The mask, built once and shared by every layer."""
        return self.per_layer[0].mask_bytes

    @property
    def peak_bytes(self) -> int:
        """Attention's own high-water mark for the whole stack (weights, q/k/v projections and the
        residual stream excluded). Forward: the mask plus the largest layer's transient (layers run
        one after another). Forward + backward: the mask, every layer's saved tensors, and the
        largest backward transient (or the last forward, if larger)."""
        layers = [(c.saved_bytes, c.forward_peak_bytes, c.backward_peak_bytes) for c in self.per_layer]
        return _stack_peak(self.mask_bytes, self.per_layer[0].mask_in_backward, layers, self.backward)


def _stack_peak(mask: int, mask_in_backward: bool, layers: list[tuple[int, int, int]], backward: bool) -> int:
    """Peak of a stack of layers given each one's (saved, forward transient, backward transient).
    Inference (``backward=False``): the mask and the largest layer's transient. Training: in the
    forward, layer ``i`` runs on top of the mask and the tensors layers ``< i`` saved; the backward
    runs on top of everything saved (and the mask, where the backward needs it)."""
    if not backward:  # inference: nothing is kept for a backward, layers run one after another
        return mask + max(fwd for _, fwd, _ in layers)
    saved = [s for s, _, _ in layers]
    forward = mask + max(sum(saved[:i]) + fwd for i, (_, fwd, _) in enumerate(layers))
    return max(forward, mask * mask_in_backward + sum(saved) + max(bwd for _, _, bwd in layers))


def _mask_bytes(implementation: str, L: int, s: int, block_size: int) -> int:
    if implementation in ("dense", "sdpa"):
        return L * L * s
    if implementation == "flex":  # kv/q num_blocks (int32, nt) and indices (int32, nt × nt), full and partial
        nt = -(-L // block_size)
        return 4 * 4 * (nt * nt + nt)
    return 0


def _memory(implementation: str, L: int, pairs: int, batch: int, heads: int, head_dim: int, s: int):
    """(probs, saved, forward transient peak, backward transient peak) bytes of one layer, mask excluded."""
    out = batch * heads * L * head_dim * s
    lse = batch * heads * L * 4
    if implementation in _FUSED:
        return 0, out + lse, out + lse, 4 * out + lse
    scores = batch * heads * (L * L if implementation == "dense" else pairs) * s
    return scores, scores, max(2 * scores, scores + out), 2 * scores + 3 * out


def _longformer_windows(pattern: AttentionPattern, num_layers: int) -> tuple[int, ...]:
    """Each layer's Longformer ``attention_window``; raises for what Longformer cannot run.
    (:class:`AttentionPattern` already holds bidirectional windows even and positive, as Longformer needs.)"""
    if pattern.causal:
        raise ValueError("implementation 'longformer' is bidirectional; a causal pattern (Mistral's sliding "
                         "window) is costed with 'dense', 'sdpa', 'flex' or 'sparse'")
    if pattern.random_blocks:
        raise ValueError(f"implementation 'longformer' has no random blocks, got random_blocks="
                         f"{pattern.random_blocks}; cost BigBird-style patterns with 'sparse', 'flex' or 'dense'")
    windows = []
    for layer in range(num_layers):
        w = pattern.window_at(layer)
        if w is None:
            raise ValueError(f"implementation 'longformer' needs a window in every layer, layer {layer} has full "
                             "attention; use 'dense' or 'sdpa' for full attention")
        if pattern.dilation_at(layer) != 1:
            raise ValueError(f"implementation 'longformer' has no dilation (transformers' Longformer), got "
                             f"dilation={pattern.dilation_at(layer)} in layer {layer}; use 'sparse' or 'flex'")
        windows.append(w)
    return tuple(windows)


def longformer_padded_length(length: int, windows) -> int:
    """``L'``: ``LongformerModel`` pads the input to a multiple of its widest ``attention_window``."""
    widest = max(windows) if isinstance(windows, (tuple, list)) else windows
    return -(-length // widest) * widest


def _longformer_memory(Lp: int, window: int, g: int, batch: int, heads: int, head_dim: int, s: int):
    """(probs, saved, forward transient peak, backward transient peak) bytes of one
    ``LongformerSelfAttention`` op over ``Lp`` (padded) positions with ``g`` global tokens, counted
    from transformers' code (``modeling_longformer``) and checked against measured peaks (CPU,
    float32 / bfloat16, batch 1-2: forward within 1 %, forward + backward within 6 %; ``tests/test_costs.py``,
    ``benchmarks/memory_model.py``).

    Per batch item and head, in elements (``w = window // 2``, ``C = L'/w - 1`` chunks, ``P = L'·(2w + 1 + g)``
    probabilities, kept in float32 by the softmax):

    * q·k phase: q, k, v projections ``3·L'·d`` + the chunk scores ``C·2w·2w`` + their padded copy
      ``C·(2w + 1)·2w`` (``_sliding_chunks_query_key_matmul``: the band is assembled from the copy).
    * softmax phase: projections + scores ``P`` + softmax output and ``masked_fill`` copy (``2·P``, float32)
      + the diagonal padding mask ``L'·(2w + 1)`` (one per batch item, not per head).
    * probs·v phase: projections + mask + ``P`` + padded values ``(L' + 2w)·d`` + chunked value copy
      ``3·L'·d`` + diagonalised probs ``L'·(3w + 2)`` + output ``L'·d``; with globals also the
      probs without the global columns (``L'·(2w + 1)``) and the global keys' output ``L'·d``.
    * backward: the larger of the q·k backward (the padded chunk's gradient accumulated from two
      ``slice_backward`` buffers: ``3·C·(2w + 1)·2w``, the saved q and k chunk copies ``2·C·2w·d``,
      gradients and outputs ``4·L'·d``) and the probs·v backward (``18·L'·d + 2·(2w + 1)·L'``:
      ``as_strided`` backward of the chunked values and the probs' gradients); with globals ``4·L'·d``
      more (global key/value projections and their gradients).
    """
    w, d = window // 2, head_dim
    C = Lp // w - 1
    bh = batch * heads
    proj = 3 * Lp * d
    band = Lp * (2 * w + 1 + g)                 # scores / probs per head
    pad_chunks = C * (2 * w + 1) * 2 * w
    diag_mask = batch * Lp * (2 * w + 1) * s     # bytes, (B, L', 1, 2w + 1)
    qk = bh * (proj + C * 4 * w * w + pad_chunks) * s
    soft = bh * ((proj + band) * s + 2 * band * 4) + diag_mask
    pv = proj + band + (Lp + 2 * w) * d + 3 * Lp * d + Lp * (3 * w + 2) + Lp * d
    if g:
        pv += Lp * (2 * w + 1) + Lp * d
    pv = bh * pv * s + diag_mask
    forward = max(qk, soft, pv)
    chunk_copy = C * 2 * w * d
    backward = bh * s * (max(3 * pad_chunks + 2 * chunk_copy + 4 * Lp * d, 18 * Lp * d + 2 * (2 * w + 1) * Lp)
                         + (4 * Lp * d if g else 0))
    # autograd keeps: q and k chunk copies, float32 probs, the diagonalised probs and the value chunks
    saved = bh * ((2 * chunk_copy + Lp * (3 * w + 2) + 3 * Lp * d) * s + band * 4)
    return bh * band * s, saved, forward, max(backward - saved, 0)


def _layer_cost(pattern, layout, layer, implementation, batch, num_heads, num_kv_heads, head_dim, s,
                block_size, padded_length=None) -> LayerCost:
    L = layout.length
    pairs = allowed_pairs(pattern, layout, layer)
    if implementation == "longformer":
        Lp, window = padded_length, pattern.window_at(layer)
        g = int(pattern.global_mask(layout).sum())
        computed = Lp * (window + 1 + g) + g * Lp
        probs, saved, fwd, bwd = _longformer_memory(Lp, window, g, batch, num_heads, head_dim, s)
        return LayerCost(
            layer=layer, window=window, pairs=pairs, computed_pairs=computed,
            flops_forward=4 * batch * num_heads * head_dim * computed,
            flops_backward=10 * batch * num_heads * head_dim * computed,
            probs_bytes=probs, kv_bytes=2 * batch * num_kv_heads * L * head_dim * s,
            mask_bytes=0, mask_in_backward=False, saved_bytes=saved, forward_peak_bytes=fwd,
            backward_peak_bytes=bwd,
        )
    if implementation == "sparse":
        computed = pairs
    elif implementation == "flex":
        computed = block_pairs(pattern, layout, layer, block_size)
    else:
        computed = L * L
    probs, saved, fwd, bwd = _memory(implementation, L, pairs, batch, num_heads, head_dim, s)
    return LayerCost(
        layer=layer, window=pattern.window_at(layer), pairs=pairs, computed_pairs=computed,
        flops_forward=4 * batch * num_heads * head_dim * computed,
        flops_backward=10 * batch * num_heads * head_dim * computed,
        probs_bytes=probs, kv_bytes=2 * batch * num_kv_heads * L * head_dim * s,
        mask_bytes=_mask_bytes(implementation, L, s, block_size), mask_in_backward=implementation in _FUSED,
        saved_bytes=saved, forward_peak_bytes=fwd, backward_peak_bytes=bwd,
    )


def attention_cost(
    pattern: AttentionPattern | None,
    layout: SequenceLayout | int,
    num_layers: int,
    num_heads: int,
    head_dim: int,
    *,
    batch: int = 1,
    dtype: str | torch.dtype = "float32",
    implementation: str = "dense",
    backward: bool = False,
    num_kv_heads: int | None = None,
    block_size: int = FLEX_BLOCK,
) -> AttentionCost:
    """Analytic FLOPs and memory of attention with ``pattern`` over ``layout``, per layer and total.

    Args:
        pattern: the attention pattern (None = full attention).
        layout: a :class:`SequenceLayout` (prompt positions matter for ``global_prompt``) or a length.
        num_layers, num_heads, head_dim: model shape; ``num_kv_heads`` (default ``num_heads``) for GQA.
        batch: sequences per batch.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"`` (or the torch dtype).
        implementation: one of :data:`IMPLEMENTATIONS` (see the module docstring).
        backward: whether ``flops`` and ``peak_bytes`` include the backward pass.
        block_size: tile size for ``implementation="flex"`` (FlexAttention's ``BLOCK_SIZE``).

    A window wider than the sequence is simply clipped: a causal window ``>= L``, or a
    bidirectional one ``>= 2·(L - 1)``, costs exactly what ``window=None`` costs. (Except for
    ``longformer``, which costs what transformers runs: the input padded up to the window.)
    Raises ``ValueError`` for a length < 1, an unknown dtype or implementation, and patterns the
    implementation cannot run (``longformer``: full attention, causal, dilation, random blocks,
    odd windows).
    """
    pattern = AttentionPattern() if pattern is None else pattern
    if not isinstance(pattern, AttentionPattern):
        raise TypeError(f"pattern must be an AttentionPattern or None, got {type(pattern).__name__}")
    layout = as_layout(layout)
    _check_choice("implementation", implementation, IMPLEMENTATIONS)
    dtype = _dtype_name(dtype)
    for name, value in (("num_heads", num_heads), ("head_dim", head_dim), ("batch", batch),
                        ("block_size", block_size)):
        _check_positive(name, value)
    num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    _check_positive("num_kv_heads", num_kv_heads)
    if num_heads % num_kv_heads:
        raise ValueError(f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads} (grouped-query attention)")
    if not isinstance(backward, bool):
        raise TypeError(f"backward must be True or False, got {backward!r}")
    pattern.check_layers(num_layers)
    s = DTYPES[dtype]
    padded = None
    if implementation == "longformer":
        padded = longformer_padded_length(layout.length, _longformer_windows(pattern, num_layers))
    if pattern.per_layer is None and not pattern.random_blocks:   # every layer alike: count once
        first = _layer_cost(pattern, layout, 0, implementation, batch, num_heads, num_kv_heads, head_dim, s,
                            block_size, padded)
        layers = (first,) + tuple(dataclasses.replace(first, layer=i) for i in range(1, num_layers))
    else:
        layers = tuple(_layer_cost(pattern, layout, layer, implementation, batch, num_heads, num_kv_heads,
                                   head_dim, s, block_size, padded) for layer in range(num_layers))
    return AttentionCost(implementation=implementation, dtype=dtype, length=layout.length, batch=batch,
                         num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
                         backward=backward, per_layer=layers)


@dataclass(frozen=True)
class CaptureCost:
    """What :func:`attnviz.capture_attention` with ``pattern=`` costs (the ``tiled`` backend).

    Attributes:
        computed_pairs: query-key pairs in the non-empty tiles, summed over layers (per head): the
            time of the capture grows with this (``3·d`` multiply-adds each: scores, and ``p·v``).
        work_bytes: the tile working set at its largest: scores and probabilities of one query
            tile against at most ``max_keys`` keys (float32), the gathered keys and values, and the
            per-unit sums of one tile row.
        result_bytes: the maps being filled (``layers · heads · U²`` float32), held to the end.
    """

    computed_pairs: int
    work_bytes: int
    result_bytes: int

    @property
    def peak_bytes(self) -> int:
        """Working set + result: what the capture adds to the model's own forward."""
        return self.work_bytes + self.result_bytes


def capture_cost(pattern: AttentionPattern, layout: SequenceLayout | int, num_layers: int, *, num_heads: int,
                 head_dim: int, units: int, captured_layers: int | None = None, captured_heads: int | None = None,
                 max_keys: int = 4096, block_size: int = FLEX_BLOCK) -> CaptureCost:
    """Analytic cost of capturing attention tile by tile (:func:`attnviz.tiled_attention.tiled_attention`).

    Args:
        pattern, layout, num_layers: the pattern and sequence.
        num_heads, head_dim: the model's attention shape.
        units: ``U``, rows / columns of the result (``L`` exact, about ``L / pool + kept`` pooled).
        captured_layers, captured_heads: how many the maps keep (default all).
        max_keys, block_size: the tiled backend's chunk of keys and tile side.
    """
    from .blockmask import block_tables

    layout = as_layout(layout)
    pattern.check_layers(num_layers)
    L = layout.length
    chunk = max(1, max_keys // block_size) * block_size
    pairs, widest = 0, 0
    for layer in range(num_layers):
        nonempty = block_tables(pattern, layout, layer, block_size).nonempty
        keys = (nonempty.sum(-1) * block_size).clamp(max=L)          # keys gathered per query tile
        rows = torch.full((nonempty.shape[0],), block_size)
        rows[-1] = L - block_size * (nonempty.shape[0] - 1)
        pairs += int((keys * rows).sum())
        widest = max(widest, int(keys.max()))
    nk = min(widest, chunk)
    heads = num_heads if captured_heads is None else captured_heads
    layers = num_layers if captured_layers is None else captured_layers
    work = 4 * (2 * num_heads * block_size * nk          # scores and probabilities
                + 2 * num_heads * nk * head_dim          # gathered keys and values
                + heads * block_size * units)            # one tile row's sums per unit
    return CaptureCost(computed_pairs=pairs, work_bytes=work, result_bytes=4 * layers * heads * units * units)


def max_length_within(
    budget_bytes: int,
    *,
    num_heads: int,
    head_dim: int,
    num_layers: int = 1,
    batch: int = 1,
    dtype: str | torch.dtype = "float32",
    implementation: str = "dense",
    backward: bool = False,
    pattern: AttentionPattern | None = None,
    limit: int = 1 << 20,
) -> int:
    """The longest plain sequence whose :attr:`AttentionCost.peak_bytes` fits ``budget_bytes``.

    The point where, e.g., dense attention stops fitting: ``attention_cost(pattern, L, ...)`` fits
    for the returned ``L`` and not for ``L + 1``. Only ``sparse`` memory depends on the pattern
    (its allowed pairs); the others cost the same for every pattern, so ``pattern`` is only read
    for ``sparse`` and ``longformer``. Returns 0 if no length fits, and ``limit`` if even that fits. Binary search:
    assumes memory grows with ``L`` (random blocks are redrawn per length, so ``sparse`` with them
    is only nearly monotone).
    """
    if not is_int(budget_bytes) or budget_bytes < 0:
        raise ValueError(f"budget_bytes must be an int >= 0, got {budget_bytes!r}")
    _check_positive("limit", limit)
    pattern = AttentionPattern() if pattern is None else pattern
    kwargs = dict(batch=batch, dtype=dtype, implementation=implementation, backward=backward)
    structural = implementation in ("sparse", "longformer")   # memory depends on the pattern
    attention_cost(pattern if structural else None, max(pattern.global_positions, default=0) + 1,
                   num_layers if structural else 1, num_heads, head_dim, **kwargs)  # checks
    s = DTYPES[_dtype_name(dtype)]

    def fits(L: int) -> bool:
        if structural:
            return attention_cost(pattern, L, num_layers, num_heads, head_dim, **kwargs).peak_bytes <= budget_bytes
        layer = _memory(implementation, L, 0, batch, num_heads, head_dim, s)[1:]   # pairs not needed
        mask = _mask_bytes(implementation, L, s, FLEX_BLOCK)
        return _stack_peak(mask, implementation in _FUSED, [layer] * num_layers, backward) <= budget_bytes

    lo = max(pattern.global_positions, default=0) + 1 if structural else 1
    if not fits(lo):
        return 0
    hi = lo
    while hi < limit and fits(hi):
        lo, hi = hi, min(2 * hi, limit)
    if fits(hi):
        return hi
    while hi - lo > 1:  # fits(lo) and not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


# ---- curves over lengths (what the cost explorer draws) -----------------------------------------
#: Assumed attention throughput for the time axis of :func:`cost_curves`: 50 GFLOP/s (a laptop CPU
#: core pair reaches ~20-100 on these matmuls; an H100 ~100-400 TFLOP/s). :func:`measure` gives the real one.
DEFAULT_FLOPS_PER_SECOND = 5e10


@dataclass(frozen=True)
class CostCurves:
    """:func:`attention_cost` over a range of lengths, per implementation (what the cost explorer draws).

    Attributes:
        lengths: the lengths ``L`` costed, increasing.
        implementations: e.g. ``("dense", "sparse")``; ``"dense"`` is always full attention.
        peak_bytes, flops: ``{implementation: (value per length)}``; :attr:`AttentionCost.peak_bytes`
            and :attr:`AttentionCost.flops` (forward, plus backward when ``backward``).
        seconds: ``flops / flops_per_second`` (an estimate: the throughput is an assumption).
        budget_bytes: the memory budget (None = no budget).
        limits: ``{implementation: longest L whose peak fits the budget}`` (:func:`max_length_within`;
            for a windowed implementation searched up to ``max(lengths)`` only), empty without a budget.
        pattern, num_layers, num_heads, head_dim, batch, dtype, backward, flops_per_second: the configuration.
    """

    lengths: tuple[int, ...]
    implementations: tuple[str, ...]
    peak_bytes: dict
    flops: dict
    seconds: dict
    budget_bytes: int | None
    limits: dict
    pattern: AttentionPattern
    num_layers: int
    num_heads: int
    head_dim: int
    batch: int
    dtype: str
    backward: bool
    flops_per_second: float

    def pattern_of(self, implementation: str) -> AttentionPattern | None:
        """The pattern costed for ``implementation``: None (full attention) for ``"dense"``."""
        return None if implementation == "dense" else self.pattern


def curve_lengths(max_length: int, *, min_length: int = 128, points: int = 16) -> tuple[int, ...]:
    """About ``points`` lengths spaced evenly on a log axis from ``min_length`` to ``max_length``
    (both included, integers, no repeats)."""
    _check_positive("max_length", max_length)
    _check_positive("points", points)
    lo = min(min_length, max_length)
    if points == 1 or lo == max_length:
        return (max_length,)
    ratio = (max_length / lo) ** (1 / (points - 1))
    return tuple(sorted({int(round(lo * ratio ** i)) for i in range(points - 1)} | {max_length}))


def cost_curves(
    pattern: AttentionPattern | None,
    max_length: int,
    num_layers: int,
    num_heads: int,
    head_dim: int,
    *,
    implementations: tuple[str, ...] = ("dense", "sparse"),
    batch: int = 1,
    dtype: str | torch.dtype = "float32",
    backward: bool = False,
    budget_bytes: int | None = None,
    flops_per_second: float = DEFAULT_FLOPS_PER_SECOND,
    min_length: int = 128,
    points: int = 16,
) -> CostCurves:
    """Memory and time of attention vs length for each of ``implementations`` (``"dense"`` = full
    attention with a dense kernel; the others run ``pattern``), over :func:`curve_lengths`, and
    where each stops fitting ``budget_bytes``. Every number is :func:`attention_cost`'s."""
    pattern = AttentionPattern() if pattern is None else pattern
    for impl in implementations:
        _check_choice("implementation", impl, IMPLEMENTATIONS)
    if not isinstance(flops_per_second, (int, float)) or flops_per_second <= 0:
        raise ValueError(f"flops_per_second must be > 0, got {flops_per_second!r}")
    if budget_bytes is not None and (not is_int(budget_bytes) or budget_bytes < 0):
        raise ValueError(f"budget_bytes must be an int >= 0 or None, got {budget_bytes!r}")
    dtype = _dtype_name(dtype)
    lengths = curve_lengths(max_length, min_length=min_length, points=points)
    kw = dict(batch=batch, dtype=dtype, backward=backward)
    peak, flops, seconds, limits = {}, {}, {}, {}
    for impl in implementations:
        p = None if impl == "dense" else pattern
        costs = [attention_cost(p, L, num_layers, num_heads, head_dim, implementation=impl, **kw) for L in lengths]
        peak[impl] = tuple(c.peak_bytes for c in costs)
        flops[impl] = tuple(c.flops for c in costs)
        seconds[impl] = tuple(f / flops_per_second for f in flops[impl])
        if budget_bytes is not None:
            limits[impl] = max_length_within(budget_bytes, num_heads=num_heads, head_dim=head_dim,
                                             num_layers=num_layers, implementation=impl, pattern=p,
                                             limit=(1 << 20) if impl == "dense" else max(lengths), **kw)
    return CostCurves(lengths=lengths, implementations=tuple(implementations), peak_bytes=peak, flops=flops,
                      seconds=seconds, budget_bytes=budget_bytes, limits=limits, pattern=pattern,
                      num_layers=num_layers, num_heads=num_heads, head_dim=head_dim, batch=batch, dtype=dtype,
                      backward=backward, flops_per_second=float(flops_per_second))


# ---- a real run --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    """One backend's attention op, measured against its analytic model.

    Attributes:
        backend: one of :data:`MEASURABLE` (costed as the implementation of the same name).
        device, dtype, length, batch, num_heads, head_dim, backward, layer: the configuration run.
        seconds: median wall time of one op (forward, or forward + backward), over ``times``.
        times: every timed run, seconds.
        peak_bytes: measured net peak of one op (max over runs); None where it cannot be measured.
        predicted: the analytic :class:`LayerCost` of this implementation.
        memory_method: how the peak was read (see :mod:`attnviz.memory`).
        note: caveats of this reading, empty when none.
    """

    backend: str
    device: str
    dtype: str
    length: int
    batch: int
    num_heads: int
    head_dim: int
    backward: bool
    layer: int
    seconds: float
    times: tuple[float, ...]
    peak_bytes: int | None
    predicted: LayerCost
    memory_method: str
    note: str = ""

    @property
    def predicted_bytes(self) -> int:
        return self.predicted.op_peak_bytes(self.backward)

    @property
    def ratio(self) -> float | None:
        """Measured / predicted net peak (None without a measurement)."""
        return None if self.peak_bytes is None else self.peak_bytes / self.predicted_bytes

    @property
    def flops(self) -> int:
        p = self.predicted
        return p.flops_forward + (p.flops_backward if self.backward else 0)

    @property
    def flops_per_second(self) -> float:
        return self.flops / self.seconds


@lru_cache(maxsize=None)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention)


def _float_mask(allowed_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive float ``(L, L)``: 0 where allowed, -inf elsewhere (one ``L²`` allocation)."""
    return torch.full(allowed_mask.shape, float("-inf"), dtype=dtype, device=allowed_mask.device
                      ).masked_fill_(allowed_mask, 0.0)


def _dense_attention(q, k, v, allowed_mask):
    mask = _float_mask(allowed_mask, q.dtype)
    scores = q @ k.transpose(-2, -1)                    # (B, H, L, L)
    scores.mul_(q.shape[-1] ** -0.5).add_(mask)         # in place: still one (B, H, L, L)
    probs = scores.softmax(-1)                          # scores and probs live together here
    del scores
    return probs @ v


def _sdpa_attention(q, k, v, allowed_mask):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=_float_mask(allowed_mask, q.dtype))


def measure(
    pattern: AttentionPattern | None,
    layout: SequenceLayout | int,
    num_heads: int,
    head_dim: int,
    *,
    batch: int = 1,
    backend: str = "dense",
    backward: bool = False,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "float32",
    layer: int = 0,
    repeats: int = 3,
    seed: int = 0,
) -> Measurement:
    """Run one layer's attention op for real and compare it with :func:`attention_cost`.

    Random ``q, k, v`` ``(batch, num_heads, L, head_dim)`` go through ``backend`` (one of
    :data:`MEASURABLE`) with the layer's mask; one warm-up run (thread pools, autograd, compilation),
    then ``repeats`` runs, each timed and wrapped in :func:`attnviz.memory.peak_memory`.

    What is inside the measured op: for ``dense`` and ``sdpa``, building the additive float mask
    from the boolean one (the model holds the boolean mask, as HF models build the float one per
    forward), the attention, and with ``backward`` a backward from ``grad_out = ones``; for
    ``flex`` the ``BlockMask`` is built beforehand (``create_block_mask`` evaluates ``mask_mod`` over
    all pairs, a one-off per length; its tables are tiny) and only the compiled kernel is measured.
    For ``longformer`` the op is transformers' ``LongformerSelfAttention`` (random weights) on random
    hidden states ``(batch, L', num_heads·head_dim)``, padded and masked as ``LongformerModel`` does,
    with the pattern's global tokens; its q, k, v projections are part of the op and of the prediction.

    On CPU, run in a process started with :data:`attnviz.memory.MALLOC_ENV` so freed tensors go back
    to the kernel (``note`` says when it was not). FlexAttention needs ``torch.compile`` (on CPU a
    C++ compiler, ~20 s the first time) and has no backward on CPU.
    """
    pattern = AttentionPattern() if pattern is None else pattern
    _check_choice("backend", backend, MEASURABLE)
    dtype_name = _dtype_name(dtype)
    _check_positive("repeats", repeats)
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"measure runs on 'cpu' or 'cuda' devices, got {device}")
    if backend == "flex" and backward and device.type == "cpu":
        raise ValueError(f"FlexAttention has no backward on CPU (torch {torch.__version__}); "
                         "use backend='dense' or 'sdpa', backward=False, or a CUDA device")
    layout = as_layout(layout)
    if not is_int(layer) or layer < 0:
        raise ValueError(f"layer must be an int >= 0, got {layer!r}")
    pattern.window_at(layer)  # raises if the layer is outside a per-layer pattern
    layers = pattern.per_layer or layer + 1
    predicted = attention_cost(pattern, layout, layers, num_heads, head_dim, batch=batch, dtype=dtype_name,
                               implementation=backend, backward=backward).per_layer[layer]
    L = layout.length
    torch_dtype = getattr(torch, dtype_name)

    generator = torch.Generator(device).manual_seed(seed)
    if backend == "longformer":
        op, inputs = _longformer_op(pattern, layout, layers, layer, num_heads, head_dim, batch, torch_dtype,
                                    device, generator, backward)
    else:
        op = _attention_op(pattern, layout, layer, backend, device)
        inputs = tuple(torch.randn(batch, num_heads, L, head_dim, generator=generator, device=device,
                                   dtype=torch_dtype).requires_grad_(backward) for _ in range(3))

    def run():
        out = op(*inputs)
        if backward:
            out.backward(torch.ones_like(out))
        del out
        for t in inputs:
            t.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    try:
        with torch.set_grad_enabled(backward):
            run()  # warm-up
    except Exception as err:
        if backend == "flex":
            raise RuntimeError(f"FlexAttention failed on {device} (torch.compile needs a working compiler; "
                               f"on CPU a C++ toolchain): {type(err).__name__}: {err}") from err
        raise
    times, peaks, method = [], [], ""
    for _ in range(repeats):
        with torch.set_grad_enabled(backward), peak_memory(device) as reading:
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        peaks.append(reading.peak_bytes)
        method = reading.method
    notes = []
    if device.type == "cpu" and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        notes.append("CPU peak read without attnviz.memory.MALLOC_ENV: retained heap may hide allocations")
    if backend in _FUSED:
        notes.append("kernel workspace is not modelled")
    return Measurement(
        backend=backend, device=str(device), dtype=dtype_name, length=L, batch=batch, num_heads=num_heads,
        head_dim=head_dim, backward=backward, layer=layer, seconds=statistics.median(times),
        times=tuple(times), peak_bytes=None if None in peaks else max(peaks), predicted=predicted,
        memory_method=method, note="; ".join(notes),
    )


def _attention_op(pattern, layout, layer, backend, device):
    """``op(q, k, v)`` of a dense / sdpa / flex layer (mask built here, outside the measured op)."""
    L = layout.length
    idx = torch.arange(L)
    rows = max(1, (1 << 22) // L)  # the rule on CPU in row chunks: its int64 temporaries stay small
    allowed_mask = torch.cat([allowed(pattern, layout, layer, idx[i:i + rows, None], idx[None, :])
                              for i in range(0, L, rows)]).to(device)
    if backend == "flex":
        from torch.nn.attention.flex_attention import create_block_mask

        block_mask = create_block_mask(mask_mod(pattern, layout, layer, device), B=None, H=None,
                                       Q_LEN=L, KV_LEN=L, device=device)
        del allowed_mask
        kernel = _compiled_flex()

        def op(q, k, v):
            return kernel(q, k, v, block_mask=block_mask)
    else:
        attend = _dense_attention if backend == "dense" else _sdpa_attention

        def op(q, k, v):
            return attend(q, k, v, allowed_mask)

    return op


def _longformer_op(pattern, layout, num_layers, layer, num_heads, head_dim, batch, dtype, device, generator,
                   backward):
    """``op(hidden)`` running transformers' ``LongformerSelfAttention`` for ``layer`` as
    ``LongformerModel`` runs it (input padded to ``L'``, padding masked, global tokens marked),
    and its input: random hidden states ``(batch, L', num_heads · head_dim)``."""
    import transformers
    from transformers.models.longformer.modeling_longformer import LongformerSelfAttention

    windows = _longformer_windows(pattern, num_layers)
    Lp = longformer_padded_length(layout.length, windows)
    config = transformers.LongformerConfig(hidden_size=num_heads * head_dim, num_attention_heads=num_heads,
                                           num_hidden_layers=num_layers, attention_window=list(windows),
                                           attention_probs_dropout_prob=0.0)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device)))
    module = LongformerSelfAttention(config, layer).to(device=device, dtype=dtype).eval()
    mask = torch.zeros(batch, Lp, device=device, dtype=dtype)
    mask[:, layout.length:] = -10000.0                                     # padding
    mask[:, :layout.length][:, pattern.global_mask(layout).to(device)] = 10000.0   # global tokens
    kw = dict(attention_mask=mask, is_index_masked=mask < 0, is_index_global_attn=mask > 0,
              is_global_attn=bool((mask > 0).any()))
    hidden = torch.randn(batch, Lp, num_heads * head_dim, generator=generator, device=device, dtype=dtype)

    def op(x):
        return module(x, **kw)[0]

    return op, (hidden.requires_grad_(backward),)


_ISOLATED = """
import dataclasses, json, sys
from attnviz import AttentionPattern
from attnviz.costs import measure
out = []
for run in json.loads(sys.argv[1]):
    pattern = run.pop("pattern")
    m = measure(None if pattern is None else AttentionPattern(**pattern), **run)
    out.append(dataclasses.asdict(m))
print("@@MEASURED@@" + json.dumps(out))
"""


def measure_isolated(runs: list[dict], *, timeout: float = 600) -> list[Measurement]:
    """:func:`measure` for each of ``runs`` (its keyword arguments: ``pattern`` an
    :class:`AttentionPattern` or None, ``layout`` a length, ...) in one fresh Python process started
    with :data:`attnviz.memory.MALLOC_ENV`, so CPU peaks are exact even when called from a notebook
    kernel (whose heap keeps freed memory and would hide allocations). Raises ``RuntimeError`` with
    the child's last lines if it fails."""
    payload = []
    for run in runs:
        run = dict(run)
        pattern = run.get("pattern")
        if pattern is not None and not isinstance(pattern, AttentionPattern):
            raise TypeError(f"pattern must be an AttentionPattern or None, got {type(pattern).__name__}")
        run["pattern"] = None if pattern is None else dataclasses.asdict(pattern)
        if not is_int(run.get("layout")):
            raise TypeError(f"measure_isolated takes plain lengths as layout, got {run.get('layout')!r}")
        if "dtype" in run:
            run["dtype"] = _dtype_name(run["dtype"])
        payload.append(run)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(MALLOC_ENV)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", _ISOLATED, json.dumps(payload)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("@@MEASURED@@")), None)
    if proc.returncode or line is None:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"measure in a fresh process failed (exit {proc.returncode}): {tail}")
    out = []
    for d in json.loads(line[len("@@MEASURED@@"):]):
        d["predicted"] = LayerCost(**d["predicted"])
        d["times"] = tuple(d["times"])
        out.append(Measurement(**d))
    return out
