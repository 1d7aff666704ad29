"""notebooks/09_debugging_attention_masks runs top to bottom (fast mode) and prints what diagnose finds."""

import pytest

from _notebooks import output_text, run_notebook
from attnviz import PromptPlacement
from attnviz.models import diagnose, tiny_model


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_debugging_notebook_finds_the_problems():
    nb, seconds = run_notebook("09_debugging_attention_masks.ipynb", timeout=600)
    text = output_text(nb)
    assert "pattern_of(model): window=8" in text
    assert "real attention of layer 0 == pattern's mask: True" in text
    assert "0 findings for the prefix prompt" in text
    # the infix prompt: the same finding the library gives, word for word
    longformer = tiny_model("longformer", attention_window=[8, 8])
    far = PromptPlacement("infix", n_tokens=4, at=30).layout(text_len=58)
    (reach,) = diagnose(longformer, far)
    assert reach.kind == "reach" and "positions 31, 32, 33, 34" in reach.message
    assert f"[reach] {reach.message}\n   fix: {reach.fix}" in text
    assert "global at: [31, 32, 33, 34]" in text and "findings with the global prompt: []" in text
    assert "[global-mask-length] global_attention_mask has 60 positions but the input has 64" in text
    # BigBird's sticky fallback
    assert "40 tokens: window=8, global 8 positions | model.attention_type = block_sparse" in text
    assert "(5 + 2*2)*4 = 36 tokens; this input has 36" in text
    assert "model.attention_type = original_full | config says block_sparse | attentions returned: 0" in text
    assert "40 tokens now: full attention" in text and "[bigbird-switched] fix:" in text
    assert "after the fix: window=8, global 8 positions | model.attention_type = block_sparse" in text
    # Mistral: a prompt at the start cannot reach the last token, a suffix can
    assert "pattern_of(model): causal window=8" in text
    assert "cannot reach the last token at position 43" in text and "moves at most 14 positions" in text
    assert "suffix prompt findings: []" in text
    assert text.count('class="plotly-graph-div"') == 3
