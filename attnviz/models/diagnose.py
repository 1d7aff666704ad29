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
* a learned position table shorter than the input;
* the mask zoo's pitfalls for a soft prompt (from the pattern, whichever model applies it): a
  prompt outside the attention sinks of a windowed decoder, a prompt that only its own chunk
  sees, packed documents without a prompt of their own, a prompt that reaches past a prefix-LM's
  prefix (so it is not bidirectional among itself); and gpt-oss's learned sinks, which keep no
  token.
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
    move = ("placement 'prefix', right after [CLS]" if who == "[CLS]" else
            "placement 'suffix': a decoder reads the last token, so the prompt sits right before it")
    fixes = [f"move the prompt next to the readout ({move}) or widen the attention "
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


def _chunk_finding(pattern: AttentionPattern, layout: SequenceLayout, num_layers: int) -> Finding | None:
    """Chunks no query of which may attend a prompt token directly, in every chunked layer."""
    chunked = [layer for layer in range(num_layers) if pattern.chunk_at(layer) is not None]
    if not chunked:
        return None
    L, prompt = layout.length, torch.tensor(layout.prompt_positions)
    rows = torch.arange(L)[:, None]
    # chunk numbers (1-based) that never see the prompt directly, in every chunked layer; under causal
    # attention the chunks wholly before the prompt could not see it anyway and are left out.
    first = min(layout.prompt_positions) if pattern.causal else 0
    blind = None
    for layer in chunked:
        c = pattern.chunk_at(layer)
        sees = allowed(pattern, layout, layer, rows, prompt[None, :]).any(1)
        seen = set((torch.nonzero(sees).flatten() // c + 1).tolist())
        here = {j for j in range(first // c + 1, -(-L // c) + 1) if j not in seen}
        blind = here if blind is None else blind & here
    if not blind:
        return None
    c0 = pattern.chunk_at(chunked[0])
    seeing = sorted(set(range(first // c0 + 1, -(-L // c0) + 1)) - blind)
    full = [layer for layer in range(num_layers) if layer not in chunked]
    who = f"chunk{'s' if len(blind) > 1 else ''} {_span(sorted(blind))}"
    rest = (f"{who} reach{'es' if len(blind) == 1 else ''} it only through the full layers {full}" if full else
            f"{who} never see{'s' if len(blind) == 1 else ''} it: every layer is chunked")
    return Finding(
        "chunk",
        f"chunked attention: only chunk {_span(seeing) or 'none'} (chunks of {c0} positions, numbered from 1) "
        f"sees the prompt at {_span(layout.prompt_positions)} in the chunked layers {chunked}; {rest}.",
        "repeat the prompt in every chunk (PromptPlacement('scattered', every=...)) or make it global "
        "(global_prompt=True) or a sink (sinks covering it): globals and sinks reach across chunks.")


def _zoo_findings(pattern: AttentionPattern, layout: SequenceLayout, num_layers: int) -> list[Finding]:
    """The mask zoo's pitfalls for a soft prompt: sinks, chunks, packed documents, prefix-LM."""
    prompt = list(layout.prompt_positions)
    if not prompt:
        return []
    found = []
    windows = [pattern.window_at(layer) for layer in range(num_layers)]
    outside = [p for p in prompt if p >= pattern.sinks]
    if pattern.sinks and outside and any(w is not None for w in windows) and not pattern.global_prompt:
        w = next(w for w in windows if w is not None)
        found.append(Finding(
            "sink",
            f"the prompt sits outside the sink: the {pattern.sinks} attention sinks are positions "
            f"0..{pattern.sinks - 1} and prompt positions {_span(outside)} lie past them; after layer 0 no query "
            f"beyond the window sees it (a query q sees prompt position p only while q - p < {w}), so farther "
            f"queries get it only as it is relayed through the windows.",
            f"put the prompt in the sink: a prefix placement with sinks >= {max(prompt) + 1} (the prompt and "
            f"everything before it), or make the prompt global."))
    chunk = _chunk_finding(pattern, layout, num_layers)
    if chunk is not None:
        found.append(chunk)
    doc = pattern.document_ids(layout)
    if doc is not None:
        with_prompt = set(doc[prompt].tolist())
        bare = [i for i in range(len(pattern.documents)) if i not in with_prompt]
        if bare:
            starts = torch.cumsum(torch.tensor((0,) + pattern.documents), 0).tolist()
            spans = ", ".join(f"{i + 1} ({starts[i]}..{starts[i + 1] - 1})" for i in bare[:6])
            found.append(Finding(
                "documents",
                f"packed documents: each document needs its own prompt; documents {spans} (numbered from 1) hold "
                f"no prompt token, and no attention crosses a document boundary, so the prompt never reaches "
                f"them in any layer.",
                "insert a prompt into every document before packing (one PromptPlacement per document), or do not "
                "pack (documents=())."))
    prefix = pattern.prefix_length(layout)
    if pattern.prefix_lm is not None and any(p >= prefix for p in prompt):
        late = [p for p in prompt if p >= prefix]
        found.append(Finding(
            "prefix",
            f"prefix-LM: the prompt is bidirectional among itself only if it lies in the prefix; the prefix is "
            f"positions 0..{prefix - 1} and prompt positions {_span(late)} lie past it, so the earlier prompt "
            f"tokens do not see them (causal).",
            f'use prefix_lm="prompt" (the prefix ends with the last prompt token) or prefix_lm >= {max(prompt) + 1}.'))
    return found


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
    findings += _zoo_findings(pattern, layout, num_layers(model))
    return findings
