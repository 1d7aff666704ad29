"""attnviz.plots: figure data equals the library's numbers; hover names the right reason;
pooled views stay small at L = 4096."""

import re

import numpy as np
import plotly.graph_objects as go
import pytest

from attnviz import REASONS, AttentionPattern, PromptPlacement, build_masks, mask_reasons, spread
from attnviz.plots import mask_figure, save_html, spread_figure

MB2 = 2_000_000


def _allowed_codes(heat) -> set[int]:
    """z values whose colourbar label is an allowed reason."""
    return {i for i, t in enumerate(heat.colorbar.ticktext) if t in ("window", "global", "random block")}


# ---- mask figure -----------------------------------------------------------------------------------
def test_full_resolution_mask_equals_build_masks_and_reasons():
    layout = PromptPlacement("prefix", 3).layout(20)  # L = 25
    pattern = AttentionPattern(window=(4, 8), global_positions=(0,), random_blocks=1, block_size=5, seed=1)
    fig = mask_figure(pattern, layout, layer=1, num_layers=2)
    heat = fig.data[0]
    assert list(heat.meta) == [1]
    z = np.asarray(heat.z)
    assert z.shape == (25, 25)
    allowed = np.isin(z, list(_allowed_codes(heat)))
    assert np.array_equal(allowed, build_masks(pattern, layout, 2)[1].numpy())
    codes = mask_reasons(pattern, layout, 1).numpy()
    assert np.array_equal(np.asarray(heat.text, dtype=object), np.asarray(REASONS, dtype=object)[codes])
    assert np.array_equal(np.asarray(heat.x), np.arange(26) - 0.5)  # cell k is centred on k
    assert "query %{y} → key %{x}" in heat.hovertemplate


def test_hover_names_the_reason_of_hand_picked_cells():
    layout = PromptPlacement("prefix", 2).layout(12)  # [CLS] 0, prompt 1-2, text 3-14, [SEP] 15
    fig = mask_figure(AttentionPattern(window=4, global_positions=(0,)), layout)
    text = fig.data[0].text
    assert text[9][0] == "allowed: global"                # everyone attends [CLS]
    assert text[0][14] == "allowed: global"               # [CLS] attends everyone
    assert text[9][11] == "allowed: window"               # |9 - 11| <= 2
    assert text[9][12] == "blocked: outside the window"
    causal = mask_figure(AttentionPattern(window=3, causal=True), layout).data[0].text
    assert causal[5][7] == "blocked: future token (causal)"
    assert causal[5][3] == "allowed: window" and causal[5][2] == "blocked: outside the window"
    rnd = AttentionPattern(window=2, random_blocks=1, block_size=4, seed=0)
    table = rnd.random_block_table(0, layout.length)
    i, j = map(int, np.argwhere(table.numpy())[0])
    assert mask_figure(rnd, layout).data[0].text[4 * i][4 * j] == "allowed: random block"


def test_layer_slider_switches_between_distinct_layers():
    pattern = AttentionPattern(window=(4, 4, 8))
    fig = mask_figure(pattern, 30, num_layers=3)
    heats = [t for t in fig.data if t.name and t.name.startswith("layer")]
    assert [list(t.meta) for t in heats] == [[0, 1], [2]]      # identical layers share one view
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["0", "1", "2"]
    assert steps[2].args[0]["visible"][:2] == [False, True]
    assert "layer 2" in steps[2].args[1]["title.text"]
    assert "(same mask as layers 0–1)" in steps[0].args[1]["title.text"]


def test_pooled_mask_at_4096_by_hand_and_small():
    pattern = AttentionPattern(window=128, global_positions=(0,))
    fig = mask_figure(pattern, 4096, block=64)  # a plain length: no special tokens, no prompt
    heat = fig.data[0]
    z = np.asarray(heat.z)
    assert z.shape == (64, 64)
    assert z[5, 5] == 1.0 and z[5, 6] == z[6, 5] == 2080 / 4096 and z[5, 7] == 0.0
    assert z[0, 9] == z[9, 0] == 64 / 4096
    cd = np.asarray(heat.customdata)
    assert cd[1, 2, :4].tolist() == [64, 127, 128, 191]   # query and key block ranges in the hover
    assert "queries %{customdata[0]}–%{customdata[1]}" in heat.hovertemplate
    assert len(fig.to_json()) <= MB2


