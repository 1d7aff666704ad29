"""bertviz views offline: no CDN in the page, libraries inlined, iframe srcdoc escaped, prompt tokens
labelled, too many tokens refused; offline JS assets installed and checked; and in headless
Chromium with every non-file request blocked, bertviz draws its SVG inside the iframe."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import stat
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from attnviz import PromptPlacement, plain_layout
from attnviz import assets
from attnviz.plots.bertviz_view import MAX_TOKENS, TOKEN_COLORS, head_view, inline_js, model_view, token_labels
from _browser import offline_router

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]

# A string each inlined library is known to contain (its banner).
MARKERS = {"d3": "d3js.org v5.7.0", "jquery": "jQuery v2.2.4", "require": "RequireJS 2.3.6"}


@pytest.fixture(scope="module")
def js_assets(tmp_path_factory):
    """The installed offline JS assets, or a fresh install into a temporary ATTNVIZ_JS_DIR."""
    if all(s == "ok" for s in assets.status().values()):
        yield assets.asset_dir()
        return
    if shutil.which("npm") is None:
        pytest.skip(f"offline JS assets missing in {assets.asset_dir()} and npm not found to install them")
    dest = tmp_path_factory.mktemp("js") / "js"
    assets.install_assets(dest)
    old = os.environ.get("ATTNVIZ_JS_DIR")
    os.environ["ATTNVIZ_JS_DIR"] = str(dest)
    try:
        yield dest
    finally:
        if old is None:
            os.environ.pop("ATTNVIZ_JS_DIR", None)
        else:
            os.environ["ATTNVIZ_JS_DIR"] = old


def _attention(layers: int, heads: int, L: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.softmax(torch.randn(batch, heads, L, L, generator=g) * 3, -1) for _ in range(layers))


def _params(page: str) -> dict:
    """The JSON bertviz put into its script (``const params = {...}; // HACK``)."""
    m = re.search(r"^\s*const params = (\{.*\});$", page, re.M)
    assert m, "bertviz params not found in the page"
    return json.loads(m.group(1).replace("<\\/", "</").replace("<\\!--", "<!--"))  # undo inline_js


class _ScriptParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts, self._in = [], False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._in = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in = False

    def handle_data(self, data):
        if self._in:
            self.scripts[-1] += data


def _scripts(page: str) -> list[str]:
    """The text of each <script> as an HTML parser splits the page."""
    parser = _ScriptParser()
    parser.feed(page)
    parser.close()
    return parser.scripts


def _srcdoc(iframe: str) -> str:
    m = re.fullmatch(r'<iframe [^>]*srcdoc="([^"]*)"></iframe>', iframe, re.S)
    assert m, iframe[:200]
    return m.group(1)


# ---- the page --------------------------------------------------------------------------------------
@pytest.mark.parametrize("view", [head_view, model_view])
def test_page_has_no_cdn_and_inlines_the_libraries_in_order(js_assets, view):
    layout = PromptPlacement("prefix", 4).layout(6)
    v = view(_attention(2, 3, layout.length), layout=layout)
    page = v.html
    assert "cdnjs" not in page
    assert "require.config(" not in page.split("<body>", 1)[1]         # bertviz's CDN paths are cut out
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)          # nothing loaded by URL
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    where = [page.index(MARKERS["d3"]), page.index(MARKERS["jquery"]), page.index(MARKERS["require"]),
             page.index("define('d3'"), page.index("define('jquery'"), page.index("requirejs(['jquery', 'd3']")]
    assert where == sorted(where), "d3, jquery, require.js, the defines, then bertviz"
    assert page.count('"attn": ') == 1                                  # the weights once (bertviz puts them twice)
    for name in ("d3", "jquery", "require"):   # each library complete, byte for byte
        assert inline_js(assets.read_asset(name)) in page
    # as a browser's parser sees it: six scripts, each ending where it should
    scripts = _scripts(page)
    assert len(scripts) == 6
    for i, name in enumerate(("d3", "jquery", "require")):
        assert inline_js(assets.read_asset(name)) in scripts[i]
    assert scripts[3].strip().startswith("define('d3'") and "requirejs(['jquery', 'd3']" in scripts[4]


