"""Attention probabilities out of any model, as one square map per layer and head.

Backends return attention in different shapes: eager dense models give ``(B, H, L, L)`` per layer;
Longformer / LED give a *band* ``(B, H, L, x + w + 1)`` (``x`` = number of global tokens: first
the probabilities for the global keys, then the ``w + 1`` keys ``q - w/2 .. q + w/2``) plus
``global_attentions`` ``(B, H, L', x)`` for the global rows (``L'`` = the length padded to a
multiple of the window); BigBird gives a dense ``(B, H, L', L')``. :func:`capture_attention`
turns all of them into one :class:`AttentionMaps`: ``values[l, h, q, k]`` = how much query ``q``
attends to key ``k``, at the unpadded length.

Memory. Exact maps cost ``layers * heads * L * L * 4`` bytes (6 x 12 x 4096^2 floats = 4.8 GB),
so for long inputs pick ``layers`` / ``heads`` and ``pool=`` a block size: positions are grouped
into contiguous blocks of ``pool``, cut around the ``keep`` positions (e.g. the prompt), which keep
rows and columns of their own; ``values`` is then ``(layers, heads, U, U)`` with ``U`` about
``L / pool + len(keep)``. Nothing of size ``(layers, heads, L, L)`` is built:

* eager dense models and BigBird: a forward hook on each attention module reduces that layer's
  ``(H, L, L)`` probabilities (which the eager kernel materialises anyway, one layer at a time)
  to the chosen heads and blocks at once; the model runs without ``output_attentions``.
* Longformer / LED: the band is scattered straight into blocks, ``O(heads * L * (x + w))``.

Peak memory is therefore one layer of the model's own attention plus the result.

**Any length** (``pattern=``): for a model that runs under :func:`attnviz.with_pattern`, pass the
pattern (and layout) and the forward runs with the ``tiled`` backend
(:func:`attnviz.tiled_attention.tiled_attention`): each layer's exact probabilities are computed
only on the pattern's non-empty ``128 × 128`` tiles and reduced into the maps tile by tile, so
neither the model nor the capture ever holds a ``(heads, L, L)`` tensor. Memory is the model's own
forward plus ``O(heads · 128 · max_keys)`` working floats plus the result, and time grows with the
allowed pairs (window, globals, random blocks). :func:`capture_rows` keeps chosen query rows (the
readout, the prompt) exact across all keys the same way. Native BigBird has no such path (it runs
its own attention): it keeps the hook path above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch

from .models.anatomy import attention_modules, config_of, num_layers, temporary_hooks
from .models.families import OWN_ATTENTION, bigbird, longformer
from .placement import SequenceLayout


@dataclass(frozen=True, eq=False)
class AttentionMaps:
    """Captured attention of one sequence.

    Attributes:
        values: float32 ``(layers, heads, U, U)``; ``U = L`` when exact. Pooled entries are means
            over the unit's query rows and key columns (multiply by :attr:`unit_sizes` of the
            column unit for the total attention to that block).
        layers, heads: which model layers and heads the first two axes hold.
        length: ``L``, unpadded tokens of the sequence.
        block_size: pooling block, or None for exact maps (or for maps pooled on given edges).
        kept: positions with exact rows and columns when pooled.
        edges: ``(0 = e0 < ... < eU = L)``; unit ``u`` is positions ``[e_u, e_{u+1})`` (the same
            convention as :func:`attnviz.pooling.block_edges`).
        unit_of: int64 ``(L,)``: the row/column of ``values`` holding position ``t``.
        source: ``"dense"``, ``"longformer"`` (band + global rows) or ``"bigbird"``.
        notes: what was adjusted, in plain words.
    """

    values: torch.Tensor
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    length: int
    block_size: int | None
    kept: tuple[int, ...]
    edges: tuple[int, ...]
    unit_of: torch.Tensor
    source: str
    notes: tuple[str, ...] = ()

    @property
    def pooled(self) -> bool:
        return self.values.shape[-1] != self.length

    @property
    def unit_sizes(self) -> torch.Tensor:
        """int64 ``(U,)``: positions in each unit (all 1 when exact)."""
        return torch.bincount(self.unit_of, minlength=self.values.shape[-1])

    def unit_positions(self, unit: int) -> range:
        """Positions that unit ``unit`` (a row / column of ``values``) stands for."""
        return range(self.edges[unit], self.edges[unit + 1])

    @property
    def nbytes(self) -> int:
        return self.values.numel() * self.values.element_size()


def pool_edges(length: int, pool: int | Iterable[int] | None, keep: Iterable[int] = ()) -> tuple[int, ...]:
    """Unit edges ``(0, ..., L)`` for pooling: every ``pool`` positions, and around each ``keep``
    position (so it is a unit of its own); ``pool=None`` gives one unit per position. ``pool`` may
    also be ready edges (e.g. from :func:`attnviz.pooling.block_edges`), checked and returned."""
    if pool is None:
        return tuple(range(length + 1))
    if not isinstance(pool, int) or isinstance(pool, bool):
        edges = tuple(int(e) for e in pool)
        if len(edges) < 2 or edges[0] != 0 or edges[-1] != length or any(a >= b for a, b in zip(edges, edges[1:])):
            raise ValueError(f"pool edges must rise strictly from 0 to L={length}, got {edges[:8]}{'...' if len(edges) > 8 else ''}")
        return edges
    if pool < 1:
        raise ValueError(f"pool must be a block size >= 1, edges, or None for exact maps; got {pool!r}")
    keep = sorted({int(k) for k in keep})
    bad = [k for k in keep if not 0 <= k < length]
    if bad:
        raise ValueError(f"keep positions {bad} are outside [0, {length})")
    cuts = set(range(0, length, pool)) | {length} | set(keep) | {k + 1 for k in keep}
    return tuple(sorted(cuts))


def units_of(edges: tuple[int, ...]) -> torch.Tensor:
    """int64 ``(L,)``: unit index of each position for ``edges``."""
    e = torch.tensor(edges)
    return torch.repeat_interleave(torch.arange(len(edges) - 1), e[1:] - e[:-1])


class _Reducer:
    """Turns one layer's probabilities (dense or as sparse triples) into ``(heads, U, U)`` means."""

    def __init__(self, unit_of: torch.Tensor, exact: bool):
        self.unit_of, self.exact = unit_of, exact
        self.U = int(unit_of.max()) + 1 if len(unit_of) else 0
        sizes = torch.bincount(unit_of, minlength=self.U).to(torch.float32)
        self.norm = sizes[:, None] * sizes[None, :]

    def dense(self, probs: torch.Tensor) -> torch.Tensor:
        """``probs`` ``(h, L, L)`` -> ``(h, U, U)``."""
        probs = probs.to(torch.float32)
        if self.exact:
            return probs.clone()
        h = probs.shape[0]
        cols = probs.new_zeros(h, probs.shape[1], self.U).index_add_(2, self.unit_of, probs)
        out = probs.new_zeros(h, self.U, self.U).index_add_(1, self.unit_of, cols)
        return out / self.norm

    def sparse(self, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
        """Triples ``rows``, ``cols`` ``(n,)`` and ``vals`` ``(h, n)`` -> ``(h, U, U)`` (duplicates add up)."""
        flat = self.unit_of[rows] * self.U + self.unit_of[cols]
        out = vals.new_zeros(vals.shape[0], self.U * self.U, dtype=torch.float32)
        out.index_add_(1, flat, vals.to(torch.float32))
        out = out.view(-1, self.U, self.U)
        return out if self.exact else out / self.norm


def _select(name: str, chosen, total: int) -> tuple[int, ...]:
    if chosen is None:
        return tuple(range(total))
    chosen = (chosen,) if isinstance(chosen, int) else tuple(chosen)
    bad = [c for c in chosen if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < total]
    if bad or not chosen:
        raise ValueError(f"{name} {bad or list(chosen)} are not in [0, {total}); the model has {total} {name}")
    return chosen


def _row(t: torch.Tensor | None, index: int):
    if t is None:
        return None
    t = torch.as_tensor(t)
    return t[index if t.shape[0] > 1 else 0] if t.dim() == 2 else t


def _real_positions(inputs: Mapping, index: int) -> tuple[int, torch.Tensor, torch.Tensor]:
    """``(L_in, valid, remap)`` of sequence ``index``: its input length, the positions whose
    ``attention_mask`` is not 0 (long ``(L,)``), and each input position's unpadded index (-1 for padding)."""
    ref = inputs.get("input_ids") if inputs.get("input_ids") is not None else inputs.get("inputs_embeds")
    if ref is None:
        raise ValueError("inputs need input_ids or inputs_embeds")
    if not 0 <= index < ref.shape[0]:
        raise ValueError(f"index {index} is outside the batch of {ref.shape[0]}")
    L_in = ref.shape[1]
    am = _row(inputs.get("attention_mask"), index)
    valid = torch.arange(L_in) if am is None else torch.nonzero(am.cpu() != 0).flatten()
    remap = torch.full((L_in,), -1, dtype=torch.long)
    remap[valid] = torch.arange(len(valid))
    return L_in, valid, remap


def capture_attention(model, inputs: Mapping, *, layers: Iterable[int] | int | None = None,
                      heads: Iterable[int] | int | None = None, pool: int | None = None,
                      keep: Iterable[int] | SequenceLayout | None = None, index: int = 0,
                      max_bytes: int = 2**30, pattern=None, layout: SequenceLayout | None = None) -> AttentionMaps:
    """Run ``model(**inputs)`` once (no grad) and return the attention of sequence ``index``.

    Args:
        model: an eager dense model (BERT, GPT-2, Mistral, ...), Longformer / LED (encoder), or BigBird.
        inputs: forward arguments (``input_ids`` or ``inputs_embeds``, ``attention_mask``,
            ``global_attention_mask``, ...). Positions where ``attention_mask`` is 0 are dropped.
        layers, heads: which to keep (default all).
        pool: block size for pooled maps, ready edges ``(0, ..., L)``, or None for exact ``(L, L)`` maps.
        keep: positions kept exact when pooling by block size, or a :class:`SequenceLayout` (its
            prompt positions).
        index: which sequence of the batch.
        max_bytes: refuse results larger than this (default 1 GiB); pool or select instead.
        pattern, layout: run the model under this :class:`attnviz.AttentionPattern` (and
            :class:`attnviz.SequenceLayout`, for a prompt) with the ``tiled`` backend: exact
            probabilities from the pattern's non-empty tiles, ``O(L · w)`` memory at any length
            (see the module doc). Without ``pattern`` the model's current attention is read.
    Returns:
        :class:`AttentionMaps` with ``values`` ``(len(layers), len(heads), U, U)``.

    BigBird block-sparse in eval: its random slots all point at block 0, which therefore counts
    ``1 + r`` times in the softmax of the rows in blocks ``1 .. nb-2`` while its returned
    probabilities show one copy (rows sum to less than 1). The maps hold the effective weights:
    those block-0 columns are multiplied by ``1 + r`` (rows sum to 1).
    """
    cfg = config_of(model)
    family = cfg.model_type
    L_in, valid, remap = _real_positions(inputs, index)
    L = len(valid)
    if isinstance(keep, SequenceLayout):
        if keep.length != L:
            raise ValueError(f"the layout has {keep.length} positions but the input has {L}")
        keep = keep.prompt_positions
    kept = tuple(sorted({int(k) for k in keep})) if (keep is not None and isinstance(pool, int)) else ()
    edges = pool_edges(L, pool, kept)
    unit_of = units_of(edges)
    reducer = _Reducer(unit_of, exact=pool is None)
    notes: list[str] = []

    def check_size(n_layers: int, n_heads: int) -> None:
        size = n_layers * n_heads * reducer.U ** 2 * 4
        if size > max_bytes:
            raise ValueError(f"{n_layers} layers x {n_heads} heads x {reducer.U}^2 floats take {size / 2**30:.1f} GiB "
                             f"(max_bytes={max_bytes / 2**30:.1f} GiB); pass pool= (e.g. pool=64, keep=the prompt) "
                             f"or fewer layers / heads")

    if pattern is not None:
        values, layers, heads, source = _capture_tiled(model, inputs, index, layers, heads, reducer, valid, remap,
                                                       check_size, notes, pattern, layout)
    else:
        run = _capture_longformer if family in longformer.MODEL_TYPES else _capture_hooked
        values, layers, heads, source = run(model, inputs, index, layers, heads, reducer, valid, remap, L_in,
                                            check_size, notes)
    return AttentionMaps(values=values, layers=layers, heads=heads, length=L,
                         block_size=pool if isinstance(pool, int) else None, kept=kept, edges=edges,
                         unit_of=unit_of, source=source, notes=tuple(notes))


def _run_tiled(model, inputs, pattern, layout, on_tile) -> None:
    """One no-grad forward of ``model`` under ``pattern`` with the tiled backend, tiles to ``on_tile``."""
    from .models.interface import with_pattern

    if config_of(model).model_type in OWN_ATTENTION:
        raise ValueError(f"pattern= runs the model through with_pattern, which {config_of(model).model_type} does not "
                         f"support (it has its own sparse attention); capture it without pattern= (its native path)")
    with with_pattern(model, pattern, layout, backend="tiled", on_tile=on_tile) as m, torch.no_grad():
        m(**inputs)


def _collect_tiles(model, inputs, index, layers, heads, remap, pattern, layout, shape, add,
                   on_heads=None) -> tuple[tuple[int, ...], tuple[int, ...], torch.Tensor]:
    """One tiled forward; every tile of sequence ``index`` in the chosen layers goes to
    ``add(acc (h, *shape), q_valid, k_valid, probs (h, tq, nk))`` (unpadded positions, -1 for
    padding) with the chosen heads only. Returns ``(layers, heads, values (layers, h, *shape))``."""
    layers = _select("layers", layers, num_layers(model))
    wanted = set(layers)
    acc: dict[int, torch.Tensor] = {}
    chosen: list = []

    def on_tile(layer, b, q_pos, k_pos, probs):
        if b != index or layer not in wanted:
            return
        if not chosen:
            chosen.append(_select("heads", heads, probs.shape[0]))
            if on_heads is not None:
                on_heads(len(layers), len(chosen[0]))
        device = probs.device
        if layer not in acc:
            acc[layer] = torch.zeros(len(chosen[0]), *shape, device=device)
        add(acc[layer], remap.to(device)[q_pos], remap.to(device)[k_pos], probs[list(chosen[0])])

    _run_tiled(model, inputs, pattern, layout, on_tile)
    if not chosen:
        raise ValueError("the forward pass computed no attention tile for this sequence")
    h = len(chosen[0])
    values = torch.stack([acc[l].cpu() if l in acc else torch.zeros(h, *shape) for l in layers])
    return layers, chosen[0], values


def _capture_tiled(model, inputs, index, layers, heads, reducer, valid, remap, check_size, notes, pattern, layout):
    """Any model under ``with_pattern``: probabilities reduced tile by tile as the tiled backend computes them."""

    def add(acc, q_valid, k_valid, probs):
        rows, cols = q_valid >= 0, k_valid >= 0
        p = probs[:, rows][:, :, cols]                                       # (h, tq', nk')
        uq, uk = q_valid[rows], k_valid[cols]
        if reducer.exact:
            acc[:, uq[:, None], uk[None, :]] = p
        else:
            unit_of = reducer.unit_of.to(p.device)
            per_unit = p.new_zeros(p.shape[0], p.shape[1], reducer.U).index_add_(2, unit_of[uk], p)
            acc.index_add_(1, unit_of[uq], per_unit)

    layers, heads, values = _collect_tiles(model, inputs, index, layers, heads, remap, pattern, layout,
                                           (reducer.U, reducer.U), add, on_heads=check_size)
    if not reducer.exact:
        values = values / reducer.norm
    notes.append("exact probabilities computed on the pattern's non-empty 128 x 128 tiles only (backend='tiled')")
    return values, layers, heads, "tiled"


@dataclass(frozen=True, eq=False)
class AttentionRows:
    """Chosen query rows of the attention, exact across every key (the readout, the prompt).

    Attributes:
        values: float32 ``(layers, heads, R, L)``: ``values[l, h, r, k]`` = how much position
            ``rows[r]`` attends to key ``k`` (unpadded positions).
        rows: the query positions, in the order given.
        layers, heads, length: as in :class:`AttentionMaps`.
    """

    values: torch.Tensor
    rows: tuple[int, ...]
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    length: int

    @property
    def nbytes(self) -> int:
        return self.values.numel() * self.values.element_size()


def capture_rows(model, inputs: Mapping, rows: Iterable[int] | SequenceLayout, pattern, *,
                 layout: SequenceLayout | None = None, layers: Iterable[int] | int | None = None,
                 heads: Iterable[int] | int | None = None, index: int = 0) -> AttentionRows:
    """The attention of the query positions ``rows`` over all keys, exact, at any length.

    Runs ``model(**inputs)`` once under ``pattern`` with the tiled backend (see the module doc) and
    keeps only those rows: ``O(layers · heads · R · L)`` result, ``O(L · w)`` working memory.

    Args:
        rows: positions (unpadded) of the rows to keep, or a :class:`SequenceLayout` for its
            prompt positions and readout.
        pattern, layout: as for :func:`capture_attention`'s ``pattern=``.
        layers, heads, index: as for :func:`capture_attention`.
    """
    _, valid, remap = _real_positions(inputs, index)
    L = len(valid)
    if isinstance(rows, SequenceLayout):
        rows = tuple(rows.prompt_positions) + (rows.readout_position,)
    rows = tuple(int(r) for r in rows)
    bad = [r for r in rows if not 0 <= r < L]
    if bad or not rows:
        raise ValueError(f"rows {bad or list(rows)} are not positions in [0, {L})")
    row_of = torch.full((L,), -1, dtype=torch.long)
    row_of[torch.tensor(rows)] = torch.arange(len(rows))

    def add(acc, q_valid, k_valid, probs):
        r = torch.where(q_valid >= 0, row_of.to(probs.device)[q_valid.clamp(min=0)], -1)
        pick, cols = r >= 0, k_valid >= 0
        acc[:, r[pick][:, None], k_valid[cols][None, :]] = probs[:, pick][:, :, cols]

    layers, heads, values = _collect_tiles(model, inputs, index, layers, heads, remap, pattern, layout,
                                           (len(rows), L), add)
    return AttentionRows(values=values, rows=rows, layers=layers, heads=heads, length=L)


def _capture_hooked(model, inputs, index, layers, heads, reducer, valid, remap, L_in, check_size, notes):
    """Eager dense models and BigBird: reduce each layer's probabilities inside a forward hook."""
    family = config_of(model).model_type
    is_bigbird = family in bigbird.MODEL_TYPES
    mods = bigbird.capture_modules(model) if is_bigbird else attention_modules(model)
    if not mods:
        raise ValueError(f"found no attention modules to read in {type(model).__name__}; attnviz reads models that "
                         f"declare _can_record_outputs['attentions'] (transformers 5), Longformer/LED and BigBird")
    layers = _select("layers", layers, len(mods))
    results: dict[int, torch.Tensor] = {}
    state = {"heads": None, "fixed": False}
    r = getattr(config_of(model), "num_random_blocks", 0)

    def make_hook(layer: int, out_index: int):
        def hook(module, args, output):
            if layer not in layers:
                return
            probs = output[out_index] if isinstance(output, tuple) else None
            if probs is None:
                raise ValueError(f"{type(module).__name__} returned no attention probabilities (attention "
                                 f"implementation {config_of(model)._attn_implementation!r}); use eager attention: "
                                 f"model.set_attn_implementation('eager')")
            if state["heads"] is None:
                state["heads"] = _select("heads", heads, probs.shape[1])
                check_size(len(layers), len(state["heads"]))
            p = probs[index, list(state["heads"])].detach()            # (h, L', L'), L' >= L_in (BigBird pads)
            if is_bigbird:
                p, fixed = bigbird.effective_probs(module, p, r)
                state["fixed"] = state["fixed"] or fixed
            p = p[:, :L_in, :L_in][:, valid][:, :, valid]
            results[layer] = reducer.dense(p)
        return hook

    before = bigbird.attention_type(model) if is_bigbird else None
    with temporary_hooks([(m, make_hook(i, idx)) for i, (m, idx) in enumerate(mods)]), torch.no_grad():
        model(**inputs)
    if state["fixed"]:
        notes.append(f"BigBird eval: block-0 columns of the rows in blocks 1..nb-2 multiplied by 1 + {r} "
                     f"(its {r} random slots all point at block 0, so block 0 counts {1 + r} times)")
    if before is not None and bigbird.attention_type(model) != before:
        notes.append(f"BigBird switched from {before} to {bigbird.attention_type(model)} during this call (the input is "
                     f"too short for block-sparse) and stays switched")
    missing = [l for l in layers if l not in results]
    if missing:
        raise ValueError(f"layers {missing} produced no attention in this forward pass")
    return (torch.stack([results[l] for l in layers]), layers, state["heads"],
            "bigbird" if is_bigbird else "dense")


def _global_positions(model, inputs, index, L_in) -> torch.Tensor:
    """Global token positions (ascending) of sequence ``index``, as Longformer computes them."""
    gm = _row(inputs.get("global_attention_mask"), index)
    if gm is None:
        default = longformer.default_global_positions(model)
        gm = torch.zeros(L_in, dtype=torch.long)
        gm[list(default)] = 1
    am = _row(inputs.get("attention_mask"), index)
    is_global = (gm.cpu() != 0) & (True if am is None else (am.cpu() != 0))
    return torch.nonzero(is_global).flatten()


def _capture_longformer(model, inputs, index, layers, heads, reducer, valid, remap, L_in, check_size, notes):
    """Longformer / LED encoder: band + global rows scattered into ``(heads, U, U)`` per layer."""
    if config_of(model).model_type == "led":
        keys = ("input_ids", "inputs_embeds", "attention_mask", "global_attention_mask")
        run, run_inputs = model.get_encoder(), {k: v for k, v in inputs.items() if k in keys}
    else:
        run, run_inputs = model, dict(inputs)
    with torch.no_grad():
        out = run(**run_inputs, output_attentions=True)
    local = out.attentions if hasattr(out, "attentions") and out.attentions is not None else out.encoder_attentions
    glob = getattr(out, "global_attentions", None)
    if glob is None:
        glob = getattr(out, "encoder_global_attentions", None)
    g_pos = _global_positions(model, inputs, index, L_in)
    x = 0 if glob is None else glob[0].shape[-1]
    if len(g_pos) > x:
        raise ValueError(f"expected at most {x} global tokens from the model's output, found {len(g_pos)} in the inputs")
    layers = _select("layers", layers, len(local))
    heads = _select("heads", heads, local[0].shape[1])
    check_size(len(layers), len(heads))
    result = []
    q = torch.arange(L_in)
    for layer in layers:
        band = local[layer][index, list(heads)]                       # (h, L_in, x + w + 1)
        w = band.shape[-1] - x - 1
        cols_g = torch.full((L_in, x), -1, dtype=torch.long)
        cols_g[:, : len(g_pos)] = g_pos
        cols_b = q[:, None] - w // 2 + torch.arange(w + 1)[None, :]
        cols = torch.cat([cols_g, cols_b], 1)                         # (L_in, x + w + 1) key of each column
        rows = q[:, None].expand_as(cols)
        rows, cols, vals = rows.flatten(), cols.flatten(), band.reshape(len(heads), -1)
        if x:
            gl = glob[layer][index, list(heads)][:, :L_in, : len(g_pos)]  # (h, L_in keys, n_global)
            rows = torch.cat([rows, g_pos.repeat_interleave(L_in)])
            cols = torch.cat([cols, torch.arange(L_in).repeat(len(g_pos))])
            vals = torch.cat([vals, gl.transpose(1, 2).reshape(len(heads), -1)], 1)
        ok = (cols >= 0) & (cols < L_in)
        rows, cols, vals = rows[ok], cols[ok], vals[:, ok]
        rows, cols = remap[rows], remap[cols]
        ok = (rows >= 0) & (cols >= 0)
        result.append(reducer.sparse(rows[ok], cols[ok], vals[:, ok]))
    return torch.stack(result), layers, heads, "longformer"
