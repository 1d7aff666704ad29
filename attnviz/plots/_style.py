"""Shared look of attnviz figures: segment colours, the segment strip, small text helpers."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..placement import SequenceLayout

#: Colour of each segment name in the position strips along the axes.
SEGMENT_COLORS = {
    "cls": "#6a3d9a",
    "prompt": "#d62728",
    "text": "#c7c7c7",
    "premise": "#c7c7c7",
    "hypothesis": "#9ecae1",
    "question": "#fdd0a2",
    "context": "#c7c7c7",
    "sep": "#8c564b",
}
SEGMENT_LABELS = {"cls": "[CLS]", "sep": "[SEP]"}
OTHER_COLOR = "#999999"
FONT = dict(family="Helvetica, Arial, sans-serif", size=13)


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
    per_pos = np.array([names.index(n) for n in layout.names()])
    edges = np.asarray(edges)
    code = np.empty(len(edges) - 1, dtype=np.uint8)
    text = []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        counts = np.bincount(per_pos[a:b], minlength=len(names))
        code[i] = counts.argmax()
        label = ", ".join(SEGMENT_LABELS.get(names[j], names[j]) for j in np.flatnonzero(counts))
        text.append(f"position {a}: {label}" if b - a == 1 else f"positions {a}–{b - 1}: {label}")
    bounds = edges - 0.5
    common = dict(colorscale=discrete_colorscale(colors), zmin=-0.5, zmax=len(colors) - 0.5, showscale=False,
                  hovertemplate="%{text}<extra></extra>", name="segments")
    if orientation == "h":
        return go.Heatmap(z=code[None, :], x=bounds, y=[0], text=[text], **common)
    return go.Heatmap(z=code[:, None], y=bounds, x=[0], text=[[t] for t in text], **common)


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
        pos = layout.positions(name)
        label = SEGMENT_LABELS.get(name, name)
        if name == "prompt":
            label = f"prompt: {positions_text(pos)}"
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
