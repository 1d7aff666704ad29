"""FlexAttention ``BlockMask`` from the pattern's structure, without evaluating ``mask_mod`` over L².

``torch.nn.attention.flex_attention.create_block_mask`` finds out which ``block × block`` tiles of
the ``(L, L)`` grid hold allowed pairs by *evaluating* the ``mask_mod`` on every pair: int64
temporaries over the whole grid, ~250 MiB per layer at L = 4096, rebuilt on every forward. That
defeats the point of a windowed kernel whose own memory grows as ``L · w``.

Here the tiles are classified from the pattern's structure (bands, global rows and columns,
dilation, random blocks, causality) by :func:`attnviz.pooling.pooled_reasons`, which counts the
allowed pairs of every tile in closed form in ``O(L · (tiles in the band + globals) + random
pairs)``. A tile is

* **full** when every one of its ``block²`` cells is allowed: the kernel skips ``mask_mod`` there;
* **partial** when some are: the kernel evaluates ``mask_mod`` on that tile only;
* **empty** otherwise: the kernel never touches it.

exactly the split ``create_block_mask(mask_mod(...))`` computes (a last tile cut short by ``L``
counts as partial, as torch pads the grid with blocked cells; tested), so the ``BlockMask``
tables are identical. The tables themselves are ``(nt, nt)`` int32 with ``nt = ceil(L / block)``
(16 K entries at L = 16 384), which is what torch's ``BlockMask`` stores anyway.

Padding (a 2D ``key_padding`` mask per batch row) is folded in per tile: a key tile with no real
key is empty, one with only real keys keeps the pattern's classification, and the rest are partial.

Results are cached per ``(pattern, layout, layer, block, device)``: a training or inference loop
gets the same ``BlockMask`` object (and the same ``mask_mod`` closure, so ``torch.compile`` does
not recompile) on every forward.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .checks import is_int
from .patterns import AttentionPattern, as_layout, mask_mod
from .placement import SequenceLayout
from .pooling import pooled_reasons

__all__ = ["FLEX_BLOCK", "BlockTables", "block_tables", "block_mask", "key_tiles", "tables_to_block_mask"]

#: FlexAttention's default tile size (``create_block_mask``'s ``BLOCK_SIZE``).
FLEX_BLOCK = 128


@dataclass(frozen=True)
class BlockTables:
    """Which ``block × block`` tiles of one layer's ``(L, L)`` mask are full, partial or empty.

    Attributes:
        length: ``L``.
        block_size: tile side; ``nt = ceil(L / block_size)`` tiles per side.
        full: bool ``(nt, nt)``: every cell of the tile is allowed (a tile cut short by ``L`` is
            never full, as in ``create_block_mask``).
        partial: bool ``(nt, nt)``: some but not all cells are allowed. ``full & partial`` is empty.
    """

    length: int
    block_size: int
    full: torch.Tensor
    partial: torch.Tensor

    @property
    def num_tiles(self) -> int:
        return self.full.shape[-1]

    @property
    def nonempty(self) -> torch.Tensor:
        """bool ``(nt, nt)``: tiles holding at least one allowed pair."""
        return self.full | self.partial


def _check_block(block_size) -> int:
    if not is_int(block_size) or block_size < 1:
        raise ValueError(f"block_size must be an int >= 1 (FlexAttention uses {FLEX_BLOCK}), got {block_size!r}")
    return int(block_size)


def block_tables(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int,
                 block_size: int = FLEX_BLOCK) -> BlockTables:
    """Classify the tiles of ``layer``'s mask (see :class:`BlockTables`) from the pattern's structure.

    Args:
        pattern, layout, layer: as for :func:`attnviz.build_masks` (``layout`` a
            :class:`~attnviz.SequenceLayout` or a plain length ``L``).
        block_size: tile side, FlexAttention's ``BLOCK_SIZE`` (default 128).

    Work is that of :func:`attnviz.pooling.pooled_reasons` on tile edges, ``O(L · tiles per band
    row + globals · nt + random pairs)``; no ``(L, L)`` tensor is built. Cached (the returned
    tensors are shared: do not modify them).
    """
    if not isinstance(pattern, AttentionPattern):
        raise TypeError(f"pattern must be an attnviz.AttentionPattern, got {type(pattern).__name__}")
    layout = as_layout(layout)
    return _block_tables(pattern, layout, layer, _check_block(block_size))


@functools.lru_cache(maxsize=256)
def _block_tables(pattern: AttentionPattern, layout: SequenceLayout, layer: int, block: int) -> BlockTables:
    L = layout.length
    edges = tuple(range(0, L, block)) + (L,)
    pooled = pooled_reasons(pattern, layout, layer, edges)
    allowed = pooled.allowed                      # int64 (nt, nt), exact pair counts per tile
    full = allowed == block * block               # a short last tile can never reach block²
    partial = (allowed > 0) & ~full
    return BlockTables(length=L, block_size=block, full=full, partial=partial)


def _ordered(dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(num_blocks (..., nt), indices (..., nt, nt))`` int32 from a bool ``(..., nt, nt)`` table,
    ordered as torch's ``create_block_mask`` orders them (a stable descending sort)."""
    dense = dense.to(torch.int32)
    return (dense.sum(-1).to(torch.int32).contiguous(),
            torch.argsort(dense, dim=-1, descending=True, stable=True).to(torch.int32).contiguous())


