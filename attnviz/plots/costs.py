"""The cost view: attention memory and time vs sequence length, dense against windowed.

Two log-log panels from :class:`attnviz.costs.CostCurves`: peak attention memory (GiB) and time
(seconds at the assumed throughput) per implementation, the memory budget as a dashed line, a
marker where each implementation stops fitting it, and, when given, measured points from
:func:`attnviz.costs.measure` (one layer's op; the time scaled by the number of layers).
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..costs import CostCurves, Measurement
from ._style import FONT, FigureParts

GiB = 2**30
#: Line colour of each implementation.
COLORS = {"dense": "#d62728", "sparse": "#1f77b4", "longformer": "#2ca02c", "flex": "#9467bd", "sdpa": "#ff7f0e"}
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


def cost_parts(curves: CostCurves, measured: tuple[Measurement, ...] = ()) -> FigureParts:
    """The data of :func:`cost_figure`: traces ``[memory line per implementation, time line per
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
    # where each implementation stops fitting the budget (inside the plotted range)
    lim = [(impl, L) for impl, L in curves.limits.items() if x[0] <= L < x[-1]]
    traces.append(go.Scatter(
        x=[L for _, L in lim], y=[budget / GiB for _ in lim] if budget is not None else [],
        mode="markers+text", text=[f"{impl} fits up to L={L:,}" for impl, L in lim],
        textposition="top left", textfont=dict(size=12),
        marker=dict(symbol="x", size=13, color=[COLORS.get(i) for i, _ in lim], line=dict(width=2)),
        name="stops fitting", showlegend=False, hovertemplate="%{text}<extra></extra>", xaxis="x", yaxis="y"))
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
    title = (f"Attention cost vs length · {curves.num_layers} layers × {curves.num_heads} heads × "
             f"{curves.head_dim}, batch {curves.batch}, {curves.dtype}, {mode}")
    seconds = f"seconds at {curves.flops_per_second / 1e9:.3g} GFLOP/s"
    return FigureParts(traces=traces, layout={"title": {"text": title}, "yaxis2": {"title": {"text": seconds}}})


def cost_figure(curves: CostCurves, measured: tuple[Measurement, ...] = (), *, width: int = 980,
                height: int = 460) -> go.Figure:
    """Memory (left) and time (right) of attention vs length, log-log, for each implementation in
    ``curves``, with the budget, where each stops fitting, and ``measured`` points overlaid."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("peak attention memory", "time (FLOPs / throughput)"))
    parts = cost_parts(curves, measured)
    fig.add_traces(parts.traces)
    fig.update_xaxes(type="log", title_text="sequence length L")
    fig.update_yaxes(type="log", title_text="GiB", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(parts.layout, width=width, height=height, font=FONT, template="plotly_white",
                      legend=dict(orientation="h", y=-0.2), margin=dict(t=80, b=110, l=60, r=20))
    return fig
