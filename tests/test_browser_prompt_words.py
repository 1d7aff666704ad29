"""The influence explorer's "what the prompt says" table in a real JupyterLab (headless Chromium):
a checkpoint prompt made by hand from MiniLM's token embeddings reads back as those tokens at
cosine 1.000, every column drawn (plotly.js leaves table text that it must wrap blank when the
widget is drawn before it is on screen); switching the prompt box to ``vocab`` redraws the table
with the init's tokens. Offline; page errors, console errors and requests that leave 127.0.0.1
fail the test. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import time

import nbformat
import pytest
import torch

from test_browser_lab import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, lab  # noqa: F401  (the JupyterLab fixture)
from _browser import lab_origins, offline_router

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

WORDS = ".attnviz-words-figure.js-plotly-plot"
HAND_MADE = ["film", "champions", "silence"]          # prompt vector j = (j + 1.5) x the embedding of HAND_MADE[j]


def _cells_js(column: int) -> str:
    """The drawn texts of one column of the words table (plotly.js draws each cell as SVG text in
    blocks ``cells1`` / ``cells2``, the header in block ``header``)."""
    return (f"Array.from(document.querySelectorAll('{WORDS} .y-column')[{column}]"
            "?.querySelectorAll('.column-block[id^=cells] .column-cell text') ?? [])"
            ".map(t => t.textContent.replace(/\\u00a0/g, ' '))")


def test_prompt_words_table_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    from attnviz.models import load_model
    from attnviz.prompts.checkpoints import save_checkpoint, step_dir
    from attnviz.prompts.nearest import nearest_tokens

    base, token, root = lab
    model, tok, _ = load_model("default")
    emb = model.get_input_embeddings().weight.detach().float()
    ids = tok.convert_tokens_to_ids(HAND_MADE)
    weight = torch.stack([(j + 1.5) * emb[i] for j, i in enumerate(ids)])
    run = tmp_path / "hand-made"
    save_checkpoint(step_dir(run, 7), {"prompt.weight": weight}, {"step": 7})
    want = nearest_tokens(weight, model, tok, k=3, skip_special=False)
    assert [t[0] for t in want.tokens] == HAND_MADE and want.cosine[:, 0].tolist() == [1.0, 1.0, 1.0]
    from attnviz import PromptPlacement
    from attnviz.prompts import SoftPrompt

    vocab = nearest_tokens(SoftPrompt.init(model, tok, PromptPlacement("prefix", n_tokens=3), "vocab", seed=0).weight,
                           model, tok, k=3, skip_special=False)

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("from attnviz.notebook import setup\nprint(setup())"),
                nbformat.v4.new_code_cell("from attnviz.widgets import InfluenceExplorer\n"
                                          f"InfluenceExplorer(prompt={str(run)!r}, window=32, "
                                          "text='The champions won the cup final on Saturday.')")]
    nbformat.write(nb, root / "notebooks" / "prompt_words.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    external, errors, console = [], [], []

    route = offline_router(lab_origins(base), external)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2600})
            page.route("**/*", route)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.goto(f"{base}/lab/tree/notebooks/prompt_words.ipynb?token={token}")
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=90_000)
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has-text('Run All Cells')")
            page.wait_for_function(f"({_cells_js(3)}).length === 3", timeout=120_000)
            time.sleep(0.5)
            # every column drawn, with the numbers of nearest_tokens
            assert page.evaluate(_cells_js(0)) == ["0", "1", "2"]
            assert page.evaluate(_cells_js(1)) == ["1", "2", "3"]                 # after [CLS]
            assert page.evaluate(_cells_js(2)) == [f"{float(v):.2f}" for v in want.norm]
            near = page.evaluate(_cells_js(3))
            assert near == [",  ".join(f"{t} {float(c):.3f}" for t, c in zip(want.tokens[j], want.cosine[j]))
                            for j in range(3)]
            assert [n.split(",")[0] for n in near] == [f"{w} 1.000" for w in HAND_MADE]
            headers = page.evaluate(f"Array.from(document.querySelectorAll('{WORDS} .y-column'))"
                                    ".map(c => c.querySelector('.column-block#header .column-cell text')"
                                    ".textContent.replace(/\\u00a0/g, ' '))")
            assert headers == ["vector", "position", "norm", "nearest tokens (cosine)"]
            title = page.evaluate(f"document.querySelector('{WORDS}').layout.title.text")
            assert "hand-made, step 7" in title
            page.mouse.move(2, 2)
            page.locator(WORDS).screenshot(path=str(ARTIFACTS / "lab_prompt_words_hand_made.png"))

            # another prompt source: the table follows
            box = page.locator(".attnviz-prompt input")
            box.fill("vocab")
            box.press("Enter")
            page.wait_for_function(f"document.querySelector('{WORDS}').layout.title.text.includes('vocab init')",
                                   timeout=60_000)
            first = [f"{t[0]} 1.000" for t in vocab.tokens]                       # the init's own tokens
            assert first[0] != f"{HAND_MADE[0]} 1.000"
            page.wait_for_function(f"JSON.stringify(({_cells_js(3)}).map(t => t.split(',')[0])) === "
                                   f"{json.dumps(json.dumps(first, separators=(',', ':')))}", timeout=30_000)
            assert page.evaluate(_cells_js(2)) == [f"{float(v):.2f}" for v in vocab.norm]
            page.locator(WORDS).screenshot(path=str(ARTIFACTS / "lab_prompt_words_vocab.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "lab_prompt_words_failure.png"))
            print("page errors:", errors, "external:", external, "console:", console)
            raise
        finally:
            browser.close()
    assert not errors, errors
    assert not external, external
    assert not console, console
    print(json.dumps({"near": near}))