def tables_to_block_mask(full: torch.Tensor, partial: torch.Tensor, mask_mod, length: int | tuple[int, int],
                         block_size: int = FLEX_BLOCK, device: torch.device | str | None = None):
    """A ``BlockMask`` ``(B, 1, Q, K)`` from tile tables: bool ``full`` / ``partial`` of shape
    ``(nt_q, nt_k)`` or ``(B, nt_q, nt_k)`` (disjoint), and the ``mask_mod`` the kernel evaluates on
    the partial tiles. ``length``: ``L`` or ``(Q, K)``. Built with ``BlockMask.from_kv_blocks``;
    ``O(B · nt_q · nt_k)``."""
    from torch.nn.attention.flex_attention import BlockMask

    if full.shape != partial.shape or full.dim() not in (2, 3):
        raise ValueError(f"full and partial must both be (nt, nt) or (B, nt, nt), got {tuple(full.shape)} "
                         f"and {tuple(partial.shape)}")
    if full.dim() == 2:
        full, partial = full[None], partial[None]
    full, partial = full[:, None].to(device), partial[:, None].to(device)   # (B, 1, nt, nt)
    kv_num, kv_idx = _ordered(partial)
    full_num, full_idx = _ordered(full)
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block_size,
                                    mask_mod=mask_mod,
                                    seq_lengths=tuple(length) if isinstance(length, tuple) else (length, length))


def key_tiles(key_padding: torch.Tensor, block_size: int = FLEX_BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """From a bool ``(B, L)`` key mask (True = a real key): bool ``(B, nt)`` tiles of only real keys
    (and complete, ``block_size`` long) and bool ``(B, nt)`` tiles with at least one real key."""
    B, L = key_padding.shape
    nt = -(-L // block_size)
    padded = torch.zeros(B, nt * block_size, dtype=torch.int32, device=key_padding.device)
    padded[:, :L] = key_padding.to(torch.int32)
    count = padded.view(B, nt, block_size).sum(-1)
    return count == block_size, count > 0


def block_mask(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int, *,
               key_padding: torch.Tensor | None = None, block_size: int = FLEX_BLOCK,
               device: torch.device | str | None = None):
    """FlexAttention ``BlockMask`` of ``layer``, built from the pattern's structure.

    Args:
        pattern, layout, layer: as for :func:`attnviz.build_masks`.
        key_padding: optional bool ``(B, L)``, True at real keys (a tokenizer's ``attention_mask``);
            padded keys are blocked for every query, as Hugging Face models do.
        block_size: FlexAttention tile side (default 128).
        device: where the tables and the ``mask_mod``'s tensors live.

    Returns:
        ``torch.nn.attention.flex_attention.BlockMask`` of shape ``(B, 1, L, L)`` (``B = 1``
        without ``key_padding``) whose dense form equals ``build_masks(...)[layer]`` (AND the key
        mask), and whose tables equal ``create_block_mask(mask_mod(...))``'s. Without
        ``key_padding`` the result is cached: the same object for the same arguments.
    """
    if not isinstance(pattern, AttentionPattern):
        raise TypeError(f"pattern must be an attnviz.AttentionPattern, got {type(pattern).__name__}")
    layout = as_layout(layout)
    block = _check_block(block_size)
    if key_padding is None:
        return _cached_block_mask(pattern, layout, layer, block, str(torch.device(device or "cpu")))
    if not isinstance(key_padding, torch.Tensor) or key_padding.dim() != 2 or key_padding.shape[1] != layout.length:
        shape = tuple(key_padding.shape) if isinstance(key_padding, torch.Tensor) else type(key_padding).__name__
        raise ValueError(f"key_padding must be a bool tensor (B, {layout.length}) (True = real key), got {shape}")
    # The pattern's part is built once per (layer, length, device) and cached; only the padding
    # (which changes with every batch) is ANDed in here, on the tile tables.
    full_tables, nonempty = _device_tables(pattern, layout, layer, block, str(torch.device(device or "cpu")))
    pad = key_padding.to(device=device, dtype=torch.bool)
    keys_full, keys_any = key_tiles(pad, block)
    full = full_tables[None] & keys_full[:, None, :]
    partial = nonempty[None] & keys_any[:, None, :] & ~full
    pattern_mod = _cached_block_mask(pattern, layout, layer, block, str(torch.device(device or "cpu"))).mask_mod

    def attnviz_padded_mask(b, h, q_idx, kv_idx):
        return pattern_mod(b, h, q_idx, kv_idx) & pad[b, kv_idx]

    return tables_to_block_mask(full, partial, attnviz_padded_mask, layout.length, block, device)


@functools.lru_cache(maxsize=128)
def _cached_block_mask(pattern, layout, layer, block, device):
    tables = block_tables(pattern, layout, layer, block)
    return tables_to_block_mask(tables.full, tables.partial, mask_mod(pattern, layout, layer, device=device),
                                layout.length, block, device)


@functools.lru_cache(maxsize=128)
def _device_tables(pattern, layout, layer, block, device):
    """``(full, nonempty)`` bool ``(nt, nt)`` tables of the layer, on ``device`` (cached)."""
    tables = block_tables(pattern, layout, layer, block)
    return tables.full.to(device), tables.nonempty.to(device)
