"""The mask zoo of modern decoders (#17): prefix-LM, attention sinks, chunked attention and packed
documents as parts of AttentionPattern. Hand-worked masks on small L, reasons, composition, errors."""

import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement, build_masks, mask_reasons
from attnviz.patterns import (ALLOWED_CODES, FUTURE, OTHER_DOCUMENT, OUTSIDE_CHUNK, PREFIX, REASONS, SINK,
                              WINDOW, mask_mod)


def grid(rows: str) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in r] for r in rows.split()], dtype=torch.bool)


def check(pattern, L, expected):
    masks = build_masks(pattern, L, 1)[0]
    assert torch.equal(masks, grid(expected)), masks.int()
    reasons = mask_reasons(pattern, L, 0)
    assert torch.equal(torch.isin(reasons, torch.tensor(ALLOWED_CODES, dtype=torch.uint8)), masks)
    q, k = torch.arange(L)[:, None], torch.arange(L)[None, :]
    assert torch.equal(mask_mod(pattern, L, 0)(None, None, q, k).expand(L, L), masks)
    return reasons


def test_reason_texts():
    assert REASONS[PREFIX] == "allowed: prefix (bidirectional)"
    assert REASONS[SINK] == "allowed: attention sink"
    assert REASONS[OUTSIDE_CHUNK] == "blocked: outside the chunk"
    assert REASONS[OTHER_DOCUMENT] == "blocked: other document"


def test_prefix_lm_by_hand():
    r = check(AttentionPattern(causal=True, prefix_lm=3), 6, """
        111000
        111000
        111000
        111100
        111110
        111111""")
    # the pairs q < k < 3 are the prefix's own; the rest above the diagonal stays future
    assert r[0, 1] == r[0, 2] == r[1, 2] == PREFIX and r[2, 3] == FUTURE and r[1, 0] == WINDOW


def test_prefix_lm_on_a_causal_window():
    # window 2: the prefix square is added, later queries keep their own window
    check(AttentionPattern(causal=True, window=2, prefix_lm=3), 6, """
        111000
        111000
        111000
        001100
        000110
        000011""")


def test_prefix_lm_from_the_prompt():
    layout = PromptPlacement("prefix", n_tokens=3).layout(text_len=4)   # [CLS] p p p t t t t [SEP]
    p = AttentionPattern(causal=True, prefix_lm="prompt")
    assert p.prefix_length(layout) == 4
    m = build_masks(p, layout, 1)[0]
    assert m[:4, :4].all() and not m[:4, 4:].any() and torch.equal(m[4:], torch.ones(9, 9).tril().bool()[4:])


def test_sinks_by_hand():
    r = check(AttentionPattern(causal=True, window=2, sinks=2), 6, """
        100000
        110000
        111000
        111100
        110110
        110011""")
    assert r[5, 0] == r[5, 1] == SINK and r[5, 4] == WINDOW and r[0, 1] == FUTURE


def test_chunk_by_hand():
    # Llama 4: chunked causal attention, chunk 3
    r = check(AttentionPattern(causal=True, chunk=3), 7, """
        1000000
        1100000
        1110000
        0001000
        0001100
        0001110
        0000001""")
    assert r[3, 2] == OUTSIDE_CHUNK and r[3, 4] == FUTURE


def test_chunk_with_window_and_sinks():
    # window 2 inside chunks of 3, one sink: the sink reaches across chunks
    check(AttentionPattern(causal=True, window=2, chunk=3, sinks=1), 7, """
        1000000
        1100000
        1110000
        1001000
        1001100
        1000110
        1000001""")


def test_chunk_bidirectional():
    check(AttentionPattern(chunk=2), 5, """
        11000
        11000
        00110
        00110
        00001""")


def test_documents_by_hand():
    r = check(AttentionPattern(causal=True, documents=(3, 4)), 7, """
        1000000
        1100000
        1110000
        0001000
        0001100
        0001110
        0001111""")
    assert r[3, 0] == OTHER_DOCUMENT and r[0, 5] == OTHER_DOCUMENT and r[0, 1] == FUTURE


def test_documents_cut_globals_and_prefix():
    # a global first token and a prefix of 4 stay inside the first document
    check(AttentionPattern(window=2, global_positions=(0,), prefix_lm=4, documents=(3, 3)), 6, """
        111000
        111000
        111000
        000110
        000111
        000011""")


def test_all_parts_compose_per_layer():
    p = AttentionPattern(causal=True, window=(2, None), chunk=(None, 4), sinks=1, prefix_lm=2,
                         global_positions=(5,), documents=(6, 2))
    m = build_masks(p, 8, 2)
    check_layer0 = grid("""
        11000000
        11000000
        11100000
        10110000
        10011000
        11111100
        00000010
        00000011""")
    assert torch.equal(m[0], check_layer0), m[0].int()
    # layer 1: full causal attention kept inside chunks of 4 (0-3, 4-7), the sink 0 and the global 5 across
    assert torch.equal(m[1], grid("""
        11000000
        11000000
        11100000
        11110000
        10001000
        11111100
        00000010
        00000011""")), m[1].int()


