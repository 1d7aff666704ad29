"""Every control of every explorer, moved in a real JupyterLab page (headless Chromium), and after
each step what the browser drew equals the Python figure.

One Lab server, one notebook that makes the four explorers (pattern; influence on a tiny BERT;
cost; training monitor on a tiny run), one scripted tour. Each explorer's redraw in the kernel
writes its figures as plotly JSON to ``probe/<name>.json`` (with a counter and the settings);
after each step the test waits for that redraw, then reads plotly's own state in the page
(``gd.data`` / ``gd.layout`` of each figure's div, typed arrays made plain) and asserts that it
holds exactly the Python figure: every trace property, the same number of traces, every layout
property the Python side sets, the same shapes and annotations (no stray ones). The page must log
no console error and no page error at any step (plotly.js rejecting an update logs
``Error setting state: ...``). Screenshots go to test-artifacts/tour_*.png.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from _browser import lab_origins, offline_router
from test_browser_lab import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, lab  # noqa: F401  (lab: the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

TESTS = Path(__file__).resolve().parent

SETUP = f"""
import dataclasses, json, os, sys, time
from pathlib import Path
sys.path.insert(0, {str(TESTS)!r})
import torch; torch.set_num_threads(1)
import plotly.io as pio
from attnviz.models import tiny_model
from attnviz.widgets import CostExplorer, InfluenceExplorer, PatternExplorer, TrainingMonitor
from _prompt_fixtures import make_run, tiny_tokenizer

import base64, math, numpy as np
PROBE = Path("probe"); PROBE.mkdir(exist_ok=True)
def plain(v):
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, dict) and "bdata" in v and "dtype" in v:      # plotly's typed-array spec
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        shape = v.get("shape")
        if shape:
            a = a.reshape([int(n) for n in str(shape).split(",")] if isinstance(shape, str) else shape)
        return plain(a)
    if isinstance(v, dict):
        return {{k: plain(x) for k, x in v.items()}}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    return None if isinstance(v, float) and not math.isfinite(v) else v
def dump(obj, name, figures):
    obj._tour_seq = getattr(obj, "_tour_seq", 0) + 1
    settings = dataclasses.asdict(obj.settings()) if hasattr(obj, "settings") else {{}}
    if getattr(obj, "history", None) and not hasattr(obj, "_tour_first_step"):
        obj._tour_first_step = time.time()      # wall time the first training step was drawn
    error = getattr(obj, "error", None)
    out = {{"seq": obj._tour_seq, "settings": settings, "error": None if error is None else str(error),
           "first_step": getattr(obj, "_tour_first_step", None),
           "figures": {{k: plain(f.to_plotly_json()) for k, f in figures().items()}},
           "defaults": {{k: [plain(getattr(t, "_prop_defaults", None) or {{}}) for t in f.data]
                        for k, f in figures().items()}}}}
    tmp = PROBE / f".{{name}}.json"; tmp.write_text(json.dumps(out)); os.replace(tmp, PROBE / f"{{name}}.json")
def probe(obj, name, figures):
    redraw = obj.redraw
    def wrapped(*a, **k):
        r = redraw(*a, **k); dump(obj, name, figures); return r
    obj.redraw = wrapped
    dump(obj, name, figures)
