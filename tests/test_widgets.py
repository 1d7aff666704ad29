"""attnviz.widgets: setting a control redraws the figures with exactly the numbers of the dense
reference (build_masks, spread, mask_reasons); the interactive path is structural (it never calls
the dense functions, and its pooled views equal pooled dense ones); bad values show a message and
leave the figures alone; exports are self-contained and move without a kernel."""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys

import numpy as np
import plotly.io as pio
import pytest
import torch

import attnviz
from attnviz import REASONS, AttentionPattern, PromptPlacement, build_masks, mask_reasons, spread
from attnviz.patterns import GLOBAL, RANDOM, WINDOW
from attnviz.pooling import block_edges, pool_counts, pooled_reasons
from attnviz.widgets import PatternExplorer, PatternSettings, parse_ints, pattern_view

MB2 = 2_000_000


def _small(**kw) -> PatternExplorer:
    start = dict(text_len=40, n_tokens=4, window=8, num_layers=3)
    start.update(kw)
    return PatternExplorer(**start)


def _dense(settings: PatternSettings):
    pattern, layout = settings.pattern(), settings.layout()
    masks = build_masks(pattern, layout, settings.num_layers)
    return pattern, layout, masks, spread(masks, layout.prompt_positions)


def _check_against_dense(ex: PatternExplorer) -> None:
    """The live figures hold exactly what the dense reference says (full resolution, small L)."""
    assert ex.error is None, ex.error
    s = ex.settings()
    pattern, layout, masks, reach = _dense(s)
    L, n = layout.length, s.num_layers
    # spread view: heatmap codes (0 never, 1 not yet, 2 + l first reached at l) and per-layer shares
    heat, bars = ex.figures["spread"].data[0], ex.figures["spread"].data[1]
    r, f = reach.reached.numpy(), reach.first_layer.numpy()
    assert np.array_equal(np.asarray(heat.z), np.where(r, f[None, :] + 2, np.where(f[None, :] >= 0, 1, 0)))
    assert bars.x == tuple(reach.fraction_reached(l) for l in range(n + 1))
    # mask view of the selected layer: the allowed cells are the mask, the hover names each reason
    mask = ex.figures["mask"].data[0]
    z = np.asarray(mask.z)
    assert z.shape == (L, L)
    allowed_codes = [i for i, t in enumerate(mask.colorbar.ticktext) if t in ("window", "global", "random block",
                                                                           "full attention")]
    assert np.array_equal(np.isin(z, allowed_codes), masks[s.layer].numpy())
    codes = mask_reasons(pattern, layout, s.layer).numpy()
    assert np.array_equal(np.asarray(mask.text, dtype=object), np.asarray(REASONS, dtype=object)[codes])
    assert f"layer {s.layer}" in ex.figures["mask"].layout.title.text
    assert attnviz.describe(pattern) in ex.figures["spread"].layout.title.text
    assert reach.summary(readout=layout.readout_position) in ex.summary.value


# ---- every control redraws with the reference numbers ------------------------------------------
def test_window_slider_redraws_with_the_numbers_of_build_masks_and_spread():
    ex = _small()
    _check_against_dense(ex)
    before = np.asarray(ex.figures["spread"].data[0].z).copy()
    ex.controls["window"].value = 16
    assert ex.result.pattern.window == 16
    assert not np.array_equal(np.asarray(ex.figures["spread"].data[0].z), before)
    _check_against_dense(ex)
    # by hand: prefix prompt 1-4, window 16 = 8 each side: after 1 layer positions 0..12 are reached
    assert ex.figures["spread"].data[1].x[1] == float(np.float32(13 / 46))   # fraction_reached is float32
    assert "window=16" in ex.figures["mask"].layout.title.text


CHANGES = [
    dict(windows="4, 8, 16"),
    dict(layer=2),
    dict(windows="4,full,8", layer=1),
    dict(windows="", window=4, global_positions="0, 30"),
    dict(global_prompt=True),
    dict(global_positions="", global_prompt=False, placement="infix", at=20),
    dict(placement="scattered", every=7),
    dict(placement="suffix", dilation=2),
    dict(dilation=1, random_blocks=2, block_size=5, seed=3),
    dict(seed=4, layer=0),
    dict(random_blocks=0, causal=True, placement="start"),
    dict(causal=False, text_len=70, num_layers=5, layer=4),
    dict(num_layers=2),                       # the layer slider follows: layer 4 -> 1
    dict(n_tokens=9, window=None),            # full attention
]