def test_iframe_srcdoc_round_trips_and_hides_markup(js_assets):
    tokens = ["[CLS]", 'say "hi" & <b>bye</b>', "</script><script>alert(1)</script>", "<!--", "it's", "[SEP]"]
    v = head_view(_attention(1, 2, 6), tokens)
    srcdoc = _srcdoc(v._repr_html_())
    assert '"' not in srcdoc and "<" not in srcdoc and ">" not in srcdoc and "'" not in srcdoc
    assert html.unescape(srcdoc) == v.html
    scripts = _scripts(v.html)                                         # token text did not end a script
    assert len(scripts) == 6 and "requirejs(['jquery', 'd3']" in scripts[4] and "MutationObserver" in scripts[5]
    assert _params(v.html)["attention"][0]["left_text"] == tokens
    assert v.tokens == tuple(tokens)
    assert repr(v).startswith("<BertvizView head view, 6 tokens,") and len(repr(v)) < 80  # text/plain stays small


def test_weights_in_page_equal_the_input_rounded(js_assets):
    att = _attention(3, 2, 5, batch=2, seed=1)
    v = head_view(att, list("abcde"), batch_index=1, layer=2)
    p = _params(v.html)
    got = torch.tensor(p["attention"][0]["attn"], dtype=torch.float64)      # (layers, heads, L, L)
    want = torch.stack([a[1] for a in att]).double()
    assert got.shape == (3, 2, 5, 5)
    assert torch.equal(got, torch.round(want, decimals=3))
    assert p["layer"] == 2 and p["include_layers"] == [0, 1, 2]
    # the same numbers from a (layers, heads, L, L) tensor and from (layers, B, heads, L, L)
    assert _params(head_view(want, list("abcde"), layer=2).html)["attention"] == p["attention"]
    assert _params(head_view(torch.stack(att), list("abcde"), batch_index=1, layer=2).html)["attention"] == p["attention"]
    full = head_view(want, list("abcde"), decimals=None)
    assert torch.equal(torch.tensor(_params(full.html)["attention"][0]["attn"], dtype=torch.float64), want)


def test_model_view_keeps_model_layer_and_head_ids(js_assets):
    from attnviz.capture import AttentionMaps, units_of

    L = 4
    values = torch.softmax(torch.randn(2, 2, L, L), -1)
    maps = AttentionMaps(values=values, layers=(1, 3), heads=(0, 2), length=L, block_size=None, kept=(),
                         edges=tuple(range(L + 1)), unit_of=units_of(tuple(range(L + 1))), source="dense")
    p = _params(model_view(maps, list("wxyz")).html)
    assert p["include_layers"] == [1, 3] and p["include_heads"] == [0, 2]
    got = torch.tensor(p["attention"][0]["attn"], dtype=torch.float64)
    assert torch.equal(got, torch.round(values.double(), decimals=3))
    p = _params(head_view(maps, list("wxyz"), layer=3, heads=[2]).html)
    assert p["include_layers"] == [1, 3] and p["layer"] == 3 and p["heads"] == [1]  # head 2 is the 2nd given
    p = _params(model_view(maps, list("wxyz"), layers=[3], heads=2).html)
    assert p["include_layers"] == [3] and p["include_heads"] == [2] and p["total_heads"] == 3
    assert torch.equal(torch.tensor(p["attention"][0]["attn"], dtype=torch.float64),
                       torch.round(values[1:, 1:].double(), decimals=3))
    with pytest.raises(ValueError, match=r"layers \[2\] must be a non-empty subset of the layers given: \[1, 3\]"):
        head_view(maps, list("wxyz"), layers=[2])


