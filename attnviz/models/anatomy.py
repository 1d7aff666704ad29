"""Model facts, one answer each: what a transformers model is and where its parts sit.

Every other module asks here: which ``PreTrainedModel`` to switch (:func:`base_model`), its
(text) config (:func:`config_of`), how many layers (:func:`num_layers`), whether it attends
causally (:func:`is_causal`), how many positions it embeds (:func:`max_positions`), whether its
tokenizer adds ``[CLS]`` / ``[SEP]`` (:func:`special_tokens`), where its attention modules and
layer blocks are (:func:`attention_modules`, :func:`self_attention_layers`, :func:`layer_blocks`),
and hooks that are always removed (:func:`temporary_hooks`), after TransformerLens' hook points.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import torch

#: model types whose position ids start after the pad id (RoBERTa's ``padding_idx + 1``).
OFFSET_POSITION_TYPES = ("roberta", "xlm-roberta", "camembert", "longformer")


# ---- which model, which config ------------------------------------------------------------------
def base_model(model):
    """The ``PreTrainedModel`` to switch (unwraps a PEFT model)."""
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel) and hasattr(model, "get_base_model"):
        model = model.get_base_model()
    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"model must be a transformers PreTrainedModel (or a PEFT model), got {type(model).__name__}")
    return model


def is_model(obj) -> bool:
    """Whether ``obj`` is a transformers ``PreTrainedModel`` (not a config)."""
    from transformers import PreTrainedModel

    return isinstance(obj, PreTrainedModel)


def config_of(model_or_config):
    """The (text) config of a model or config: ``model.config``, or ``text_config`` of multimodal ones."""
    from transformers import PretrainedConfig, PreTrainedModel

    if isinstance(model_or_config, PreTrainedModel):
        cfg = model_or_config.config
    elif isinstance(model_or_config, PretrainedConfig):
        cfg = model_or_config
    else:
        raise TypeError(f"expected a transformers model or config, got {type(model_or_config).__name__}")
    sub = getattr(cfg, "text_config", None)
    return sub if sub is not None and not getattr(cfg, "is_encoder_decoder", False) else cfg


def text_config(config):
    """``config.get_text_config()`` where the config has one (multimodal), else ``config``."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def family_of(model_or_config) -> str:
    """The config's ``model_type`` (e.g. ``"longformer"``, ``"big_bird"``, ``"bert"``)."""
    return config_of(model_or_config).model_type


# ---- numbers ------------------------------------------------------------------------------------
def num_layers(model_or_config, stack: str | None = None) -> int:
    """Number of attention layers of the model's main stack (LED: encoder), or of ``stack``."""
    cfg = config_of(model_or_config)
    if stack == "decoder":
        return int(getattr(cfg, "decoder_layers", None) or cfg.num_hidden_layers)
    if getattr(cfg, "is_encoder_decoder", False):
        return int(getattr(cfg, "encoder_layers", None) or cfg.num_hidden_layers)
    return int(cfg.num_hidden_layers)


def max_positions(model_or_config) -> int | None:
    """How many positions the model embeds (RoBERTa-style offsets taken off), or None if unbounded."""
    config = model_or_config.config if is_model(model_or_config) else model_or_config
    config = text_config(config)
    n = getattr(config, "max_position_embeddings", None)
    if n is not None and getattr(config, "model_type", "") in OFFSET_POSITION_TYPES:
        n -= (getattr(config, "pad_token_id", None) or 0) + 1
    return n


def position_offset(model_or_config) -> int:
    """The first position id the model uses: ``pad_token_id + 1`` for RoBERTa-style models, else 0."""
    config = model_or_config.config if is_model(model_or_config) else model_or_config
    if getattr(config, "model_type", "") not in OFFSET_POSITION_TYPES:
        return 0
    return (getattr(config, "pad_token_id", None) or 0) + 1