@pytest.mark.parametrize("step", range(len(CHANGES)))
def test_each_control_redraws_with_the_reference_numbers(step):
    ex = _small()
    for change in CHANGES[:step + 1]:
        ex.set(**change)
    _check_against_dense(ex)


def test_one_control_at_a_time_is_wired():
    ex = _small(window=4)
    seen = []
    for name, value in [("causal", True), ("global_prompt", True), ("dilation", 3), ("text_len", 30),
                        ("num_layers", 4), ("layer", 3), ("n_tokens", 2), ("global_positions", "5"),
                        ("random_blocks", 1), ("block_size", 4), ("seed", 9), ("placement", "infix"), ("at", 7),
                        ("windows", "2,4,6,8")]:
        ex.controls[name].value = value                 # as a user would: one widget, one redraw
        assert getattr(ex.result.settings, name) == value
        seen.append(name)
        _check_against_dense(ex)
    assert ex.controls["layer"].max == 3 and not ex.controls["at"].disabled and ex.controls["every"].disabled
    assert ex.controls["window"].disabled                # per-layer windows override the slider


def test_segments_that_come_and_go_replace_the_traces():
    ex = _small()
    n = len(ex.figures["spread"].data)
    ex.set(text_len=0)                                   # no text segment: one legend entry less
    assert len(ex.figures["spread"].data) == n - 1
    _check_against_dense(ex)
    ex.set(text_len=25)
    assert len(ex.figures["spread"].data) == n
    _check_against_dense(ex)


def test_layer_slider_follows_the_number_of_layers():
    ex = _small(num_layers=6, layer=5)
    ex.controls["num_layers"].value = 3
    assert ex.controls["layer"].max == 2 and ex.controls["layer"].value == 2
    assert ex.error is None and ex.result.settings.layer == 2


# ---- structural = dense ------------------------------------------------------------------------
def test_pooled_views_equal_the_pooled_dense_reference():
    s = PatternSettings(text_len=300, n_tokens=20, window=32, global_positions="0", random_blocks=1, block_size=16,
                        num_layers=4, layer=2)
    view = pattern_view(s, mask_cells=40 * 40, spread_cells=5 * 80)
    pattern, layout, masks, reach = _dense(s)
    heat = view.mask.traces[0]
    edges = (np.asarray(heat.x) + 0.5).astype(int)
    assert len(edges) - 1 < layout.length                       # pooled, not one cell per pair
    counts = pool_counts(mask_reasons(pattern, layout, 2), tuple(edges))
    sizes = np.diff(edges)[:, None] * np.diff(edges)[None, :]
    allowed = (counts[WINDOW] + counts[GLOBAL] + counts[RANDOM]).numpy()
    assert np.array_equal(np.asarray(heat.z), (allowed / sizes).astype(np.float32))
    assert torch.equal(view.reach.reached, reach.reached) and torch.equal(view.reach.first_layer, reach.first_layer)
    sheat = view.spread.traces[0]
    share = np.asarray(sheat.customdata)                      # lean hover: share of each block reached
    sedges = (np.asarray(sheat.x) + 0.5).astype(int)
    assert len(sedges) - 1 < layout.length
    for i, (a, b) in enumerate(zip(sedges[:-1], sedges[1:])):
        assert np.array_equal(share[:, i], reach.reached[:, a:b].double().mean(1).float().numpy())
    full = pattern_view(s, mask_cells=40 * 40, spread_cells=5 * 80, lean=False)  # exports: exact ranges
    cd = np.asarray(full.spread.traces[0].customdata)
    assert cd[:, :, 0].tolist() == [sedges[:-1].tolist()] * 5 and cd[:, :, 1].tolist() == [(sedges[1:] - 1).tolist()] * 5
    mcd = np.asarray(full.mask.traces[0].customdata)
    assert mcd[3, 5, :4].tolist() == [edges[3], edges[4] - 1, edges[5], edges[6] - 1]


