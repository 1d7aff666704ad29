"""The start notebook in a real JupyterLab, driven by headless Chromium: Run All, the pattern
explorer draws, the window slider moved with the keyboard redraws the figures with the numbers of
spread_pattern, and the bertviz view draws its SVG inside its iframe. Offline: every request that
leaves 127.0.0.1 is blocked and fails the test, as do page errors and failed requests.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from attnviz import AttentionPattern, PromptPlacement, spread_pattern
from _browser import lab_origins, FILE_ORIGINS, offline_router

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
NOTEBOOK = "notebooks/00_start_here.ipynb"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shares(window: int) -> list[float]:
    """What the explorer's bar chart must show: share of positions reached after each layer."""
    layout = PromptPlacement("prefix", n_tokens=20).layout(text_len=1000)
    reach = spread_pattern(AttentionPattern(window=window), layout, 6)
    return [reach.fraction_reached(l) for l in range(7)]


@pytest.fixture()
def lab(tmp_path):
    """JupyterLab on a free 127.0.0.1 port with a fresh token, HOME and Jupyter dirs in tmp_path,
    serving a copy of notebooks/. Yields (base url, token, root)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    root = tmp_path / "work"
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    dirs = {k: tmp_path / v for k, v in [("HOME", "home"), ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython"),
                                          ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime")]}
    for d in dirs.values():
        d.mkdir()
    # no "news" toast over the page (Lab asks on first start)
    notes = dirs["JUPYTER_CONFIG_DIR"] / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    notes.mkdir(parents=True)
    (notes / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, **{k: str(v) for k, v in dirs.items()}, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", "--allow-root",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={root}/.ws",
        ],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.25)
        yield base, token, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


# The spread figure's plotly div and the bars' x values (shares reached after each layer).
SPREAD_JS = "document.querySelector('.attnviz-spread-figure.js-plotly-plot')"
MASK_JS = "document.querySelector('.attnviz-mask-figure.js-plotly-plot')"


def test_start_notebook_explorer_and_bertviz_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    base, token, root = lab
    ARTIFACTS.mkdir(exist_ok=True)
    t0 = time.monotonic()
    timings = {}
    external, failed, errors, console = [], [], [], []

    route = offline_router(lab_origins(base), external)

    def on_failed(req):
        # a kernel websocket closing when the page goes away is not a failure of the page
        if not req.url.startswith("ws://"):
            failed.append(f"{req.method} {req.url}: {req.failure}")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})  # tall: whole views in shots
            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", on_failed)
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=90_000)
            timings["kernel idle"] = time.monotonic() - t0

            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has-text('Run All Cells')")
            page.wait_for_function(f"{SPREAD_JS}?.layout?.title?.text?.includes('window=32')", timeout=90_000)
            page.wait_for_function(f"{MASK_JS}?.layout?.title?.text?.includes('window=32')", timeout=30_000)
            timings["run all -> explorer"] = time.monotonic() - t0 - timings["kernel idle"]
            # the cells after the explorer (bertviz) run too; a slider moved before the kernel is
            # idle again would wait in the kernel's queue behind them
            page.wait_for_selector("iframe.attnviz-bertviz", state="attached", timeout=60_000)
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=60_000)
            timings["run all -> idle"] = time.monotonic() - t0 - timings["kernel idle"]
            got = page.evaluate(f"Array.from({SPREAD_JS}.data[1].x)")
            assert got == _shares(32)                           # after 6 layers: 11.4 % reached
            explorer = page.locator(".attnviz-explorer")
            explorer.scroll_into_view_if_needed()
            page.mouse.move(2, 2)                               # no hover effects in the shots
            explorer.screenshot(path=str(ARTIFACTS / "lab_explorer_window32.png"))

            # the window slider, moved with the keyboard: 32 -> 64
            t1 = time.monotonic()
            page.focus(".attnviz-window .noUi-handle")
            page.keyboard.press("ArrowRight")
            want = json.dumps(_shares(64), separators=(",", ":"))        # as JSON.stringify writes it
            page.wait_for_function(f"JSON.stringify(Array.from({SPREAD_JS}.data[1].x)) === {json.dumps(want)}",
                                   timeout=20_000)
            page.wait_for_function(f"{MASK_JS}.layout.title.text.includes('window=64')", timeout=20_000)
            timings["slider -> redraw"] = time.monotonic() - t1
            timings["kernel compute"] = page.locator(".attnviz-status").inner_text()   # "updated in N ms"
            title = page.evaluate(f"{SPREAD_JS}.layout.title.text")
            assert "window=64 · 6 layers · L=1022" in title
            assert page.locator(".attnviz-window .widget-readout").inner_text().strip() == "64"
            assert page.locator(".attnviz-message").inner_text().strip() == ""       # no error shown
            summary = page.locator(".attnviz-summary").inner_text()
            assert "the prompt never reaches token 1021 within 6 layers" in summary
            # the drawn heatmap follows: cells of the spread view (first row = the prompt itself)
            n_cells = page.evaluate(f"{SPREAD_JS}.querySelectorAll('.hm image, .heatmaplayer image').length")
            assert n_cells >= 1
            explorer.screenshot(path=str(ARTIFACTS / "lab_explorer_window64.png"))

            # a bad value shows a message, not a traceback
            box = page.locator(".attnviz-windows input")
            box.fill("33")
            box.press("Enter")
            page.wait_for_selector(".attnviz-message:has-text('must be even')", timeout=20_000)
            assert "Traceback" not in page.locator(".attnviz-message").inner_text()
            page.locator(".attnviz-message").screenshot(path=str(ARTIFACTS / "lab_explorer_bad_value.png"))
            box.fill("")
            box.press("Enter")
            page.wait_for_function("document.querySelector('.attnviz-message').innerText.trim() === ''",
                                   timeout=20_000)

            # bertviz: the head view of section 7 draws inside its iframe (require.js stays out of Lab)
            frame_el = page.locator("iframe.attnviz-bertviz")
            frame_el.scroll_into_view_if_needed()
            frame = page.frame_locator("iframe.attnviz-bertviz")
            # section 7: "The match ended in a draw after extra time." -> 9 words and "." (MiniLM's
            # tokenizer), a 4-token prefix prompt after [CLS], then [SEP]
            L = PromptPlacement("prefix", n_tokens=4).layout(text_len=10).length
            frame.locator("svg text").nth(2 * L - 1).wait_for(timeout=30_000)
            inner = next(f for f in page.frames if f.url == "about:srcdoc")
            inner.wait_for_function(f"document.querySelectorAll('#attention line').length >= {L * L}")
            lines = inner.evaluate("document.querySelectorAll('#attention line').length")
            assert lines == 12 * L * L, lines           # a line per pair and head (MiniLM: 12; heads= picks those shown)
            texts = inner.evaluate("Array.from(document.querySelectorAll('svg text')).map(t => t.textContent)")
            assert texts[:6] == ["[CLS]", "<p0>", "<p1>", "<p2>", "<p3>", "the"] and len(texts) == 2 * L
            assert texts[L - 1] == "[SEP]"
            assert page.evaluate("typeof window.require") == "undefined"
            page.mouse.move(2, 2)
            frame_el.screenshot(path=str(ARTIFACTS / "lab_bertviz_head_view.png"))
            timings["total"] = time.monotonic() - t0
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "lab_failure.png"))
            print("page errors:", errors, "failed:", failed, "external:", external, "console:", console)
            print("spread data[1].x:", page.evaluate(f"JSON.stringify({SPREAD_JS}?.data?.[1]?.x)"),
                  "title:", page.evaluate(f"{SPREAD_JS}?.layout?.title?.text"))
            raise
        finally:
            browser.close()
    print("timings (s):", {k: round(v, 1) if isinstance(v, float) else v for k, v in timings.items()})
    assert not errors, errors
    assert not external, external
    assert not failed, failed
    assert not console, console            # e.g. "Could not send widget sync message"
    assert timings["total"] < 150


def test_exported_explorer_page_moves_without_a_kernel(tmp_path):
    """export_html: one offline file; in Chromium with every non-file request blocked, clicking the
    plotly slider at "64" shows the window-64 views (the numbers of spread_pattern)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from attnviz.widgets import PatternExplorer

    ex = PatternExplorer(text_len=300, n_tokens=20, window=16, num_layers=6)
    page_path = ex.export_html(tmp_path / "explorer.html")
    layout = PromptPlacement("prefix", n_tokens=20).layout(text_len=300)
    want = [spread_pattern(AttentionPattern(window=64), layout, 6).fraction_reached(l) for l in range(7)]
    ARTIFACTS.mkdir(exist_ok=True)
    external, errors = [], []

    route = offline_router(FILE_ORIGINS, external)

    visible_bars = """() => { const gd = document.querySelectorAll('.plotly-graph-div')[0];
        const bars = gd.data.filter(t => t.type === 'bar' && t.visible !== false);
        return bars.map(t => Array.from(t.x)); }"""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1800})
            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            page.wait_for_function("document.querySelectorAll('.plotly-graph-div .slider-rail-touch-rect').length === 2")
            assert "window=16" in page.evaluate("document.querySelectorAll('.plotly-graph-div')[0].layout.title.text")
            # click the spread figure's slider where its "64" step sits (steps: 2 4 8 16 32 64 128)
            rail = page.locator(".plotly-graph-div").nth(0).locator(".slider-rail-touch-rect")
            ticks = page.locator(".plotly-graph-div").nth(0).locator(".slider-labels .slider-label")
            labels = [t.strip() for t in ticks.all_text_contents()]
            assert labels == ["2", "4", "8", "16", "32", "64", "128"]
            box = ticks.nth(labels.index("64")).bounding_box()
            rbox = rail.bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, rbox["y"] + rbox["height"] / 2)
            page.wait_for_function("document.querySelectorAll('.plotly-graph-div')[0].layout.title.text"
                                   ".includes('window=64')", timeout=10_000)
            assert page.evaluate(visible_bars) == [want]
            page.mouse.move(2, 2)
            page.screenshot(path=str(ARTIFACTS / "export_explorer_window64.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert not external, external


def test_export_image_png_and_svg_with_system_chromium(tmp_path):
    """PNG / SVG handouts through kaleido, which drives the system Chromium (no download)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    pytest.importorskip("kaleido")
    from attnviz.widgets import PatternExplorer

    ex = PatternExplorer(text_len=300, window=32)
    png = ex.export_image(tmp_path / "spread.png")
    svg = ex.export_image(tmp_path / "mask.svg", figure="mask")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = svg.read_text()
    assert text.lstrip().startswith("<svg") and "Who may attend whom" in text and "window=32" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.svg", "spread.png"]   # no temporary files left
