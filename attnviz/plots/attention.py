"""The attention view: who attends whom in one layer (one head, or the mean of the heads).

:func:`attention_figure` draws :class:`attnviz.capture.AttentionMaps` (exact or pooled) as a
queries × keys heatmap, with the segments of the :class:`~attnviz.SequenceLayout` as strips along
both axes and the prompt's rows and columns outlined, so "does the text look at the prompt, and
the prompt at the text?" reads off the picture. It computes nothing but the head mean.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..placement import SequenceLayout
from ._style import FONT, TEMPLATE, SEGMENT_COLORS, FigureParts, positions_text, segment_legend, segment_strip

PROMPT_LINE = dict(color=SEGMENT_COLORS["prompt"], width=1.5)


def attention_matrix(maps, layer: int, head: int | None = None) -> torch.Tensor:
    """float32 ``(U, U)``: the map of model layer ``layer`` and head ``head`` (None: mean of the
    captured heads) out of ``maps.values`` ``(layers, heads, U, U)``. Raises ``ValueError`` when
    that layer or head was not captured."""
    if layer not in maps.layers:
        raise ValueError(f"layer {layer} was not captured; captured layers: {list(maps.layers)}")
    v = maps.values[maps.layers.index(layer)]
    if head is None:
        return v.to(torch.float32).mean(0)
    if head not in maps.heads:
        raise ValueError(f"head {head} was not captured; captured heads: {list(maps.heads)}, or None for the mean")
    return v[maps.heads.index(head)].to(torch.float32)


def _prompt_runs(layout: SequenceLayout) -> list[tuple[int, int]]:
    """Contiguous runs ``(start, stop)`` of prompt positions."""
    runs: list[list[int]] = []
    for p in layout.prompt_positions:
        if runs and runs[-1][1] == p:
            runs[-1][1] = p + 1
        else:
            runs.append([p, p + 1])
    return [tuple(r) for r in runs]


def attention_parts(maps, layout: SequenceLayout | None = None, layer: int | None = None, head: int | None = None,
                    *, tokens=None, title: str | None = None, max_outlines: int = 40, log: bool = False,
                    decades: int = 4) -> FigureParts:
    """The data of :func:`attention_figure` as :class:`~attnviz.plots._style.FigureParts` (``log``:
    colour by ``log10`` of the weight over the top ``decades`` decades, exact zeros blank): traces
    ``[heatmap (x4, y4), key strip (x2, y2), query strip (x3, y3), legend entries...]`` and the
    layout that changes with them (title, ranges, prompt outlines). A live figure applies them in
    place without building a new figure (plotly's ``make_subplots`` costs more than the data)."""
    layer = maps.layers[0] if layer is None else layer
    z = attention_matrix(maps, layer, head).cpu().numpy().astype(np.float64)
    L, U = maps.length, z.shape[-1]
    if layout is not None and layout.length != L:
        raise ValueError(f"the maps cover {L} positions but the layout has {layout.length}")
    e = np.asarray(maps.edges)
    exact = U == L
    weights = z
    if log:   # values spanning decades (a global prompt row of ~1/64 next to a 0.9 diagonal) stay visible
        with np.errstate(divide="ignore"):
            z = np.where(weights > 0, np.log10(np.where(weights > 0, weights, 1.0)), np.nan)
    if exact:
        if tokens is not None and len(tokens) != L:
            raise ValueError(f"tokens has {len(tokens)} labels for {L} positions")
        labels = np.asarray([str(t) for t in tokens] if tokens is not None else np.arange(L).astype(str))
        text = np.char.add(np.char.add(np.char.add(np.char.add(labels[:, None], " → "), labels[None, :]), ": "),
                           np.char.mod("%.3g", weights))
        hover = "query %{y} → key %{x}<br>%{text}<extra></extra>"
        heat = go.Heatmap(z=z, x=e - 0.5, y=e - 0.5, text=text, hovertemplate=hover)
    else:
        cd = np.empty((U, U, 4), dtype=np.int32)
        cd[..., 0] = e[:-1, None]
        cd[..., 1] = e[1:, None] - 1
        cd[..., 2] = e[None, :-1]
        cd[..., 3] = e[None, 1:] - 1
        hover = ("queries %{customdata[0]}–%{customdata[1]} → keys %{customdata[2]}–%{customdata[3]}: "
                 + ("mean 10^%{z:.2f}" if log else "mean %{z:.3g}") + "<extra></extra>")
        heat = go.Heatmap(z=z, x=e - 0.5, y=e - 0.5, customdata=cd, hovertemplate=hover)
    bar = dict(title=dict(text="attention"), thickness=16, outlinewidth=1, outlinecolor="#999", len=0.9, y=0.45,
               yanchor="middle")
    if log:
        top = float(np.ceil(np.nanmax(z))) if np.isfinite(z).any() else 0.0
        ticks = list(range(int(top) - decades, int(top) + 1))
        bar.update(title=dict(text="attention<br>(log)"), tickvals=ticks,
                   ticktext=[f"{10.0 ** t:g}" for t in ticks])
        heat.update(colorscale="Blues", zmin=top - decades, zmax=top, name="attention", xaxis="x4", yaxis="y4",
                    colorbar=bar)
    else:
        heat.update(colorscale="Blues", zmin=0.0, zmax=float(z.max()) if z.size and z.max() > 0 else 1.0,
                    name="attention", xaxis="x4", yaxis="y4", colorbar=bar)
    traces = [heat]
    shapes = []
    if layout is not None:
        traces.append(segment_strip(layout, maps.edges, "h").update(xaxis="x2", yaxis="y2"))
        traces.append(segment_strip(layout, maps.edges, "v").update(xaxis="x3", yaxis="y3"))
        traces += [t.update(xaxis="x4", yaxis="y4") for t in segment_legend(layout)]
        runs = _prompt_runs(layout)
        if len(runs) <= max_outlines:
            for a, b in runs:  # the prompt's columns (keys) and rows (queries)
                shapes.append(dict(type="rect", xref="x4", yref="y4 domain", x0=a - 0.5, x1=b - 0.5, y0=0, y1=1,
                                   line=PROMPT_LINE))
                shapes.append(dict(type="rect", yref="y4", xref="x4 domain", y0=a - 0.5, y1=b - 0.5, x0=0, x1=1,
                                   line=PROMPT_LINE))
    if title is None:
        who = "mean of heads" if head is None else f"head {head}"
        res = "" if exact else f" · pooled to {U} blocks (prompt kept exact)"
        where = f" · prompt at {positions_text(layout.prompt_positions)}" if layout is not None and layout.n_prompt else ""
        res += " · log colour" if log else ""
        title = f"Attention in layer {layer}, {who}<br><span style='font-size:15px'>L={L}{where}{res} · rows: queries, columns: keys</span>"
    return FigureParts(traces=traces, layout={"title": {"text": title}, "xaxis4": {"range": [-0.5, L - 0.5]},
                                              "yaxis4": {"range": [L - 0.5, -0.5]}, "shapes": shapes})


def attention_figure(maps, layout: SequenceLayout | None = None, layer: int | None = None, head: int | None = None,
                     *, tokens=None, title: str | None = None, size: int = 620, max_outlines: int = 40,
                     log: bool = False) -> go.Figure:
    """Queries × keys heatmap of one layer's attention.

    Args:
        maps: :class:`attnviz.capture.AttentionMaps` of one sequence (exact or pooled).
        layout: the sequence's layout (segments, prompt positions); None: plain positions.
        layer: model layer to draw (default the first captured).
        head: head to draw, or None for the mean over the captured heads.
        tokens: optional labels ``(L,)`` for the hover of exact maps (e.g. from
            :func:`attnviz.plots.bertviz_view.token_labels`).
        title: replaces the default title.
        size: width of the heatmap area in pixels.
        max_outlines: outline the prompt's rows and columns when it has at most this many runs.
        log: colour by ``log10`` of the weights (4 decades; exact zeros blank): weights that span
            decades, such as a 64-token window next to global prompt rows of ~1/64, all stay visible.
    Returns:
        a ``go.Figure``: ``data[0]`` the heatmap (``z`` = :func:`attention_matrix`, its ``log10`` with ``log``, ``x`` / ``y`` =
        the unit edges ``- 0.5``), then the key and query segment strips, then the legend entries
        (the traces of :func:`attention_parts`).
    """
    parts = attention_parts(maps, layout, layer, head, tokens=tokens, title=title, max_outlines=max_outlines, log=log)
    fig = make_subplots(rows=2, cols=2, shared_xaxes=True, shared_yaxes=True, column_widths=[0.035, 0.965],
                        row_heights=[0.035, 0.965], horizontal_spacing=0.01, vertical_spacing=0.01)
    fig.add_traces(parts.traces)
    fig.update_layout(title=dict(text=parts.layout["title"]["text"], x=0.5, xanchor="center"), font=FONT, template=TEMPLATE,
                      plot_bgcolor="white", width=size + 160, height=size + 150, margin=dict(l=60, r=30, t=90, b=90),
                      shapes=parts.layout["shapes"],
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.08, yanchor="top"))
    fig.update_xaxes(range=parts.layout["xaxis4"]["range"], showgrid=False, zeroline=False, row=2, col=2,
                     title_text="key")
    fig.update_yaxes(range=parts.layout["yaxis4"]["range"], showgrid=False, zeroline=False, row=2, col=2)
    fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, row=1, col=2)
    fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, row=2, col=1)
    fig.update_yaxes(title_text="query", showgrid=False, zeroline=False, row=2, col=1)
    fig.update_xaxes(showgrid=False, zeroline=False, showticklabels=False, row=1, col=1)
    fig.update_yaxes(showgrid=False, zeroline=False, showticklabels=False, row=1, col=1)
    return fig
