"""How much the soft prompt *does* change the model, layer by layer and token by token.

:func:`attnviz.spread` says where the prompt *can* arrive (a graph search on the masks);
:func:`prompt_influence` measures how much it does, on a real batch, with one of three methods:

* ``ablation`` (:mod:`~attnviz.influence.ablation`): the model run with the prompt and with a
  baseline in its place; the relative change of each hidden state. Exactly 0.0 where the prompt
  has not arrived (``dense`` and ``tiled`` backends; tested).
* ``rollout`` (:mod:`~attnviz.influence.rollout`): attention rollout (Abnar & Zuidema 2020) on
  the prompt columns, inside forward hooks; exactly 0.0 where unreached.
* ``gradient`` (:mod:`~attnviz.influence.gradient`): a forward-mode first-order estimate of the
  ablation map; attribution by grad × input or integrated gradients.

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
