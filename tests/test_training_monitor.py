"""attnviz.widgets.TrainingMonitor driven by a real train_soft_prompt on a tiny BERT: the curves hold
exactly the logged losses and accuracies; pressing Stop after step k ends the run at step k with a
checkpoint of step k that load_into loads; in a background thread the widgets send their updates
from that thread (ipywidgets 8) while the caller stays free."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import comm
import pytest
import torch

from attnviz.plots.training import TRACES, running_mean, runs_figure, training_figure
from attnviz.prompts import load_into, train_soft_prompt
from attnviz.widgets import TrainingMonitor

from _prompt_fixtures import make_run
from test_browser_lab import lab  # noqa: F401  (the JupyterLab fixture)
from _browser import lab_origins, offline_router


def _log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def _check_curves(mon: TrainingMonitor, log: list[dict]) -> None:
    data = {t.name: t for t in mon.figure.data}
    assert [t.name for t in mon.figure.data] == list(TRACES)
    assert data["train loss"].x == tuple(r["step"] for r in log)
    assert data["train loss"].y == tuple(r["loss"] for r in log)
    assert data["train accuracy"].y == tuple(r["accuracy"] for r in log)
    evals = [r for r in log if "eval" in r]
    assert data["held-out accuracy"].x == tuple(r["step"] for r in evals)
    assert data["held-out accuracy"].y == tuple(r["eval"]["accuracy"] for r in evals)
    assert data["held-out loss"].y == tuple(r["eval"]["loss"] for r in evals)


def test_curves_hold_the_logged_values_and_stop_leaves_a_checkpoint_of_that_step(tmp_path):
    model, train_rows, eval_rows = make_run(tmp_path, n_tokens=4, window=4)
    mon = TrainingMonitor(steps=20, min_interval=3600.0)   # redraws only where it must
    weights = {}

    def callback(event):
        weights[event.step] = event.model.prompt.weight.detach().clone()
        if event.step == 5:
            mon.stop_button.click()                        # what pressing the button does
        return mon.callback(event)

    result = train_soft_prompt(model, train_rows, eval_rows, out_dir=tmp_path / "run", steps=20, batch_size=4,
                               eval_every=2, checkpoint_every=3, progress=False, callback=callback)
    assert result.stopped and result.step == 5
    ckpt = tmp_path / "run" / "checkpoints" / "step-00000005"
    assert result.checkpoint == ckpt and ckpt.is_dir()
    log = _log(tmp_path / "run")
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    _check_curves(mon, log)
    assert mon.history == [dict(step=r["step"], loss=r["loss"], accuracy=r["accuracy"], eval=r.get("eval"),
                                seconds=r["seconds"], checkpoint=mon.history[i]["checkpoint"])
                           for i, r in enumerate(log)]
    assert mon.history[2]["checkpoint"].endswith("step-00000003")
    assert mon.stop_button.disabled and mon.stop_requested
    assert "step 5 / 20" in mon.status.value and "held-out accuracy" in mon.status.value

    fresh, _, _ = make_run(tmp_path / "fresh", n_tokens=4, window=4)
    assert not torch.equal(fresh.prompt.weight, weights[5])
    meta = load_into(fresh, ckpt)
    assert meta["step"] == 5
    assert torch.equal(fresh.prompt.weight, weights[5])   # the prompt as it was when Stop was pressed
    assert torch.equal(fresh.head.classifier.weight, model.head.classifier.weight)


def test_background_thread_keeps_the_loop_free_and_widgets_change_on_the_loop_thread(tmp_path, monkeypatch):
    """As in a kernel: the monitor is made while an asyncio loop runs (the kernel's); the run goes on
    in a thread while the loop stays free, and every widget message is sent from the loop's thread
    (a plotly FigureWidget changed from another thread stays blank in JupyterLab)."""
    import asyncio

    sent = []
    real = comm.DummyComm.publish_msg

    def record(self, msg_type, data=None, *args, **kwargs):
        sent.append((threading.current_thread().name, self.comm_id, (data or {}).get("method")))
        return real(self, msg_type, data, *args, **kwargs)

    monkeypatch.setattr(comm.DummyComm, "publish_msg", record)
    model, train_rows, eval_rows = make_run(tmp_path, n_tokens=4, window=4)
    ticks = []

    async def kernel():
        mon = TrainingMonitor(min_interval=0.05)
        t0 = time.perf_counter()
        mon.start(model, train_rows, eval_rows, out_dir=tmp_path / "run", steps=400, batch_size=4, eval_every=50,
                  checkpoint_every=100)
        assert time.perf_counter() - t0 < 1.0 and mon.running     # start() returns at once
        deadline = time.time() + 60
        # at least 3 steps and 0.5 s: a free loop ticks ~50 times meanwhile, a blocked one ~never
        # (counting ticks until step 3 alone failed when 3 tiny steps took ~30 ms)
        while (len(mon.history) < 3 or time.perf_counter() - t0 < 0.5) and time.time() < deadline:
            ticks.append(len(mon.history))
            await asyncio.sleep(0.01)
        mon.stop_button.click()
        while mon.running and time.time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)                                  # the hand-overs to this loop run
        return mon

    mon = asyncio.run(kernel())
    assert len(ticks) > 10
    result = mon.wait(60)
    assert result.stopped
    k = result.step
    assert 3 <= k < 400 and mon.history[-1]["step"] == k
    ckpt = tmp_path / "run" / "checkpoints" / f"step-{k:08d}"
    assert result.checkpoint == ckpt and ckpt.is_dir() and mon.checkpoint == ckpt
    _check_curves(mon, _log(tmp_path / "run"))
    assert mon.stop_button.description == "Stopped"
    assert f"stopped at step {k}" in mon.status.value
    figure, status = mon.figure.comm.comm_id, mon.status.comm.comm_id
    assert (threading.main_thread().name, figure, "update") in set(sent)
    assert any(cid == status for _, cid, _ in sent)
    assert not [m for m in sent if m[0] == "attnviz-training" and m[1] in (figure, status)]
    fresh, _, _ = make_run(tmp_path / "fresh", n_tokens=4, window=4)
    assert load_into(fresh, ckpt)["step"] == k


def test_throttled_steps_are_drawn_by_a_trailing_redraw():
    import asyncio
    from types import SimpleNamespace

    async def kernel():
        mon = TrainingMonitor(steps=10, min_interval=0.1)
        for i in range(1, 6):                                     # faster than min_interval
            mon.callback(SimpleNamespace(step=i, steps=10, loss=1 / i, accuracy=0.5, eval=None, checkpoint=None,
                                         seconds=0.01))
        first = mon.figure.data[0].y
        await asyncio.sleep(0.3)
        return mon, first

    mon, first = asyncio.run(kernel())
    assert first == (1.0,)
    assert mon.figure.data[0].y == (1.0, 0.5, 1 / 3, 0.25, 0.2)
    assert "step 5 / 10" in mon.status.value


def test_a_failed_run_is_shown_and_reraised(tmp_path):
    model, train_rows, _ = make_run(tmp_path, n_tokens=4)
    mon = TrainingMonitor().start(model, [], steps=3)
    with pytest.raises(ValueError, match="empty"):
        mon.wait(30)
    assert "the run failed" in mon.status.value and mon.stop_button.description == "Failed"
    with pytest.raises(TypeError, match="callback"):
        TrainingMonitor().start(model, train_rows, callback=print)


def test_training_figure_from_a_log():
    log = [{"step": 1, "loss": 0.7, "accuracy": 0.5}, {"step": 2, "loss": 0.6, "accuracy": 0.75,
                                                      "eval": {"loss": 0.65, "accuracy": 0.625, "n": 8}},
           {"step": 3, "loss": 0.55, "accuracy": None}]
    fig = training_figure(log, steps=10)
    tl, el, ta, ea = fig.data
    assert tl.x == (1, 2, 3) and tl.y == (0.7, 0.6, 0.55)
    assert el.x == (2,) and el.y == (0.65,)
    assert ta.x == (1, 2) and ta.y == (0.5, 0.75)          # QA-style None accuracy is left out
    assert ea.y == (0.625,)
    assert fig.layout.xaxis.range == (0, 10)
    assert "held-out accuracy 0.625" in fig.layout.title.text
    assert training_figure(log).layout.xaxis.range is None  # steps unknown: autorange


def test_running_mean_by_hand():
    assert running_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert running_mean([1.0, 3.0, 5.0], 1) == [1.0, 3.0, 5.0]
    assert running_mean([2.0, 4.0], 10) == [2.0, 3.0]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="smooth must be an int >= 1"):
            running_mean([1.0], bad)


def test_runs_figure_smooths_training_and_marks_held_out():
    base = [{"step": s, "loss": 1.0, "accuracy": 0.25 * (s % 2)} for s in range(1, 5)]
    base[-1]["eval"] = {"loss": 1.0, "accuracy": 0.4, "n": 10}
    prompt = [{"step": s, "loss": 1.0 - 0.1 * s, "accuracy": 1.0} for s in range(1, 5)]
    prompt[1]["eval"] = {"loss": 0.9, "accuracy": 0.5, "n": 10}
    fig = runs_figure({"head only": base, "prompt + head": prompt}, smooth=2, chance=1 / 3)
    names = [t.name for t in fig.data]
    assert names == ["head only", "head only", "head only held-out", "prompt + head", "prompt + head",
                     "prompt + head held-out"]
    assert fig.data[1].y == (0.25, 0.125, 0.125, 0.125)         # accuracies .25, 0, .25, 0 averaged over 2 steps
    assert fig.data[3].y == pytest.approx((0.9, 0.85, 0.75, 0.65))
    assert (fig.data[2].x, fig.data[2].y) == ((4,), (0.4,)) and (fig.data[5].x, fig.data[5].y) == ((2,), (0.5,))
    assert fig.data[0].line.color != fig.data[3].line.color
    assert fig.layout.shapes[0].y0 == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="runs is empty"):
        runs_figure({})


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.skipif(not os.environ.get("ATTNVIZ_LAB_MONITOR"), reason=(
    "opt-in (ATTNVIZ_LAB_MONITOR=1): before training waited for the figure's first draw, the FigureWidget "
    "stayed blank in 3 of 4 runs on a loaded 2-core machine (anywidget gives plotly 2 s to initialise); "
    "since, 3 of 3 passed under load 4-5 - kept opt-in until it has a longer record"))
def test_monitor_in_jupyterlab_updates_while_the_kernel_is_idle_and_stops(lab):
    """In a real JupyterLab: TrainingMonitor.start(...) returns at once (the kernel goes idle and
    runs the next cell), the curves keep growing in the page from the training thread, and
    clicking Stop ends the run with a checkpoint of the step shown; the page's curve holds the logged
    losses exactly."""
    from playwright.sync_api import sync_playwright

    from test_browser_lab import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

    base, token, root = lab
    tests = Path(__file__).resolve().parent
    cells = [
        f"import sys; sys.path.insert(0, {str(tests)!r})\n"
        "import torch; torch.set_num_threads(1)\n"
        "from pathlib import Path\n"
        "from _prompt_fixtures import make_run\n"
        "from attnviz.widgets import TrainingMonitor\n"
        "model, train_rows, eval_rows = make_run(Path('tiny'), n_tokens=4, window=4)\n"
        "mon = TrainingMonitor(steps=20000, min_interval=1.0).show()\n"
        "mon.start(model, train_rows, eval_rows, out_dir='run', steps=20000, batch_size=4, eval_every=25,\n"
        "          checkpoint_every=5000)",
        "print('kernel', 'free')",
    ]
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c}
                    for c in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root / "monitor.ipynb").write_text(json.dumps(nb))
    fig_js = ("document.querySelector('.attnviz-training-figure.js-plotly-plot, "
              ".attnviz-training-figure .js-plotly-plot')")
    errors, external = [], []

    route = offline_router(lab_origins(base), external)

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1200})
            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/lab/tree/monitor.ipynb?token={token}")
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=90_000)
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has-text('Run All Cells')")
            page.wait_for_selector(".jp-OutputArea-output:has-text('kernel free')", timeout=90_000)
            page.wait_for_function(f"{fig_js}?.data?.[0]?.y?.length >= 3", timeout=60_000)
            n1 = page.evaluate(f"{fig_js}.data[0].y.length")
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=30_000)  # kernel free ...
            page.wait_for_function(f"{fig_js}.data[0].y.length > {n1} + 3", timeout=60_000)  # ... curves grow
            page.click("button.attnviz-stop")
            page.wait_for_selector(".attnviz-status:has-text('stopped at step')", timeout=60_000)
            status = page.locator(".attnviz-status").inner_text()
            k = int(status.split("stopped at step ")[1].split()[0])
            page.wait_for_function(f"{fig_js}.data[0].y.length === {k}", timeout=20_000)
            shown = page.evaluate(f"Array.from({fig_js}.data[0].y)")
            page.mouse.move(2, 2)
            page.locator(".attnviz-training-monitor").screenshot(path=str(ARTIFACTS / "lab_training_monitor.png"),
                                                                 timeout=60_000)
        except Exception:
            try:
                page.screenshot(path=str(ARTIFACTS / "lab_training_failure.png"), timeout=20_000)
            except Exception as exc:  # the page too busy to draw: keep the first error
                print("no failure screenshot:", exc)
            raise
        finally:
            browser.close()
    assert not errors, errors
    assert not external, external
    log = _log(root / "run")
    assert 3 < k < 20000 and [r["step"] for r in log] == list(range(1, k + 1))
    assert shown == [r["loss"] for r in log]
    assert (root / "run" / "checkpoints" / f"step-{k:08d}").is_dir()
    assert f"checkpoint {Path('run') / 'checkpoints' / f'step-{k:08d}'}" in status   # out_dir='run', relative


def test_training_waits_for_the_figures_first_draw_in_a_kernel(tmp_path, monkeypatch):
    """In a kernel, a displayed monitor holds training until the front end has drawn the figure
    once (its first layout delta), so plotly's page load is not starved; then it trains."""
    import attnviz.widgets.training as training_module

    monkeypatch.setattr(training_module, "_in_kernel", lambda: True)
    model, train_rows, eval_rows = make_run(tmp_path / "tiny", n_tokens=4, window=4)
    mon = TrainingMonitor(steps=3)
    mon._displayed = True  # as after show() in a kernel
    mon.start(model, train_rows, eval_rows, steps=3, batch_size=4, eval_every=0, checkpoint_every=0)
    time.sleep(1.0)
    assert mon.running and mon.history == []          # held: the figure has not drawn yet
    mon.figure._js2py_layoutDelta = {"layout_delta": {}, "layout_edit_id": 0}   # the front end drew it
    mon.wait(120)
    assert [r["step"] for r in mon.history] == [1, 2, 3]


def test_training_starts_at_once_outside_a_kernel(tmp_path, monkeypatch):
    import attnviz.widgets.training as training_module

    monkeypatch.setattr(training_module, "RENDER_WAIT_S", 1e6)  # waiting at all would hang the run
    model, train_rows, eval_rows = make_run(tmp_path / "tiny", n_tokens=4, window=4)
    mon = TrainingMonitor(steps=2)
    mon._displayed = True
    mon.start(model, train_rows, eval_rows, steps=2, batch_size=4, eval_every=0, checkpoint_every=0)
    mon.wait(120)
    assert [r["step"] for r in mon.history] == [1, 2]
    assert not mon._rendered.is_set()  # nothing drew it, and training did not wait for a draw