"""

CELLS = [
    SETUP,
    "pe = PatternExplorer(); pe.view.add_class('tour-pattern'); probe(pe, 'pattern', lambda: pe.figures); pe",
    "tok = tiny_tokenizer(Path('tok')); tiny = tiny_model('bert', num_hidden_layers=3).eval()\n"
    "ie = InfluenceExplorer(model=tiny, tokenizer=tok, text='the film was very good and the plot was fine but the "
    "service was poor')\n"
    "ie.view.add_class('tour-influence'); probe(ie, 'influence', lambda: ie.figures); ie",
    "ce = CostExplorer(); ce.view.add_class('tour-cost'); probe(ce, 'cost', lambda: ce.figures); ce",
    "model, train_rows, eval_rows = make_run(Path('tiny'), n_tokens=4, window=4)\n"
    "mon = TrainingMonitor(steps=5000, min_interval=0.5); mon.view.add_class('tour-training')\n"
    "probe(mon, 'training', lambda: {'training': mon.figure})\n"
    "mon.show(); launched = time.time()\n"
    "mon.start(model, train_rows, eval_rows, out_dir='run', steps=5000, batch_size=4, eval_every=10, "
    "checkpoint_every=5000)",
    "print('all', 'made')",
]

# Each explorer's figures: probe key -> CSS class of the figure's widget
FIGURES = {
    "pattern": {"spread": "attnviz-spread-figure", "mask": "attnviz-mask-figure"},
    "influence": {"influence": "attnviz-influence-figure", "attention": "attnviz-attention-figure"},
    "cost": {"cost": "attnviz-cost-figure"},
    "training": {"training": "attnviz-training-figure"},
}

SNAPSHOT_JS = """(sel) => {
  const gd = document.querySelector(sel);
  if (!gd || !gd.data || !gd.layout) return null;
  const plain = (v) => {
    if (ArrayBuffer.isView(v)) return Array.from(v, (x) => (Number.isNaN(x) ? null : x));
    if (Array.isArray(v)) return v.map(plain);
    if (typeof v === 'number' && !Number.isFinite(v)) return null;
    if (v && typeof v === 'object') {
      const o = {};
      for (const [k, x] of Object.entries(v)) if (!k.startsWith('_')) o[k] = plain(x);
      return o;
    }
    return v;
  };
  const layout = {};
  for (const [k, v] of Object.entries(gd.layout)) if (k !== 'template' && !k.startsWith('_')) layout[k] = plain(v);
  return {data: gd.data.map(plain), layout};
}"""

# plotly.js writes these into gd.data on its own (not from Python): a trace's uid, a heatmap's
# x / y type ("array" when x / y are given), and a
# colour bar's default x on the first draw (Plotly.newPlot; a later restyle does not add it back)
JS_OWN_KEYS = {"": {"uid", "index", "xtype", "ytype"}, "colorbar": {"x"}}


def _diff(py, js, path: str, strict: bool, defaults: dict | None = None) -> str | None:
    """First difference between Python's plotly JSON ``py`` and the page's ``js`` (None: equal).
    Dicts: every key of ``py``; with ``strict``, ``js`` may hold no other key. Lists: same length.
    Numbers within 1e-9 relative; NaN is null on both sides."""
    if isinstance(py, dict):
        if not isinstance(js, dict):
            return f"{path}: page has {str(js)[:80]!r}, Python an object"
        for k, v in py.items():
            if k in ("uid", "template"):
                continue
            if k == "autorange" and v == "reversed" and js.get(k) is True:
                r = js.get("range") or [0, 0]             # plotly.js turns it into a reversed range
                if r[0] > r[1]:
                    continue
                return f"{path}.range: page {r}, Python autorange 'reversed'"
            if k not in js:
                if v in (None, [], {}):
                    continue
                return f"{path}.{k}: missing in the page (Python {str(v)[:80]})"
            d = _diff(v, js[k], f"{path}.{k}", strict)
            if d:
                return d
        if strict:
            extra = set(js) - set(py) - JS_OWN_KEYS.get(path.rsplit(".", 1)[-1] if "." in path else "", set())
            extra -= JS_OWN_KEYS[""] if path.startswith("data[") and "." not in path else set()
            extra = {k for k in extra if js[k] not in (None, [], {})}
            # plotly's FigureWidget drops a property from Python's trace once the page reports
            # the same value as plotly.js's own (its "trace deltas"); Python keeps it as a default
            extra = {k for k in extra if not (defaults and k in defaults and _diff(js[k], defaults[k], k, False) is None)}
            if extra:
                return (f"{path}: page has stale properties "
                        f"{ {k: str(js[k])[:60] for k in sorted(extra)} } (Python has {sorted(py)})")
        return None
    if isinstance(py, list):
        if not isinstance(js, list):
            return f"{path}: page has {str(js)[:80]!r}, Python a list of {len(py)}"
        if len(py) != len(js):
            return f"{path}: page has {len(js)} items, Python {len(py)}"
        for i, (a, b) in enumerate(zip(py, js)):
            d = _diff(a, b, f"{path}[{i}]", strict)
            if d:
                return d
        return None
    if isinstance(py, bool) or isinstance(js, bool):
        return None if py == js else f"{path}: page {js!r}, Python {py!r}"
    if isinstance(py, (int, float)) and isinstance(js, (int, float)):
        return None if math.isclose(py, js, rel_tol=1e-9, abs_tol=1e-12) else f"{path}: page {js!r}, Python {py!r}"
    return None if py == js else f"{path}: page {str(js)[:80]!r}, Python {str(py)[:80]!r}"


def figure_diff(py: dict, js: dict | None, defaults: list | None = None) -> str | None:
    if js is None:
        return "figure not drawn in the page"
    if len(py.get("data", [])) != len(js["data"]):
        return f"page has {len(js['data'])} traces, Python {len(py.get('data', []))}"
    for i, (a, b) in enumerate(zip(py.get("data", []), js["data"])):
        d = _diff(a, b, f"data[{i}]", strict=True, defaults=(defaults or [{}] * (i + 1))[i])
        if d:
            return d
    layout = py.get("layout", {})
    for key in ("shapes", "annotations"):
        if len(layout.get(key, [])) != len(js["layout"].get(key) or []):
            return (f"layout.{key}: page has {len(js['layout'].get(key) or [])}, "
                    f"Python {len(layout.get(key, []))}")
    return _diff(layout, js["layout"], "layout", strict=False)


class Tour:
    """Drives one page; every step waits for the kernel's redraw and compares the figures."""

    def __init__(self, page, root: Path, console: list, errors: list):
        self.page, self.root, self.console, self.errors = page, root, console, errors
        self.steps: list[str] = []
        self.times: dict[str, float] = {}

    def probe(self, name: str) -> dict:
        for _ in range(50):
            try:
                return json.loads((self.root / "probe" / f"{name}.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.1)
        raise AssertionError(f"no probe for {name}")

    def selector(self, name: str, fig: str) -> str:
        cls = FIGURES[name][fig]
        scope = f".tour-{name}"
        return f"{scope} .{cls}.js-plotly-plot, {scope} .{cls} .js-plotly-plot"

    def compare(self, name: str, what: str, timeout: float = 30.0) -> dict:
        """Wait until the page shows the probe's figures (the latest redraw); fail with the difference."""
        deadline = time.monotonic() + timeout
        while True:
            probe = self.probe(name)
            diffs = {}
            for fig in FIGURES[name]:
                js = self.page.evaluate(SNAPSHOT_JS, self.selector(name, fig))
                d = figure_diff(probe["figures"][fig], js, probe.get("defaults", {}).get(fig))
                if d:
                    diffs[fig] = d
            if not diffs and self.probe(name)["seq"] == probe["seq"]:
                return probe
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: after {what!r} the page differs from the Python figure: {diffs}")
            time.sleep(0.25)

    def step(self, name: str, what: str, action, expect: dict | None = None, error: str | None = None,
             timeout: float = 60.0):
        """Do ``action``; wait for a redraw whose settings hold ``expect`` (or whose error holds
        ``error``); check the page equals the Python figures and logged nothing."""
        before = self.probe(name)["seq"]
        t0 = time.monotonic()
        action()
        deadline = time.monotonic() + timeout
        while True:
            p = self.probe(name)
            ok = p["seq"] > before and all(p["settings"].get(k) == v for k, v in (expect or {}).items())
            ok = ok and ((error is None and p["error"] is None) or (error is not None and error in (p["error"] or "")))
            if ok:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: {what!r}: no matching redraw (seq {p['seq']} vs {before}, "
                                     f"settings {p['settings']}, error {p['error']})")
            time.sleep(0.1)
        self.page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=60_000)
        self.compare(name, what)
        self.times[f"{name}: {what}"] = time.monotonic() - t0
        self.steps.append(f"{name}: {what}")
        assert not self.errors, f"after {name}: {what}: page errors {self.errors}"
        assert not self.console, f"after {name}: {what}: console errors {self.console}"
        if error is not None:
            msg = self.page.locator(f".tour-{name} .attnviz-message").inner_text()
            status = self.page.locator(f".tour-{name} .attnviz-status").inner_text()
            assert error in msg and "Traceback" not in msg, msg
            assert "updated in" not in status, status
        elif name != "training":
            assert self.page.locator(f".tour-{name} .attnviz-message").inner_text().strip() == ""

    # ---- ways to move a control (ipywidgets 8 DOM) ----------------------------------------------
    def select(self, name, control, label):
        return lambda: self.page.select_option(f".tour-{name} .attnviz-{control} select", label=label)

    def type(self, name, control, text):
        def act():
            box = self.page.locator(f".tour-{name} .attnviz-{control} input, .tour-{name} .attnviz-{control} textarea")
            box.fill(str(text))
            box.press("Enter" if box.evaluate("e => e.tagName") == "INPUT" else "Tab")
        return act

    def click(self, name, control):
        return lambda: self.page.click(f".tour-{name} .attnviz-{control} input[type=checkbox], "
                                       f".tour-{name} button.attnviz-{control}")

    def keys(self, name, control, key, times=1):
        def act():
            self.page.focus(f".tour-{name} .attnviz-{control} .noUi-handle")
            for _ in range(times):
                self.page.keyboard.press(key)
        return act


def _notebook(root: Path) -> None:
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c}
                    for c in CELLS],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root / "tour.ipynb").write_text(json.dumps(nb))