def _random_case(rng: random.Random):
    causal = rng.random() < 0.4
    w = rng.choice([None, 1, 2, 3, 4, 6, 8, 20, 64])
    w = w if w is None or causal or w % 2 == 0 else w + 1
    text = rng.randint(0, 60)
    kind = rng.choice(["prefix", "suffix", "infix", "scattered", "start"])
    kw = {"at": rng.randint(0, text)} if kind == "infix" else {"every": rng.randint(1, 5)} if kind == "scattered" else {}
    layout = PromptPlacement(kind, n_tokens=rng.randint(1, 4), **kw).layout(text, cls=rng.random() < .5,
                                                                          sep=rng.random() < .5)
    rb = rng.choice([0, 0, 1, 2, 3])
    pattern = AttentionPattern(
        window=w, causal=causal,
        global_positions=tuple(sorted({rng.randrange(layout.length) for _ in range(rng.randint(0, 3))})),
        global_prompt=rng.random() < 0.3, dilation=rng.choice([1, 1, 2, 3]),
        random_blocks=rb, block_size=rng.choice([1, 2, 3, 5, 8]) if rb else None, seed=rng.randint(0, 9))
    edges = block_edges(layout.length, rng.choice([1, 1, 2, 3, 7, 16]), layout if rng.random() < .5 else None)
    return pattern, layout, edges


@pytest.mark.parametrize("seed", range(4))
def test_structural_pooled_reasons_equal_dense_on_random_cases(seed):
    rng = random.Random(seed)
    for _ in range(60):
        pattern, layout, edges = _random_case(rng)
        want = pool_counts(mask_reasons(pattern, layout, 0), edges)
        for chunk in (None, 1, 7):
            assert torch.equal(pooled_reasons(pattern, layout, 0, edges, chunk=chunk).counts, want), (pattern, edges)


