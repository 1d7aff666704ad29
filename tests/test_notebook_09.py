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


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_mask_zoo_one_real_case_per_family():
    from attnviz import AttentionPattern

    nb, seconds = run_notebook("09_debugging_attention_masks.ipynb", timeout=600)
    text = output_text(nb)
    # Llama 4, native: chunk per layer read from the config, equal to the model's attention
    assert "pattern_of(model): full causal attention, chunk=16,16,16,none | chunk per layer: (16, 16, 16, None)" in text
    assert "real attention == build_masks in all 4 layers: True" in text
    start = PromptPlacement("prefix", n_tokens=4).layout(text_len=44, cls=False, sep=False)
    chunk = next(f for f in diagnose(tiny_model("llama4", attention_chunk_size=16), start) if f.kind == "chunk")
    assert chunk.message.startswith("chunked attention: only chunk 1 (chunks of 16 positions")
    assert f"[chunk] {chunk.message} \n   fix: {chunk.fix}" in text
    # sinks, documents, prefix-LM through with_pattern: real attention equals build_masks each time
    assert text.count(": real attention == build_masks in every layer: True") == 5
    infix = PromptPlacement("infix", n_tokens=4, at=12).layout(text_len=40, cls=False, sep=False)
    mistral = tiny_model("mistral")
    for pattern, kind in [(AttentionPattern(window=8, causal=True, sinks=4), "sink"),
                          (AttentionPattern(causal=True, documents=(20, 24)), "documents"),
                          (AttentionPattern(causal=True, prefix_lm=14), "prefix")]:
        (f,) = [f for f in diagnose(mistral, infix, pattern=pattern) if f.kind == kind]
        assert f"  [{kind}] {f.message} \n     fix: {f.fix}" in text
    assert "the prompt sits outside the sink" in text and "each document needs its own prompt" in text
    assert "the prompt is bidirectional among itself only if it lies in the prefix" in text
