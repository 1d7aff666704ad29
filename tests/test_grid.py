"""Small multiples and result charts: each panel shows the library's numbers."""

import numpy as np
import pytest

from attnviz import AttentionPattern, PromptPlacement, REASONS, mask_reasons, plain_layout, spread_pattern
from attnviz.plots import accuracy_figure, grid, mask_grid, reach_lines_figure, spread_grid, wilson_interval


def test_mask_grid_panels_are_the_masks_with_one_colour_scale():
    layout = plain_layout(30)
    patterns = {"window 8": AttentionPattern(window=8), "global [CLS]": AttentionPattern(window=8, global_positions=(0,)),
                "causal": AttentionPattern(window=8, causal=True)}
    fig = mask_grid(patterns, layout)
    heats = [t for t in fig.data if t.type == "heatmap"]
    assert len(heats) == 3 and [a.text for a in fig.layout.annotations] == list(patterns)
    assert sum(bool(t.showscale is not False) for t in heats) == 1          # one colour bar for all panels
    ticks = list(heats[0].colorbar.ticktext)                                 # the shared legend of reasons
    for heat, p in zip(heats, patterns.values()):
        codes = mask_reasons(p, layout, 0).numpy()
        codes = codes[0] if codes.ndim == 3 else codes
        names = np.asarray(REASONS, dtype=object)[codes]
        shown = np.asarray(ticks, dtype=object)[np.asarray(heat.z, dtype=int)]
        # each cell's colour index names the cell's reason (the window label reads "window" here)
        assert np.array_equal(np.asarray(heat.text, dtype=object), names)
        assert {s.split(" ")[0] for s in shown.ravel()} <= {"window", "global", "blocked", "future", "random"}
    assert (fig.layout.width or 0) <= 900


def test_spread_grid_needs_one_layer_count_and_draws_each_spread():
    a = PromptPlacement("prefix", n_tokens=4).layout(text_len=60)
    s1, s2 = spread_pattern(AttentionPattern(window=8), a, 3), spread_pattern(AttentionPattern(window=8), a, 4)
    with pytest.raises(ValueError, match="one number of layers"):
        spread_grid({"a": (s1, a), "b": (s2, a)})
    fig = spread_grid({"a": (s1, a), "b": (spread_pattern(AttentionPattern(window=16), a, 3), a)})
    z = np.asarray(fig.data[0].z)
    assert z.shape == (4, a.length)
    f = s1.first_layer.numpy()
    assert z[-1].tolist() == [0 if v < 0 else 2 + int(v) for v in f]


def test_grid_rejects_mismatched_titles():
    with pytest.raises(ValueError, match="2 titles for 1 panels"):
        grid([[]], titles=["a", "b"])


def test_wilson_interval_by_hand():
    lo, hi = wilson_interval(5, 10)
    assert abs(lo - 0.2366) < 1e-4 and abs(hi - 0.7634) < 1e-4
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and abs(hi - 0.2775) < 1e-4                             # not zero-width at 0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_accuracy_figure_bars_and_whiskers_from_the_counts():
    fig = accuracy_figure({"a": 0.5, "b": 0.9}, 100, chance=0.25, groups={"a": "x", "b": "y"})
    bars = {t.x[0]: t for t in fig.data}
    lo, hi = wilson_interval(90, 100)
    assert bars["b"].y[0] == 0.9 and abs(bars["b"].error_y.array[0] - (hi - 0.9)) < 1e-12
    assert abs(bars["b"].error_y.arrayminus[0] - (0.9 - lo)) < 1e-12
    h = accuracy_figure({"a": 0.5}, 10, horizontal=True)
    assert h.data[0].orientation == "h" and h.data[0].y[0] == "a"


def test_reach_lines_are_the_shares_reached():
    layout = PromptPlacement("prefix", n_tokens=4).layout(text_len=100)
    s = spread_pattern(AttentionPattern(window=8), layout, 5)
    fig = reach_lines_figure({"w8": s})
    assert list(fig.data[0].y) == [s.fraction_reached(l) for l in range(6)]
