"""Training curves: loss and accuracy of a soft-prompt run against the step.

:func:`training_figure` draws the records that :func:`attnviz.prompts.train_soft_prompt` logs
(``log.jsonl``: ``{"step", "loss", "accuracy", "eval": {"loss", "accuracy", "n"} or absent, ...}``
per step), two panels side by side: loss (training batch, held-out) and accuracy (training batch,
held-out). The live :class:`attnviz.widgets.TrainingMonitor` and ``attnviz report`` use it.
Values are plotted exactly as logged (plain Python floats, no smoothing).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._style import FONT, NOTEBOOK_WIDTH, TEMPLATE, FigureParts

#: Trace order of the figure (the live monitor updates them in place).
TRACES = ("train loss", "held-out loss", "train accuracy", "held-out accuracy")
#: One colour per trace, so the legend tells all four apart (colour-blind-safe Okabe-Ito hues):
#: blue / vermillion for the losses, green / reddish purple for the accuracies.
COLORS = {"train loss": "#0072B2", "held-out loss": "#D55E00",
          "train accuracy": "#009E73", "held-out accuracy": "#CC79A7"}


def _curves(history: Iterable[Mapping]) -> dict[str, tuple[list, list]]:
    out = {name: ([], []) for name in TRACES}
    for r in history:
        step = int(r["step"])
        out["train loss"][0].append(step)
        out["train loss"][1].append(float(r["loss"]))
        if r.get("accuracy") is not None:
            out["train accuracy"][0].append(step)
            out["train accuracy"][1].append(float(r["accuracy"]))
        ev = r.get("eval")
        if ev:
            if ev.get("loss") is not None:
                out["held-out loss"][0].append(step)
                out["held-out loss"][1].append(float(ev["loss"]))
            if ev.get("accuracy") is not None:
                out["held-out accuracy"][0].append(step)
                out["held-out accuracy"][1].append(float(ev["accuracy"]))
    return out


def training_parts(history: Iterable[Mapping], *, steps: int | None = None, title: str | None = None) -> FigureParts:
    """The data of :func:`training_figure` as :class:`~attnviz.plots._style.FigureParts`: four
    traces in the order of :data:`TRACES` (x = steps, y = the logged values), the title and, when
    ``steps`` is given, the x ranges ``[0, steps]`` (else plotly's autorange)."""
    curves = _curves(history)
    traces = []
    for name, (x, y) in curves.items():
        held_out = name.startswith("held-out")
        color = COLORS[name]
        axes = ("x", "y") if name.endswith("loss") else ("x2", "y2")
        traces.append(go.Scatter(
            x=x, y=y, name=name, mode="lines+markers", xaxis=axes[0], yaxis=axes[1],
            line=dict(color=color, width=2 if held_out else 1.5),
            marker=dict(size=7 if held_out else 3, color=color), legendgroup="held-out" if held_out else "train",
            hovertemplate=f"step %{{x}}: {name} %{{y:.4g}}<extra></extra>"))
    n = len(curves["train loss"][0])
    last = curves["train loss"][0][-1] if n else 0
    if title is None:
        ev = curves["held-out accuracy"][1]
        tail = f" · held-out accuracy {ev[-1]:.3f}" if ev else ""
        title = f"Training: step {last}{f' of {steps}' if steps else ''}{tail}"
    layout = {"title": {"text": title}}
    if steps:
        layout.update(xaxis={"range": [0, max(steps, last, 1)]}, xaxis2={"range": [0, max(steps, last, 1)]})
    return FigureParts(traces=traces, layout=layout)


def training_figure(history: Iterable[Mapping], *, steps: int | None = None, title: str | None = None,
                    width: int = NOTEBOOK_WIDTH, height: int = 400) -> go.Figure:
    """Loss (left) and accuracy (right) against the step, training batches and held-out data.

    Args:
        history: records as logged by ``train_soft_prompt`` (``log.jsonl`` lines, ``TrainResult.history``).
        steps: planned steps (fixes the x range, so a live figure does not rescale every step).
        title: replaces the default title.
    Returns:
        a ``go.Figure`` whose ``data`` are the four traces of :data:`TRACES`.
    """
    parts = training_parts(history, steps=steps, title=title)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.09)
    fig.add_traces(parts.traces)
    _style_step_panels(fig, parts.layout["title"]["text"], width, height,
                       x_range=parts.layout.get("xaxis", {}).get("range"))
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    return fig


