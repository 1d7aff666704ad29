"""Result charts: accuracies with their uncertainty, and reach curves of several patterns.

* :func:`accuracy_figure` — one bar per arm, a 95 % Wilson interval from the counts (how many of
  ``n`` held-out examples were right), chance as a dashed line.
* :func:`reach_lines_figure` — the share of positions the prompt has reached after each layer, one
  line per pattern (several schedules in one picture).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import plotly.graph_objects as go

from ..spread import Spread
from ..stats import wilson_interval
from ._style import FONT, NOTEBOOK_WIDTH, OKABE_ITO, TEMPLATE


def accuracy_figure(accuracy: Mapping[str, float], n: int | Mapping[str, int], *, chance: float | None = None,
                    groups: Mapping[str, str] | None = None, title: str | None = None, horizontal: bool = False,
                    width: int = NOTEBOOK_WIDTH, height: int | None = None) -> go.Figure:
    """Bars of held-out accuracy per arm (``{label: accuracy}``) with 95 % Wilson intervals from
    ``n`` examples (one count, or one per arm); ``chance`` as a dashed line; ``groups`` colours
    arms by a category (``{label: "global prompt"}``) with a legend. ``horizontal``: one row per
    arm, labels on the left (for long labels)."""
    labels = list(accuracy)
    ns = {k: (n[k] if isinstance(n, Mapping) else n) for k in labels}
    lo, hi = zip(*(wilson_interval(round(accuracy[k] * ns[k]), ns[k]) for k in labels)) if labels else ((), ())
    cats = [groups.get(k, "") if groups else "" for k in labels]
    palette = {c: OKABE_ITO[i % len(OKABE_ITO)] for i, c in enumerate(dict.fromkeys(cats))}
    fig = go.Figure()
    for cat in palette:
        idx = [i for i, c in enumerate(cats) if c == cat]
        names = [labels[i] for i in idx]
        acc = [accuracy[labels[i]] for i in idx]
        err = dict(type="data", symmetric=False, array=[hi[i] - accuracy[labels[i]] for i in idx],
                   arrayminus=[accuracy[labels[i]] - lo[i] for i in idx], color="#333", thickness=1.5)
        value = "%{x:.3f}" if horizontal else "%{y:.3f}"
        fig.add_trace(go.Bar(
            x=acc if horizontal else names, y=names if horizontal else acc, orientation="h" if horizontal else "v",
            name=cat or "accuracy", showlegend=bool(cat), marker_color=palette[cat],
            error_x=err if horizontal else None, error_y=None if horizontal else err,
            customdata=[[lo[i], hi[i], ns[labels[i]]] for i in idx],
            hovertemplate=f"%{{{'y' if horizontal else 'x'}}}: {value} (95 % interval %{{customdata[0]:.2f}}–"
                          "%{customdata[1]:.2f}, n=%{customdata[2]})<extra></extra>"))
    if chance is not None:   # a dashed line named in the legend (a label on the plot would sit on a bar)
        line = dict(color="#555", dash="dash", width=1.5)
        if horizontal:
            fig.add_vline(x=chance, line=line)
        else:
            fig.add_hline(y=chance, line=line)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, name=f"chance {chance:.2f}",
                                 hoverinfo="skip"))
    value_axis = dict(title_text="held-out accuracy", range=[0, 1.05], tickformat=".0%")
    long = max(map(len, labels), default=0)
    label_axis = dict(tickangle=-30 if not horizontal and long * len(labels) > 90 else 0,
                      categoryorder="array", categoryarray=labels)          # the caller's order, not by group
    if horizontal:
        label_axis.update(autorange="reversed", automargin=True)
    fig.update_layout(template=TEMPLATE, font=FONT, width=width, barmode="overlay", bargap=0.25,
                      height=height or (190 + 34 * len(labels) if horizontal else 480),
                      title=dict(text=title or "Held-out accuracy (bars: 95 % interval)", x=0.5, xanchor="center"),
                      xaxis=value_axis if horizontal else label_axis, yaxis=label_axis if horizontal else value_axis,
                      legend=dict(orientation="h", x=0.5, xanchor="center", yref="container", y=0, yanchor="bottom"),
                      margin=dict(l=70, r=20, t=90, b=110 if horizontal else 150))
    return fig


def reach_lines_figure(spreads: Mapping[str, Spread], *, title: str | None = None, dash: Sequence[str] = (),
                       width: int = NOTEBOOK_WIDTH, height: int = 420) -> go.Figure:
    """Share of positions reached after each layer (``Spread.fraction_reached``), one line per
    ``{name: spread}``; names in ``dash`` are drawn dashed (e.g. the reference schedules)."""
    fig = go.Figure()
    for i, (name, s) in enumerate(spreads.items()):
        n = s.reached.shape[0]
        y = [float(s.fraction_reached(l)) for l in range(n)]
        fig.add_trace(go.Scatter(x=list(range(n)), y=y, mode="lines+markers", name=name,
                                 line=dict(color=OKABE_ITO[i % len(OKABE_ITO)], width=3,
                                           dash="dash" if name in dash else "solid"),
                                 marker=dict(size=8),
                                 hovertemplate=f"{name}<br>after layer %{{x}}: %{{y:.1%}}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, font=FONT, width=width, height=height,
                      title=dict(text=title or "How much of the sequence the prompt has reached", x=0.5,
                                 xanchor="center"),
                      xaxis=dict(title_text="after layer", dtick=1),
                      yaxis=dict(title_text="share of positions reached", tickformat=".0%", rangemode="tozero"),
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.3, yanchor="top"),
                      margin=dict(l=80, r=20, t=70, b=140))
    return fig
