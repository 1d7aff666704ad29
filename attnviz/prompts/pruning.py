"""Reach-aware pruning: compute only the positions that can reach the readout.

A token's final state depends on its own state and on the keys it may attend, layer by layer. Run
that backwards from the readout token ``r`` (``[CLS]``): before the last layer ``r`` needs itself
and every key it may attend there; before the layer below, those tokens need theirs; and so on.
This is :func:`attnviz.spread` on the *transposed* masks in *reverse* layer order:

    ``N_layers = {r}``,   ``N_l = N_{l+1} ∪ {k : masks[l, q, k] for some q in N_{l+1}}``.

Every position outside ``N_0`` provably cannot change the readout, so dropping it from the whole
computation (keeping the *original* position ids, and the masks' sub-block on the kept positions)
gives the readout's hidden state exactly as before. Under a window ``w`` with no global tokens the
kept set spans ``layers * w / 2`` positions on each side of the readout: for ``[CLS]`` at position
0 of 512 tokens, window 32 and 6 layers, 97 of 512 positions, and attention cost falls with the
square of that. With global tokens that can reach ``[CLS]``
(e.g. ``global_prompt``) everything can reach it in two layers, and nothing is dropped.

:func:`row_masks` runs a model with explicit per-row, per-layer boolean masks (the pruned
sub-blocks, or one layout per row); dense and sdpa only.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import replace

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import eager_mask

from ..models.anatomy import base_model, is_cross_attention
from ..models.interface import additive_mask, attention_function, check_supported, eager_function
from ..patterns import AttentionPattern, as_layout, build_masks
from ..placement import SequenceLayout
from ..spread import spread, spread_pattern

_names = itertools.count()


def _reversed(value):
    return tuple(reversed(value)) if isinstance(value, tuple) else value


def readout_reach(pattern: AttentionPattern, layout: SequenceLayout | int, num_layers: int,
                  readout: int | None = None) -> torch.Tensor:
    """bool ``(L,)``: positions whose input can change the final hidden state at ``readout``.

    Args:
        pattern, layout, num_layers: as for :func:`attnviz.build_masks`.
        readout: the position read by the head; default ``layout.readout_position`` ([CLS]).

    Bidirectional patterns without random blocks or sinks are symmetric (``masks[l]`` equals its
    transpose), so the backward spread is :func:`attnviz.spread_pattern` with the per-layer
    settings reversed: O(layers * L), no ``(L, L)`` masks. Otherwise the dense masks are
    transposed and run through :func:`attnviz.spread`.
    """
    layout = as_layout(layout)
    r = layout.readout_position if readout is None else int(readout)
    if not 0 <= r < layout.length:
        raise ValueError(f"readout position {r} is outside [0, {layout.length})")
    if not pattern.causal and not pattern.random_blocks and not pattern.sinks and not pattern.parts:
        # sinks are keys only, mask parts may be anything: not symmetric
        rev = replace(pattern, window=_reversed(pattern.window), dilation=_reversed(pattern.dilation),
                      chunk=_reversed(pattern.chunk))
        return spread_pattern(rev, layout, num_layers, sources=[r]).reached[-1]
    masks = build_masks(pattern, layout, num_layers)
    return spread(masks.flip(0).transpose(1, 2), [r]).reached[-1]


class _RowMasked:
    """An ``AttentionInterface`` function that applies ``self.masks`` (bool ``(layers, B, K, K)``)
    on top of the model's own (padding) mask; the dense / sdpa half of ``with_pattern``'s
    ``_run``, but with one mask per row."""

    def __init__(self, model, backend: str):
        if backend not in ("dense", "sdpa"):
            raise ValueError(f"per-row masks (pruning, one layout per row) run on backend 'dense' or 'sdpa', got {backend!r}")
        self.model = base_model(model)
        check_supported(self.model)
        self.backend = backend
        self.masks: torch.Tensor | None = None
        self._eager: dict = {}
        self.name = f"attnviz_rows_{backend}_{next(_names)}"

    def __call__(self, module, query, key, value, attention_mask, **kwargs):
        if is_cross_attention(module) or query.shape[-2] != key.shape[-2]:
            raise ValueError("per-row masks work on whole sequences of an encoder or decoder (no cross attention, no cache)")
        allowed = self.masks[module.layer_idx]                       # (B or 1, K, K)
        if allowed.shape[-1] != key.shape[-2]:
            raise ValueError(f"per-row masks are {allowed.shape[-1]} long, the input {key.shape[-2]}")
        mask = additive_mask(attention_mask, query.dtype)
        if mask is None:
            mask = query.new_zeros((allowed.shape[0], 1) + tuple(allowed.shape[1:]))
        mask = mask.masked_fill(~allowed[:, None], torch.finfo(mask.dtype).min)
        if self.backend == "sdpa":
            return sdpa_attention_forward(module, query, key, value, mask, **kwargs)
        if type(module) not in self._eager:
            self._eager[type(module)] = eager_function(module)
        return self._eager[type(module)](module, query, key, value, mask, **kwargs)


@contextmanager
def row_masks(model, masks: torch.Tensor, backend: str = "dense"):
    """Inside the block, every self-attention layer ``l`` of ``model`` also blocks where
    ``masks[l, b]`` is False for row ``b``.

    Args:
        model: a transformers model that dispatches through ``AttentionInterface`` (BERT, GPT-2, ...).
        masks: bool ``(layers, B, K, K)`` (``B`` may be 1 to broadcast), ``[l, b, q, k]`` = q may attend k.
        backend: ``"dense"`` (the model's eager attention) or ``"sdpa"``.
    """
    if masks.dim() != 4 or masks.dtype != torch.bool:
        raise ValueError(f"masks must be bool (layers, B, K, K), got {masks.dtype} {tuple(masks.shape)}")
    runner = _RowMasked(model, backend)
    runner.masks = masks
    with attention_function(runner.model, runner.name, runner, eager_mask):
        yield model
