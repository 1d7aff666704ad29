"""The spread view: how far the prompt's information has travelled after each layer.

Rows are "after l layers" (0 = the prompt itself, bottom), columns are positions. A cell is
coloured by the layer at which its token is *first* reached, from that row upwards, so the picture
reads as a cone growing out of the prompt; white = not yet reached, grey = never reached within
the model's layers. A strip on top shows the segments, a triangle marks the readout token, and a
bar chart on the right gives the share of positions reached after each layer. Long sequences are
pooled to token blocks (:func:`attnviz.pooling.pool_spread`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ..patterns import AttentionPattern, describe
from ..placement import SequenceLayout
from ..pooling import block_edges, pool_spread
from ..spread import Spread
from ._style import (FONT, NOTEBOOK_WIDTH, TEMPLATE, SEGMENT_COLORS, SEGMENT_LABELS, FigureParts, discrete_colorscale, positions_text,
                     segment_legend, segment_strip, thin_segment_marks)

NEVER_COLOR = "#9e9e9e"
NOT_YET_COLOR = "#ffffff"


def layer_colors(num_layers: int) -> list[str]:
    """Colour of "first reached at layer l" for l = 0..num_layers (0 = the prompt itself, red)."""
    rest = sample_colorscale("Viridis", [i / max(1, num_layers - 1) for i in range(num_layers)]) if num_layers else []
    return [SEGMENT_COLORS["prompt"]] + list(rest)


def spread_parts(result: Spread, layout: SequenceLayout, *, pattern: AttentionPattern | None = None,
                 max_cells: int = 20_000, block: int | None = None, title: str | None = None,
                 lean: bool = False) -> FigureParts:
    """The data of :func:`spread_figure` as :class:`FigureParts`: traces ``[heatmap, per-layer
    bars, segment strip, readout marker, segment legend...]`` (axes set) and the layout that goes
    with them (title, height, layer ticks, position range, thin segment marks). A live figure
    (``attnviz.widgets``) applies them in place; :func:`spread_figure` assembles them.

    ``lean``: hover data in 2-D numeric arrays only (first layer per token, or the share reached
    per block), instead of a sentence per cell: what a live figure can send on every change."""
    reached, first = result.reached, result.first_layer
    rows, L = reached.shape
    n = rows - 1
    if layout.length != L:
        raise ValueError(f"the spread covers {L} positions but the layout has {layout.length}")
    if block is None:
        block = 1 if rows * L <= max_cells else -(-L // max(1, max_cells // rows))
    edges = block_edges(L, block, layout, min_width=max(1, block // 2))  # no sub-pixel blocks
    e = np.asarray(edges)
    layer_labels = ["prompt (0)"] + [f"layer {l}" for l in range(1, n + 1)]

    if block == 1 and lean:
        r = reached.numpy()
        f = first.numpy()
        z = np.where(r, f[None, :] + 2, np.where(f[None, :] >= 0, 1, 0)).astype(np.int16)
        hover = "token %{x} after %{y} layers: first reached at layer %{customdata} (−1: never)<extra></extra>"
        heat = go.Heatmap(z=z, x=e - 0.5, y=np.arange(rows + 1) - 0.5,
                          customdata=np.broadcast_to(f.astype(np.int16)[None, :], z.shape), hovertemplate=hover)
    elif block == 1:
        r = reached.numpy()
        f = first.numpy()
        z = np.where(r, f[None, :] + 2, np.where(f[None, :] >= 0, 1, 0)).astype(np.int16)
        hover = ("token %{x} after %{y} layers: %{text}<extra></extra>")
        fl = np.char.add(np.broadcast_to(f[None, :], z.shape).astype(str), ")")
        text = np.where(z == 0, f"never reached within {n} layers",
                        np.where(z == 1, np.char.add("not yet (first reached at layer ", fl),
                                 np.char.add("reached (first at layer ", fl)))
        heat = go.Heatmap(z=z, x=e - 0.5, y=np.arange(rows + 1) - 0.5, text=text, hovertemplate=hover)
    else:
        ps = pool_spread(result, edges)
        frac = ps.fraction.numpy()
        fmin, fmax, never = ps.first_min.numpy(), ps.first_max.numpy(), ps.never.numpy()
        z = np.where(frac > 0, fmin[None, :] + 2, np.where(fmin[None, :] >= 0, 1, 0)).astype(np.int16)
        nbk = len(e) - 1
    if block > 1 and lean:
        hover = ("tokens ≈%{x:.0f} after %{y} layers: %{customdata:.0%} reached<extra></extra>")
        heat = go.Heatmap(z=z, x=e - 0.5, y=np.arange(rows + 1) - 0.5, customdata=frac, hovertemplate=hover)
    elif block > 1:
        cd = np.empty((rows, nbk, 6), dtype=np.int16 if L < 2**15 else np.int32)
        cd[..., 0] = e[None, :-1]
        cd[..., 1] = e[None, 1:] - 1
        cd[..., 2] = np.rint(100 * frac)
        cd[..., 3] = fmin[None, :]
        cd[..., 4] = fmax[None, :]
        cd[..., 5] = never[None, :]
        hover = ("tokens %{customdata[0]}–%{customdata[1]} after %{y} layers: %{customdata[2]} % reached"
                 "<br>first reached at layers %{customdata[3]}–%{customdata[4]} (−1 = never); "
                 "%{customdata[5]} never reached<extra></extra>")
        heat = go.Heatmap(z=z, x=e - 0.5, y=np.arange(rows + 1) - 0.5, customdata=cd, hovertemplate=hover)

    colors = [NEVER_COLOR, NOT_YET_COLOR] + layer_colors(n)
    heat.update(colorscale=discrete_colorscale(colors), zmin=-0.5, zmax=len(colors) - 0.5, name="spread",
                xgap=0, ygap=1, xaxis="x3", yaxis="y3",
                colorbar=dict(title=dict(text="first<br>reached"), tickvals=list(range(len(colors))),
                              ticktext=["never", "not yet"] + layer_labels, outlinewidth=1, outlinecolor="#999",
                              len=0.93, y=0.465, x=1.02, yanchor="middle", thickness=18))

    frac_layer = reached.float().mean(1).tolist()                  # = result.fraction_reached(l)
    bars = go.Bar(x=frac_layer, y=list(range(rows)), orientation="h", marker_color="#6b6b6b",
                  name="share reached", showlegend=False, xaxis="x4", yaxis="y4",
                  text=[f"{100 * v:.0f} %" for v in frac_layer], textposition="auto",
                  hovertemplate="after %{y} layers: %{x:.1%} of positions reached<extra></extra>")
    strip = segment_strip(layout, edges, "h").update(xaxis="x", yaxis="y")

    ro = layout.readout_position
    ro_seg = next(seg.name for seg in layout.segments if seg.start <= ro < seg.stop)
    ro_name = SEGMENT_LABELS.get(ro_seg, ro_seg)
    fr = int(first[ro])
    status = f"reached at layer {fr}" if fr >= 0 else f"never reached within {n} layers"
    readout = go.Scatter(x=[ro], y=[rows - 0.5], mode="markers", cliponaxis=False, xaxis="x3", yaxis="y3",
                         marker=dict(symbol="triangle-down", size=13, color="black"),
                         name=f"readout {ro_name} at {ro}: {status}",
                         hovertemplate=f"readout {ro_name} at position {ro}: {status}<extra></extra>")
    legend = [t.update(xaxis="x3", yaxis="y3") for t in segment_legend(layout)]

    if title is None:
        res = "" if block == 1 else f" · pooled to blocks of {block} tokens"
        what = describe(pattern) + " · " if pattern is not None else ""
        title = (f"How far the prompt reaches, layer by layer<br><span style='font-size:15px'>{what}{n} layers · L={L} · "
                 f"prompt at {positions_text(layout.prompt_positions)}{res}</span>")
    return FigureParts(traces=[heat, bars, strip, readout] + legend, layout={
        "title": {"text": title},
        "height": max(440, 190 + 36 * rows),
        "yaxis3": {"tickvals": list(range(rows)), "ticktext": layer_labels, "range": [-0.5, rows - 0.5]},
        "xaxis3": {"range": [-0.5, L - 0.5]},
        "shapes": thin_segment_marks(layout, "x", "y", "h"),
    })


def spread_figure(result: Spread, layout: SequenceLayout, *, pattern: AttentionPattern | None = None,
                  max_cells: int = 20_000, block: int | None = None, title: str | None = None,
                  width: int = NOTEBOOK_WIDTH, height: int | None = None) -> go.Figure:
    """Layers × positions heatmap of :class:`attnviz.Spread`, coloured by first layer reached.

    Args:
        result: from :func:`attnviz.spread` (``reached`` ``(layers + 1, L)``, ``first_layer`` ``(L,)``).
        layout: the layout the spread was computed on (segments, prompt, readout).
        pattern: only for the title (:func:`attnviz.describe`).
        max_cells: heatmap cells; above ``(layers + 1) * L`` positions are pooled to blocks.
        block: force a block length (1 = full resolution).
        title: replaces the default title.
    Returns:
        a ``plotly.graph_objects.Figure``: ``data[0]`` the heatmap, ``data[1]`` the per-layer bars
        (the traces of :func:`spread_parts`).
        Heatmap codes: 0 = never, 1 = not yet, 2 + l = first reached at layer l.
    """
    parts = spread_parts(result, layout, pattern=pattern, max_cells=max_cells, block=block, title=title)
    fig = make_subplots(rows=2, cols=2, shared_xaxes="columns", shared_yaxes="rows", column_widths=[0.86, 0.14],
                        row_heights=[0.07, 0.93], horizontal_spacing=0.035, vertical_spacing=0.02)
    fig.add_traces(parts.traces)
    fig.update_layout(parts.layout)
    fig.update_layout(
        title=dict(x=0.5, xanchor="center"), font=FONT, template=TEMPLATE, plot_bgcolor="white", width=width,
        legend=dict(orientation="h", x=0.43, xanchor="center", y=-0.25, yanchor="top"),
        margin=dict(l=80, r=30, t=80, b=110), bargap=0.15,
    )
    if height is not None:
        fig.update_layout(height=height)
    fig.update_yaxes(title_text="after layer", row=2, col=1, showgrid=False, zeroline=False)
    fig.update_xaxes(title_text="position", row=2, col=1, showgrid=False, zeroline=False)
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title_text="reached", row=2, col=2, nticks=3)
    fig.update_yaxes(showticklabels=False, ticks="", showgrid=False, row=1, col=1)
    return fig
