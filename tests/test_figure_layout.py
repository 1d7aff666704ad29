"""Every figure of attnviz.plots, laid out by plotly.js in Chromium at notebook width: no text
leaves the figure, no text is smaller than 14 px, and titles, legends, colour bars, annotations
and axis labels never overlap one another.

Plotly.js does the layout in the browser (the Python figure has no geometry), so the check reads
the bounding boxes of the drawn SVG text through Playwright. More reliable than reading a kaleido
PNG: each text element is known by its role (legend, colour bar, axis, annotation, title).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import plotly
import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement, plain_layout, spread_pattern
from attnviz.costs import cost_curves
from attnviz.influence import prompt_influence
from attnviz.models import tiny_model
from attnviz.models.native import bigbird_global_positions
from attnviz.plots import (accuracy_figure, attribution_figure, cost_figure, influence_distance_figure,
                           influence_figure, mask_figure, mask_grid, reach_lines_figure, runs_figure, spread_figure,
                           spread_grid, training_figure)
from attnviz.plots._style import MIN_TEXT_PX, NOTEBOOK_WIDTH

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ATTNVIZ_ARTIFACTS", "/tmp/attnviz-figure-layout"))
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium at /usr/bin/chromium")


def _figures() -> dict:
    figs = {}
    prefix = PromptPlacement("prefix", n_tokens=20).layout(text_len=490)
    scattered = PromptPlacement("scattered", n_tokens=20, every=24).layout(text_len=490)
    causal = AttentionPattern(window=16, causal=True)
    figs["mask"] = mask_figure(AttentionPattern(window=32, global_prompt=True), prefix)
    figs["mask causal small"] = mask_figure(causal, plain_layout(30))
    figs["mask per layer"] = mask_figure(AttentionPattern(window=(16, 32, 64, 96, 128, None)), scattered, num_layers=6)
    figs["spread"] = spread_figure(spread_pattern(AttentionPattern(window=32), prefix, 6), prefix,
                                   pattern=AttentionPattern(window=32))
    figs["spread scattered"] = spread_figure(spread_pattern(AttentionPattern(window=32), scattered, 6), scattered)
    L = 64
    figs["mask grid"] = mask_grid({
        "full": AttentionPattern(window=None), "sliding (Longformer)": AttentionPattern(window=8),
        "dilated": AttentionPattern(window=8, dilation=2),
        "sliding + global [CLS]": AttentionPattern(window=8, global_positions=(0,)),
        "BigBird blocks": AttentionPattern(window=8, block_size=4, random_blocks=1,
                                           global_positions=bigbird_global_positions(4, L)),
        "causal sliding (Mistral)": AttentionPattern(window=8, causal=True)}, plain_layout(62), title="Six patterns")
    figs["spread grid"] = spread_grid({f"{name} · w32": (spread_pattern(AttentionPattern(window=32), lay, 6), lay)
                                       for name, lay in (("prefix", prefix), ("scattered", scattered))}, title="Reach")
    figs["accuracy"] = accuracy_figure({"head only": 0.25, "prefix": 0.25, "prefix + global": 0.89,
                                        "suffix + global": 0.9, "scattered + global": 0.76}, 100, chance=0.2,
                                       groups={"head only": "no prompt", "prefix": "local window",
                                               "prefix + global": "global prompt", "suffix + global": "global prompt",
                                               "scattered + global": "global prompt"})
    figs["reach lines"] = reach_lines_figure({
        "uniform 64": spread_pattern(AttentionPattern(window=64), prefix, 6),
        "small early, large late": spread_pattern(AttentionPattern(window=(16, 32, 48, 80, 96, 112)), prefix, 6),
        "window 64 + global prompt": spread_pattern(AttentionPattern(window=64, global_prompt=True), prefix, 6)})
    curves = cost_curves(AttentionPattern(window=512, global_positions=(0,)), 16384, 12, 12, 64,
                         implementations=("dense", "longformer"), backward=True, budget_bytes=16 * 2**30)
    figs["cost"] = cost_figure(curves)
    history = [{"step": s, "loss": 1.5 - s / 100, "accuracy": s / 120, "lr": 0.03} for s in range(1, 80)]
    history[39]["eval"] = {"loss": 1.1, "accuracy": 0.5}
    history[78]["eval"] = {"loss": 0.9, "accuracy": 0.7}
    figs["training"] = training_figure(history, steps=80)
    figs["runs"] = runs_figure({"prefix + global": history, "head only": history[:60]}, chance=0.2)
    model = tiny_model("bert", num_hidden_layers=3, initializer_range=0.2)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 120, (2, 40), generator=g)
    ids[:, 0], ids[:, -1] = 1, 2
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids))
    prompt = 0.5 * torch.randn(4, 32, generator=g)
    inf = prompt_influence(model, prompt, batch, AttentionPattern(window=4), PromptPlacement("prefix", 4))
    figs["influence"] = influence_figure(inf)
    figs["influence log"] = influence_figure(inf, log=True)
    figs["influence distance"] = influence_distance_figure(inf)
    grad = prompt_influence(model, prompt, batch, AttentionPattern(window=4), PromptPlacement("prefix", 4),
                            method="gradient")
    figs["attribution"] = attribution_figure(grad)
    # the evidence studies' figures (issue #15), drawn from the committed tables as the notebooks draw them
    from attnviz.notebook import load_results
    from attnviz.plots.evidence import interval_figure, position_figure, prompt_words_table
    from attnviz.prompts.nearest import nearest_tokens

    placement = [dict(r, key=r["key"].removesuffix("-pos1")) for r in load_results("placement_global_w128")["rows"]]
    figs["evidence intervals"] = interval_figure(placement, chance=0.235,
                                                 title="Placement × global prompt at window 128 (2026-12-04, 3 seeds × 200 articles)")
    figs["evidence position"] = position_figure(load_results("evidence_position")["rows"])
    figs["prompt words table"] = prompt_words_table(nearest_tokens(prompt, model, k=3), positions=(1, 2, 3, 4),
                                                    source="run, step 40")
    return figs


_MEASURE = """
async ([fig, minPx]) => {
  const div = document.getElementById('plot');
  await Plotly.newPlot(div, fig.data, fig.layout, {staticPlot: true});
  const W = div.querySelector('.main-svg').getBoundingClientRect();
  const role = el => {
    for (let e = el; e && e !== div; e = e.parentElement) {
      const c = e.getAttribute && (e.getAttribute('class') || '');
      if (/\\blegend\\b/.test(c)) return 'legend';
      if (/colorbar/.test(c)) return 'colorbar';
      if (/annotation/.test(c)) return 'annotation';
      if (/g-gtitle/.test(c)) return 'title';
      if (/g-[xy]\\d*title/.test(c)) return 'axis title ' + c;
      if (/[xy]\\d*tick/.test(c)) return 'ticks ' + c;
      if (/slider/.test(c)) return 'slider';
      if (/bartext|textpoint/.test(c)) return 'data';
    }
    return 'other';
  };
  const out = [];
  for (const t of div.querySelectorAll('text')) {
    if (!t.textContent.trim()) continue;
    const r = t.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const px = parseFloat(getComputedStyle(t).fontSize);
    const small = [...t.querySelectorAll('tspan')].map(s => parseFloat(getComputedStyle(s).fontSize) || px);
    out.push({text: t.textContent.slice(0, 60), role: role(t), px: Math.min(px, ...small),
              x0: r.left - W.left, y0: r.top - W.top, x1: r.right - W.left, y1: r.bottom - W.top});
  }
  return {width: W.width, height: W.height, texts: out};
}
"""


def _problems(name: str, m: dict) -> list[str]:
    bad = []
    for t in m["texts"]:
        if t["x0"] < -1 or t["y0"] < -1 or t["x1"] > m["width"] + 1 or t["y1"] > m["height"] + 1:
            bad.append(f"{name}: {t['role']} {t['text']!r} leaves the figure "
                       f"({t['x0']:.0f},{t['y0']:.0f})-({t['x1']:.0f},{t['y1']:.0f}) in {m['width']:.0f}x{m['height']:.0f}")
        if t["px"] < MIN_TEXT_PX - 0.01 and t["role"] != "data":
            bad.append(f"{name}: {t['role']} {t['text']!r} is {t['px']:.1f} px (< {MIN_TEXT_PX})")
    texts = [t for t in m["texts"] if t["role"] not in ("data", "other")]
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            if a["role"] == b["role"] and a["role"] in ("legend", "colorbar", "annotation"):
                same_group = a["role"] != "annotation"
                if same_group:
                    continue
            elif a["role"] == b["role"]:
                continue
            dx = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
            dy = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
            if dx > 2 and dy > 2:
                bad.append(f"{name}: {a['role']} {a['text']!r} overlaps {b['role']} {b['text']!r}")
    return bad


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_figure_fits_the_notebook_and_no_text_collides():
    from playwright.sync_api import sync_playwright

    figs = _figures()
    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--font-render-hinting=none"])
        page = browser.new_page(viewport={"width": 900, "height": 1200})
        page.set_content("<html><body style='margin:0;width:900px'><div id='plot'></div></body></html>")
        page.add_script_tag(path=str(js))
        for name, fig in figs.items():
            width = fig.layout.width
            assert width is not None and width <= NOTEBOOK_WIDTH, \
                f"{name}: width {width} does not fit the 790 px output area of a 900 px notebook"
            m = page.evaluate(_MEASURE, [json.loads(fig.to_json()), MIN_TEXT_PX])
            assert m["texts"], f"{name}: nothing drawn"
            problems += _problems(name, m)
            page.locator("#plot").screenshot(path=str(ARTIFACTS / f"{name.replace(' ', '_')}.png"))
        browser.close()
    assert not problems, "\n".join(problems)
