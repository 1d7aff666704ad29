"""How much the soft prompt *does* change the model, layer by layer and token by token.

:func:`attnviz.spread` says where the prompt *can* arrive (a graph search on the masks);
:func:`prompt_influence` measures how much it does, on a real batch, with one of three methods:

``ablation``
    Run the model twice on the same layout: once with the prompt, once with the prompt vectors
    replaced by a baseline (zeros, or the mean token embedding). Influence of layer ``l`` on
    token ``t`` is ``‖h_l(with)[t] − h_l(baseline)[t]‖ / ‖h_l(with)[t]‖`` (``h_0`` = the
    embeddings output). Where ``spread`` says the prompt has not arrived, the two runs compute
    bit for bit the same numbers, so the influence is **exactly 0.0** there (dense backend;
    tested): a token that is not reached attends only to keys that are not reached, blocked keys
    get probability exactly 0 from the ``finfo.min`` additive mask (``exp`` underflows to 0.0,
    and ``0 · v`` adds nothing), and every other operation works row by row on identical inputs
    with identical shapes, hence in identical order.
``rollout``
    Attention rollout (Abnar & Zuidema 2020): per layer, average the heads, add the identity
    (the residual stream), row-normalise, and multiply through the layers. Influence is the
    rolled-out attention mass a token puts on the prompt positions. Computed inside forward hooks,
    one layer at a time, on ``(L, n_prompt)`` columns only: exact at any length the model runs,
    never ``(layers, heads, L, L)`` in memory. Exactly 0.0 where unreached, like ablation.
``gradient``
    Grad × input of the task output with respect to each prompt vector,
    ``Σ_h ∂o/∂p_jh · (p_jh − b_jh)`` (first-order estimate of how much ablating token ``j``
    changes the output ``o``), or integrated gradients (``integrated=True``, needs ``captum``).
    The map is the same first-order estimate of the ablation map, computed in one forward-mode
    pass (Jacobian · (prompt − baseline)).

Per-prompt-token attribution to the output (``InfluenceMap.attribution``, ``(B, n)``, signed:
positive = the output is larger with the token than without): gradient × input (or integrated
gradients); for rollout the rolled-out attention of the readout token on each prompt token; for
ablation (``per_token=True``, ``n`` extra forward passes) ``o(with) − o(token j ablated)``.

The batch is text only (as the tokenizer gives it, right-padded, special tokens included); each
row's layout is ``placement.layout(text_len)`` for that row's length, so a suffix prompt sits
before each row's own ``[SEP]`` and padding stays at the end. Rows whose prompt positions
coincide run together (padded to the longest), others run in groups of their own.

One concept per module: :mod:`~attnviz.influence.result` (:class:`InfluenceMap` and what is read
off it), :mod:`~attnviz.influence.runs` (inputs, grouping, the runner, the explained output), one
module per method (:mod:`~attnviz.influence.ablation`, :mod:`~attnviz.influence.rollout`,
:mod:`~attnviz.influence.gradient`), and :mod:`~attnviz.influence.measure`
(:func:`prompt_influence`, dispatching through a dict).
"""

from .measure import METHODS_BY_NAME, prompt_influence
from .result import BASELINES, METHODS, Baseline, InfluenceMap, Method, block_means, distance_profile
from .rollout import attention_rollout, rollout_step
from .runs import resolve_special_tokens

__all__ = ["BASELINES", "METHODS", "METHODS_BY_NAME", "Baseline", "Method", "InfluenceMap", "attention_rollout", "block_means",
           "distance_profile", "prompt_influence", "resolve_special_tokens", "rollout_step"]
