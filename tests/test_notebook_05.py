"""notebooks/05_nli runs top to bottom (fast mode): data lengths, the reach of prompt and hypothesis under
windows 64 / 256 / 512 (from the library's masks), label-word cues, and three training arms."""

import re

import pytest

from _notebooks import array, figures, notebook_fixtures
from attnviz import AttentionPattern, PromptPlacement, build_masks, spread


executed, text = notebook_fixtures("05_nli.ipynb")


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_lengths_and_reach_under_windows(text):
    assert re.search(r"pair length in tokens: median \d+, max \d+; hypothesis: median \d+", text)
    layout = PromptPlacement("prefix", n_tokens=20).layout(text_len=490)
    hypothesis = list(range(482, 511))
    for window, local_hits, local_back in [(64, "never", "never"), (256, "after layer 4", "after layer 4"),
                                           (512, "after layer 2", "after layer 2")]:
        # the library agrees with the printed line (worked out: 128 positions per layer each way at w=256)
        back = spread(build_masks(AttentionPattern(window=window), layout, 6), hypothesis).first_layer[0]
        assert (f"after layer {int(back)}" if back >= 0 else "never") == local_back
        assert (f"window {window:3d} local prompt : whole hypothesis reached by the prompt: {local_hits:13s} | "
                f"[CLS] reached by the hypothesis: {local_back}") in text
        # a global prompt relays: it reads the hypothesis in layer 1 and [CLS] reads it in layer 2
        assert (f"window {window:3d} global prompt: whole hypothesis reached by the prompt: {'after layer 1':13s} | "
                f"[CLS] reached by the hypothesis: after layer 2") in text


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_label_cues_and_three_arms(text):
    assert "prompt vector 0 = embedding of 'entailment'" in text
    assert "prompt vector 1 = embedding of 'neutral' (1 word piece): True" in text
    assert "prompt vector 2 = embedding of 'contradiction'" in text
    assert text.count("): True") >= 3 and "): False" not in text
    arms = dict(re.findall(r"^(head only|label-cue prompt \+ head|deep \[SEP\] prompt \+ head)\s+steps\s+4\s+"
                           r"held-out accuracy \d\.\d{3}\s+trainable\s+([\d,]+)", text, re.M))
    # head 384*3+3; + 20*384 prompt; deep: + 6 layers * 20 * 384
    assert arms == {"head only": "1,155", "label-cue prompt + head": "8,835", "deep [SEP] prompt + head": "54,915"}


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_figures_spread_under_window_64_and_the_three_arms(executed):
    spread_local, spread_global, runs, study = figures(executed)
    assert study["layout"]["title"]["text"].startswith("NLI study, full run of 2026-11-28")   # the results file, dated
    layout = PromptPlacement("prefix", n_tokens=20).layout(text_len=490)
    for fig, global_prompt in ((spread_local, False), (spread_global, True)):
        masks = build_masks(AttentionPattern(window=64, global_prompt=global_prompt), layout, 6)
        codes = spread(masks, layout.prompt_positions).first_layer
        z = array(fig["data"][0]["z"])
        assert z.shape == (7, layout.length)                                   # layers 0..6 x 512 positions
        # after layer 6: 0 = never reached, 2 + l = first reached at layer l (the library's numbers)
        assert z[-1].tolist() == [0 if f < 0 else 2 + int(f) for f in codes]
        # the last position ([SEP] after the hypothesis): never reached locally, at layer 1 when global
        assert z[-1, -1] == (3 if global_prompt else 0)
    names = [t["name"] for t in runs["data"] if not t["name"].endswith("held-out")]
    assert names[::2] == ["head only", "label-cue prompt + head", "deep [SEP] prompt + head"]


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_the_study_table_is_shown_and_says_what_the_prose_says(text):
    import json
    from pathlib import Path

    results = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/nli_study.json").read_text())
    rows = results["rows"]
    heads = [r["held-out acc"] for r in rows if r["arm"].startswith("head only")]
    deep = [r for r in rows if r["arm"].startswith("deep") and r["lr prompt / head"] == "0.01 / 0.01"]
    assert len(heads) == 8 and max(heads) == 0.441                      # 2 poolings x 4 step counts; the prose's 0.441
    assert sorted(r["held-out acc"] for r in deep) == [0.518, 0.521]      # two seeds, as the prose says
    assert min(r["held-out acc"] for r in deep) - max(heads) > 0.07
    assert "| deep prompt, mean pooling, 1,200 steps, seed 0 | 0.01 / 0.01 | 1 | 0.521 |" in text  # shown, rendered
    assert "Live demonstration (fast mode)" in text
