"""Measure how much the prompt changes the model: :func:`prompt_influence`, one function that
checks and groups the inputs (:mod:`~attnviz.influence.runs`) and hands each group of rows to the
method's module through the plain dict :data:`METHODS_BY_NAME`."""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from ..models import anatomy
from ..models.interface import BACKENDS
from ..patterns import AttentionPattern
from ..placement import PromptPlacement
from ..spread import spread_pattern
from . import ablation, gradient, rollout
from .result import Baseline, InfluenceMap, Method
from .runs import OutputScalar, Run, Runner, baseline_vectors, prompt_and_placement, resolve_special_tokens, row_groups

#: Each method's module: ``check(backend)``, ``run_group(run, group) -> (values, attribution)``,
#: ``notes(run)``. Adding a method is one module and one entry here.
METHODS_BY_NAME = {"ablation": ablation, "rollout": rollout, "gradient": gradient}


def prompt_influence(
    model,
    prompt,
    batch: Mapping,
    pattern: AttentionPattern | None = None,
    placement: PromptPlacement | None = None,
    method: Method = "ablation",
    baseline: Baseline | torch.Tensor = "zeros",
    backend: str = "dense",
    output: Callable | None = None,
    *,
    classifier: Callable | None = None,
    target: int | torch.Tensor | None = None,
    per_token: bool | None = None,
    integrated: bool = False,
    steps: int = 32,
    special_tokens: tuple[bool, bool] | None = None,
    tokenizer=None,
) -> InfluenceMap:
    """Measure how far and how strongly the prompt changes the model, layer by layer.

    Args:
        model: a transformers model that :func:`attnviz.with_pattern` supports (BERT / MiniLM,
            GPT-2, Mistral, ...; a task model such as ``...ForSequenceClassification`` is fine; an
            ``attnviz.prompts.PromptModel`` stands for its ``.base``), in eval mode. Its weights are
            not changed.
        prompt: the prompt vectors ``(n, H)``, or anything with ``.weight`` ``(n, H)`` and
            ``.placement`` (an ``attnviz.prompts.SoftPrompt``).
        batch: ``input_ids`` ``(B, T)`` and ``attention_mask`` (right padding) of the *text*, as the
            tokenizer gives them (special tokens included), optionally ``token_type_ids``.
        pattern: the attention pattern (default full attention; causal for decoders).
        placement: where the prompt goes; default ``prompt.placement``.
        method: ``"ablation"``, ``"rollout"`` or ``"gradient"`` (see :mod:`attnviz.influence` and
            the module of each method).
        baseline: what replaces the prompt: ``"zeros"``, ``"mean"`` (mean token embedding), or a
            tensor ``(n, H)`` / ``(H,)``. Ablation and gradient use it; rollout needs none.
        backend: ``"dense"`` (default; exact zeros, attentions for rollout), ``"sdpa"`` or ``"flex"``
            (ablation only, inference; ``flex`` cannot run backward on CPU).
        output: ``output(model_outputs) -> (B,)``, the scalar per example that attribution explains.
            Default: ``classifier``'s logit if a classifier is given, else the norm of the readout
            token's last hidden state.
        classifier: a module / callable ``(B, H) -> (B, C)`` applied to the readout token's last
            hidden state (e.g. ``prompt_model.head.classifier`` with ``cls`` pooling).
        target: the class whose logit is explained: int or ``(B,)``; default each example's
            predicted class (with the prompt).
        per_token: compute :attr:`InfluenceMap.attribution`. Default True for ``gradient`` and
            ``rollout`` (free), False for ``ablation`` (one extra forward pass per prompt token).
        integrated: ``gradient`` only: integrated gradients from the baseline to the prompt with
            ``captum`` (``pip install captum``) in ``steps`` steps, instead of grad × input.
        special_tokens: ``(cls, sep)``: whether the tokenizer put ``[CLS]`` first and ``[SEP]``
            last in each row. Default: ask ``tokenizer`` if given, else ``(True, True)`` for encoders
            and ``(False, False)`` for decoders.
        tokenizer: only to find ``special_tokens``.
    Returns:
        :class:`InfluenceMap` with ``values`` ``(B, layers + 1, L)``.
    Raises:
        ValueError: unknown method / baseline / backend, an empty batch or empty rows, a prompt
            whose size or placement differs from the layout's, a layout longer than the model's
            positions, a model in training mode.
    """
    if method not in METHODS_BY_NAME:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS_BY_NAME)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    METHODS_BY_NAME[method].check(backend)
    if integrated and method != "gradient":
        raise ValueError(f"integrated=True is integrated gradients, for method='gradient', not {method!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    base_of = getattr(model, "base", None)
    if (callable(getattr(model, "config", None)) or not hasattr(model, "config")) and hasattr(base_of, "config"):
        model = base_of  # an attnviz.prompts.PromptModel (its .config() is a method): its frozen base model
    base = anatomy.base_model(model)
    if base.training:
        raise ValueError("the model is in training mode (dropout on, so the two runs would differ at random); "
                         "call model.eval() first")
    weight, placement = prompt_and_placement(prompt, placement)
    emb = base.get_input_embeddings()
    H = emb.weight.shape[1]
    if weight.shape[1] != H:
        raise ValueError(f"the prompt has hidden size {weight.shape[1]}, the model {H}")
    num_layers = anatomy.num_layers(base)
    if pattern is None:
        pattern = AttentionPattern(causal=anatomy.is_causal(base))
    if not isinstance(pattern, AttentionPattern):
        raise TypeError(f"pattern must be an attnviz.AttentionPattern, got {type(pattern).__name__}")
    pattern.check_layers(num_layers)
    if per_token is None:
        per_token = method != "ablation"
    cls, sep = resolve_special_tokens(base, tokenizer, special_tokens)
    groups, layouts, ids = row_groups(batch, placement, pattern, cls, sep, anatomy.max_positions(base))
    device = emb.weight.device
    ids = ids.to(device)
    types = batch.get("token_type_ids")
    types = None if types is None else torch.as_tensor(types).to(device)
    if types is not None and types.shape != ids.shape:
        raise ValueError(f"token_type_ids has shape {tuple(types.shape)}, input_ids {tuple(ids.shape)}")
    weight = weight.detach().to(device=device, dtype=torch.float32)
    base_vec, base_name = baseline_vectors(baseline, weight, emb)

    B = ids.shape[0]
    n = placement.n_tokens
    L = max(l.length for l in layouts)
    values = torch.zeros(B, num_layers + 1, L)
    valid = torch.zeros(B, L, dtype=torch.bool)
    reached = torch.zeros(B, num_layers + 1, L, dtype=torch.bool)
    can_reach = torch.zeros(B, n, dtype=torch.bool)
    readout = torch.tensor([lay.readout_position for lay in layouts], dtype=torch.long)
    cache: dict = {}
    for b, lay in enumerate(layouts):
        if lay not in cache:
            rch = spread_pattern(pattern, lay, num_layers).reached
            ro = lay.readout_position
            each = torch.tensor([bool(spread_pattern(pattern, lay, num_layers, sources=[p]).reached[-1, ro])
                                 for p in lay.prompt_positions], dtype=torch.bool)
            cache[lay] = (rch, each)
        rch, each = cache[lay]
        valid[b, : lay.length] = True
        reached[b, :, : lay.length] = rch
        can_reach[b] = each

    runner = Runner(base, pattern, backend, ids, types)
    run = Run(base=base, runner=runner, weight=weight, base_vec=base_vec, n=n, readout=readout,
              scalar=OutputScalar(output, classifier, target, readout, B), per_token=per_token, integrated=integrated,
              steps=steps, backend=backend)
    attribution = torch.zeros(B, n) if per_token else None
    how = METHODS_BY_NAME[method]
    for g in groups:
        group_values, per = how.run_group(run, g)
        values[g.rows, :, :g.layout.length] = group_values
        if per is not None:
            attribution[g.rows] = per
    values = values * valid[:, None, :]

    notes: list[str] = []
    if len({l.prompt_positions for l in layouts}) > 1:
        notes.append(f"rows have different prompt positions ({placement.kind} placement, rows of different "
                     f"lengths); the mean aligns positions by index on the longest row's layout")
    notes += how.notes(run)
    return InfluenceMap(values=values, valid=valid, reached=reached, attribution=attribution, can_reach=can_reach,
                        readout=readout, layout=max(layouts, key=lambda x: x.length), layouts=tuple(layouts),
                        pattern=pattern, method=method, baseline=base_name if method != "rollout" else "none",
                        notes=tuple(notes))
