"""A soft prompt put into a real text and run through a model under a pattern: the attention of
chosen layers and the prompt's measured influence, at any length.

This is the pipeline behind the influence explorer and the run report, as one library call:
tokenize the text (truncated to the model's positions), lay the prompt out where the placement
says (:meth:`attnviz.PromptPlacement.layout`, special tokens where the tokenizer puts them), insert
its vectors (:func:`attnviz.insert_prompt`), capture the attention of the chosen layers
(:func:`attnviz.capture_attention`) and measure the influence (:func:`attnviz.prompt_influence`).

Long inputs (``L > long_from`` positions, 2,048 by default) run with the ``tiled`` backend:
the attention maps are exact probabilities computed on the pattern's non-empty tiles and pooled as
they come (the prompt's rows and columns kept exact), and the ablation influence runs the same
way, so nothing of size ``(heads, L, L)`` exists at 16k or 64k tokens. Shorter inputs use the
``dense`` backend (the reference; identical maps within float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .capture import AttentionMaps, capture_attention
from .influence import InfluenceMap, prompt_influence
from .models.anatomy import max_positions, num_layers, special_tokens
from .models.interface import with_pattern
from .patterns import AttentionPattern
from .placement import PromptPlacement, SequenceLayout, insert_prompt

#: Inputs longer than this (positions, prompt included) take the tiled path.
LONG_FROM = 2048
#: Influence methods that work at any length (the others need dense probabilities or a backward).
LONG_METHODS = ("ablation",)


@dataclass(frozen=True, eq=False)
class PromptOnText:
    """What :func:`prompt_on_text` measured.

    Attributes:
        layout: where the prompt and the text sit (``layout.length`` = ``L``).
        placement: the placement used (resolved for this text).
        inputs: the text as the tokenizer gave it: ``input_ids`` / ``attention_mask`` ``(1, T)``.
        maps: attention of the chosen layers, ``(layers, heads, U, U)`` (pooled above ``max_side``),
            or None when no layer was asked for.
        influence: the prompt's influence ``(1, layers + 1, L)``, or None when ``method`` is None.
        backend: ``"dense"`` or ``"tiled"``, the path the maps and influence took.
    """

    layout: SequenceLayout
    placement: PromptPlacement
    inputs: dict
    maps: AttentionMaps | None
    influence: InfluenceMap | None
    backend: str


Placement = PromptPlacement | Callable[[int], PromptPlacement]


def text_layout(model, tokenizer, text: str, placement: Placement) -> tuple[dict, SequenceLayout, PromptPlacement]:
    """``(inputs, layout, placement)`` of ``text`` with ``placement``'s prompt: tokenized, truncated so
    text + prompt fit the model's positions, the layout built for this text length.

    ``placement`` may be a function of the number of text tokens that returns the placement (e.g. an
    infix in the middle of whatever the text turns out to be); the placement used is returned.
    Raises ``ValueError`` for an empty text (and whatever the layout refuses, e.g. ``at`` past the text)."""
    if not text.strip():
        raise ValueError("the text is empty; type a sentence or two")
    n_prompt = (placement(0) if callable(placement) else placement).n_tokens
    limit = max_positions(model)
    enc = tokenizer(text, return_tensors="pt", truncation=limit is not None,
                    max_length=None if limit is None else limit - n_prompt)
    inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    cls, sep = special_tokens(tokenizer, model)
    n_text = inputs["input_ids"].shape[1] - cls - sep
    if n_text < 1:
        raise ValueError("the text gives no tokens; type a sentence or two")
    placement = placement(n_text) if callable(placement) else placement
    return inputs, placement.layout(n_text, cls=cls, sep=sep), placement


def prompt_on_text(model, tokenizer, text: str, prompt: torch.Tensor, pattern: AttentionPattern,
                   placement: Placement, *, layers=(0,), method: str | None = "ablation",
                   max_side: int = 512, long_from: int = LONG_FROM) -> PromptOnText:
    """Run the prompt ``(n, H)`` in ``text`` under ``pattern`` and measure attention and influence.

    Args:
        model: a model :func:`attnviz.with_pattern` supports, in eval mode (frozen; not changed).
        tokenizer: its tokenizer.
        text: the text; truncated to the model's positions minus the prompt.
        prompt: the prompt vectors ``(n, H)``, ``n = placement.n_tokens``.
        pattern: the attention pattern (checked against the model's layers).
        placement: where the prompt goes, or a function of the number of text tokens giving it.
        layers: layers whose attention to capture (``()`` for none).
        method: influence method (``"ablation"``, ``"rollout"``, ``"gradient"``) or None for none.
        max_side: maps larger than this many positions are pooled to blocks of
            ``ceil(L / max_side)``, the prompt's rows and columns kept exact.
        long_from: inputs longer than this take the tiled path (see the module doc).
    """
    pattern.check_layers(num_layers(model))
    inputs, layout, placement = text_layout(model, tokenizer, text, placement)
    if prompt.dim() != 2 or prompt.shape[0] != placement.n_tokens:
        raise ValueError(f"prompt must be (n_tokens={placement.n_tokens}, hidden), got {tuple(prompt.shape)}")
    pattern.global_mask(layout)  # global positions inside the sequence, with the reason if not
    L = layout.length
    long = L > long_from
    if long and method is not None and method not in LONG_METHODS:
        raise ValueError(f"method {method!r} needs the dense attention of all {L} positions ((heads, L, L) per layer); "
                         f"at more than {long_from} positions use method='ablation'")
    backend = "tiled" if long else "dense"
    maps = None
    if layers:
        pool = None if L <= max_side else -(-L // max_side)
        with torch.no_grad():
            words = model.get_input_embeddings()(inputs["input_ids"])
            embeds = {"inputs_embeds": insert_prompt(words, prompt.to(words), layout),
                      "attention_mask": torch.ones(1, L, dtype=torch.long)}
            keep = layout if pool else None
            if long:
                maps = capture_attention(model, embeds, layers=list(layers), pool=pool, keep=keep,
                                         pattern=pattern, layout=layout)
            else:
                with with_pattern(model, pattern, layout, backend="dense") as m:
                    maps = capture_attention(m, embeds, layers=list(layers), pool=pool, keep=keep)
    influence = None
    if method is not None:
        influence = prompt_influence(model, prompt, inputs, pattern, placement, method=method, per_token=False,
                                     tokenizer=tokenizer, backend=backend)
    return PromptOnText(layout=layout, placement=placement, inputs=inputs, maps=maps, influence=influence,
                        backend=backend)
