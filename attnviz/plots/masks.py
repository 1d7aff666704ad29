"""The mask view: who may attend whom in one layer, and why.

Query positions run down (rows), key positions across (columns). Small sequences are drawn cell
by cell, coloured by reason (window / global / random block / blocked / future); long ones are
pooled to blocks and coloured by the share of allowed pairs, so the figure stays small (a few
hundred kB) at any length. Strips along both axes show the
segments ([CLS], prompt, text, [SEP]); a slider switches layers when they differ. Both come from
:func:`attnviz.pooling.pooled_reasons` (the pattern's structure, never an ``(L, L)`` mask beyond the
cells drawn); :func:`mask_parts` gives the data of one layer's view for live figures.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..masks import MASK_PARTS
from ..patterns import (ALLOWED_CODES, BLOCKED, FUTURE, GLOBAL, OTHER_DOCUMENT, OUTSIDE_CHUNK, PART_CODES, PREFIX, RANDOM, REASONS,
                        SINK, WINDOW, AttentionPattern, as_layout, describe)
from ..placement import SequenceLayout
from ..pooling import PooledMask, block_edges, pooled_reasons
from ._style import (FONT, TEMPLATE, FigureParts, discrete_colorscale, segment_legend, segment_strip,
                     thin_segment_marks, wrap_subtitle)

#: Colour of each reason code at full resolution (index = code of :data:`attnviz.REASONS`).
#: Colour-blind safe (Okabe & Ito hues); "outside window" (mid grey) and "future" (pale yellow)
#: differ in hue and in lightness, so a causal window shows both kinds of "no" apart.
REASON_COLORS = {
    BLOCKED: "#bdbdbd",
    WINDOW: "#0072B2",
    GLOBAL: "#E69F00",
    RANDOM: "#009E73",
    FUTURE: "#fff7d1",
    PREFIX: "#56B4E9",
    SINK: "#CC79A7",
    OUTSIDE_CHUNK: "#8c8c8c",
    OTHER_DOCUMENT: "#525252",
}
#: Mask parts (:mod:`attnviz.masks`) take these in reason-code order (Okabe & Ito vermillion and
#: yellow first, then more of the Tableau palette).
PART_COLORS = ("#D55E00", "#F0E442", "#9467bd", "#8c564b", "#17becf", "#bcbd22")
REASON_COLORS.update({code: PART_COLORS[i % len(PART_COLORS)] for i, code in enumerate(PART_CODES.values())})
REASON_SHORT = {BLOCKED: "blocked (outside window)", WINDOW: "window", GLOBAL: "global",
                RANDOM: "random block", FUTURE: "future (causal)", PREFIX: "prefix (both ways)",
                SINK: "attention sink", OUTSIDE_CHUNK: "outside the chunk", OTHER_DOCUMENT: "other document",
                **{PART_CODES[name]: cls.short for name, cls in MASK_PARTS.items()}}
_PART_ALLOW = tuple(c for c in PART_CODES.values() if c in ALLOWED_CODES)
POOLED_SCALE = [[0.0, "#f7f7f7"], [0.02, "#deebf7"], [0.5, "#6baed6"], [1.0, "#08306b"]]


def _possible_reasons(pattern: AttentionPattern, layout: SequenceLayout, layers: Sequence[int]) -> list[int]:
    """Reason codes this pattern can produce, in legend order."""
    out = [WINDOW]
    if pattern.global_positions or (pattern.global_prompt and layout.n_prompt):
        out.append(GLOBAL)
    if pattern.random_blocks:
        out.append(RANDOM)
    if any(pattern.window_at(l) is not None for l in layers):
        out.append(BLOCKED)
    if pattern.causal:
        out.append(FUTURE)
    if pattern.prefix_lm is not None:
        out.append(PREFIX)
    if pattern.sinks:
        out.insert(1, SINK)
    if pattern.chunk is not None:
        out.append(OUTSIDE_CHUNK)
    if pattern.documents:
        out.append(OTHER_DOCUMENT)
    for code in dict.fromkeys(PART_CODES[part.name] for part in pattern.parts):
        out.append(code)
    return out


def _layer_groups(pattern: AttentionPattern, layers: Sequence[int]) -> list[list[int]]:
    """Layers with identical masks share one trace (random blocks differ per layer)."""
    groups: dict = {}
    for l in layers:
        per_layer_parts = any(part.num_layers is not None for part in pattern.parts)
        key = (pattern.window_at(l), pattern.dilation_at(l), pattern.chunk_at(l),
               l if pattern.random_blocks or per_layer_parts else None)
        groups.setdefault(key, []).append(l)
    return list(groups.values())


def _layers_text(ls: list[int]) -> str:
    if len(ls) == 1:
        return f"layer {ls[0]}"
    if ls == list(range(ls[0], ls[-1] + 1)):
        return f"layers {ls[0]}–{ls[-1]}"
    return "layers " + ", ".join(map(str, ls))


def _full_trace(pm: PooledMask, shown: list[int], labels: dict) -> go.Heatmap:
    codes = pm.counts.argmax(0).numpy()  # one pair per cell: its single reason (= mask_reasons)
    lookup = np.full(len(REASONS), 0, dtype=np.uint8)
    lookup[shown] = np.arange(len(shown), dtype=np.uint8)
    z = lookup[codes]
    text = np.asarray(REASONS, dtype=object)[codes]
    L = len(pm.edges) - 1
    ticks = [labels[c] for c in shown]
    return go.Heatmap(
        z=z, x=np.arange(L + 1) - 0.5, y=np.arange(L + 1) - 0.5, text=text,
        colorscale=discrete_colorscale([REASON_COLORS[c] for c in shown]), zmin=-0.5, zmax=len(shown) - 0.5,
        colorbar=dict(title=dict(text="why"), tickvals=list(range(len(shown))), ticktext=ticks, len=0.55, y=1.0,
                      yanchor="top", thickness=18,
                      outlinewidth=1, outlinecolor="#999"),
        hovertemplate="query %{y} → key %{x}<br>%{text}<extra></extra>", name="mask",
    )


def _pooled_trace(pm: PooledMask, shown: list[int], labels: dict, lean: bool = False) -> go.Heatmap:
    e = np.asarray(pm.edges)
    nb = len(e) - 1
    bar = dict(title=dict(text="allowed<br>share"), tickformat=".0%", len=0.55, y=1.0, yanchor="top", thickness=18)
    if lean:  # 2-D arrays only (live figures): share through globals / random blocks, block centres
        other = [c for c in shown if c in (GLOBAL, RANDOM, *_PART_ALLOW)]
        extra = sum((pm.counts[c] for c in other), torch.zeros_like(pm.counts[0])).double() / pm.sizes.double()
        via = " / ".join(labels[c] for c in other)
        hover = ("queries ≈%{y:.0f} → keys ≈%{x:.0f}<br>allowed: %{z:.1%} of pairs"
                 + (f"<br>through {via}: %{{customdata:.1%}}" if other else "") + "<extra></extra>")
        return go.Heatmap(z=pm.fraction.numpy(), x=e - 0.5, y=e - 0.5, zmin=0, zmax=1, colorscale=POOLED_SCALE,
                          customdata=extra.float().numpy() if other else None, colorbar=bar,
                          hovertemplate=hover, name="mask")
    dtype = np.uint16 if e[-1] < 2**16 else np.uint32
    extra = [c for c in shown if c in (WINDOW, GLOBAL, RANDOM, FUTURE, *_PART_ALLOW)]
    cd = np.empty((nb, nb, 4 + len(extra)), dtype=dtype)
    cd[:, :, 0] = e[:-1, None]
    cd[:, :, 1] = e[1:, None] - 1
    cd[:, :, 2] = e[None, :-1]
    cd[:, :, 3] = e[None, 1:] - 1
    for i, c in enumerate(extra):
        cd[:, :, 4 + i] = np.rint(100 * pm.share(c).numpy())
    parts = [f"{labels[c]} %{{customdata[{4 + i}]}} %" for i, c in enumerate(extra)]
    hover = ("queries %{customdata[0]}–%{customdata[1]} → keys %{customdata[2]}–%{customdata[3]}"
             "<br>allowed: %{z:.1%} of pairs<br>" + ", ".join(parts) + "<extra></extra>")
    return go.Heatmap(
        z=pm.fraction.numpy(), x=e - 0.5, y=e - 0.5, customdata=cd, zmin=0, zmax=1, colorscale=POOLED_SCALE,
        colorbar=bar, hovertemplate=hover, name="mask",
    )


def _mask_block(pattern: AttentionPattern, L: int, n_views: int, max_cells: int, block: int | None) -> int:
    """Block length of a mask view: 1 (one cell per pair) when ``n_views`` heatmaps of ``L * L``
    cells fit in ``max_cells``, else pooled; aligned with BigBird's blocks when there are random ones."""
    if block is None:
        side = max(1, math.isqrt(max_cells // n_views))
        block = 1 if L <= side else -(-L // side)
        if block > 1 and pattern.random_blocks:  # align pooled blocks with BigBird's blocks
            bs = pattern.block_size
            block = -(-block // bs) * bs if block >= bs else min(d for d in range(block, bs + 1) if bs % d == 0)
    return block


def _mask_setup(pattern, layout, layer, layers, max_cells, block, n_views=None):
    layout = as_layout(layout)
    if layer not in layers:
        raise ValueError(f"layer {layer} is outside the layers shown [0, {len(layers)})")
    groups = _layer_groups(pattern, layers)
    shown = _possible_reasons(pattern, layout, layers)
    labels = dict(REASON_SHORT)
    if all(pattern.window_at(l) is None for l in layers):
        labels[WINDOW] = "full attention"
    block = _mask_block(pattern, layout.length, n_views or len(groups), max_cells, block)
    edges = block_edges(layout.length, block, layout, min_width=max(1, block // 2))  # no sub-pixel blocks
    return layout, groups, shown, labels, block, edges


def _heatmap(pattern, layout, layer, edges, shown, labels, lean: bool = False) -> go.Heatmap:
    """The main heatmap of one layer, from :func:`attnviz.pooling.pooled_reasons` (structural:
    at one token per block it holds each pair's reason, as :func:`attnviz.mask_reasons`)."""
    pm = pooled_reasons(pattern, layout, layer, edges)
    if len(edges) == layout.length + 1:
        return _full_trace(pm, shown, labels)
    return _pooled_trace(pm, shown, labels, lean)


def _mask_title(pattern, layout, layer, group, block, title) -> str:
    if title is not None:
        return title
    res = "one cell per pair" if block == 1 else f"pooled to blocks of {block} tokens"
    same = f" (same mask as {_layers_text(group)})" if len(group) > 1 else ""
    sub = wrap_subtitle(f"{describe(pattern)} · L={layout.length} · {res}", width=700)   # the plot area, not the legend
    return f"Who may attend whom — layer {layer}{same}<br><span style='font-size:15px'>{sub}</span>"


def mask_parts(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int = 0, *,
               layers: Sequence[int] | None = None, max_cells: int = 40_000, block: int | None = None,
               title: str | None = None, lean: bool = False) -> FigureParts:
    """The data of :func:`mask_figure` for one layer, as :class:`FigureParts`: traces
    ``[heatmap, top segment strip, left segment strip, segment legend...]`` (axes set) and the layout
    that goes with them (``title``, ``shapes``). A live figure (``attnviz.widgets``) applies them
    in place; :func:`mask_figure` assembles them. Structural: no ``(L, L)`` mask is built beyond
    the cells drawn.

    Args:
        layers: the layers the pattern is shown for (default: the pattern's per-layer count, else
            only ``layer``): they decide which reasons the colour bar lists and which layers share a mask.
        max_cells, block, title: as for :func:`mask_figure` (``max_cells`` for this one heatmap).
        lean: hover data in 2-D arrays only (block centres and shares instead of exact block ranges
            per cell): what a live figure can send on every change without slowing down.
    """
    n = pattern.per_layer
    layers = list(layers) if layers is not None else (list(range(n)) if n is not None else [layer])
    if n is not None:
        pattern.check_layers(n)
    layout, groups, shown, labels, block, edges = _mask_setup(pattern, layout, layer, layers, max_cells, block, 1)
    group = next(g for g in groups if layer in g)
    return _parts_for(pattern, layout, layer, group, shown, labels, block, edges, title, lean)


def _parts_for(pattern, layout, layer, group, shown, labels, block, edges, title, lean=False) -> FigureParts:
    heat = _heatmap(pattern, layout, group[0], edges, shown, labels, lean)
    heat.update(visible=True, meta=group, name=_layers_text(group), xaxis="x4", yaxis="y4")
    traces = [heat,
              segment_strip(layout, edges, "h").update(xaxis="x2", yaxis="y2"),
              segment_strip(layout, edges, "v").update(xaxis="x3", yaxis="y3")]
    traces += [t.update(xaxis="x4", yaxis="y4") for t in segment_legend(layout)]
    shapes = thin_segment_marks(layout, "x2", "y2", "h") + thin_segment_marks(layout, "x3", "y3", "v")
    return FigureParts(traces=traces, layout={"title": {"text": _mask_title(pattern, layout, layer, group, block, title)},
                                              "shapes": shapes})


def mask_figure(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int = 0, *,
                num_layers: int | None = None, max_cells: int = 40_000, block: int | None = None,
                title: str | None = None, size: int = 580, layers: Sequence[int] | None = None) -> go.Figure:
    """Heatmap of one layer's mask (query rows × key columns) with segment strips along both axes.

    Args:
        pattern: the attention pattern.
        layout: a :class:`attnviz.SequenceLayout` (or a plain length).
        layer: the layer shown first.
        num_layers: layers offered by the slider (default: the pattern's per-layer count, else
            only ``layer``). Layers with identical masks share one view.
        max_cells: heatmap cells in the whole figure; above it the mask is pooled to blocks
            (hover then gives block ranges and the share of each reason). ~30 bytes per cell.
        block: force a block length (1 = full resolution).
        title: replaces the default title built from :func:`attnviz.describe`.
        size: figure width and height in pixels.
        layers: the layers offered, instead of ``range(num_layers)`` (e.g. ``[3]``: layer 3 alone).
    Returns:
        a ``plotly.graph_objects.Figure``; ``fig.data[0]`` is the heatmap of the first layer view.
        Without a slider the traces are those of :func:`mask_parts`.
    """
    n = num_layers if num_layers is not None else pattern.per_layer
    if n is not None:
        pattern.check_layers(n)
    if layers is None:
        layers = list(range(n)) if n is not None else [layer]
    layers = list(layers)
    layout, groups, shown, labels, block, edges = _mask_setup(pattern, layout, layer, layers, max_cells, block)
    L = layout.length

    fig = make_subplots(rows=2, cols=2, shared_xaxes=True, shared_yaxes=True, column_widths=[0.025, 0.975],
                        row_heights=[0.025, 0.975], horizontal_spacing=0.006, vertical_spacing=0.006)
    first = next(i for i, g in enumerate(groups) if layer in g)
    order = [first] + [i for i in range(len(groups)) if i != first]
    parts = _parts_for(pattern, layout, layer, groups[first], shown, labels, block, edges, title)
    fig.add_trace(parts.traces[0])
    for i in order[1:]:
        g = groups[i]
        tr = _heatmap(pattern, layout, g[0], edges, shown, labels)
        tr.update(visible=False, meta=g, name=_layers_text(g))
        fig.add_trace(tr, row=2, col=2)
    n_main = len(groups)
    fig.add_traces(parts.traces[1:])

    def title_for(l, g):
        return _mask_title(pattern, layout, l, g, block, title)

    fig.update_layout(parts.layout)
    fig.update_layout(
        title=dict(x=0.5, xanchor="center"),
        width=size + 200, height=size, font=FONT, template=TEMPLATE, plot_bgcolor="white",
        legend=dict(x=1.02, xanchor="left", y=0.0, yanchor="bottom", title_text="segments"),
        margin=dict(l=70, r=20, t=90, b=70),
    )
    fig.update_yaxes(autorange="reversed", showgrid=False, zeroline=False)
    fig.update_xaxes(showgrid=False, zeroline=False)
    fig.update_xaxes(title_text="key position k (attended to)", row=2, col=2)
    fig.update_yaxes(title_text="query position q (attends)", row=2, col=1)
    fig.update_yaxes(showticklabels=False, row=1, col=1)
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_xaxes(showticklabels=False, ticks="", row=2, col=1)
    fig.update_yaxes(showticklabels=False, ticks="", row=1, col=2)

    if len(groups) > 1:
        steps = []
        for l in layers:
            gi = next(i for i, g in enumerate(groups) if l in g)
            visible = [order[j] == gi for j in range(n_main)] + [True] * (len(fig.data) - n_main)
            steps.append(dict(label=str(l), method="update",
                              args=[{"visible": visible}, {"title.text": title_for(l, groups[gi])}]))
        fig.update_layout(sliders=[dict(active=layers.index(layer), steps=steps, currentvalue=dict(prefix="layer "),
                                        x=0.05, len=0.9, y=-0.02, yanchor="top", pad=dict(t=40))],
                          margin=dict(b=150), height=size + 80)
    return fig
