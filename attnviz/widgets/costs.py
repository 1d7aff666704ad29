"""The cost explorer: what a window configuration costs in memory and time, dense against windowed.

Controls → :class:`CostSettings` (plain values) → :func:`cost_view` (the one pure function: the
pattern from the settings, :func:`attnviz.costs.cost_curves` for dense and the windowed
implementation, and :func:`attnviz.plots.costs.cost_parts`) → one plotly ``FigureWidget`` updated in
place. The "measure" button runs :func:`attnviz.costs.measure` (in a fresh process:
:func:`attnviz.costs.measure_isolated`) at a few lengths and overlays the measured points.
"""

from __future__ import annotations

import dataclasses
import html
import math
from dataclasses import dataclass

import ipywidgets as widgets

from ..costs import (DEFAULT_FLOPS_PER_SECOND, MEASURABLE as BACKENDS, DTYPES, CostCurves, Measurement, cost_curves,
                     measure_isolated)
from ..patterns import AttentionPattern
from ..plots import FigureParts
from ..plots.costs import cost_figure, cost_parts
from ._base import control_row, Explorer
from .live_figure import LiveFigure, apply_parts

#: Longest sequence on the length slider.
MAX_LENGTH = 32_768
#: Implementations the windowed curve can use (see :data:`attnviz.costs.IMPLEMENTATIONS`).
WINDOWED = ("sparse", "longformer", "flex", "sdpa")
#: The measure button runs lengths up to this (dense attention on a laptop CPU: ~0.4 GiB per layer op).
MEASURE_MAX_LENGTH = 2048


@dataclass(frozen=True)
class CostSettings:
    """What the cost explorer's controls say.

    ``max_length``: the curves run from 128 to it. ``window`` (bidirectional total width, even),
    ``n_global`` global tokens at positions ``0..n_global-1``, ``random_blocks`` BigBird blocks of
    ``block_size``: the windowed pattern, run by ``implementation`` (one of :data:`WINDOWED`).
    ``budget_gib``: device memory for attention (0 = none). ``gflops``: the assumed throughput of
    the time axis. ``backward``: training (forward + backward) instead of inference.
    """

    max_length: int = 16_384
    window: int = 512
    n_global: int = 1
    random_blocks: int = 0
    block_size: int = 64
    implementation: str = "flex"
    num_layers: int = 12
    num_heads: int = 12
    head_dim: int = 64
    batch: int = 1
    dtype: str = "float32"
    budget_gib: float = 16.0
    backward: bool = False
    gflops: float = DEFAULT_FLOPS_PER_SECOND / 1e9

    def pattern(self) -> AttentionPattern:
        if self.n_global < 0:
            raise ValueError(f"global tokens must be >= 0, got {self.n_global}")
        return AttentionPattern(window=self.window, global_positions=tuple(range(self.n_global)),
                                random_blocks=self.random_blocks,
                                block_size=self.block_size if self.random_blocks else None)

    def budget_bytes(self) -> int | None:
        if self.budget_gib < 0:
            raise ValueError(f"budget must be >= 0 GiB (0 = no budget), got {self.budget_gib}")
        return int(self.budget_gib * 2**30) if self.budget_gib else None


@dataclass(frozen=True)
class CostView:
    """Result of :func:`cost_view`: the settings, the curves and the figure data."""

    settings: CostSettings
    curves: CostCurves
    parts: FigureParts

    @property
    def setting_text(self) -> str:
        """The windowed pattern in the words of the controls: "window 512, 1 global token, flex"."""
        s = self.settings
        parts = [f"window {s.window}", f"{s.n_global} global token{'' if s.n_global == 1 else 's'}"]
        if s.random_blocks:
            parts.append(f"{s.random_blocks} random block{'' if s.random_blocks == 1 else 's'} of {s.block_size}")
        return ", ".join(parts) + f", run as {s.implementation}"

    @property
    def summary(self) -> str:
        c, s = self.curves, self.settings
        L = c.lengths[-1]
        dense, windowed = c.peak_bytes["dense"][-1], c.peak_bytes[s.implementation][-1]
        ratio = dense / windowed
        how = f"{ratio:.3g}× less" if ratio >= 1 else f"{1 / ratio:.3g}× more"
        text = (f"At L={L:,}: dense {dense / 2**30:.3g} GiB, windowed ({s.implementation}) "
                f"{windowed / 2**30:.3g} GiB ({how})")
        if c.budget_bytes is not None:
            text += f"; dense fits {s.budget_gib:g} GiB up to L={c.limits['dense']:,}"
            w = c.limits.get(s.implementation)
            if w is not None:
                text += (f", windowed up to L={w:,}" if w < L else f", windowed fits every L shown")
        return text + "."


