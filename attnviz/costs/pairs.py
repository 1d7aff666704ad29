"""Allowed query-key pairs of a pattern, counted from its structure (no ``(L, L)`` mask).

:func:`keys_per_query` adds up bands, global rows and columns and random blocks in
O(L · random_blocks) with prefix sums and equals ``build_masks(...).sum(-1)`` exactly (tested);
:func:`allowed_pairs` sums it; :func:`block_pairs` counts what a block-sparse kernel computes.
Also the fast plain-length layout and the positive-int check the rest of :mod:`attnviz.costs` uses.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..blockmask import FLEX_BLOCK
from ..checks import is_int
from ..patterns import AttentionPattern
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
    check_positive("block_size", block_size)
    tiles, size = _tiles(pattern, as_layout(layout), layer, block_size)
    return int((tiles.to(torch.int64) * size[:, None] * size[None, :]).sum())


# ---- the cost model ----------------------------------------------------------------------------
