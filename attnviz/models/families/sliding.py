"""Causal sliding windows: Mistral (one ``sliding_window`` in every layer) and Qwen2
(``layer_types`` + ``sliding_window`` + ``use_sliding_window``).

Mistral: ``sliding_window`` W = attnviz causal ``window=W`` (``q - W < k <= q``); it ignores
``layer_types``. Qwen2: a per-layer tuple with ``None`` for full layers (causal). Other causal
decoders with one ``sliding_window`` read the same way (:func:`read_pattern`).
"""

from __future__ import annotations

from ...patterns import AttentionPattern
from ..anatomy import is_causal
from ..finding import Finding
from .common import (NativeArgs, apply_layer_types, layer_types_for, refuse, set_config, sliding_pattern,
                     uniform, with_updates)

MODEL_TYPES = ("mistral", "qwen2")
SETTABLE = {"mistral": {"sliding_window"}, "qwen2": {"sliding_window", "layer_types", "use_sliding_window"}}
GLOBAL_TOKENS = False


def read_pattern(model_or_config, cfg, layout, *, global_attention_mask, training, known) -> AttentionPattern:
    # Mistral applies sliding_window in every layer and ignores layer_types.
    return sliding_pattern(cfg, known, bidirectional_ok=cfg.model_type == "qwen2",
                           per_layer=cfg.model_type != "mistral")


def translate(pattern: AttentionPattern, model_or_config, cfg, layout, n: int, *, known) -> NativeArgs:
    family = cfg.model_type
    if family == "mistral":
        refuse(pattern, family, causal=True)
        config = {"sliding_window": uniform(pattern, "sliding_window", family)}
    else:
        refuse(pattern, family, causal=is_causal(cfg))
        types, w = layer_types_for(pattern, n, family)
        config = {"layer_types": types, "sliding_window": w, "use_sliding_window": w is not None}
    new = with_updates(cfg, config)
    return NativeArgs(family, config, {}, read_pattern(new, new, None, global_attention_mask=None, training=None,
                                                       known=known), ())


def apply(model, cfg, updates) -> dict:
    previous = set_config(cfg, updates)
    apply_layer_types(model, cfg, cfg.model_type)
    return previous


def findings(model, layout, gmask) -> tuple[list[Finding], object]:
    return [], gmask


def padded_length(model_or_config, length: int) -> int:
    return length
