"""The pattern explorer: change windows, globals, the mask zoo (prefix-LM, sinks, chunks, packed
documents) and placement; the mask and spread views redraw.

Controls → :class:`PatternSettings` (plain values) → :func:`pattern_view` (the one pure function:
pattern and layout from the settings, :func:`attnviz.spread_pattern` for the reach, and the plot
modules' :func:`~attnviz.plots.masks.mask_parts` / :func:`~attnviz.plots.spread.spread_parts`,
whose mask comes from :func:`attnviz.pooling.pooled_reasons`) → two plotly ``FigureWidget`` s
updated in place. Nothing on that path builds a dense ``(layers, L, L)`` mask, so a control change
at L = 16k with 24 layers is ready in well under 100 ms on a laptop (``benchmarks/explorer_latency``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import plotly.graph_objects as go

from ..masks import part_from_text
from ..patterns import AttentionPattern, describe
from ..placement import PLACEMENTS, PromptPlacement, SequenceLayout
from ..plots import mask_figure, save_html, spread_figure
from ..plots import NOTEBOOK_WIDTH, FigureParts, step_slider
from ..plots.masks import mask_parts
from ..plots.spread import spread_parts
from ..spread import Spread, one_thread as _one_thread, spread_pattern
from ._base import control_row, Explorer, parse_ints
from .live_figure import LiveFigure, apply_parts

#: Longest sequence the explorer draws (positions, prompt and special tokens included).
MAX_POSITIONS = 2**17
MAX_LAYERS = 64
#: Values of the window slider (None = full attention); a starting window not listed is added.
WINDOW_OPTIONS = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, None)

#: Heatmap cells of the live figures (payload ~1.3 MB at most) and of each step of an export.
MASK_CELLS, SPREAD_CELLS = 40_000, 20_000
EXPORT_MASK_CELLS, EXPORT_SPREAD_CELLS = 10_000, 8_000


@dataclass(frozen=True)
class PatternSettings:
    """What the pattern explorer's controls say, as plain values (text fields stay text).

    ``windows`` (e.g. ``"32,32,64,64,128,128"``, one entry per layer or one for all, ``full`` =
    full attention) overrides ``window`` when it is not blank; ``global_positions`` is a comma list (``"0"`` =
    ``[CLS]``). ``at`` is used by the ``infix`` placement only (None: the middle of the text, so that
    infix differs from prefix out of the box), ``every`` by ``scattered`` only,
    ``block_size`` and ``seed`` only with ``random_blocks > 0``. ``layer`` is the layer whose mask
    is drawn. The mask zoo: ``prefix_lm`` is text (blank = none, ``prompt`` = up to the last prompt
    token, or a length ``P``), ``sinks`` an int, ``chunk`` a comma list like ``windows`` (one entry
    for all layers, ``full`` = unchunked), ``documents`` comma-separated lengths summing to ``L``.
    ``parts`` names mask parts of :mod:`attnviz.masks` with their settings, separated by ``;``
    (``"strided:8"``; blank = none).
    """

    window: int | None = 32
    windows: str = ""
    global_positions: str = ""
    global_prompt: bool = False
    placement: str = "prefix"
    n_tokens: int = 20
    at: int | None = None
    every: int = 16
    dilation: int = 1
    random_blocks: int = 0
    block_size: int = 64
    seed: int = 0
    causal: bool = False
    text_len: int = 1000
    num_layers: int = 6
    layer: int = 0
    prefix_lm: str = ""
    sinks: int = 0
    chunk: str = ""
    documents: str = ""
    parts: str = ""

    def parts_value(self) -> tuple:
        """The pattern's mask parts: ``"strided:8; strided:3"`` -> ``(Strided(8), Strided(3))``."""
        return tuple(part_from_text(t) for t in str(self.parts).split(";") if t.strip())

    def prefix_value(self) -> int | str | None:
        """``prefix_lm`` of the pattern: None (blank), ``"prompt"`` or a length P >= 1."""
        t = str(self.prefix_lm).strip().lower()
        if not t or t == "none":
            return None
        if t == "prompt":
            return "prompt"
        try:
            return int(t)
        except ValueError:
            raise ValueError(f"prefix-LM: {self.prefix_lm!r} is not a length; give a length P (positions < P attend "
                             f"each other both ways), 'prompt' (up to the last prompt token) or leave it blank") from None

    def chunk_value(self):
        """``chunk`` of the pattern: None, one int, or a per-layer tuple (``full`` = unchunked layer)."""
        per_layer = parse_ints(self.chunk, "chunk", allow_none=True, minimum=1)
        if not per_layer:
            return None
        if len(per_layer) not in (1, self.num_layers):
            raise ValueError(f"chunk: {len(per_layer)} entries ({self.chunk.strip()}) for {self.num_layers} layers; "
                             f"give one for all layers or one per layer ('full' = no chunks)")
        return per_layer[0] if len(per_layer) == 1 else per_layer

    def window_value(self):
        """The ``window`` argument of the pattern: the per-layer tuple, or the slider's value."""
        per_layer = parse_ints(self.windows, "per-layer windows", allow_none=True, minimum=1)
        if not per_layer:
            return self.window
        if len(per_layer) not in (1, self.num_layers):
            raise ValueError(f"per-layer windows: {len(per_layer)} entries ({self.windows.strip()}) for "
                             f"{self.num_layers} layers; give one per layer, or set layers to {len(per_layer)}")
        return per_layer[0] if len(per_layer) == 1 else per_layer

    def pattern(self) -> AttentionPattern:
        return AttentionPattern(
            window=self.window_value(), causal=self.causal,
            global_positions=parse_ints(self.global_positions, "global positions", minimum=0),
            global_prompt=self.global_prompt, dilation=self.dilation,
            random_blocks=self.random_blocks, block_size=self.block_size if self.random_blocks else None,
            seed=self.seed, prefix_lm=self.prefix_value(), sinks=self.sinks, chunk=self.chunk_value(),
            documents=parse_ints(self.documents, "documents", minimum=1), parts=self.parts_value())

    def placement_(self) -> PromptPlacement:
        return PromptPlacement(self.placement, n_tokens=self.n_tokens,
                               at=self.infix_at() if self.placement == "infix" else None,
                               every=self.every if self.placement == "scattered" else None)

    def infix_at(self) -> int:
        """The text token the infix prompt goes before: ``at``, or the middle of the text."""
        return self.text_len // 2 if self.at is None else self.at

    def layout(self) -> SequenceLayout:
        layout = _layout(self.placement_(), self.text_len)
        if layout.length > MAX_POSITIONS:
            raise ValueError(f"text length {self.text_len} gives {layout.length} positions; the explorer draws "
                             f"at most {MAX_POSITIONS}")
        return layout


