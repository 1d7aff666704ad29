"""Layer-typed windows: Gemma 2 / Gemma 3, gpt-oss and ModernBERT, whose ``layer_types`` name each
layer ``"sliding_attention"`` or ``"full_attention"``.

gpt-oss alternates causal sliding and full layers like Gemma 2; its ``sinks`` are a learned logit
per head that joins every row's softmax (rows sum to less than 1), not positions: the mask is the
same, and no token is kept the way a StreamingLLM sink (attnviz ``sinks=S``) keeps it.

Gemma 2/3: ``layer_types`` + ``sliding_window``, causal; a per-layer tuple with ``None`` for full
layers. Bidirectional Gemma3 (``use_bidirectional_attention``) stores ``sliding_window = w // 2 + 1``
and uses ``|q-k| < sliding_window``: window ``w``. ModernBERT: ``layer_types`` + ``local_attention``
(total width, ``|q-k| <= local_attention//2``), bidirectional. Gemma3 and ModernBERT pick each
layer's rotary base by its type, so ``layer_types`` cannot change on loaded weights.
"""

from __future__ import annotations

from ...patterns import AttentionPattern
from ..anatomy import is_causal
from ..finding import Finding
from .common import (NativeArgs, apply_layer_types, collapse, layer_types_for, refuse, refuse_unread_layouts,
                     set_config, sliding_pattern, with_updates)

MODEL_TYPES = ("gemma2", "gemma3_text", "gpt_oss", "modernbert")
SETTABLE = {"gemma2": {"sliding_window", "layer_types"}, "gemma3_text": {"sliding_window", "layer_types"},
            "gpt_oss": {"sliding_window", "layer_types"}, "modernbert": {"local_attention", "layer_types"}}
GLOBAL_TOKENS = False
#: families whose rotary base depends on a layer's type: layer_types cannot change on loaded weights.
ROPE_PER_LAYER_TYPE = ("gemma3_text", "modernbert")


def read_pattern(model_or_config, cfg, layout, *, global_attention_mask, training, known) -> AttentionPattern:
    if cfg.model_type == "modernbert":
        refuse_unread_layouts(cfg, known)
        w = 2 * (cfg.local_attention // 2)
        return AttentionPattern(window=collapse([w if t == "sliding_attention" else None for t in cfg.layer_types]))
    return sliding_pattern(cfg, known, bidirectional_ok=True)


def translate(pattern: AttentionPattern, model_or_config, cfg, layout, n: int, *, known) -> NativeArgs:
    family = cfg.model_type
    refuse(pattern, family, causal=is_causal(cfg))
    types, w = layer_types_for(pattern, n, family)
    if family == "modernbert":
        config = {"layer_types": types, "local_attention": w if w is not None else cfg.local_attention}
    elif family == "gemma3_text" and not is_causal(cfg):
        config = {"layer_types": types, "sliding_window": w // 2 + 1 if w is not None else cfg.sliding_window}
    else:
        config = {"layer_types": types, "sliding_window": w}
    new = with_updates(cfg, config)
    return NativeArgs(family, config, {}, read_pattern(new, new, None, global_attention_mask=None, training=None,
                                                       known=known), ())


def apply(model, cfg, updates) -> dict:
    family = cfg.model_type
    if family in ROPE_PER_LAYER_TYPE and "layer_types" in updates and list(updates["layer_types"]) != list(cfg.layer_types):
        raise ValueError(f"{family} picks each layer's rotary base by its layer type, so layer_types cannot change on "
                         f"loaded weights without changing positions; build the model with "
                         f"from_pretrained(name, **native.config)")
    previous = set_config(cfg, updates)
    apply_layer_types(model, cfg, family)
    return previous


def findings(model, layout, gmask) -> tuple[list[Finding], object]:
    cfg = model.config
    sliding = [i for i, t in enumerate(cfg.layer_types) if t == "sliding_attention"]
    if cfg.model_type != "gpt_oss" or not sliding or not layout.prompt_positions:
        return [], gmask
    return [Finding(
        "learned-sinks",
        f"gpt-oss's attention sinks are a learned logit per head, not positions: no token is kept as a sink, so in "
        f"its sliding layers {sliding} a query sees the prompt only within sliding_window={cfg.sliding_window} "
        f"positions after it; farther queries get it only through the full layers.",
        "place the prompt within the window of the readout, or rely on the full layers; to study token sinks use "
        "with_pattern(model, AttentionPattern(window=W, causal=True, sinks=S)) with the prompt inside the first S.")], gmask


def padded_length(model_or_config, length: int) -> int:
    return length
