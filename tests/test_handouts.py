"""make handouts: notebooks executed and exported to HTML that renders offline from file://."""

from __future__ import annotations

import hashlib
import json
import os
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from attnviz.assets import asset_path
from attnviz.studies.handouts import ANYWIDGET_PATCHES, ESM_REF, Handout, _merged, build, main, patch_anywidget
from _browser import FILE_ORIGINS, offline_router

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]


def _write(path, *cells):
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One build of three small notebooks: one with a figure and a widget, one that fails halfway,
    one with two live plotly FigureWidgets (anywidgets that each save ~5 MB of JavaScript)."""
    src = tmp_path_factory.mktemp("src")
    good = _write(src / "good.ipynb", new_markdown_cell("# A handout"),
                  new_code_cell("from attnviz.notebook import setup, by_mode\nprint(setup(), by_mode(fast='FAST', full='FULL'))"),
                  new_code_cell("from attnviz import AttentionPattern\nfrom attnviz.plots import mask_figure\n"
                                "mask_figure(AttentionPattern(window=4), 20, size=300)"),
                  new_code_cell("import ipywidgets\nipywidgets.IntSlider(value=7, max=10, description='window')"))
    bad = _write(src / "bad.ipynb", new_code_cell("print('before')"), new_code_cell("1 / 0"), new_code_cell("print('after')"))
    figs = _write(src / "figs.ipynb", new_code_cell("from attnviz.notebook import setup\nsetup()"),
                  *[new_code_cell(f"import plotly.graph_objects as go\n"
                                  f"go.FigureWidget(data=[go.Bar(x=['a', 'b'], y=[{k}, 2])], layout=dict(title='figure {k}'))")
                    for k in (1, 2)])
    out = tmp_path_factory.mktemp("handouts")
    return out, build([good, bad, figs], out, fast=True, timeout=120, progress=False)


@pytest.mark.notebook
@pytest.mark.timeout(300)
def test_export_is_offline_with_widget_state(built):
    out, results = built
    good, bad, _ = results
    assert good.error == "" and good.fast and good.html == str(out / "good.html")
    page = (out / "good.html").read_text()
    srcs = re.findall(r"<script[^>]*\ssrc\s*=\s*[\"']?([^\"' >]+)", page)
    assert srcs[0] == "lib/require.js"                      # nothing from the network; the renderer is loaded by path
    (plotly_js,) = srcs[1:]                                 # plotly.js: one shared file in lib/, not 4.8 MB in the page
    assert re.fullmatch(r"lib/plotly-[0-9a-f]{16}\.js", plotly_js)
    assert (out / plotly_js).read_text().startswith("/**\n* plotly.js v") and "plotly.js v" not in page
    assert "var widgetRendererSrc = 'lib/embed-amd.js'" in page
    assert 'require.config({paths: {anywidget: "lib/anywidget"}})' in page
    assert not re.search(r"src=[\"']?https?://", page)
    state = json.loads(re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>',
                                 page, re.S).group(1))
    sliders = [m["state"] for m in state["state"].values() if m["model_name"] == "IntSliderModel"]
    assert [(s["value"], s["max"], s["description"]) for s in sliders] == [(7, 10, "window")]
    assert "attnviz notebook mode: fast" in page and "FAST" in page      # ran with ATTNVIZ_FAST=1
    assert page.count('class="plotly-graph-div"') == 1
    for name, filename in (("require", "require.js"), ("embed-amd", "embed-amd.js")):
        assert (out / "lib" / filename).read_bytes() == asset_path(name).read_bytes()     # anywidget.js: patched, below
    executed = nbformat.read(out / "good.ipynb", as_version=4)
    assert "widgets" in executed.metadata


@pytest.mark.notebook
@pytest.mark.timeout(300)
def test_a_failing_notebook_is_exported_as_far_as_it_ran_and_reported(built):
    out, (good, bad, _) = built
    assert bad.error == "ZeroDivisionError: division by zero" and bad.html == str(out / "bad.html")
    page = (out / "bad.html").read_text()
    assert "before" in page and "ZeroDivisionError" in page
    durations = json.loads((out / "durations.json").read_text())
    assert [(d["notebook"], d["error"]) for d in durations] == [("bad.ipynb", bad.error), ("figs.ipynb", ""),
                                                                          ("good.ipynb", "")]
    index = (out / "index.html").read_text()
    assert '<a href="good.html">good.ipynb</a>' in index and "FAILED: ZeroDivisionError" in index


@pytest.mark.notebook
@pytest.mark.timeout(300)
def test_figure_widgets_share_one_stored_module(built):
    out, (_, _, figs) = built
    assert figs.error == ""
    executed = nbformat.read(out / "figs.ipynb", as_version=4)
    models = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"].values()
    esms = [m["state"]["_esm"] for m in models if "_esm" in m["state"]]
    assert len(esms) == 2 and esms[0] == esms[1] and len(esms[0]) > 1_000_000    # the same 5 MB, saved twice
    page = (out / "figs.html").read_text()
    stored = re.findall(r'<script type="application/json" id="attnviz-esm-([0-9a-f]{64})">(.*?)</script>', page, re.S)
    assert len(stored) == 1                                          # ... stored once in the page
    sha, text = stored[0]
    assert json.loads(text) == esms[0] and hashlib.sha256(esms[0].encode()).hexdigest() == sha
    state = json.loads(re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>',
                                 page, re.S).group(1))
    refs = [m["state"]["_esm"] for m in state["state"].values() if "_esm" in m["state"]]
    assert refs == [ESM_REF + sha] * 2
    assert len(page) < len(esms[0]) * 1.5 + 6_000_000              # one module + plotly.js, not two modules
    patched = (out / "lib" / "anywidget.js").read_text()
    assert patched == patch_anywidget(asset_path("anywidget").read_text())
    assert "AbortSignal.timeout(6e4)" in patched and "AbortSignal.timeout(2e3)" not in patched


def test_anywidget_patches_fail_loudly_on_another_version():
    source = asset_path("anywidget").read_text()
    patched = patch_anywidget(source)
    assert all(new in patched for _, new in ANYWIDGET_PATCHES)
    with pytest.raises(ValueError, match=r"AbortSignal\.timeout\(2e3\).*found it 0 times.*anywidget version"):
        patch_anywidget(source.replace("AbortSignal.timeout(2e3)", "AbortSignal.timeout(5e3)"))


def test_rebuilding_one_notebook_keeps_the_index_whole(tmp_path):
    (tmp_path / "a.html").write_text("a")
    (tmp_path / "b.html").write_text("b")
    earlier = [Handout("a.ipynb", str(tmp_path / "a.html"), 1.0, True), Handout("b.ipynb", str(tmp_path / "b.html"), 2.0, True),
               Handout("gone.ipynb", str(tmp_path / "gone.html"), 3.0, True)]
    (tmp_path / "durations.json").write_text(json.dumps([h.__dict__ for h in earlier]))
    now = [Handout("b.ipynb", str(tmp_path / "b.html"), 9.0, False, "ValueError: x")]
    assert _merged(tmp_path, now) == [earlier[0], now[0]]        # b replaced, a kept, gone (no page) dropped
    (tmp_path / "durations.json").write_text("not json")
    assert _merged(tmp_path, now) == now


def test_unknown_notebook_is_refused(tmp_path, capsys):
    assert main([str(tmp_path / "nope.ipynb"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "no such notebook" in err and "nope.ipynb" in err and "00_start_here.ipynb" in err


@pytest.mark.browser
@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_export_renders_from_file_url_in_chromium(built):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    out, _ = built
    errors, external = [], []

    route = offline_router(FILE_ORIGINS, external)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((out / "good.html").as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=60_000)
            page.wait_for_function("document.querySelector('.widget-slider .widget-readout')?.textContent === '7'",
                                   timeout=60_000)
            assert page.evaluate("document.querySelector('.js-plotly-plot').layout.title.text").startswith("Who may attend whom")
            assert page.evaluate("document.querySelector('.widget-slider .widget-label').textContent") == "window"
            page.goto((out / "figs.html").as_uri())                  # two FigureWidgets from one stored module
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2", timeout=60_000)
            titles = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].map(d => d.layout.title.text)")
            assert sorted(titles) == ["figure 1", "figure 2"]
        finally:
            browser.close()
    assert not errors, errors
    assert not external, external
