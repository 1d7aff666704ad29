"""Influence by ablation: the model run with the prompt and with the prompt replaced by a baseline.

Run the model twice on the same layout: once with the prompt, once with the prompt vectors
replaced by a baseline (zeros, or the mean token embedding). Influence of layer ``l`` on
token ``t`` is ``‖h_l(with)[t] − h_l(baseline)[t]‖ / ‖h_l(with)[t]‖`` (``h_0`` = the
embeddings output). Where ``spread`` says the prompt has not arrived, the two runs compute
bit for bit the same numbers, so the influence is **exactly 0.0** there (dense and tiled
backends; tested): a token that is not reached attends only to keys that are not reached, blocked keys
get probability exactly 0 from the ``finfo.min`` additive mask (``exp`` underflows to 0.0,
and ``0 · v`` adds nothing), and every other operation works row by row on identical inputs
with identical shapes, hence in identical order.

Attribution (``per_token=True``, ``n`` extra forward passes): ``o(with) − o(token j ablated)``.
"""

from __future__ import annotations

import torch

from .runs import Group, Run, hidden_states, relative_change


def check(backend: str) -> None:
    """Every backend runs ablation (exact zeros where unreached on ``dense`` and ``tiled``)."""


def run_group(run: Run, g: Group) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(values (g, layers + 1, Lg), attribution (g, n) or None)`` for one group of rows."""
    rows = g.rows
    with torch.no_grad():
        out_with = run.runner(g, run.weight, output_hidden_states=True)
        out_base = run.runner(g, run.base_vec, output_hidden_states=True)
        hw, hb = hidden_states(out_with), hidden_states(out_base)
        values = torch.stack([relative_change(a, c) for a, c in zip(hw, hb)], 1).cpu()
        if not run.per_token:
            return values, None
        run.scalar.prepare(run.runner, g, run.weight, run.base_vec, out_with, out_base)
        o_with = run.scalar(out_with, rows)
        per = torch.zeros(len(rows), run.n)
        for j in range(run.n):
            p = run.weight.clone()
            p[j] = run.base_vec[j]
            per[:, j] = (o_with - run.scalar(run.runner(g, p, output_hidden_states=True), rows)).float().cpu()
    return values, per


def notes(run: Run) -> list[str]:
    out = []
    if run.per_token:
        out.append("attribution: output(with prompt) − output(prompt token j replaced by the baseline), output = "
                   + run.scalar.description)
    if run.backend in ("sdpa", "flex"):
        out.append(f"backend {run.backend!r}: exact zeros where unreached are only guaranteed on 'dense' and 'tiled'")
    return out
