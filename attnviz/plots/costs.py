"""The cost view: attention memory and time vs sequence length, dense against windowed.

Two log-log panels from :class:`attnviz.costs.CostCurves`: peak attention memory (GiB) and time
(seconds at the assumed throughput) per implementation, the memory budget as a dashed line, a
marker where each implementation stops fitting it, and, when given, measured points from
:func:`attnviz.costs.measure` (one layer's op; the time scaled by the number of layers).
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..costs import CostCurves, Measurement

from ._style import FONT, NOTEBOOK_WIDTH, TEMPLATE, FigureParts

GiB = 2**30
#: Line colour of each implementation (colour-blind safe: Okabe & Ito).
COLORS = {"dense": "#D55E00", "sparse": "#0072B2", "longformer": "#009E73", "flex": "#CC79A7", "sdpa": "#E69F00"}
LABELS = {"dense": "dense (full attention)", "sparse": "windowed, ideal band (sparse)",
          "longformer": "windowed, Longformer kernel", "flex": "windowed, FlexAttention",
          "sdpa": "windowed mask, sdpa kernel"}


def _label(impl: str) -> str:
    return LABELS.get(impl, impl)


def _fmt_bytes(b: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"


def power_of_two_ticks(lo: float, hi: float) -> dict:
    """Axis ticks at the powers of two in ``[lo, hi]``, labelled ``128 256 512 1k 2k … 32k`` (every
    second one when there are more than 9): the length axis of the cost view."""
    a, b = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
    vals = [2**k for k in range(a, b + 1) if lo <= 2**k <= hi] or [lo, hi]
    if len(vals) > 9:
        vals = vals[::-1][::2][::-1]               # every second one, the longest kept
    return {"tickvals": vals, "ticktext": [f"{v // 1024}k" if v >= 1024 else f"{v:g}" for v in vals]}


def decade_ticks(lo: float, hi: float) -> dict:
    """Log-axis ticks without minor labels: 1-2-5 steps when ``[lo, hi]`` spans at most two
    decades, else the powers of ten (every second one above eight decades)."""
    lo, hi = max(lo, 1e-12), max(hi, lo * 1.0001)
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if b - a <= 2 else (1,)
    vals = [m * 10**k for k in range(a, b + 1) for m in steps if lo / 1.05 <= m * 10**k <= hi * 1.05]
    if len(vals) > 9:
        vals = vals[::2]
    if len(vals) < 2:
        vals = [lo, hi]
    return {"tickvals": vals, "ticktext": [f"{v:.3g}" if v < 1e4 else f"{v:.0e}" for v in vals]}


def cost_parts(curves: CostCurves, measured: tuple[Measurement, ...] = ()) -> FigureParts:
    """The data of :func:`cost_figure`: the panel titles and, per implementation, where it stops
    fitting the budget as annotations (stacked, so they never overlap); log axes ticked at powers of
    two (L) and 1-2-5 / powers of ten (GiB, seconds), no minor labels; traces ``[memory line per implementation, time line per
    implementation, budget line, budget limits, measured memory per implementation, measured time per
    implementation]`` (a fixed order for a given set of implementations) and the title.

    Memory lines are ``peak_bytes / 2**30`` (GiB), time lines ``seconds``; measured memory is the
    measured net peak of one layer's op (equal to the stack's peak in the forward), measured time one
    op's median seconds times the number of layers."""
    x = list(curves.lengths)
    impls = curves.implementations
    traces = []
    for impl in impls:
        traces.append(go.Scatter(
            x=x, y=[b / GiB for b in curves.peak_bytes[impl]], mode="lines+markers", name=_label(impl),
            legendgroup=impl, line=dict(color=COLORS.get(impl), width=2.5), marker=dict(size=5),
            customdata=[_fmt_bytes(b) for b in curves.peak_bytes[impl]],
            hovertemplate=f"{_label(impl)}<br>L=%{{x}}: %{{customdata}}<extra></extra>", xaxis="x", yaxis="y"))
    for impl in impls:
        traces.append(go.Scatter(
            x=x, y=list(curves.seconds[impl]), mode="lines+markers", name=_label(impl), legendgroup=impl,
            showlegend=False, line=dict(color=COLORS.get(impl), width=2.5), marker=dict(size=5),
            customdata=[f"{f / 1e9:.3g}" for f in curves.flops[impl]],
            hovertemplate=f"{_label(impl)}<br>L=%{{x}}: %{{y:.3g}} s (%{{customdata}} GFLOP)<extra></extra>",
            xaxis="x2", yaxis="y2"))
    budget = curves.budget_bytes
    traces.append(go.Scatter(
        x=[x[0], x[-1]] if budget is not None else [], y=[budget / GiB] * 2 if budget is not None else [],
        mode="lines", name=f"budget {_fmt_bytes(budget)}" if budget is not None else "budget",
        line=dict(color="#444", dash="dash", width=1.5), hoverinfo="skip", xaxis="x", yaxis="y",
        showlegend=budget is not None))
    # where each implementation stops fitting the budget (inside the plotted range): a cross on the
    # budget line, and the numbers stacked in the memory panel's top-left corner (never overlapping)
    lim = [(impl, L) for impl, L in curves.limits.items() if x[0] <= L < x[-1]]
    traces.append(go.Scatter(
        x=[L for _, L in lim], y=[budget / GiB for _ in lim] if budget is not None else [],
        mode="markers", text=[f"{impl} fits {_fmt_bytes(budget)} up to L={L:,}" for impl, L in lim],
        marker=dict(symbol="x", size=14, color=[COLORS.get(i) for i, _ in lim], line=dict(width=2)),
        name="stops fitting", showlegend=False, hovertemplate="%{text}<extra></extra>", xaxis="x", yaxis="y"))
    notes = [dict(text=t, xref=f"{ax} domain", yref="paper", x=0.5, y=1.0, yshift=4, xanchor="center",
                  yanchor="bottom", showarrow=False, font=dict(size=15))
             for ax, t in (("x", "peak attention memory"), ("x2", "time (FLOPs / throughput)"))]
    if budget is not None:
        for i, impl in enumerate(impls):
            L = curves.limits.get(impl)
            if L is None:
                continue
            what = f"fits up to L={L:,}" if L < x[-1] else f"fits all L ≤ {x[-1]:,}"
            notes.append(dict(text=f"<b>{impl}</b> {what}", xref="x domain", yref="y domain", x=0.02,
                              y=0.98 - 0.09 * (len(notes) - 2), xanchor="left", yanchor="top", showarrow=False,
                              font=dict(color=COLORS.get(impl), size=14), bgcolor="rgba(255,255,255,0.85)"))
    for panel in ("memory", "time"):
        for impl in impls:
            ms = [m for m in measured if m.backend == impl]
            if panel == "memory":
                y = [None if m.peak_bytes is None else m.peak_bytes / GiB for m in ms]
                text = [f"measured {_fmt_bytes(m.peak_bytes or 0)}, predicted {_fmt_bytes(m.predicted_bytes)}"
                        f" (ratio {m.ratio:.2f})" if m.ratio is not None else "not measurable here" for m in ms]
            else:
                y = [m.seconds * curves.num_layers for m in ms]
                text = [f"measured {m.seconds * 1000:.3g} ms per layer × {curves.num_layers}; "
                        f"{m.flops_per_second / 1e9:.3g} GFLOP/s" for m in ms]
            traces.append(go.Scatter(
                x=[m.length for m in ms], y=y, mode="markers", name=f"measured: {impl}", legendgroup=impl,
                showlegend=panel == "memory" and bool(ms), text=text,
                marker=dict(symbol="diamond-open", size=12, color=COLORS.get(impl), line=dict(width=2.5)),
                hovertemplate="L=%{x}: %{text}<extra></extra>",
                xaxis="x" if panel == "memory" else "x2", yaxis="y" if panel == "memory" else "y2"))
    mode = "forward + backward" if curves.backward else "forward"
    title = (f"Attention cost vs length<br><span style='font-size:15px'>{curves.num_layers} layers × "
             f"{curves.num_heads} heads × {curves.head_dim}, batch {curves.batch}, {curves.dtype}, {mode}</span>")
    seconds = f"seconds at {curves.flops_per_second / 1e9:.3g} GFLOP/s"
    mem = [b / GiB for impl in impls for b in curves.peak_bytes[impl] if b > 0]
    mem += [budget / GiB] if budget is not None else []
    mem += [m.peak_bytes / GiB for m in measured if m.peak_bytes]
    sec = [v for impl in impls for v in curves.seconds[impl] if v > 0] + [m.seconds * curves.num_layers
                                                                         for m in measured if m.seconds > 0]
    xt = power_of_two_ticks(x[0], x[-1])
    return FigureParts(traces=traces, layout={
        "title": {"text": title}, "annotations": notes,
        "xaxis": xt, "xaxis2": xt,
        "yaxis": decade_ticks(min(mem), max(mem)),
        "yaxis2": {"title": {"text": seconds}, **decade_ticks(min(sec), max(sec))}})


def cost_figure(curves: CostCurves, measured: tuple[Measurement, ...] = (), *, width: int = NOTEBOOK_WIDTH,
                height: int = 500) -> go.Figure:
    """Memory (left) and time (right) of attention vs length, log-log, for each implementation in
    ``curves``, with the budget, where each stops fitting, and ``measured`` points overlaid."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14)
    parts = cost_parts(curves, measured)
    fig.add_traces(parts.traces)
    fig.update_xaxes(type="log", title_text="sequence length L", minor=dict(showgrid=False))
    fig.update_yaxes(type="log", title_text="GiB", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(width=width, height=height, font=FONT, template=TEMPLATE,
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.22, yanchor="top"),
                      margin=dict(t=120, b=150, l=70, r=20))
    fig.update_layout(parts.layout)
    return fig
