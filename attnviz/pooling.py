"""Block pooling: mask and spread views that stay small for long inputs.

A dense ``(L, L)`` mask at L = 4096 is 16.7 M cells, too many to draw or ship in a figure. The views
here cut positions into blocks given by ``edges`` (``0 = e0 < e1 < ... < en = L``; block ``i`` is
``[e_i, e_{i+1})``) and count, for every (query block, key block), how many pairs each reason of
:data:`attnviz.REASONS` covers. Blocks follow segment boundaries when a layout is given, so the
``[CLS]`` token and the prompt keep their own rows and columns however long the text is.

:func:`pooled_reasons` never builds the ``(L, L)`` grid. It counts each reason from the pattern's
structure: window pairs per (query, key block) in closed form (the band is an interval of keys,
every ``dilation``-th one), pairs through a global token and random-block pairs by enumerating
only those rows, columns and blocks, future pairs (causal) from the block geometry, and the rest as
blocked. That is ``O(L * (key blocks in the band + globals) + random pairs)`` work, and equals
pooling :func:`attnviz.mask_reasons` exactly (tests hold the two together). A layer with mask parts
(:mod:`attnviz.masks`) is counted in closed form without them, then corrected on the pairs the
parts enumerate (``O(L²/stride)`` for strided keys), or, for a part that enumerates nothing, from
:func:`attnviz.patterns.reason_grid` on blocks of query rows: exact either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .patterns import (ALLOWED_CODES, BLOCKED, FUTURE, GLOBAL, OTHER_DOCUMENT, OUTSIDE_CHUNK, PREFIX, RANDOM,
                       REASONS, SINK, WINDOW, AttentionPattern, as_layout, layer_rule, reason_grid)
from .placement import SequenceLayout
from .spread import Spread, one_thread

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
        return self.counts[list(ALLOWED_CODES)].sum(0)

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
                   edges=None, *, block: int | None = None, chunk: int | None = None) -> PooledMask:
    """Reason counts of layer ``layer`` pooled to blocks, without building the ``(L, L)`` grid.

    Args:
        pattern, layout, layer: as for :func:`attnviz.mask_reasons`.
        edges: block edges ``(0, ..., L)``; default :func:`block_edges` ``(L, block, layout)``.
        block: block length when ``edges`` is not given (default: ``ceil(L / 128)``).
        chunk: query rows (or random block pairs) handled per pass; bounds the memory of the
            passes to ``O(chunk * key blocks in the band)``. Default: about 2M cells per pass.
    Returns:
        :class:`PooledMask`; equals ``pool_counts(mask_reasons(pattern, layout, layer), edges)``.
    """
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be an int >= 1 or None, got {chunk!r}")
    with one_thread():
        return _pooled_reasons(pattern, as_layout(layout), layer, edges, block, chunk)


_CELLS = 1 << 21  # cells per pass when chunk is None


def _future_pairs(sizes: torch.Tensor) -> torch.Tensor:
    """int64 ``(nb, nb)``: pairs (q in block i, k in block j) with k > q, for contiguous ascending blocks."""
    future = torch.triu(sizes[:, None] * sizes[None, :], diagonal=1)
    return future + torch.diag(sizes * (sizes - 1) // 2)


def _multiples(lo: torch.Tensor, hi: torch.Tensor, d: int) -> torch.Tensor:
    """How many multiples of ``d`` lie in ``[lo, hi]`` (elementwise; 0 where ``hi < lo``)."""
    n = torch.div(hi, d, rounding_mode="floor") + torch.div(-lo, d, rounding_mode="floor") + 1
    return n.clamp(min=0)


def _add_global(flat, in_random, n, cell, nb, random_hit) -> None:
    """Add pair counts ``n`` at block cells ``cell`` (``i * nb + j``) to the GLOBAL counts, and to
    ``in_random`` where ``random_hit`` (bool, same shape) says the pairs lie in a random block."""
    flat.index_add_(0, GLOBAL * nb * nb + cell.reshape(-1), n.reshape(-1))
    if random_hit is not None:
        in_random.index_add_(0, cell.reshape(-1), (n * random_hit).reshape(-1))


def _pooled_reasons(pattern, layout, layer, edges, block, chunk) -> PooledMask:
    L = layout.length
    if edges is None:
        edges = block_edges(L, block or -(-L // 128), layout)
    e = _check_edges(edges, L)
    bq = _block_of(e)
    nb = len(e) - 1
    rule = layer_rule(pattern, layout, layer)
    return PooledMask(edges=tuple(e.tolist()), counts=_rule_counts(rule, e, bq, nb, chunk))


def _rule_counts(rule, e: torch.Tensor, bq: torch.Tensor, nb: int, chunk: int | None) -> torch.Tensor:
    """Reason counts ``(len(REASONS), nb, nb)`` of one layer: closed forms for the built-in parts;
    mask parts as a correction over the pairs they enumerate, else from the grid."""
    if rule.extra:
        pairs = rule.part_pairs()
        if pairs is None:
            return _grid_counts(rule, e, bq, nb, chunk)
        base = rule.without_parts()
        counts = _rule_counts(base, e, bq, nb, chunk).view(-1)
        n = counts.numel()
        for q, k in pairs:   # each pair leaves its reason without the parts for its reason with them
            cell = bq[q] * nb + bq[k]
            counts += torch.bincount(reason_grid(rule, q, k).long() * (nb * nb) + cell, minlength=n)
            counts -= torch.bincount(reason_grid(base, q, k).long() * (nb * nb) + cell, minlength=n)
        return counts.view(len(REASONS), nb, nb)
    if rule.prefix or rule.sink_count or rule.chunk is not None or rule.document is not None:
        return _zoo_counts(rule, e, bq, nb, chunk)
    return _band_counts(rule, e, bq, nb, chunk)


def _band_counts(rule, e: torch.Tensor, bq: torch.Tensor, nb: int, chunk: int | None) -> torch.Tensor:
    """Reason counts of a layer of bands, global tokens and random blocks (no zoo part)."""
    L = rule.length
    sizes = e[1:] - e[:-1]
    window, dilation, is_global, rand = rule.window, rule.dilation, rule.is_global, rule.random
    causal = rule.causal
    parts = rule.parts()
    counts = torch.zeros(len(REASONS), nb, nb, dtype=torch.int64)
    total = sizes[:, None] * sizes[None, :]
    future = _future_pairs(sizes) if causal else torch.zeros_like(total)
    counts[FUTURE] = future
    if window is None:  # full attention: every earlier (or every) key is "window"
        counts[WINDOW] = total - future
        return counts

    # Key segments: the blocks, cut further at BigBird block edges when there are random blocks, so
    # that each segment lies in one block and one BigBird block.
    bs = rule.block_size if rand is not None else None
    if bs is not None:
        seg_edges = torch.unique(torch.cat([e, torch.arange(0, L, bs)]))
    else:
        seg_edges = e
    seg_of = _block_of(seg_edges)                       # (L,) segment of each position
    seg_block = bq[seg_edges[:-1]]                      # (ns,) block of each segment
    in_random = torch.zeros(nb * nb, dtype=torch.int64)  # pairs counted above that are in random blocks
    flat = counts.view(-1)

    # 1. window pairs, in closed form per (query q, key segment S): the keys k in [q - left, q + right]
    #    with (q - k) % dilation == 0 that lie in S. Every window pair is allowed (causal windows
    #    only reach back), so they are all WINDOW.
    d = dilation
    left, right = rule.span
    q_all = torch.arange(L)
    lo_q = (q_all - left).clamp(min=0)
    hi_q = (q_all + right).clamp(max=L - 1)
    first_s, last_s = seg_of[lo_q], seg_of[hi_q]
    span = int((last_s - first_s).max()) + 1
    rows_per_pass = chunk or max(1, _CELLS // span)
    ns = len(seg_edges) - 1
    for start in range(0, L, rows_per_pass):
        q = q_all[start:start + rows_per_pass]
        j = first_s[q, None] + torch.arange(span)[None, :]
        valid = j <= last_s[q, None]
        j = j.clamp(max=ns - 1)
        lo = torch.maximum(seg_edges[j], lo_q[q, None]) - q[:, None]     # key offsets k - q in S ∩ band
        hi = torch.minimum(seg_edges[j + 1] - 1, hi_q[q, None]) - q[:, None]
        n = torch.where(valid, _multiples(lo, hi, d), 0)
        cell = bq[q, None] * nb + seg_block[j]
        flat.index_add_(0, (WINDOW * nb * nb + cell).reshape(-1), n.reshape(-1))
        if bs is not None:
            hit = rand[q[:, None] // bs, seg_edges[j] // bs]
            in_random.index_add_(0, cell[hit], n[hit])

    # 2. pairs through a global token outside the window, in closed form per (global token, segment):
    #    global columns (q, g) for every query q, then global rows (g, k) for every non-global key k.
    #    Allowed ones are GLOBAL (future ones are already counted).
    g = is_global.nonzero().flatten()
    if g.numel():
        dmin, dmax = (0, left) if causal else (-left, left)          # q - k of window pairs
        s0, s1 = seg_edges[None, :-1], seg_edges[None, 1:]            # (1, ns) segment [s0, s1)
        per_pass = chunk or max(1, _CELLS // ns)
        for start in range(0, g.numel(), per_pass):
            gs = g[start:start + per_pass, None]                      # (n, 1)
            # columns: queries q in S; allowed: all (causal: q >= g); window: q - g in [dmin, dmax]
            ok = (s1 - torch.maximum(s0, gs)).clamp(min=0) if causal else (s1 - s0).expand(len(gs), -1)
            win = _multiples(torch.maximum(s0, gs + dmin) - gs, torch.minimum(s1 - 1, gs + dmax) - gs, d)
            _add_global(flat, in_random, ok - win, seg_block[None, :] * nb + bq[gs], nb,
                        None if bs is None else rand[seg_edges[:-1] // bs][:, gs[:, 0] // bs].T)
            # rows: keys k in S; allowed: all (causal: k <= g); window: g - k in [dmin, dmax]
            ok = (torch.minimum(s1, gs + 1) - s0).clamp(min=0) if causal else (s1 - s0).expand(len(gs), -1)
            win = _multiples(torch.maximum(s0, gs - dmax) - gs, torch.minimum(s1 - 1, gs - dmin) - gs, d)
            # less the global keys (their pairs are in the columns): global keys allowed, not window
            kq, kk = torch.broadcast_tensors(gs, g[None, :])
            constraint = rule.constraint()
            g_ok = rule.evaluate(constraint, kq, kk) if constraint else torch.ones_like(kq, dtype=torch.bool)
            g_local = rule.evaluate(parts["window"], kq, kk)
            glob_keys = torch.zeros(len(gs), ns, dtype=torch.int64)
            glob_keys.scatter_add_(1, seg_of[kk], (g_ok & ~g_local).long())
            _add_global(flat, in_random, ok - win - glob_keys, bq[gs] * nb + seg_block[None, :], nb,
                        None if bs is None else rand[gs[:, 0] // bs][:, seg_edges[:-1] // bs])

    # 3. random-block pairs: all pairs of the chosen (query block, key block) rectangles, pooled with
    #    one matrix product, less those already counted as window or global pairs. (Random key blocks
    #    are never in the future: under causal they are blocks before the query's neighbour.)
    if bs is not None:
        nr = rand.shape[0]
        bb = torch.arange(nr)
        overlap = (torch.minimum((bb[:, None] + 1) * bs, e[None, 1:]) - torch.maximum(bb[:, None] * bs, e[None, :-1]))
        overlap = overlap.clamp(min=0).double()                     # (nr, nb) positions of BigBird block in block
        pairs = overlap.T @ rand.double() @ overlap                  # exact: integers < 2**53
        counts[RANDOM] = pairs.round().long() - in_random.view(nb, nb)

    # 4. everything else is blocked (outside the window, no global token, no random block).
    counts[BLOCKED] = total - counts[WINDOW] - counts[GLOBAL] - counts[RANDOM] - counts[FUTURE]
    return counts


def _grid_counts(rule, e: torch.Tensor, bq: torch.Tensor, nb: int, chunk: int | None) -> torch.Tensor:
    """Reason counts ``(len(REASONS), nb, nb)`` from :func:`attnviz.patterns.reason_grid` on blocks
    of query rows (layers with mask parts, which bring no closed form for the counts)."""
    L = rule.length
    k = torch.arange(L)
    counts = torch.zeros(len(REASONS) * nb * nb, dtype=torch.int64)
    rows_per_pass = chunk or max(1, _CELLS // L)
    for start in range(0, L, rows_per_pass):
        q = torch.arange(start, min(start + rows_per_pass, L))
        codes = reason_grid(rule, q[:, None], k[None, :]).long()
        counts += torch.bincount(((codes * nb + bq[q, None]) * nb + bq[None, :]).reshape(-1),
                                 minlength=len(REASONS) * nb * nb)
    return counts.view(len(REASONS), nb, nb)


def _zoo_counts(rule, e: torch.Tensor, bq: torch.Tensor, nb: int, chunk: int | None) -> torch.Tensor:
    """Reason counts ``(len(REASONS), nb, nb)`` of a layer with a prefix, sinks, chunks or documents.

    Keys are cut into segments at the block edges, the document edges, ``P``, ``S`` and the BigBird
    block edges, so every segment lies in one block, one document, inside or outside the prefix and
    the sinks, and in one random block. For every (query, segment) the counts follow in closed form
    from interval lengths, prefix sums of the global positions and arithmetic progressions (the
    dilated window, kept in the query's chunk): O(L · segments) work, never an ``(L, L)`` grid.
    Priorities are :func:`attnviz.mask_reasons`' (window, global, sink, random, prefix; other
    document, future, outside the chunk, outside the window)."""
    L = rule.length
    cuts = [e, torch.tensor([0, min(rule.prefix, L), rule.sink_count, L])]
    if rule.document is not None:
        cuts.append(torch.bincount(rule.document).cumsum(0))
    if rule.random is not None:
        cuts.append(torch.arange(0, L, rule.block_size))
    seg = torch.unique(torch.cat(cuts))
    seg = seg[seg <= L]
    a, b = seg[:-1], seg[1:] - 1                                       # (ns,) segment [a, b]
    ns = len(a)
    seg_block = bq[a]
    is_global = rule.is_global
    gpre = torch.cat([torch.zeros(1, dtype=torch.int64), is_global.to(torch.int64).cumsum(0)])
    if rule.window is None:
        d, left, right = 1, L, (0 if rule.causal else L)
    else:
        d = rule.dilation
        left, right = rule.span
    m = -(-L // d)
    padded = torch.zeros(m * d, dtype=torch.int64)
    padded[:L] = is_global.to(torch.int64)
    residues = torch.cat([torch.zeros(1, d, dtype=torch.int64), padded.view(m, d).cumsum(0)])

    def globals_in(lo, hi):                                             # global positions in [lo, hi]
        return torch.where(hi >= lo, gpre[(hi + 1).clamp(min=0, max=L)] - gpre[lo.clamp(max=L)], 0)

    def progression(q, lo, hi):    # keys k ≡ q (mod d) in [lo, hi]: how many, how many global
        c = q % d
        first = -torch.div(c - lo, d, rounding_mode="floor")
        last = torch.maximum(torch.div(hi - c, d, rounding_mode="floor"), first - 1)
        first, last = first.clamp(max=m), last.clamp(max=m - 1)
        return (last + 1 - first).clamp(min=0), (residues[last + 1, c] - residues[first, c]).clamp(min=0)

    counts = torch.zeros(len(REASONS) * nb * nb, dtype=torch.int64)
    A, B = a[None, :], b[None, :]
    n = B - A + 1
    rows_per_pass = chunk or max(1, _CELLS // ns)
    for start in range(0, L, rows_per_pass):
        q = torch.arange(start, min(start + rows_per_pass, L))
        qc = q[:, None]
        ok_hi = torch.minimum(B, qc) if rule.causal else B.expand(len(q), -1)
        n_ok = (ok_hi - A + 1).clamp(min=0)
        n_fut = n - n_ok
        w_lo, w_hi = (qc - left).clamp(min=0), (qc + right).clamp(max=L - 1)
        if rule.chunk is not None:
            c0 = qc - qc % rule.chunk
            w_lo, w_hi = torch.maximum(w_lo, c0), torch.minimum(w_hi, c0 + rule.chunk - 1)
        n_win, g_win = progression(qc, torch.maximum(A, w_lo), torch.minimum(ok_hi, w_hi))
        g_ok = globals_in(A.expand_as(ok_hi), ok_hi)
        q_global = is_global[qc]
        sink_seg = (A < rule.sink_count).expand_as(n_ok)
        glob = torch.where(q_global, n_ok - n_win, g_ok - g_win)
        sink = torch.where(q_global | ~sink_seg, 0, n_ok - g_ok - n_win + g_win)
        rest = n_ok - n_win - glob - sink
        if rule.chunk is not None:   # the part of the rest inside the query's chunk is outside the window
            s_lo, s_hi = torch.maximum(A, c0), torch.minimum(ok_hi, c0 + rule.chunk - 1)
            n_same = (s_hi - s_lo + 1).clamp(min=0)
            rest_same = torch.where(q_global | sink_seg, 0, n_same - n_win - globals_in(s_lo, s_hi) + g_win)
        else:
            rest_same = rest
        rand = torch.zeros_like(rest)
        if rule.random is not None:
            hit = rule.random[qc // rule.block_size, A // rule.block_size]
            rand = torch.where(hit, rest, 0)
            rest, rest_same = torch.where(hit, 0, rest), torch.where(hit, 0, rest_same)
        pre = torch.zeros_like(rest)
        if rule.prefix:
            inside = (qc < rule.prefix) & (A < rule.prefix)
            pre = torch.where(inside, rest + n_fut, 0)
            rest, rest_same, n_fut = (torch.where(inside, 0, x) for x in (rest, rest_same, n_fut))
        by_code = {WINDOW: n_win, GLOBAL: glob, SINK: sink, RANDOM: rand, PREFIX: pre, FUTURE: n_fut,
                   BLOCKED: rest_same, OUTSIDE_CHUNK: rest - rest_same}
        if rule.document is not None:
            other = rule.document[qc] != rule.document[A]
            by_code = {code: torch.where(other, 0, x) for code, x in by_code.items()}
            by_code[OTHER_DOCUMENT] = torch.where(other, n, 0)
        cell = (bq[qc] * nb + seg_block[None, :]).expand(len(q), ns)
        for code, x in by_code.items():
            counts.index_add_(0, (code * nb * nb + cell).reshape(-1), x.expand(len(q), ns).reshape(-1))
    return counts.view(len(REASONS), nb, nb)


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
    return PooledSpread(edges=tuple(e.tolist()), fraction=(hits / sizes).float(),
                        first_min=first_min, first_max=first_max, never=never)
