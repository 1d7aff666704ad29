"""CostExplorer: controls in, the figure's numbers are attnviz.costs' numbers."""

import numpy as np
import pytest

from attnviz import AttentionPattern
from attnviz.costs import LayerCost, Measurement, attention_cost, cost_curves, curve_lengths, max_length_within
from attnviz.widgets import CostExplorer, CostSettings, cost_view
from attnviz.widgets.costs import measure_lengths

GiB = 2**30


def _trace(fig, name, axis="x"):
    return next(t for t in fig.data if t.name == name and t.xaxis == axis)


def test_curve_lengths():
    assert curve_lengths(1024, min_length=128, points=4) == (128, 256, 512, 1024)
    assert curve_lengths(100, min_length=128) == (100,)
    Ls = curve_lengths(32768)
    assert Ls[0] == 128 and Ls[-1] == 32768 and len(Ls) == 16 and list(Ls) == sorted(set(Ls))


def test_figure_data_equals_the_cost_functions():
    ex = CostExplorer(max_length=4096, budget_gib=0.5)
    ex.set(window=128, n_global=2, num_layers=4, num_heads=8, head_dim=32, batch=2, dtype="bfloat16",
           implementation="longformer")
    assert ex.error is None
    fig = ex.figures["cost"]
    Ls = curve_lengths(4096)
    window = AttentionPattern(window=128, global_positions=(0, 1))
    kw = dict(batch=2, dtype="bfloat16")
    dense = _trace(fig, "dense (full attention)")
    lf = _trace(fig, "windowed, Longformer kernel")
    assert list(dense.x) == list(Ls) == list(lf.x)
    for i, L in enumerate(Ls):
        d = attention_cost(None, L, 4, 8, 32, implementation="dense", **kw)
        w = attention_cost(window, L, 4, 8, 32, implementation="longformer", **kw)
        assert dense.y[i] == d.peak_bytes / GiB and lf.y[i] == w.peak_bytes / GiB
    # hand check at L=4096: dense bf16 mask L²·2 + scores and probs 2·B·H·L²·2 = 32 MiB + 1 GiB
    assert dense.y[-1] * GiB == 4096**2 * 2 + 2 * 2 * 8 * 4096**2 * 2
    # time panel: FLOPs / (50 GFLOP/s); dense forward 4·B·H·d·L² per layer
    t = _trace(fig, "windowed, Longformer kernel", "x2")
    assert t.showlegend is False
    dense_t = next(tr for tr in fig.data if tr.xaxis == "x2" and tr.legendgroup == "dense" and tr.mode == "lines+markers")
    assert dense_t.y[-1] == 4 * 4 * 2 * 8 * 32 * 4096**2 / 50e9
    # the budget line and where dense stops fitting 0.5 GiB
    budget = _trace(fig, "budget 512 MiB")
    assert list(budget.y) == [0.5, 0.5]
    limit = max_length_within(GiB // 2, num_heads=8, head_dim=32, num_layers=4, implementation="dense", **kw)
    marks = _trace(fig, "stops fitting")
    assert limit == ex.result.curves.limits["dense"] and list(marks.x) == [limit]
    assert 0 < limit < 4096
    assert attention_cost(None, limit, 4, 8, 32, **kw).peak_bytes <= GiB // 2 < \
        attention_cost(None, limit + 1, 4, 8, 32, **kw).peak_bytes
    assert "dense fits 0.5 GiB up to L=" + f"{limit:,}" in ex.summary.value


def test_controls_redraw_and_training_doubles_nothing_silently():
    ex = CostExplorer(max_length=2048, budget_gib=0, window=256, implementation="sparse")
    before = list(_trace(ex.figures["cost"], "windowed, ideal band (sparse)").y)
    ex.set(backward=True)
    after = list(_trace(ex.figures["cost"], "windowed, ideal band (sparse)").y)
    p = AttentionPattern(window=256, global_positions=(0,))
    assert after[-1] * GiB == attention_cost(p, 2048, 12, 12, 64, implementation="sparse", backward=True).peak_bytes
    assert after[-1] > before[-1]
    assert _trace(ex.figures["cost"], "budget").x == ()   # no budget: no line
    assert "training" not in ex.result.parts.layout["title"]["text"] and "forward + backward" in \
        ex.figures["cost"].layout.title.text
    # random blocks change the windowed curve exactly as cost_curves says
    ex.set(random_blocks=2, block_size=64, max_length=1024)
    c = cost_curves(AttentionPattern(window=256, global_positions=(0,), random_blocks=2, block_size=64), 1024, 12, 12,
                    64, backward=True)
    assert list(_trace(ex.figures["cost"], "windowed, ideal band (sparse)").y) == [b / GiB for b in c.peak_bytes["sparse"]]
    # the length slider is logarithmic, on powers of two: 2^13.4 -> 8192
    assert ex.controls["max_length"].step == 1
    ex.controls["max_length"].value = 2**13.4
    assert ex.result.curves.lengths[-1] == 8192


def test_bad_settings_are_shown_not_raised():
    ex = CostExplorer()
    good = list(ex.figures["cost"].data[0].y)
    ex.set(implementation="longformer", random_blocks=1)
    assert "has no random blocks" in ex.error and "Cannot draw this" in ex.message.value
    assert list(ex.figures["cost"].data[0].y) == good
    ex.set(random_blocks=0, window=7, implementation="sparse")
    assert "must be even" in ex.error
    with pytest.raises(ValueError, match="unknown dtype 'float64'"):
        cost_view(CostSettings(dtype="float64"))
    with pytest.raises(TypeError, match="unknown setting"):
        CostExplorer(windw=3)


def test_measured_points_are_overlaid():
    # measured points (here made by hand: the real run is exercised in test_costs) land on the figure
    ex = CostExplorer(max_length=2048, implementation="longformer", num_layers=3)
    assert measure_lengths(ex.settings()) == (512, 1024, 2048)
    s = ex.settings()
    pred = attention_cost(s.pattern(), 1024, 3, 12, 64, implementation="longformer").per_layer[0]
    m = Measurement(backend="longformer", device="cpu", dtype="float32", length=1024, batch=1, num_heads=12,
                    head_dim=64, backward=False, layer=0, seconds=0.5, times=(0.5,), peak_bytes=pred.op_peak_bytes(),
                    predicted=pred, memory_method="test")
    ex.measured = (m,)
    ex.redraw()
    mem = _trace(ex.figures["cost"], "measured: longformer")
    assert list(mem.x) == [1024] and mem.y[0] == pred.op_peak_bytes() / GiB and "ratio 1.00" in mem.text[0]
    tim = next(t for t in ex.figures["cost"].data if t.name == "measured: longformer" and t.xaxis == "x2")
    assert tim.y[0] == 0.5 * 3
    assert "1 measured points" in ex.status.value
    ex.set(window=256)   # other settings: the old points no longer apply
    assert list(_trace(ex.figures["cost"], "measured: longformer").x) == []


@pytest.mark.slow
def test_measure_button_runs_real_measurements():
    ex = CostExplorer(max_length=256, window=64, implementation="longformer", num_layers=1, num_heads=4, head_dim=16)
    assert measure_lengths(ex.settings()) == (128, 256)
    ex.button.click()   # what a click in the notebook does: measure in a fresh process, then redraw
    assert ex.error is None, ex.error
    assert sorted((m.backend, m.length) for m in ex.measured) == [("dense", 128), ("dense", 256),
                                                                 ("longformer", 128), ("longformer", 256)]
    for m in ex.measured:
        pattern = None if m.backend == "dense" else ex.settings().pattern()
        cost = attention_cost(pattern, m.length, 1, 4, 16, implementation=m.backend)
        assert m.predicted == cost.per_layer[0] and m.seconds > 0
    lf = _trace(ex.figures["cost"], "measured: longformer")
    assert list(lf.x) == [128, 256]
    assert not ex.button.disabled and "4 measured points" in ex.status.value


def test_default_shows_what_windows_buy_and_the_summary_speaks_the_controls():
    ex = CostExplorer()
    s = ex.settings()
    assert (s.window, s.implementation, s.n_global) == (512, "flex", 1)
    c = ex.result.curves
    # windowed is never above dense, in memory or time, at any length shown
    assert all(w <= d for w, d in zip(c.peak_bytes["flex"], c.peak_bytes["dense"]))
    assert all(w <= d * 1.0001 for w, d in zip(c.seconds["flex"], c.seconds["dense"]))
    assert "window 512, 1 global token, run as flex" in ex.summary.value and "global 0" not in ex.summary.value
    ex.set(n_global=3)
    assert "3 global tokens" in ex.summary.value


def test_limit_labels_never_overlap_and_axes_have_clean_ticks():
    ex = CostExplorer(budget_gib=16, backward=True, implementation="longformer")
    fig = ex.figures["cost"]
    notes = [a for a in fig.layout.annotations if "fits" in a.text]
    assert [a.text.split("</b>")[0] for a in notes] == ["<b>dense", "<b>longformer"]
    ys = sorted(a.y for a in notes)
    assert all(b - a >= 0.08 for a, b in zip(ys, ys[1:]))        # stacked lines, one per implementation
    assert all(a.xref == "x domain" and a.font.size >= 14 for a in notes)
    assert not any(t.mode and "text" in t.mode for t in fig.data)  # no text on markers to collide
    x = list(fig.layout.xaxis.tickvals)
    assert all(v & (v - 1) == 0 for v in x) and list(fig.layout.xaxis.ticktext)[-1] == "16k"
    for ax in (fig.layout.yaxis, fig.layout.yaxis2):
        import math
        for v in ax.tickvals:
            m = v / 10 ** math.floor(math.log10(v) + 1e-9)
            assert round(m, 6) in (1, 2, 5)


def test_measure_says_why_not():
    from attnviz.widgets.costs import measure_plan
    stages, why = measure_plan(CostSettings(implementation="sparse"))
    assert [b for b, _ in stages] == ["dense"] and "idealised" in why
    stages, why = measure_plan(CostSettings(implementation="sdpa"))
    assert [b for b, _ in stages] == ["dense", "sdpa"] and why == ""