def _style_step_panels(fig: go.Figure, title: str, width: int, height: int, x_range=None) -> None:
    """The shared look of the two-panel (loss | accuracy) figures against the step, in place."""
    fig.update_layout(font=FONT, template=TEMPLATE, plot_bgcolor="white", width=width, height=height,
                      title=dict(text=title, x=0.5, xanchor="center"),
                      legend=dict(orientation="h", x=0.5, xanchor="center", y=-0.18, yanchor="top"),
                      margin=dict(l=60, r=30, t=80, b=90))
    fig.update_xaxes(title_text="step", range=x_range, showline=True, linecolor="#999", gridcolor="#eee",
                     zeroline=False)
    fig.update_yaxes(showline=True, linecolor="#999", gridcolor="#eee", zeroline=False)


#: Colours of the runs in :func:`runs_figure`, in order.
RUN_COLORS = ("#7f7f7f", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def running_mean(values: list[float], window: int) -> list[float]:
    """Mean of the last ``window`` values at each index (fewer at the start): ``len(values)`` floats."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"smooth must be an int >= 1 (steps averaged), got {window!r}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def runs_figure(runs: Mapping[str, Iterable[Mapping]], *, smooth: int = 25, chance: float | None = None,
                title: str | None = None, width: int = NOTEBOOK_WIDTH, height: int = 400) -> go.Figure:
    """Several training runs side by side: training-batch loss (left) and accuracy (right), each a
    running mean over ``smooth`` steps (one batch of 8 is too noisy to compare runs), plus each
    run's held-out accuracy as large markers where it was evaluated.

    Args:
        runs: ``{label: history}``, histories as logged by ``train_soft_prompt``
            (``TrainResult.history`` or ``log.jsonl`` lines); drawn in order, colours from
            :data:`RUN_COLORS` (the first run grey: put the baseline first).
        smooth: steps per running mean (1 = as logged).
        chance: draws a dotted line at this accuracy (e.g. ``1/3`` for balanced 3-way), if given.
    Returns:
        a ``go.Figure`` with, per run, the traces "<label>" (loss, x/y), "<label>" (accuracy,
        x2/y2) and "<label> held-out" (x2/y2).
    """
    if not runs:
        raise ValueError("runs is empty; pass {label: history} of at least one run")
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"training loss (mean of {smooth} steps)",
                                                        f"accuracy (training: mean of {smooth} steps)"),
                        horizontal_spacing=0.09)
    for k, (label, history) in enumerate(runs.items()):
        curves = _curves(history)
        color = RUN_COLORS[k % len(RUN_COLORS)]
        (xl, yl), (xa, ya), (xe, ye) = curves["train loss"], curves["train accuracy"], curves["held-out accuracy"]
        fig.add_trace(go.Scatter(x=xl, y=running_mean(yl, smooth), name=label, legendgroup=label, mode="lines",
                                 line=dict(color=color, width=2),
                                 hovertemplate=f"{label}<br>step %{{x}}: loss %{{y:.3f}}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=xa, y=running_mean(ya, smooth), name=label, legendgroup=label, mode="lines",
                                 showlegend=False, line=dict(color=color, width=2),
                                 hovertemplate=f"{label}<br>step %{{x}}: training accuracy %{{y:.3f}}<extra></extra>"),
                      row=1, col=2)
        fig.add_trace(go.Scatter(x=xe, y=ye, name=f"{label} held-out", legendgroup=label, mode="markers",
                                 marker=dict(color=color, size=11, symbol="diamond", line=dict(color="white", width=1)),
                                 hovertemplate=f"{label}<br>step %{{x}}: held-out accuracy %{{y:.3f}}<extra></extra>"),
                      row=1, col=2)
    if chance is not None:
        fig.add_hline(y=chance, line=dict(color="#999", dash="dot"), row=1, col=2,
                      annotation_text=f"chance {chance:.2f}", annotation_position="bottom right")
    _style_step_panels(fig, title or "Training runs compared", width, height)
    return fig
