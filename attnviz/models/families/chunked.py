"""Chunked attention: Llama 4 (``attention_chunk_size`` + ``layer_types``).

Llama 4 text models name each layer ``"chunked_attention"`` or ``"full_attention"`` (by default
the RoPE layers are chunked and every ``no_rope_layer_interval``-th, NoPE, layer is full). A
chunked layer is transformers' ``chunked_causal_mask_function``: causal and ``q // C == k // C``
with ``C = attention_chunk_size`` = attnviz ``AttentionPattern(causal=True, chunk=C)``; full layers
are plain causal. :func:`read_pattern` gives ``chunk`` per layer (``None`` for full layers; one
int when every layer is chunked). Chunks count from the first real token: with left padding the
model shifts them, attnviz's positions are absolute (no padding in a layout).
A layer's rotary choice (``no_rope_layers``) does not depend on its type, so ``layer_types`` and
``attention_chunk_size`` can change on loaded weights (the masks are built each forward).
"""

from __future__ import annotations

from ...patterns import AttentionPattern
from ..finding import Finding
from .common import NativeArgs, collapse, refuse, set_config, with_updates

MODEL_TYPES = ("llama4_text",)
SETTABLE = {"llama4_text": {"attention_chunk_size", "layer_types"}}
GLOBAL_TOKENS = False
_TYPES = {"chunked_attention", "full_attention"}


def read_pattern(model_or_config, cfg, layout, *, global_attention_mask, training, known) -> AttentionPattern:
    types = list(cfg.layer_types)
    unknown = sorted(set(types) - _TYPES)
    if unknown:
        raise ValueError(f"{cfg.model_type} has layer types {unknown} that attnviz does not read; "
                         f"known: {', '.join(sorted(_TYPES))}")
    size = cfg.attention_chunk_size
    if size is None and "chunked_attention" in types:
        raise ValueError(f"{cfg.model_type} has chunked_attention layers but attention_chunk_size=None "
                         f"(transformers refuses to build that mask); set attention_chunk_size")
    return AttentionPattern(causal=True, chunk=collapse([size if t == "chunked_attention" else None for t in types]))


def translate(pattern: AttentionPattern, model_or_config, cfg, layout, n: int, *, known) -> NativeArgs:
    family = cfg.model_type
    refuse(pattern, family, causal=True, chunk_ok=True)
    if pattern.window is not None and (not isinstance(pattern.window, tuple) or set(pattern.window) != {None}):
        raise ValueError(f"{family} has no sliding window: its local layers are chunks (attention_chunk_size); got "
                         f"window={pattern.window!r}. Use chunk=C (per layer, None for full layers) and window=None, "
                         f"or with_pattern (dense masks) for a window")
    chunks = pattern.chunk if isinstance(pattern.chunk, tuple) else (pattern.chunk,) * n
    sizes = sorted({c for c in chunks if c is not None})
    if len(sizes) > 1:
        raise ValueError(f"{family} has one attention_chunk_size for all its chunked layers; got chunks {sizes} "
                         f"(use one value, None for full layers)")
    config = {"layer_types": ["chunked_attention" if c is not None else "full_attention" for c in chunks],
              "attention_chunk_size": sizes[0] if sizes else cfg.attention_chunk_size}
    new = with_updates(cfg, config)
    return NativeArgs(family, config, {}, read_pattern(new, new, None, global_attention_mask=None, training=None,
                                                       known=known), ())


def apply(model, cfg, updates) -> dict:
    return set_config(cfg, updates)  # Llama 4 builds its masks from the config on every forward


def findings(model, layout, gmask) -> tuple[list[Finding], object]:
    return [], gmask


def padded_length(model_or_config, length: int) -> int:
    return length