def cost_view(settings: CostSettings, measured: tuple[Measurement, ...] = ()) -> CostView:
    """Everything the cost explorer draws for ``settings``: dense (full attention) and windowed
    :func:`attnviz.costs.cost_curves` and the figure data with ``measured`` points. Raises
    ``ValueError`` / ``TypeError`` naming the bad setting."""
    s = settings
    if s.implementation not in WINDOWED:
        raise ValueError(f"unknown windowed implementation {s.implementation!r}; allowed: {', '.join(WINDOWED)}")
    if s.dtype not in DTYPES:
        raise ValueError(f"unknown dtype {s.dtype!r}; allowed: {', '.join(DTYPES)}")
    if not 128 <= s.max_length <= MAX_LENGTH:
        raise ValueError(f"length must be in 128..{MAX_LENGTH}, got {s.max_length}")
    if not s.gflops > 0:
        raise ValueError(f"throughput must be > 0 GFLOP/s, got {s.gflops}")
    curves = cost_curves(s.pattern(), s.max_length, s.num_layers, s.num_heads, s.head_dim,
                         implementations=("dense", s.implementation), batch=s.batch, dtype=s.dtype,
                         backward=s.backward, budget_bytes=s.budget_bytes(), flops_per_second=s.gflops * 1e9)
    return CostView(settings=s, curves=curves, parts=cost_parts(curves, measured))


def measure_lengths(settings: CostSettings, count: int = 3) -> tuple[int, ...]:
    """The lengths the measure button runs: up to ``count`` lengths halving from
    ``min(max_length, MEASURE_MAX_LENGTH)``, at least 128."""
    top = min(settings.max_length, MEASURE_MAX_LENGTH)
    return tuple(sorted({max(128, top >> i) for i in range(count)}))


def measure_plan(settings: CostSettings) -> tuple[list[tuple[str, AttentionPattern | None]], str]:
    """What the measure button runs for ``settings``: ``[(backend, pattern or None), ...]`` (dense
    full attention first) and, when the windowed implementation cannot be measured here, why."""
    stages: list[tuple[str, AttentionPattern | None]] = [("dense", None)]
    impl = settings.implementation
    if impl not in BACKENDS:
        return stages, f"{impl} is the idealised band: no kernel runs it, so only dense was measured"
    if impl == "flex" and settings.backward:
        import torch

        if not torch.cuda.is_available():
            return stages, "FlexAttention has no backward on CPU: only dense was measured"
    return stages + [(impl, settings.pattern())], ""


def measure_points(settings: CostSettings, lengths: tuple[int, ...] | None = None) -> tuple[Measurement, ...]:
    """Run :func:`attnviz.costs.measure` for what :func:`measure_plan` says (dense, and the windowed
    implementation where something runs it) at ``lengths`` (default :func:`measure_lengths`), one
    layer's op each, in one fresh process."""
    lengths = measure_lengths(settings) if lengths is None else lengths
    common = dict(num_heads=settings.num_heads, head_dim=settings.head_dim, batch=settings.batch,
                  dtype=settings.dtype, backward=settings.backward, repeats=2)
    stages, _ = measure_plan(settings)
    return tuple(measure_isolated([dict(pattern=p, layout=L, backend=b, **common) for b, p in stages for L in lengths]))


