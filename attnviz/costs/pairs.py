"""Allowed query-key pairs of a pattern, counted from its structure (no ``(L, L)`` mask).

:func:`keys_per_query` adds up bands, global rows and columns and random blocks in
O(L · random_blocks) with prefix sums and equals ``build_masks(...).sum(-1)`` exactly (tested);
:func:`allowed_pairs` sums it; :func:`block_pairs` counts what a block-sparse kernel computes.
Also the fast plain-length layout and the positive-int check the rest of :mod:`attnviz.costs` uses.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..blockmask import FLEX_BLOCK, block_tables
from ..checks import is_int
from ..patterns import AttentionPattern, layer_rule
from ..patterns import as_layout as _as_layout
from ..placement import Segment, SequenceLayout



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


def check_positive(name: str, value) -> None:
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

    Every term is counted inside the query's key range ``[lo, hi]``: its document (``documents``),
    and ``k <= q`` under causal. A global query sees the whole range. Any other query ``q`` sees the
    union of its dilated window ``W`` (kept in its chunk), the columns ``G`` (global positions and
    sinks) and its block's random key blocks ``R``, counted by inclusion-exclusion
    ``|W| + |G| - |G∩W| + |R| - |R∩W| - |R∩G| + |R∩W∩G|``. Window terms are arithmetic progressions
    ``q + t·d``, counted with per-residue prefix sums of the column mask. A query in the prefix
    (``q < P``) sees the prefix of its document, plus the terms above over the keys ``>= P``.
    A layer with mask parts (:mod:`attnviz.masks`) is counted without them and corrected on the pairs
    the parts enumerate, or, for a part that enumerates nothing, from its mask function row block by
    row block (O(L²) time).
    """
    return _keys_of_rule(layer_rule(pattern, as_layout(layout), layer))