# ---- causal or not ------------------------------------------------------------------------------
def is_causal(model_or_config) -> bool:
    """Whether the model's main stack attends causally (decoders such as GPT-2 or Mistral).

    From the config: encoder-decoders (their main stack is the encoder) are not, ``is_decoder``
    configs are, bidirectional Gemma3 is not; a model type that transformers maps to a causal LM
    and not to a masked LM is. For a model whose type is in neither mapping, its attention
    modules' own ``is_causal`` flags decide.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    cfg = config_of(model_or_config)
    if getattr(cfg, "is_encoder_decoder", False):
        return False
    if getattr(cfg, "is_decoder", False):
        return True
    if cfg.model_type == "gemma3_text" and getattr(cfg, "use_bidirectional_attention", False):
        return False
    causal_lm = cfg.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    masked_lm = cfg.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    if (causal_lm or masked_lm) or not is_model(model_or_config):
        return causal_lm and not masked_lm
    return any(getattr(m, "is_causal", False) is True for m in self_attention_layers(model_or_config))


# ---- tokenizer ----------------------------------------------------------------------------------
def special_tokens(tokenizer=None, model=None) -> tuple[bool, bool]:
    """``(cls, sep)``: whether the tokenizer puts a token before / after the text.

    With no tokenizer, from the model: encoders have both, decoders neither.
    """
    if tokenizer is not None:
        with_special = tokenizer("a b")["input_ids"]
        plain = tokenizer("a b", add_special_tokens=False)["input_ids"]
        if len(with_special) == len(plain):
            return False, False
        return with_special[0] != plain[0], with_special[-1] != plain[-1]
    if model is None:
        raise ValueError("special_tokens needs a tokenizer or a model")
    decoder = is_causal(model)
    return not decoder, not decoder


# ---- where the parts are ------------------------------------------------------------------------
def is_cross_attention(module) -> bool:
    """Whether an attention module attends to another sequence (encoder-decoder cross attention)."""
    return bool(getattr(module, "is_cross_attention", False)) or "CrossAttention" in type(module).__name__


def self_attention_layers(model) -> list[torch.nn.Module]:
    """The self-attention modules that transformers' ``AttentionInterface`` calls, in module order:
    every module with a ``layer_idx`` that is not cross attention."""
    return [m for m in model.modules() if hasattr(m, "layer_idx") and not is_cross_attention(m)]


def attention_modules(model) -> list[tuple[torch.nn.Module, int]]:
    """(module, output index) of every self-attention module, in module order, from the models'
    ``_can_record_outputs["attentions"]`` (the hooks transformers itself uses for output_attentions)."""
    from transformers import PreTrainedModel
    from transformers.utils.output_capturing import OutputRecorder

    found, seen = [], set()
    for prefix, sub in model.named_modules():
        if not isinstance(sub, PreTrainedModel):
            continue
        specs = (getattr(sub, "_can_record_outputs", None) or {}).get("attentions")
        if specs is None:
            continue
        for spec in specs if isinstance(specs, list) else [specs]:
            if not isinstance(spec, OutputRecorder):
                spec = OutputRecorder(target_class=None if isinstance(spec, str) else spec, index=1,
                                      class_name=spec if isinstance(spec, str) else None)
            for name, m in sub.named_modules():
                full = "." + ".".join(p for p in (prefix, name) if p) + "."
                match = (spec.target_class is not None and isinstance(m, spec.target_class)) or (
                    spec.class_name is not None and full.rstrip(".").endswith(spec.class_name))
                if match and spec.layer_name is not None:
                    match = "." + spec.layer_name.strip(".") + "." in full
                if match and id(m) not in seen:
                    seen.add(id(m))
                    found.append((m, spec.index))
    return found


def layer_blocks(model, num_layers: int) -> list[torch.nn.Module]:
    """The ``num_layers`` transformer blocks of ``model`` (BERT / Longformer ``encoder.layer``,
    GPT-2 ``h``, Llama / Mistral ``layers``)."""
    for path in ("encoder.layer", "encoder.layers", "h", "layers", "transformer.h"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, torch.nn.ModuleList) and len(obj) == num_layers:
            return list(obj)
    raise ValueError(f"no list of {num_layers} layers found on {type(model).__name__} "
                     f"(looked for encoder.layer, encoder.layers, h, layers, transformer.h)")


# ---- hooks that are always removed --------------------------------------------------------------
@contextmanager
def temporary_hooks(forward: Iterable[tuple[torch.nn.Module, Callable]] = (),
                    pre: Iterable[tuple[torch.nn.Module, Callable]] = (), *,
                    with_kwargs: bool = False) -> Iterator[None]:
    """Register forward hooks (``forward``) and forward pre-hooks (``pre``) as ``(module, fn)``
    pairs for the block; every one is removed on exit, error or not."""
    handles = []
    try:
        for module, fn in forward:
            handles.append(module.register_forward_hook(fn))
        for module, fn in pre:
            handles.append(module.register_forward_pre_hook(fn, with_kwargs=with_kwargs))
        yield
    finally:
        for h in handles:
            h.remove()