@functools.lru_cache(maxsize=16)
def _layout(placement: PromptPlacement, text_len: int) -> SequenceLayout:
    """Layouts are frozen; building one is a Python loop over L (~50 ms at 16k), so the explorer
    keeps the last few instead of rebuilding it on every window change."""
    return placement.layout(text_len=text_len)


@dataclass(frozen=True)
class PatternView:
    """Result of :func:`pattern_view`: the pattern and layout, the reach, and the data of both figures."""

    settings: PatternSettings
    pattern: AttentionPattern
    layout: SequenceLayout
    reach: Spread
    mask: FigureParts
    spread: FigureParts

    @property
    def summary(self) -> str:
        return self.reach.summary(readout=self.layout.readout_position)


def pattern_view(settings: PatternSettings, *, mask_cells: int = MASK_CELLS,
                 spread_cells: int = SPREAD_CELLS, lean: bool = True) -> PatternView:
    """Everything the pattern explorer draws for ``settings``, from the pattern's structure only.

    ``mask_cells`` / ``spread_cells`` bound the heatmaps (payload); ``lean`` keeps hover data in
    2-D arrays (live figures; exports use the full hover). Raises ``ValueError`` / ``TypeError``
    naming the bad setting (shown in the explorer's UI).
    """
    n, layer = settings.num_layers, settings.layer
    if not 1 <= n <= MAX_LAYERS:
        raise ValueError(f"layers must be in 1..{MAX_LAYERS}, got {n}")
    if not 0 <= layer < n:
        raise ValueError(f"layer shown {layer} is outside 0..{n - 1}")
    pattern = settings.pattern()
    layout = settings.layout()
    pattern.check_layers(n)
    pattern.global_mask(layout)  # global positions inside the sequence
    pattern.prefix_length(layout)  # a prefix inside the sequence, "prompt" with a prompt
    pattern.document_ids(layout)  # document lengths that sum to L
    with _one_thread():  # small tensor ops: threads only fight on a busy 2-core laptop
        reach = spread_pattern(pattern, layout, n)
        mask = mask_parts(pattern, layout, layer, layers=range(n), max_cells=mask_cells, lean=lean)
        spread = spread_parts(reach, layout, pattern=pattern, max_cells=spread_cells, lean=lean)
    return PatternView(settings=settings, pattern=pattern, layout=layout, reach=reach, mask=mask, spread=spread)


