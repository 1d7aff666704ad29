"""What the model families share: :class:`NativeArgs`, reading per-layer windows and global
tokens, refusing what a family cannot express, and setting config fields reversibly."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ...patterns import AttentionPattern, as_layout
from ...placement import SequenceLayout
from ..anatomy import is_causal


@dataclass(frozen=True, eq=False)
class NativeArgs:
    """A pattern in a model family's own terms.

    Attributes:
        family: the config's ``model_type``.
        config: config attribute values, e.g. ``{"attention_window": [4, 8]}``: pass them to
            ``from_pretrained(name, **config)`` / ``tiny_model(family, **config)`` (both set them as
            attributes after the config is built), or use :func:`apply_native`. They are not
            constructor arguments: for a bidirectional Gemma3 the stored ``sliding_window`` is
            ``w // 2 + 1`` while its constructor takes ``w``.
        inputs: forward keyword arguments, e.g. ``{"global_attention_mask": LongTensor (1, L)}``
            (the batch dimension broadcasts).
        pattern: the pattern the model will really apply with these settings (:func:`pattern_of`).
        notes: where the native model differs from the pattern asked for, in plain words.
    """

    family: str
    config: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    pattern: AttentionPattern = field(default_factory=AttentionPattern)
    notes: tuple[str, ...] = ()


def length_of(layout) -> int | None:
    return None if layout is None else as_layout(layout).length


def globals_from_mask(mask, length: int | None) -> tuple[int, ...]:
    """Positions where a Longformer-style ``global_attention_mask`` ``(L,)`` / ``(B, L)`` is set."""
    m = torch.as_tensor(mask)
    if m.dim() == 2:
        if not bool((m == m[:1]).all()):
            raise ValueError("global_attention_mask rows differ across the batch; pattern_of reads one sequence: "
                             "pass global_attention_mask[i]")
        m = m[0]
    if m.dim() != 1:
        raise ValueError(f"global_attention_mask must be (L,) or (B, L), got shape {tuple(torch.as_tensor(mask).shape)}")
    if length is not None and m.shape[0] != length:
        raise ValueError(
            f"global_attention_mask has {m.shape[0]} positions but the layout has {length}; with PEFT prompt "
            f"tuning the virtual tokens are missing from it (see attnviz.models.diagnose)")
    return tuple(int(i) for i in torch.nonzero(m != 0).flatten())


def split_prompt(globals_: tuple[int, ...], layout) -> tuple[tuple[int, ...], bool]:
    """(global_positions, global_prompt): prompt positions fold into ``global_prompt`` when all are global."""
    if isinstance(layout, SequenceLayout) and layout.prompt_positions and set(layout.prompt_positions) <= set(globals_):
        prompt = set(layout.prompt_positions)
        return tuple(p for p in globals_ if p not in prompt), True
    return globals_, False


def collapse(values: list) -> int | tuple | None:
    """Collapse per-layer values: one shared value becomes an int (or None), else a tuple."""
    return values[0] if len(set(values)) == 1 else tuple(values)


def uniform(pattern: AttentionPattern, what: str, family: str):
    """The pattern's one window for all layers, or a ValueError naming the per-layer windows."""
    w = pattern.window
    if isinstance(w, tuple):
        if len(set(w)) > 1:
            raise ValueError(f"{family} has one {what} for all layers; got per-layer windows {w}")
        w = w[0]
    return w


def refuse(pattern: AttentionPattern, family: str, *, causal: bool | None, globals_ok=False,
           random_ok=False, chunk_ok=False) -> None:
    """Raise a ValueError for the first setting ``family`` cannot express natively (the mask zoo's
    prefix-LM, sinks and packed documents have no config field in any family here; chunks only in
    Llama 4)."""
    if causal is not None and pattern.causal != causal:
        if pattern.causal:
            raise ValueError(f"{family} attention is bidirectional (window = total width, w//2 each side); got "
                             f"causal=True: causal windows are for decoders (Mistral's sliding_window)")
        raise ValueError(f"{family} is a decoder (causal attention); got causal=False: use causal=True "
                         f"(window = sliding_window, q - w < k <= q)")
    if pattern.dilation != 1 and (isinstance(pattern.dilation, int) or set(pattern.dilation) != {1}):
        raise ValueError(f"{family} has no dilated windows in transformers (Longformer's dilation needed the "
                         f"original custom CUDA kernel); got dilation={pattern.dilation!r}, use dilation=1")
    if pattern.random_blocks and not random_ok:
        raise ValueError(f"{family} has no random blocks (that is BigBird, model_type big_bird); "
                         f"got random_blocks={pattern.random_blocks}, use 0")
    if not globals_ok and (pattern.global_positions or pattern.global_prompt):
        raise ValueError(f"{family} has no global tokens; got global_positions={pattern.global_positions}, "
                         f"global_prompt={pattern.global_prompt}. Longformer/LED (global_attention_mask) have them; "
                         f"for other models use with_pattern (dense masks)")
    zoo = {"prefix_lm": (pattern.prefix_lm, None), "sinks": (pattern.sinks, 0), "documents": (pattern.documents, ()),
           "parts": (pattern.parts, ())}
    if not chunk_ok:
        zoo["chunk"] = (pattern.chunk, None)
    for name, (value, off) in zoo.items():
        if value != off and not (name == "chunk" and isinstance(value, tuple) and set(value) == {None}):
            where = ("Llama 4 (llama4_text, attention_chunk_size) has chunks natively" if name == "chunk" else
                     "no family here has mask parts (attnviz.masks) natively" if name == "parts" else
                     "no transformers model takes it as a config field (gpt-oss's 'sinks' are learned logits, "
                     "not positions)")
            raise ValueError(f"{family} cannot express {name}={value!r} natively: {where}; apply it with "
                             f"attnviz.with_pattern(model, pattern) (dense masks), or use {name}={off!r}")


