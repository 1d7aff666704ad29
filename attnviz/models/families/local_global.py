"""Local and global layers: GPT-Neo (``attention_types`` + ``window_size``).

GPT-Neo names every layer ``"global"`` (full causal attention) or ``"local"``: a causal window of
``window_size`` W, built as ``tril(ones) ^ tril(ones, -W)`` (``0 <= q - k < W``) = attnviz
``AttentionPattern(window=W, causal=True)``. ``attention_types`` is run-length coded
(``[[["global", "local"], 12]]``: 24 alternating layers) and expanded into
``config.attention_layers``; :func:`read_pattern` reads the expansion, ``None`` for global layers.
GPT-Neo runs its own attention (not transformers' ``AttentionInterface``), and each attention
module builds its mask as a buffer when it is constructed: :func:`apply` rebuilds those buffers on
loaded weights (a layer's type changes nothing else in it).
"""

from __future__ import annotations

import torch

from ...patterns import AttentionPattern
from ..anatomy import layer_blocks
from ..finding import Finding
from .common import NativeArgs, collapse, refuse, set_config, with_updates

MODEL_TYPES = ("gpt_neo",)
SETTABLE = {"gpt_neo": {"attention_types", "window_size"}}
GLOBAL_TOKENS = False
_TYPES = {"global", "local"}


def _layer_types(cfg) -> list[str]:
    return [t for kinds, repeat in cfg.attention_types for _ in range(repeat) for t in kinds]


def read_pattern(model_or_config, cfg, layout, *, global_attention_mask, training, known) -> AttentionPattern:
    types = _layer_types(cfg)
    unknown = sorted(set(types) - _TYPES)
    if unknown:
        raise ValueError(f"{cfg.model_type} has layer types {unknown} that attnviz does not read; known: global, local")
    return AttentionPattern(causal=True, window=collapse([cfg.window_size if t == "local" else None for t in types]))


def translate(pattern: AttentionPattern, model_or_config, cfg, layout, n: int, *, known) -> NativeArgs:
    family = cfg.model_type
    refuse(pattern, family, causal=True)
    windows = pattern.window if isinstance(pattern.window, tuple) else (pattern.window,) * n
    sizes = sorted({w for w in windows if w is not None})
    if len(sizes) > 1:
        raise ValueError(f"{family} has one window_size for all its local layers; got windows {sizes} "
                         f"(use one value, None for global layers)")
    config = {"attention_types": [[["local" if w is not None else "global" for w in windows], 1]],
              "window_size": sizes[0] if sizes else cfg.window_size}
    new = with_updates(cfg, config)
    return NativeArgs(family, config, {}, read_pattern(new, new, None, global_attention_mask=None, training=None,
                                                       known=known), ())


def apply(model, cfg, updates) -> dict:
    """Set the config, then each loaded layer's type and its mask buffer (as GPT-Neo builds them)."""
    previous = set_config(cfg, updates)
    cfg.attention_layers = _layer_types(cfg)
    for block, kind in zip(layer_blocks(getattr(model, "transformer", model), cfg.num_layers), cfg.attention_layers):
        attention = block.attn.attention
        n = cfg.max_position_embeddings
        bias = torch.tril(torch.ones((n, n), dtype=torch.bool, device=attention.bias.device)).view(1, 1, n, n)
        if kind == "local":
            bias = torch.bitwise_xor(bias, torch.tril(bias, -cfg.window_size))
        block.attn.attention_type = attention.attention_type = kind
        attention.bias = bias
    return previous


def findings(model, layout, gmask) -> tuple[list[Finding], object]:
    return [], gmask


def padded_length(model_or_config, length: int) -> int:
    return length
