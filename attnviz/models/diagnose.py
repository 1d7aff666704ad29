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

import torch

from ..patterns import AttentionPattern, allowed, as_layout
from ..placement import SequenceLayout
from .anatomy import config_of, num_layers
from .families import FAMILIES
from .finding import Finding
from .native import pattern_of
from .positions import position_table

__all__ = ["Finding", "diagnose", "readout_reach"]


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
    if getattr(FAMILIES.get(family), "GLOBAL_TOKENS", False) and not pattern.global_prompt:
        fixes.insert(0, "make the prompt global (AttentionPattern(..., global_prompt=True), then "
                        "to_native(pattern, model, layout).inputs gives the global_attention_mask)")
    return Finding(
        "reach",
        f"{len(missing)} of {layout.n_prompt} prompt tokens (positions {_span(missing)}) cannot reach {who} at "
        f"position {r} within the model's {num_layers} layers: {how}. Their training signal cannot reach the "
        f"readout, so tuning them changes nothing the classifier sees.",
        "; or ".join(fixes) + ".")


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
    kind = FAMILIES.get(family)
    needed = kind.padded_length(cfg, layout.length) if kind is not None else layout.length
    if table is not None and needed > table.size:
        findings.append(Finding(
            "positions",
            f"the input needs {needed} positions but {type(model).__name__} has {table.size} learned ones; it fails "
            f"with an index or size error (e.g. 'index out of range in self', 'The expanded size of the tensor').",
            f"extend the table (the Longformer recipe): attnviz.models.positions.extend_positions(model, "
            f"{-(-needed // 512) * 512})."))

    gmask = global_attention_mask
    if kind is not None:
        found, gmask = kind.findings(model, layout, gmask)
        findings += found

    try:
        if pattern is None:
            pattern = pattern_of(model, layout, global_attention_mask=gmask)
    except ValueError as exc:
        findings.append(Finding("unknown-pattern", f"attnviz cannot tell this model's attention pattern: {exc}",
                                "pass global_attention_mask= or check the model family."))
        return findings
    reach = _reach_finding(pattern, layout, num_layers(model), family)
    if reach is not None:
        findings.append(reach)
    return findings