def test_every_control_of_every_explorer_draws_what_python_holds(lab):
    from playwright.sync_api import sync_playwright

    base, token, root = lab
    _notebook(root)
    ARTIFACTS.mkdir(exist_ok=True)
    console, errors, external = [], [], []

    route = offline_router(lab_origins(base), external)

    t_start = time.monotonic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        tour = Tour(page, root, console, errors)
        try:
            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.goto(f"{base}/lab/tree/tour.ipynb?token={token}")
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=90_000)
            page.evaluate("""() => { window.__drawn = [];
                document.addEventListener('plotlywidget-after-render', (e) => window.__drawn.push(
                    [e.detail.element, performance.timeOrigin + performance.now()])); }""")
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has-text('Run All Cells')")
            page.wait_for_selector(".jp-OutputArea-output:has-text('all made')", timeout=120_000)

            # ---- training monitor: starts within ~2 s of its figure drawing; Stop ends it --------
            fig = tour.selector("training", "training")
            page.wait_for_function(f"document.querySelector({json.dumps(fig)})?.data", timeout=60_000)
            page.wait_for_function(f"document.querySelector({json.dumps(fig)}).data[0].x.length >= 1",
                                   timeout=60_000)
            drawn = page.evaluate("window.__drawn.filter(([el]) => el.closest('.tour-training')).map(([, t]) => t)")
            assert drawn, page.evaluate("window.__drawn.map(([el, t]) => [el.className, t])")
            first_step = tour.probe("training")["first_step"] - drawn[0] / 1000
            tour.times["training: first step after the figure drew"] = first_step
            assert first_step < 6.0, f"training began {first_step:.1f} s after the figure drew"
            page.wait_for_function(f"document.querySelector({json.dumps(fig)}).data[0].x.length >= 12",
                                   timeout=60_000)
            tour.step("training", "Stop", lambda: page.click(".tour-training button.attnviz-stop"))
            page.wait_for_selector(".tour-training .attnviz-status:has-text('stopped at step')", timeout=60_000)
            tour.compare("training", "after the run ended")
            colours = page.evaluate(f"document.querySelector({json.dumps(fig)}).data.map(t => t.line.color)")
            assert len(set(colours)) == 4, colours
            page.locator(".tour-training").screenshot(path=str(ARTIFACTS / "tour_training.png"))

            # ---- pattern explorer --------------------------------------------------------------
            P = "pattern"
            s = tour.step
            s(P, "placement scattered", tour.select(P, "placement", "scattered"), {"placement": "scattered"})
            s(P, "text tokens 16000", tour.type(P, "text-len", 16000), {"text_len": 16000})
            s(P, "every 500", tour.type(P, "every", 500), {"every": 500})
            page.locator(".tour-pattern").screenshot(path=str(ARTIFACTS / "tour_pattern_scattered_16k.png"))
            s(P, "placement infix (at: the middle)", tour.select(P, "placement", "infix"), {"placement": "infix"})
            assert tour.probe(P)["figures"]["mask"]["layout"]["title"]["text"]
            s(P, "at 100", tour.type(P, "at", 100), {"at": 100})
            s(P, "text tokens 1000", tour.type(P, "text-len", 1000), {"text_len": 1000})
            s(P, "placement suffix", tour.select(P, "placement", "suffix"), {"placement": "suffix"})
            s(P, "placement start", tour.select(P, "placement", "start"), {"placement": "start"})
            s(P, "placement prefix", tour.select(P, "placement", "prefix"), {"placement": "prefix"})
            s(P, "prompt tokens 4", tour.type(P, "n-tokens", 4), {"n_tokens": 4})
            s(P, "causal on", tour.click(P, "causal"), {"causal": True})
            s(P, "dilation 2", tour.type(P, "dilation", 2), {"dilation": 2})
            s(P, "causal off", tour.click(P, "causal"), {"causal": False})
            s(P, "dilation 1", tour.type(P, "dilation", 1), {"dilation": 1})
            s(P, "random blocks 2", tour.type(P, "random-blocks", 2), {"random_blocks": 2})
            s(P, "block size 32", tour.type(P, "block-size", 32), {"block_size": 32})
            s(P, "seed 5", tour.type(P, "seed", 5), {"seed": 5})
            s(P, "random blocks 0", tour.type(P, "random-blocks", 0), {"random_blocks": 0})
            s(P, "global positions 0", tour.type(P, "global-positions", "0"), {"global_positions": "0"})
            s(P, "global prompt on", tour.click(P, "global-prompt"), {"global_prompt": True})
            s(P, "per-layer windows", tour.type(P, "windows", "8,8,16,16,32,64"), {"windows": "8,8,16,16,32,64"})
            s(P, "layer slider to 5", tour.keys(P, "layer", "End"), {"layer": 5})
            s(P, "bad per-layer value", tour.type(P, "windows", "33"), error="must be even")
            s(P, "per-layer windows cleared", tour.type(P, "windows", ""), {"windows": ""})
            s(P, "layers 3 (layer follows)", tour.type(P, "num-layers", 3), {"num_layers": 3, "layer": 2})
            s(P, "window slider to full", tour.keys(P, "window", "End"), {"window": None})
            s(P, "window slider down 3", tour.keys(P, "window", "ArrowLeft", 3), {"window": 1024})
            s(P, "layer slider to 0", tour.keys(P, "layer", "Home"), {"layer": 0})
            s(P, "global prompt off", tour.click(P, "global-prompt"), {"global_prompt": False})
            # the mask zoo row (L = 1000 text tokens + [CLS], [SEP] and 4 prompt tokens = 1006)
            s(P, "causal on (zoo)", tour.click(P, "causal"), {"causal": True})
            s(P, "prefix-LM over the prompt", tour.type(P, "prefix-lm", "prompt"), {"prefix_lm": "prompt"})
            s(P, "sinks 4", tour.type(P, "sinks", 4), {"sinks": 4})
            s(P, "chunk 64", tour.type(P, "chunk", "64"), {"chunk": "64"})
            s(P, "documents 500,506", tour.type(P, "documents", "500,506"), {"documents": "500,506"})
            page.locator(".tour-pattern").screenshot(path=str(ARTIFACTS / "tour_pattern_zoo.png"))
            s(P, "documents that do not sum to L", tour.type(P, "documents", "10,10"), error="sum to 20")
            s(P, "zoo cleared", lambda: [tour.type(P, "documents", "")(), tour.type(P, "chunk", "")()],
              {"documents": "", "chunk": ""})
            # a mask part of attnviz.masks (#16): the Sparse Transformer's strided keys, then a bad name
            s(P, "window 16 (for the part)", tour.type(P, "windows", "16"), {"windows": "16"})
            s(P, "mask part strided:64", tour.type(P, "parts", "strided:64"), {"parts": "strided:64"})
            assert "strided 64" in page.locator(".tour-pattern .attnviz-summary").inner_text()
            page.locator(".tour-pattern").screenshot(path=str(ARTIFACTS / "tour_pattern_strided.png"))
            s(P, "unknown mask part", tour.type(P, "parts", "dilated:3"), error="unknown mask part 'dilated'")
            s(P, "mask part cleared", lambda: [tour.type(P, "parts", "")(), tour.type(P, "windows", "")()],
              {"parts": "", "windows": ""})
            s(P, "sinks 0, prefix-LM off", lambda: [tour.type(P, "sinks", 0)(), tour.type(P, "prefix-lm", "")()],
              {"sinks": 0, "prefix_lm": ""})
            s(P, "causal off (zoo)", tour.click(P, "causal"), {"causal": False})
            page.locator(".tour-pattern").screenshot(path=str(ARTIFACTS / "tour_pattern_end.png"))

            # ---- influence explorer ------------------------------------------------------------
            I = "influence"
            s(I, "placement scattered", tour.select(I, "placement", "scattered"), {"placement": "scattered"})
            s(I, "every 3", tour.type(I, "every", 3), {"every": 3})
            s(I, "placement infix (middle)", tour.select(I, "placement", "infix"), {"placement": "infix", "at": None})
            s(I, "at 2", tour.type(I, "at", 2), {"at": 2})
            s(I, "placement suffix", tour.select(I, "placement", "suffix"), {"placement": "suffix"})
            s(I, "placement prefix", tour.select(I, "placement", "prefix"), {"placement": "prefix"})
            s(I, "prompt tokens 3", tour.type(I, "n-tokens", 3), {"n_tokens": 3})
            s(I, "window slider down 2", tour.keys(I, "window", "ArrowLeft", 2), {"window": 2})
            s(I, "global positions 0", tour.type(I, "global-positions", "0"), {"global_positions": "0"})
            s(I, "global prompt on", tour.click(I, "global-prompt"), {"global_prompt": True})
            s(I, "init seed 4", tour.type(I, "seed", 4), {"seed": 4})
            s(I, "prompt random", tour.type(I, "prompt", "random"), {"prompt": "random"})
            s(I, "method rollout", tour.select(I, "method", "rollout"), {"method": "rollout"})
            s(I, "method gradient", tour.select(I, "method", "gradient"), {"method": "gradient"})
            s(I, "log colour", tour.click(I, "log"), {"log": True})
            s(I, "layer slider to 2", tour.keys(I, "layer", "End"), {"layer": 2})
            s(I, "head 1", tour.select(I, "head", "1"), {"head": 1})
            s(I, "text edited", tour.type(I, "text", "good film"), {"text": "good film"})
            s(I, "bad global position", tour.type(I, "global-positions", "x"), error="not a number")
            s(I, "global positions cleared", tour.type(I, "global-positions", ""), {"global_positions": ""})
            page.locator(".tour-influence").screenshot(path=str(ARTIFACTS / "tour_influence_end.png"))

            # ---- cost explorer -----------------------------------------------------------------
            C = "cost"
            for impl in ("longformer", "flex", "sdpa", "sparse"):
                s(C, f"windowed as {impl}", tour.select(C, "implementation", impl), {"implementation": impl})
            s(C, "window 128", tour.type(C, "window", 128), {"window": 128})
            s(C, "global tokens 4", tour.type(C, "n-global", 4), {"n_global": 4})
            s(C, "random blocks 2", tour.type(C, "random-blocks", 2), {"random_blocks": 2})
            s(C, "block size 32", tour.type(C, "block-size", 32), {"block_size": 32})
            s(C, "layers 6", tour.type(C, "num-layers", 6), {"num_layers": 6})
            s(C, "heads 8", tour.type(C, "num-heads", 8), {"num_heads": 8})
            s(C, "head dim 32", tour.type(C, "head-dim", 32), {"head_dim": 32})
            s(C, "batch 2", tour.type(C, "batch", 2), {"batch": 2})
            s(C, "dtype", tour.select(C, "dtype", "bfloat16"), {"dtype": "bfloat16"})
            s(C, "budget 2 GiB", tour.type(C, "budget-gib", 2), {"budget_gib": 2.0})
            s(C, "GFLOP/s 25", tour.type(C, "gflops", 25), {"gflops": 25.0})
            s(C, "training on", tour.click(C, "backward"), {"backward": True})
            s(C, "L slider down", tour.keys(C, "max-length", "Home"), {"max_length": 128})
            s(C, "L slider up 4", tour.keys(C, "max-length", "ArrowRight", 4))
            s(C, "bad window", tour.type(C, "window", 63), error="even")
            s(C, "window 64", tour.type(C, "window", 64), {"window": 64})
            s(C, "measure", lambda: page.click(".tour-cost button.attnviz-measure"), timeout=120)
            cost_js = json.dumps(tour.selector(C, "cost"))
            assert page.evaluate(f"document.querySelector({cost_js}).data.some("
                                 "t => String(t.name).startsWith('measured') && t.x.length > 0)")
            page.locator(".tour-cost").screenshot(path=str(ARTIFACTS / "tour_cost_measured.png"))
            tour.times["total"] = time.monotonic() - t_start
        except Exception:
            try:
                page.screenshot(path=str(ARTIFACTS / "tour_failure.png"), full_page=True, timeout=20_000)
            except Exception as exc:  # pragma: no cover
                print("no failure screenshot:", exc)
            print("steps done:", tour.steps)
            print("console:", console, "errors:", errors)
            raise
        finally:
            browser.close()
    print(f"{len(tour.steps)} steps:", "; ".join(tour.steps))
    print("times (s):", {k: round(v, 1) for k, v in tour.times.items()})
    assert not external, external
    assert not errors and not console, (errors, console)
