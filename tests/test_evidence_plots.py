"""attnviz.plots.evidence: the figures draw the numbers of the rows they are given."""

import pytest
import torch

from attnviz.plots.evidence import interval_figure, position_figure, prompt_words_figure
from attnviz.prompts.nearest import PromptWords


def _row(key, acc, low, high, *, window=32, glob=True, pos=None, kind="prompt", infl=0.5):
    return {"key": key, "kind": kind, "window": window, "global_prompt": glob, "placement": "prefix", "position": pos,
            "accuracy": acc, "low": low, "high": high, "interval": "bootstrap", "seeds": [0, 1, 2], "n_test": 200,
            "influence_cls": None if kind == "head_only" else infl}


def test_interval_figure_error_bars_are_the_rows_intervals():
    rows = [_row("a", 0.8, 0.7, 0.85), _row("b", 0.3, 0.25, 0.4, glob=False)]
    fig = interval_figure(rows, chance=0.235)
    bars = {b.name: b for b in fig.data}
    on, off = bars["prefix, global on"], bars["prefix, global off"]
    assert on.x == (0.8,) and on.error_x.array == pytest.approx((0.05,)) and on.error_x.arrayminus == pytest.approx((0.1,))
    assert off.x == (0.3,) and off.error_x.array == pytest.approx((0.1,))
    assert "bootstrap" in fig.layout.title.text


def test_position_figure_lines_and_zero_influence():
    rows = [_row(f"w32-g-pos{p}", a, a - 0.05, a + 0.05, pos=p, infl=i) for p, a, i in ((0.0, 0.9, 0.4), (1.0, 0.85, 0.3))]
    rows += [_row(f"w32-pos{p}", a, a - 0.05, a + 0.05, pos=p, glob=False, infl=i) for p, a, i in ((0.0, 0.8, 0.2), (1.0, 0.24, 0.0))]
    rows += [_row(f"w32-h-pos{p}", 0.5, 0.45, 0.55, pos=p, kind="head_only") for p in (0.0, 1.0)]
    fig = position_figure(rows)
    acc = {t.name: t for t in fig.data if t.xaxis == "x"}
    assert set(acc) == {"w32 global on", "w32 global off", "w32 head only"}
    assert acc["w32 global off"].x == (0.0, 1.0) and acc["w32 global off"].y == (0.8, 0.24)
    infl = [t for t in fig.data if t.xaxis == "x2"]
    off = next(t for t in infl if t.name == "w32 global off")
    assert off.y[1] == pytest.approx(0.2 / 3)               # exactly 0: drawn at the floor, named in the hover
    assert "never reaches" in off.customdata[1][1]


def test_prompt_words_figure_shows_tokens_and_cosines():
    w = [PromptWords(ids=torch.tensor([[5], [6]]), tokens=[["good"], ["film"]], cosine=torch.tensor([[1.0], [0.9]]),
                     norm=torch.tensor([1.0, 2.0]), embedding_norm=1.3, step=s) for s in (0, 5)]
    fig = prompt_words_figure(w)
    heat = fig.data[0]
    assert heat.text == (("good", "good"), ("film", "film")) or [list(r) for r in heat.text] == [["good", "good"], ["film", "film"]]
    assert list(heat.x) == ["0", "5"]
    assert list(fig.data[1].x) == [1.0, 2.0]
