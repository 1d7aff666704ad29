"""PEFT interop: soft prompts as PEFT prompt-tuning adapters, and PEFT prompt tuning on Longformer.

**Adapters.** A PEFT prompt-tuning adapter is a folder with ``adapter_config.json`` (a
``PromptTuningConfig``) and ``adapter_model.safetensors`` holding ``prompt_embeddings``
``(num_virtual_tokens, token_dim)`` plus, for ``SEQ_CLS``, the trained head
(``base_model.classifier.*``, PEFT's ``modules_to_save``). :func:`export_peft_adapter` writes one
from a ``(n, H)`` tensor; :func:`import_peft_adapter` reads one back (safetensors only, nothing is
unpickled) as a :class:`PeftPrompt` whose placement is ``PromptPlacement("start", n)``.

**Where PEFT puts the prompt.** PEFT prepends the virtual tokens to ``inputs_embeds``, *before*
``[CLS]``: the sequence is ``P*n [CLS] t0 .. [SEP]`` of length ``L = n + T``. It passes no position
ids, so the model numbers positions ``0..L-1``: the prompt takes ``0..n-1`` and every real token
moves ``n`` positions to the right (with 512 positions, at most ``512 - n`` real tokens fit). Token
types of the prompt are 0, its attention-mask columns 1. A classifier that reads position 0 (BERT's
pooler, Longformer's head) therefore reads virtual token 0, not ``[CLS]``. attnviz calls this
placement ``"start"``; :func:`peft_equivalent_inputs` builds exactly those inputs with
:func:`attnviz.insert_prompt`, and the tests prove the logits equal PEFT's.

An attnviz prompt trained at another placement (``prefix`` after ``[CLS]``, ``infix``, ...) runs
elsewhere under PEFT and gives other outputs; :func:`export_peft_adapter` refuses it unless
``strict=False``.

**Longformer.** PEFT prompt tuning on ``LongformerForSequenceClassification`` fails both ways
(peft 0.21, transformers 5.24): with a ``global_attention_mask`` the mask lacks the ``n`` virtual
tokens ("The size of tensor a (25) must match the size of tensor b (20)"); without one,
Longformer's default global-on-[CLS] calls ``torch.zeros_like(input_ids)`` while PEFT passes only
``inputs_embeds`` ("zeros_like(): argument 'input' ... must be Tensor, not NoneType").
:func:`enable_longformer_prompt_tuning` wraps the PEFT model's ``forward`` so the same PEFT setup
runs: it prepends ``n`` columns to ``global_attention_mask`` (1 = global when ``global_prompt``)
and, when none is given, builds Longformer's default first (``[CLS]`` global for sequence
classification, nothing otherwise)::

    peft_model = get_peft_model(LongformerForSequenceClassification.from_pretrained(...),
                                PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20))
    enable_longformer_prompt_tuning(peft_model, global_prompt=True)
    peft_model(input_ids=ids, attention_mask=mask)                        # [CLS] + prompt global
    peft_model(input_ids=ids, attention_mask=mask, global_attention_mask=g)  # g (B, T): yours + prompt
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from ..placement import PromptPlacement, SequenceLayout, insert_prompt
from ..files import atomic_write

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: Key of the prompt tensor in PEFT's ``adapter_model.safetensors``.
PROMPT_KEY = "prompt_embeddings"
#: Prefix PEFT gives the ``modules_to_save`` (trained head) weights of a prompt-learning adapter.
HEAD_PREFIX = "base_model."
#: PEFT task types of single-stack models (encoder-decoders carry a prompt per stack).
TASK_TYPES = ("SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION", "CAUSAL_LM")
_PROMPT_PREPENDING = ("PROMPT_TUNING", "P_TUNING")  # PEFT types that prepend vectors to inputs_embeds


@dataclass(frozen=True)
class PeftPrompt:
    """A PEFT prompt-tuning adapter, read by :func:`import_peft_adapter`.

    Attributes:
        weight: float ``(n, H)``, ``prompt_embeddings``; vector ``j`` is virtual token ``j``.
        placement: always ``PromptPlacement("start", n)`` (PEFT prepends before ``[CLS]``).
        head: the adapter's trained head (``modules_to_save``), keyed as in the base model's
            ``state_dict`` (e.g. ``"classifier.weight"``); empty if it has none.
        config: ``adapter_config.json`` as read.
    """

    weight: torch.Tensor
    placement: PromptPlacement
    head: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return self.weight.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.weight.shape[1]


# ---- export / import --------------------------------------------------------------------------------
def _prompt_tensor(prompt) -> tuple[torch.Tensor, PromptPlacement | None]:
    """``(weight (n, H), placement or None)`` from a tensor or an object with ``.weight`` (and
    maybe ``.placement``), such as ``attnviz.prompts.SoftPrompt``."""
    placement = getattr(prompt, "placement", None)
    if getattr(prompt, "deep", None) is not None and isinstance(prompt.deep, torch.Tensor):
        raise ValueError("this is a deep prompt (per-layer vectors, PromptModel(deep=True)); a PEFT prompt-tuning adapter "
                         "holds input embeddings only, so exporting it would silently drop the layers. Export a "
                         "shallow prompt, or save the deep one with attnviz checkpoints")
    weight = getattr(prompt, "weight", prompt)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"prompt must be a (n, H) tensor or have a .weight tensor, got {type(prompt).__name__}")
    if weight.dim() != 2 or weight.shape[0] < 1:
        raise ValueError(f"prompt must have shape (n_tokens, hidden) with n_tokens >= 1, got {tuple(weight.shape)}")
    if not weight.is_floating_point():
        raise TypeError(f"prompt must be a float tensor, got {weight.dtype}")
    return weight.detach(), placement


def _model_config(model):
    if model is None:
        return None
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return getattr(model, "config", model)


#: Head modules PEFT adds to ``modules_to_save`` for ``SEQ_CLS``.
HEAD_MODULES = ("classifier", "score")


def model_head(model, modules: tuple[str, ...] = HEAD_MODULES) -> dict[str, torch.Tensor]:
    """The classification head's weights of a transformers model (or of a PEFT model's active
    adapter copy), keyed as in the base model: ``{"classifier.weight": ..., ...}``."""
    active = getattr(model, "active_adapter", "default") if hasattr(model, "get_base_model") else None
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    head = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if parts[0] not in modules or "original_module" in parts:
            continue
        if "modules_to_save" in parts:  # PEFT's ModulesToSaveWrapper: <module>.modules_to_save.<adapter>.<rest>
            i = parts.index("modules_to_save")
            if active is not None and parts[i + 1] != active:
                continue
            parts = parts[:i] + parts[i + 2:]
        head[".".join(parts)] = value.detach()
    return head


def export_peft_adapter(
    prompt,
    out_dir: str | os.PathLike,
    *,
    model=None,
    placement: PromptPlacement | None = None,
    task_type: str = "SEQ_CLS",
    head: Mapping[str, torch.Tensor] | None = None,
    base_model_name_or_path: str | os.PathLike | None = None,
    tokenizer_name_or_path: str | os.PathLike | None = None,
    num_layers: int | None = None,
    num_attention_heads: int | None = None,
    overwrite: bool = False,
    strict: bool = True,
) -> Path:
    """Write ``prompt`` as a PEFT prompt-tuning adapter folder that ``PeftModel.from_pretrained``
    loads: ``adapter_config.json`` + ``adapter_model.safetensors`` (key ``prompt_embeddings``).

    Args:
        prompt: float ``(n, H)`` tensor, or an object with ``.weight`` ``(n, H)`` and optionally
            ``.placement`` (e.g. a ``SoftPrompt``).
        out_dir: the adapter folder (created).
        model: the base model (or its config); fills ``token_dim`` checks, ``num_layers``,
            ``num_attention_heads`` and ``base_model_name_or_path`` when not given.
        placement: where the prompt was trained (default: ``prompt.placement`` if it has one).
            PEFT always runs it at ``"start"``; any other placement raises unless ``strict=False``.
        task_type: PEFT task type, one of :data:`TASK_TYPES` (``SEQ_CLS`` makes PEFT add the
            classifier to ``modules_to_save``).
        head: trained head weights keyed as in the base model's ``state_dict``
            (``{"classifier.weight": ..., "classifier.bias": ...}``); saved as PEFT saves
            ``modules_to_save`` so PEFT loads them into its copy of the head. Default for
            ``SEQ_CLS``: ``model``'s own ``classifier`` / ``score`` (PEFT cannot load a SEQ_CLS
            adapter without them).
        base_model_name_or_path, tokenizer_name_or_path: stored as ``str`` (PEFT's config is JSON;
            a ``Path`` there breaks it). The tokenizer defaults to the base model's name.
        overwrite: replace an adapter already in ``out_dir``.
        strict: refuse placements other than ``"start"``.
    Returns:
        ``out_dir`` as a ``Path``. Both files are written to temporary files and renamed; the config
        goes last, so a folder with a config is a complete adapter.
    """
    from peft import PromptTuningConfig
    from safetensors.torch import save_file

    weight, own_placement = _prompt_tensor(prompt)
    placement = placement if placement is not None else own_placement
    n, hidden = weight.shape
    if placement is not None:
        if not isinstance(placement, PromptPlacement):
            raise TypeError(f"placement must be a PromptPlacement, got {type(placement).__name__}")
        if placement.n_tokens != n:
            raise ValueError(f"placement has n_tokens={placement.n_tokens} but the prompt has {n} vectors")
        if placement.kind != "start" and strict:
            raise ValueError(
                f"PEFT prompt tuning always puts the prompt before [CLS] (placement 'start'); this prompt was "
                f"trained at {placement.kind!r}, so under PEFT it would sit elsewhere and give other outputs. "
                f"Train it with PromptPlacement('start', {n}) to match PEFT, or pass strict=False to export anyway")
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r} "
                         f"(encoder-decoder adapters carry one prompt per stack)")
    config = _model_config(model)
    if config is not None:
        hidden_model = getattr(config, "hidden_size", getattr(config, "d_model", None))
        if hidden_model is not None and hidden_model != hidden:
            raise ValueError(f"the prompt has hidden size {hidden} but the model's hidden size is {hidden_model}")
        num_layers = num_layers if num_layers is not None else getattr(config, "num_hidden_layers", None)
        num_attention_heads = (num_attention_heads if num_attention_heads is not None
                               else getattr(config, "num_attention_heads", None))
        if base_model_name_or_path is None:
            base_model_name_or_path = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None) or None
    if tokenizer_name_or_path is None:
        tokenizer_name_or_path = base_model_name_or_path
    if head is None and task_type == "SEQ_CLS":
        head = model_head(model) if hasattr(model, "state_dict") else {}
        if not head:
            raise ValueError(
                "a PEFT SEQ_CLS adapter carries the classifier (PEFT's modules_to_save; loading fails without it): "
                "pass model= a sequence-classification model (its classifier / score weights are saved) or head=")
    head = dict(head or {})
    for key, value in head.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"head[{key!r}] must be a tensor, got {type(value).__name__}")
    modules = sorted({k.split(".")[0] for k in head}) or None

    out = Path(out_dir)
    if (out / ADAPTER_CONFIG).exists() and not overwrite:
        raise FileExistsError(f"{out} already holds an adapter ({ADAPTER_CONFIG}); pass overwrite=True to replace it")
    peft_config = PromptTuningConfig(
        task_type=task_type, num_virtual_tokens=n, token_dim=hidden, num_transformer_submodules=1,
        num_attention_heads=num_attention_heads, num_layers=num_layers, inference_mode=True,
        base_model_name_or_path=None if base_model_name_or_path is None else str(base_model_name_or_path),
        tokenizer_name_or_path=None if tokenizer_name_or_path is None else str(tokenizer_name_or_path),
        modules_to_save=modules,
    )
    cfg = {k: (sorted(v) if isinstance(v, set) else v) for k, v in peft_config.to_dict().items()}
    tensors = {PROMPT_KEY: weight.contiguous().cpu()}
    tensors.update({HEAD_PREFIX + k: v.detach().contiguous().cpu() for k, v in head.items()})
    meta = {"format": "pt", "attnviz_placement": json.dumps({"kind": "start", "n_tokens": n} if placement is None
                                                            else {"kind": placement.kind, "n_tokens": n,
                                                                  "at": placement.at, "every": placement.every})}
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{ADAPTER_WEIGHTS}.writing"
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, out / ADAPTER_WEIGHTS)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write(out / ADAPTER_CONFIG, json.dumps(cfg, indent=2, sort_keys=True).encode())
    return out


def import_peft_adapter(path: str | os.PathLike, *, model=None) -> PeftPrompt:
    """Read a PEFT prompt-tuning adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``).

    Args:
        path: the adapter folder (as written by ``PeftModel.save_pretrained`` or :func:`export_peft_adapter`).
        model: optional base model (or config) to check ``token_dim`` / ``num_layers`` against.
    Returns:
        :class:`PeftPrompt` with ``placement = PromptPlacement("start", n)``: run it with
        :func:`peft_equivalent_inputs` (or a ``SoftPrompt`` at ``"start"``) to get PEFT's outputs.
    Raises:
        FileNotFoundError: no ``adapter_config.json`` / weights in ``path``.
        ValueError: not a prompt-tuning adapter, a pickle-only adapter (never unpickled), an
            encoder-decoder adapter, shapes that disagree with the config or the model.
    """
    from safetensors.torch import load_file

    path = Path(path)
    cfg_path = path / ADAPTER_CONFIG
    if not cfg_path.exists():
        raise FileNotFoundError(f"{path} is not a PEFT adapter folder: {ADAPTER_CONFIG} is missing")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{cfg_path} is not valid JSON: {exc}") from None
    peft_type = cfg.get("peft_type")
    if peft_type != "PROMPT_TUNING":
        raise ValueError(f"{path} holds a {peft_type} adapter; attnviz imports PROMPT_TUNING adapters only "
                         f"(P-tuning runs its vectors through an encoder, prefix tuning stores per-layer keys/values)")
    if cfg.get("num_transformer_submodules", 1) != 1:
        raise ValueError(f"{path} is an encoder-decoder adapter (num_transformer_submodules="
                         f"{cfg['num_transformer_submodules']}, one prompt per stack); attnviz places one prompt in one sequence")
    weights = path / ADAPTER_WEIGHTS
    if not weights.exists():
        pickled = path / "adapter_model.bin"
        if pickled.exists():
            raise ValueError(f"{path} has only {pickled.name}, a pickle; attnviz never unpickles files. Re-save it "
                             f"with PeftModel.save_pretrained(..., safe_serialization=True) where you trust it")
        raise FileNotFoundError(f"{path} has no {ADAPTER_WEIGHTS}")
    state = load_file(str(weights))
    if PROMPT_KEY not in state:
        raise ValueError(f"{weights} has no {PROMPT_KEY!r} tensor (keys: {sorted(state)})")
    weight = state.pop(PROMPT_KEY)
    n, token_dim = cfg.get("num_virtual_tokens"), cfg.get("token_dim")
    if weight.dim() != 2 or weight.shape[0] != n or (token_dim is not None and weight.shape[1] != token_dim):
        raise ValueError(f"{PROMPT_KEY} has shape {tuple(weight.shape)}, the config says "
                         f"num_virtual_tokens={n}, token_dim={token_dim}")
    unknown = [k for k in state if not k.startswith(HEAD_PREFIX)]
    if unknown:
        raise ValueError(f"{weights} has tensors attnviz does not know: {unknown}")
    head = {k[len(HEAD_PREFIX):]: v for k, v in state.items()}
    config = _model_config(model)
    if config is not None:
        hidden = getattr(config, "hidden_size", getattr(config, "d_model", None))
        layers = getattr(config, "num_hidden_layers", None)
        diffs = []
        if hidden is not None and hidden != weight.shape[1]:
            diffs.append(f"hidden size {weight.shape[1]} vs the model's {hidden}")
        if layers is not None and cfg.get("num_layers") not in (None, layers):
            diffs.append(f"num_layers {cfg['num_layers']} vs the model's {layers}")
        if diffs:
            raise ValueError(f"the adapter in {path} was made for another model: {'; '.join(diffs)} "
                             f"(adapter base model: {cfg.get('base_model_name_or_path')!r})")
    return PeftPrompt(weight, PromptPlacement("start", int(weight.shape[0])), head, cfg)


# ---- what PEFT feeds the base model -------------------------------------------------------------------
def peft_equivalent_inputs(
    model,
    input_ids: torch.Tensor,
    prompt,
    attention_mask: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
) -> dict:
    """The inputs PEFT prompt tuning gives the base model, built the attnviz way.

    ``layout = PromptPlacement("start", n).layout(T - 2)`` and
    ``inputs_embeds = insert_prompt(word_embeddings(input_ids), prompt, layout)``; the attention
    mask and token types get ``n`` leading columns (1 and 0), and ``position_ids`` are ``0..L-1``
    (the prompt takes positions ``0..n-1``, real tokens shift by ``n``), which is what the model
    numbers when PEFT passes none. ``model(**peft_equivalent_inputs(...))`` equals
    ``PeftModel(...)(input_ids, attention_mask, token_type_ids)``.

    Args:
        model: the base model (``get_input_embeddings()`` gives the word embeddings).
        input_ids: long ``(B, T)`` with the tokenizer's special tokens, padded on the right.
        prompt: float ``(n, H)`` or an object with ``.weight``.
        attention_mask, token_type_ids: ``(B, T)`` or None.
    Returns:
        dict with ``inputs_embeds (B, n + T, H)``, ``position_ids (B, n + T)`` and, when given,
        ``attention_mask`` / ``token_type_ids`` ``(B, n + T)``. (RoBERTa-style models such as
        Longformer number positions themselves from ``padding_idx + 1``; ``position_ids`` is left
        out for them so they do as under PEFT.)
    """
    weight = getattr(prompt, "weight", prompt)  # not detached: gradients flow into the prompt
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise TypeError(f"prompt must be a (n, H) tensor or have a .weight tensor, got {type(prompt).__name__}")
    B, T = input_ids.shape
    n = weight.shape[0]
    layout = start_layout(T, n)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    embeds = base.get_input_embeddings()(input_ids)
    out = {"inputs_embeds": insert_prompt(embeds, weight, layout)}
    if getattr(base.config, "model_type", "") not in ("roberta", "xlm-roberta", "camembert", "longformer"):
        out["position_ids"] = torch.arange(layout.length, device=input_ids.device).expand(B, -1)
    if attention_mask is not None:
        out["attention_mask"] = torch.cat([attention_mask.new_ones(B, n), attention_mask], dim=1)
    if token_type_ids is not None:
        out["token_type_ids"] = torch.cat([token_type_ids.new_zeros(B, n), token_type_ids], dim=1)
    return out


def start_layout(total_tokens: int, n_tokens: int) -> SequenceLayout:
    """``PromptPlacement("start", n).layout`` for ``total_tokens`` tokenizer tokens (``[CLS]`` and
    ``[SEP]`` included, padding counted as text): ``P*n`` then the tokens, as PEFT builds it."""
    if total_tokens < 2:
        raise ValueError(f"need at least [CLS] and [SEP], got {total_tokens} tokens")
    return PromptPlacement("start", n_tokens).layout(total_tokens - 2)


# ---- Longformer under PEFT -----------------------------------------------------------------------------
def extend_global_attention_mask(
    global_attention_mask: torch.Tensor | None,
    num_virtual_tokens: int,
    *,
    batch_size: int | None = None,
    length: int | None = None,
    global_prompt: bool = True,
    cls_global: bool = True,
    device=None,
) -> torch.Tensor:
    """A Longformer ``global_attention_mask`` for PEFT's ``[prompt | tokens]`` sequence.

    Args:
        global_attention_mask: ``(B, T)`` for the real tokens (1 = global), ``(B, n + T)`` (returned
            as is: already extended), or None: Longformer's default, ``[CLS]`` (token 0) global if
            ``cls_global`` (as ``LongformerForSequenceClassification`` does), else nothing.
        num_virtual_tokens: ``n``.
        batch_size, length: ``B`` and ``T``, needed when the mask is None.
        global_prompt: the ``n`` virtual tokens get global attention (attnviz's ``global_prompt``).
    Returns:
        long ``(B, n + T)``: ``n`` prompt columns (1 if ``global_prompt``), then the tokens' mask.
    """
    n = num_virtual_tokens
    if global_attention_mask is None:
        if batch_size is None or length is None:
            raise ValueError("batch_size and length are needed to build the default global mask")
        base = torch.zeros(batch_size, length, dtype=torch.long, device=device)
        if cls_global and length > 0:
            base[:, 0] = 1
    else:
        base = global_attention_mask.long()
        if base.dim() != 2:
            raise ValueError(f"global_attention_mask must be (B, T), got shape {tuple(base.shape)}")
        if length is not None and base.shape[1] == n + length:
            return base
        if length is not None and base.shape[1] != length:
            raise ValueError(f"global_attention_mask has {base.shape[1]} columns; expected {length} (the tokens) "
                             f"or {n + length} (tokens + {n} virtual tokens)")
    prompt_cols = torch.full((base.shape[0], n), int(global_prompt), dtype=torch.long, device=base.device)
    return torch.cat([prompt_cols, base], dim=1)


def enable_longformer_prompt_tuning(peft_model, *, global_prompt: bool = True):
    """Make PEFT prompt tuning run on a Longformer: wrap ``peft_model.forward`` so that every call
    passes a ``global_attention_mask`` that covers PEFT's virtual tokens
    (:func:`extend_global_attention_mask`). Calling it again replaces the setting;
    :func:`disable_longformer_prompt_tuning` removes the wrapper.

    Args:
        peft_model: a ``PeftModel`` with an active ``PROMPT_TUNING`` (or ``P_TUNING``) adapter on a
            Longformer (``LongformerForSequenceClassification``, ``LongformerModel``, ...).
        global_prompt: virtual tokens attend to all and are attended by all (as attnviz trains
            prompts on Longformer). With False they see only their local window; note that the
            classification head reads position 0, which is virtual token 0 under PEFT.
    Returns:
        ``peft_model`` (changed in place).
    """
    config = getattr(peft_model, "active_peft_config", None)
    if config is None or not hasattr(peft_model, "get_base_model"):
        raise TypeError(f"expected a PEFT model (get_peft_model / PeftModel.from_pretrained), got {type(peft_model).__name__}")
    peft_type = getattr(config.peft_type, "value", config.peft_type)
    if peft_type not in _PROMPT_PREPENDING:
        raise ValueError(f"the active adapter is {peft_type}; this helper is for PEFT types that prepend virtual "
                         f"tokens ({', '.join(_PROMPT_PREPENDING)})")
    base = peft_model.get_base_model()
    model_type = getattr(base.config, "model_type", "")
    if model_type != "longformer":
        raise ValueError(f"the base model is {type(base).__name__} (model_type={model_type!r}); this helper is for "
                         f"Longformer, whose global_attention_mask PEFT does not extend")
    disable_longformer_prompt_tuning(peft_model)
    original = peft_model.forward
    n = config.num_virtual_tokens
    cls_global = type(base).__name__.endswith("ForSequenceClassification")

    def forward(*args, **kwargs):
        input_ids = args[0] if args else kwargs.get("input_ids")
        embeds = args[2] if len(args) > 2 else kwargs.get("inputs_embeds")
        ref = input_ids if input_ids is not None else embeds
        if ref is None:
            raise ValueError("pass input_ids or inputs_embeds")
        kwargs["global_attention_mask"] = extend_global_attention_mask(
            kwargs.get("global_attention_mask"), n, batch_size=ref.shape[0], length=ref.shape[1],
            global_prompt=global_prompt, cls_global=cls_global, device=ref.device)
        return original(*args, **kwargs)

    forward.__doc__ = (f"PEFT forward with Longformer's global_attention_mask extended by {n} virtual tokens "
                       f"(global_prompt={global_prompt}); see attnviz.prompts.peft_interop.")
    forward._attnviz_original = original
    peft_model.forward = forward
    return peft_model


def disable_longformer_prompt_tuning(peft_model):
    """Remove :func:`enable_longformer_prompt_tuning`'s wrapper (no-op if there is none)."""
    if hasattr(peft_model.__dict__.get("forward"), "_attnviz_original"):
        del peft_model.__dict__["forward"]
    return peft_model