def _keys_of_rule(rule) -> torch.Tensor:
    """int64 ``(L,)`` keys per query of one layer (see :func:`keys_per_query`)."""
    L = rule.length
    if rule.extra:
        pairs = rule.part_pairs()
        if pairs is None:
            return _counted_rows(rule)
        base = rule.without_parts()
        out = _keys_of_rule(base)
        for q, k in pairs:   # pairs a part adds: allowed now, not before
            added = rule.evaluate(rule.mask_fn(), q, k) & ~base.evaluate(base.mask_fn(), q, k)
            out += torch.bincount(q[added], minlength=L)
        return out
    window, d = rule.window, rule.dilation
    q = torch.arange(L)
    if rule.document is None:
        lo, hi = torch.zeros(L, dtype=torch.int64), torch.full((L,), L - 1, dtype=torch.int64)
    else:
        sizes = torch.bincount(rule.document)
        stops = sizes.cumsum(0)
        lo, hi = torch.repeat_interleave(stops - sizes, sizes), torch.repeat_interleave(stops, sizes) - 1
    if rule.causal:
        hi = torch.minimum(hi, q)
    in_prefix = torch.zeros(L, dtype=torch.int64)
    if rule.prefix:       # the prefix of the query's document, both ways; the other terms count keys >= P
        pre = q < rule.prefix
        doc_hi = torch.full((L,), L - 1) if rule.document is None else torch.repeat_interleave(stops, sizes) - 1
        in_prefix = torch.where(pre, (torch.clamp(doc_hi, max=rule.prefix - 1) - lo + 1).clamp(min=0), 0)
        lo = torch.where(pre, torch.clamp(lo, min=rule.prefix), lo)
    visible = (hi - lo + 1).clamp(min=0)
    if window is None and rule.chunk is None and not rule.prefix:
        return visible
    if window is None:
        d, w_lo, w_hi = 1, lo, hi
    elif rule.causal:   # keys q, q - d, ..., q - (w - 1)·d
        w_lo, w_hi = torch.maximum(q - (window - 1) * d, lo), torch.minimum(q, hi)
    else:               # keys q + t·d, |t| <= w // 2
        w_lo, w_hi = torch.maximum(q - (window // 2) * d, lo), torch.minimum(q + (window // 2) * d, hi)
    if rule.chunk is not None:
        chunk_start = q - q % rule.chunk
        w_lo, w_hi = torch.maximum(w_lo, chunk_start), torch.minimum(w_hi, chunk_start + rule.chunk - 1)
    columns = rule.is_global.clone()
    columns[:rule.sink_count] = True
    prefix = torch.cat([torch.zeros(1, dtype=torch.int64), columns.to(torch.int64).cumsum(0)])

    def in_range(a, b):   # column positions in [a, b], 0 where b < a
        return torch.where(b >= a, prefix[(b + 1).clamp(min=0)] - prefix[a.clamp(max=L)], 0)

    residues = _residue_prefix(columns, d)
    n_window, g_window = _progression(q, d, w_lo, w_hi, residues)
    rows = n_window + in_range(lo, hi) - g_window

    if rule.random is not None:
        bs = rule.block_size
        blocks, valid = _random_blocks(rule.random)
        kb, valid = blocks[q // bs], valid[q // bs]                  # (L, r)
        start = torch.maximum(kb * bs, lo[:, None])
        stop = torch.minimum(torch.clamp((kb + 1) * bs, max=L) - 1, hi[:, None])   # inclusive
        n_rw, g_rw = _progression(q[:, None], d, torch.maximum(w_lo[:, None], start),
                                  torch.minimum(w_hi[:, None], stop), residues)
        n_block = (stop + 1 - start).clamp(min=0)
        rows = rows + ((n_block - n_rw - in_range(start, stop) + g_rw) * valid).sum(1)
    return torch.where(rule.is_global, visible, rows) + in_prefix


def _counted_rows(rule) -> torch.Tensor:
    """int64 ``(L,)`` keys per query from the rule's mask function on blocks of rows: a layer with
    mask parts (:mod:`attnviz.masks`), which bring no closed form for pair counts. O(L²) time."""
    L = rule.length
    fn, k = rule.mask_fn(), torch.arange(L)
    out = torch.empty(L, dtype=torch.int64)
    rows = max(1, (1 << 22) // L)
    for start in range(0, L, rows):
        q = torch.arange(start, min(start + rows, L))
        out[q] = rule.evaluate(fn, q[:, None], k[None, :]).sum(1)
    return out


def allowed_pairs(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int) -> int:
    """Query-key pairs ``layer`` allows (per batch item and head): ``build_masks(...)[layer].sum()``
    without the ``(L, L)`` mask. E.g. ``L=10``, bidirectional ``window=4``: 44."""
    return int(keys_per_query(pattern, layout, layer).sum())


def _tiles(pattern: AttentionPattern, layout: SequenceLayout, layer: int, block: int):
    """bool ``(nt, nt)`` of ``block × block`` tiles holding any allowed pair, and tile sizes ``(nt,)``.
    O(nt² + blocks²) from the structure; the same tiles as FlexAttention's ``BlockMask``. Patterns
    with a prefix, sinks, chunks, documents or mask parts take the tiles from the pooled pair counts
    (:func:`attnviz.blockmask.block_tables`)."""
    L = layout.length
    nt = -(-L // block)
    start = torch.arange(nt) * block
    stop = torch.clamp(start + block, max=L) - 1
    if (pattern.prefix_lm is not None or pattern.sinks or pattern.chunk is not None or pattern.documents
            or pattern.parts):
        return block_tables(pattern, layout, layer, block).nonempty, stop + 1 - start
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
    check_positive("block_size", block_size)
    tiles, size = _tiles(pattern, as_layout(layout), layer, block_size)
    return int((tiles.to(torch.int64) * size[:, None] * size[None, :]).sum())


# ---- the cost model ----------------------------------------------------------------------------