# ---- labels and limits -----------------------------------------------------------------------------
def test_prompt_tokens_are_labelled_from_the_layout():
    layout = PromptPlacement("prefix", 3).layout(4)                      # C P P P t t t t S
    assert token_labels(layout) == ("[CLS]", "<p0>", "<p1>", "<p2>", "t0", "t1", "t2", "t3", "[SEP]")
    words = ["[CLS]", "the", "cat", "sat", "down", "[SEP]"]              # the tokenizer's, no prompt
    assert token_labels(layout, words) == ("[CLS]", "<p0>", "<p1>", "<p2>", "the", "cat", "sat", "down", "[SEP]")
    per_position = ["[CLS]", "[PAD]", "[PAD]", "[PAD]", "the", "cat", "sat", "down", "[SEP]"]
    assert token_labels(layout, per_position) == token_labels(layout, words)

    scattered = PromptPlacement("scattered", 3, every=2).layout(4)     # C p0 t0 t1 p1 t2 t3 p2 S
    assert token_labels(scattered, words) == ("[CLS]", "<p0>", "the", "cat", "<p1>", "sat", "down", "<p2>", "[SEP]")
    twenty = PromptPlacement("infix", 20, at=1).layout(3)
    labels = token_labels(twenty)
    assert [labels[p] for p in twenty.prompt_positions] == [f"<p{j}>" for j in range(20)]
    assert token_labels(plain_layout(2)) == ("[CLS]", "t0", "t1", "[SEP]")
    with pytest.raises(ValueError, match="give 6 .* or 9"):
        token_labels(layout, words[:-1])


def test_view_labels_and_segment_colours(js_assets):
    layout = PromptPlacement("suffix", 2).layout(3, 2)                   # C a a a S b b P P S
    v = head_view(_attention(1, 1, layout.length), layout=layout)
    assert v.tokens == token_labels(layout)
    assert _params(v.html)["attention"][0]["left_text"] == list(v.tokens)
    colors = json.loads(re.search(r"var COLORS = (\[.*?\]);", v.html).group(1))
    assert colors == [TOKEN_COLORS.get(n) for n in layout.names()]
    assert {colors[p] for p in layout.prompt_positions} == {TOKEN_COLORS["prompt"]}
    assert "&lt;p0&gt;–&lt;p1&gt;" in v.html                            # the legend names the prompt


def test_too_many_tokens_point_to_the_pooled_heatmap():
    L = MAX_TOKENS + 1
    att = torch.full((1, 1, L, L), 1.0 / L)
    for view in (head_view, model_view):
        with pytest.raises(ValueError, match=r"129 tokens are too many.*pool=.*mask_figure"):
            view(att, [f"w{i}" for i in range(L)])
    with pytest.raises(ValueError, match="layout has 9 positions but the attention covers 5"):
        head_view(torch.full((1, 1, 5, 5), 0.2), layout=PromptPlacement("prefix", 3).layout(4))
    with pytest.raises(ValueError, match="square"):
        head_view(torch.zeros(1, 1, 3, 4), list("abc"))
    with pytest.raises(ValueError, match="batch_index 2 is outside the batch of 2"):
        head_view(_attention(1, 1, 3, batch=2), list("abc"), batch_index=2)


