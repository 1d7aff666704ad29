"""Run a Hugging Face model under an attnviz pattern, through transformers' ``AttentionInterface``.

:func:`with_pattern` registers one attention function (and the matching mask function) under a
fresh name, switches the model to it with ``model.set_attn_implementation`` and switches it back
on exit. The attention function is called once per layer with ``module.layer_idx``; it takes the
mask the model already built (padding, causality, a native sliding window) and additionally blocks
every pair that :func:`attnviz.build_masks` blocks for that layer. So the effective attention is
``model mask AND pattern mask``, and for a model without its own window it is the pattern exactly.

Backends (all from the same :func:`attnviz.build_masks` / :func:`attnviz.mask_mod` rule):

=========  ==============================================  ==========  ======================
backend    how                                             attentions  trains (backward)
=========  ==============================================  ==========  ======================
``dense``  the model's own eager attention with an         yes         yes
           additive float mask (0 allowed, ``finfo.min``
           blocked); memory ``B * H * L * L``
``sdpa``   ``torch.nn.functional.scaled_dot_product_       no (None)   yes
           attention`` with the same float mask; faster
``flex``   FlexAttention with a ``BlockMask`` per layer     no (None)   not on CPU (torch has
           built from the pattern's structure                           no CPU backward); on
           (:func:`attnviz.blockmask.block_mask`: no                    GPU yes
           ``L²`` evaluation, cached per layer and
           length; padding folded in per tile);
           compiled with ``torch.compile`` by default
``tiled``  exact attention on the pattern's non-empty      via         yes (memory grows
           tiles only, in plain PyTorch            ``on_tile``  with autograd; meant
           (:func:`attnviz.tiled_attention.                          for inference)
           tiled_attention`): memory ``O(L · w)``, no
           compile; hands every tile's probabilities to
           ``on_tile`` (what long-input capture uses)
=========  ==============================================  ==========  ======================

Flex compiles its kernel once per distinct input signature (length, batch, heads, head size, dtype,
grad mode, mask structure). :func:`flex_kernel_count` says how many signatures this process has
run; training pads flex batches to a few lengths (:class:`attnviz.prompts.PromptModel`'s
``pad_to``) so that number stays small, and :func:`flex_trains_on` says where flex has a backward.

Why the mask function matters: transformers only builds the padding / causal mask for names it
finds in ``AttentionMaskInterface``; without it the padding mask would arrive as ``None`` and padded
keys would silently be attended. And a *boolean* 4D mask under eager attention is added as ``+1.0``
(it masks nothing), so every mask is converted to an additive float mask here.
"""

from __future__ import annotations

import importlib
import itertools
import sys
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import (
    AttentionMaskInterface,
    add_offsets_to_mask_function,
    and_masks,
    bidirectional_mask_function,
    causal_mask_function,
    eager_mask,
    padding_mask_function,
    prepare_padding_mask,
)

from ..blockmask import FLEX_BLOCK, block_mask, block_tables, key_tiles, tables_to_block_mask
from ..patterns import AttentionPattern, build_masks, mask_mod
from ..tiled_attention import tiled_attention
from ..placement import SequenceLayout
from .anatomy import base_model, is_cross_attention, max_positions, self_attention_layers
from .anatomy import text_config as text_config_of
from .families import FAMILIES, OWN_ATTENTION

from ..choices import BACKENDS  # noqa: E402  (defined once, torch-free)

#: Device types where torch's FlexAttention has a backward (it has none on CPU).
FLEX_BACKWARD_DEVICES = ("cuda", "xpu")


_MAX_CACHED_LENGTHS = 8
_names = itertools.count()


