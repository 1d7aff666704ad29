"""What will go wrong, in plain words, before a long-context model runs a prompt-tuned input.

:func:`diagnose` ``(model, layout) -> list[Finding]`` checks one input layout against the model's
real attention (:func:`~attnviz.models.native.pattern_of`) and its family's quirks, each finding
with the fix:

* prompt tokens whose information cannot reach the readout (``[CLS]``, or the last token of a
  decoder) within the model's depth;
* Longformer / LED: padding ``L -> L'``, windows that do not divide ``L'`` (a crash), layer windows
  that differ from ``config.attention_window``, a ``global_attention_mask`` whose length is not
  the input's (PEFT prepends its virtual tokens but passes the mask through unchanged), and the
  classification head's default global token;
* BigBird: the full-attention fallback of short inputs, which sticks, and random blocks in eval;
* a learned position table shorter than the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..patterns import AttentionPattern, allowed, as_layout
from ..placement import SequenceLayout
from .native import (LONGFORMER_LIKE, bigbird_attention_type, bigbird_fallback_length, config_of,
                     longformer_padded_length, longformer_windows, num_layers_of, pattern_of)
from .positions import position_table


@dataclass(frozen=True)
class Finding:
    """One problem: ``kind`` (a short code), ``message`` (what happens, with the numbers), ``fix``."""

    kind: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.message} Fix: {self.fix}"


def readout_reach(pattern: AttentionPattern, layout: SequenceLayout | int, num_layers: int,
                  readout: int | None = None) -> torch.Tensor:
    """bool ``(L,)``: positions whose information reaches ``readout`` within ``num_layers`` layers.

    The same graph as :func:`attnviz.spread` walked backwards: start at the readout after the last
    layer; going down through layer ``l``, add every key that any reached query may attend. One
    walk answers for all sources at once; it equals
    ``spread(build_masks(...).transpose(1, 2).flip(0), [readout]).reached[-1]``, computed one layer
    at a time on the reached rows only (``O(rows * L)`` memory, no ``(layers, L, L)`` tensor).
    """
    layout = as_layout(layout)
    pattern.check_layers(num_layers)
    L = layout.length
    r = layout.readout_position if readout is None else readout
    if not 0 <= r < L:
        raise ValueError(f"readout {r} is outside [0, {L})")
    current = torch.zeros(L, dtype=torch.bool)
    current[r] = True
    keys = torch.arange(L)[None, :]
    for layer in reversed(range(num_layers)):
        rows = torch.nonzero(current).flatten()[:, None]
        current = current | allowed(pattern, layout, layer, rows, keys).any(0)
    return current


def _span(positions) -> str:
    positions = list(positions)
    if len(positions) <= 6:
        return ", ".join(map(str, positions))
    return f"{positions[0]}..{positions[-1]}"


def _reach_per_layer(pattern: AttentionPattern, num_layers: int) -> int | None:
    """Positions information moves through the windows alone in ``num_layers`` layers (None: unbounded)."""
    total = 0
    for layer in range(num_layers):
        w = pattern.window_at(layer)
        if w is None:
            return None
        d = pattern.dilation_at(layer)
        total += (w - 1 if pattern.causal else w // 2) * d
    return total


def _reach_finding(pattern, layout: SequenceLayout, num_layers: int, family: str) -> Finding | None:
    if not layout.prompt_positions:
        return None
    r = layout.readout_position
    reach = readout_reach(pattern, layout, num_layers, r)
    missing = [p for p in layout.prompt_positions if not reach[p]]
    if not missing:
        return None
    who = "[CLS]" if any(s.name == "cls" for s in layout.segments) else "the last token"
    far = max(abs(p - r) for p in missing)
    moves = _reach_per_layer(pattern, num_layers)
    how = (f"through the windows alone information moves at most {moves} positions in {num_layers} layers, and the "
           f"farthest of them is {far} away" if moves is not None else "no path through the pattern connects them")
    need = -(-far // num_layers)
    window = f"causal window >= {need + 1}" if pattern.causal else f"window >= {2 * need}"
    fixes = [f"move the prompt next to the readout (placement 'prefix' for [CLS]) or widen the attention "
             f"({window} in every layer reaches {far} positions)"]
    if family in LONGFORMER_LIKE and not pattern.global_prompt:
        fixes.insert(0, "make the prompt global (AttentionPattern(..., global_prompt=True), then "
                        "to_native(pattern, model, layout).inputs gives the global_attention_mask)")
    return Finding(
        "reach",
        f"{len(missing)} of {layout.n_prompt} prompt tokens (positions {_span(missing)}) cannot reach {who} at "
        f"position {r} within the model's {num_layers} layers: {how}. Their training signal cannot reach the "
        f"readout, so tuning them changes nothing the classifier sees.",
        "; or ".join(fixes) + ".")


def _longformer_findings(model, layout: SequenceLayout, gmask) -> list[Finding]:
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
    windows = longformer_windows(model)
    aw = cfg.attention_window
    conf = tuple([aw] * len(windows) if isinstance(aw, int) else aw)
    if conf != windows:
        out.append(Finding(
            "stale-windows",
            f"the layers use windows {list(windows)} but config.attention_window says {list(conf)}: the modules keep "
            f"the window they were built with, and only the padding follows the config.",
            "set both with apply_native(model, to_native(pattern, model, layout)), or rebuild the model."))
    padded = longformer_padded_length(cfg, L)
    if padded != L:
        widest = max(conf)
        out.append(Finding(
            "padding",
            f"{cfg.model_type} pads the {L} tokens to {padded} (a multiple of its largest window, {widest}); the "
            f"{padded - L} pad tokens cost compute and are dropped from the outputs.",
            f"nothing breaks; to save the work use inputs of a multiple of {widest} tokens."))
    bad = [(i, w) for i, w in enumerate(windows) if padded % w]
    if bad:
        out.append(Finding(
            "window-divides",
            f"layers {[i for i, _ in bad]} have windows {[w for _, w in bad]} that do not divide the padded length "
            f"{padded}; {cfg.model_type} fails with 'Sequence length should be multiple of {bad[0][1]}'.",
            f"use windows that all divide the largest one ({max(conf)}), or make the largest a multiple of all."))
    return out


def _bigbird_findings(model, layout: SequenceLayout) -> list[Finding]:
    cfg = config_of(model)
    L, b, r = layout.length, cfg.block_size, cfg.num_random_blocks
    cut = bigbird_fallback_length(cfg)
    now = bigbird_attention_type(model)
    out = []
    sticky = ("The switch sticks: model.attention_type stays 'original_full' for every later call, long inputs "
              "included, while config.attention_type still says 'block_sparse'. It swaps the attention modules, and "
              "transformers' output_attentions hooks, installed once on the first call that asks for attentions, stay "
              "on the old ones: if that call came before or with the switch, output_attentions returns ().")
    if now == "original_full" and cfg.attention_type == "block_sparse":
        out.append(Finding(
            "bigbird-switched",
            f"this BigBird already switched to full attention (an earlier input had <= {cut} tokens). " + sticky,
            "call model.set_attention_type('block_sparse') (or apply_native(model, {'attention_type': "
            "'block_sparse'})), and keep inputs longer than " + f"{cut} tokens."))
    elif now == "block_sparse" and L <= cut:
        out.append(Finding(
            "bigbird-fallback",
            f"BigBird runs block-sparse attention only for inputs longer than (5 + 2*num_random_blocks)*block_size = "
            f"(5 + 2*{r})*{b} = {cut} tokens; this input has {L}, so it switches to full attention (original_full). "
            + sticky,
            f"use inputs of more than {cut} tokens, or a smaller block_size / num_random_blocks; after a switch, "
            f"model.set_attention_type('block_sparse') switches back."))
    if now == "block_sparse" and L > cut and r and not model.training:
        out.append(Finding(
            "bigbird-eval-random",
            f"in eval BigBird draws no random blocks: all {r} random slots of a query block point at block 0, so the "
            f"rows in blocks 1..nb-2 count block 0 {1 + r} times in their softmax, and the attention_probs it returns "
            f"show one copy (those rows sum to less than 1).",
            "nothing to fix for inference (capture_attention reports the effective weights); random blocks exist only "
            "in training (model.train())."))
    return out


def diagnose(model, layout: SequenceLayout | int, *, global_attention_mask: torch.Tensor | None = None,
             pattern: AttentionPattern | None = None) -> list[Finding]:
    """Findings, each with its fix, for running ``layout`` through ``model``; ``[]`` when all is well.

    Args:
        model: a loaded transformers model (its modules tell what it really runs).
        layout: the input as a :class:`SequenceLayout` (prompt positions, readout) or a length.
        global_attention_mask: what you will pass to a Longformer / LED, ``(L,)`` or ``(B, L)``.
        pattern: judge reach with this pattern instead of :func:`pattern_of` (e.g. the one given to
            ``with_pattern``, which the config does not know about).
    """
    layout = as_layout(layout)
    cfg = config_of(model)
    family = cfg.model_type
    findings: list[Finding] = []

    table = position_table(model)
    needed = longformer_padded_length(cfg, layout.length) if family in LONGFORMER_LIKE else layout.length
    if table is not None and needed > table.size:
        findings.append(Finding(
            "positions",
            f"the input needs {needed} positions but {type(model).__name__} has {table.size} learned ones; it fails "
            f"with an index or size error (e.g. 'index out of range in self', 'The expanded size of the tensor').",
            f"extend the table (the Longformer recipe): attnviz.models.positions.extend_positions(model, "
            f"{-(-needed // 512) * 512})."))

    gmask = global_attention_mask
    if family in LONGFORMER_LIKE:
        findings += _longformer_findings(model, layout, gmask)
        if gmask is not None and torch.as_tensor(gmask).shape[-1] != layout.length:
            gmask = None  # the run would fail; judge reach without the broken mask
    elif family == "big_bird":
        findings += _bigbird_findings(model, layout)

    try:
        if pattern is None:
            pattern = pattern_of(model, layout, global_attention_mask=gmask)
    except ValueError as exc:
        findings.append(Finding("unknown-pattern", f"attnviz cannot tell this model's attention pattern: {exc}",
                                "pass global_attention_mask= or check the model family."))
        return findings
    reach = _reach_finding(pattern, layout, num_layers_of(model), family)
    if reach is not None:
        findings.append(reach)
    return findings
