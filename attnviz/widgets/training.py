"""A live view of a soft-prompt run: loss and accuracy curves, a status line and a Stop button.

:class:`TrainingMonitor` is fed by :func:`attnviz.prompts.train_soft_prompt`'s ``callback=``
(one :class:`~attnviz.prompts.TrainEvent` per step). Two ways to use it::

    monitor = TrainingMonitor()            # 1. the monitor runs the training in a background thread
    monitor.start(model, train_rows, eval_rows, out_dir="runs/x", steps=300)
    monitor                                # (display it) the curves grow; Stop ends the run
    result = monitor.wait()                # the TrainResult

    monitor = TrainingMonitor().show()     # 2. your own call, in this thread (the cell is busy)
    train_soft_prompt(model, train_rows, eval_rows, out_dir="runs/x", callback=monitor.callback)

``attnviz.explore.training(model, train_rows, eval_rows, ...)`` is (1) in one call. Every backend
trains here, ``flex`` included where torch has its backward (a GPU); the status line then also
shows how many flex kernel signatures were compiled (bounded by ``PromptModel(pad_to=...)``). In (1) the
kernel stays free, so the button and the rest of the notebook answer while the run goes on.

Widgets are changed on the kernel's event-loop thread only. ipywidgets 8 does send updates made
from another thread (an ``HTML`` line updates fine), but a plotly ``FigureWidget`` changed from
another thread stays blank in JupyterLab (seen in Lab 4.6 / plotly 7.1: not even its first layout
is drawn). So the training thread only records each step and hands the redraw to the loop
(``call_soon_threadsafe``) that was running when the monitor was made; without a loop (plain
Python, tests) it redraws where it is. Redraws are throttled to ``min_interval``; a trailing one
follows, so the last step is always shown.

The figure's layout never changes after it is shown (fixed title; x range ``[0, steps]`` when
``steps`` is known up front, else autorange): in JupyterLab a FigureWidget whose title was
changed from a loop callback or a thread (not from a cell or a control's handler) went blank,
while trace updates from there draw fine (Lab 4.6, plotly 7.1, ipywidgets 8.1). Step, s/step,
held-out accuracy and checkpoint are in the status line above the figure instead.

Stop is honoured at the next step boundary: the callback returns ``"stop"``, and
``train_soft_prompt`` writes a checkpoint of that step before it returns (when it has an
``out_dir``), so a stopped run is usable (``load_into``) and resumable (``resume=True``).
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from pathlib import Path

import ipywidgets as widgets

from ..plots.training import training_figure, training_parts
from ._base import ShowOnce
from .live_figure import LiveFigure, apply_parts

#: Seconds between redraws of the curves while steps arrive faster than that.
MIN_INTERVAL_S = 0.25


RENDER_WAIT_S = 20.0  # longest wait for the figure's first draw before training starts anyway


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    return getattr(get_ipython(), "kernel", None) is not None


class TrainingMonitor(ShowOnce):
    """Loss / accuracy curves (``figure``, a ``FigureWidget``), ``status`` line and ``stop_button``.

    Args:
        steps: planned steps (fixes the x axis); taken from the first event when None.
        min_interval: at most one redraw per this many seconds (the last step, evaluations,
            checkpoints and stops always redraw).

    Attributes:
        history: one record per step: ``{"step", "loss", "accuracy", "eval", "seconds", "checkpoint"}``,
            the values exactly as ``train_soft_prompt`` logged them.
        result: the :class:`~attnviz.prompts.TrainResult` of :meth:`start`, once finished.
        error: the exception that ended a :meth:`start` run, or None.
        checkpoint: the newest checkpoint written (path), or None.
    """

    TITLE = "Soft-prompt training: loss and accuracy"

    def __init__(self, steps: int | None = None, *, min_interval: float = MIN_INTERVAL_S):
        self.steps = steps
        self._range_steps = steps          # the x range drawn (fixed when shown)
        self.min_interval = min_interval
        self.history: list[dict] = []
        self.result = None
        self.error: BaseException | None = None
        self.checkpoint: Path | None = None
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._drawn = 0
        self._flush_pending = False
        self._loop, self._loop_thread = self._current_loop()
        fig = training_figure([], steps=steps, title=self.TITLE)
        self.figure = LiveFigure(data=fig.data, layout=fig.layout)
        self.figure.add_class("attnviz-training-figure")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger",
                                          tooltip="stop at the next step boundary; a checkpoint of that step is written",
                                          layout=widgets.Layout(width="115px"))
        self.stop_button.add_class("attnviz-stop")
        self.stop_button.on_click(lambda _button: self.stop())
        self.status = widgets.HTML(value='<span style="color:#666">waiting for the first step…</span>')
        self.status.add_class("attnviz-status")
        self._skip_display = False
        # The front end answers its first draw with a layout delta: until then the page is still
        # loading plotly (anywidget gives a model only 2 s to initialise; a training thread that
        # starts at once can starve a 2-core laptop's browser and leave the figure blank).
        self._rendered = threading.Event()
        self._displayed = False
        # (plotly's front end, 7.1, answers newPlot with _js2py_traceDeltas and with a misnamed
        # "_js2py_widget_layoutDelta" that never reaches _js2py_layoutDelta: watch both names, or
        # the wait runs into RENDER_WAIT_S after every launch)
        self.figure.observe(lambda _change: self._rendered.set(), names=["_js2py_layoutDelta", "_js2py_traceDeltas"])
        self._view = widgets.VBox([widgets.HBox([self.stop_button, self.status],
                                                layout=widgets.Layout(align_items="center")), self.figure])
        self._view.add_class("attnviz-training-monitor")

    @property
    def view(self) -> widgets.VBox:
        return self._view

    # ---- the callback -------------------------------------------------------------------------
    def callback(self, event) -> str | None:
        """Give this to ``train_soft_prompt(callback=...)``: records the step, redraws (throttled)
        and returns ``"stop"`` once Stop was pressed."""
        record = {"step": event.step, "loss": event.loss, "accuracy": event.accuracy, "eval": event.eval,
                  "seconds": event.seconds, "checkpoint": str(event.checkpoint) if event.checkpoint else None}
        info = getattr(getattr(event, "model", None), "last_info", None) or {}
        if "flex_kernels" in info:   # backend="flex" (on a GPU): compiled kernel signatures so far
            record["flex_kernels"] = info["flex_kernels"]
        with self._lock:
            if self.steps is None:
                self.steps = event.steps
            self.history.append(record)
            if event.checkpoint is not None:
                self.checkpoint = Path(event.checkpoint)
        stop = self._stop.is_set()
        now = time.perf_counter()
        self._request_redraw(stop or event.step >= event.steps or event.eval is not None
                             or event.checkpoint is not None or now - self._last_draw >= self.min_interval)
        return "stop" if stop else None

    @staticmethod
    def _current_loop():
        try:
            return asyncio.get_running_loop(), threading.get_ident()
        except RuntimeError:
            return None, None

    def _request_redraw(self, now: bool) -> None:
        """Redraw now, or soon (a trailing redraw after ``min_interval``), on the loop's thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            if now:
                self.redraw()
            return
        if threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._request_redraw, now)
            return
        if now:
            self.redraw()
        elif not self._flush_pending:
            self._flush_pending = True
            loop.call_later(self.min_interval, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._drawn < len(self.history):
            self.redraw()

    def stop(self) -> None:
        """Ask the run to stop at the next step boundary (what the Stop button does)."""
        self._stop.set()
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping"
        self.status.value = self._status_text(note="stopping at the next step boundary…")

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # ---- drawing ------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Put the whole history into the curves and the status line (thread-safe)."""
        with self._lock:
            history = list(self.history)
            self._last_draw = time.perf_counter()
            apply_parts(self.figure, training_parts(history, steps=self._range_steps, title=self.TITLE))
            self._drawn = len(history)
            self.status.value = self._status_text()

    def _status_text(self, note: str = "") -> str:
        h = self.history
        if not h:
            return f'<span style="color:#666">{html.escape(note or "waiting for the first step…")}</span>'
        last = h[-1]
        recent = h[-20:]
        per_step = sum(r["seconds"] for r in recent) / len(recent)
        evals = [r["eval"] for r in h if r.get("eval")]
        bits = [f"step {last['step']}" + (f" / {self.steps}" if self.steps else ""), f"{per_step:.3g} s/step",
                f"loss {last['loss']:.4g}"]
        if evals:
            bits.append(f"held-out accuracy {evals[-1]['accuracy']:.3f} (step {[r['step'] for r in h if r.get('eval')][-1]})")
        if last.get("flex_kernels") is not None:
            bits.append(f"flex kernels compiled {last['flex_kernels']}")
        if self.checkpoint is not None:
            bits.append(f"checkpoint {self.checkpoint}")
        if note:
            bits.append(note)
        return '<span style="color:#444">' + html.escape(" · ".join(bits)) + "</span>"

    # ---- running in a background thread ---------------------------------------------------------
    def start(self, model, train_data, eval_data=None, **kwargs) -> "TrainingMonitor":
        """Run ``train_soft_prompt(model, train_data, eval_data, callback=self.callback, **kwargs)``
        in a background thread (``progress=False``: the curves are the progress). Returns at once."""
        from ..prompts.training import train_soft_prompt

        if self.running:
            raise ValueError("this monitor is already watching a run; make a new TrainingMonitor for another")
        if self._loop is None:
            self._loop, self._loop_thread = self._current_loop()
        if "callback" in kwargs:
            raise TypeError("start() sets callback= itself (to this monitor's callback)")
        kwargs.setdefault("progress", False)
        self._stop.clear()
        self.result, self.error = None, None

        def run():
            try:
                self._wait_for_first_draw()
                self.result = train_soft_prompt(model, train_data, eval_data, callback=self.callback, **kwargs)
            except BaseException as exc:  # shown in the status line, re-raised by wait()
                self.error = exc
            finally:
                loop = self._loop
                if loop is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(self._finished)
                else:
                    self._finished()

        self.thread = threading.Thread(target=run, name="attnviz-training", daemon=True)
        self.thread.start()
        return self

    def _wait_for_first_draw(self) -> None:
        """In a kernel with a front end, hold the training thread until the figure has drawn once
        (at most ``RENDER_WAIT_S``; not at all outside a kernel or if never displayed within 2 s)."""
        if not _in_kernel():
            return
        begin = time.monotonic()
        while not self._rendered.is_set() and not self._stop.is_set():
            waited = time.monotonic() - begin
            if waited > RENDER_WAIT_S or (not self._displayed and waited > 2.0):
                return
            self._rendered.wait(0.1)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def wait(self, timeout: float | None = None):
        """Wait for a :meth:`start` run; return its ``TrainResult`` (re-raises its exception)."""
        if self.thread is None:
            raise ValueError("nothing to wait for: start() was not called")
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"the run is still going after {timeout} s (step {len(self.history)})")
        if self.error is not None:
            raise self.error
        return self.result

    def _finished(self) -> None:
        self.redraw()
        self.stop_button.disabled = True
        r = self.result
        if self.error is not None:
            self.stop_button.description = "Failed"
            self.status.value = (f'<span style="color:#b00020">the run failed: {html.escape(type(self.error).__name__)}: '
                                 f'{html.escape(str(self.error))}</span>')
            return
        self.stop_button.description = "Stopped" if r.stopped else "Done"
        if r.checkpoint is not None:
            self.checkpoint = Path(r.checkpoint)
        word = "stopped" if r.stopped else "finished"
        self.status.value = self._status_text(note=f"{word} at step {r.step} in {r.seconds:.1f} s")

    # ---- display ------------------------------------------------------------------------------
    def _on_displayed(self) -> None:
        self._displayed = True

    def __repr__(self) -> str:
        return f"<TrainingMonitor: {len(self.history)} steps{' (running)' if self.running else ''}>"
