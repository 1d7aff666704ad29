"""AttentionPattern, build_masks, mask_reasons, mask_mod: hand-worked masks and properties."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch.nn.attention.flex_attention import create_mask

from attnviz import (
    REASONS,
    AttentionPattern,
    PromptPlacement,
    build_masks,
    describe,
    mask_mod,
    mask_reasons,
)
from attnviz.patterns import BLOCKED, FUTURE, GLOBAL, RANDOM, WINDOW
from attnviz.placement import PLACEMENTS


def seen(row: torch.Tensor) -> set[int]:
    """Keys a mask row allows, as a set of positions."""
    return set(torch.nonzero(row).flatten().tolist())


# ---- sliding windows -----------------------------------------------------------------------------
def test_bidirectional_window_interior_row():
    masks = build_masks(AttentionPattern(window=4), 10, num_layers=1)
    assert masks.shape == (1, 10, 10) and masks.dtype == torch.bool
    assert seen(masks[0, 5]) == {3, 4, 5, 6, 7}


def test_bidirectional_window_edges():
    m = build_masks(AttentionPattern(window=4), 10, 1)[0]
    assert seen(m[0]) == {0, 1, 2}
    assert seen(m[1]) == {0, 1, 2, 3}
    assert seen(m[9]) == {7, 8, 9}
    # 10 rows of 5 keys, minus 2+1 cut off at each end
    assert int(m.sum()) == 50 - 6


def test_bidirectional_window_whole_mask_matches_definition():
    m = build_masks(AttentionPattern(window=6), 9, 1)[0]
    for q in range(9):
        for k in range(9):
            assert bool(m[q, k]) == (abs(q - k) <= 3), (q, k)


def test_causal_window_is_mistral_sliding_window():
    m = build_masks(AttentionPattern(window=3, causal=True), 10, 1)[0]
    assert seen(m[5]) == {3, 4, 5}
    assert seen(m[0]) == {0}
    assert seen(m[1]) == {0, 1}
    assert seen(m[9]) == {7, 8, 9}
    assert int(m.sum()) == 1 + 2 + 3 * 8


def test_causal_odd_and_even_windows_both_allowed():
    assert seen(build_masks(AttentionPattern(window=1, causal=True), 6, 1)[0, 4]) == {4}
    assert seen(build_masks(AttentionPattern(window=4, causal=True), 8, 1)[0, 6]) == {3, 4, 5, 6}


def test_full_attention():
    m = build_masks(AttentionPattern(window=None), 7, 2)
    assert m.shape == (2, 7, 7) and bool(m.all())


def test_causal_full_attention_is_lower_triangle():
    m = build_masks(AttentionPattern(window=None, causal=True), 7, 2)
    tril = torch.tril(torch.ones(7, 7, dtype=torch.bool))
    assert torch.equal(m[0], tril) and torch.equal(m[1], tril)


def test_causal_window_wider_than_sequence_is_lower_triangle():
    m = build_masks(AttentionPattern(window=50, causal=True), 6, 1)[0]
    assert torch.equal(m, torch.tril(torch.ones(6, 6, dtype=torch.bool)))


# ---- global tokens -------------------------------------------------------------------------------
def test_global_position_has_full_row_and_column():
    m = build_masks(AttentionPattern(window=2, global_positions=(4,)), 10, 1)[0]
    assert bool(m[4].all()) and bool(m[:, 4].all())
    assert seen(m[0]) == {0, 1, 4}
    assert seen(m[8]) == {4, 7, 8, 9}
    # band (10*3 - 2 = 28) + row 4 adds 7 new keys + column 4 adds 7 new queries
    assert int(m.sum()) == 28 + 7 + 7


def test_global_position_under_causal_only_sees_the_past():
    m = build_masks(AttentionPattern(window=2, causal=True, global_positions=(4,)), 10, 1)[0]
    assert seen(m[4]) == {0, 1, 2, 3, 4}
    assert seen(m[:, 4]) == {4, 5, 6, 7, 8, 9}
    assert seen(m[2]) == {1, 2}          # 4 is in the future of 2
    assert seen(m[7]) == {4, 6, 7}


def test_several_global_positions():
    m = build_masks(AttentionPattern(window=2, global_positions=(0, 9)), 10, 1)[0]
    assert seen(m[5]) == {0, 4, 5, 6, 9}
    assert bool(m[0].all()) and bool(m[9].all())


def test_global_prompt_makes_prompt_positions_global():
    layout = PromptPlacement("prefix", n_tokens=2).layout(6)  # C P P t t t t t t S, L = 10
    assert layout.prompt_positions == (1, 2)
    pattern = AttentionPattern(window=2, global_prompt=True)
    assert seen(pattern.global_mask(layout)) == {1, 2}
    m = build_masks(pattern, layout, 1)[0]
    for p in (1, 2):
        assert bool(m[p].all()) and bool(m[:, p].all())
    assert seen(m[7]) == {1, 2, 6, 7, 8}
    plain = build_masks(AttentionPattern(window=2), layout, 1)[0]
    assert seen(plain[7]) == {6, 7, 8}


def test_global_prompt_combines_with_global_positions():
    layout = PromptPlacement("suffix", n_tokens=2).layout(4)  # C t t t t P P S, prompt at 5, 6
    pattern = AttentionPattern(window=2, global_positions=(0,), global_prompt=True)
    assert seen(pattern.global_mask(layout)) == {0, 5, 6}
    m = build_masks(pattern, layout, 1)[0]
    assert seen(m[2]) == {0, 1, 2, 3, 5, 6}


def test_global_prompt_without_prompt_changes_nothing():
    a = build_masks(AttentionPattern(window=2, global_prompt=True), 8, 1)
    b = build_masks(AttentionPattern(window=2), 8, 1)
    assert torch.equal(a, b)


# ---- per-layer settings --------------------------------------------------------------------------
def test_per_layer_windows_differ_exactly():
    m = build_masks(AttentionPattern(window=(2, 4, None)), 12, 3)
    assert seen(m[0, 6]) == {5, 6, 7}
    assert seen(m[1, 6]) == {4, 5, 6, 7, 8}
    assert seen(m[2, 6]) == set(range(12))
    # band sizes: 12*3 - 2, 12*5 - 6, 12*12
    assert [int(m[i].sum()) for i in range(3)] == [34, 54, 144]


def test_per_layer_window_matches_uniform_pattern_of_that_window():
    per_layer = build_masks(AttentionPattern(window=(2, 6)), 11, 2)
    assert torch.equal(per_layer[0], build_masks(AttentionPattern(window=2), 11, 1)[0])
    assert torch.equal(per_layer[1], build_masks(AttentionPattern(window=6), 11, 1)[0])


def test_per_layer_dilation():
    m = build_masks(AttentionPattern(window=4, dilation=(1, 2)), 12, 2)
    assert seen(m[0, 6]) == {4, 5, 6, 7, 8}
    assert seen(m[1, 6]) == {2, 4, 6, 8, 10}


def test_uniform_pattern_is_the_same_in_every_layer():
    m = build_masks(AttentionPattern(window=4, global_positions=(3,)), 10, 4)
    for layer in range(1, 4):
        assert torch.equal(m[layer], m[0])


# ---- dilation ------------------------------------------------------------------------------------
def test_dilated_bidirectional_window():
    m = build_masks(AttentionPattern(window=4, dilation=2), 12, 1)[0]
    assert seen(m[6]) == {2, 4, 6, 8, 10}
    assert seen(m[0]) == {0, 2, 4}
    assert seen(m[7]) == {3, 5, 7, 9, 11}


def test_dilated_causal_window_keeps_window_keys():
    m = build_masks(AttentionPattern(window=3, causal=True, dilation=2), 12, 1)[0]
    assert seen(m[6]) == {2, 4, 6}
    assert seen(m[3]) == {1, 3}


def test_dilation_is_ignored_by_full_attention():
    assert bool(build_masks(AttentionPattern(window=None, dilation=3), 7, 1).all())


# ---- random blocks -------------------------------------------------------------------------------
RB = dict(window=2, random_blocks=2, block_size=4)


def test_random_blocks_identical_for_same_seed():
    a = build_masks(AttentionPattern(**RB, seed=3), 24, 2)
    b = build_masks(AttentionPattern(**RB, seed=3), 24, 2)
    assert torch.equal(a, b)
    assert torch.equal(AttentionPattern(**RB, seed=3).random_block_table(1, 24),
                       AttentionPattern(**RB, seed=3).random_block_table(1, 24))


def test_random_blocks_differ_across_seeds():
    a = build_masks(AttentionPattern(**RB, seed=0), 24, 1)
    b = build_masks(AttentionPattern(**RB, seed=1), 24, 1)
    assert not torch.equal(a, b)


def test_random_blocks_differ_across_layers():
    m = build_masks(AttentionPattern(**RB, seed=0), 24, 3)
    assert not torch.equal(m[0], m[1])
    assert not torch.equal(m[1], m[2])
    assert not torch.equal(m[0], m[2])


def test_random_blocks_table_follows_numpy_seeding():
    # documented: drawn from numpy.random.default_rng([seed, layer]) among non-neighbour blocks
    pattern = AttentionPattern(**RB, seed=5)
    rng = np.random.default_rng([5, 1])
    expected = np.zeros((6, 6), dtype=bool)
    for i in range(6):
        cand = [j for j in range(6) if abs(j - i) > 1]
        expected[i, rng.choice(cand, size=2, replace=False)] = True
    assert torch.equal(pattern.random_block_table(1, 24), torch.from_numpy(expected))


def test_each_query_block_gets_exactly_r_random_blocks_never_neighbours():
    for r in (1, 2, 3):
        pattern = AttentionPattern(window=2, random_blocks=r, block_size=4, seed=7)
        for layer in range(3):
            table = pattern.random_block_table(layer, 24)   # 6 blocks: >= 3 candidates each
            assert table.shape == (6, 6)
            assert table.sum(1).tolist() == [r] * 6
            for i in range(6):
                for j in (i - 1, i, i + 1):
                    if 0 <= j < 6:
                        assert not table[i, j]


def test_random_blocks_capped_by_candidates():
    table = AttentionPattern(window=2, random_blocks=5, block_size=4).random_block_table(0, 24)
    # non-neighbour candidates per block: 4, 3, 3, 3, 3, 4
    assert table.sum(1).tolist() == [4, 3, 3, 3, 3, 4]


def test_random_blocks_partial_last_block():
    table = AttentionPattern(window=2, random_blocks=1, block_size=4).random_block_table(0, 10)
    assert table.shape == (3, 3)  # ceil(10 / 4)
    assert table.sum(1).tolist() == [1, 0, 1]  # block 1 has no non-neighbour
    assert bool(table[0, 2]) and bool(table[2, 0])


def test_causal_random_blocks_only_earlier_blocks():
    pattern = AttentionPattern(window=2, causal=True, random_blocks=2, block_size=4, seed=1)
    table = pattern.random_block_table(0, 24)
    # candidates j < i - 1: block 0, 1: none; 2: {0}; 3: {0, 1}; 4, 5: >= 2
    assert table.sum(1).tolist() == [0, 0, 1, 2, 2, 2]
    assert not bool(torch.triu(table, diagonal=-1).any())


def test_random_blocks_appear_in_the_mask_block_by_block():
    pattern = AttentionPattern(**RB, seed=2)
    m = build_masks(pattern, 24, 2)
    for layer in range(2):
        table = pattern.random_block_table(layer, 24)
        for i in range(6):
            for j in range(6):
                if abs(i - j) > 1:  # window 2 (±1) never leaves neighbouring blocks
                    blk = m[layer, 4 * i:4 * i + 4, 4 * j:4 * j + 4]
                    assert bool(blk.all()) if table[i, j] else not bool(blk.any()), (layer, i, j)


def test_no_random_blocks_gives_no_table():
    assert AttentionPattern(window=2).random_block_table(0, 24) is None


# ---- mask_reasons --------------------------------------------------------------------------------
def test_reason_codes():
    assert REASONS[BLOCKED].startswith("blocked") and REASONS[FUTURE].startswith("blocked")
    assert [REASONS[c].split(": ")[1] for c in (WINDOW, GLOBAL, RANDOM)] == ["window", "global", "random block"]
    assert (BLOCKED, WINDOW, GLOBAL, RANDOM, FUTURE) == (0, 1, 2, 3, 4)


def test_mask_reasons_bidirectional_hand_picked():
    pattern = AttentionPattern(window=2, global_positions=(0,), random_blocks=1, block_size=4, seed=0)
    r = mask_reasons(pattern, 16, 0)
    assert r.shape == (16, 16) and r.dtype == torch.uint8
    assert r[5, 5] == WINDOW and r[5, 4] == WINDOW and r[5, 6] == WINDOW
    assert r[5, 0] == GLOBAL and r[0, 9] == GLOBAL and r[15, 0] == GLOBAL
    assert r[1, 0] == WINDOW  # window is reported first where window and global both allow
    table = pattern.random_block_table(0, 16)
    picked = [(i, j) for i in range(4) for j in range(4) if table[i, j]]
    assert len(picked) == 4  # one per query block
    for i, j in picked:
        assert r[4 * i + 2, 4 * j + 2] == RANDOM
    missed = [(i, j) for i in range(4) for j in range(4) if abs(i - j) > 1 and not table[i, j]]
    assert missed
    for i, j in missed:
        assert r[4 * i + 2, 4 * j + 2] == BLOCKED
    assert not bool((r == FUTURE).any())


def test_mask_reasons_causal_hand_picked():
    r = mask_reasons(AttentionPattern(window=2, causal=True, global_positions=(3,)), 8, 0)
    assert r[5, 4] == WINDOW and r[5, 5] == WINDOW
    assert r[5, 3] == GLOBAL
    assert r[3, 0] == GLOBAL       # a global row sees the past
    assert r[3, 5] == FUTURE       # ... but not the future
    assert r[2, 5] == FUTURE
    assert r[5, 1] == BLOCKED
    assert int((r == FUTURE).sum()) == 8 * 7 // 2


def test_mask_reasons_random_block_under_causal():
    pattern = AttentionPattern(window=1, causal=True, random_blocks=1, block_size=2, seed=0)
    r = mask_reasons(pattern, 8, 0)
    table = pattern.random_block_table(0, 8)
    i, j = 3, int(torch.nonzero(table[3]).item())
    assert j in (0, 1)
    assert r[2 * i, 2 * j] == RANDOM and r[2 * i + 1, 2 * j + 1] == RANDOM
    assert r[2 * j, 2 * i] == FUTURE


# ---- mask_mod ------------------------------------------------------------------------------------
def flex_dense(pattern, layout, layer, L):
    return create_mask(mask_mod(pattern, layout, layer), None, None, L, L, device="cpu")[0, 0]


def test_mask_mod_hand_case_through_flex():
    pattern = AttentionPattern(window=4, global_positions=(2,), random_blocks=1, block_size=4, seed=1)
    dense = flex_dense(pattern, 20, 0, 20)
    assert seen(dense[10]) == seen(build_masks(pattern, 20, 1)[0, 10])
    assert {2, 8, 9, 10, 11, 12} <= seen(dense[10])
    assert torch.equal(dense, build_masks(pattern, 20, 1)[0])


# ---- describe ------------------------------------------------------------------------------------
def test_describe():
    assert describe(AttentionPattern(window=4, global_prompt=True)) == "window=4, global prompt"
    assert describe(AttentionPattern(causal=True)) == "full causal attention"
    assert describe(AttentionPattern(window=(2, None), global_positions=(0, 5))) == "window=2,full, global 0,5"
    assert describe(AttentionPattern(window=3, causal=True, random_blocks=2, block_size=8, seed=4)) == (
        "causal window=3, 2 random blocks of 8 (seed 4)")


def test_pattern_normalises_sequences_to_tuples():
    p = AttentionPattern(window=[2, 4], dilation=np.array([1, 2]), global_positions=torch.tensor([0, 3]))
    assert p.window == (2, 4) and p.dilation == (1, 2) and p.global_positions == (0, 3)
    assert p == AttentionPattern(window=(2, 4), dilation=(1, 2), global_positions=(0, 3))
    assert hash(p) == hash(AttentionPattern(window=(2, 4), dilation=(1, 2), global_positions=(0, 3)))
    assert p.per_layer == 2 and AttentionPattern(window=4).per_layer is None


# ---- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("w, hint", [(3, "try 2 or 4"), (63, "try 62 or 64"), (1, "try 2")])
def test_odd_bidirectional_window(w, hint):
    with pytest.raises(ValueError, match=rf"must be even, got {w}; {hint}$"):
        AttentionPattern(window=w)


@pytest.mark.parametrize("w", [0, -2])
def test_non_positive_window(w):
    with pytest.raises(ValueError, match=rf"window must be positive, got {w}"):
        AttentionPattern(window=w)
    with pytest.raises(ValueError, match=rf"window must be positive, got {w}"):
        AttentionPattern(window=(4, w), causal=True)


def test_odd_window_inside_per_layer_tuple():
    with pytest.raises(ValueError, match="must be even, got 5"):
        AttentionPattern(window=(4, 5, None))


def test_empty_window_tuple():
    with pytest.raises(ValueError, match=r"window=\(\) has no layers"):
        AttentionPattern(window=())


def test_per_layer_tuple_length_must_match_num_layers():
    with pytest.raises(ValueError, match=r"per-layer settings for 3 layers but the model has 2; give exactly 2 entries"):
        build_masks(AttentionPattern(window=(2, 4, None)), 10, 2)
    with pytest.raises(ValueError, match=r"per-layer settings for 2 layers but the model has 4"):
        build_masks(AttentionPattern(window=4, dilation=(1, 2)), 10, 4)


def test_window_and_dilation_tuples_of_different_lengths():
    with pytest.raises(ValueError, match=r"different lengths \[2, 3\]"):
        AttentionPattern(window=(2, 4), dilation=(1, 2, 3))


def test_layer_outside_per_layer_pattern():
    with pytest.raises(ValueError, match=r"layer 3 is outside the pattern's layers \[0, 3\)"):
        mask_reasons(AttentionPattern(window=(2, 4, None)), 10, 3)
    with pytest.raises(ValueError, match=r"layer -1 is outside"):
        AttentionPattern(window=2).window_at(-1)


@pytest.mark.parametrize("n", [0, -1, True])
def test_bad_num_layers(n):
    with pytest.raises(ValueError, match=rf"num_layers must be an int >= 1, got {n}"):
        build_masks(AttentionPattern(window=2), 10, n)


def test_global_position_beyond_layout():
    pattern = AttentionPattern(window=2, global_positions=(3, 10, 12))
    with pytest.raises(ValueError, match=r"global positions \[10, 12\] are outside \[0, 10\)"):
        build_masks(pattern, 10, 1)
    with pytest.raises(ValueError, match=r"outside \[0, 10\)"):
        mask_mod(pattern, 10, 0)
    build_masks(pattern, 13, 1)  # fits a longer layout


def test_negative_global_position():
    with pytest.raises(ValueError, match=r"global position -1 is outside \[0, L\)"):
        AttentionPattern(global_positions=(0, -1))


def test_global_positions_must_be_a_sequence():
    with pytest.raises(TypeError, match=r"got 5; for one position write global_positions=\(5,\)"):
        AttentionPattern(global_positions=5)


@pytest.mark.parametrize("bad", [(True,), (1.0,), ("0",)])
def test_global_positions_must_be_ints(bad):
    with pytest.raises(ValueError, match=rf"global position {bad[0]!r} is outside"):
        AttentionPattern(global_positions=bad)


def test_random_blocks_need_block_size():
    with pytest.raises(ValueError, match=r"random_blocks=2 needs block_size"):
        AttentionPattern(window=4, random_blocks=2)


@pytest.mark.parametrize("kw, exc, msg", [
    (dict(window=True), TypeError, "got True"),
    (dict(window="4"), TypeError, "got '4'"),
    (dict(window=4.0), TypeError, "got 4.0"),
    (dict(window=(2, True)), TypeError, "got True"),
    (dict(window=[2, "4"]), TypeError, "got '4'"),
    (dict(window=(2, 4.5)), TypeError, "got 4.5"),
    (dict(causal=1), TypeError, "causal must be True or False, got 1"),
    (dict(global_prompt="yes"), TypeError, "global_prompt must be True or False, got 'yes'"),
    (dict(dilation=0), ValueError, "dilation must be an int >= 1 .*got 0"),
    (dict(dilation=True), ValueError, "dilation must be an int >= 1 .*got True"),
    (dict(dilation=(1, 1.5)), ValueError, "got 1.5"),
    (dict(random_blocks=-1), ValueError, "random_blocks must be an int >= 0, got -1"),
    (dict(random_blocks=True, block_size=4), ValueError, "random_blocks must be an int >= 0, got True"),
    (dict(random_blocks=1, block_size=0), ValueError, "block_size must be an int >= 1, got 0"),
    (dict(random_blocks=1, block_size=True), ValueError, "block_size must be an int >= 1, got True"),
    (dict(seed=True), TypeError, "seed must be an int, got True"),
    (dict(seed=1.5), TypeError, "seed must be an int, got 1.5"),
    (dict(seed=-1), ValueError, "seed must be >= 0, got -1"),
])
def test_wrong_types_and_values(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        AttentionPattern(**kw)


def test_bad_layout_argument():
    with pytest.raises(ValueError, match="sequence length must be >= 1, got 0"):
        build_masks(AttentionPattern(window=2), 0, 1)
    with pytest.raises(TypeError, match="layout must be a SequenceLayout or an int length, got str"):
        build_masks(AttentionPattern(window=2), "10", 1)
    with pytest.raises(TypeError, match="got bool"):
        build_masks(AttentionPattern(window=2), True, 1)


# ---- properties ----------------------------------------------------------------------------------
@st.composite
def cases(draw):
    """(pattern, layout or int length, L, num_layers) with L <= 40, layers <= 3."""
    num_layers = draw(st.integers(1, 3))
    causal = draw(st.booleans())
    one = st.none() | (st.integers(1, 12) if causal else st.integers(1, 6).map(lambda h: 2 * h))
    window = draw(one | st.tuples(*[one] * num_layers))
    dil = st.integers(1, 3)
    dilation = draw(dil | st.tuples(*[dil] * num_layers))
    if draw(st.booleans()):
        kind = draw(st.sampled_from(PLACEMENTS))
        text_len = draw(st.integers(0, 24))
        second = draw(st.none() | st.integers(0, 8))
        total = text_len + (second or 0)
        extra = {}
        if kind == "infix":
            extra["at"] = draw(st.integers(0, total))
        if kind == "scattered":
            extra["every"] = draw(st.integers(1, 6))
        placement = PromptPlacement(kind, n_tokens=draw(st.integers(1, 5)), **extra)
        cls, sep = draw(st.booleans()), draw(st.booleans())
        layout = placement.layout(text_len, second, cls=cls, sep=sep)
        L = layout.length
    else:
        L = draw(st.integers(1, 40))
        layout = L
    globals_ = tuple(draw(st.lists(st.integers(0, L - 1), max_size=3, unique=True)))
    random_blocks = draw(st.integers(0, 2))
    block_size = draw(st.integers(1, 8)) if random_blocks else draw(st.none() | st.integers(1, 8))
    pattern = AttentionPattern(
        window=window, causal=causal, global_positions=globals_, global_prompt=draw(st.booleans()),
        dilation=dilation, random_blocks=random_blocks, block_size=block_size, seed=draw(st.integers(0, 1000)),
    )
    return pattern, layout, L, num_layers


def reference_mask(pattern, layout, layer, L):
    """Pure-Python reading of the module doc, one pair at a time."""
    w, d = pattern.window_at(layer), pattern.dilation_at(layer)
    g = pattern.global_mask(layout).tolist()
    table = pattern.random_block_table(layer, L)
    out = torch.zeros(L, L, dtype=torch.bool)
    for q in range(L):
        for k in range(L):
            if pattern.causal and k > q:
                continue
            if w is None:
                local = True
            elif pattern.causal:
                local = q - w * d < k <= q and (q - k) % d == 0
            else:
                local = abs(q - k) <= (w // 2) * d and (q - k) % d == 0
            rnd = table is not None and bool(table[q // pattern.block_size, k // pattern.block_size])
            out[q, k] = local or g[q] or g[k] or rnd
    return out


PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(cases())
def test_masks_match_pure_python_reference(case):
    pattern, layout, L, n = case
    masks = build_masks(pattern, layout, n)
    assert masks.shape == (n, L, L) and masks.dtype == torch.bool
    for layer in range(n):
        assert torch.equal(masks[layer], reference_mask(pattern, layout, layer, L))


@PROPS
@given(cases())
def test_diagonal_always_allowed(case):
    pattern, layout, L, n = case
    masks = build_masks(pattern, layout, n)
    assert bool(masks.diagonal(dim1=1, dim2=2).all())


@PROPS
@given(cases())
def test_bidirectional_without_random_blocks_is_symmetric(case):
    pattern, layout, L, n = case
    if pattern.causal or pattern.random_blocks:
        pattern = AttentionPattern(
            window=tuple(w if w is None else 2 * w for w in pattern.window) if isinstance(pattern.window, tuple)
            else (None if pattern.window is None else 2 * pattern.window),
            global_positions=pattern.global_positions, global_prompt=pattern.global_prompt,
            dilation=pattern.dilation,
        )
    masks = build_masks(pattern, layout, n)
    assert torch.equal(masks, masks.transpose(1, 2))


@PROPS
@given(cases())
def test_causal_masks_are_lower_triangular(case):
    pattern, layout, L, n = case
    if not pattern.causal:
        pattern = AttentionPattern(
            window=pattern.window, causal=True, global_positions=pattern.global_positions,
            global_prompt=pattern.global_prompt, dilation=pattern.dilation,
            random_blocks=pattern.random_blocks, block_size=pattern.block_size, seed=pattern.seed,
        )
    masks = build_masks(pattern, layout, n)
    assert not bool(torch.triu(masks, diagonal=1).any())


@PROPS
@given(cases())
def test_mask_mod_through_flex_agrees_with_build_masks(case):
    pattern, layout, L, n = case
    masks = build_masks(pattern, layout, n)
    for layer in range(n):
        dense = create_mask(mask_mod(pattern, layout, layer), None, None, L, L, device="cpu")
        assert dense.shape == (1, 1, L, L)
        assert torch.equal(dense[0, 0], masks[layer])


@PROPS
@given(cases())
def test_mask_reasons_agree_with_build_masks(case):
    pattern, layout, L, n = case
    masks = build_masks(pattern, layout, n)
    for layer in range(n):
        r = mask_reasons(pattern, layout, layer)
        allowed = (r == WINDOW) | (r == GLOBAL) | (r == RANDOM)
        assert torch.equal(allowed, masks[layer])
        future = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)
        assert torch.equal(r == FUTURE, future if pattern.causal else torch.zeros_like(future))
