"""A second mask part added as one module + one ``MASK_PARTS`` entry (#16): the Sparse Transformer's
*fixed* pattern = attention inside blocks of ``l`` (``chunk=l``) + summary columns
(``attnviz.masks.SummaryColumns``). Its peer is OpenAI's ``get_blocksparse_obj(..., "fixed")``
(https://github.com/openai/sparse_attention, ``attention.py``; the layout part for ``num_verts=1``,
re-typed below) at a block size of one position, where the block layout is the mask itself.
Nothing outside ``attnviz/masks/summary.py`` knows this part: every view below follows from it.
"""

import numpy as np
import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask

from attnviz import AttentionPattern, PromptPlacement, build_masks, describe, mask_mod, mask_reasons, spread
from attnviz.blockmask import block_mask
from attnviz.costs import keys_per_query
from attnviz.masks import MASK_PARTS, Strided, SummaryColumns, part_from_text
from attnviz.patterns import ALLOWED_CODES, FUTURE, OUTSIDE_CHUNK, PART_CODES, REASONS, WINDOW
from attnviz.pooling import block_edges, pool_counts, pooled_reasons
from attnviz.patterns import pattern_from_dict, pattern_to_dict
from attnviz.spread import spread_pattern
from tests.test_blockmask import assert_same_tables, dense_of

SUMMARY = PART_CODES["summary"]


def openai_fixed_layout(n_ctx, local_attn_ctx, blocksize=1, vertsize=1):
    """``get_blocksparse_obj``'s layout for ``attn_mode == 'fixed'`` and ``num_verts == 1``."""
    n_bctx = n_ctx // blocksize
    lctx = local_attn_ctx
    stride = lctx // blocksize
    assert vertsize <= stride
    assert stride % vertsize == 0
    indices = [i for i in range(stride - 1, -1, -1)]
    indices = np.array(indices).reshape([-1, vertsize])
    layout = np.zeros([n_bctx, n_bctx], dtype=bool)
    for idx in indices[0]:
        layout[:, idx::stride] = 1
    for q_idx in range(n_bctx):
        # Each thing can attend to its local block
        row = q_idx // stride
        layout[q_idx, row * stride:(row + 1) * stride] = 1
        # Any query cannot attend to keys above it
        layout[q_idx, q_idx + 1:] = 0
    return layout


def test_registered_with_its_own_code():
    assert MASK_PARTS["summary"] is SummaryColumns
    assert REASONS[SUMMARY] == "allowed: summary column" and SUMMARY in ALLOWED_CODES


def test_fixed_pattern_by_hand():
    # l = 3, c = 1: blocks [0, 3), [3, 6), [6, 8); summary columns 2 and 5
    codes = mask_reasons(AttentionPattern(causal=True, chunk=3, parts=(SummaryColumns(3),)), 8, 0)
    W, S, F, O = WINDOW, SUMMARY, FUTURE, OUTSIDE_CHUNK
    assert codes.tolist() == [[W, F, F, F, F, F, F, F],
                              [W, W, F, F, F, F, F, F],
                              [W, W, W, F, F, F, F, F],
                              [O, O, S, W, F, F, F, F],
                              [O, O, S, W, W, F, F, F],
                              [O, O, S, W, W, W, F, F],
                              [O, O, S, O, O, S, W, F],
                              [O, O, S, O, O, S, W, W]]


@pytest.mark.parametrize("n", [8, 33, 64])
@pytest.mark.parametrize("l, c", [(4, 1), (8, 2), (8, 8), (16, 4)])
def test_equals_openai_fixed_layout(n, l, c):
    ours = build_masks(AttentionPattern(causal=True, chunk=l, parts=(SummaryColumns(l, c),)), n, 1)[0]
    assert torch.equal(ours, torch.from_numpy(openai_fixed_layout(n, l, vertsize=c)))


PATTERNS = [
    AttentionPattern(causal=True, chunk=8, parts=(SummaryColumns(8, 2),)),
    AttentionPattern(window=4, global_positions=(3,), parts=(SummaryColumns(6),)),
    AttentionPattern(window=(2, None, 4), causal=True, documents=(19, 18), parts=(SummaryColumns(5), Strided(4))),
    AttentionPattern(window=4, causal=True, prefix_lm="prompt", sinks=1, parts=(SummaryColumns(7, 3),)),
]
LAYOUT = PromptPlacement("prefix", n_tokens=4).layout(31)    # L = 37


@pytest.mark.parametrize("pattern", PATTERNS, ids=describe)
def test_structural_views_equal_dense(pattern):
    n = 3
    masks = build_masks(pattern, LAYOUT, n)
    for sources in (None, [0], [36]):
        want = spread(masks, LAYOUT.prompt_positions if sources is None else sources)
        got = spread_pattern(pattern, LAYOUT, n, sources)
        assert torch.equal(got.reached, want.reached) and torch.equal(got.first_layer, want.first_layer)
    for layer in range(n):
        assert torch.equal(keys_per_query(pattern, LAYOUT, layer), masks[layer].sum(-1))
        edges = block_edges(37, 6, LAYOUT)
        got = pooled_reasons(pattern, LAYOUT, layer, edges)
        assert torch.equal(got.counts, pool_counts(mask_reasons(pattern, LAYOUT, layer), edges, len(REASONS)))
        ours = block_mask(pattern, LAYOUT, layer, block_size=8)
        ref = create_block_mask(mask_mod(pattern, LAYOUT, layer), None, None, 37, 37, device="cpu", BLOCK_SIZE=8)
        assert_same_tables(ours, ref)
        assert torch.equal(dense_of(ours, 37)[0], masks[layer])


def test_two_layers_connect_every_pair():
    """Child et al.: the fixed pattern (c = 1) reaches every earlier position in two layers."""
    pattern = AttentionPattern(causal=True, chunk=16, parts=(SummaryColumns(16),))
    for source in (0, 5, 15, 40):
        reached = spread_pattern(pattern, 100, 2, [source]).reached
        assert torch.equal(reached[2], torch.arange(100) >= source)


def test_saved_parsed_and_refused():
    pattern = AttentionPattern(causal=True, chunk=8, parts=(SummaryColumns(8, 2),))
    assert pattern_from_dict(pattern_to_dict(pattern)) == pattern
    assert part_from_text("summary:16,2") == SummaryColumns(16, 2) and part_from_text("summary:16") == SummaryColumns(16)
    assert describe(pattern) == "full causal attention, chunk=8, summary columns 2/8"
    with pytest.raises(ValueError, match=r"width must be an int in \[1, stride=4\].*got 5"):
        SummaryColumns(4, 5)
    with pytest.raises(ValueError, match="invalid summary setting '16,2,1'"):
        part_from_text("summary:16,2,1")


@pytest.mark.parametrize("part, L", [(SummaryColumns(3), 10), (SummaryColumns(4, 2), 9), (SummaryColumns(20, 5), 7)])
def test_pairs_enumerate_each_allowed_pair_once(part, L):
    got = torch.zeros(L, L, dtype=torch.int64)
    for q, k in part.pairs(L, 0, per_chunk=4):
        got.index_put_((q, k), torch.ones_like(q), accumulate=True)
    q, k = torch.arange(L)[:, None], torch.arange(L)[None, :]
    assert torch.equal(got, part.mask_fn(L, 0)(None, None, q, k).expand(L, L).long())