# ---- assets ----------------------------------------------------------------------------------------
def test_missing_or_corrupt_assets_say_how_to_fix(js_assets, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNVIZ_JS_DIR", str(tmp_path / "none"))
    assert set(assets.status().values()) == {"missing"}
    with pytest.raises(FileNotFoundError, match=r"offline JS asset 'd3'.*python -m attnviz.assets install"):
        head_view(torch.full((1, 1, 2, 2), 0.5), ["a", "b"])
    copy = tmp_path / "copy"
    shutil.copytree(js_assets, copy)
    monkeypatch.setenv("ATTNVIZ_JS_DIR", str(copy))
    assert set(assets.status().values()) == {"ok"}
    (copy / "jquery.min.js").write_text("/* not jquery */")
    assert assets.status()["jquery"] == "corrupt"
    with pytest.raises(ValueError, match="sha256"):
        assets.read_asset("jquery")
    with pytest.raises(ValueError, match="unknown offline JS asset 'vue'"):
        assets.asset_path("vue")


FAKE_NPM = r'''#!{python}
# Stands in for `npm pack --json --silent --pack-destination DIR SPEC...`: writes npm-style tarballs.
import io, json, sys, tarfile
args = sys.argv[1:]
assert args[:3] == ["pack", "--json", "--silent"] and args[3] == "--pack-destination", args
dest, specs = args[4], args[5:]
out = []
for spec in specs:
    name, version = spec.rsplit("@", 1)
    fn = name.lstrip("@").replace("/", "-") + "-" + version + ".tgz"
    with tarfile.open(dest + "/" + fn, "w:gz") as tf:
        for path in {files}[name]:
            data = ("/* " + spec + " " + path + " */").encode()
            info = tarfile.TarInfo("package/" + path); info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out.append({{"name": name, "version": version, "filename": fn}})
print("npm notice something first")
print(json.dumps(out))
'''


def test_install_assets_with_a_stand_in_npm(tmp_path, monkeypatch):
    files = {a.package: [a.file, "README.md"] for a in assets.ASSETS.values()}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM.format(python=sys.executable, files=repr(files)))
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    dest = tmp_path / "share" / "js"
    monkeypatch.setenv("ATTNVIZ_JS_DIR", str(dest))

    assert assets.main(["install"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted([a.filename for a in assets.ASSETS.values()] + ["manifest.json"])
    assert assets.read_asset("embed-amd") == "/* @jupyter-widgets/html-manager@1.0.15 dist/embed-amd.js */"
    assert assets.asset_path("anywidget") == dest / "anywidget.js"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["assets"]["d3"]["version"] == "5.7.0" and len(manifest["assets"]["d3"]["sha256"]) == 64
    assert assets.main(["status"]) == 0
    assert list(tmp_path.joinpath("share").iterdir()) == [dest]        # no temporary folder left behind

    (dest / "require.js").write_text("broken")
    assert assets.status()["require"] == "corrupt"
    assert assets.main(["status"]) == 1
    assets.install_assets()                                              # repairs: not all ok
    assert assets.status()["require"] == "ok"

    npm.write_text("#!/bin/sh\necho 'npm error 404 Not Found' >&2\nexit 1\n")
    mtime = (dest / "manifest.json").stat().st_mtime_ns
    assert assets.install_assets() == dest                               # all ok: npm not even called
    with pytest.raises(RuntimeError, match="404 Not Found"):
        assets.install_assets(force=True)
    assert set(assets.status().values()) == {"ok"}                       # the old folder is untouched
    assert (dest / "manifest.json").stat().st_mtime_ns == mtime
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="not an attnviz asset folder"):
        assets.install_assets(stranger, force=True)
    assert (stranger / "notes.txt").read_text() == "mine"
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeError, match="npm not found"):
        assets.install_assets(tmp_path / "other")


# ---- in a real browser, offline ------------------------------------------------------------------
def _browser_or_skip():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api")