# ---- public ------------------------------------------------------------------------------------
@contextmanager
def with_pattern(
    model,
    pattern: AttentionPattern,
    layout: SequenceLayout | None = None,
    backend: str = "dense",
    *,
    compile: bool | None = None,
    on_tile: Callable | None = None,
) -> Iterator:
    """Inside the ``with`` block, ``model``'s self-attention follows ``pattern``, layer by layer.

    Args:
        model: a ``PreTrainedModel`` whose attention uses transformers' ``AttentionInterface``
            (BERT / MiniLM, GPT-2, Llama, Mistral, ...), or a PEFT model wrapping one.
            Longformer / BigBird / LED have their own sparse attention: see ``attnviz.models.native``.
        pattern: the :class:`attnviz.AttentionPattern`; per-layer tuples need one entry per layer.
            A decoder needs ``causal=True``; a causal pattern on an encoder is allowed (it warns).
        layout: a :class:`attnviz.SequenceLayout` (e.g. a text with a soft prompt inserted by
            :func:`attnviz.insert_prompt`): every input must then be exactly ``layout.length`` long,
            and ``global_prompt`` makes its prompt positions global. ``None``: plain text, no prompt;
            masks are built for each observed length ``L`` (positions ``0..L-1``) and cached.
        backend: ``"dense"``, ``"sdpa"`` or ``"flex"`` (see the module docstring):

            * ``dense`` returns attention probabilities ``(B, H, L, L)`` with
              ``output_attentions=True``, exactly ``0.0`` wherever the pattern or padding blocks;
              gradients flow (train prompts through ``inputs_embeds``).
            * ``sdpa`` is faster and trains, but returns no attention probabilities (``None``).
            * ``flex`` returns no attention probabilities and cannot run backward on CPU (run it
              under ``torch.no_grad()``); it refuses attention dropout > 0 and softcapping.
              A query row whose allowed keys are all padding gives zeros (dense: a uniform row);
              such rows belong to padded positions only.
        compile: flex only. ``None`` (default): ``torch.compile`` the FlexAttention kernel, and fall
            back to uncompiled flex with a warning if compiling fails. ``True``: compile, errors
            propagate. ``False``: uncompiled flex, which materialises the full ``(B, H, L, L)``
            scores (for checks on small inputs). Compiling takes ~15 s per new shape / window on CPU.
        on_tile: tiled only. ``on_tile(layer, batch_row, query_positions (tq,), key_positions (nk,),
            probs (H, tq, nk))`` receives the exact probabilities of every computed tile (blocked
            pairs 0), e.g. to pool them as they come (:func:`attnviz.capture_attention` does).

    Yields:
        ``model`` itself. On exit (also after an exception) the attention implementation of every
        (sub)config is restored; weights are never touched, so outputs are bit-for-bit as before.

    Works on whole sequences: queries and keys must have the same length (no KV-cache decoding).
    Pattern positions are sequence indices, so pad batches on the right (a left-padded row would
    shift its tokens against ``global_positions`` and the layout). Cross-attention layers are left
    as they are.

    Raises:
        ValueError: unknown backend; model without AttentionInterface support; per-layer settings
            for another number of layers; layout longer than the model's positions; a bidirectional
            pattern on a causal decoder; ``flex`` where torch has no FlexAttention.
        TypeError: ``pattern`` / ``layout`` / ``model`` of the wrong type.

    Example::

        with with_pattern(model, AttentionPattern(window=8, global_positions=(0,))) as m:
            out = m(**tokenizer(text, return_tensors="pt"), output_attentions=True)
    """
    patched = _PatternAttention(model, pattern, layout, backend, compile, on_tile)
    mask_function = _flex_base_mask if backend in ("flex", "tiled") else eager_mask
    with attention_function(patched.model, patched.name, patched._attention, mask_function):
        yield model


