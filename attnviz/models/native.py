"""Native long-context attention: an :class:`~attnviz.AttentionPattern` as a model's own arguments, and back.

Long-context models in transformers carry their sparse attention in config fields and forward
arguments, each family with its own meaning. This module translates both ways:

* :func:`to_native` ``(pattern, model_or_config, layout) -> NativeArgs``: the config fields and
  forward inputs that make the model apply ``pattern``, or a ``ValueError`` saying why it cannot.
* :func:`pattern_of` ``(model_or_config, layout) -> AttentionPattern``: what a model really applies.
* :func:`apply_native`: set translated fields on a loaded model, in place and reversibly.

What each family means (verified on tiny models with transformers 5.24):

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
gemma2,       per-layer tuple with ``None`` for full layers (causal).
gemma3_text
modernbert    ``layer_types`` + ``local_attention`` (total width, ``|q-k| <= local_attention//2``),
              bidirectional. Bidirectional Gemma3 (``use_bidirectional_attention``) stores
              ``sliding_window = w // 2 + 1`` and uses ``|q-k| < sliding_window``: window ``w``.
============  ================================================================================
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ..patterns import AttentionPattern, as_layout
from ..placement import SequenceLayout
from .anatomy import config_of, family_of, is_causal, is_model, num_layers

num_layers_of = num_layers  # the older name, kept for notebooks and callers

LONGFORMER_LIKE = ("longformer", "led")
LAYER_TYPED = ("qwen2", "gemma2", "gemma3_text", "modernbert")
NATIVE_FAMILIES = LONGFORMER_LIKE + ("big_bird", "mistral") + LAYER_TYPED
#: families whose rotary base depends on a layer's type: layer_types cannot change on loaded weights.
_ROPE_PER_LAYER_TYPE = ("gemma3_text", "modernbert")


def _check_stack(cfg, stack: str | None) -> None:
    if stack not in (None, "encoder", "decoder"):
        raise ValueError(f"stack must be None, 'encoder' or 'decoder', got {stack!r}")
    if stack is not None and not getattr(cfg, "is_encoder_decoder", False):
        raise ValueError(f"stack={stack!r} is for encoder-decoder models (LED, T5, BART); {cfg.model_type} has one stack: "
                         f"leave stack=None")


def check_longformer_window(w, layer: int | None = None) -> int:
    """Raise unless ``w`` is a valid Longformer ``attention_window`` (even int > 0); return it."""
    where = "" if layer is None else f" (layer {layer})"
    if isinstance(w, bool) or not isinstance(w, int):
        raise TypeError(f"Longformer attention_window must be an even int > 0{where}, got {w!r}")
    if w <= 0:
        raise ValueError(f"window must be positive for Longformer{where}, got {w}; try 2 or more")
    if w % 2:
        raise ValueError(f"window must be even for Longformer{where}, got {w}; try {w - 1 if w > 1 else 2} or {w + 1}")
    return w


def longformer_windows(model_or_config) -> tuple[int, ...]:
    """Per-layer Longformer/LED windows. For a model they are read from its attention modules, which
    keep the window they were built with (changing ``config.attention_window`` afterwards changes
    only the padding); for a config, from ``attention_window``."""
    if is_model(model_or_config):
        found = {m.layer_id: 2 * m.one_sided_attn_window_size for m in model_or_config.modules()
                 if hasattr(m, "one_sided_attn_window_size") and hasattr(m, "layer_id")}
        if found:
            return tuple(found[i] for i in sorted(found))
    cfg = config_of(model_or_config)
    n = num_layers_of(cfg)
    aw = cfg.attention_window
    windows = [aw] * n if isinstance(aw, int) else list(aw)
    if len(windows) != n:
        raise ValueError(f"attention_window has {len(windows)} entries for {n} layers; give one per layer")
    return tuple(check_longformer_window(w, i) for i, w in enumerate(windows))


def longformer_padded_length(model_or_config, length: int) -> int:
    """``L'``: Longformer/LED pad the input to a multiple of ``max(config.attention_window)``."""
    aw = config_of(model_or_config).attention_window
    w = aw if isinstance(aw, int) else max(aw)
    return -(-length // w) * w


def bigbird_fallback_length(model_or_config) -> int:
    """BigBird switches block-sparse to full attention for inputs of ``L <= (5 + 2 r) * b`` tokens."""
    cfg = config_of(model_or_config)
    return (5 + 2 * cfg.num_random_blocks) * cfg.block_size


def bigbird_attention_type(model_or_config) -> str:
    """The attention BigBird will run: a model's own ``attention_type`` (it may have switched to
    ``"original_full"`` while ``config.attention_type`` still says ``"block_sparse"``), else the config's."""
    if is_model(model_or_config):
        base = getattr(model_or_config, "base_model", model_or_config)
        if hasattr(base, "attention_type"):
            return base.attention_type
    return config_of(model_or_config).attention_type


def bigbird_global_positions(block_size: int, length: int) -> tuple[int, ...]:
    """Positions in ``[0, L)`` of BigBird's global blocks: the first and the last block of the
    input padded to a multiple of ``block_size``."""
    padded = -(-length // block_size) * block_size
    return tuple(sorted(set(range(min(block_size, length))) | set(range(padded - block_size, length))))


def _length(layout) -> int | None:
    return None if layout is None else as_layout(layout).length


# ---- pattern_of ---------------------------------------------------------------------------------
def _globals_from_mask(mask, length: int | None) -> tuple[int, ...]:
    m = torch.as_tensor(mask)
    if m.dim() == 2:
        if not bool((m == m[:1]).all()):
            raise ValueError("global_attention_mask rows differ across the batch; pattern_of reads one sequence: "
                             "pass global_attention_mask[i]")
        m = m[0]
    if m.dim() != 1:
        raise ValueError(f"global_attention_mask must be (L,) or (B, L), got shape {tuple(torch.as_tensor(mask).shape)}")
    if length is not None and m.shape[0] != length:
        raise ValueError(
            f"global_attention_mask has {m.shape[0]} positions but the layout has {length}; with PEFT prompt "
            f"tuning the virtual tokens are missing from it (see attnviz.models.diagnose)")
    return tuple(int(i) for i in torch.nonzero(m != 0).flatten())


def _split_prompt(globals_: tuple[int, ...], layout) -> tuple[tuple[int, ...], bool]:
    """(global_positions, global_prompt): prompt positions fold into ``global_prompt`` when all are global."""
    if isinstance(layout, SequenceLayout) and layout.prompt_positions and set(layout.prompt_positions) <= set(globals_):
        prompt = set(layout.prompt_positions)
        return tuple(p for p in globals_ if p not in prompt), True
    return globals_, False


def _window(values: list) -> int | tuple | None:
    """Collapse per-layer values: one shared value becomes an int (or None), else a tuple."""
    return values[0] if len(set(values)) == 1 else tuple(values)


def default_global_positions(model_or_config) -> tuple[int, ...]:
    name = type(model_or_config).__name__ if is_model(model_or_config) else ""
    if name == "LongformerForSequenceClassification":
        return (0,)
    if name in ("LongformerForQuestionAnswering", "LongformerForMultipleChoice"):
        raise ValueError(f"{name} makes the question tokens global from input_ids when no global_attention_mask is "
                         f"given; pass global_attention_mask= to pattern_of")
    return ()


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
    length = _length(layout)
    if stack == "decoder":
        if global_attention_mask is not None:
            raise ValueError(f"{family}'s decoder has no global tokens: global_attention_mask applies to the encoder only")
        return AttentionPattern(window=None, causal=True)

    if family in LONGFORMER_LIKE:
        windows = list(longformer_windows(model_or_config))
        globals_ = (_globals_from_mask(global_attention_mask, length) if global_attention_mask is not None
                    else default_global_positions(model_or_config))
        positions, prompt = _split_prompt(globals_, layout)
        return AttentionPattern(window=_window(windows), global_positions=positions, global_prompt=prompt)

    if family == "big_bird":
        if global_attention_mask is not None:
            raise ValueError("BigBird has no global_attention_mask: its first and last blocks are global")
        if length is None:
            raise ValueError("BigBird's last block is global and short inputs switch it to full attention, so its "
                             "pattern depends on the length: pass layout= (a SequenceLayout or a length)")
        if bigbird_attention_type(model_or_config) != "block_sparse" or length <= bigbird_fallback_length(cfg):
            return AttentionPattern(window=None)
        b, r = cfg.block_size, cfg.num_random_blocks
        if training is None:
            training = bool(model_or_config.training) if is_model(model_or_config) else False
        positions, prompt = _split_prompt(bigbird_global_positions(b, length), layout)
        return AttentionPattern(window=2 * b, global_positions=positions, global_prompt=prompt,
                                random_blocks=r if training else 0, block_size=b)

    if getattr(cfg, "attention_type", None) == "block_sparse" or getattr(cfg, "attention_chunk_size", None):
        raise ValueError(f"{family} uses an attention layout attnviz does not read yet (block-sparse or chunked); "
                         f"supported native families: {', '.join(NATIVE_FAMILIES)}")

    if family == "modernbert":
        w = 2 * (cfg.local_attention // 2)
        return AttentionPattern(window=_window([w if t == "sliding_attention" else None for t in cfg.layer_types]))

    causal = is_causal(cfg)
    sw = getattr(cfg, "sliding_window", None)
    if family == "gemma3_text" and not causal:
        sw = 2 * (cfg.sliding_window - 1)  # stored as w//2 + 1, used as |q - k| < sliding_window
    layer_types = list(getattr(cfg, "layer_types", None) or [])
    if family == "mistral":  # Mistral applies sliding_window in every layer and ignores layer_types
        layer_types = []
    sparse = sw is not None or any(t != "full_attention" for t in layer_types)
    if sparse and not causal and family not in LAYER_TYPED:
        raise ValueError(f"attnviz does not read the sliding window of bidirectional {family} models yet; "
                         f"supported native families: {', '.join(NATIVE_FAMILIES)}")
    if layer_types:
        unknown = sorted(set(layer_types) - {"sliding_attention", "full_attention"})
        if unknown:
            raise ValueError(f"{family} has layer types {unknown} that attnviz does not read; "
                             f"known: sliding_attention, full_attention")
        return AttentionPattern(window=_window([sw if t == "sliding_attention" else None for t in layer_types]),
                                causal=causal)
    # Causal decoders with one sliding_window (Mistral and the many that share transformers'
    # create_sliding_window_causal_mask): q - W < k <= q in every layer.
    return AttentionPattern(window=None if sw is None else int(sw), causal=causal)


# ---- to_native ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class NativeArgs:
    """A pattern in a model family's own terms.

    Attributes:
        family: the config's ``model_type``.
        config: config attribute values, e.g. ``{"attention_window": [4, 8]}``: pass them to
            ``from_pretrained(name, **config)`` / ``tiny_model(family, **config)`` (both set them as
            attributes after the config is built), or use :func:`apply_native`. They are not
            constructor arguments: for a bidirectional Gemma3 the stored ``sliding_window`` is
            ``w // 2 + 1`` while its constructor takes ``w``.
        inputs: forward keyword arguments, e.g. ``{"global_attention_mask": LongTensor (1, L)}``
            (the batch dimension broadcasts).
        pattern: the pattern the model will really apply with these settings (:func:`pattern_of`).
        notes: where the native model differs from the pattern asked for, in plain words.
    """

    family: str
    config: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    pattern: AttentionPattern = field(default_factory=AttentionPattern)
    notes: tuple[str, ...] = ()


def _uniform(pattern: AttentionPattern, what: str, family: str):
    w = pattern.window
    if isinstance(w, tuple):
        if len(set(w)) > 1:
            raise ValueError(f"{family} has one {what} for all layers; got per-layer windows {w}")
        w = w[0]
    return w


def _refuse(pattern: AttentionPattern, family: str, *, causal: bool | None, globals_ok=False,
            random_ok=False) -> None:
    if causal is not None and pattern.causal != causal:
        if pattern.causal:
            raise ValueError(f"{family} attention is bidirectional (window = total width, w//2 each side); got "
                             f"causal=True: causal windows are for decoders (Mistral's sliding_window)")
        raise ValueError(f"{family} is a decoder (causal attention); got causal=False: use causal=True "
                         f"(window = sliding_window, q - w < k <= q)")
    if pattern.dilation != 1 and (isinstance(pattern.dilation, int) or set(pattern.dilation) != {1}):
        raise ValueError(f"{family} has no dilated windows in transformers (Longformer's dilation needed the "
                         f"original custom CUDA kernel); got dilation={pattern.dilation!r}, use dilation=1")
    if pattern.random_blocks and not random_ok:
        raise ValueError(f"{family} has no random blocks (that is BigBird, model_type big_bird); "
                         f"got random_blocks={pattern.random_blocks}, use 0")
    if not globals_ok and (pattern.global_positions or pattern.global_prompt):
        raise ValueError(f"{family} has no global tokens; got global_positions={pattern.global_positions}, "
                         f"global_prompt={pattern.global_prompt}. Longformer/LED (global_attention_mask) have them; "
                         f"for other models use with_pattern (dense masks)")


def _layer_types(windows: tuple, family: str) -> tuple[list[str], int | None]:
    sliding = {w for w in windows if w is not None}
    if len(sliding) > 1:
        raise ValueError(f"{family} has one sliding_window for all its sliding layers; got windows {sorted(sliding)} "
                         f"(use one value, None for full layers)")
    return (["sliding_attention" if w is not None else "full_attention" for w in windows],
            sliding.pop() if sliding else None)


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
    length = _length(layout)
    n = num_layers_of(cfg, stack)
    pattern.check_layers(n)
    notes: list[str] = []

    if stack == "decoder":
        if pattern != AttentionPattern(window=None, causal=True):
            raise ValueError(f"{family}'s decoder has full causal attention and no global_attention_mask: windows and "
                             f"global attention exist only in the encoder; got {pattern}")
        return NativeArgs(family, {}, {}, pattern, ())

    if family in LONGFORMER_LIKE:
        _refuse(pattern, family, causal=False, globals_ok=True)
        windows = pattern.window if isinstance(pattern.window, tuple) else (pattern.window,) * n
        for i, w in enumerate(windows):
            if w is None:
                hint = f" (for this input, e.g. {2 * length}: window >= 2*(L-1) covers it)" if length else ""
                raise ValueError(f"{family} has a sliding window in every layer, layer {i} asks for full attention; "
                                 f"use a window wider than the input{hint} or global tokens")
            check_longformer_window(w, i)
        widest = max(windows)
        bad = [w for w in windows if widest % w]
        if bad:
            raise ValueError(f"{family} pads the input to a multiple of its largest window ({widest}) and every "
                             f"layer's window must divide that length; windows {bad} do not divide {widest} "
                             f"(use windows that divide {widest}, or make the largest a multiple of all)")
        config = {"attention_window": list(windows)}
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
        positions, prompt = _split_prompt(globals_, layout)
        applied = AttentionPattern(window=_window(list(windows)), global_positions=positions, global_prompt=prompt)
        return NativeArgs(family, config, inputs, applied, tuple(notes))

    if family == "big_bird":
        _refuse(pattern, family, causal=False, globals_ok=True, random_ok=True)
        w = _uniform(pattern, "block size", family)
        if w is None:
            if pattern.global_positions or pattern.global_prompt or pattern.random_blocks:
                raise ValueError("BigBird full attention (original_full) has no global tokens or random blocks; "
                                 "use window=None alone, or window=2*block_size for block-sparse")
            config = {"attention_type": "original_full"}
            return NativeArgs(family, config, {}, AttentionPattern(window=None), ())
        b = pattern.block_size if pattern.block_size is not None else w // 2
        if w != 2 * b:
            raise ValueError(f"BigBird attends in blocks: a query block sees its neighbour blocks, which attnviz writes "
                             f"window=2*block_size; got window={w} with block_size={b}; use window={2 * b} "
                             f"(or block_size={w // 2})")
        config = {"attention_type": "block_sparse", "block_size": b, "num_random_blocks": pattern.random_blocks}
        notes.append(f"BigBird attends in whole blocks of {b}: a query sees all of its own and both neighbour blocks "
                     f"(3*{b} keys), wider than window={w}; the first and last block are always global")
        if pattern.random_blocks:
            notes.append("random blocks are drawn only in training (per head, by numpy); in eval every random slot "
                         "points at block 0")
        if length is not None:
            allowed = set(bigbird_global_positions(b, length))
            asked = set(pattern.global_mask(layout).nonzero().flatten().tolist())
            if not asked <= allowed:
                raise ValueError(f"BigBird's global tokens are its first and last block ({b} tokens each); positions "
                                 f"{sorted(asked - allowed)} cannot be global (move the prompt into the first block "
                                 f"or use Longformer's global_attention_mask)")
            cut = (5 + 2 * pattern.random_blocks) * b
            if length <= cut:
                notes.append(f"an input of {length} <= (5 + 2*{pattern.random_blocks})*{b} = {cut} tokens switches "
                             f"BigBird to full attention, and it stays switched")
        elif pattern.global_positions or pattern.global_prompt:
            raise ValueError("BigBird's global blocks depend on the length: pass layout= to check global tokens")
        applied = pattern_of(_with(cfg, config), layout) if length is not None else pattern
        return NativeArgs(family, config, {}, applied, tuple(notes))

    if family == "mistral":
        _refuse(pattern, family, causal=True)
        config = {"sliding_window": _uniform(pattern, "sliding_window", family)}
        return NativeArgs(family, config, {}, pattern_of(_with(cfg, config)), ())

    if family in LAYER_TYPED:
        _refuse(pattern, family, causal=is_causal(cfg))
        windows = pattern.window if isinstance(pattern.window, tuple) else (pattern.window,) * n
        types, w = _layer_types(windows, family)
        if family == "modernbert":
            config = {"layer_types": types, "local_attention": w if w is not None else cfg.local_attention}
        elif family == "gemma3_text" and not is_causal(cfg):
            config = {"layer_types": types, "sliding_window": w // 2 + 1 if w is not None else cfg.sliding_window}
        else:
            config = {"layer_types": types, "sliding_window": w}
            if family == "qwen2":
                config["use_sliding_window"] = w is not None
        return NativeArgs(family, config, {}, pattern_of(_with(cfg, config)), ())

    if pattern == AttentionPattern(window=None, causal=is_causal(cfg)):
        return NativeArgs(family, {}, {}, pattern, ())
    raise ValueError(f"{family} has no native sparse attention (native families: {', '.join(NATIVE_FAMILIES)}); "
                     f"apply this pattern with attnviz.with_pattern(model, pattern) (dense masks)")


def _with(cfg, updates: Mapping[str, Any]):
    """A copy of ``cfg`` with ``updates`` set (for reading the pattern the updates give)."""
    new = copy.deepcopy(cfg)
    for key, value in updates.items():
        setattr(new, key, value)
    return new


# ---- apply_native -------------------------------------------------------------------------------
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
    allowed = {"longformer": {"attention_window"}, "led": {"attention_window"},
               "big_bird": {"attention_type", "block_size", "num_random_blocks"},
               "mistral": {"sliding_window"}, "qwen2": {"sliding_window", "layer_types", "use_sliding_window"},
               "gemma2": {"sliding_window", "layer_types"}, "gemma3_text": {"sliding_window", "layer_types"},
               "modernbert": {"local_attention", "layer_types"}}.get(family, set())
    extra = sorted(set(updates) - allowed)
    if extra:
        raise ValueError(f"cannot set {extra} on a loaded {family} model; settable: {sorted(allowed) or 'none'}")
    if family in _ROPE_PER_LAYER_TYPE and "layer_types" in updates and list(updates["layer_types"]) != list(cfg.layer_types):
        raise ValueError(f"{family} picks each layer's rotary base by its layer type, so layer_types cannot change on "
                         f"loaded weights without changing positions; build the model with "
                         f"from_pretrained(name, **native.config)")
    previous = {key: _copy(getattr(cfg, key)) for key in updates}
    if family == "big_bird":
        previous["attention_type"] = bigbird_attention_type(model)
    for key, value in updates.items():
        setattr(cfg, key, _copy(value))

    if family in LONGFORMER_LIKE and "attention_window" in updates:
        windows = longformer_windows(cfg)
        for m in model.modules():
            if hasattr(m, "one_sided_attn_window_size") and hasattr(m, "layer_id"):
                m.one_sided_attn_window_size = windows[m.layer_id] // 2
    elif family == "big_bird":
        base = model.base_model
        base.block_size = cfg.block_size
        if "attention_type" in updates:
            base.set_attention_type(updates["attention_type"])
        for m in model.modules():
            if hasattr(m, "num_random_blocks") and hasattr(m, "block_size"):
                m.block_size, m.num_random_blocks = cfg.block_size, cfg.num_random_blocks
    else:
        for m in model.modules():
            idx = getattr(m, "layer_idx", None)
            if idx is None or not hasattr(m, "sliding_window") or not hasattr(cfg, "layer_types"):
                continue
            if hasattr(m, "layer_type"):
                m.layer_type = cfg.layer_types[idx]
            sliding = cfg.layer_types[idx] == "sliding_attention"
            # ModernBERT keeps sliding_window + 1 (an exclusive bound for flash attention) on its modules.
            shift = 1 if family == "modernbert" else 0
            m.sliding_window = cfg.sliding_window + shift if sliding else None
    return previous


def _copy(value):
    return list(value) if isinstance(value, (list, tuple)) else value
