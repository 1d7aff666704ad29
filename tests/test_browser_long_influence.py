"""The influence explorer on a 16k-token input, in a real JupyterLab page (headless Chromium).

Above 2,048 positions the explorer's attention map and ablation influence take the tiled path
(exact probabilities on the pattern's non-empty tiles, O(L·w) memory). The page must draw both
figures for the whole input — the attention heatmap pooled with the prompt's rows and columns
exact, the influence map over all positions — equal to the Python figures, with no console error.

By default a tiny BERT (positions extended to 16,400) keeps this under a minute; set
``ATTNVIZ_LONG_MODEL=default`` to run the embedded MiniLM (positions copied to 16,400; minutes).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from test_browser_lab import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, lab  # noqa: F401  (lab: the fixture)
from test_browser_tour import SNAPSHOT_JS

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

TOKENS = 16_000
MODEL = os.environ.get("ATTNVIZ_LONG_MODEL", "tiny")

CODE = f"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, {str(os.path.dirname(__file__))!r})
import numpy as np, torch; torch.set_num_threads(2)
from attnviz.models import extend_positions, load_model, tiny_model
from attnviz.widgets import InfluenceExplorer
from _prompt_fixtures import tiny_tokenizer
if {MODEL!r} == "tiny":
    tok = tiny_tokenizer(Path("tok"))
    model = tiny_model("bert", num_hidden_layers=3, max_position_embeddings=16_400).eval()
    words = "the film was very good and the plot was fine but the food was poor"
else:
    model, tok, _ = load_model({MODEL!r}); extend_positions(model, 16_400, tokenizer=tok); model.eval()
    words = "the committee said on monday that the new rules would apply to every member state from next year"
text = " ".join([words] * ({TOKENS} // len(words.split()) + 1))
text = tok.convert_tokens_to_string(tok.tokenize(text)[:{TOKENS}])
t = time.time()
ie = InfluenceExplorer(model=model, tokenizer=tok, text=text, window=64, global_prompt=True, placement="prefix")
seconds = time.time() - t
r = ie.result
Path("probe.json").write_text(json.dumps({{"L": r.layout.length, "U": int(r.maps.values.shape[-1]),
    "kept": list(r.maps.kept), "prompt": list(r.layout.prompt_positions), "seconds": seconds, "influence_len": int(r.influence.values.shape[-1]),
    "attention_z": np.asarray(ie.figures["attention"].data[0].z, dtype=float).tolist(),
    "influence_cols": int(np.asarray(ie.figures["influence"].data[0].z).shape[-1])}}))
ie.view.add_class("long-influence")
ie
"""


def _same(a, b) -> bool:
    """One heatmap cell as the page holds it (NaN as None) and as Python computed it (float32 values)."""
    blank_a = a is None or a != a
    blank_b = b is None or b != b
    return (blank_a and blank_b) or (not blank_a and not blank_b and abs(a - b) <= 1e-6 * max(1.0, abs(b)))


def _notebook(root):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CODE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = root / "long_influence.ipynb"
    nbformat.write(nb, path)
    return path


def test_influence_explorer_draws_a_16k_token_input(lab):
    from playwright.sync_api import sync_playwright

    base, token, root = lab
    _notebook(root)
    ARTIFACTS.mkdir(exist_ok=True)
    errors, console = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.goto(f"{base}/lab/tree/long_influence.ipynb?token={token}")
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=90_000)
            t0 = time.monotonic()
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has-text('Run All Cells')")
            att_sel, inf_sel = ".attnviz-attention-figure.js-plotly-plot", ".attnviz-influence-figure.js-plotly-plot"
            page.wait_for_function(f"document.querySelector('{att_sel}')?.data?.length > 0 && "
                                   f"document.querySelector('{inf_sel}')?.data?.length > 0", timeout=800_000)
            drawn_after = time.monotonic() - t0
            page.wait_for_timeout(1000)
            att, inf = page.evaluate(SNAPSHOT_JS, att_sel), page.evaluate(SNAPSHOT_JS, inf_sel)
            shown = page.locator(".long-influence").inner_text()
            page.locator(".long-influence").screenshot(path=str(ARTIFACTS / f"long_influence_{MODEL}.png"))
        finally:
            browser.close()
    probe = json.loads((root / "probe.json").read_text())
    L, U = probe["L"], probe["U"]
    n = len(probe["prompt"])
    assert L == TOKENS + 2 + n and probe["influence_len"] == L               # [CLS] + prompt + text + [SEP]
    assert U < L and probe["kept"] == probe["prompt"] == list(range(1, n + 1))   # pooled, the prompt exact
    # the page drew what Python computed: the pooled attention heatmap and the influence map over all L
    z_page = att["data"][0]["z"]
    z_py = probe["attention_z"]
    assert len(z_page) == len(z_py) == U and len(z_page[0]) == U
    assert all(_same(a, b) for ra, rb in zip(z_page, z_py) for a, b in zip(ra, rb))
    assert len(inf["data"][0]["z"][0]) == probe["influence_cols"]            # pooled for display above 4k columns
    assert max(inf["data"][0]["x"]) >= L - 1                                 # ... over every position
    assert "tiled backend" in shown and f"L={L}" in shown                     # the explorer says which path ran
    assert not errors and not console, (errors, console)
    print(f"{MODEL}: L={L}, U={U}, explorer built in {probe['seconds']:.1f} s, page drawn after {drawn_after:.1f} s")