@contextmanager
def attention_function(model, name: str, attention: Callable, mask_function: Callable) -> Iterator:
    """Inside the block, ``model`` (a ``PreTrainedModel``) runs ``attention`` in every attention
    layer, registered in transformers' ``AttentionInterface`` under ``name`` (with ``mask_function``
    in ``AttentionMaskInterface``: without it padding would arrive as ``None``). On exit, error or
    not, every (sub)config's attention implementation is restored and both names are unregistered."""
    configs = {id(m.config): m.config for m in model.modules() if isinstance(m, PreTrainedModel)}
    saved = [(c, c._attn_implementation_internal) for c in configs.values()]
    original = model.config._attn_implementation
    AttentionInterface.register(name, attention)
    AttentionMaskInterface.register(name, mask_function)
    try:
        model.set_attn_implementation(name)
        if model.config._attn_implementation != name:
            raise ValueError(
                f"{type(model).__name__} refused attn_implementation={name!r}; it does not "
                f"dispatch through AttentionInterface"
            )
        yield model
    finally:
        try:
            if model.config._attn_implementation != original:
                model.set_attn_implementation(original)
        finally:
            for config, impl in saved:
                config._attn_implementation_internal = impl
            AttentionInterface._global_mapping.pop(name, None)
            AttentionMaskInterface._global_mapping.pop(name, None)


def flex_trains_on(device) -> bool:
    """True when FlexAttention can run backward on ``device`` (a ``torch.device`` or string):
    CUDA (and ROCm, which torch calls cuda) and XPU; not CPU or MPS."""
    return torch.device(device).type in FLEX_BACKWARD_DEVICES


def flex_training_error(device) -> str:
    """The message for training with ``backend='flex'`` on a device without a FlexAttention backward."""
    device = torch.device(device)
    return (f"backend='flex' cannot train on {device.type.upper()} (device {str(device)!r}: torch {torch.__version__} "
            f"has no FlexAttention backward there, only on {' / '.join(FLEX_BACKWARD_DEVICES)}); train with "
            f"backend='dense' or 'sdpa', or run on a GPU")


_FLEX_SIGNATURES: set = set()


def flex_kernel_count() -> int:
    """Distinct signatures (batch, heads, length, head size, dtype, device, grad mode, mask
    structure) the compiled FlexAttention kernel has been called with in this process: each costs
    at most one compilation. Bounded when inputs come in a few lengths; dynamo falls back to
    uncompiled flex (full ``L²`` scores) after ``torch._dynamo.config.recompile_limit`` (8) of them
    for one mask structure."""
    return len(_FLEX_SIGNATURES)


