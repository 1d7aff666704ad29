"""Longer learned position tables: the Longformer paper's recipe for running a 512-position model on 4096 tokens.

Beltagy et al. (2020, section 5) start Longformer from RoBERTa by *copying* its 512 learned
position embeddings again and again to fill 4096 positions: attention already knows how to read
a local neighbourhood from those vectors, and the copy keeps that structure at every offset. With
:func:`extend_positions` the embedded MiniLM (512 positions) runs on 4096 tokens, which is what a
sparse pattern needs to be worth looking at. Nothing is trained: outputs for inputs of up to the
old length stay bit-identical, and longer inputs are a starting point, not a tuned model.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class PositionTable(NamedTuple):
    """Where a model keeps its learned absolute positions.

    Attributes:
        owner: the module holding the table (e.g. ``BertEmbeddings``).
        name: attribute name of the ``nn.Embedding`` on ``owner`` (``position_embeddings`` / ``wpe``).
        offset: rows reserved before position 0 (RoBERTa / Longformer: ``padding_idx + 1`` = 2).
        size: positions the table holds (rows minus ``offset``).
    """

    owner: nn.Module
    name: str
    offset: int
    size: int

    @property
    def embedding(self) -> nn.Embedding:
        return getattr(self.owner, self.name)


def position_table(model: nn.Module) -> PositionTable | None:
    """The learned absolute position table of ``model`` (first one found), or None (e.g. rotary models)."""
    for module in model.modules():
        for name in ("position_embeddings", "wpe"):
            emb = getattr(module, name, None)
            if isinstance(emb, nn.Embedding):
                offset = 0 if emb.padding_idx is None else emb.padding_idx + 1
                return PositionTable(module, name, offset, emb.num_embeddings - offset)
    return None


def extend_positions(model: nn.Module, max_positions: int, *, tokenizer=None) -> nn.Module:
    """Copy a model's learned positions repeatedly until it has ``max_positions`` of them, in place.

    Position ``p`` gets the vector of position ``p % n`` (``n`` = the old number of positions); the
    first ``n`` rows, and RoBERTa-style reserved rows before them, are unchanged. Also updated:
    ``config.max_position_embeddings`` (rows of the new table), the ``position_ids`` and
    ``token_type_ids`` buffers that BERT-style embeddings slice per call, BigBird's cached
    ``max_seqlen``, and ``tokenizer.model_max_length`` when a tokenizer is given.

    Args:
        model: a model with a learned absolute position table (BERT, RoBERTa, Longformer, BigBird, GPT-2, ...).
        max_positions: positions wanted, ``>=`` the current number (e.g. 4096).
        tokenizer: optional; its ``model_max_length`` becomes ``max_positions``.
    Returns:
        ``model`` (changed in place), for chaining.
    Raises:
        ValueError: the model has no learned table (rotary positions: change ``rope_parameters``
            instead), or ``max_positions`` is smaller than the current table.
    """
    if isinstance(max_positions, bool) or not isinstance(max_positions, int):
        raise TypeError(f"max_positions must be an int, got {max_positions!r}")
    table = position_table(model)
    if table is None:
        raise ValueError(f"{type(model).__name__} has no learned position table (position_embeddings / wpe); "
                         f"rotary models take longer inputs through their rope settings instead")
    if max_positions < table.size:
        raise ValueError(f"max_positions={max_positions} is smaller than the current {table.size} positions; "
                         f"extend_positions only grows the table")
    if max_positions == table.size:
        if tokenizer is not None:
            tokenizer.model_max_length = max_positions
        return model

    old = table.embedding
    rows = table.offset + max_positions
    index = torch.cat([torch.arange(table.offset),
                       table.offset + torch.arange(max_positions) % table.size]).to(old.weight.device)
    new = nn.Embedding(rows, old.embedding_dim, padding_idx=old.padding_idx,
                       device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight[index])
    new.weight.requires_grad_(old.weight.requires_grad)
    setattr(table.owner, table.name, new)

    old_rows = old.num_embeddings
    for module in model.modules():
        for name in ("position_ids", "token_type_ids"):
            buf = getattr(module, name, None)
            if isinstance(buf, torch.Tensor) and buf.dim() == 2 and buf.shape[1] == old_rows and name in module._buffers:
                persistent = name not in module._non_persistent_buffers_set
                value = (torch.arange(rows, device=buf.device, dtype=buf.dtype) if name == "position_ids"
                         else torch.zeros(rows, device=buf.device, dtype=buf.dtype)).expand(1, -1)
                module.register_buffer(name, value, persistent=persistent)
        if getattr(module, "max_seqlen", None) == old_rows:  # BigBird block-sparse caches the table length
            module.max_seqlen = rows
    model.config.max_position_embeddings = rows
    if tokenizer is not None:
        tokenizer.model_max_length = max_positions
    return model
