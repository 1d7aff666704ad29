"""Native long-context attention: an :class:`~attnviz.AttentionPattern` as a model's own arguments, and back.

Long-context models in transformers carry their sparse attention in config fields and forward
arguments, each family with its own meaning. This module translates both ways:

* :func:`to_native` ``(pattern, model_or_config, layout) -> NativeArgs``: the config fields and
  forward inputs that make the model apply ``pattern``, or a ``ValueError`` saying why it cannot.
* :func:`pattern_of` ``(model_or_config, layout) -> AttentionPattern``: what a model really applies.
* :func:`apply_native`: set translated fields on a loaded model, in place and reversibly.

Each family lives in its own module under :mod:`attnviz.models.families` (longformer + LED,
bigbird, sliding: Mistral / Qwen2, layer_typed: Gemma 2/3 / gpt-oss / ModernBERT, chunked:
Llama 4), joined by the plain dict
``families.FAMILIES``; this module is their public face. What each family means (verified on tiny
models with transformers 5.24):

============  ================================================================================
longformer    ``attention_window`` per layer = attnviz ``window`` (total width, ``|q-k| <= w//2``),
led           even and > 0; ``global_attention_mask`` (B, L), 1 = global. Inputs are padded to a
              multiple of ``max(attention_window)`` and every layer's window must divide that
              padded length. No dilation, no random blocks, no causal window. LED: encoder only;
              its decoder is full causal attention with no global tokens.
              Default global tokens: none, except ``LongformerForSequenceClassification`` which
              makes position 0 global when no ``global_attention_mask`` is passed.
big_bird      ``block_size`` b, ``num_random_blocks`` r, ``attention_type``. Block-sparse attends in
              whole blocks: the first and last block are global, block i sees blocks i-1..i+1 and r
              random blocks (random only in training). :func:`pattern_of` gives
              ``window=2*b`` (the widest token window inside the 3-block band; equal at block
              resolution) and the first and last block as ``global_positions``. Inputs of
              ``L <= (5 + 2r) * b`` tokens switch the model to full attention, for good.
mistral       ``sliding_window`` W in every layer = attnviz causal ``window=W`` (q - W < k <= q).
qwen2,        ``layer_types`` ("sliding_attention" / "full_attention") + ``sliding_window``: a
gemma2,       per-layer tuple with ``None`` for full layers (causal). gpt-oss's ``sinks`` are
gemma3_text,  learned logits per head, not positions: its mask reads as Gemma 2's, ``sinks=0``.
gpt_oss
modernbert    ``layer_types`` + ``local_attention`` (total width, ``|q-k| <= local_attention//2``),
              bidirectional. Bidirectional Gemma3 (``use_bidirectional_attention``) stores
              ``sliding_window = w // 2 + 1`` and uses ``|q-k| < sliding_window``: window ``w``.
llama4_text   ``layer_types`` ("chunked_attention" / "full_attention") + ``attention_chunk_size`` C:
              causal ``chunk=C`` per layer, ``None`` for the full (NoPE) layers.
============  ================================================================================
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..patterns import AttentionPattern
from ..placement import SequenceLayout
from .anatomy import config_of, family_of, is_causal, num_layers
from .families import FAMILIES, NativeArgs, bigbird, chunked, layer_typed, longformer
from .families.common import length_of

# Names kept for callers and notebooks (each answer lives in its family module).
num_layers_of = num_layers
LONGFORMER_LIKE = longformer.MODEL_TYPES
LAYER_TYPED = ("qwen2",) + layer_typed.MODEL_TYPES + chunked.MODEL_TYPES
NATIVE_FAMILIES = tuple(FAMILIES)
check_longformer_window = longformer.check_window
longformer_windows = longformer.windows
longformer_padded_length = longformer.padded_length
default_global_positions = longformer.default_global_positions
bigbird_fallback_length = bigbird.fallback_length
bigbird_attention_type = bigbird.attention_type
bigbird_global_positions = bigbird.global_positions

__all__ = ["NativeArgs", "apply_native", "pattern_of", "to_native", "config_of", "family_of", "is_causal",
           "num_layers_of", "NATIVE_FAMILIES", "LONGFORMER_LIKE", "LAYER_TYPED", "check_longformer_window",
           "longformer_windows", "longformer_padded_length", "default_global_positions", "bigbird_fallback_length",
           "bigbird_attention_type", "bigbird_global_positions"]

_KNOWN = ", ".join(FAMILIES)


def _check_stack(cfg, stack: str | None) -> None:
    if stack not in (None, "encoder", "decoder"):
        raise ValueError(f"stack must be None, 'encoder' or 'decoder', got {stack!r}")
    if stack is not None and not getattr(cfg, "is_encoder_decoder", False):
        raise ValueError(f"stack={stack!r} is for encoder-decoder models (LED, T5, BART); {cfg.model_type} has one stack: "
                         f"leave stack=None")


def _generic_pattern(cfg) -> AttentionPattern:
    """A model outside :data:`FAMILIES`: full attention, or one causal ``sliding_window``."""
    from .families.common import sliding_pattern

    return sliding_pattern(cfg, _KNOWN, bidirectional_ok=False)


def pattern_of(model_or_config, layout: SequenceLayout | int | None = None, *,
               global_attention_mask: torch.Tensor | None = None, stack: str | None = None,
               training: bool | None = None) -> AttentionPattern:
    """The attention pattern a model (or a model built from a config) really applies.

    Args:
        model_or_config: a transformers model or config.
        layout: the input (a :class:`SequenceLayout` or a length ``L``). Needed where the pattern
            depends on length (BigBird's last global block and its full-attention fallback) and to
            fold a global prompt into ``global_prompt=True``.
        global_attention_mask: Longformer/LED global tokens, ``(L,)`` or ``(B, L)`` with equal rows.
            Without it, the class default: none, or position 0 for ``LongformerForSequenceClassification``.
        stack: ``"decoder"`` for the decoder of an encoder-decoder model (LED: full causal).
        training: BigBird uses random blocks only in training; default ``model.training`` (configs: False).

    Returns:
        :class:`AttentionPattern`; per-layer windows as tuples when they differ (one shared value
        as an int), Longformer windows as total width. See the module table for each family.
    """
    cfg = config_of(model_or_config)
    _check_stack(cfg, stack)
    family = cfg.model_type
    length_of(layout)  # raises on a malformed layout
    if stack == "decoder":
        if global_attention_mask is not None:
            raise ValueError(f"{family}'s decoder has no global tokens: global_attention_mask applies to the encoder only")
        return AttentionPattern(window=None, causal=True)
    kind = FAMILIES.get(family)
    if kind is None:
        return _generic_pattern(cfg)
    return kind.read_pattern(model_or_config, cfg, layout, global_attention_mask=global_attention_mask,
                             training=training, known=_KNOWN)


def to_native(pattern: AttentionPattern, model_or_config, layout: SequenceLayout | int | None = None, *,
              stack: str | None = None) -> NativeArgs:
    """Translate ``pattern`` into the native arguments of ``model_or_config``'s family.

    Args:
        pattern: the attention pattern to apply.
        model_or_config: the target model or config (its family and number of layers matter).
        layout: the input; needed to place global tokens (``global_attention_mask`` has length L).
        stack: ``"decoder"`` to target the decoder of an encoder-decoder model.
    Raises:
        ValueError: naming the setting the family cannot express and what it can.
    """
    if not isinstance(pattern, AttentionPattern):
        raise TypeError(f"pattern must be an AttentionPattern, got {type(pattern).__name__}")
    cfg = config_of(model_or_config)
    _check_stack(cfg, stack)
    family = cfg.model_type
    length_of(layout)  # raises on a malformed layout
    n = num_layers(cfg, stack)
    pattern.check_layers(n)
    if stack == "decoder":
        if pattern != AttentionPattern(window=None, causal=True):
            raise ValueError(f"{family}'s decoder has full causal attention and no global_attention_mask: windows and "
                             f"global attention exist only in the encoder; got {pattern}")
        return NativeArgs(family, {}, {}, pattern, ())
    kind = FAMILIES.get(family)
    if kind is not None:
        return kind.translate(pattern, model_or_config, cfg, layout, n, known=_KNOWN)
    if pattern == AttentionPattern(window=None, causal=is_causal(cfg)):
        return NativeArgs(family, {}, {}, pattern, ())
    raise ValueError(f"{family} has no native sparse attention (native families: {_KNOWN}); "
                     f"apply this pattern with attnviz.with_pattern(model, pattern) (dense masks)")


def apply_native(model, native: NativeArgs | Mapping[str, Any]) -> dict:
    """Set native attention fields on a loaded ``model`` in place; return the previous values.

    Updates the config and the modules that cached a value when they were built (Longformer/LED
    layer windows, BigBird block size, random blocks and attention type). Restore with
    ``apply_native(model, previous)``. Forward inputs (``native.inputs``) are passed at call time.

    Raises:
        ValueError: for fields that cannot change on loaded weights, e.g. ``layer_types`` of Gemma3 /
            ModernBERT (a layer's type also picks its rotary base): build a model with them instead.
    """
    updates = dict(native.config if isinstance(native, NativeArgs) else native)
    cfg = config_of(model)
    family = cfg.model_type
    if isinstance(native, NativeArgs) and native.family != family:
        raise ValueError(f"these arguments are for {native.family}, the model is {family}")
    kind = FAMILIES.get(family)
    allowed = kind.SETTABLE[family] if kind is not None else set()
    extra = sorted(set(updates) - allowed)
    if extra:
        raise ValueError(f"cannot set {extra} on a loaded {family} model; settable: {sorted(allowed) or 'none'}")
    return kind.apply(model, cfg, updates) if kind is not None else {}