# ---- the patch ---------------------------------------------------------------------------------
class _PatternAttention:
    """State of one ``with_pattern`` block: the checks, the masks and the registered functions."""

    def __init__(self, model, pattern, layout, backend, compile, on_tile=None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
        if not isinstance(pattern, AttentionPattern):
            raise TypeError(f"pattern must be an attnviz.AttentionPattern, got {type(pattern).__name__}")
        if layout is not None and not isinstance(layout, SequenceLayout):
            raise TypeError(
                f"layout must be an attnviz.SequenceLayout or None (plain text), got {type(layout).__name__}"
            )
        if compile not in (None, True, False):
            raise TypeError(f"compile must be None, True or False, got {compile!r}")
        self.model = base_model(model)
        if on_tile is not None and backend != "tiled":
            raise ValueError(f"on_tile needs backend='tiled' (the only backend that computes tiles), got backend={backend!r}")
        self.pattern, self.layout, self.backend, self.compile = pattern, layout, backend, compile
        self.on_tile = on_tile
        config = self.model.config
        text_config = text_config_of(config)

        check_supported(self.model)
        self.num_layers = getattr(text_config, "num_hidden_layers", None)
        if self.num_layers is None:
            raise ValueError(f"{type(self.model).__name__}'s config has no num_hidden_layers; cannot map the pattern to layers")
        pattern.check_layers(self.num_layers)

        self.attention_modules = self_attention_layers(self.model)
        causal_flags = [m.is_causal for m in self.attention_modules if isinstance(getattr(m, "is_causal", None), bool)]
        model_causal = any(causal_flags) and getattr(text_config, "is_causal", True) is not False
        if model_causal and not pattern.causal:
            raise ValueError(
                f"{type(self.model).__name__} is a causal decoder but the pattern is bidirectional "
                f"(causal=False): its windows and global tokens would look at future tokens the model must "
                f"not see. Use AttentionPattern(..., causal=True) (window = Mistral's sliding_window)"
            )
        if causal_flags and not model_causal and pattern.causal:
            warnings.warn(
                f"causal pattern on the bidirectional encoder {type(self.model).__name__}: every token will "
                f"attend only to earlier tokens, which the model was not trained for. Use causal=False for "
                f"Longformer-style windows",
                UserWarning,
                stacklevel=4,
            )
        native_window = getattr(text_config, "sliding_window", None)
        if native_window is not None and getattr(text_config, "use_sliding_window", True):
            warnings.warn(
                f"the model's own sliding_window={native_window} still applies under the pattern "
                f"(attention = both masks); load it with sliding_window=None to let the pattern decide alone",
                UserWarning,
                stacklevel=4,
            )

        if layout is not None:
            limit = max_positions(self.model)
            if limit is not None:
                layout.check_fits(limit)
            pattern.global_mask(layout)  # raises on global positions outside the layout
        self._masks: OrderedDict = OrderedDict()  # (L, device) -> (bool (layers, L, L), full: list[bool])

        self._eager: dict = {}  # attention class -> the model file's eager_attention_forward
        if backend in ("flex", "tiled"):
            self._flex = _flex_api()
        self.name = f"attnviz_{backend}_{next(_names)}"

    # -- masks ---------------------------------------------------------------------------------
    def _check_call(self, layer, length: int) -> None:
        if not isinstance(layer, int) or not 0 <= layer < self.num_layers:
            raise ValueError(
                f"attention module reports layer_idx={layer!r}, outside the pattern's layers [0, {self.num_layers})"
            )
        if self.layout is not None and length != self.layout.length:
            raise ValueError(
                f"the input has {length} positions but the layout has length {self.layout.length} "
                f"({self.layout.n_tokens} tokens + {self.layout.n_prompt} prompt tokens); build inputs_embeds "
                f"with attnviz.insert_prompt(embeds, prompt, layout), or pass layout=None for plain text"
            )

    def _layer_mask(self, layer: int, length: int, device) -> torch.Tensor | None:
        """bool ``(L, L)`` of ``layer`` (``[q, k]`` = q may attend k), or None if it allows everything."""
        if self.pattern.is_full(layer):
            return None   # full attention: nothing to build (an (L, L) mask per layer would be 4 GB at 64k)
        key = (length, str(device))
        if key not in self._masks:
            masks = build_masks(self.pattern, self.layout or length, self.num_layers, device=device)
            self._masks[key] = (masks, [bool(m.all()) for m in masks])
            if len(self._masks) > _MAX_CACHED_LENGTHS:
                self._masks.popitem(last=False)
        masks, full = self._masks[key]
        return None if full[layer] else masks[layer]

    def _flex_block_mask(self, layer: int, length: int, device, attention_mask):
        """The ``BlockMask`` of ``layer``: the pattern's tiles AND the model's own mask, from the
        structure (never evaluating a ``mask_mod`` over ``L²``), or None when nothing is masked.

        ``attention_mask`` is what the registered mask function built: normally a ``BlockMask``
        carrying ``_ModelMask`` (padding and which mask function the model asked for); a
        ``BlockMask`` or a 4D tensor passed in by the caller is ANDed through its ``mask_mod``.
        """
        _, _, BlockMask = self._flex
        layout = self.layout or length
        full_pattern = self.pattern.is_full(layer)
        info = getattr(attention_mask, "_attnviz_model_mask", None) if isinstance(attention_mask, BlockMask) else None
        if attention_mask is None or (info is not None and info.padding is None and info.implied_by(self.pattern)):
            # The cached BlockMask of (pattern, layout, layer, device): same object every forward.
            return None if full_pattern else block_mask(self.pattern, layout, layer, device=device)
        if info is not None and info.implied_by(self.pattern):
            return block_mask(self.pattern, layout, layer, key_padding=info.padding, device=device)
        # Any other model mask (a native sliding window, offsets, a caller's 4D mask): the pattern's
        # non-empty tiles, all evaluated (partial), with mask_mod = model mask AND pattern.
        pattern_mod = block_mask(self.pattern, layout, layer, device=device).mask_mod
        if isinstance(attention_mask, BlockMask):
            base_mod, batch = attention_mask.mask_mod, attention_mask.shape[0]
        else:  # a 4D tensor the caller passed in: allowed where 0 / True
            base = _allowed_from_tensor(attention_mask)
            base_mod, batch = (lambda b, h, q, k: base[b, 0, q, k]), base.shape[0]
        tables = block_tables(self.pattern, layout, layer, FLEX_BLOCK)
        partial = tables.nonempty.to(device)[None].expand(batch, -1, -1)
        if info is not None and info.padding is not None:
            partial = partial & key_tiles(info.padding.to(device), FLEX_BLOCK)[1][:, None, :]
        return tables_to_block_mask(torch.zeros_like(partial), partial, and_masks(base_mod, pattern_mod),
                                    length, FLEX_BLOCK, device)

    # -- the registered attention function -----------------------------------------------------
    def _attention(self, module, query, key, value, attention_mask, **kwargs):
        """Called by each attention layer: query ``(B, H, Q, D)``, key / value ``(B, Hkv, K, D)``,
        ``attention_mask`` as built by the registered mask function. Returns ``(out (B, Q, H, D),
        probabilities (B, H, Q, K) or None)``."""
        if is_cross_attention(module) or query.shape[-2] != key.shape[-2]:
            if not is_cross_attention(module):
                raise ValueError(
                    f"with_pattern works on whole sequences: {query.shape[-2]} queries against "
                    f"{key.shape[-2]} keys in layer {module.layer_idx} (KV-cache decoding?); call the model "
                    f"on the full sequence with use_cache=False"
                )
            return self._run(module, query, key, value, attention_mask, None, **kwargs)
        layer, length = module.layer_idx, key.shape[-2]
        self._check_call(layer, length)
        if self.backend == "flex":
            # From the pattern's structure: no dense (L, L) mask and no L² mask_mod evaluation.
            block = self._flex_block_mask(layer, length, query.device, attention_mask)
            return self._flex_forward(module, query, key, value, block, **kwargs)
        if self.backend == "tiled":
            return self._tiled_forward(module, query, key, value, attention_mask, layer, length, **kwargs)
        allowed = self._layer_mask(layer, length, query.device)
        return self._run(module, query, key, value, attention_mask, allowed, **kwargs)

    def _run(self, module, query, key, value, attention_mask, allowed, **kwargs):
        """Dense / sdpa attention with the model's mask AND ``allowed`` (bool ``(Q, K)`` or None)."""
        if self.backend in ("flex", "tiled"):  # cross-attention: the model's own mask only
            return self._flex_forward(module, query, key, value, _as_block_mask(attention_mask, self._flex), **kwargs)
        mask = additive_mask(attention_mask, query.dtype)
        if allowed is not None and mask is not None and self.pattern.prefix_lm is not None:
            # prefix-LM is an exception to causal: open the prefix square in a decoder's own causal mask,
            # keeping its key padding (the last query's row: causal lets it see every key but the padded)
            P = self.pattern.prefix_length(self.layout or key.shape[-2])
            mask = mask.clone()
            mask[..., :P, :P] = mask[..., -1:, :P]
        if allowed is not None:
            # masked_fill, not "+ bias": min + min would overflow to -inf (NaN rows under softmax).
            if mask is None:  # fill fresh zeros in place: one (L, L) float alive, not two
                mask = query.new_zeros((1, 1) + tuple(allowed.shape))
                mask.masked_fill_(~allowed, torch.finfo(mask.dtype).min)
            else:
                mask = mask.masked_fill(~allowed, torch.finfo(mask.dtype).min)
        if self.backend == "sdpa":
            return sdpa_attention_forward(module, query, key, value, mask, **kwargs)
        if type(module) not in self._eager:
            self._eager[type(module)] = eager_function(module)
        return self._eager[type(module)](module, query, key, value, mask, **kwargs)

    def _flex_forward(self, module, query, key, value, block_mask, *, scaling=None,
                      dropout=0.0, softcap=None, s_aux=None, position_bias=None, **kwargs):
        """FlexAttention with ``block_mask`` (a ``BlockMask`` or None = no mask)."""
        flex_attention = self._flex[0]
        if dropout:
            raise ValueError(
                f"backend='flex' has no attention dropout, got dropout={dropout}; call model.eval() or use backend='dense'"
            )
        if softcap is not None or s_aux is not None or position_bias is not None:
            raise ValueError("backend='flex' here supports neither softcap, attention sinks nor position bias; use backend='dense'")
        if not flex_trains_on(query.device) and torch.is_grad_enabled() and (
            query.requires_grad or key.requires_grad or value.requires_grad
        ):
            raise ValueError(
                f"backend='flex' is inference-only on {query.device.type.upper()} (torch {torch.__version__} has no "
                f"FlexAttention backward on {query.device.type.upper()}): run the model under torch.no_grad(), or "
                f"train with backend='dense' or 'sdpa'"
            )
        out = self._flex_call(flex_attention, query, key, value, block_mask=block_mask, scale=scaling,
                              enable_gqa=query.shape[1] != key.shape[1])
        return out.transpose(1, 2).contiguous(), None

    def _tiled_forward(self, module, query, key, value, attention_mask, layer, length, *, scaling=None,
                       dropout=0.0, softcap=None, s_aux=None, position_bias=None, **kwargs):
        """Exact attention on the pattern's non-empty tiles (AND the model's mask and padding),
        ``O(L · w)`` memory; every tile's probabilities go to ``on_tile``."""
        if dropout and module.training:
            raise ValueError(f"backend='tiled' has no attention dropout, got dropout={dropout}; call model.eval()")
        if softcap is not None or s_aux is not None or position_bias is not None:
            raise ValueError("backend='tiled' supports neither softcap, attention sinks nor position bias; use backend='dense'")
        device = query.device
        layout = self.layout or length
        nonempty = block_tables(self.pattern, layout, layer, FLEX_BLOCK).nonempty.to(device)
        info = getattr(attention_mask, "_attnviz_model_mask", None)
        if info is not None and info.padding is not None:
            nonempty = nonempty[None] & key_tiles(info.padding.to(device), FLEX_BLOCK)[1][:, None, :]
        pattern_mod = mask_mod(self.pattern, layout, layer, device=device)
        # The model's own mask function matters only where the pattern does not already imply it
        # (a native sliding window, offsets); a plain causal / bidirectional one adds just padding —
        # and must add nothing more, or a prefix-LM pattern would lose its prefix square to "causal".
        implied = info is not None and info.implied_by(self.pattern)
        padding = info.padding.to(device) if implied and info.padding is not None else None
        model_mod = None if attention_mask is None or implied else attention_mask.mask_mod
        zero = torch.zeros((), dtype=torch.long, device=device)

        def pair_allowed(b, q_idx, kv_idx):
            ok = pattern_mod(None, None, q_idx, kv_idx)
            if padding is not None:
                ok = ok & padding[b, kv_idx]
            if model_mod is not None:
                ok = ok & model_mod(zero + b, zero, q_idx, kv_idx)
            return ok.expand(q_idx.shape[0], kv_idx.shape[-1])

        sink = None
        if self.on_tile is not None:
            def sink(b, q_pos, k_pos, probs):
                self.on_tile(layer, b, q_pos, k_pos, probs)
        scale = query.shape[-1] ** -0.5 if scaling is None else scaling
        out = tiled_attention(query, key, value, scale=scale, nonempty=nonempty, pair_allowed=pair_allowed,
                              block_size=FLEX_BLOCK, on_tile=sink)
        return out, None

    def _flex_call(self, flex_attention, query, key, value, **kw):
        if self.compile is not False and not torch.compiler.is_compiling():
            mask = kw.get("block_mask")
            mod = getattr(mask, "mask_mod", None)
            _FLEX_SIGNATURES.add((tuple(query.shape), tuple(key.shape), query.dtype, query.device.type,
                                  torch.is_grad_enabled() and query.requires_grad,
                                  None if mod is None else getattr(mod, "__code__", type(mod)),
                                  None if mask is None else tuple(mask.shape)))
            try:
                return _compiled(flex_attention)(query, key, value, **kw)
            except Exception as exc:  # inductor unusable here (no C++ compiler, unsupported dtype, ...)
                if self.compile is True:
                    raise
                warnings.warn(
                    f"torch.compile of FlexAttention failed ({type(exc).__name__}: {str(exc)[:200]}); using "
                    f"uncompiled flex, which materialises the full (B, H, L, L) scores",
                    RuntimeWarning,
                )
                self.compile = False
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            return flex_attention(query, key, value, **kw)


# ---- helpers -----------------------------------------------------------------------------------
def check_supported(model: PreTrainedModel) -> None:
    """Raise a ValueError naming the fix unless ``model`` dispatches attention through transformers'
    ``AttentionInterface`` (BERT, GPT-2, Llama, Mistral, ...; not Longformer / BigBird / LED)."""
    model_type = getattr(model.config, "model_type", "")
    if model_type in OWN_ATTENTION:
        raise ValueError(
            f"{type(model).__name__} (model_type={model_type!r}) has its own sparse attention that does not go "
            f"through transformers' AttentionInterface; use attnviz.models.native to translate the pattern into "
            f"its native arguments (attention_window, global_attention_mask, block sizes)"
        )
    if getattr(model.config, "is_encoder_decoder", False):
        raise ValueError(
            f"{type(model).__name__} is an encoder-decoder (model_type={model_type!r}); with_pattern supports "
            f"encoder-only and decoder-only models (BERT, GPT-2, Llama, Mistral, ...)"
        )
    can_set = getattr(type(model), "_can_set_attn_implementation", None)
    if can_set is not None and not can_set():
        raise ValueError(
            f"{type(model).__name__} (model_type={model_type!r}) does not route attention through transformers' "
            f"AttentionInterface, so with_pattern cannot reach it; supported are models such as BERT, GPT-2, "
            f"Llama, Mistral"
            + (f"; {model_type} is a native family: translate the pattern with attnviz.models.native.to_native and "
               f"apply_native" if model_type in FAMILIES else "; for Longformer / BigBird / LED use attnviz.models.native")
        )


def eager_function(module) -> Callable:
    """The ``eager_attention_forward`` of the module's modeling file (exactly what ``"eager"`` runs),
    or a generic one (GQA-aware, as Llama's) where the file has none."""
    fn = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    return fn if callable(fn) else _generic_eager


def _generic_eager(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    n_rep = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, n_rep), repeat_kv(value, n_rep)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def additive_mask(mask, dtype: torch.dtype) -> torch.Tensor | None:
    """An additive float mask (0 allowed, ``finfo.min`` blocked). Boolean masks (True = attend) are
    converted: eager attention *adds* the mask, and ``True`` would be added as ``+1.0``."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros((), dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def _allowed_from_tensor(mask: torch.Tensor) -> torch.Tensor:
    """bool ``(B, 1, Q, K)`` from a 4D bool or 0 / ``finfo.min`` float mask."""
    if mask.dim() != 4:
        raise ValueError(f"expected a 4D attention mask (B, 1, Q, K), got shape {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        return mask
    blocked = mask <= torch.finfo(mask.dtype).min / 2
    if not bool(((mask == 0) | blocked).all()):
        raise ValueError("backend='flex' takes masks of 0 / -inf only; this float mask carries biases, use backend='dense'")
    return ~blocked


def _flex_api():
    """``(flex_attention, create_block_mask, BlockMask)``, or a ValueError where torch lacks them."""
    try:
        module = importlib.import_module("torch.nn.attention.flex_attention")
        return module.flex_attention, module.create_block_mask, module.BlockMask
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"backend='flex' needs torch.nn.attention.flex_attention (torch >= 2.5), not available in torch "
            f"{torch.__version__} ({exc}); use backend='dense' or 'sdpa', or upgrade torch"
        ) from exc


_COMPILED: dict = {}


def _compiled(flex_attention) -> Callable:
    if flex_attention not in _COMPILED:
        _COMPILED[flex_attention] = torch.compile(flex_attention)
    return _COMPILED[flex_attention]


class _ModelMask:
    """What the model asked its mask function for, kept on the ``BlockMask`` the flex backend's
    mask function returns (as ``_attnviz_model_mask``) so each layer can AND it with the pattern
    from the structure.

    ``kind``: ``"bidirectional"`` / ``"causal"`` (transformers' plain mask functions, no offsets) or
    ``"other"`` (a native sliding window, chunks, offsets: only its ``mask_mod`` is known).
    ``padding``: bool ``(B, K)``, True at real keys, or None when every key is real.
    """

    __slots__ = ("kind", "padding")

    def __init__(self, kind: str, padding: torch.Tensor | None):
        self.kind, self.padding = kind, padding

    def implied_by(self, pattern: AttentionPattern) -> bool:
        """True when the pattern's mask already lies inside the model's mask function (padding aside)."""
        return self.kind == "bidirectional" or (self.kind == "causal" and pattern.causal)


def _flex_base_mask(batch_size: int, q_length: int, kv_length: int, q_offset: int = 0, kv_offset: int = 0,
                    mask_function: Callable = causal_mask_function, attention_mask: torch.Tensor | None = None,
                    device="cpu", **kwargs):
    """The ``AttentionMaskInterface`` function of the flex backend: the model's own mask function
    (causal / bidirectional / sliding window) AND the 2D padding mask, as a ``BlockMask``
    ``(B, 1, Q, K)`` built from the padding's structure (tiles with a real key are partial, the
    rest empty; no ``mask_mod`` evaluation). Each layer then ANDs the pattern's tiles to it."""
    _flex_api()
    kind = "other"
    if not q_offset and not kv_offset:
        kind = ("bidirectional" if mask_function is bidirectional_mask_function
                else "causal" if mask_function is causal_mask_function else "other")
    padding = None
    if attention_mask is not None:
        padding = prepare_padding_mask(attention_mask, kv_length, kv_offset)
        mask_function = and_masks(mask_function, padding_mask_function(padding))
        padding = padding[:, kv_offset:kv_offset + kv_length].to(device=device, dtype=torch.bool)
    mask_function = add_offsets_to_mask_function(mask_function, q_offset, kv_offset)
    nt_q, nt_k = -(-q_length // FLEX_BLOCK), -(-kv_length // FLEX_BLOCK)
    partial = torch.ones(batch_size, nt_q, nt_k, dtype=torch.bool, device=device)
    if padding is not None:
        partial &= key_tiles(padding, FLEX_BLOCK)[1][:, None, :]
    result = tables_to_block_mask(torch.zeros_like(partial), partial, mask_function, (q_length, kv_length),
                                  FLEX_BLOCK, device)
    result._attnviz_model_mask = _ModelMask(kind, None if padding is None or bool(padding.all()) else padding)
    return result


def _as_block_mask(attention_mask, flex_api):
    """A cross-attention layer's mask as a ``BlockMask`` (or None)."""
    if attention_mask is None or isinstance(attention_mask, flex_api[2]):
        return attention_mask
    base = _allowed_from_tensor(attention_mask)
    B, _, Q, K = base.shape
    nt_q, nt_k = -(-Q // FLEX_BLOCK), -(-K // FLEX_BLOCK)
    partial = torch.ones(B, nt_q, nt_k, dtype=torch.bool, device=base.device)
    return tables_to_block_mask(torch.zeros_like(partial), partial, lambda b, h, q, k: base[b, 0, q, k],
                                (Q, K), FLEX_BLOCK, base.device)
