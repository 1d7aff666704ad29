"""What attention costs, analytically: FLOPs and memory of a pattern per implementation.

For one :class:`~attnviz.AttentionPattern` and model shape: how many query-key pairs a given
implementation computes (from :mod:`attnviz.costs.pairs`), and how many bytes it materialises
(:func:`attention_cost`, per layer and for a stack), and what a tiled capture costs
(:func:`capture_cost`). :mod:`attnviz.costs.measure` holds the model to a real run.

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

Memory of one layer's op, net of its inputs ``q, k, v`` (what :func:`attnviz.costs.measure` checks):

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
from dataclasses import dataclass

import torch

from ..blockmask import FLEX_BLOCK
from ..patterns import AttentionPattern
from ..placement import SequenceLayout
from .pairs import allowed_pairs, as_layout, block_pairs, check_positive

#: Bytes per element of the dtypes attnviz costs.
DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2}
#: Implementations the analytic model knows (see the module docstring).
IMPLEMENTATIONS = ("dense", "sparse", "sdpa", "flex", "longformer")
#: What :func:`measure` can run (each is costed as the implementation of the same name); not
#: :data:`attnviz.models.interface.BACKENDS`, the backends of ``with_pattern``.
MEASURABLE = ("dense", "sdpa", "flex", "longformer")

#: Implementations with a fused kernel (no probs stored; the mask kept for the backward).
FUSED = ("sdpa", "flex")


def dtype_name(dtype) -> str:
    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
        if name in DTYPES:
            return name
    elif isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)} (as a string or torch dtype)")


def check_choice(kind: str, value, allowed_values: tuple[str, ...]) -> None:
    if value not in allowed_values:
        raise ValueError(f"unknown {kind} {value!r}; allowed: {', '.join(allowed_values)}")



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
    if implementation in FUSED:
        return 0, out + lse, out + lse, 4 * out + lse
    scores = batch * heads * (L * L if implementation == "dense" else pairs) * s
    return scores, scores, max(2 * scores, scores + out), 2 * scores + 3 * out


def longformer_windows(pattern: AttentionPattern, num_layers: int) -> tuple[int, ...]:
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
        mask_bytes=_mask_bytes(implementation, L, s, block_size), mask_in_backward=implementation in FUSED,
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
    check_choice("implementation", implementation, IMPLEMENTATIONS)
    dtype = dtype_name(dtype)
    for name, value in (("num_heads", num_heads), ("head_dim", head_dim), ("batch", batch),
                        ("block_size", block_size)):
        check_positive(name, value)
    num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    check_positive("num_kv_heads", num_kv_heads)
    if num_heads % num_kv_heads:
        raise ValueError(f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads} (grouped-query attention)")
    if not isinstance(backward, bool):
        raise TypeError(f"backward must be True or False, got {backward!r}")
    pattern.check_layers(num_layers)
    s = DTYPES[dtype]
    padded = None
    if implementation == "longformer":
        padded = longformer_padded_length(layout.length, longformer_windows(pattern, num_layers))
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
    from ..blockmask import block_tables

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


def plain_peak_bytes(implementation: str, length: int, num_layers: int, batch: int, num_heads: int, head_dim: int,
                     dtype: str | torch.dtype, backward: bool) -> int:
    """:attr:`AttentionCost.peak_bytes` of an implementation whose memory does not depend on the
    pattern (all but ``sparse`` and ``longformer``), without counting pairs: what
    :func:`attnviz.costs.max_length_within` asks at every step of its search."""
    s = DTYPES[dtype_name(dtype)]
    layer = _memory(implementation, length, 0, batch, num_heads, head_dim, s)[1:]   # pairs not needed
    mask = _mask_bytes(implementation, length, s, FLEX_BLOCK)
    return _stack_peak(mask, implementation in FUSED, [layer] * num_layers, backward)