@pytest.mark.parametrize("kwargs, words", [
    (dict(prefix_lm=0), "prefix_lm must be an int >= 1"),
    (dict(prefix_lm="text"), '"prompt"'),
    (dict(sinks=-1), "sinks must be an int >= 0"),
    (dict(sinks=1.5), "sinks must be an int >= 0"),
    (dict(chunk=0), "chunk must be an int >= 1"),
    (dict(chunk=()), "chunk=() has no layers"),
    (dict(window=(2, 2), causal=True, chunk=(4, 4, 4)), "different lengths"),
    (dict(documents=(3, 0)), "documents are lengths"),
])
def test_bad_values_are_named(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        AttentionPattern(**kwargs)


def test_bad_values_against_the_layout():
    with pytest.raises(TypeError, match="documents must be a tuple"):
        AttentionPattern(documents=5)
    with pytest.raises(ValueError, match="sum to 7 but the layout has 8"):
        build_masks(AttentionPattern(documents=(3, 4)), 8, 1)
    with pytest.raises(ValueError, match="longer than the layout"):
        build_masks(AttentionPattern(prefix_lm=9), 8, 1)
    with pytest.raises(ValueError, match="needs a layout with a prompt"):
        build_masks(AttentionPattern(prefix_lm="prompt"), 8, 1)


# ---- the structural paths equal the dense reference ---------------------------------------------
from attnviz import spread                                            # noqa: E402
from attnviz.spread import spread_pattern                             # noqa: E402

L_ZOO = 37
LAYOUT = PromptPlacement("prefix", n_tokens=4).layout(text_len=L_ZOO - 6)   # [CLS] 4 prompt 31 text [SEP]


def zoo():
    """Patterns of every family alone and composed with the existing parts (length 37, 2 layers)."""
    docs = (9, 15, 13)
    out = []
    for causal in (True, False):
        w = 3 if causal else 4
        out += [
            AttentionPattern(causal=causal, prefix_lm=7),
            AttentionPattern(causal=causal, prefix_lm="prompt", window=w),
            AttentionPattern(causal=causal, prefix_lm=12, window=w, global_positions=(3, 20), dilation=2),
            AttentionPattern(causal=causal, sinks=4, window=w),
            AttentionPattern(causal=causal, sinks=3, window=(w, None), global_prompt=True),
            AttentionPattern(causal=causal, sinks=2, window=w, dilation=(1, 3), random_blocks=1, block_size=5),
            AttentionPattern(causal=causal, chunk=8),
            AttentionPattern(causal=causal, chunk=(5, None), window=w, sinks=2),
            AttentionPattern(causal=causal, chunk=6, window=w, global_positions=(0, 13, 14, 30), dilation=2),
            AttentionPattern(causal=causal, chunk=7, random_blocks=2, block_size=4, window=w, seed=3),
            AttentionPattern(causal=causal, documents=docs),
            AttentionPattern(causal=causal, documents=docs, window=w, global_positions=(0, 10, 30)),
            AttentionPattern(causal=causal, documents=docs, window=w, random_blocks=2, block_size=4, sinks=2),
            AttentionPattern(causal=causal, documents=docs, prefix_lm=12, chunk=5, window=w, sinks=1,
                             global_prompt=True, dilation=2),
            AttentionPattern(causal=causal, documents=(1, 36), prefix_lm=37, sinks=40, chunk=(3, 100),
                             random_blocks=1, block_size=6, global_positions=(36,)),
        ]
    return out


@pytest.mark.parametrize("pattern", zoo(), ids=lambda p: repr(p)[17:90])
def test_spread_pattern_equals_dense(pattern):
    masks = build_masks(pattern, LAYOUT, 2)
    for sources in (None, [10], [0, 25], [36], [5, 6]):
        src = LAYOUT.prompt_positions if sources is None else sources
        dense = spread(masks, src)
        fast = spread_pattern(pattern, LAYOUT, 2, sources=src)
        assert torch.equal(fast.reached, dense.reached), (sources, fast.reached.int(), dense.reached.int())
        assert torch.equal(fast.first_layer, dense.first_layer)


@pytest.mark.parametrize("pattern", zoo(), ids=lambda p: repr(p)[17:90])
def test_costs_count_pairs_like_dense(pattern):
    from attnviz.costs import allowed_pairs, keys_per_query

    masks = build_masks(pattern, LAYOUT, 2)
    for layer in range(2):
        assert torch.equal(keys_per_query(pattern, LAYOUT, layer), masks[layer].sum(-1))
        assert allowed_pairs(pattern, LAYOUT, layer) == int(masks[layer].sum())


@pytest.mark.parametrize("pattern", zoo(), ids=lambda p: repr(p)[17:90])
def test_pooled_reasons_equal_dense(pattern):
    from attnviz.pooling import block_edges, pool_counts, pooled_reasons

    for layer in range(2):
        dense = mask_reasons(pattern, LAYOUT, layer)
        for edges in (block_edges(L_ZOO, 1), block_edges(L_ZOO, 5, LAYOUT), (0, 11, 12, 30, 37)):
            got = pooled_reasons(pattern, LAYOUT, layer, edges, chunk=7)
            assert torch.equal(got.counts, pool_counts(dense, edges, len(REASONS))), (layer, edges)
