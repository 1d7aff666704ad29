"""Longformer and LED (encoder): a band per layer plus a ``global_attention_mask``.

``attention_window`` per layer = attnviz ``window`` (total width, ``|q-k| <= w//2``), even and
> 0; ``global_attention_mask`` (B, L), 1 = global. Inputs are padded to a multiple of
``max(attention_window)`` and every layer's window must divide that padded length. No dilation,
no random blocks, no causal window. LED: encoder only; its decoder is full causal attention with
no global tokens. Default global tokens: none, except ``LongformerForSequenceClassification``,
which makes position 0 global when no ``global_attention_mask`` is passed.
"""

from __future__ import annotations

import torch

from ...patterns import AttentionPattern
from ..anatomy import config_of, is_model, num_layers
from ..finding import Finding
from .common import NativeArgs, collapse, globals_from_mask, length_of, refuse, set_config, split_prompt

MODEL_TYPES = ("longformer", "led")
SETTABLE = {"longformer": {"attention_window"}, "led": {"attention_window"}}
#: the model has global tokens of its own (a reach finding suggests making the prompt global).
GLOBAL_TOKENS = True


def check_window(w, layer: int | None = None) -> int:
    """Raise unless ``w`` is a valid Longformer ``attention_window`` (even int > 0); return it."""
    where = "" if layer is None else f" (layer {layer})"
    if isinstance(w, bool) or not isinstance(w, int):
        raise TypeError(f"Longformer attention_window must be an even int > 0{where}, got {w!r}")
    if w <= 0:
        raise ValueError(f"window must be positive for Longformer{where}, got {w}; try 2 or more")
    if w % 2:
        raise ValueError(f"window must be even for Longformer{where}, got {w}; try {w - 1 if w > 1 else 2} or {w + 1}")
    return w


def windows(model_or_config) -> tuple[int, ...]:
    """Per-layer windows. For a model they are read from its attention modules, which keep the
    window they were built with (changing ``config.attention_window`` afterwards changes only the
    padding); for a config, from ``attention_window``."""
    if is_model(model_or_config):
        found = {m.layer_id: 2 * m.one_sided_attn_window_size for m in model_or_config.modules()
                 if hasattr(m, "one_sided_attn_window_size") and hasattr(m, "layer_id")}
        if found:
            return tuple(found[i] for i in sorted(found))
    cfg = config_of(model_or_config)
    n = num_layers(cfg)
    aw = cfg.attention_window
    ws = [aw] * n if isinstance(aw, int) else list(aw)
    if len(ws) != n:
        raise ValueError(f"attention_window has {len(ws)} entries for {n} layers; give one per layer")
    return tuple(check_window(w, i) for i, w in enumerate(ws))


