"""Structural reach: how far information from some source positions can travel, layer by layer.

A token's hidden state after layer ``l`` depends on its own state before the layer (residual
stream) and on every key it may attend in layer ``l``. So if ``R_l`` is the set of positions that
carry information from the sources after ``l`` layers (``R_0`` = the sources),

    ``R_{l+1} = R_l  ∪  {q : masks[l, q, k] for some k in R_l}``.

This needs no model: it is a breadth-first search on the masks, and it is exactly where an
ablation of the sources can change hidden states (see ``attnviz.influence``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from .masks import ALLOW


@dataclass(frozen=True)
class Spread:
    """Result of :func:`spread`.

    Attributes:
        reached: bool ``(layers + 1, L)``; ``reached[l, t]``: token ``t`` carries information from
            the sources after ``l`` layers (row 0 is the sources themselves).
        first_layer: int64 ``(L,)``; the smallest ``l`` with ``reached[l, t]``, or ``-1`` if never.
    """

    reached: torch.Tensor
    first_layer: torch.Tensor

    @property
    def num_layers(self) -> int:
        return self.reached.shape[0] - 1

    def fraction_reached(self, layer: int | None = None) -> float:
        """Share of positions reached after ``layer`` layers (default: all layers)."""
        row = self.reached[-1 if layer is None else layer]
        return float(row.float().mean())

    def summary(self, readout: int | None = None) -> str:
        """One paragraph in words, e.g. for the CLI."""
        L, n = self.reached.shape[1], self.num_layers
        if readout is not None and not 0 <= readout < L:
            raise ValueError(f"readout position {readout} is outside [0, {L})")
        never = int((self.first_layer < 0).sum())
        last = L - 1
        fl = int(self.first_layer[last])
        parts = []
        parts.append(f"the prompt reaches token {last} at layer {fl}" if fl >= 0 else
                     f"the prompt never reaches token {last} within {n} layers")
        if readout is not None and readout != last:
            fr = int(self.first_layer[readout])
            parts.append(f"it reaches the readout token {readout} at layer {fr}" if fr >= 0 else
                         f"it never reaches the readout token {readout}")
        text = f"{'; '.join(parts)}; {100 * never / L:.0f} % of tokens ({never} of {L}) are never reached."
        if n:
            per_layer = ", ".join(f"{100 * self.fraction_reached(l):.0f} %" for l in range(1, n + 1))
            text += f" Share of tokens reached after layers 1..{n}: {per_layer}."
        return text


def _sources_mask(sources, L: int) -> torch.Tensor:
    if isinstance(sources, np.ndarray) or (
        isinstance(sources, (list, tuple)) and sources and all(isinstance(s, (bool, np.bool_)) for s in sources)
    ):
        sources = torch.as_tensor(np.asarray(sources))  # a numpy array, or a list of bools = a mask
    if isinstance(sources, torch.Tensor):
        if sources.dtype == torch.bool:
            if sources.shape != (L,):
                raise ValueError(f"a boolean sources mask must have shape ({L},), got {tuple(sources.shape)}")
            return sources.clone()
        if sources.dim() > 1:
            raise ValueError(f"sources must be 1-D positions or a bool ({L},) mask, got shape {tuple(sources.shape)}")
        if sources.is_floating_point() or sources.is_complex():
            raise TypeError(
                f"sources must be integer positions (1-D) or a bool ({L},) mask, got a "
                f"{sources.dtype} tensor of shape {tuple(sources.shape)}"
            )
        sources = sources.tolist()
    if isinstance(sources, (str, bytes)) or not isinstance(sources, Iterable):
        raise TypeError(f"sources must be a sequence of positions or a bool ({L},) mask, got {sources!r}")
    idx = list(sources)
    wrong = [s for s in idx if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer))]
    if wrong:
        raise TypeError(f"source positions must be ints in [0, {L}), got {wrong}")
    idx = [int(s) for s in idx]
    bad = [s for s in idx if not 0 <= s < L]
    if bad:
        raise ValueError(f"source positions {bad} are outside [0, {L})")
    m = torch.zeros(L, dtype=torch.bool)
    m[idx] = True
    return m


def spread(masks: torch.Tensor, sources: Iterable[int] | torch.Tensor) -> Spread:
    """Where information from ``sources`` can be after each layer.

    Args:
        masks: bool ``(layers, L, L)`` from :func:`attnviz.build_masks` (``[l, q, k]`` = q may attend k).
        sources: positions (e.g. ``layout.prompt_positions``) or a bool ``(L,)`` mask.
    Returns:
        :class:`Spread` with ``reached`` bool ``(layers + 1, L)`` and ``first_layer`` ``(L,)``.
    """
    if masks.dim() != 3 or masks.shape[1] != masks.shape[2]:
        raise ValueError(f"masks must be (layers, L, L), got shape {tuple(masks.shape)}")
    if masks.dtype != torch.bool:
        raise TypeError(f"masks must be torch.bool (True = may attend), got {masks.dtype}")
    layers, L, _ = masks.shape
    current = _sources_mask(sources, L).to(masks.device)
    rows = [current]
    for layer in range(layers):
        # q is reached if it was, or if any key it may attend was (float matvec: exact for 0/1).
        hits = masks[layer].to(torch.float32) @ current.to(torch.float32)
        current = current | (hits > 0)
        rows.append(current)
    reached = torch.stack(rows).cpu()
    return Spread(reached=reached, first_layer=first_layer_of(reached))


def first_layer_of(reached: torch.Tensor) -> torch.Tensor:
    """int64 ``(L,)``: index of the first True row per column of ``reached`` ``(layers+1, L)``, -1 if none."""
    any_ = reached.any(0)
    first = reached.to(torch.int8).argmax(0)
    return torch.where(any_, first, torch.full_like(first, -1)).to(torch.int64)


def _window_hits(reached: np.ndarray, window: int | None, dilation: int, causal: bool,
                 lo_bound: np.ndarray | None = None, hi_bound: np.ndarray | None = None) -> np.ndarray:
    """bool ``(L,)``: queries with a reached key inside their (dilated) window, kept within the
    per-query key range ``[lo_bound[q], hi_bound[q]]`` where given (the query's chunk and document).
    O(L) via prefix sums over each residue class mod ``dilation``. (numpy: a few ops on L values per
    layer, where torch's per-op overhead would dominate.)"""
    L = reached.shape[0]
    q = np.arange(L)
    if window is None:
        d, left, right = 1, L, (0 if causal else L)
    else:
        d = dilation
        left, right = ((window - 1) * d, 0) if causal else ((window // 2) * d, (window // 2) * d)
    lo, hi = np.maximum(q - left, 0), np.minimum(q + right, L - 1)
    if lo_bound is not None:
        lo, hi = np.maximum(lo, lo_bound), np.minimum(hi, hi_bound)
    m = -(-L // d)
    padded = np.zeros(m * d, dtype=np.int32)
    padded[:L] = reached
    cs = np.zeros((m + 1, d), dtype=np.int32)
    np.cumsum(padded.reshape(m, d), axis=0, out=cs[1:])  # cs[j, c]: reached among c, c+d, .. (j terms)
    c = q % d
    first = -((c - lo) // d)                              # ceil((lo - c) / d): keys c + j·d with j >= first
    last = np.maximum((hi - c) // d, first - 1)
    return cs[last + 1, c] - cs[first, c] > 0


def _intervals(L: int, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """bool ``(L,)``: the union of ``[starts[i], stops[i])``."""
    marks = np.zeros(L + 1, dtype=np.int64)
    np.add.at(marks, starts, 1)
    np.add.at(marks, stops, -1)
    return np.cumsum(marks[:L]) > 0


@contextlib.contextmanager
def one_thread():
    """Run small tensor ops on one thread: the per-layer work of the structural views is too small
    to share, and on a busy 2-core laptop OpenMP threads waiting on each other made it 10-30x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def spread_pattern(pattern, layout, num_layers: int, sources=None) -> Spread:
    """:func:`spread` computed from the pattern's structure — bands (kept in their chunk), globals,
    sinks, random blocks, the prefix square and document boundaries — in
    O(layers · (L + blocks²)) time and O(L) memory, never building ``(L, L)`` masks. Mask parts
    (:mod:`attnviz.masks`) add their own closed form (``MaskPart.reach``) where they have one;
    otherwise that layer is evaluated from its mask function on (unreached query, reached key)
    pairs, in blocks of rows.

    Equal to ``spread(build_masks(pattern, layout, num_layers), sources)`` exactly (tested), so it
    serves long inputs (L = 16k and more) and interactive views.

    Args:
        pattern: :class:`attnviz.AttentionPattern`.
        layout: :class:`attnviz.SequenceLayout` or an int length.
        num_layers: model depth.
        sources: positions or bool ``(L,)``; default the layout's prompt positions.
    """
    from .patterns import as_layout

    layout = as_layout(layout)
    pattern.check_layers(num_layers)
    with one_thread():
        return _spread_pattern(pattern, layout, num_layers, sources)


def _part_reach(rule, current: np.ndarray) -> np.ndarray | None:
    """bool ``(L,)``: queries reached through the layer's mask parts by their closed forms, or None
    when one of them has none (or a ``restrict`` part / document boundary cuts their pairs)."""
    if rule.document is not None or any(extra.role != ALLOW for extra in rule.extra):
        return None
    out = np.zeros_like(current)
    for extra in rule.extra:
        hit = extra.part.reach(current, extra.layer, rule.causal)
        if hit is None:
            return None
        out |= hit
    return out


#: (query, key) cells evaluated per block of rows by :func:`rule_hits`.
_CELLS = 1 << 22


def rule_hits(rule, current: np.ndarray) -> np.ndarray:
    """bool ``(L,)``: ``current`` or a query that may attend a key of ``current`` under ``rule``
    (:class:`attnviz.patterns.LayerRule`), from its mask function on (unreached query, reached key)
    pairs, ``O(unreached · reached)`` evaluations in blocks of rows."""
    keys = torch.from_numpy(np.flatnonzero(current))
    queries = torch.from_numpy(np.flatnonzero(~current))
    out = current.copy()
    if not len(keys) or not len(queries):
        return out
    fn = rule.mask_fn()
    rows = max(1, _CELLS // len(keys))
    for start in range(0, len(queries), rows):
        q = queries[start:start + rows]
        hit = rule.evaluate(fn, q[:, None], keys[None, :]).any(1)
        out[q[hit].numpy()] = True
    return out


def _spread_pattern(pattern, layout, num_layers: int, sources) -> Spread:
    from .patterns import layer_rule

    L = layout.length
    current = _sources_mask(layout.prompt_positions if sources is None else sources, L).numpy()
    first = np.where(current, 0, -1).astype(np.int64)
    positions = np.arange(L)
    rows = [current]
    for layer in range(num_layers):
        rule = layer_rule(pattern, layout, layer)
        through_parts = _part_reach(rule, current) if rule.extra else None
        if rule.extra and through_parts is None:
            new = rule_hits(rule, current)
            first[new & ~current] = layer + 1
            current = new
            rows.append(current)
            continue
        is_global = rule.is_global.numpy()
        if rule.document is None:
            doc_start, doc_stop = np.zeros(L, dtype=np.int64), np.full(L, L, dtype=np.int64)
        else:
            sizes = np.bincount(rule.document.numpy())
            stops = np.cumsum(sizes)
            doc_start, doc_stop = np.repeat(stops - sizes, sizes), np.repeat(stops, sizes)
        lo, hi = doc_start, doc_stop - 1
        if rule.chunk is not None:
            chunk_start = positions - positions % rule.chunk
            lo, hi = np.maximum(lo, chunk_start), np.minimum(hi, chunk_start + rule.chunk - 1)
        new = current | _window_hits(current, rule.window, rule.dilation, rule.causal, lo, hi)
        # reached keys before each position within its document (inclusive), for global rows
        cum = np.concatenate(([0], np.cumsum(current)))
        # Global rows see every (earlier, if causal) key of their document; global columns and sinks
        # are seen by every (later) query of their document.
        g = np.flatnonzero(is_global)
        if g.size:
            upto = g + 1 if rule.causal else doc_stop[g]
            new[g[cum[upto] - cum[doc_start[g]] > 0]] = True
        columns = is_global.copy()
        columns[:rule.sink_count] = True
        hit = np.flatnonzero(columns & current)
        if hit.size:
            new |= _intervals(L, hit if rule.causal else doc_start[hit], doc_stop[hit])
        table = rule.random
        if table is not None:
            bs = rule.block_size
            nb = table.shape[0]
            docs = [(0, L)] if rule.document is None else list(zip(stops - sizes, stops))
            for a, b in docs:
                padded = np.zeros(nb * bs, dtype=bool)
                padded[a:b] = current[a:b]
                block_hit = padded.reshape(nb, bs).any(1)                   # (nb,)
                query_blocks = (table.numpy() & block_hit[None, :]).any(1)  # (nb,)
                new[a:b] |= np.repeat(query_blocks, bs)[a:b]
            # (random key blocks are all earlier blocks under causal, so no k <= q check is needed)
        if rule.prefix:   # the prefix square, within each document: all of it once any of it is reached
            starts = np.unique(doc_start[:rule.prefix])
            for a in starts:
                b = min(int(doc_stop[a]), rule.prefix)
                if current[a:b].any():
                    new[a:b] = True
        if through_parts is not None:
            new |= through_parts
        first[new & ~current] = layer + 1                               # = first_layer_of(reached)
        current = new
        rows.append(current)
    return Spread(reached=torch.from_numpy(np.stack(rows)), first_layer=torch.from_numpy(first))
