"""notebooks/01_attention_windows runs top to bottom (fast mode) and prints the library's numbers."""

import pytest

from _notebooks import output_text, run_notebook
from attnviz import AttentionPattern, PromptPlacement, build_masks, describe, plain_layout, spread
from attnviz.costs import allowed_pairs, attention_cost
from attnviz.models.native import bigbird_global_positions


@pytest.fixture(scope="module")
def text():
    nb, seconds = run_notebook("01_attention_windows.ipynb", timeout=600)
    return output_text(nb)


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_patterns_costs_and_receptive_field(text):
    layout = plain_layout(62)
    bigbird = AttentionPattern(window=8, block_size=4, random_blocks=1, global_positions=bigbird_global_positions(4, 64))
    assert f"| BigBird blocks | `{describe(bigbird)}` | {allowed_pairs(bigbird, layout, 0)} |" in text
    assert "| sliding (Longformer) | `window=8` | 556 |" in text       # 64*9 - 2*(4+3+2+1)
    assert "| causal sliding (Mistral) | `causal window=8` | 484 |" in text   # 64*8 - 28
    assert "Six patterns on 64 tokens" in text
    # 1c, the Sparse Transformer as mask parts; by hand on 64 positions, stride 8: the causal window
    # 64*8 - 28 = 484; strided adds floor(q/8) keys per query (8 * (0+1+..+7) = 224); fixed = 8 blocks
    # of 36 + the same 224 block ends. Two layers from token 0: 15 tokens (2 windows) against all 64.
    assert "| causal window 8 alone | `causal window=8` | 484 | 15 |" in text
    assert "| strided (window ∪ every 8th) | `causal window=8, strided 8` | 708 | 64 |" in text
    assert "| fixed (blocks ∪ block ends) | `full causal attention, chunk=8, summary columns 1/8` | 512 | 64 |" in text
    assert "mask parts: strided, summary" in text
    full = attention_cost(None, 16384, 12, 12, 64)
    win = attention_cost(AttentionPattern(window=512), 16384, 12, 12, 64, implementation="sparse")
    assert f"| 16,384 | {full.pairs:,} | {win.pairs:,} | {full.peak_bytes / 2**20:,.0f} |" in text
    assert full.pairs == 12 * 16384 ** 2
    assert round(full.peak_bytes / 2**30) == 25 and win.peak_bytes < 2**30      # what the prose says
    text_layout = PromptPlacement("infix", n_tokens=1, at=500).layout(text_len=1000)
    (middle,) = text_layout.prompt_positions
    assert middle == 501                                            # [CLS] + 500 text tokens before it
    for w, d, reach in [(8, 1, 24), (32, 1, 96), (64, 1, 192), (32, 2, 192)]:
        r = spread(build_masks(AttentionPattern(window=w, dilation=d), text_layout, 6), [middle])
        hit = r.reached[-1].nonzero().flatten()
        assert hit.max().item() - middle == reach == middle - hit.min().item()
        assert (f"window {w:2d} dilation {d}: reaches {middle - reach}..{middle + reach}, {reach} positions each way; "
                f"layers x w/2 x dilation = {reach}") in text


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_global_attention_three_ways_match_the_pattern(text):
    assert "plain PyTorch mask == attnviz build_masks: True" in text
    assert "config: {'attention_window': [4, 8]}" in text
    assert "global_attention_mask: [[1, 1, 1, 0, 0," in text
    assert text.count("pattern_of(model) == pattern: True") == 2          # Longformer and Mistral
    assert text.count("largest attention outside the mask: 0.0") == 3     # Longformer, LED encoder, Mistral
    assert "every allowed pair gets attention:  True" in text
    assert "LED decoder pattern: full causal attention" in text
    assert "config: {'sliding_window': 8}" in text
    assert text.count('class="plotly-graph-div"') >= 4


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_mask_zoo_grid_with_a_prefix_prompt(text):
    from attnviz import spread_pattern

    layout = PromptPlacement("prefix", n_tokens=6).layout(text_len=56)
    zoo = {
        "prefix-LM over the prompt": AttentionPattern(causal=True, prefix_lm="prompt"),
        "causal window 8 + 4 sinks": AttentionPattern(window=8, causal=True, sinks=4),
        "chunks of 16 (Llama 4)": AttentionPattern(causal=True, chunk=16),
        "two packed documents (24, 40)": AttentionPattern(causal=True, documents=(24, 40)),
    }
    for name, p in zoo.items():
        share = spread_pattern(p, layout, 2).fraction_reached(2)
        assert f"| {name} | `{describe(p)}` | {allowed_pairs(p, layout, 0)} | {share:.0%} |" in text
    # what the prose says: only chunk 1 (positions 0-15) and only the first document (24) see the prompt
    assert spread_pattern(zoo["chunks of 16 (Llama 4)"], layout, 2).fraction_reached(2) == 15 / 64
    assert spread_pattern(zoo["two packed documents (24, 40)"], layout, 2).fraction_reached(2) == 23 / 64
    assert "The mask zoo on 64 positions with a 6-token prefix prompt" in text
