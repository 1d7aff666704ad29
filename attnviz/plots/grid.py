"""Small multiples: several small panels of one kind side by side, one shared colour scale.

:func:`grid` is the one function that lays panels out (attention-gym's mask grids are what people
know); :func:`mask_grid` and :func:`spread_grid` feed it the heatmaps of :mod:`attnviz.plots.masks`
and :mod:`attnviz.plots.spread`, so a grid cell shows exactly what the full-size figure shows.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..patterns import AttentionPattern, as_layout
from ..placement import SequenceLayout
from ..pooling import block_edges
from ..spread import Spread
from ._style import FONT, NOTEBOOK_WIDTH, TEMPLATE


def grid(panels: Sequence[Sequence[go.BaseTraceType]], *, titles: Sequence[str] | None = None, cols: int = 3,
         title: str | None = None, width: int = NOTEBOOK_WIDTH, panel_height: int | None = None,
         x_title: str | None = None, y_title: str | None = None, y_reversed: bool = False,
         colorbar: dict | None = None, shared: bool = True) -> go.Figure:
    """Panels side by side, ``cols`` to a row, each drawn from its traces.

    Args:
        panels: one list of plotly traces per panel (their own axes are replaced by the cell's).
            The first trace with a colour bar keeps it (placed by ``colorbar``, default right of
            the grid); every other colour bar is hidden, so the panels must share one colour scale.
            Legend entries appear once per name.
        titles: one short title per panel (≤ ~30 characters at 3 columns in 860 px).
        panel_height: pixels per row (default: square panels).
        y_reversed: rows from the top (masks: query 0 at the top).
        shared: panels share their x and y ranges (the same quantity in each).
    Returns:
        a ``go.Figure``, ``len(panels)`` cells in ``ceil(len / cols)`` rows.
    """
    n = len(panels)
    if n == 0:
        raise ValueError("grid needs at least one panel")
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} panels")
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=0.04 if y_title is None else 0.05,
                        vertical_spacing=min(0.12, 0.3 / rows) if rows > 1 else 0.1,
                        shared_xaxes="all" if shared else False, shared_yaxes="all" if shared else False)
    bar_kept, names = False, set()
    for i, traces in enumerate(panels):
        r, c = divmod(i, cols)
        for t in traces:
            t = go.Figure(t).data[0]                      # a copy, not the caller's trace
            if "colorbar" in t and t.type in ("heatmap", "contour"):
                if bar_kept:
                    t.showscale = False
                else:
                    bar_kept = True
                    if colorbar is not None:
                        t.colorbar.update(colorbar)
            if t.type in ("heatmap", "contour"):
                t.showlegend = False
            elif t.showlegend is not False and t.name:
                t.legendgroup = t.name
                t.showlegend = t.name not in names
                names.add(t.name)
            fig.add_trace(t, row=r + 1, col=c + 1)
    plot_w = width - 90 - 140
    height = rows * (panel_height or int(plot_w / cols)) + 150
    fig.update_layout(template=TEMPLATE, font=FONT, width=width, height=height, plot_bgcolor="white",
                      title=dict(text=title or "", x=0.5, xanchor="center"),
                      margin=dict(l=80, r=30, t=100 if title else 50, b=70),
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.08, yanchor="top"))
    for a in fig.layout.annotations:                         # panel titles: projector size
        a.font = dict(size=14)
    fig.update_xaxes(showgrid=False, zeroline=False)
    fig.update_yaxes(showgrid=False, zeroline=False, autorange="reversed" if y_reversed else True)
    if x_title:
        for c in range(cols):
            fig.update_xaxes(title_text=x_title, row=rows, col=c + 1)
    if y_title:
        for r in range(rows):
            fig.update_yaxes(title_text=y_title, row=r + 1, col=1)
    return fig


def mask_grid(patterns: Mapping[str, AttentionPattern], layout: SequenceLayout | int, *, layer: int = 0,
              cols: int = 3, title: str | None = None, max_cells: int = 60_000,
              width: int = NOTEBOOK_WIDTH) -> go.Figure:
    """One small mask view per pattern (``{title: pattern}``), layer ``layer``, on one layout:
    the heatmap of :func:`attnviz.plots.mask_figure`, coloured by the same reasons (one shared
    legend of reasons, as a horizontal colour bar under the grid). Pooled to blocks when all
    panels together would pass ``max_cells`` cells."""
    from .masks import REASON_SHORT, _heatmap, _mask_block, _possible_reasons
    from ..patterns import WINDOW

    layout = as_layout(layout)
    if not patterns:
        raise ValueError("mask_grid needs at least one pattern")
    order = []
    for p in patterns.values():
        for code in _possible_reasons(p, layout, [layer]):
            if code not in order:
                order.append(code)
    labels = dict(REASON_SHORT)
    if any(p.window_at(layer) is None for p in patterns.values()):
        labels[WINDOW] = "window / full"
    first = next(iter(patterns.values()))
    block = _mask_block(first, layout.length, len(patterns), max_cells, None)
    edges = block_edges(layout.length, block, layout, min_width=max(1, block // 2))
    panels = [[_heatmap(p, layout, layer, edges, order, labels)] for p in patterns.values()]
    bar = dict(orientation="h", x=0.5, xanchor="center", y=-0.06, yanchor="top", len=0.95, thickness=14,
               title=dict(text=""))
    fig = grid(panels, titles=list(patterns), cols=cols, title=title, width=width, y_reversed=True,
               colorbar=bar)
    fig.update_layout(margin=dict(b=110))
    fig.update_xaxes(showticklabels=False, ticks="")
    fig.update_yaxes(showticklabels=False, ticks="")
    return fig


def spread_grid(spreads: Mapping[str, tuple[Spread, SequenceLayout]], *, cols: int = 2,
                title: str | None = None, max_cells: int = 8_000, width: int = NOTEBOOK_WIDTH,
                panel_height: int = 170) -> go.Figure:
    """One small reach view per ``{title: (spread, layout)}``: the layers × positions heatmap of
    :func:`attnviz.plots.spread_figure` (first layer reached), the readout marked. All spreads
    must have the same number of layers (one colour scale)."""
    from .spread import spread_parts

    layers = {s.reached.shape[0] for s, _ in spreads.values()}
    if len(layers) != 1:
        raise ValueError(f"spread_grid needs one number of layers, got {sorted(layers)}")
    panels = []
    for s, lay in spreads.values():
        parts = spread_parts(s, lay, max_cells=max_cells, lean=True)
        heat, readout = parts.traces[0], parts.traces[3]
        readout.showlegend = False
        panels.append([heat, readout])
    rows = layers.pop()
    bar = dict(len=1.0, y=0.5, yanchor="middle", x=1.01, thickness=14,
               tickvals=list(range(rows + 2)))
    fig = grid(panels, titles=list(spreads), cols=cols, title=title, width=width, panel_height=panel_height,
               colorbar=bar, shared=len({lay.length for _, lay in spreads.values()}) == 1, x_title="position",
               y_title="after layer")
    fig.update_layout(margin=dict(r=120))
    fig.update_yaxes(tickvals=[0, rows - 1], range=[-0.5, rows - 0.5])
    return fig