def layer_types_for(pattern: AttentionPattern, n: int, family: str) -> tuple[list[str], int | None]:
    """``(layer_types, sliding_window)`` for ``n`` layers: full where the pattern's window is None."""
    windows = pattern.window if isinstance(pattern.window, tuple) else (pattern.window,) * n
    sliding = {w for w in windows if w is not None}
    if len(sliding) > 1:
        raise ValueError(f"{family} has one sliding_window for all its sliding layers; got windows {sorted(sliding)} "
                         f"(use one value, None for full layers)")
    return (["sliding_attention" if w is not None else "full_attention" for w in windows],
            sliding.pop() if sliding else None)


def refuse_unread_layouts(cfg, known: str) -> None:
    """Raise for attention layouts attnviz does not read (block-sparse or chunked)."""
    if getattr(cfg, "attention_type", None) == "block_sparse" or getattr(cfg, "attention_chunk_size", None):
        raise ValueError(f"{cfg.model_type} uses an attention layout attnviz does not read yet (block-sparse or "
                         f"chunked); supported native families: {known}")


def sliding_pattern(cfg, known: str, *, bidirectional_ok: bool, per_layer: bool = True) -> AttentionPattern:
    """The pattern of a model with a ``sliding_window`` (and, if ``per_layer``, ``layer_types``).

    Causal decoders with one sliding_window (Mistral and the many that share transformers'
    ``create_sliding_window_causal_mask``): ``q - W < k <= q`` in every layer; with ``layer_types``,
    the window in sliding layers and ``None`` in full ones.
    """
    family = cfg.model_type
    refuse_unread_layouts(cfg, known)
    causal = is_causal(cfg)
    sw = getattr(cfg, "sliding_window", None)
    if family == "gemma3_text" and not causal:
        sw = 2 * (cfg.sliding_window - 1)  # stored as w//2 + 1, used as |q - k| < sliding_window
    layer_types = list(getattr(cfg, "layer_types", None) or []) if per_layer else []
    sparse = sw is not None or any(t != "full_attention" for t in layer_types)
    if sparse and not causal and not bidirectional_ok:
        raise ValueError(f"attnviz does not read the sliding window of bidirectional {family} models yet; "
                         f"supported native families: {known}")
    if layer_types:
        unknown = sorted(set(layer_types) - {"sliding_attention", "full_attention"})
        if unknown:
            raise ValueError(f"{family} has layer types {unknown} that attnviz does not read; "
                             f"known: sliding_attention, full_attention")
        return AttentionPattern(window=collapse([sw if t == "sliding_attention" else None for t in layer_types]),
                                causal=causal)
    return AttentionPattern(window=None if sw is None else int(sw), causal=causal)


def with_updates(cfg, updates: Mapping[str, Any]):
    """A copy of ``cfg`` with ``updates`` set (for reading the pattern the updates give)."""
    new = copy.deepcopy(cfg)
    for key, value in updates.items():
        setattr(new, key, value)
    return new


def _copy(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def set_config(cfg, updates: Mapping[str, Any]) -> dict:
    """Set ``updates`` on ``cfg`` in place; return the previous values."""
    previous = {key: _copy(getattr(cfg, key)) for key in updates}
    for key, value in updates.items():
        setattr(cfg, key, _copy(value))
    return previous


def apply_layer_types(model, cfg, family: str) -> None:
    """Point each attention module's cached ``layer_type`` / ``sliding_window`` at the config's."""
    for m in model.modules():
        idx = getattr(m, "layer_idx", None)
        if idx is None or not hasattr(m, "sliding_window") or not hasattr(cfg, "layer_types"):
            continue
        if hasattr(m, "layer_type"):
            m.layer_type = cfg.layer_types[idx]
        sliding = cfg.layer_types[idx] == "sliding_attention"
        # ModernBERT keeps sliding_window + 1 (an exclusive bound for flash attention) on its modules.
        shift = 1 if family == "modernbert" else 0
        m.sliding_window = cfg.sliding_window + shift if sliding else None
