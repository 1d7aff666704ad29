"""Shared look of attnviz figures: one plotly template, segment colours, the segment strip, small
text helpers.

The template (:data:`TEMPLATE`, registered with plotly as ``"attnviz"``) is made for a projector and
a ~900 px notebook: text at 14 px or more, titles larger, a colour-blind-safe categorical palette
(Okabe & Ito), axes that grow their margins for long tick labels. Every figure function sets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from ..placement import SequenceLayout

#: Okabe & Ito's colour-blind-safe palette (black left out): distinct for the common colour vision
#: deficiencies, in this order the categorical colours of every figure.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

#: Colour of each segment name in the position strips along the axes (prompt: vermillion, text:
#: grey — they differ in hue and in lightness, so they stay apart without colour vision too).
SEGMENT_COLORS = {
    "cls": "#7b3294",
    "prompt": "#D55E00",
    "text": "#c7c7c7",
    "premise": "#c7c7c7",
    "hypothesis": "#56B4E9",
    "question": "#E69F00",
    "context": "#c7c7c7",
    "sep": "#5b3a29",
}
SEGMENT_LABELS = {"cls": "[CLS]", "sep": "[SEP]"}
OTHER_COLOR = "#999999"
#: Smallest text of any figure (ticks, legends, colour bars, hover), in px.
MIN_TEXT_PX = 14
FONT = dict(family="Helvetica, Arial, sans-serif", size=15)
#: Widest figure that fits a notebook's output area in a ~900 px window (measured: 790 px beside the
#: prompt column in Lab and in the exported handouts; a wider figure is cut off at the right).
NOTEBOOK_WIDTH = 780

_TEXT = dict(size=MIN_TEXT_PX)
_AXIS = dict(automargin=True, tickfont=_TEXT, title=dict(font=dict(size=15)), showline=True, linecolor="#888",
             ticks="outside", gridcolor="#e8e8e8", zerolinecolor="#d0d0d0")
#: The package's plotly template (also ``pio.templates["attnviz"]``).
TEMPLATE = go.layout.Template(layout=dict(
    font=FONT, colorway=list(OKABE_ITO), paper_bgcolor="white", plot_bgcolor="white",
    title=dict(font=dict(size=18), x=0.5, xanchor="center"),
    legend=dict(font=_TEXT, title=dict(font=_TEXT)), hoverlabel=dict(font=_TEXT),
    xaxis=_AXIS, yaxis=_AXIS, annotationdefaults=dict(font=_TEXT),
    coloraxis=dict(colorbar=dict(tickfont=_TEXT, title=dict(font=_TEXT))),
))
TEMPLATE.data.heatmap = [go.Heatmap(colorbar=dict(tickfont=_TEXT, title=dict(font=_TEXT)))]
pio.templates["attnviz"] = TEMPLATE


def wrap_subtitle(text: str, width: int = NOTEBOOK_WIDTH, px: int = 15) -> str:
    """Break a subtitle made of ``" · "``-separated parts into lines that fit ``width`` pixels at
    ``px`` px text (about 0.5 em per character), so a title never runs off a notebook-wide figure."""
    limit = max(20, int(width / (0.52 * px)))
    lines, line = [], ""
    for part in text.split(" · "):
        cand = part if not line else f"{line} · {part}"
        if line and len(cand) > limit:
            lines.append(line)
            line = part
        else:
            line = cand
    lines.append(line)
    return "<br>".join(lines)


def themed(fig: go.Figure, **layout) -> go.Figure:
    """Put the package template on ``fig`` (and any ``layout`` properties); returns ``fig``."""
    fig.update_layout(template=TEMPLATE, **layout)
    return fig


@dataclass
class FigureParts:
    """The data-dependent parts of a figure: ``traces`` in a fixed order, each with its axes set
    (``xaxis="x3"``), and the ``layout`` properties that change with the data (nested dicts, e.g.
    ``{"title": {"text": ...}, "shapes": [...]}``). A figure function assembles them once; a live
    ``FigureWidget`` (``attnviz.widgets``) takes new parts in place, so a control change costs the
    data, not a new figure."""

    traces: list
    layout: dict = field(default_factory=dict)


def discrete_colorscale(colors: list[str]) -> list[list]:
    """A colourscale with one flat band per colour, for integer ``z`` in ``0..len(colors)-1``
    (use ``zmin=-0.5, zmax=len(colors)-0.5``)."""
    n = len(colors)
    scale = []
    for i, c in enumerate(colors):
        scale += [[i / n, c], [(i + 1) / n, c]]
    return scale


def segment_names(layout: SequenceLayout) -> list[str]:
    """Distinct segment names in order of appearance."""
    seen: list[str] = []
    for s in layout.segments:
        if s.name not in seen:
            seen.append(s.name)
    return seen


def segment_strip(layout: SequenceLayout, edges, orientation: str = "h") -> go.Heatmap:
    """A one-cell-thick heatmap of the segments along an axis, one cell per block (``edges`` as in
    attnviz.pooling), coloured by the block's main segment; the hover lists the block's segments.
    ``orientation`` "h" runs along x, "v" along y."""
    names = segment_names(layout)
    colors = [SEGMENT_COLORS.get(n, OTHER_COLOR) for n in names]
    per_pos = np.empty(layout.length, dtype=np.int64)
    for seg in layout.segments:
        per_pos[seg.start:seg.stop] = names.index(seg.name)
    edges = np.asarray(edges)
    nb, nn = len(edges) - 1, len(names)
    block = np.repeat(np.arange(nb), np.diff(edges))
    counts = np.bincount(block * nn + per_pos, minlength=nb * nn).reshape(nb, nn)
    code = counts.argmax(1).astype(np.uint8)                       # the block's main segment
    # hover text "positions a–b: [CLS], text", built with array ops (thousands of blocks at long L)
    present, kind = np.unique(counts > 0, axis=0, return_inverse=True)
    shown = [SEGMENT_LABELS.get(n, n) for n in names]
    label = np.array([", ".join(shown[j] for j in np.flatnonzero(row)) for row in present])[kind.reshape(-1)]
    a, b = edges[:-1].astype(str), (edges[1:] - 1).astype(str)
    one = np.diff(edges) == 1
    span = np.where(one, np.char.add("position ", a), np.char.add(np.char.add(np.char.add("positions ", a), "–"), b))
    text = np.char.add(np.char.add(span, ": "), label)
    bounds = edges - 0.5
    common = dict(colorscale=discrete_colorscale(colors), zmin=-0.5, zmax=len(colors) - 0.5, showscale=False,
                  hovertemplate="%{text}<extra></extra>", name="segments")
    if orientation == "h":
        return go.Heatmap(z=code[None, :], x=bounds, y=[0], text=text[None, :], **common)
    return go.Heatmap(z=code[:, None], y=bounds, x=[0], text=text[:, None], **common)


def thin_segment_marks(layout: SequenceLayout, xref: str, yref: str, orientation: str = "h",
                       min_share: float = 1 / 250, max_marks: int = 400) -> list[dict]:
    """Layout shapes (2 px lines) over a segment strip for segments too thin to survive rasterising
    (``[CLS]``, ``[SEP]``, scattered prompt tokens in a long sequence): a heatmap cell narrower than
    a pixel may vanish, a line does not. ``xref`` / ``yref`` name the strip's axes ("x2", "y2")."""
    L = layout.length
    thin = [s for s in layout.segments if len(s) < L * min_share]
    if len(thin) > max_marks:
        return []
    out = []
    for s in thin:
        c = (s.start + s.stop - 1) / 2
        line = dict(color=SEGMENT_COLORS.get(s.name, OTHER_COLOR), width=2)
        if orientation == "h":
            out.append(dict(type="line", xref=xref, yref=f"{yref} domain", x0=c, x1=c, y0=0, y1=1, line=line))
        else:
            out.append(dict(type="line", yref=yref, xref=f"{xref} domain", y0=c, y1=c, x0=0, x1=1, line=line))
    return out


