"""Influence by attention rollout (Abnar & Zuidema 2020).

Attention rollout (Abnar & Zuidema 2020): per layer, average the heads, add the identity
(the residual stream), row-normalise, and multiply through the layers. Influence is the
rolled-out attention mass a token puts on the prompt positions. Computed inside forward hooks,
one layer at a time, on ``(L, n_prompt)`` columns only: exact at any length the model runs,
never ``(layers, heads, L, L)`` in memory. Exactly 0.0 where unreached, like ablation.

Attribution: the readout token's rolled-out mass on each prompt token. :func:`rollout_step` and
:func:`attention_rollout` are the pure part, on given attention maps.
"""

from __future__ import annotations

import torch

from ..models import anatomy
from .runs import Group, Run, Runner


def rollout_step(attention: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """One layer of attention rollout on the source columns.

    Args:
        attention: ``(B, heads, L, L)`` probabilities of one layer (rows = queries).
        mass: ``(B, L, n)``: rolled-out attention of each token on each source so far.
    Returns:
        ``(B, L, n)``: ``norm(mean_h(attention) + I) @ mass``, where ``norm`` divides each row by
        its sum (Abnar & Zuidema 2020: the identity stands for the residual connection).
    """
    a = attention.to(torch.float32).mean(1)                            # (B, L, L)
    a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    a = a / a.sum(-1, keepdim=True)
    return a @ mass.to(a.dtype)


def attention_rollout(attentions, sources) -> torch.Tensor:
    """Attention rollout restricted to source columns, from attention maps.

    Args:
        attentions: per layer ``(B, heads, L, L)`` (e.g. ``outputs.attentions``), or one tensor
            ``(layers, B, heads, L, L)``; ``(heads, L, L)`` per layer for a single example; or an
            :class:`attnviz.AttentionMaps` from :func:`attnviz.capture_attention` holding all
            layers from 0 (exact or pooled: then units play the part of tokens, see below).
        sources: source positions (e.g. ``layout.prompt_positions``).
    Returns:
        float32 ``(B, layers + 1, L, n)``: ``[b, l, t, j]`` = rolled-out attention of token ``t``
        after ``l`` layers on source ``j`` (row 0 is the identity on the sources). Sum over ``j``
        for the mass on all sources. ``(layers + 1, L, n)`` for single-example input, and
        ``(layers + 1, U, n)`` over the units of pooled :class:`~attnviz.AttentionMaps`, where the
        transition between units is ``P[u, v] = values[u, v] * size(v)`` (the mean row of unit ``u``
        summed over the keys of ``v``) and a unit's mass is the mean over its tokens (exact when
        mass is constant within units; pool with ``keep=layout`` so prompt positions stay single).
    """
    if hasattr(attentions, "unit_of") and hasattr(attentions, "values"):   # AttentionMaps, pooled or exact
        maps = attentions
        if tuple(maps.layers) != tuple(range(len(maps.layers))):
            raise ValueError(f"rollout multiplies every layer from the first; the maps hold layers {maps.layers}. "
                             f"Capture with layers=None")
        src = [int(s) for s in sources]
        bad = [s for s in src if not 0 <= s < maps.length]
        if bad or not src:
            raise ValueError(f"sources {bad or src} must be positions in [0, {maps.length}) (at least one)")
        sizes = maps.unit_sizes.to(torch.float32)
        units = maps.unit_of[src]
        mass = torch.zeros(1, len(sizes), len(src))
        mass[0, units, torch.arange(len(src))] = 1.0 / sizes[units]
        out = [mass]
        for l in range(len(maps.layers)):
            mass = rollout_step((maps.values[l] * sizes)[None], mass)
            out.append(mass)
        return torch.stack(out, 1)[0]
    layers = list(attentions)
    if not layers:
        raise ValueError("attentions is empty: give one (B, heads, L, L) map per layer")
    single = layers[0].dim() == 3
    layers = [a[None] if single else a for a in layers]
    B, _, L, L2 = layers[0].shape
    if L != L2:
        raise ValueError(f"attention maps must be square (B, heads, L, L), got {tuple(layers[0].shape)}")
    src = [int(s) for s in sources]
    bad = [s for s in src if not 0 <= s < L]
    if bad or not src:
        raise ValueError(f"sources {bad or src} must be positions in [0, {L}) (at least one)")
    mass = torch.zeros(B, L, len(src))
    mass[:, src, torch.arange(len(src))] = 1.0
    out = [mass]
    for a in layers:
        mass = rollout_step(a, mass)
        out.append(mass)
    result = torch.stack(out, 1)
    return result[0] if single else result


def rollout_group(base, runner: Runner, g: Group, weight, n: int, readout: torch.Tensor):
    """Rollout inside forward hooks on the attention modules: ``((g, layers+1, Lg), (g, n))``."""
    mods = anatomy.attention_modules(base)
    if not mods:
        raise ValueError(f"found no attention modules in {type(base).__name__} to read probabilities from")
    Lg, rows = g.layout.length, len(g.rows)
    mass = torch.zeros(rows, Lg, n, device=weight.device)
    mass[:, list(g.layout.prompt_positions), torch.arange(n)] = 1.0
    states = [mass]

    def hook(module, args, out):
        probs = out[index[module]] if isinstance(out, tuple) else None
        if probs is None:
            raise ValueError(f"{type(module).__name__} returned no attention probabilities; rollout needs backend='dense'")
        states.append(rollout_step(probs.detach(), states[-1]))

    index = {m: i for m, i in mods}
    with anatomy.temporary_hooks([(m, hook) for m, _ in mods]), torch.no_grad():
        runner(g, weight)
    stacked = torch.stack(states, 1)                                          # (g, layers+1, Lg, n)
    per = stacked[torch.arange(rows), -1, readout.to(stacked.device)]          # (g, n)
    return stacked.sum(-1), per


def check(backend: str) -> None:
    if backend != "dense":
        raise ValueError(f"rollout needs attention probabilities, which only backend='dense' returns; got {backend!r}")


def run_group(run: Run, g: Group) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(values (g, layers + 1, Lg), attribution (g, n) or None)`` for one group of rows."""
    values, per = rollout_group(run.base, run.runner, g, run.weight, run.n, run.readout[g.rows].to(run.weight.device))
    return values.cpu(), per.cpu() if run.per_token else None


def notes(run: Run) -> list[str]:
    return ["values: rolled-out attention mass on the prompt positions (Abnar & Zuidema 2020: "
            "head mean + identity, row-normalised); attribution: the readout token's mass on each prompt token"]
