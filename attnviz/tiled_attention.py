"""Exact attention computed tile by tile on the pattern's non-empty tiles, in ``O(L · w)`` memory.

A windowed pattern allows ``O(L · w)`` pairs, but eager attention materialises ``(heads, L, L)``
scores and probabilities for every layer (13 GB per layer at 16k tokens): a laptop cannot look at
the attention of the very inputs a long-context model is for. The pattern already knows which
``block × block`` tiles hold an allowed pair (:func:`attnviz.blockmask.block_tables`). For each
query tile this module gathers the keys of its non-empty tiles, computes the scores
``q · k · scale`` there, masks the blocked pairs, takes each row's log-sum-exp and gives the exact
probabilities ``exp(s - lse)`` and the output ``p @ v``. At most ``max_keys`` keys are held per
query tile at once (a global row that sees every key is done in chunks: one pass for the
log-sum-exp, one for the probabilities), so the working memory is ``heads · block · max_keys``
floats, whatever ``L`` is.

The probabilities of every tile can be handed to a callback (``on_tile``) that reduces them on the
spot (pooled blocks, selected rows): :func:`attnviz.capture_attention` builds its maps this way
without ever holding a layer's ``(heads, L, L)``.

Shapes: ``query`` ``(B, H, L, D)``, ``key`` / ``value`` ``(B, Hkv, L, D)`` with ``H % Hkv == 0``
(grouped-query attention repeats each key head ``H / Hkv`` times), as transformers' attention
functions receive them.
"""

from __future__ import annotations

from typing import Callable

import torch

#: ``on_tile(batch_row, query_positions (tq,), key_positions (nk,), probs (H, tq, nk) float32)``.
TileSink = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
#: ``pair_allowed(batch_row, q_idx (tq, 1), kv_idx (1, nk)) -> bool (tq, nk)``.
PairRule = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def _key_positions(tiles: torch.Tensor, block: int, length: int) -> torch.Tensor:
    """long ``(nk,)``: every position of the key tiles ``tiles`` (ascending tile indices), cut at ``length``."""
    pos = (tiles[:, None] * block + torch.arange(block, device=tiles.device)[None, :]).flatten()
    return pos[pos < length]


def tiled_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *, scale: float,
                    nonempty: torch.Tensor, pair_allowed: PairRule, block_size: int,
                    max_keys: int = 4096, on_tile: TileSink | None = None, rows: range | None = None) -> torch.Tensor:
    """Attention output from the non-empty tiles only, exact (float32 softmax, as eager attention).

    Args:
        query: ``(B, H, L, D)``; key, value: ``(B, Hkv, L, D)``.
        scale: multiplies ``q · k`` (``D ** -0.5`` for most models).
        nonempty: bool ``(nt, nt)`` or ``(B, nt, nt)``, ``nt = ceil(L / block_size)``: tiles that may
            hold an allowed pair (a superset is fine, it only costs time; a tile left out is never read).
        pair_allowed: the exact rule inside a tile, ``(b, q (tq, 1), k (1, nk)) -> bool (tq, nk)``.
        block_size: tile side of ``nonempty``.
        max_keys: keys held per query tile at once (rounded down to whole tiles, at least one).
        on_tile: called with every computed block of probabilities (see :data:`TileSink`).
        rows: only these query tiles' rows are computed (default all); the others stay zero.

    Returns:
        ``(B, L, H, D)`` in ``query``'s dtype (the layout attention functions return). A query whose
        allowed keys are all blocked gets zeros (as FlexAttention; eager would give a uniform row).
    """
    B, H, L, D = query.shape
    rep = H // key.shape[1]
    if nonempty.dim() == 2:
        nonempty = nonempty.expand(B, -1, -1)
    nt = nonempty.shape[-1]
    if nonempty.shape[-2:] != (-(-L // block_size),) * 2:
        raise ValueError(f"nonempty tiles {tuple(nonempty.shape)} do not cover L={L} in blocks of {block_size}")
    chunk_tiles = max(1, max_keys // block_size)
    out = torch.zeros(B, H, L, D, dtype=torch.float32, device=query.device)
    device = query.device
    for b in range(B):
        tables = nonempty[b].to(device)
        for qt in range(nt) if rows is None else rows:
            q_pos = torch.arange(qt * block_size, min(L, (qt + 1) * block_size), device=device)
            tiles = tables[qt].nonzero().flatten()
            if len(tiles) == 0:
                continue
            q = query[b, :, q_pos].to(torch.float32) * scale                    # (H, tq, D)
            chunks = [_key_positions(tiles[i:i + chunk_tiles], block_size, L) for i in range(0, len(tiles), chunk_tiles)]

            def scores(k_pos: torch.Tensor) -> torch.Tensor:
                k = key[b, :, k_pos].to(torch.float32)
                if rep > 1:
                    k = k.repeat_interleave(rep, 0)
                s = q @ k.transpose(-1, -2)                                        # (H, tq, nk)
                ok = pair_allowed(b, q_pos[:, None], k_pos[None, :])
                return s.masked_fill_(~ok, float("-inf"))

            if len(chunks) == 1:
                s = scores(chunks[0])
                lse = torch.logsumexp(s, -1, keepdim=True)
                cached = [s]
            else:
                lse = torch.full((H, len(q_pos), 1), float("-inf"), device=device)
                for k_pos in chunks:
                    lse = torch.logaddexp(lse, torch.logsumexp(scores(k_pos), -1, keepdim=True))
                cached = None
            safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))   # fully blocked rows: p = 0
            acc = out[b, :, q_pos]
            for i, k_pos in enumerate(chunks):
                s = cached[i] if cached is not None else scores(k_pos)
                p = torch.exp(s - safe)                                            # exp(-inf) = 0 where blocked
                v = value[b, :, k_pos].to(torch.float32)
                if rep > 1:
                    v = v.repeat_interleave(rep, 0)
                acc = acc + p @ v
                if on_tile is not None:
                    on_tile(b, q_pos, k_pos, p)
            out[b, :, q_pos] = acc
    return out.to(query.dtype).transpose(1, 2).contiguous()