@pytest.mark.browser
def test_views_draw_offline_in_chromium(js_assets, tmp_path):
    sync_api = _browser_or_skip()
    layout = PromptPlacement("prefix", 20).layout(12)                     # L = 34
    L, layers, heads = layout.length, 2, 4
    words = ["[CLS]"] + "the prompt sits after cls and reads every token up to here".split() + ["[SEP]"]
    att = _attention(layers, heads, L, seed=3)
    hv = head_view(att, words, layout, layer=1)
    mv = model_view(att, words, layout)
    pages = {"head": hv.save(tmp_path / "head.html"), "model": mv.save(tmp_path / "model.html")}
    ARTIFACTS.mkdir(exist_ok=True)

    t0 = time.monotonic()
    external, failed, errors, console_errors = [], [], [], []

    route = offline_router(("file:", "about:", "data:"), external)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

            # head view: two token columns of L labels, heads * L * L lines, prompt labels red
            page.goto(pages["head"].as_uri())
            frame = page.frame_locator("iframe.attnviz-bertviz")
            frame.locator("svg text").nth(2 * L - 1).wait_for(timeout=15_000)
            inner = next(f for f in page.frames if f.url == "about:srcdoc")
            dom = inner.evaluate("""() => ({
                texts: Array.from(document.querySelectorAll('svg text')).map(t => t.textContent),
                fills: Array.from(document.querySelectorAll('svg text')).map(t => t.getAttribute('fill')),
                lines: document.querySelectorAll('#attention line').length,
                checkboxes: document.querySelectorAll('svg > g:last-child > rect').length,
                layer: document.querySelector('select#layer').value,
                bottom: document.getElementById('attnviz-root').getBoundingClientRect().bottom})""")
            assert dom["texts"] == list(hv.tokens) * 2
            assert dom["texts"][1:21] == [f"<p{j}>" for j in range(20)]
            prompt_fills = {dom["fills"][p] for p in layout.prompt_positions}
            assert prompt_fills == {TOKEN_COLORS["prompt"]}
            assert dom["fills"][0] == TOKEN_COLORS["cls"] and dom["fills"][L - 1] == TOKEN_COLORS["sep"]
            assert dom["fills"][21] is None                               # text tokens keep bertviz's colour
            assert dom["lines"] == heads * L * L and dom["checkboxes"] == heads and dom["layer"] == "1"
            assert page.evaluate("typeof window.require") == "undefined"  # require.js stayed in the iframe
            box = page.locator("iframe.attnviz-bertviz").bounding_box()
            assert abs(box["height"] - (dom["bottom"] + 12)) <= 2         # iframe fitted to its content
            page.screenshot(path=str(ARTIFACTS / "bertviz_head_view.png"), full_page=True)

            inner.select_option("select#layer", "0")                      # redraw: labels coloured again
            inner.wait_for_function("() => document.querySelector('select#layer').value === '0'"
                                    " && document.querySelectorAll('svg text').length > 0"
                                    f" && document.querySelectorAll('svg text')[1].getAttribute('fill') === '{TOKEN_COLORS['prompt']}'")

            # model view: one thumbnail per layer x head; a click opens the detail with coloured labels
            page.goto(pages["model"].as_uri())
            frame = page.frame_locator("iframe.attnviz-bertviz")
            frame.locator(".attn_background").nth(layers * heads - 1).wait_for(timeout=15_000)
            inner = next(f for f in page.frames if f.url == "about:srcdoc")
            assert inner.evaluate("document.querySelectorAll('.attn_background').length") == layers * heads
            assert inner.evaluate("document.querySelectorAll('svg line').length") == layers * heads * L * L
            inner.evaluate("""() => { const r = document.querySelectorAll('.attn_background')[0].parentNode.lastChild;
                                     r.dispatchEvent(new MouseEvent('click', {bubbles: true})); }""")
            inner.wait_for_function("document.querySelectorAll('text.token').length === %d" % (2 * L))
            inner.wait_for_function("document.querySelectorAll('text.token')[1].getAttribute('fill') === '%s'"
                                    % TOKEN_COLORS["prompt"])
            tokens = inner.evaluate("Array.from(document.querySelectorAll('text.token')).map(t => t.textContent)")
            assert tokens == list(mv.tokens) * 2
            page.screenshot(path=str(ARTIFACTS / "bertviz_model_view.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert not external and not failed, (external, failed)
    assert not console_errors, console_errors
    assert time.monotonic() - t0 < 60
