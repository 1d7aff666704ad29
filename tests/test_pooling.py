"""attnviz.pooling: block views equal pooling the dense reference exactly."""

import itertools

import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement, build_masks, mask_reasons, spread
from attnviz.patterns import BLOCKED, FUTURE, GLOBAL, WINDOW
from attnviz.pooling import block_edges, pool_counts, pool_spread, pooled_reasons

PATTERNS = [
    AttentionPattern(window=8),
    AttentionPattern(window=6, causal=True),
    AttentionPattern(window=4, dilation=2, global_positions=(0,)),
    AttentionPattern(window=4, global_prompt=True, random_blocks=2, block_size=8, seed=3),
    AttentionPattern(window=5, causal=True, random_blocks=1, block_size=8, dilation=3, global_positions=(7,)),
    AttentionPattern(window=None, causal=True, global_prompt=True),
    AttentionPattern(window=(4, None), global_positions=(3, 50)),
]
LAYOUTS = [
    PromptPlacement("prefix", 5).layout(90),
    PromptPlacement("scattered", 6, every=13).layout(80),
    PromptPlacement("suffix", 3).layout(70),
]


@pytest.mark.parametrize("pattern", PATTERNS, ids=[f"p{i}" for i in range(len(PATTERNS))])
def test_pooled_reasons_equal_pooled_dense_reasons(pattern):
    for layout, layer, block in itertools.product(LAYOUTS, (0, 1), (1, 7)):
        edges = block_edges(layout.length, block, layout)
        want = pool_counts(mask_reasons(pattern, layout, layer), edges)
        for chunk in (5, 64):
            got = pooled_reasons(pattern, layout, layer, edges, chunk=chunk).counts
            assert torch.equal(got, want), (layout.length, layer, block, chunk)


def test_pooled_fraction_by_hand_at_4096():
    # window 128 = 64 each side, blocks of 64, global position 0, no special tokens.
    pm = pooled_reasons(AttentionPattern(window=128, global_positions=(0,)), 4096, 0, block=64)
    f = pm.fraction
    assert f.shape == (64, 64)
    assert f[5, 5] == 1.0                        # same block: |q - k| <= 63
    assert f[5, 6] == f[6, 5] == 2080 / 4096     # neighbours: pairs with k - q <= 64: 1 + 2 + ... + 64
    assert f[5, 7] == 0.0
    assert f[0, 9] == f[9, 0] == 64 / 4096       # only the global row / column 0
    assert int(pm.counts[GLOBAL, 0, 9]) == 64 and int(pm.counts[BLOCKED, 0, 9]) == 4096 - 64
    assert int(pm.sizes.sum()) == 4096 * 4096 == int(pm.counts.sum())


def test_causal_future_is_counted():
    pm = pooled_reasons(AttentionPattern(window=4, causal=True), 8, 0, (0, 4, 8))
    assert pm.counts[FUTURE].tolist() == [[6, 16], [0, 6]]
    assert pm.counts[WINDOW].tolist() == [[10, 0], [6, 10]]


def test_block_edges_keep_segments_apart():
    layout = PromptPlacement("prefix", 20).layout(100)  # [CLS] 0, prompt 1-20, text 21-120, [SEP] 121
    assert block_edges(layout.length, 50, layout) == (0, 1, 21, 50, 100, 121, 122)
    assert block_edges(10, 4) == (0, 4, 8, 10)
    assert block_edges(layout.length, 50, layout, min_width=25) == (0, 50, 122)  # no block under 25
    assert block_edges(10, 4, min_width=3) == (0, 4, 10) and block_edges(3, 5, min_width=5) == (0, 3)
    with pytest.raises(ValueError, match="block must be an int >= 1, got 0"):
        block_edges(10, 0)
    with pytest.raises(ValueError, match="rise strictly from 0 to 10"):
        pooled_reasons(AttentionPattern(window=2), 10, 0, (0, 5, 5, 10))


def test_pool_spread_by_hand():
    layout = PromptPlacement("start", 4).layout(10)  # prompt 0-3, [CLS] 4, text 5-14, [SEP] 15
    reach = spread(build_masks(AttentionPattern(window=4), layout, 2), layout.prompt_positions)
    ps = pool_spread(reach, (0, 4, 8, 12, 16))
    # reach: after 1 layer 0..5, after 2 layers 0..7
    assert ps.fraction.tolist() == [[1, 0, 0, 0], [1, 0.5, 0, 0], [1, 1, 0, 0]]
    assert ps.first_min.tolist() == [0, 1, -1, -1]
    assert ps.first_max.tolist() == [0, 2, -1, -1]
    assert ps.never.tolist() == [0, 0, 4, 4]
