"""What every explorer shares: controls in, one pure function, figures updated in place.

An explorer subclasses :class:`Explorer` and provides

* ``controls``: ``{name: ipywidget}`` (the names are the keyword arguments of its settings);
* ``settings()``: the controls' values as one frozen settings object (no computation);
* ``compute(settings)``: calls the explorer's *one pure library function* (e.g.
  :func:`attnviz.widgets.pattern.pattern_view`) and returns its result; it may raise
  ``ValueError`` / ``TypeError`` for bad settings, whose text the explorer shows in the UI;
* ``render(result)``: puts the result into ``figures`` (``{name: go.FigureWidget}``) in place,
  usually with :func:`apply_parts`.

The base class wires every control's ``value`` to a debounced redraw, catches bad values into a
message line (never a traceback), shows how long the last update took, and displays itself once.
"""

from __future__ import annotations

import asyncio
import html
import os
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from ..plots.export import write_images

#: Seconds a burst of control changes is collected before one redraw (inside a running kernel).
DEBOUNCE_S = 0.08

ERROR_STYLE = ("color: #b00020; background: #fdecea; border-left: 4px solid #b00020; padding: 4px 8px; "
               "font-size: 14px;")


def parse_ints(text: str, what: str, *, allow_none: bool = False, minimum: int | None = None) -> tuple:
    """``"32, 32,64"`` -> ``(32, 32, 64)``; ``"full"`` / ``"none"`` -> None where ``allow_none``;
    ``""`` -> ``()``. Raises ``ValueError`` that names the bad entry and the expected form."""
    out = []
    for part in text.replace(";", ",").split(","):
        t = part.strip().lower()
        if not t:
            continue
        if allow_none and t in ("none", "full"):
            out.append(None)
            continue
        try:
            v = int(t)
        except ValueError:
            form = "ints or 'full'" if allow_none else "ints"
            raise ValueError(f"{what}: {part.strip()!r} is not a number; give comma-separated {form}, "
                             f"e.g. {'32,32,64,full' if allow_none else '0,5'}") from None
        if minimum is not None and v < minimum:
            raise ValueError(f"{what}: {v} is below {minimum}")
        out.append(v)
    return tuple(out)


def control_row(title: str | None, *controls: widgets.Widget, label_width: int = 92) -> widgets.HBox:
    """One wrapping row of controls, behind a bold label ``title`` (``label_width`` pixels wide)
    unless ``title`` is None."""
    label = [] if title is None else [widgets.HTML(f"<b style='display:inline-block;width:{label_width}px'>{title}</b>")]
    return widgets.HBox([*label, *controls], layout=widgets.Layout(flex_flow="row wrap", align_items="center"))


class ShowOnce:
    """``show()`` displays ``self.view`` now; the same object as the cell's last value is then not
    displayed a second time. Subclasses set ``_skip_display = False`` and may override ``_on_displayed``."""

    _skip_display = False

    def _on_displayed(self) -> None:
        """Called after every display of the view."""

    def show(self):
        """Display the view now (once); the same object as a cell's last value is not shown again."""
        from IPython.display import display

        display(self.view)
        self._on_displayed()
        try:
            from IPython import get_ipython

            ip = get_ipython()
        except ImportError:  # pragma: no cover
            ip = None
        if ip is not None:
            self._skip_display = True

            def reset(*_):
                self._skip_display = False
                ip.events.unregister("post_run_cell", reset)

            ip.events.register("post_run_cell", reset)
        return self

    def _ipython_display_(self) -> None:
        if self._skip_display:  # already shown by show() / explore.*() in this cell
            return
        from IPython.display import display

        display(self.view)
        self._on_displayed()


