"""Block pooling: mask and spread views that stay small for long inputs.

A dense ``(L, L)`` mask at L = 4096 is 16.7 M cells, too many to draw or ship in a figure. The views
here cut positions into blocks given by ``edges`` (``0 = e0 < e1 < ... < en = L``; block ``i`` is
``[e_i, e_{i+1})``) and count, for every (query block, key block), how many pairs each reason of
:data:`attnviz.REASONS` covers. Blocks follow segment boundaries when a layout is given, so the
``[CLS]`` token and the prompt keep their own rows and columns however long the text is.

:func:`pooled_reasons` never builds the ``(L, L)`` grid: it walks query rows in chunks and evaluates
the pattern's rule only where a key can be allowed (the window band, global keys, random blocks);
every other key is counted as blocked (or, under ``causal``, future) in bulk. That is
``O(L * (band + chunk + globals + random))`` work, and equals pooling :func:`attnviz.mask_reasons`
exactly (tests hold the two together).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .patterns import BLOCKED, FUTURE, GLOBAL, RANDOM, REASONS, WINDOW, AttentionPattern, _parts, _rule, as_layout
from .placement import SequenceLayout
from .spread import Spread

__all__ = ["block_edges", "PooledMask", "pool_counts", "pooled_reasons", "PooledSpread", "pool_spread"]


def block_edges(length: int, block: int, layout: SequenceLayout | None = None, min_width: int = 1) -> tuple[int, ...]:
    """Ascending block edges ``(0, ..., length)``: every ``block`` positions, plus every segment
    boundary of ``layout`` (so ``[CLS]``, prompt spans and ``[SEP]`` start blocks of their own).

    Args:
        length: ``L``, positions to cover.
        block: block length, >= 1 (1 = full resolution).
        layout: optional; its segment starts and stops become edges too.
        min_width: drop edges that would make a block narrower than this (figures use
            ``block // 2``: a one-token block is thinner than a pixel and vanishes when drawn).
    """
    for name, v in (("length", length), ("block", block), ("min_width", min_width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    edges = set(range(0, length, block)) | {length}
    if layout is not None:
        if layout.length != length:
            raise ValueError(f"layout has length {layout.length}, expected {length}")
        edges |= {s.start for s in layout.segments} | {s.stop for s in layout.segments}
    kept = [0]
    for e in sorted(edges)[1:]:
        if e - kept[-1] >= min_width:
            kept.append(e)
    if kept[-1] != length:  # the last block came out too narrow: end the previous one at L instead
        if len(kept) > 1:
            kept[-1] = length
        else:
            kept.append(length)
    return tuple(kept)


def _check_edges(edges, length: int) -> torch.Tensor:
    e = torch.as_tensor(list(edges), dtype=torch.int64)
    if e.dim() != 1 or len(e) < 2 or int(e[0]) != 0 or int(e[-1]) != length or bool((e[1:] <= e[:-1]).any()):
        raise ValueError(f"edges must rise strictly from 0 to {length}, got {tuple(edges)[:8]}...")
    return e


@contextlib.contextmanager
def _one_thread():
    """Run small tensor ops on one thread: the per-chunk work here is too small to share, and on a
    busy 2-core laptop OpenMP threads waiting on each other made it 10-30x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _block_of(edges: torch.Tensor) -> torch.Tensor:
    """int64 ``(L,)``: block index of every position."""
    sizes = edges[1:] - edges[:-1]
    return torch.repeat_interleave(torch.arange(len(sizes)), sizes)


@dataclass(frozen=True)
class PooledMask:
    """Pair counts of one layer's mask, per (query block, key block) and reason.

    Attributes:
        edges: block edges ``(nb + 1,)``; block ``i`` covers positions ``[edges[i], edges[i+1])``.
        counts: int64 ``(len(REASONS), nb, nb)``; ``counts[r, i, j]`` = pairs (q in block i,
            k in block j) whose reason code is ``r`` (see :data:`attnviz.REASONS`).
    """

    edges: tuple[int, ...]
    counts: torch.Tensor

    @property
    def sizes(self) -> torch.Tensor:
        """int64 ``(nb, nb)``: pairs in each block (``len(q block) * len(k block)``)."""
        s = torch.tensor(self.edges[1:]) - torch.tensor(self.edges[:-1])
        return s[:, None] * s[None, :]

    @property
    def allowed(self) -> torch.Tensor:
        """int64 ``(nb, nb)``: allowed pairs per block."""
        return self.counts[WINDOW] + self.counts[GLOBAL] + self.counts[RANDOM]

    @property
    def fraction(self) -> torch.Tensor:
        """float32 ``(nb, nb)``: share of allowed pairs per block, in [0, 1]."""
        return (self.allowed.double() / self.sizes.double()).float()

    def share(self, reason: int) -> torch.Tensor:
        """float32 ``(nb, nb)``: share of pairs per block with reason code ``reason``."""
        return (self.counts[reason].double() / self.sizes.double()).float()


def pool_counts(codes: torch.Tensor, edges, n_codes: int = len(REASONS)) -> torch.Tensor:
    """Pool a dense integer ``(L, L)`` grid (e.g. :func:`attnviz.mask_reasons`) to int64
    ``(n_codes, nb, nb)`` counts per block and code. The dense reference for :func:`pooled_reasons`."""
    L = codes.shape[-1]
    e = _check_edges(edges, L)
    b = _block_of(e)
    nb = len(e) - 1
    flat = (codes.long() * nb + b[:, None]) * nb + b[None, :]
    return torch.bincount(flat.reshape(-1), minlength=n_codes * nb * nb).reshape(n_codes, nb, nb)


def pooled_reasons(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int,
                   edges=None, *, block: int | None = None, chunk: int = 256) -> PooledMask:
    """Reason counts of layer ``layer`` pooled to blocks, without building the ``(L, L)`` grid.

    Args:
        pattern, layout, layer: as for :func:`attnviz.mask_reasons`.
        edges: block edges ``(0, ..., L)``; default :func:`block_edges` ``(L, block, layout)``.
        block: block length when ``edges`` is not given (default: ``ceil(L / 128)``).
        chunk: query rows evaluated at a time (memory ``O(chunk * keys in reach)``).
    Returns:
        :class:`PooledMask`; equals ``pool_counts(mask_reasons(pattern, layout, layer), edges)``.
    """
    with _one_thread():
        return _pooled_reasons(pattern, as_layout(layout), layer, edges, block, chunk)


def _pooled_reasons(pattern, layout, layer, edges, block, chunk) -> PooledMask:
    L = layout.length
    if edges is None:
        edges = block_edges(L, block or -(-L // 128), layout)
    e = _check_edges(edges, L)
    bq = _block_of(e)
    nb = len(e) - 1
    window, dilation, is_global, rand = _rule(pattern, layout, layer)
    counts = torch.zeros(len(REASONS) * nb * nb, dtype=torch.int64)

    # Keys outside [start - left, stop + right) of a chunk (and not global / random) are not
    # evaluated; their reason is the same for every row of the chunk.
    if window is None:  # full attention: every key is "window", later ones are future under causal
        left = right = 0
        left_reason, right_reason = WINDOW, FUTURE if pattern.causal else WINDOW
    else:
        left, right = (window * dilation - 1, 0) if pattern.causal else ((window // 2) * dilation,) * 2
        left_reason, right_reason = BLOCKED, FUTURE if pattern.causal else BLOCKED
    keys = torch.arange(L)

    for start in range(0, L, chunk):
        stop = min(start + chunk, L)
        rows = torch.arange(start, stop)
        if window is not None and bool(is_global[rows].any()):
            cand = torch.ones(L, dtype=torch.bool)  # a global query sees every key: evaluate all
        else:
            cand = torch.zeros(L, dtype=torch.bool)
            cand[max(0, start - left):min(L, stop + right)] = True
            if window is not None:
                cand |= is_global
                if rand is not None:
                    kblocks = rand[torch.unique(rows // pattern.block_size)].any(0)
                    cand |= kblocks[keys // pattern.block_size]
        k = keys[cand]
        local, glob, rnd, ok = _parts(pattern, window, dilation, is_global, rand, rows[:, None], k[None, :])
        code = torch.full(local.shape, BLOCKED, dtype=torch.int64)
        code[rnd] = RANDOM
        code[glob] = GLOBAL
        code[local] = WINDOW
        code[~ok] = FUTURE
        flat = (code * nb + bq[rows][:, None]) * nb + bq[k][None, :]
        counts += torch.bincount(flat.reshape(-1), minlength=counts.numel())

        rest = ~cand
        if bool(rest.any()):
            rows_per_block = torch.bincount(bq[rows], minlength=nb)  # (nb,)
            for side, reason in ((keys < start, left_reason), (keys >= stop, right_reason)):
                per_kblock = torch.bincount(bq[rest & side], minlength=nb)
                counts.view(len(REASONS), nb, nb)[reason] += rows_per_block[:, None] * per_kblock[None, :]
    return PooledMask(edges=tuple(int(x) for x in e), counts=counts.view(len(REASONS), nb, nb))


@dataclass(frozen=True)
class PooledSpread:
    """A :class:`attnviz.Spread` pooled to token blocks.

    Attributes:
        edges: block edges ``(nb + 1,)``.
        fraction: float32 ``(layers + 1, nb)``: share of the block's tokens reached after ``l`` layers.
        first_min, first_max: int64 ``(nb,)``: earliest / latest first layer among the block's
            reached tokens (-1 where none of them is ever reached).
        never: int64 ``(nb,)``: tokens of the block never reached.
    """

    edges: tuple[int, ...]
    fraction: torch.Tensor
    first_min: torch.Tensor
    first_max: torch.Tensor
    never: torch.Tensor


def pool_spread(result: Spread, edges) -> PooledSpread:
    """Pool ``result.reached`` ``(layers + 1, L)`` and ``result.first_layer`` ``(L,)`` to blocks."""
    L = result.reached.shape[1]
    e = _check_edges(edges, L)
    b = _block_of(e)
    nb = len(e) - 1
    sizes = (e[1:] - e[:-1]).double()
    hits = torch.zeros(result.reached.shape[0], nb, dtype=torch.float64)
    hits.index_add_(1, b, result.reached.double())
    fl = result.first_layer
    reached = fl >= 0
    big = torch.iinfo(torch.int64).max
    first_min = torch.full((nb,), big, dtype=torch.int64).scatter_reduce(
        0, b[reached], fl[reached], reduce="amin")
    first_max = torch.full((nb,), -1, dtype=torch.int64).scatter_reduce(
        0, b[reached], fl[reached], reduce="amax")
    first_min = torch.where(first_min == big, torch.full_like(first_min, -1), first_min)
    never = torch.bincount(b[~reached], minlength=nb)
    return PooledSpread(edges=tuple(int(x) for x in e), fraction=(hits / sizes).float(),
                        first_min=first_min, first_max=first_max, never=never)