FULL = "full"


def _window_label(w) -> str:
    return FULL if w is None else str(w)


class PatternExplorer(Explorer):
    """Live mask and spread views of an :class:`attnviz.AttentionPattern` (see the module docstring).

    ``PatternExplorer(**settings)`` takes the fields of :class:`PatternSettings` as starting values
    (e.g. ``window=64, global_prompt=True, text_len=4000``). ``controls`` maps those names to the
    widgets, ``figures`` has ``"spread"`` and ``"mask"`` (``go.FigureWidget``), ``view`` is the whole
    UI. ``set(window=128)`` changes controls from Python; ``export_html(path)`` writes an offline page.
    """

    def __init__(self, *, mask_size: int = 560, spread_width: int = NOTEBOOK_WIDTH, **initial):
        super().__init__()
        unknown = sorted(set(initial) - {f.name for f in dataclasses.fields(PatternSettings)})
        if unknown:
            raise TypeError(f"unknown setting(s) {unknown}; known: "
                            f"{', '.join(f.name for f in dataclasses.fields(PatternSettings))}")
        s = PatternSettings(**initial)
        first = pattern_view(s)  # bad starting values raise here, with the reason

        options = list(WINDOW_OPTIONS)
        if s.window not in options:
            options = sorted(o for o in options + [s.window] if o is not None) + [None]
        wide = {"description_width": "initial"}
        c = self.controls
        # (a selection widget cannot hold None: full attention is the option "full")
        c["window"] = widgets.SelectionSlider(options=[(_window_label(o), _window_label(o) if o is None else o)
                                                       for o in options], value=self.control_value("window", s.window),
                                              description="window", continuous_update=False, style=wide,
                                              layout=widgets.Layout(width="330px"))
        c["windows"] = widgets.Text(value=s.windows, description="per layer", placeholder="e.g. 32,32,64,64,128,128",
                                    continuous_update=False, style=wide, layout=widgets.Layout(width="280px"))
        c["dilation"] = widgets.BoundedIntText(value=s.dilation, min=1, max=64, description="dilation", style=wide,
                                               layout=widgets.Layout(width="120px"))
        c["causal"] = widgets.Checkbox(value=s.causal, description="causal", indent=False,
                                       layout=widgets.Layout(width="80px"))
        c["global_positions"] = widgets.Text(value=s.global_positions, description="positions",
                                             placeholder="e.g. 0 (= [CLS])", continuous_update=False, style=wide,
                                             layout=widgets.Layout(width="200px"))
        c["global_prompt"] = widgets.ToggleButton(value=s.global_prompt, description="global prompt",
                                                  tooltip="every prompt token attends to all and is attended by all",
                                                  layout=widgets.Layout(width="120px", margin="2px 18px 2px 6px"))
        c["random_blocks"] = widgets.BoundedIntText(value=s.random_blocks, min=0, max=16, description="random blocks",
                                                    style=wide, layout=widgets.Layout(width="150px"))
        c["block_size"] = widgets.BoundedIntText(value=s.block_size, min=1, max=4096, description="of size",
                                                 style=wide, layout=widgets.Layout(width="125px"))
        c["seed"] = widgets.BoundedIntText(value=s.seed, min=0, max=2**31 - 1, description="seed", style=wide,
                                           layout=widgets.Layout(width="120px"))
        c["placement"] = widgets.Dropdown(options=list(PLACEMENTS), value=s.placement, description="prompt",
                                          style=wide, layout=widgets.Layout(width="170px"))
        c["n_tokens"] = widgets.BoundedIntText(value=s.n_tokens, min=1, max=4096, description="tokens", style=wide,
                                               layout=widgets.Layout(width="120px"))
        # until someone types a value, "at" follows the middle of the text (see _sync_controls)
        self._at_auto = s.at is None
        c["at"] = widgets.BoundedIntText(value=s.infix_at(), min=0, max=MAX_POSITIONS, description="at", style=wide,
                                         layout=widgets.Layout(width="120px"))
        c["every"] = widgets.BoundedIntText(value=s.every, min=1, max=MAX_POSITIONS, description="every", style=wide,
                                            layout=widgets.Layout(width="120px"))
        c["text_len"] = widgets.BoundedIntText(value=s.text_len, min=0, max=MAX_POSITIONS, description="text tokens",
                                               style=wide, layout=widgets.Layout(width="170px"))
        c["num_layers"] = widgets.BoundedIntText(value=s.num_layers, min=1, max=MAX_LAYERS, description="layers",
                                                 style=wide, layout=widgets.Layout(width="120px"))
        c["layer"] = widgets.IntSlider(value=s.layer, min=0, max=max(s.num_layers - 1, 1), description="mask of layer",
                                       continuous_update=False, style=wide, layout=widgets.Layout(width="300px"))
        c["prefix_lm"] = widgets.Text(value=str(s.prefix_lm), description="prefix-LM", placeholder="P or prompt",
                                      continuous_update=False, style=wide, layout=widgets.Layout(width="190px"),
                                      tooltip="positions < P attend each other both ways; 'prompt' = up to the last "
                                              "prompt token")
        c["sinks"] = widgets.BoundedIntText(value=s.sinks, min=0, max=MAX_POSITIONS, description="sinks", style=wide,
                                            layout=widgets.Layout(width="120px"))
        c["chunk"] = widgets.Text(value=s.chunk, description="chunk", placeholder="e.g. 64 or 64,64,64,full",
                                  continuous_update=False, style=wide, layout=widgets.Layout(width="220px"))
        c["documents"] = widgets.Text(value=s.documents, description="documents",
                                      placeholder="lengths summing to L, e.g. 500,522", continuous_update=False,
                                      style=wide, layout=widgets.Layout(width="300px"))
        c["parts"] = widgets.Text(value=s.parts, description="mask parts", placeholder="e.g. strided:8",
                                  continuous_update=False, style=wide, layout=widgets.Layout(width="230px"),
                                  tooltip="mask parts of attnviz.masks, NAME:SETTINGS separated by ';'")
        for name, w in c.items():
            w.add_class(f"attnviz-{name.replace('_', '-')}")

        spread_fig = spread_figure(first.reach, first.layout, pattern=first.pattern, max_cells=SPREAD_CELLS,
                                   width=spread_width)
        mask_fig = mask_figure(first.pattern, first.layout, s.layer, layers=[s.layer], max_cells=MASK_CELLS,
                               size=mask_size)
        apply_parts(spread_fig, first.spread)  # the live (lean) data from the start
        apply_parts(mask_fig, first.mask)
        # layout= at construction: a layout set afterwards is lost in voila and static exports
        self.figures["spread"] = LiveFigure(data=spread_fig.data, layout=spread_fig.layout)
        self.figures["mask"] = LiveFigure(data=mask_fig.data, layout=mask_fig.layout)
        self.result: PatternView | None = None
        self._go_live(first)

        row = control_row
        self._view = widgets.VBox([
            row("attention", c["window"], c["windows"], c["dilation"], c["causal"]),
            row("globals", c["global_positions"], c["global_prompt"], c["random_blocks"], c["block_size"],
                c["seed"]),
            row("mask zoo", c["prefix_lm"], c["sinks"], c["chunk"], c["documents"], c["parts"]),
            row("sequence", c["placement"], c["n_tokens"], c["at"], c["every"], c["text_len"],
                c["num_layers"]),
            self.message, self.summary, self.figures["spread"], row(None, c["layer"], self.status), self.figures["mask"],
        ])
        self._view.add_class("attnviz-explorer")

    @property
    def view(self) -> widgets.VBox:
        return self._view

    # ---- the three steps ----------------------------------------------------------------------
    def settings(self) -> PatternSettings:
        self._sync_controls()
        values = {name: w.value for name, w in self.controls.items()}
        values["window"] = None if values["window"] == FULL else values["window"]
        if self._at_auto:
            values["at"] = None
        return PatternSettings(**values)

    def control_value(self, name, value):
        return FULL if name == "window" and value is None else value

    def compute(self, settings: PatternSettings) -> PatternView:
        return pattern_view(settings)

    def render(self, result: PatternView) -> None:
        apply_parts(self.figures["spread"], result.spread)
        apply_parts(self.figures["mask"], result.mask)
        L, n = result.layout.length, result.reach.num_layers
        self.summary.value = (f"<div style='font-size:15px;margin:4px 0;word-break:normal;overflow-wrap:normal'><b>{describe(result.pattern)}</b>, {n} layers, "
                              f"L={L}: {result.summary}</div>")
        self.result = result

    def status_text(self, result: PatternView) -> str:
        ms = f"updated in {self.last_ms:.0f} ms · " if self.last_ms is not None else ""
        return f'<span style="color:#666">{ms}structural (no dense masks)</span>'

    def _changed(self, change=None) -> None:
        if not self._quiet and change is not None and change.get("owner") is self.controls.get("at"):
            self._at_auto = False              # a value typed by someone: keep it
        super()._changed(change)

    def set(self, **values) -> "PatternExplorer":
        if "at" in values:
            self._at_auto = values["at"] is None
            if values["at"] is None:
                values = {k: v for k, v in values.items() if k != "at"}
        return super().set(**values)

    def _sync_controls(self) -> None:
        """Enable only the controls that matter, keep the layer slider inside the layers and an
        untouched ``at`` in the middle of the text."""
        c = self.controls
        self._quiet = True
        try:
            if self._at_auto:
                c["at"].value = c["text_len"].value // 2
            c["at"].disabled = c["placement"].value != "infix"
            c["every"].disabled = c["placement"].value != "scattered"
            c["block_size"].disabled = c["seed"].disabled = c["random_blocks"].value == 0
            c["window"].disabled = bool(c["windows"].value.strip())
            n = c["num_layers"].value
            c["layer"].max = max(n - 1, 1)  # an IntSlider needs max > min to draw
            if c["layer"].value > n - 1:
                c["layer"].value = n - 1
        finally:
            self._quiet = False

    # ---- exports ------------------------------------------------------------------------------
    def export_html(self, path: str | os.PathLike, windows=None, title: str | None = None) -> Path:
        """Write the current views as one self-contained offline HTML page (plotly.js inlined),
        written to a temporary file and renamed. Without a kernel the page still moves: each figure
        has a plotly slider over ``windows`` (default: the current window and up to three slider
        values on each side; none when per-layer windows are set). Returns the path."""
        s = self.settings()
        current = pattern_view(s)  # raises on bad settings, with the reason
        if s.windows.strip():
            windows = []
        elif windows is None:
            opts = [None if v == FULL else v for _, v in self.controls["window"].options]
            i = opts.index(s.window)
            windows = opts[max(0, i - 3):i + 4]
        windows = list(windows)
        if windows and s.window not in windows:
            raise ValueError(f"windows {windows} must include the current window {s.window}")
        steps = [(w, pattern_view(dataclasses.replace(s, window=w), mask_cells=EXPORT_MASK_CELLS,
                                  spread_cells=EXPORT_SPREAD_CELLS, lean=False)) for w in (windows or [s.window])]
        active = next(i for i, (w, _) in enumerate(steps) if w == s.window)
        view = steps[active][1]
        spread = spread_figure(view.reach, view.layout, pattern=view.pattern, max_cells=EXPORT_SPREAD_CELLS)
        mask = mask_figure(view.pattern, view.layout, s.layer, layers=[s.layer], max_cells=EXPORT_MASK_CELLS)
        apply_parts(mask, view.mask)
        if len(steps) > 1:
            labelled = [(_window_label(w), v) for w, v in steps]
            step_slider(spread, [(w, v.spread) for w, v in labelled], active, changing=(0, 1, 3), prefix="window ",
                        below_px=100)
            step_slider(mask, [(w, v.mask) for w, v in labelled], active, changing=(0,), prefix="window ",
                        below_px=60)
        text = (f"Saved with {describe(current.pattern)}, {s.num_layers} layers, L={current.layout.length}: "
                f"{current.summary}"
                + (" Move the slider under each figure to see another window." if len(steps) > 1 else ""))
        return save_html([spread, mask], path, title=title or f"attnviz pattern explorer — {describe(current.pattern)}",
                         text=text)