class Explorer(ShowOnce):
    """Base of the attnviz explorers (see the module docstring). Not a widget itself: ``view``
    is the widget tree; displaying the explorer displays ``view``."""

    #: seconds of quiet before a redraw when changes arrive in a running kernel (0: redraw at once)
    debounce: float = DEBOUNCE_S

    def __init__(self) -> None:
        self.controls: dict[str, widgets.Widget] = {}
        self.figures: dict[str, go.FigureWidget] = {}
        self.message = widgets.HTML(value="", layout=widgets.Layout(width="100%"))
        self.message.add_class("attnviz-message")
        self.status = widgets.HTML(value="")
        self.status.add_class("attnviz-status")
        self.error: str | None = None          # the message shown, None when the settings are good
        self.last_ms: float | None = None      # compute + render time of the last redraw
        self._pending: asyncio.TimerHandle | None = None
        self._quiet = False                    # True while the explorer itself sets control values
        self._skip_display = False

    # ---- to be provided by each explorer --------------------------------------------------
    def settings(self) -> Any:
        raise NotImplementedError

    def compute(self, settings: Any) -> Any:
        raise NotImplementedError

    def render(self, result: Any) -> None:
        raise NotImplementedError

    @property
    def view(self) -> widgets.Widget:
        raise NotImplementedError

    # ---- wiring -----------------------------------------------------------------------------
    def _go_live(self, first: Any) -> None:
        """After ``controls`` and ``figures`` exist: tag the figures, add the summary line, draw
        ``first`` (the result of the initial settings) and start watching the controls."""
        for name, f in self.figures.items():
            f.add_class(f"attnviz-{name}-figure")
        self.summary = widgets.HTML(layout=widgets.Layout(width="100%"))   # full width: wraps between words only
        self.summary.add_class("attnviz-summary")
        self.result = None
        self._sync_controls()
        self.render(first)
        self.status.value = self.status_text(first)
        self._watch()

    def _sync_controls(self) -> None:
        """Enable / disable controls to match the current settings (explorers override)."""

    def _watch(self) -> None:
        """Redraw (debounced) whenever a control's value changes."""
        for w in self.controls.values():
            w.observe(self._changed, names="value")

    def _changed(self, change=None) -> None:
        if self._quiet:
            return
        if self.debounce <= 0:
            self.redraw()
            return
        try:
            loop = asyncio.get_running_loop()  # inside a kernel: collect a burst of changes
        except RuntimeError:
            self.redraw()                      # plain Python (tests, scripts): at once
            return
        if self._pending is not None:
            self._pending.cancel()
        self._pending = loop.call_later(self.debounce, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self.redraw()

    def redraw(self) -> bool:
        """Read the controls, compute, render. Bad settings leave the figures as they were and
        show the reason in :attr:`message`; returns whether the figures were updated."""
        t0 = time.perf_counter()
        try:
            settings = self.settings()
            result = self.compute(settings)
        except (ValueError, TypeError) as exc:
            self.show_error(str(exc))
            return False
        except Exception as exc:  # a bug, not a bad value: still no traceback in the UI
            self.show_error(f"unexpected {type(exc).__name__}: {exc} (please report this)")
            return False
        self.render(result)
        self.last_ms = 1000 * (time.perf_counter() - t0)
        self.error = None
        self.message.value = ""
        self.status.value = self.status_text(result)
        return True

    def show_error(self, text: str) -> None:
        self.error = text
        self.message.value = (f'<div style="{ERROR_STYLE}"><b>Cannot draw this:</b> {html.escape(text)}'
                              f'<br><span style="color:#555">The figures still show the last valid settings.</span></div>')
        # no "updated in … ms" beside an error: that time belongs to the figures' last good draw
        self.status.value = '<span style="color:#b00020">not updated (see the message above)</span>'

    def control_value(self, name: str, value: Any) -> Any:
        """The widget value that shows setting ``value`` (identity unless an explorer maps it)."""
        return value

    def status_text(self, result: Any) -> str:
        return f'<span style="color:#666">updated in {self.last_ms:.0f} ms</span>'

    def set(self, **values) -> "Explorer":
        """Set several controls at once (one redraw), e.g. ``explorer.set(window=64, causal=True)``."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise ValueError(f"unknown control(s) {unknown}; controls: {', '.join(self.controls)}")
        self._quiet = True
        try:
            for name, v in values.items():
                self.controls[name].value = self.control_value(name, v)
        finally:
            self._quiet = False
        self.redraw()
        return self

    # ---- exports ------------------------------------------------------------------------------
    def export_image(self, path: str | os.PathLike, figure: str | None = None, scale: float = 2.0) -> Path:
        """One figure (``figure``: a key of :attr:`figures`, default the first) as PNG, SVG or PDF,
        by the suffix of ``path``, drawn by kaleido (:func:`attnviz.plots.export.write_images`). Returns the path."""
        name = figure or next(iter(self.figures))
        if name not in self.figures:
            raise ValueError(f"unknown figure {name!r}; figures: {', '.join(self.figures)}")
        return write_images([self.figures[name]], [path], scale=scale)[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {', '.join(self.controls)}>"
