"""notebooks/04_layerwise_windows runs top to bottom (fast mode): per-layer reach equals spread_pattern,
measured influence equals prompt_influence, and the small-early advice is judged from those numbers."""

import pytest

from _notebooks import output_text, run_notebook
from attnviz import AttentionPattern, PromptPlacement, prompt_influence, spread_pattern
from attnviz.costs import attention_cost

SCHEDULES = {
    "uniform 64": AttentionPattern(window=64),
    "small early, large late": AttentionPattern(window=(16, 32, 48, 80, 96, 112)),
    "large early, small late": AttentionPattern(window=(112, 96, 80, 48, 32, 16)),
    "local-full alternation": AttentionPattern(window=(32, None, 32, None, 32, None)),
    "window 64 + global prompt": AttentionPattern(window=64, global_prompt=True),
}


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_layerwise_notebook():
    nb, seconds = run_notebook("04_layerwise_windows.ipynb", timeout=300)
    text = output_text(nb)
    layout = PromptPlacement("prefix", n_tokens=20).layout(text_len=1000)
    for name, p in SCHEDULES.items():
        r = spread_pattern(p, layout, 6)
        pairs = attention_cost(p, layout, 6, 12, 32, implementation="sparse").pairs
        shares = " ".join(f"{r.fraction_reached(l):6.1%}" for l in range(1, 7))
        assert f"{name:26s} {pairs:10,d}   {shares}" in text
    # the same sum of half-windows: the same final reach, whatever the order
    assert "final reach, all three: 20.8% | 20.8% | 20.8%" in text
    assert "small early, large late       390,452" in text and "large early, small late       390,452" in text

    # the measured rows equal prompt_influence on the same articles (fast mode: 3 articles, 192 tokens)
    from attnviz.models import load_model
    from attnviz.prompts import SoftPrompt
    from attnviz.tasks import load_documents

    model, tokenizer, _ = load_model("default")
    docs = load_documents("bbc", "test", limit=3, seed=0)
    batch = tokenizer(list(docs["text"]), truncation=True, max_length=192, padding=True, return_tensors="pt")
    prompt = SoftPrompt.init(model, tokenizer, PromptPlacement("prefix", n_tokens=20))
    name = "small early, large late"
    inf = prompt_influence(model, prompt, batch, SCHEDULES[name])
    per_layer = inf.mean[:, list(inf.layout.positions("text"))].mean(-1)
    assert per_layer[0] == 0.0                                   # the embeddings of the text do not see the prompt
    row = f"{name:26s}  " + " ".join(f"{v:.3f}" for v in per_layer.tolist()) + f"   {inf.mean[-1, 0]:.3f}"
    assert row in text
    # the two orderings the prose states hold in fast mode too
    assert "small early, large late gives the text the most prompt influence: True" in text
    assert "... and [CLS] the least: True" in text
    # section 4: the three schedules trained (window_schedules.json), the numbers the prose quotes
    for name, acc, interval, seeds in (("increasing (16 … 112)", "0.633", "0.245–0.882", "0.770 / 0.235 / 0.895"),
                                       ("uniform 64", "0.893", "0.843–0.940", "0.865 / 0.930 / 0.885"),
                                       ("decreasing (112 … 16)", "0.888", "0.845–0.928", "0.900 / 0.870 / 0.895")):
        assert f"| {name} | {acc} | {interval} | {seeds} |" in text
    assert "uniform 64 − decreasing (112 … 16)  +0.005  (-0.052 … +0.067)  not shown (interval includes 0)" in text
    prose = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Longformer's ordering does not hold here" in prose
    assert "Increasing 0.633 (0.245–0.882), uniform 0.893\n  (0.843–0.940), decreasing 0.888 (0.845–0.928)" in prose
    # reach lines, one spread, mask, influence, the schedules' intervals
    assert text.count('class="plotly-graph-div"') == 5
    print(f"04 ran in {seconds:.0f} s")