def test_the_interactive_path_never_builds_dense_masks(monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("the explorer called a dense (L, L) function")

    ex = PatternExplorer(text_len=3000, num_layers=6, window=64, global_positions="0")
    for module, name in [("attnviz.patterns", "build_masks"), ("attnviz.patterns", "mask_reasons"),
                         ("attnviz.spread", "spread"), ("attnviz", "build_masks"), ("attnviz", "spread")]:
        monkeypatch.setattr(sys.modules[module], name, forbidden)  # (attnviz.spread is also a function)
    for change in [dict(window=128), dict(global_prompt=True), dict(random_blocks=2, block_size=64),
                   dict(causal=True, layer=3), dict(windows="32,32,64,64,128,full")]:
        ex.set(**change)
        assert ex.error is None, ex.error
    assert "pooled to blocks" in ex.figures["mask"].layout.title.text


def test_payload_stays_under_2_mb_at_16k_tokens_and_24_layers():
    ex = PatternExplorer(text_len=16362, num_layers=24, window=64, global_prompt=True, random_blocks=2)
    assert ex.result.layout.length == 16384
    for fig in ex.figures.values():
        assert len(pio.to_json(fig, validate=False)) <= MB2
    ex.set(window=None, layer=23)
    assert sum(len(pio.to_json(f, validate=False)) for f in ex.figures.values()) <= MB2


# ---- bad values ----------------------------------------------------------------------------------
@pytest.mark.parametrize("change, says", [
    (dict(windows="33"), "must be even, got 33; try 32 or 34"),
    (dict(windows="32,64"), "2 entries (32,64) for 3 layers"),
    (dict(windows="32,abc,64"), "per-layer windows: 'abc' is not a number"),
    (dict(global_positions="0, 999"), "global positions [999] are outside [0, 46)"),
    (dict(global_positions="x"), "global positions: 'x' is not a number"),
    (dict(placement="infix", at=41), "infix at=41 is beyond the text (40 tokens)"),
    (dict(text_len=131_072), "at most 131072"),
])
def test_bad_values_show_a_message_and_keep_the_figures(change, says):
    ex = _small()
    before = [np.asarray(f.data[0].z).copy() for f in ex.figures.values()]
    ex.set(**change)
    assert ex.error is not None and says in ex.error
    assert "Cannot draw this" in ex.message.value and "Traceback" not in ex.message.value
    assert says.replace("'", "&#x27;") in ex.message.value                 # escaped into the page
    assert all(np.array_equal(np.asarray(f.data[0].z), b) for f, b in zip(ex.figures.values(), before))
    ex.set(windows="", global_positions="", placement="prefix", text_len=40)
    assert ex.error is None and ex.message.value == ""
    _check_against_dense(ex)


def test_bad_starting_values_raise_with_the_reason():
    with pytest.raises(ValueError, match="must be even"):
        PatternExplorer(window=33)
    with pytest.raises(TypeError, match="unknown setting"):
        PatternExplorer(windw=32)


def test_parse_ints():
    assert parse_ints(" 32, 32,64 ", "w") == (32, 32, 64)
    assert parse_ints("full, 8", "w", allow_none=True) == (None, 8)
    assert parse_ints("", "w") == ()
    with pytest.raises(ValueError, match="'full' is not a number"):
        parse_ints("full", "positions")
    with pytest.raises(ValueError, match="-1 is below 0"):
        parse_ints("-1", "positions", minimum=0)


# ---- debouncing, display ----------------------------------------------------------------------
def test_a_burst_of_changes_in_a_running_loop_redraws_once(monkeypatch):
    ex = _small()
    calls = []
    compute = ex.compute
    monkeypatch.setattr(ex, "compute", lambda s: calls.append(s) or compute(s))

    async def drag():
        for w in (16, 32, 64):                        # three changes within the debounce time
            ex.controls["window"].value = w
        assert calls == []                            # nothing computed yet: the UI stays free
        await asyncio.sleep(ex.debounce * 4)

    asyncio.run(drag())
    assert len(calls) == 1 and calls[0].window == 64
    _check_against_dense(ex)


def test_explore_pattern_shows_the_explorer_once(monkeypatch):
    import IPython.display

    from attnviz import explore

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    ex = explore.pattern(window=64, text_len=100)
    assert isinstance(ex, PatternExplorer) and shown == [ex.view]
    assert ex.result.pattern.window == 64


# ---- export ------------------------------------------------------------------------------------
def _figures_in(html: str) -> list[dict]:
    """The (data, layout) of every Plotly.newPlot call in an exported page."""
    out = []
    for m in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"displaylogo"', html, re.S):
        out.append({"data": json.loads(m.group(1)), "layout": json.loads(m.group(2))})
    return out


def _decode(v):
    if isinstance(v, dict) and "bdata" in v:
        import base64

        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return arr.reshape([int(x) for x in v["shape"].split(",")]) if "shape" in v else arr
    return np.asarray(v)


def test_export_html_is_offline_and_its_sliders_move_between_windows(tmp_path):
    ex = _small(window=16)
    path = ex.export_html(tmp_path / "explorer.html")
    assert [p.name for p in tmp_path.iterdir()] == ["explorer.html"]          # atomic: no temp file left
    html = path.read_text()
    assert not re.search(r"<script[^>]*src=[\"']?https?:", html)             # plotly.js inlined, no CDN
    assert html.count("plotly.js v") >= 1
    figs = _figures_in(html)
    assert len(figs) == 2
    spread_fig, mask_fig = figs
    steps = spread_fig["layout"]["sliders"][0]["steps"]
    assert [s["label"] for s in steps] == ["2", "4", "8", "16", "32", "64", "128"]
    assert spread_fig["layout"]["sliders"][0]["active"] == 3
    assert all(s["method"] == "update" for s in steps)
    data = spread_fig["data"]
    for k, step in enumerate(steps):               # each step shows the spread of its own window
        w = int(step["label"])
        visible = step["args"][0]["visible"]
        heats = [i for i, t in enumerate(data) if t.get("name") == "spread" and visible[i]]
        assert len(heats) == 1
        _, layout, _, reach = _dense(PatternSettings(**{**ex.settings().__dict__, "window": w}))
        r, f = reach.reached.numpy(), reach.first_layer.numpy()
        assert np.array_equal(_decode(data[heats[0]]["z"]), np.where(r, f[None, :] + 2, np.where(f[None, :] >= 0, 1, 0)))
        assert f"window={w}" in step["args"][1]["title.text"]
    mask_steps = mask_fig["layout"]["sliders"][0]["steps"]
    assert len(mask_steps) == 7 and "window=64" in mask_steps[5]["args"][1]["title.text"]
    assert ex.error is None


def test_export_with_per_layer_windows_has_no_window_slider(tmp_path):
    ex = _small(windows="4,8,16")
    html = ex.export_html(tmp_path / "e.html").read_text()
    assert all("sliders" not in f["layout"] for f in _figures_in(html))
    ex.set(windows="5,8,16")
    with pytest.raises(ValueError, match="must be even"):
        ex.export_html(tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists()


def test_export_image_refuses_what_it_cannot_write(tmp_path):
    ex = _small()
    with pytest.raises(ValueError, match="end it in .png, .svg or .pdf"):
        ex.export_image(tmp_path / "figure.txt")
    with pytest.raises(ValueError, match="unknown figure 'heads'; figures: spread, mask"):
        ex.export_image(tmp_path / "f.png", figure="heads")
    with pytest.raises(ValueError, match="does not exist"):
        ex.export_image(tmp_path / "missing" / "f.png")
    assert list(tmp_path.iterdir()) == []