def test_pooled_mask_payload_with_six_distinct_layers():
    layout = PromptPlacement("prefix", 20).layout(4074)  # L = 4096
    pattern = AttentionPattern(window=(32, 32, 64, 64, 128, 128), global_prompt=True, random_blocks=2, block_size=64)
    fig = mask_figure(pattern, layout, num_layers=6)
    assert len([t for t in fig.data if t.meta is not None and t.type == "heatmap"]) == 6
    assert len(fig.to_json()) <= MB2
    assert "pooled to blocks of 64 tokens" in fig.layout.title.text  # aligned with the random blocks


# ---- spread figure ------------------------------------------------------------------------------
def test_spread_figure_equals_spread():
    layout = PromptPlacement("prefix", 4).layout(40)
    pattern = AttentionPattern(window=6)
    reach = spread(build_masks(pattern, layout, 3), layout.prompt_positions)
    fig = spread_figure(reach, layout, pattern=pattern)
    z = np.asarray(fig.data[0].z)
    r, f = reach.reached.numpy(), reach.first_layer.numpy()
    want = np.where(r, f[None, :] + 2, np.where(f[None, :] >= 0, 1, 0))
    assert np.array_equal(z, want)
    assert fig.data[1].x == tuple(reach.fraction_reached(l) for l in range(4))
    text = np.asarray(fig.data[0].text)
    assert text[0, 30] == "never reached within 3 layers"
    assert text[1, 9] == "not yet (first reached at layer 2)"     # prompt 1-4, 3 per layer: 5-7, 8-10
    assert text[3, 9] == "reached (first at layer 2)"
    assert "readout [CLS] at 0: reached at layer 1" in [t.name for t in fig.data]
    assert "window=6" in fig.layout.title.text


def test_pooled_spread_at_4096_by_hand_and_small():
    layout = PromptPlacement("start", 64).layout(4030)  # prompt 0-63, [CLS] 64, text 65-4094, [SEP] 4095
    pattern = AttentionPattern(window=100)  # 50 each side: after 1 layer 0..113, after 2 layers 0..163
    reach = spread(build_masks(pattern, layout, 2), layout.prompt_positions)
    fig = spread_figure(reach, layout, block=64)
    heat = fig.data[0]
    edges = np.asarray(heat.x) + 0.5
    # blocks of 64; the one-token [CLS] block is merged into its neighbour (no sub-pixel blocks)
    assert edges[:5].tolist() == [0, 64, 128, 192, 256] and len(edges) == 65
    cd = np.asarray(heat.customdata)
    assert cd[1, 1, :3].tolist() == [64, 127, 78]     # after 1 layer: 64..113 = 50 of 64 tokens
    assert cd[2, 2, :3].tolist() == [128, 191, 56]    # after 2 layers: 128..163 = 36 of 64 tokens
    z = np.asarray(heat.z)
    assert z[:, 2].tolist() == [1, 1, 4]              # not yet, not yet, first reached at layer 2
    assert z[:, 3].tolist() == [0, 0, 0]              # never
    strip = fig.data[2]
    assert strip.text[0][1] == "positions 64–127: [CLS], text"
    assert len(fig.to_json()) <= MB2


# ---- offline html -------------------------------------------------------------------------------
def test_save_html_is_one_self_contained_file(tmp_path):
    figs = [go.Figure(go.Bar(y=[1, 2])), go.Figure(go.Bar(y=[3]))]
    path = save_html(figs, tmp_path / "page.html", title="A <b> title", text="10 % & more")
    html = path.read_text()
    assert len(re.findall(r'class="plotly-graph-div"', html)) == 2
    assert not re.search(r"<script[^>]*src=[\"']?https?:", html)
    assert html.count("plotly.js v") >= 1 and len(html) > 3_000_000  # the bundle, inlined
    assert "<title>A &lt;b&gt; title</title>" in html and "10 % &amp; more" in html
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]  # no temporary file left behind
    with pytest.raises(ValueError, match="does not exist"):
        save_html(figs[0], tmp_path / "missing" / "x.html")


def test_training_curves_have_four_distinct_colours():
    """Issue 18: train loss and train accuracy shared one colour in the legend."""
    from attnviz.plots.training import TRACES, training_figure

    log = [{"step": s, "loss": 1 / s, "accuracy": 0.5, "eval": {"loss": 1.0, "accuracy": 0.6} if s == 2 else None}
           for s in (1, 2)]
    fig = training_figure(log, steps=2)
    assert [t.name for t in fig.data] == list(TRACES)
    colours = [t.line.color for t in fig.data]
    assert len(set(colours)) == 4 and [t.marker.color for t in fig.data] == colours
