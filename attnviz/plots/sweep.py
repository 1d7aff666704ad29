"""The figures of a prompt-reach sweep (``attnviz sweep``), from its result rows.

* :func:`sweep_accuracy_figure` — held-out accuracy per cell with 95 % Wilson intervals, through
  :func:`attnviz.plots.results.accuracy_figure` (one bar per cell, colour = placement and global prompt).
* :func:`influence_by_layer_figure` — the trained prompt's ablation influence on ``[CLS]``, layer by layer.

A row is one cell of ``results.json`` (``key``, ``kind``, ``window``, ``placement``,
``global_prompt``, ``accuracy``, ``n_test``, ``influence_cls_by_layer``, ``same_as``).
"""

from __future__ import annotations

import plotly.graph_objects as go

from ._style import OKABE_ITO
from .results import accuracy_figure


def _arm(row: dict) -> str:
    if row["kind"] == "head_only":
        return "head only"
    return f"{row['placement']}, global {'on' if row['global_prompt'] else 'off'}"


def sweep_accuracy_figure(rows: list[dict]) -> go.Figure:
    """Held-out accuracy per cell (one bar each, labelled by the cell's key), 95 % Wilson intervals
    from each cell's ``n_test``; colour = placement and global prompt (head-only cells their own)."""
    return accuracy_figure({r["key"]: r["accuracy"] for r in rows}, {r["key"]: r["n_test"] for r in rows},
                           groups={r["key"]: _arm(r) for r in rows}, horizontal=True,
                           title="Held-out accuracy per cell")


def influence_by_layer_figure(rows: list[dict]) -> go.Figure:
    """Lines: mean ablation influence of the trained prompt on the readout token ``[CLS]``, layer
    by layer (log axis; exact zeros, where the prompt has not arrived, leave gaps). Two panels,
    global prompt off | on; colour = placement, dash = window, black = full attention. A cell whose
    prompt never reaches ``[CLS]`` is named "never" in the legend (it has no points)."""
    from plotly.subplots import make_subplots

    placements = list(dict.fromkeys(r["placement"] for r in rows if r["kind"] != "head_only"))
    colours = {p: OKABE_ITO[i % (len(OKABE_ITO) - 1)] for i, p in enumerate(placements)}   # black is full attention
    windows = sorted({r["window"] for r in rows if r["window"] is not None})
    dashes = dict(zip(windows, ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"] * 4))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("global prompt off", "global prompt on"))
    for r in rows:
        vals = r.get("influence_cls_by_layer")
        if not vals or r.get("same_as"):
            continue
        y = [v if v > 0 else None for v in vals]
        full = r["window"] is None
        name = f"{'full' if full else 'w' + str(r['window'])} {r['placement']}" + ("" if any(y) else " (never)")
        line = dict(color="black" if full else colours.get(r["placement"], "#7f7f7f"),
                    dash="solid" if full else dashes[r["window"]], width=2)
        fig.add_scatter(x=list(range(len(vals))), y=y, mode="lines+markers", name=name, line=line,
                        legendgroup="on" if r["global_prompt"] else "off",
                        legendgrouptitle_text="global on" if r["global_prompt"] else "global off",
                        connectgaps=False, row=1, col=2 if r["global_prompt"] else 1,
                        hovertemplate=f"{r['key']}<br>layer %{{x}}: %{{y:.3g}}<extra></extra>")
    fig.update_xaxes(title="layer (0 = embeddings)", dtick=1)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title="relative change of [CLS]", row=1, col=1)
    fig.update_layout(title="Influence of the prompt on [CLS], layer by layer (gaps = exactly 0: not reached yet)",
                      template="plotly_white", width=1100, height=620, legend=dict(groupclick="toggleitem", font=dict(size=11)))
    return fig