class CostExplorer(Explorer):
    """Memory and time of attention vs length, dense against windowed (see the module docstring).

    ``CostExplorer(**settings)`` takes the fields of :class:`CostSettings` as starting values
    (e.g. ``window=512, budget_gib=24``). ``controls`` maps those names to widgets, ``figures`` has
    ``"cost"``, ``measure()`` does what the button does, ``result`` is the last :class:`CostView`.
    """

    def __init__(self, **initial):
        super().__init__()
        names = {f.name for f in dataclasses.fields(CostSettings)}
        unknown = sorted(set(initial) - names)
        if unknown:
            raise TypeError(f"unknown setting(s) {unknown}; known: {', '.join(sorted(names))}")
        s = CostSettings(**initial)
        first = cost_view(s)  # bad starting values raise here, with the reason
        self.measured: tuple[Measurement, ...] = ()
        self.measure_note = ""      # why part of the last measurement could not run, "" if all ran
        wide = {"description_width": "initial"}
        c = self.controls
        c["max_length"] = widgets.FloatLogSlider(value=s.max_length, base=2, min=7, max=math.log2(MAX_LENGTH),
                                                 step=1, description="L up to", readout_format=".0f",
                                                 continuous_update=False, style=wide,
                                                 layout=widgets.Layout(width="330px"))
        c["window"] = widgets.BoundedIntText(value=s.window, min=2, max=MAX_LENGTH, step=2, description="window",
                                             style=wide, layout=widgets.Layout(width="140px"))
        c["n_global"] = widgets.BoundedIntText(value=s.n_global, min=0, max=4096, description="global tokens",
                                               style=wide, layout=widgets.Layout(width="160px"))
        c["random_blocks"] = widgets.BoundedIntText(value=s.random_blocks, min=0, max=16, description="random blocks",
                                                    style=wide, layout=widgets.Layout(width="160px"))
        c["block_size"] = widgets.BoundedIntText(value=s.block_size, min=1, max=4096, description="of size",
                                                 style=wide, layout=widgets.Layout(width="130px"))
        c["implementation"] = widgets.Dropdown(options=list(WINDOWED), value=s.implementation,
                                               description="windowed as", style=wide,
                                               layout=widgets.Layout(width="220px"))
        c["num_layers"] = widgets.BoundedIntText(value=s.num_layers, min=1, max=256, description="layers", style=wide,
                                                 layout=widgets.Layout(width="120px"))
        c["num_heads"] = widgets.BoundedIntText(value=s.num_heads, min=1, max=256, description="heads", style=wide,
                                                layout=widgets.Layout(width="120px"))
        c["head_dim"] = widgets.BoundedIntText(value=s.head_dim, min=1, max=1024, description="head dim", style=wide,
                                               layout=widgets.Layout(width="130px"))
        c["batch"] = widgets.BoundedIntText(value=s.batch, min=1, max=4096, description="batch", style=wide,
                                            layout=widgets.Layout(width="120px"))
        c["dtype"] = widgets.Dropdown(options=list(DTYPES), value=s.dtype, description="dtype", style=wide,
                                      layout=widgets.Layout(width="170px"))
        c["budget_gib"] = widgets.BoundedFloatText(value=s.budget_gib, min=0, max=1e6, description="budget GiB",
                                                   style=wide, layout=widgets.Layout(width="160px"))
        c["backward"] = widgets.Checkbox(value=s.backward, description="training (fwd + bwd)", indent=False,
                                         layout=widgets.Layout(width="170px"))
        c["gflops"] = widgets.BoundedFloatText(value=s.gflops, min=1e-3, max=1e7, description="GFLOP/s",
                                               style=wide, layout=widgets.Layout(width="150px"))
        for name, w in c.items():
            w.add_class(f"attnviz-{name.replace('_', '-')}")
        self.button = widgets.Button(description="measure", icon="play",
                                     tooltip="run a real forward (and backward) at a few lengths on this machine")
        self.button.add_class("attnviz-measure")
        self.button.on_click(lambda _: self.measure())
        fig = cost_figure(first.curves)
        self.figures["cost"] = LiveFigure(data=fig.data, layout=fig.layout)
        self.result: CostView | None = None
        self._go_live(first)

        row = control_row
        self._view = widgets.VBox([
            row("pattern", c["max_length"], c["window"], c["n_global"], c["random_blocks"], c["block_size"],
                c["implementation"]),
            row("model", c["num_layers"], c["num_heads"], c["head_dim"], c["batch"], c["dtype"]),
            row("device", c["budget_gib"], c["gflops"], c["backward"], self.button, self.status),
            self.message, self.summary, self.figures["cost"],
        ])
        self._view.add_class("attnviz-explorer")

    @property
    def view(self) -> widgets.VBox:
        return self._view

    def settings(self) -> CostSettings:
        self._sync_controls()
        values = {name: w.value for name, w in self.controls.items()}
        values["max_length"] = 2 ** int(round(math.log2(max(values["max_length"], 1))))   # powers of two
        return CostSettings(**values)

    def compute(self, settings: CostSettings) -> CostView:
        if self.result is not None and settings != self.result.settings:
            self.measured = ()  # measured points belong to the settings they were measured with
        return cost_view(settings, self.measured)

    def render(self, result: CostView) -> None:
        apply_parts(self.figures["cost"], result.parts)
        self.summary.value = (f"<div style='font-size:15px;margin:4px 0;word-break:normal;overflow-wrap:normal'><b>{html.escape(result.setting_text)}</b>: "
                              f"{html.escape(result.summary)}</div>")
        self.result = result

    def status_text(self, result: CostView) -> str:
        ms = f"updated in {self.last_ms:.0f} ms · " if self.last_ms is not None else ""
        n = len(self.measured)
        extra = ""
        if n:
            extra = f" + {n} measured points (one layer's op each"
            extra += "; the training curve is the whole stack)" if result.settings.backward and \
                result.settings.num_layers > 1 else ")"
        return f'<span style="color:#666">{ms}analytic{extra}</span>'

    def measure(self, lengths: tuple[int, ...] | None = None) -> tuple[Measurement, ...]:
        """Measure at a few lengths and overlay the points; returns them.

        Dense first (one fresh process, ~5 s at the default size: its points appear at once), then
        the windowed implementation in a second process; the status line says what runs now and,
        when something cannot be measured here, why (``sparse`` is an idealised band nothing runs;
        FlexAttention has no backward on CPU and compiles ~20 s on first use)."""
        try:
            s = self.settings()
            cost_view(s)
        except (ValueError, TypeError) as exc:
            self.show_error(str(exc))
            return ()
        lengths = measure_lengths(s) if lengths is None else tuple(lengths)
        stages, skipped = measure_plan(s)
        at = ", ".join(f"{L:,}" for L in lengths)
        self.button.disabled = True
        got: list[Measurement] = []
        try:
            for i, (backend, pattern) in enumerate(stages):
                slow = " (first use compiles the kernel: ~20 s)" if backend == "flex" else " (~5 s)"
                self.status.value = (f'<span style="color:#0b5394">measuring {i + 1} of {len(stages)}: {backend} at '
                                     f'L = {at}, in a fresh process{slow}…</span>')
                common = dict(num_heads=s.num_heads, head_dim=s.head_dim, batch=s.batch, dtype=s.dtype,
                              backward=s.backward, repeats=2)
                try:
                    got += measure_isolated([dict(pattern=pattern, layout=L, backend=backend, **common)
                                             for L in lengths])
                except Exception as exc:  # a failed run is a message, not a traceback
                    self.measured = tuple(got)
                    self.redraw()
                    self.show_error(f"measuring {backend} failed: {exc}")
                    return self.measured
                self.measured = tuple(got)
                self.redraw()
        finally:
            self.button.disabled = False
        if skipped:
            self.status.value = self.status.value.replace("</span>", f" · {html.escape(skipped)}</span>")
        self.measure_note = skipped
        return self.measured

    def _sync_controls(self) -> None:
        c = self.controls
        c["block_size"].disabled = c["random_blocks"].value == 0
