"""A frozen model + a soft prompt + a small head, run under an attention pattern.

:class:`PromptModel` takes what a tokenizer gives (right-padded ``input_ids`` / ``attention_mask`` /
``token_type_ids``) and does, per batch:

1. the :class:`~attnviz.SequenceLayout` of every row, from the row's real length (so a ``suffix``
   prompt sits before each row's own ``[SEP]``, not after the padding);
2. ``inputs_embeds`` = the frozen word embeddings with the prompt put in by
   :func:`attnviz.insert_prompt`, right-padded to ``L = T + n_tokens``;
3. position ids ``0..L_b-1`` of each row's layout (a ``start`` prompt shifts the text, as PEFT's
   does) and token types: text tokens keep theirs, a prompt token takes the type of the token it
   is inserted before (the last token's, at the end) — so a prompt inside the second segment of a
   pair is type 1. A row is laid out as one text between ``[CLS]`` and the final ``[SEP]``: for a
   pair ``[CLS] a [SEP] b [SEP]``, ``infix`` ``at=`` counts every token after ``[CLS]``, the middle
   ``[SEP]`` included (``at=len(a) + 1`` puts the prompt right before ``b``);
4. the attention pattern: one layout for the whole batch goes through
   :func:`attnviz.with_pattern` (``dense`` / ``sdpa`` / ``flex``); rows with different layouts
   (``suffix``, short rows under ``scattered``) and pruned batches get one mask per row
   (:func:`attnviz.prompts.pruning.row_masks`, ``dense`` / ``sdpa``); Longformer gets its native
   ``attention_window`` and a ``global_attention_mask`` with the prompt positions
   (:mod:`attnviz.models.native`);
5. reach-aware pruning (:mod:`attnviz.prompts.pruning`) when the head reads one position;
6. with ``deep=True`` (P-tuning v2 style), per-layer prompt vectors ``prompt.deep[l]`` added to the
   prompt slots' hidden states at the input of every layer ``l`` (forward pre-hooks that exist only
   during the call);
7. the head on the final hidden states.

LED (encoder-decoder): the prompt is trained on its encoder (``get_encoder()``) with native
windows and a ``global_attention_mask`` holding the prompt positions when ``global_prompt``.

The base model is frozen: its parameters never require gradients and it stays in eval mode
(dropout off), also under ``PromptModel.train()``: the prompt is trained against the same function
it is used with, and pruning stays exact.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from ..blockmask import FLEX_BLOCK
from ..models import anatomy
from ..models.interface import BACKENDS, flex_kernel_count, with_pattern
from ..models.native import apply_native, to_native
from ..patterns import AttentionPattern, build_masks, describe, pattern_from_dict, pattern_to_dict  # noqa: F401  (saved runs)
from ..placement import PromptPlacement, SequenceLayout, insert_prompt, plain_layout
from .heads import ClassificationHead, QAHead, Readout
from .pruning import readout_reach, row_masks
from .soft_prompt import SoftPrompt

PRUNE = ("auto", True, False)
NATIVE = ("longformer", "led")
_NO_POSITION_IDS = ("led",)  # LED's encoder numbers positions itself (and takes no position_ids)
_CACHE = 64


@dataclass(frozen=True)
class _Plan:
    """Per-layout index maps (length ``L_b``)."""

    layout: SequenceLayout
    token: torch.Tensor    # long: tokenizer index of each slot, -1 for prompt slots
    prompt: torch.Tensor   # long: prompt ordinal of each slot, -1 for token slots
    anchor: torch.Tensor   # long: tokenizer index whose token type the slot takes


@dataclass
class PreparedBatch:
    """What :meth:`PromptModel.prepare` gives: the model inputs after prompt, layout and pruning.

    Attributes:
        inputs: keyword arguments for the base model (``inputs_embeds`` ``(B, K, H)``,
            ``attention_mask``, ``position_ids``, maybe ``token_type_ids``, ``global_attention_mask``).
        readout: :class:`~attnviz.prompts.heads.Readout` in the computed slots.
        layout: the batch's shared layout, or None when rows have their own (then ``masks`` is set).
        masks: bool ``(layers, B, K, K)`` per-row masks, or None (``with_pattern`` on ``layout``).
        kept: long ``(B, K)``: original slot of each computed slot (pruning), or None.
        length: ``L``, the unpruned length.
        prompt_slot: long ``(B, K)``: prompt ordinal ``j`` of each computed slot, ``-1`` for text
            and padding (deep prompts add their per-layer vectors there), or None (no prompt).
    """

    inputs: dict
    readout: Readout
    layout: SequenceLayout | None
    masks: torch.Tensor | None
    kept: torch.Tensor | None
    length: int
    prompt_slot: torch.Tensor | None = None


class PromptModel(nn.Module):
    """Frozen base model + :class:`SoftPrompt` (or none) + head, under an attention pattern.

    Args:
        base: a transformers model; task models (``...ForSequenceClassification``) are unwrapped to
            their base (``model.base_model``). Frozen here, in place.
        head: :class:`~attnviz.prompts.ClassificationHead` or :class:`~attnviz.prompts.QAHead`.
        prompt: the :class:`SoftPrompt`, or None for the head-only baseline (0 prompt tokens).
        pattern: the :class:`~attnviz.AttentionPattern`; default full attention (causal for decoders).
        backend: ``"dense"``, ``"sdpa"``, ``"flex"`` (trains on a GPU; inference only on CPU) or ``"native"``
            (Longformer; chosen automatically for it).
        prune: reach-aware pruning, ``"auto"`` (default, same as ``True``) or ``False``. It applies
            where it is exact and helps: the head reads one position (``cls`` / ``first``
            pooling), the backend is ``dense`` / ``sdpa``, and some positions cannot reach that
            position. ``model.last_info`` says after each call whether it ran and why not.
        tokenizer: used to tell whether inputs start with ``[CLS]`` / end with ``[SEP]``.
        special_tokens: ``(cls, sep)`` instead of asking the tokenizer; default ``(True, True)``
            for encoders, ``(False, False)`` for decoders.
        model_id: the name checkpoints record (e.g. ``"all-MiniLM-L6-v2"``).
        deep: P-tuning-v2-style deep prompt: ``prompt.deep`` ``(layers, n_tokens, H)`` (made with
            :meth:`SoftPrompt.add_layers`, zeros, if the prompt is not deep yet) is added to the
            prompt slots' hidden states at the input of every layer. Step 0 equals the shallow
            prompt exactly; the trainable count grows by ``layers * n_tokens * H``. Checkpoints save
            and resume it (``prompt.deep``); it is not a PEFT prompt-tuning adapter, so
            :func:`~attnviz.prompts.export_peft_adapter` refuses it. On sentence-pair tasks with a
            frozen encoder, a deep prompt read with mean pooling is the arm that beat the head
            alone, trained at ``lr_prompt=1e-2`` (the shallow default 3e-2 made deep runs collapse):
            the measurements are in ``benchmarks/results/nli_study.md``.
        pad_to: pad every batch with padding tokens until its length ``L`` (prompt included) is a
            multiple of ``pad_to`` (never beyond the model's positions), so a compiled kernel sees
            a few lengths instead of one per batch. ``"auto"`` (default): 128 (FlexAttention's tile)
            for ``flex``, off otherwise; ``None``: off; an int, e.g. the longest input + prompt,
            pads every batch to one length (one compilation per run). Exact: padded keys are
            masked; skipped where the prompt's position depends on the length (``suffix``).
            ``model.last_info`` reports ``length`` (padded), ``input_length`` and, for flex,
            ``flex_kernels`` (:func:`attnviz.models.interface.flex_kernel_count`).
    """

    def __init__(self, base, head: nn.Module, prompt: SoftPrompt | None = None,
                 pattern: AttentionPattern | None = None, *, backend: str = "dense", prune="auto",
                 tokenizer=None, special_tokens: tuple[bool, bool] | None = None, model_id: str | None = None,
                 deep: bool = False, pad_to: int | str | None = "auto"):
        super().__init__()
        prefix = getattr(base, "base_model_prefix", None)
        if prefix and isinstance(getattr(base, prefix, None), nn.Module):
            base = getattr(base, prefix)
        if not hasattr(base, "get_input_embeddings") or not hasattr(base, "config"):
            raise TypeError(f"base must be a transformers model, got {type(base).__name__}")
        self.family = anatomy.family_of(base)
        if self.family == "led" and hasattr(base, "get_encoder"):
            base = base.get_encoder()  # LED: the prompt goes into the encoder (native windows + global prompt)
        elif self.family != "led" and getattr(base.config, "is_encoder_decoder", False):
            raise ValueError(f"{type(base).__name__} is an encoder-decoder; PromptModel trains prompts on encoders "
                             f"(BERT, MiniLM, Longformer, LED's encoder) and decoders (GPT-2, Mistral)")
        if not isinstance(head, (ClassificationHead, QAHead)):
            raise TypeError(f"head must be a ClassificationHead or QAHead, got {type(head).__name__}")
        hidden = base.get_input_embeddings().weight.shape[1]
        if prompt is not None:
            if not isinstance(prompt, SoftPrompt):
                raise TypeError(f"prompt must be a SoftPrompt or None, got {type(prompt).__name__}")
            if prompt.hidden_size != hidden:
                raise ValueError(f"the prompt has hidden size {prompt.hidden_size}, the model {hidden}")
        head_in = head.classifier.in_features if isinstance(head, ClassificationHead) else head.qa_outputs.in_features
        if head_in != hidden:
            raise ValueError(f"the head expects hidden size {head_in}, the model has {hidden}")
        self.num_layers = anatomy.num_layers(base)
        causal = anatomy.is_causal(base)
        if pattern is None:
            pattern = AttentionPattern(window=None, causal=causal)
        if not isinstance(pattern, AttentionPattern):
            raise TypeError(f"pattern must be an AttentionPattern, got {type(pattern).__name__}")
        pattern.check_layers(self.num_layers)
        if self.family in NATIVE:
            if backend not in ("dense", "native"):
                raise ValueError(f"{self.family} applies its pattern natively (attention_window + global_attention_mask); "
                                 f"use backend='native', got {backend!r}")
            backend = "native"
            to_native(pattern, base, 64)  # raises now if the family cannot express the pattern
        elif backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}"
                             + (" ('native' is for Longformer)" if backend == "native" else ""))
        if prune not in PRUNE:
            raise ValueError(f"prune must be 'auto', True or False, got {prune!r}")
        if not isinstance(deep, bool):
            raise TypeError(f"deep must be True or False, got {deep!r}")
        if pad_to == "auto":
            pad_to = FLEX_BLOCK if backend == "flex" else None
        if pad_to is not None and (isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < 1):
            raise ValueError(f"pad_to must be an int >= 1, 'auto' or None, got {pad_to!r}")
        self.pad_to = pad_to
        if deep and prompt is None:
            raise ValueError("deep=True needs a prompt (it adds per-layer prompt vectors); got prompt=None")
        if prompt is not None and prompt.is_deep and not deep:
            raise ValueError(f"the prompt is deep over {prompt.deep.shape[0]} layers; build the model with deep=True")
        self._layer_modules = _layer_modules(base, self.num_layers) if deep else None
        if deep:
            prompt.add_layers(self.num_layers)

        for p in base.parameters():
            p.requires_grad_(False)
        base.eval()
        self.base = base
        self.prompt = prompt
        self.head = head
        self.pattern = pattern
        self.backend = backend
        self.prune = prune
        if special_tokens is None:
            special_tokens = anatomy.special_tokens(tokenizer) if tokenizer is not None else (not causal, not causal)
        self.special_tokens = (bool(special_tokens[0]), bool(special_tokens[1]))
        self.model_id = model_id or getattr(base.config, "_name_or_path", "") or type(base).__name__
        self.max_positions = anatomy.max_positions(base)
        self._position_offset = anatomy.position_offset(base)
        self._pass_token_types = getattr(base.config, "type_vocab_size", None) is not None
        self._plans: OrderedDict = OrderedDict()
        self._reach: OrderedDict = OrderedDict()
        self.last_info: dict = {}

    # ---- facts ------------------------------------------------------------------------------
    @property
    def placement(self) -> PromptPlacement | None:
        return None if self.prompt is None else self.prompt.placement

    @property
    def hidden_size(self) -> int:
        return self.base.get_input_embeddings().weight.shape[1]

    @property
    def n_tokens(self) -> int:
        return 0 if self.prompt is None else self.prompt.n_tokens

    @property
    def deep(self) -> bool:
        return self.prompt is not None and self.prompt.is_deep

    def trainable_parameters(self) -> dict[str, int]:
        """Trainable parameter counts: ``{"prompt": n_tokens * H, "head": ..., "base": 0, "total": ...}``."""
        count = lambda mod: 0 if mod is None else sum(p.numel() for p in mod.parameters() if p.requires_grad)
        out = {"prompt": count(self.prompt), "head": count(self.head), "base": count(self.base)}
        out["total"] = out["prompt"] + out["head"] + out["base"]
        return out

    def describe(self) -> str:
        """One line, e.g. ``"20-token prefix prompt, window=32, dense, cls head (5 labels)"``."""
        p = ("no prompt (head only)" if self.prompt is None else
             f"{self.n_tokens}-token {self.placement.kind} {'deep ' if self.deep else ''}prompt")
        h = (f"{self.head.pooling} head ({self.head.num_labels} labels)" if isinstance(self.head, ClassificationHead)
             else "QA head")
        return f"{p}, {describe(self.pattern)}, {self.backend}, {h}"

    def config(self) -> dict:
        """JSON-able description (model id, hidden size, pattern, placement, head, backend, prune)."""
        return {
            "model_id": self.model_id, "family": self.family, "hidden_size": self.hidden_size,
            "num_layers": self.num_layers, "pattern": pattern_to_dict(self.pattern),
            "placement": None if self.prompt is None else asdict(self.placement),
            "head": self.head.config(), "backend": self.backend, "prune": self.prune,
            "special_tokens": list(self.special_tokens),
            **({"deep": True} if self.deep else {}),
        }

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()  # frozen base: dropout stays off
        return self

    # ---- layouts ----------------------------------------------------------------------------
    def layout(self, n_input_tokens: int) -> SequenceLayout:
        """The layout of one input of ``n_input_tokens`` tokenizer tokens (special tokens included)."""
        cls, sep = self.special_tokens
        text = n_input_tokens - cls - sep
        if text < 0:
            raise ValueError(f"an input of {n_input_tokens} tokens is shorter than its special tokens "
                             f"({int(cls) + int(sep)}); empty rows?")
        if self.prompt is None:
            return plain_layout(text, cls=cls, sep=sep)
        return self.placement.layout(text, cls=cls, sep=sep)

    def _plan(self, n_input_tokens: int) -> _Plan:
        if n_input_tokens in self._plans:
            return self._plans[n_input_tokens]
        layout = self.layout(n_input_tokens)
        if self.max_positions is not None:
            layout.check_fits(self.max_positions)
        token = torch.tensor(layout.token_index, dtype=torch.long)
        prompt = torch.full_like(token, -1)
        prompt[list(layout.prompt_positions)] = torch.arange(layout.n_prompt)
        anchor = token.clone()
        nxt = -1
        for s in range(layout.length - 1, -1, -1):  # a prompt slot takes the next token's type ...
            if token[s] >= 0:
                nxt = int(token[s])
            else:
                anchor[s] = nxt
        prev = -1
        for s in range(layout.length):             # ... or the previous one's at the very end
            if token[s] >= 0:
                prev = int(token[s])
            elif anchor[s] < 0:
                anchor[s] = max(prev, 0)
        plan = _Plan(layout, token, prompt, anchor)
        self._plans[n_input_tokens] = plan
        if len(self._plans) > _CACHE:
            self._plans.popitem(last=False)
        return plan

    # ---- pruning ----------------------------------------------------------------------------
    def pruning_status(self) -> tuple[bool, str]:
        """``(possible, reason)``: whether reach-aware pruning can apply to this model at all."""
        if self.prune is False:
            return False, "pruning off (prune=False)"
        if not self.head.reads_one_position:
            return False, "the head reads every token (mean pooling or QA): nothing can be dropped"
        if self.backend not in ("dense", "sdpa"):
            return False, f"pruning runs on the dense / sdpa backends, not {self.backend!r}"
        return True, "pruning possible"

    def kept_positions(self, layout: SequenceLayout, readout: int) -> torch.Tensor:
        """long ``(K,)``: positions of ``layout`` that can reach ``readout`` (all, when nothing can go)."""
        return self._kept(layout, readout)[0]

    def _kept(self, layout: SequenceLayout, readout: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(kept (K,), masks (layers, K, K) or None)``, cached; the masks only when ``K < L``."""
        key = (layout, readout)
        if key not in self._reach:
            kept = readout_reach(self.pattern, layout, self.num_layers, readout).nonzero().flatten()
            sub = self._sub_masks(layout, kept) if len(kept) < layout.length else None
            self._reach[key] = (kept, sub)
            if len(self._reach) > _CACHE:
                self._reach.popitem(last=False)
        return self._reach[key]

    # ---- the batch --------------------------------------------------------------------------
    def prepare(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> PreparedBatch:
        """Layouts, ``inputs_embeds`` with the prompt, ids, masks and pruning for one batch.

        Args:
            input_ids: long ``(B, T)``, right-padded.
            attention_mask: ``(B, T)``, 1 for real tokens then 0 for padding (default: all 1).
            token_type_ids: ``(B, T)`` or None (zeros).
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
        B, T = input_ids.shape
        device = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids {tuple(input_ids.shape)}")
        lengths = attention_mask.long().sum(1)
        if not torch.equal(attention_mask.bool(), torch.arange(T, device=device)[None, :] < lengths[:, None]):
            raise ValueError("attention_mask must be right padding (1 ... 1 0 ... 0 per row); tokenize with "
                             "padding_side='right'")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        n = self.n_tokens
        T_in = T
        T = self._padded_tokens(T)
        if T > T_in:  # more padding on the right: masked keys, the same result for every real token
            extra = (0, T - T_in)
            input_ids = torch.nn.functional.pad(input_ids, extra)
            attention_mask = torch.nn.functional.pad(attention_mask, extra)
            token_type_ids = torch.nn.functional.pad(token_type_ids, extra)
        L = T + n
        plans = {int(t): self._plan(int(t)) for t in lengths.unique().tolist()}
        shared_plan = self._plan(T)
        shared = all(p.layout.prompt_positions == shared_plan.layout.prompt_positions for p in plans.values())

        # G[b, s]: source index of slot s in cat([tokens (T), prompt (n)]); A[b, s]: token whose type it takes.
        G = torch.empty(B, L, dtype=torch.long)
        A = torch.empty(B, L, dtype=torch.long)
        readout = torch.empty(B, dtype=torch.long)
        valid = torch.zeros(B, L, dtype=torch.bool)
        lengths_cpu = lengths.cpu()
        first = getattr(self.head, "pooling", None) == "first"
        for b in range(B):
            t = int(lengths_cpu[b])
            plan = plans[t]
            Lb = plan.layout.length
            G[b, :Lb] = torch.where(plan.token >= 0, plan.token, T + plan.prompt)
            A[b, :Lb] = plan.anchor
            G[b, Lb:] = A[b, Lb:] = torch.arange(t, T)
            valid[b, :Lb] = True
            readout[b] = 0 if first else plan.layout.readout_position  # [CLS], or a decoder's last token
        G, A, valid, readout = G.to(device), A.to(device), valid.to(device), readout.to(device)

        words = self.base.get_input_embeddings()(input_ids)                  # (B, T, H)
        embeds = self._insert(words, lengths_cpu, plans, shared_plan if shared else None, L)
        is_prompt = G >= T
        prompt_slot = torch.where(is_prompt & valid, G - T, torch.full_like(G, -1))
        token_slot = torch.full((B, T), -1, dtype=torch.long, device=device)
        real = valid & ~is_prompt
        rows, slots = real.nonzero(as_tuple=True)
        token_slot[rows, G[rows, slots]] = slots
        position_ids = torch.arange(L, device=device).expand(B, L) + self._position_offset
        types = token_type_ids.gather(1, A)
        text = real.clone()

        info = {"length": L, "input_length": T_in + n, "computed": L, "pruned": False, "per_row": not shared}
        kept = None
        masks = None
        layout = shared_plan.layout if shared else None
        possible, reason = self.pruning_status()
        if possible:
            keep_rows = [self._kept(plans[int(lengths_cpu[b])].layout, int(readout[b])) for b in range(B)]
            K = max(len(k) for k, _ in keep_rows)
            if K < L:
                kept = torch.zeros(B, K, dtype=torch.long)
                kvalid = torch.zeros(B, K, dtype=torch.bool)
                masks = torch.zeros(self.num_layers, B, K, K, dtype=torch.bool)
                new_readout = torch.empty(B, dtype=torch.long)
                for b, (kb, sub) in enumerate(keep_rows):
                    k = len(kb)
                    kept[b, :k] = kb
                    kvalid[b, :k] = True
                    if sub is None:  # a short row: all of it reaches the readout
                        sub = build_masks(self.pattern, plans[int(lengths_cpu[b])].layout, self.num_layers)
                    masks[:, b, :k, :k] = sub
                    new_readout[b] = int((kb == int(readout[b])).nonzero())
                masks[:, :, torch.arange(K), torch.arange(K)] |= ~kvalid[None]  # padding rows see themselves
                kept, kvalid, masks = kept.to(device), kvalid.to(device), masks.to(device)
                inverse = torch.full((B, L), -1, dtype=torch.long, device=device)
                r, c = kvalid.nonzero(as_tuple=True)
                inverse[r, kept[r, c]] = c
                embeds = embeds.gather(1, kept[..., None].expand(-1, -1, embeds.shape[-1]))
                position_ids = position_ids.gather(1, kept)
                types = types.gather(1, kept)
                prompt_slot = torch.where(kvalid, prompt_slot.gather(1, kept), torch.full_like(kept, -1))
                text = text.gather(1, kept) & kvalid
                valid = valid.gather(1, kept) & kvalid
                token_slot = torch.where(token_slot >= 0, inverse.gather(1, token_slot.clamp(min=0)), token_slot)
                readout = new_readout.to(device)
                layout = None
                info.update(computed=K, pruned=True)
            else:
                reason = "every position can reach the readout (global tokens or a wide window): nothing to drop"
        if not info["pruned"] and not shared and self.backend != "native":  # native: per-row global masks
            if self.backend == "flex":
                raise ValueError(f"rows of this batch need different layouts ({self.placement.kind} placement and "
                                 f"different lengths), which backend {self.backend!r} cannot take; use 'dense' or 'sdpa' "
                                 f"or batches of equal length")
            masks = torch.zeros(self.num_layers, B, L, L, dtype=torch.bool)
            for b in range(B):
                lay = plans[int(lengths_cpu[b])].layout
                masks[:, b, :lay.length, :lay.length] = build_masks(self.pattern, lay, self.num_layers)
            masks[:, :, torch.arange(L), torch.arange(L)] |= ~valid.cpu()[None]
            masks = masks.to(device)
        info["reason"] = reason
        self.last_info = info

        inputs = {"inputs_embeds": embeds, "attention_mask": valid.long(), "position_ids": position_ids}
        if self.family in _NO_POSITION_IDS:
            del inputs["position_ids"]  # 0..L-1 either way: the layout numbers slots from 0
        if self._pass_token_types:
            inputs["token_type_ids"] = types
        if self.backend == "native":
            g = torch.zeros(B, L, dtype=torch.long)
            for b in range(B):
                lay = plans[int(lengths_cpu[b])].layout
                g[b, :lay.length] = self.pattern.global_mask(lay).long()
            inputs["global_attention_mask"] = g.to(device)
        return PreparedBatch(inputs, Readout(readout, text, token_slot[:, :T_in]), layout, masks, kept, L,
                             None if self.prompt is None else prompt_slot)

    def _padded_tokens(self, T: int) -> int:
        """Tokens per row after ``pad_to`` padding (``T`` when off or not exact for this placement)."""
        if self.pad_to is None:
            return T
        n = self.n_tokens
        target = -(-(T + n) // self.pad_to) * self.pad_to
        if self.max_positions is not None:
            target = max(min(target, self.max_positions), T + n)
        padded = target - n
        if padded != T and self._plan(padded).layout.prompt_positions != self._plan(T).layout.prompt_positions:
            return T   # the prompt's place depends on the length (suffix): padding would move it
        return padded

    def _insert(self, words, lengths, plans, shared_plan, L) -> torch.Tensor:
        """``(B, L, H)``: the prompt put into each row with :func:`attnviz.insert_prompt`."""
        if self.prompt is None:
            return words
        prompt = self.prompt.weight
        if shared_plan is not None:
            return insert_prompt(words, prompt, shared_plan.layout)
        rows = torch.arange(words.shape[0])
        order, values = [], []
        for t, plan in plans.items():
            idx = rows[lengths == t]
            row = insert_prompt(words[idx, :t], prompt, plan.layout)            # (b, L_b, H)
            order.append(idx)
            values.append(torch.cat([row, words[idx, t:]], dim=1))              # its padding after it
        order = torch.cat(order)
        return torch.cat(values)[torch.argsort(order).to(words.device)]

    def _sub_masks(self, layout: SequenceLayout, kept: torch.Tensor) -> torch.Tensor:
        """bool ``(layers, K, K)``: the dense masks of ``layout`` restricted to ``kept`` positions."""
        from ..patterns import allowed

        q, k = kept[:, None], kept[None, :]
        return torch.stack([allowed(self.pattern, layout, layer, q, k) for layer in range(self.num_layers)])

    # ---- forward ----------------------------------------------------------------------------
    def hidden_states(self, batch: PreparedBatch) -> torch.Tensor:
        """Final hidden states ``(B, K, H)`` of the base model on a prepared batch."""
        if not self.deep:
            return self._hidden_states(batch)
        if self._layer_modules is None:  # the prompt was made deep after this model was built
            self._layer_modules = _layer_modules(self.base, self.num_layers)
        hooks = [(layer, self._deep_hook(i, batch.prompt_slot)) for i, layer in enumerate(self._layer_modules)]
        with anatomy.temporary_hooks(pre=hooks, with_kwargs=True):
            return self._hidden_states(batch)

    def _deep_hook(self, layer: int, prompt_slot: torch.Tensor):
        """Pre-hook of layer ``layer``: hidden ``(B, K', H)`` += ``deep[layer]`` at the prompt slots
        (``K' >= K``: Longformer pads to its window inside the model; the extra slots get nothing)."""
        is_prompt = (prompt_slot >= 0)[..., None]

        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            add = self.prompt.deep[layer][prompt_slot.clamp(min=0)] * is_prompt          # (B, K, H)
            if hidden.shape[1] > add.shape[1]:
                add = torch.nn.functional.pad(add, (0, 0, 0, hidden.shape[1] - add.shape[1]))
            hidden = hidden + add.to(hidden.dtype)
            if args:
                return (hidden, *args[1:]), kwargs
            return args, dict(kwargs, hidden_states=hidden)

        return hook

    def _hidden_states(self, batch: PreparedBatch) -> torch.Tensor:
        if batch.masks is not None:
            with row_masks(self.base, batch.masks, self.backend):
                out = self.base(**batch.inputs)
        elif self.backend == "native":
            # windows from to_native; global tokens go per row into inputs["global_attention_mask"]
            native = to_native(replace(self.pattern, global_prompt=False, global_positions=()), self.base)
            previous = apply_native(self.base, native)
            try:
                out = self.base(**batch.inputs)
            finally:
                apply_native(self.base, previous)
        else:
            with with_pattern(self.base, self.pattern, batch.layout, backend=self.backend):
                out = self.base(**batch.inputs)
            if self.backend == "flex":
                self.last_info["flex_kernels"] = flex_kernel_count()
        return out.last_hidden_state

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None):
        """Logits: ``(B, num_labels)`` for classification, ``(start (B, T), end (B, T))`` for QA."""
        batch = self.prepare(input_ids, attention_mask, token_type_ids)
        return self.head(self.hidden_states(batch), batch.readout)


def _layer_modules(base, num_layers: int) -> list:
    """The ``num_layers`` transformer blocks of ``base``, for the deep prompt's pre-hooks."""
    try:
        return anatomy.layer_blocks(base, num_layers)
    except ValueError:
        raise ValueError(f"deep=True needs the model's list of {num_layers} layers; none found on {type(base).__name__} "
                         f"(looked for encoder.layer, h, layers); use deep=False") from None


def placement_from_dict(d: dict | None) -> PromptPlacement | None:
    return None if d is None else PromptPlacement(**d)