def axis_refs(fig: go.Figure, row: int, col: int) -> tuple[str, str]:
    """("x2", "y2")-style references of a subplot's axes."""
    sp = fig.get_subplot(row, col)
    return sp.xaxis.plotly_name.replace("axis", ""), sp.yaxis.plotly_name.replace("axis", "")


def segment_legend(layout: SequenceLayout) -> list[go.Scatter]:
    """Legend-only traces naming the segment colours (prompt, [CLS], text, ...)."""
    out = []
    for name in segment_names(layout):
        label = SEGMENT_LABELS.get(name, name)
        if name == "prompt":
            label = f"prompt: {positions_text(layout.prompt_positions)}"
        out.append(go.Scatter(x=[None], y=[None], mode="markers", name=label, hoverinfo="skip",
                              marker=dict(symbol="square", size=12, color=SEGMENT_COLORS.get(name, OTHER_COLOR))))
    return out


def positions_text(positions) -> str:
    """``(1, 2, ..., 20)`` -> ``"1–20"``; scattered ones -> ``"1, 18, 35, … (20 tokens)"``."""
    p = list(positions)
    if not p:
        return "none"
    if p == list(range(p[0], p[-1] + 1)):
        return str(p[0]) if len(p) == 1 else f"{p[0]}–{p[-1]}"
    head = ", ".join(map(str, p[:3]))
    return f"{head}, … ({len(p)} tokens)" if len(p) > 3 else head


def step_slider(fig: go.Figure, steps: list, active: int, changing: tuple[int, ...], *, prefix: str = "",
                below_px: int = 60) -> go.Figure:
    """Make a static figure step through several versions of its data without a kernel.

    ``fig`` shows step ``active``; ``steps`` is ``[(label, FigureParts), ...]`` with the same trace
    layout. The traces at indexes ``changing`` of every other step are added (hidden), and a plotly
    slider (``method="update"``) shows one step's traces and title at a time, in any offline page.
    The slider sits ``below_px`` pixels under the plot area (under axis titles and legends); the
    figure grows to make room and the plot area keeps its size. Returns ``fig``.
    """
    owner = {i: active for i in changing}            # trace index -> the step it belongs to
    for k, (_, parts) in enumerate(steps):
        if k == active:
            continue
        for i in changing:
            owner[len(fig.data)] = k
            fig.add_trace(parts.traces[i].update(visible=False))
    slider_steps = []
    for k, (label, parts) in enumerate(steps):
        visible = [owner.get(i, k) == k for i in range(len(fig.data))]
        slider_steps.append(dict(label=label, method="update",
                                 args=[{"visible": visible}, {"title.text": parts.layout["title"]["text"]}]))
    height, margin = fig.layout.height or 500, fig.layout.margin
    plot_h = height - (margin.t or 80) - (margin.b or 80)
    extra = 100
    fig.update_layout(
        sliders=[dict(active=active, steps=slider_steps, currentvalue=dict(prefix=prefix, font=dict(size=14)),
                      x=0.05, len=0.85, y=-below_px / plot_h, yanchor="top", pad=dict(t=0))],
        height=height + extra, margin=dict(b=(margin.b or 80) + extra))
    return fig