def padded_length(model_or_config, length: int) -> int:
    """``L'``: Longformer/LED pad the input to a multiple of ``max(config.attention_window)``."""
    aw = config_of(model_or_config).attention_window
    w = aw if isinstance(aw, int) else max(aw)
    return -(-length // w) * w


def default_global_positions(model_or_config) -> tuple[int, ...]:
    name = type(model_or_config).__name__ if is_model(model_or_config) else ""
    if name == "LongformerForSequenceClassification":
        return (0,)
    if name in ("LongformerForQuestionAnswering", "LongformerForMultipleChoice"):
        raise ValueError(f"{name} makes the question tokens global from input_ids when no global_attention_mask is "
                         f"given; pass global_attention_mask= to pattern_of")
    return ()


def read_pattern(model_or_config, cfg, layout, *, global_attention_mask, training, known) -> AttentionPattern:
    globals_ = (globals_from_mask(global_attention_mask, length_of(layout)) if global_attention_mask is not None
                else default_global_positions(model_or_config))
    positions, prompt = split_prompt(globals_, layout)
    return AttentionPattern(window=collapse(list(windows(model_or_config))), global_positions=positions,
                            global_prompt=prompt)


def translate(pattern: AttentionPattern, model_or_config, cfg, layout, n: int, *, known) -> NativeArgs:
    family, length, notes = cfg.model_type, length_of(layout), []
    refuse(pattern, family, causal=False, globals_ok=True)
    ws = pattern.window if isinstance(pattern.window, tuple) else (pattern.window,) * n
    for i, w in enumerate(ws):
        if w is None:
            hint = f" (for this input, e.g. {2 * length}: window >= 2*(L-1) covers it)" if length else ""
            raise ValueError(f"{family} has a sliding window in every layer, layer {i} asks for full attention; "
                             f"use a window wider than the input{hint} or global tokens")
        check_window(w, i)
    widest = max(ws)
    bad = [w for w in ws if widest % w]
    if bad:
        raise ValueError(f"{family} pads the input to a multiple of its largest window ({widest}) and every "
                         f"layer's window must divide that length; windows {bad} do not divide {widest} "
                         f"(use windows that divide {widest}, or make the largest a multiple of all)")
    config = {"attention_window": list(ws)}
    inputs = {}
    if length is not None:
        g = pattern.global_mask(layout)
        inputs["global_attention_mask"] = g.to(torch.long)[None, :]
        globals_ = tuple(int(i) for i in g.nonzero().flatten())
        padded = -(-length // widest) * widest
        if padded != length:
            notes.append(f"{family} pads the {length} tokens to {padded} (a multiple of the largest window, "
                         f"{widest}); the {padded - length} pad tokens are computed and dropped")
    elif pattern.global_positions or pattern.global_prompt:
        raise ValueError("global tokens become a global_attention_mask of length L: pass layout=")
    else:
        globals_ = default_global_positions(model_or_config)
        if globals_:
            notes.append(f"{type(model_or_config).__name__} makes position 0 global when no global_attention_mask "
                         f"is passed; pass layout= to get an explicit mask")
    positions, prompt = split_prompt(globals_, layout)
    applied = AttentionPattern(window=collapse(list(ws)), global_positions=positions, global_prompt=prompt)
    return NativeArgs(family, config, inputs, applied, tuple(notes))


def apply(model, cfg, updates) -> dict:
    previous = set_config(cfg, updates)
    if "attention_window" in updates:
        ws = windows(cfg)
        for m in model.modules():
            if hasattr(m, "one_sided_attn_window_size") and hasattr(m, "layer_id"):
                m.one_sided_attn_window_size = ws[m.layer_id] // 2
    return previous


def findings(model, layout, gmask) -> tuple[list[Finding], object]:
    """Findings for one input, and the ``global_attention_mask`` to judge reach with (None where
    the given one would make the run fail)."""
    cfg = config_of(model)
    L = layout.length
    out = []
    if gmask is not None and torch.as_tensor(gmask).shape[-1] != L:
        G = torch.as_tensor(gmask).shape[-1]
        short = L - G
        out.append(Finding(
            "global-mask-length",
            f"global_attention_mask has {G} positions but the input has {L}"
            + (f" ({short} more: the {short} virtual tokens PEFT prepends to inputs_embeds and to attention_mask, "
               f"while it passes global_attention_mask through unchanged)" if short > 0 else "")
            + f"; {cfg.model_type} fails with 'The size of tensor a ({L}) must match "
              f"the size of tensor b ({G})' or, worse, marks the wrong tokens global.",
            f"give the mask one column per input token: prepend {max(short, 0)} columns "
            f"(torch.cat([torch.ones(B, {max(short, 0)}) to make the prompt global, or zeros, mask], dim=1)), or build "
            f"it with to_native(pattern, model, layout)."))
    if gmask is None and type(model).__name__ == "LongformerForSequenceClassification":
        first = 0 in layout.prompt_positions
        out.append(Finding(
            "default-global",
            "LongformerForSequenceClassification makes position 0 global when no global_attention_mask is passed"
            + (" — here position 0 is prompt token 0, not <s>" if first else "")
            + "; and it builds that mask from input_ids, so with inputs_embeds alone (as prompt tuning feeds it) it "
              "fails with TypeError: zeros_like() ... not NoneType.",
            "always pass global_attention_mask (to_native(pattern, model, layout).inputs)."))
    ws = windows(model)
    aw = cfg.attention_window
    conf = tuple([aw] * len(ws) if isinstance(aw, int) else aw)
    if conf != ws:
        out.append(Finding(
            "stale-windows",
            f"the layers use windows {list(ws)} but config.attention_window says {list(conf)}: the modules keep "
            f"the window they were built with, and only the padding follows the config.",
            "set both with apply_native(model, to_native(pattern, model, layout)), or rebuild the model."))
    padded = padded_length(cfg, L)
    if padded != L:
        widest = max(conf)
        out.append(Finding(
            "padding",
            f"{cfg.model_type} pads the {L} tokens to {padded} (a multiple of its largest window, {widest}); the "
            f"{padded - L} pad tokens cost compute and are dropped from the outputs.",
            f"nothing breaks; to save the work use inputs of a multiple of {widest} tokens."))
    bad = [(i, w) for i, w in enumerate(ws) if padded % w]
    if bad:
        out.append(Finding(
            "window-divides",
            f"layers {[i for i, _ in bad]} have windows {[w for _, w in bad]} that do not divide the padded length "
            f"{padded}; {cfg.model_type} fails with 'Sequence length should be multiple of {bad[0][1]}'.",
            f"use windows that all divide the largest one ({max(conf)}), or make the largest a multiple of all."))
    if gmask is not None and torch.as_tensor(gmask).shape[-1] != L:
        gmask = None  # the run would fail; judge reach without the broken mask
    return out, gmask
