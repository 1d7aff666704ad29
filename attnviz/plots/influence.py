"""Influence views: how much the prompt changes each token after each layer, against distance, and
per prompt token.

* :func:`influence_figure` — layers × positions heatmap of :class:`attnviz.influence.InfluenceMap`
  (one example or the mean), with the segment strip on top and the structural frontier of
  ``spread`` drawn over it: every cell below the line is exactly 0 (drawn blank), so the picture
  shows the measured and the structural view side by side. Long sequences are pooled to blocks.
* :func:`influence_distance_figure` — mean influence against distance from the nearest prompt
  token, one line per layer.
* :func:`attribution_figure` — per-prompt-token attribution to the output, one bar each; tokens
  that cannot reach the readout structurally are marked ×.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..influence import InfluenceMap, block_means, distance_profile
from ..patterns import describe
from ..pooling import block_edges
from ..spread import first_layer_of
from ._style import (FONT, NOTEBOOK_WIDTH, TEMPLATE, wrap_subtitle, SEGMENT_COLORS, SEGMENT_LABELS, axis_refs, positions_text, segment_legend, segment_strip,
                     thin_segment_marks)
from .spread import layer_colors

METHOD_TEXT = {
    "ablation": "‖Δh‖ / ‖h‖ when the prompt is replaced by the baseline",
    "rollout": "rolled-out attention mass on the prompt",
    "gradient": "first-order ‖J·(prompt − baseline)‖ / ‖h‖",
}
COLORBAR_TEXT = {"ablation": "‖Δh‖ / ‖h‖", "rollout": "mass on<br>the prompt", "gradient": "‖J·δ‖ / ‖h‖"}
FRONTIER_COLOR = "#d62728"
UNREACHABLE_COLOR = "#bdbdbd"


def _layer_labels(n: int) -> list[str]:
    return ["embeddings (0)"] + [f"layer {l}" for l in range(1, n + 1)]


def _select(result: InfluenceMap, example: int | None):
    """``(values (layers+1, L), reached (layers+1, L), layout, label)`` of one example or the mean."""
    if example is None:
        return result.mean, result.reached_any, result.layout, (
            f"mean of {result.batch_size} example{'s' if result.batch_size > 1 else ''}")
    if isinstance(example, bool) or not isinstance(example, int) or not 0 <= example < result.batch_size:
        raise ValueError(f"example must be None (the mean) or in [0, {result.batch_size}), got {example!r}")
    lay = result.layouts[example]
    return (result.values[example, :, : lay.length], result.reached[example, :, : lay.length], lay,
            f"example {example}")


def influence_figure(result: InfluenceMap, *, example: int | None = None, log: bool = False,
                     max_cells: int = 20_000, block: int | None = None, title: str | None = None,
                     width: int = NOTEBOOK_WIDTH, height: int | None = None) -> go.Figure:
    """Layers × positions heatmap of the measured influence.

    Args:
        result: from :func:`attnviz.influence.prompt_influence`.
        example: one example of the batch, or None for :attr:`InfluenceMap.mean`.
        log: colour by ``log10`` of the influence (spans many decades; exact zeros stay blank).
        max_cells: heatmap cells; above ``(layers + 1) * L`` positions are pooled to blocks
            (block means, :func:`attnviz.influence.block_means`).
        block: force a block length (1 = full resolution).
        title: replaces the default title.
    Returns:
        a ``plotly.graph_objects.Figure``: ``data[0]`` the heatmap (``z`` = influence, or its log10;
        ``customdata`` = the influence itself; exact zeros are ``NaN`` in ``z`` and drawn blank),
        ``data[1]`` the segment strip, ``data[2]`` the spread frontier (red steps: over each token,
        the layer it is first reached; below them the influence is exactly 0; for the mean: in at
        least one example), ``data[3]`` the readout marker.
    """
    values, reached, layout, label = _select(result, example)
    values = values.detach().to(torch.float32).cpu()
    rows, L = values.shape
    n = rows - 1
    if block is None:
        block = 1 if rows * L <= max_cells else -(-L // max(1, max_cells // rows))
    edges = block_edges(L, block, layout, min_width=max(1, block // 2)) if block > 1 else tuple(range(L + 1))
    e = np.asarray(edges)
    v = (values if block == 1 else block_means(values, edges)).numpy().astype(np.float64)
    zero = v == 0
    if log:
        with np.errstate(divide="ignore"):
            z = np.where(zero, np.nan, np.log10(np.where(zero, 1.0, v)))
        finite = z[np.isfinite(z)]
        lo = float(np.floor(finite.min())) if finite.size else -6.0
        hi = float(np.ceil(finite.max())) if finite.size else 0.0
        ticks = list(range(int(lo), int(hi) + 1))
        colorbar = dict(title=dict(text=COLORBAR_TEXT[result.method]), tickvals=ticks,
                        ticktext=[f"1e{t}" for t in ticks])
        zmin, zmax = lo, hi
    else:
        z = np.where(zero, np.nan, v)
        colorbar = dict(title=dict(text=COLORBAR_TEXT[result.method]))
        zmin, zmax = 0.0, float(v.max()) if v.size and v.max() > 0 else 1.0
    if block == 1:
        cd = v
        hover = "token %{x} after %{y} layers: %{customdata:.3g}<extra></extra>"
    else:
        nb = len(e) - 1
        cd = np.empty((rows, nb, 3))
        cd[..., 0] = v
        cd[..., 1] = e[None, :-1]
        cd[..., 2] = e[None, 1:] - 1
        hover = ("tokens %{customdata[1]}–%{customdata[2]} after %{y} layers: mean %{customdata[0]:.3g}"
                 "<extra></extra>")
    heat = go.Heatmap(z=z, x=e - 0.5, y=np.arange(rows + 1) - 0.5, customdata=cd, hovertemplate=hover,
                      colorscale="Viridis", zmin=zmin, zmax=zmax, name="influence", xgap=0, ygap=1,
                      colorbar=dict(**colorbar, len=0.9, y=0.45, yanchor="middle", thickness=18, outlinewidth=1,
                                    outlinecolor="#999"))

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.07, 0.93], vertical_spacing=0.02)
    fig.add_trace(heat, row=2, col=1)
    fig.add_trace(segment_strip(layout, edges, "h"), row=1, col=1)

    # Frontier: a step over each token at the layer it is first reached (first_layer - 0.5);
    # never reached: top. (Said per token: for a prefix the reached area lies up and to the left.)
    first = first_layer_of(reached).numpy()
    fy = np.where(first >= 0, first - 0.5, rows - 0.5).astype(float)
    if block > 1:  # a block is reached as soon as one of its tokens is
        fy = np.array([fy[a:b].min() for a, b in zip(e[:-1], e[1:])])
    xs = np.repeat(e - 0.5, 2)[1:-1]
    ys = np.repeat(fy, 2)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=FRONTIER_COLOR, width=2),
                             name="red steps: the layer each token is first reached (exactly 0 below)",
                             hoverinfo="skip"), row=2, col=1)
    ro = int(result.readout[0 if example is None else example])
    ro_name = SEGMENT_LABELS.get(layout.names()[ro], layout.names()[ro])
    last = float(values[-1, ro])
    fig.add_trace(go.Scatter(x=[ro], y=[rows - 0.5], mode="markers", cliponaxis=False,
                             marker=dict(symbol="triangle-down", size=13, color="black"),
                             name=f"readout {ro_name} at {ro}: {last:.3g} after layer {n}",
                             hovertemplate=f"readout {ro_name} at position {ro}: {last:.3g}<extra></extra>"),
                  row=2, col=1)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="blank = exactly 0",
                             marker=dict(symbol="square-open", size=12, color="#999"), hoverinfo="skip"),
                  row=2, col=1)
    for tr in segment_legend(layout):
        fig.add_trace(tr, row=2, col=1)
    for shape in thin_segment_marks(layout, *axis_refs(fig, 1, 1), "h"):
        fig.add_shape(shape)

    if title is None:
        res = "" if block == 1 else f" · pooled to blocks of {block} tokens"
        if example is None and len({l.prompt_positions for l in result.layouts}) > 1:
            res += "<br>examples' prompt positions differ: mean by position, segments of the longest example"
        sub = wrap_subtitle(f"{METHOD_TEXT[result.method]}{' (log colour)' if log else ''} · {describe(result.pattern)} · "
                            f"L={L} · prompt at {positions_text(layout.prompt_positions)}{res}", width)
        title = (f"How much the prompt changes each token — {result.method}, {label}<br><span style='font-size:15px'>"
                 f"{sub}</span>")
    fig.update_layout(
        title=dict(text=title, x=0.5, xanchor="center"), font=FONT, template=TEMPLATE, plot_bgcolor="white",
        width=width, height=height or max(440, 200 + 36 * rows),
        legend=dict(orientation="h", x=0.5, xanchor="center", yref="container", y=0, yanchor="bottom"),
        margin=dict(l=110, r=30, t=70 + 22 * title.count("<br>"), b=150),
    )
    fig.update_yaxes(tickvals=list(range(rows)), ticktext=_layer_labels(n), title_text="after", row=2, col=1,
                     showgrid=False, zeroline=False, range=[-0.5, rows - 0.5], showline=True, linecolor="#999",
                     mirror=True)
    fig.update_xaxes(title_text="position", row=2, col=1, showgrid=False, zeroline=False, range=[-0.5, L - 0.5],
                     showline=True, linecolor="#999", mirror=True)
    fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, row=1, col=1)
    return fig


def influence_distance_figure(result: InfluenceMap, *, log: bool = True, max_distance: int | None = None,
                              title: str | None = None, width: int = NOTEBOOK_WIDTH, height: int = 480) -> go.Figure:
    """Mean influence against distance (tokens) from the nearest prompt token, one line per layer.

    Args:
        result: from :func:`attnviz.influence.prompt_influence`.
        log: log-scale y axis (exact zeros are then left out of the lines: they are where the
            prompt has not arrived).
        max_distance: cut the x axis here; default: a little past the farthest distance with any
            non-zero influence (everything farther is exactly 0, which the subtitle says).
    Returns:
        a ``plotly.graph_objects.Figure`` with one ``go.Scatter`` per layer (``data[l]`` = after
        ``l`` layers; ``x`` = distances, ``y`` = :func:`attnviz.influence.distance_profile` means,
        ``None`` where exactly 0 on a log axis).
    """
    d, mean, count = distance_profile(result)
    d, mean, count = d.numpy(), mean.numpy().astype(np.float64), count.numpy()
    nonzero = d[(mean != 0).any(0)]
    farthest = int(nonzero.max()) if nonzero.size else 0
    cut_note = ""
    if max_distance is None and farthest < d.max():
        max_distance = farthest + max(2, farthest // 10)
        cut_note = f" · exactly 0 beyond distance {farthest}"
    if max_distance is not None:
        keep = d <= max_distance
        d, mean, count = d[keep], mean[:, keep], count[keep]
    n = mean.shape[0] - 1
    colors = layer_colors(n)
    fig = go.Figure()
    for l in range(n + 1):
        y = mean[l]
        ys = [None if (log and v == 0) else float(v) for v in y]
        fig.add_trace(go.Scatter(
            x=d, y=ys, mode="lines+markers" if len(d) <= 60 else "lines", name=_layer_labels(n)[l], line=dict(color=colors[l], width=2),
            marker=dict(size=5), customdata=np.stack([y, count], -1),
            hovertemplate=(f"{_layer_labels(n)[l]}, distance %{{x}}: mean %{{customdata[0]:.3g}} "
                           f"over %{{customdata[1]}} tokens<extra></extra>")))
    if title is None:
        note = (" · exact zeros (not arrived) left out" if log else "") + cut_note
        sub = wrap_subtitle(f"{METHOD_TEXT[result.method]} · {describe(result.pattern)} · mean over "
                            f"{result.batch_size} example{'s' if result.batch_size > 1 else ''}{note}", width - 120)
        title = (f"Influence against distance from the prompt — {result.method}<br><span style='font-size:15px'>"
                 f"{sub}</span>")
    fig.update_layout(title=dict(text=title, x=0.5, xanchor="center"), font=FONT, template=TEMPLATE, plot_bgcolor="white",
                      width=width, height=height + 22 * title.count("<br>"), legend=dict(title_text="after"),
                      margin=dict(l=80, r=30, t=70 + 22 * title.count("<br>"), b=60))
    fig.update_xaxes(title_text="distance to the nearest prompt token (tokens)", showgrid=True, gridcolor="#eee",
                     zeroline=False, showline=True, linecolor="#999", rangemode="tozero",
                     dtick=1 if len(d) and d.max() <= 20 else None)
    fig.update_yaxes(title_text="mean influence", type="log" if log else "linear", showgrid=True, gridcolor="#eee",
                     zeroline=False, showline=True, linecolor="#999", tickformat="~g",
                     dtick=1 if log else None)            # powers of ten only: no minor labels
    return fig


def attribution_figure(result: InfluenceMap, *, title: str | None = None, width: int = NOTEBOOK_WIDTH,
                       height: int = 440) -> go.Figure:
    """Per-prompt-token attribution to the output (mean over examples), one bar per prompt token.

    Tokens that cannot reach the readout within the model's layers (structurally, in any example)
    get a grey × at 0: their attribution is exactly 0 for ``gradient`` and ``rollout``. Whiskers
    span the examples' minimum and maximum.

    Returns:
        a ``plotly.graph_objects.Figure``: ``data[0]`` the bars (``y`` = :attr:`InfluenceMap.per_token`),
        ``data[1]`` the × markers of the tokens that cannot reach the readout.
    Raises:
        ValueError: the map has no attribution (ablation without ``per_token=True``).
    """
    if result.attribution is None:
        raise ValueError(f"this {result.method} map has no per-token attribution; run prompt_influence(..., "
                         f"per_token=True)")
    a = result.attribution.detach().numpy().astype(np.float64)
    mean = a.mean(0)
    lo, hi = a.min(0), a.max(0)
    reach = result.can_reach.any(0).numpy()
    pos = result.layout.prompt_positions
    labels = [f"p{j} @{p}" for j, p in enumerate(pos)]
    colors = [SEGMENT_COLORS["prompt"] if r else UNREACHABLE_COLOR for r in reach]
    cd = np.stack([np.array(pos), lo, hi, reach.astype(int)], -1)
    bar = go.Bar(x=labels, y=mean, marker_color=colors, name="attribution", showlegend=False,
                 error_y=dict(type="data", symmetric=False, array=hi - mean, arrayminus=mean - lo, color="#555",
                              thickness=1, visible=result.batch_size > 1),
                 customdata=cd,
                 hovertemplate=("prompt token %{x} (position %{customdata[0]}): mean %{y:.3g}, "
                                "examples %{customdata[1]:.3g} … %{customdata[2]:.3g}<extra></extra>"))
    fig = go.Figure(bar)
    far = [lab for lab, r in zip(labels, reach) if not r]
    fig.add_trace(go.Scatter(x=far, y=[0.0] * len(far), mode="markers", name="cannot reach the readout",
                             marker=dict(symbol="x-thin", size=12, line=dict(width=2, color="#888"), color="#888"),
                             hovertemplate="prompt token %{x} cannot reach the readout within the model's layers"
                                           "<extra></extra>"))
    fig.add_trace(go.Bar(x=[None], y=[None], marker_color=SEGMENT_COLORS["prompt"], name="reaches the readout"))
    what = {"gradient": next((n.split(": ", 1)[1] for n in result.notes if n.startswith("attribution:")), "gradient"),
            "rollout": "rolled-out attention of the readout on each prompt token",
            "ablation": next((n.split(": ", 1)[1] for n in result.notes if n.startswith("attribution:")), "ablation")}
    if title is None:
        ro = int(result.readout[0])
        sub = wrap_subtitle(f"{what[result.method]} · readout at {ro} · mean over {result.batch_size} "
                            f"example{'s' if result.batch_size > 1 else ''}", width)
        title = f"Which prompt tokens matter for the output — {result.method}<br><span style='font-size:15px'>{sub}</span>"
    fig.update_layout(title=dict(text=title, x=0.5, xanchor="center"), font=FONT, template=TEMPLATE, plot_bgcolor="white",
                      width=width, height=height + 22 * title.count("<br>"), barmode="overlay", bargap=0.25,
                      legend=dict(orientation="h", x=0.5, xanchor="center", yref="container", y=0, yanchor="bottom"),
                      margin=dict(l=80, r=30, t=70 + 22 * title.count("<br>"), b=120))
    fig.update_xaxes(title_text="prompt token (layout position)", showline=True, linecolor="#999", type="category")
    fig.update_yaxes(title_text="attribution", showgrid=True, gridcolor="#eee", zeroline=True, zerolinecolor="#888")
    return fig
