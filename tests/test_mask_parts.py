"""Mask families as parts (#16): ``attnviz.masks`` — a family is one module and one entry of
``MASK_PARTS``, and every view of the pattern follows from the part's mask function exactly.

The example family is the Sparse Transformer's strided attention (``attnviz.masks.Strided``). Its
peer is OpenAI's reference ``get_attn_mask`` (https://github.com/openai/sparse_attention,
``attention.py``: modes ``"local"`` and ``"strided"``), written in TensorFlow and re-typed below
in torch, kept as close to the file as the test allows.
"""

import json

import numpy as np
import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask

from attnviz import AttentionPattern, PromptPlacement, build_masks, describe, mask_mod, mask_reasons, spread
from attnviz.blockmask import block_mask
from attnviz.costs import allowed_pairs, keys_per_query
from attnviz.masks import MASK_PARTS, MaskPart, Strided, part_from_dict, part_from_text
from attnviz.models import tiny_model, to_native, with_pattern
from attnviz.patterns import ALLOWED_CODES, BLOCKED, FUTURE, PART_CODES, REASONS, WINDOW
from attnviz.pooling import block_edges, pool_counts, pooled_reasons
from attnviz.patterns import pattern_from_dict, pattern_to_dict
from attnviz.spread import spread_pattern
from tests.test_blockmask import assert_same_tables, dense_of

STRIDED = PART_CODES["strided"]


# ---- OpenAI's sparse_attention, attention.py get_attn_mask, re-typed (tf -> torch) --------------
def openai_get_attn_mask(n, attn_mode, local_attn_ctx=None):
    if attn_mode == "all":
        b = torch.tril(torch.ones(n, n))                            # tf.matrix_band_part(ones, -1, 0)
    elif attn_mode == "local":
        bandwidth = local_attn_ctx
        ctx = min(n - 1, bandwidth - 1)
        b = torch.tril(torch.ones(n, n)) - torch.tril(torch.ones(n, n), diagonal=-ctx - 1)   # band_part(ctx, 0)
    elif attn_mode == "strided":
        stride = local_attn_ctx
        x = torch.arange(n).reshape(n, 1)
        y = x.T
        z = torch.zeros(n, n, dtype=torch.int64)
        q = z + x
        k = z + y
        c1 = q >= k
        c2 = torch.eq(torch.remainder(q - k, stride), 0)
        c3 = torch.logical_and(c1, c2)
        b = c3.float()
    else:
        raise ValueError("Not yet implemented")
    return b.reshape(1, 1, n, n)


def test_registry_and_reason_code():
    assert MASK_PARTS["strided"] is Strided and issubclass(Strided, MaskPart)
    assert REASONS[STRIDED] == "allowed: strided" and STRIDED in ALLOWED_CODES
    assert STRIDED == 9                                   # after the nine built-in codes
    assert len(REASONS) == 9 + len(MASK_PARTS)


def test_strided_by_hand():
    # causal, stride 3, no window (full causal would allow everything: window=1 keeps only k = q)
    got = build_masks(AttentionPattern(window=1, causal=True, parts=(Strided(3),)), 7, 1)[0].int()
    want = torch.tensor([[1, 0, 0, 0, 0, 0, 0],
                         [0, 1, 0, 0, 0, 0, 0],
                         [0, 0, 1, 0, 0, 0, 0],
                         [1, 0, 0, 1, 0, 0, 0],
                         [0, 1, 0, 0, 1, 0, 0],
                         [0, 0, 1, 0, 0, 1, 0],
                         [1, 0, 0, 1, 0, 0, 1]], dtype=torch.int32)
    assert torch.equal(got, want)
    # bidirectional window 2 (q-1..q+1) + stride 3: keys on both sides
    row = build_masks(AttentionPattern(window=2, parts=(Strided(3),)), 10, 1)[0][4].int().tolist()
    assert row == [0, 1, 0, 1, 1, 1, 0, 1, 0, 0]


def test_reasons_by_hand():
    codes = mask_reasons(AttentionPattern(window=2, causal=True, parts=(Strided(2),)), 5, 0)
    W, S, F, B = WINDOW, STRIDED, FUTURE, BLOCKED
    assert codes.tolist() == [[W, F, F, F, F],
                              [W, W, F, F, F],
                              [S, W, W, F, F],          # k = q - 1 is window, not strided: window first
                              [B, S, W, W, F],
                              [S, B, S, W, W]]


@pytest.mark.parametrize("n", [1, 7, 32, 61])
@pytest.mark.parametrize("stride", [1, 2, 5, 8])
def test_equals_openai_sparse_attention(n, stride):
    local = openai_get_attn_mask(n, "local", stride)[0, 0].bool()
    strided = openai_get_attn_mask(n, "strided", stride)[0, 0].bool()
    # the strided head alone: the part under causal, with a window that adds nothing (k = q is strided too)
    assert torch.equal(build_masks(AttentionPattern(window=1, causal=True, parts=(Strided(stride),)), n, 1)[0], strided)
    assert torch.equal(build_masks(AttentionPattern(window=stride, causal=True), n, 1)[0], local)
    # the Sparse Transformer's strided pattern: both heads' union
    ours = build_masks(AttentionPattern(window=stride, causal=True, parts=(Strided(stride),)), n, 1)[0]
    assert torch.equal(ours, local | strided)


@pytest.mark.parametrize("L, stride", [(64, 8), (50, 7), (100, 10)])
def test_two_layers_connect_every_pair(L, stride):
    """Child et al.'s point: local then strided reaches every earlier position in two steps."""
    pattern = AttentionPattern(window=stride, causal=True, parts=(Strided(stride),))
    for source in (0, 3, L // 2):
        reached = spread_pattern(pattern, L, 2, [source]).reached
        assert torch.equal(reached[2], torch.arange(L) >= source)
        assert not torch.equal(reached[1], torch.arange(L) >= source) or L - source <= stride
    window_only = spread_pattern(AttentionPattern(window=stride, causal=True), L, 2, [0]).reached[2]
    assert int(window_only.sum()) == 2 * stride - 1                  # without the part: 2 windows


PATTERNS = [
    AttentionPattern(window=4, causal=True, parts=(Strided(4),)),
    AttentionPattern(window=4, global_positions=(0,), parts=(Strided(5),)),
    AttentionPattern(window=(2, 4, None), causal=True, sinks=2, parts=(Strided((3, None, 2)),)),
    AttentionPattern(window=4, causal=True, documents=(20, 17), parts=(Strided(3),)),
    AttentionPattern(window=4, causal=True, prefix_lm=5, chunk=6, parts=(Strided(3), Strided(7))),
    AttentionPattern(window=2, random_blocks=1, block_size=4, dilation=2, parts=(Strided(6),)),
    AttentionPattern(window=6, global_prompt=True, parts=(Strided(9),)),
]
LAYOUT = PromptPlacement("scattered", n_tokens=4, every=7).layout(31)   # L = 37


@pytest.mark.parametrize("pattern", PATTERNS, ids=describe)
def test_structural_views_equal_dense(pattern):
    n = 3
    masks = build_masks(pattern, LAYOUT, n)
    for sources in (None, [0], [5, 20], [36]):
        want = spread(masks, LAYOUT.prompt_positions if sources is None else sources)
        got = spread_pattern(pattern, LAYOUT, n, sources)
        assert torch.equal(got.reached, want.reached) and torch.equal(got.first_layer, want.first_layer)
    for layer in range(n):
        assert torch.equal(keys_per_query(pattern, LAYOUT, layer), masks[layer].sum(-1))
        assert allowed_pairs(pattern, LAYOUT, layer) == int(masks[layer].sum())
        for edges in (block_edges(37, 5, LAYOUT), tuple(range(38))):
            got = pooled_reasons(pattern, LAYOUT, layer, edges)
            assert torch.equal(got.counts, pool_counts(mask_reasons(pattern, LAYOUT, layer), edges, len(REASONS)))
        for bs in (4, 16):
            ours = block_mask(pattern, LAYOUT, layer, block_size=bs)
            ref = create_block_mask(mask_mod(pattern, LAYOUT, layer), None, None, 37, 37, device="cpu", BLOCK_SIZE=bs)
            assert_same_tables(ours, ref)
            assert torch.equal(dense_of(ours, 37)[0], masks[layer])


def test_closed_form_reach_is_used_and_exact():
    """A strided layer without documents spreads by the part's closed form (O(L) per layer, never the
    mask function); 4096 positions, equal to the dense reference."""
    pattern = AttentionPattern(window=16, causal=True, global_positions=(0,), parts=(Strided(64),))
    calls = []
    original = Strided.mask_fn

    def counting(self, length, layer, device=None):
        fn = original(self, length, layer, device)
        return None if fn is None else (lambda *a: calls.append(1) or fn(*a))

    L, n = 600, 3
    want = spread(build_masks(pattern, L, n), [5, 300])
    Strided.mask_fn = counting
    try:
        got = spread_pattern(pattern, L, n, [5, 300])
    finally:
        Strided.mask_fn = original
    assert torch.equal(got.reached, want.reached) and calls == []
    # by hand, L = 4096 from 4000: layer 1 adds 4001..4015 (window) and 4064 (stride); layer 2 the
    # window of those (to 4030, 4064..4079) and their strides (4064..4079 again; 4128.. is past L)
    first = spread_pattern(pattern, 4096, 2, [4000]).first_layer
    assert [int(first[t]) for t in (4015, 4016, 4064, 4030, 4065, 4079, 4080, 4095, 0)] == [1, 2, 1, 2, 2, 2, -1, -1, -1]
    assert int((first >= 0).sum()) == 31 + 16


def test_models_follow_the_part():
    """with_pattern: the dense and tiled backends agree on a strided pattern (tiny GPT-2), which
    differs from the window alone."""
    model = tiny_model("gpt2")
    ids = torch.randint(3, 100, (1, 70), generator=torch.Generator().manual_seed(0))
    pattern = AttentionPattern(window=8, causal=True, parts=(Strided(8),))
    with torch.no_grad():
        with with_pattern(model, pattern, backend="dense") as m:
            dense = m(input_ids=ids).last_hidden_state
        with with_pattern(model, pattern, backend="tiled") as m:
            tiled = m(input_ids=ids).last_hidden_state
        with with_pattern(model, AttentionPattern(window=8, causal=True), backend="dense") as m:
            window_only = m(input_ids=ids).last_hidden_state
    assert (tiled - dense).abs().max() <= 1e-5
    assert (dense[0, 8:] - window_only[0, 8:]).abs().max() > 1e-3
    assert (dense[0, :8] - window_only[0, :8]).abs().max() <= 1e-6   # q < 8: no strided key beyond the window


def test_prompt_gradient_follows_the_part(tmp_path):
    """A suffix prompt out of [CLS]'s window: gradient exactly 0; a stride that lands on it: non-zero."""
    from tests.test_mask_zoo_training import prompt_grad, setup

    placement = PromptPlacement("suffix", n_tokens=3)           # [CLS] t*6 p p p [SEP]: prompt 7..9
    layout = placement.layout(6)
    blocked = AttentionPattern(window=2)
    reaching = AttentionPattern(window=2, parts=(Strided(7),))   # [CLS] (0) sees key 7 in one step
    for pattern, reaches in ((blocked, False), (reaching, True)):
        assert bool(spread_pattern(pattern, layout, 2).reached[-1, 0]) is reaches
        model, rows = setup(tmp_path, pattern, placement)
        g = prompt_grad(model, rows)
        assert (g > 0) is reaches and (reaches or g == 0.0), (pattern, g)


def test_saved_and_loaded():
    pattern = AttentionPattern(window=(4, 8), causal=True, parts=(Strided((8, None)), Strided(3)))
    d = json.loads(json.dumps(pattern_to_dict(pattern)))
    assert d["parts"] == [{"part": "strided", "stride": [8, None]}, {"part": "strided", "stride": 3}]
    assert pattern_from_dict(d) == pattern
    old = {k: v for k, v in pattern_to_dict(AttentionPattern(window=4)).items() if k != "parts"}
    assert pattern_from_dict(old) == AttentionPattern(window=4)          # runs saved before parts
    assert part_from_dict({"part": "strided", "stride": 5}) == Strided(5)
    assert part_from_text("strided:8,none") == Strided((8, None)) and part_from_text("Strided: 4") == Strided(4)
    assert describe(pattern) == "causal window=4,8, strided 8,none, strided 3"


@pytest.mark.parametrize("make, error, words", [
    (lambda: Strided(0), ValueError, "stride must be an int >= 1"),
    (lambda: Strided(2.5), ValueError, "got 2.5"),
    (lambda: Strided(()), ValueError, "has no layers"),
    (lambda: AttentionPattern(parts=("strided",)), TypeError, "not a mask part; use instances of attnviz.masks.strided.Strided"),
    (lambda: AttentionPattern(parts=Strided(3)), TypeError, "parts must be a tuple"),
    (lambda: AttentionPattern(window=(2, 2, 2), parts=(Strided((3, 3)),)), ValueError, r"different lengths \[2, 3\]"),
    (lambda: part_from_text("strided"), ValueError, "needs its settings after a colon, e.g. strided:8"),
    (lambda: part_from_text("dilated:3"), ValueError, "unknown mask part 'dilated'.*known: strided"),
    (lambda: part_from_text("strided:x"), ValueError, "invalid strided setting 'x'"),
    (lambda: part_from_dict({"part": "nope"}), ValueError, "not a saved mask part"),
    (lambda: AttentionPattern(parts=(Strided((2, 2)),)).check_layers(3), ValueError, "per-layer settings for 2 layers"),
])
def test_bad_values_are_named(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_native_families_refuse_parts():
    model = tiny_model("mistral")
    with pytest.raises(ValueError, match=r"cannot express parts=\(Strided\(stride=8\),\) natively.*with_pattern"):
        to_native(AttentionPattern(window=8, causal=True, parts=(Strided(8),)), model)


@pytest.mark.parametrize("pattern", PATTERNS[:3] + PATTERNS[4:], ids=describe)
def test_views_without_the_part_closed_forms(pattern, monkeypatch):
    """A part that gives neither ``reach`` nor ``pairs``: every view evaluates its mask function on
    the grid (row blocks) and still equals the dense reference."""
    monkeypatch.setattr(Strided, "pairs", lambda self, *a, **k: None)
    monkeypatch.setattr(Strided, "reach", lambda self, *a, **k: None)
    n = 3
    masks = build_masks(pattern, LAYOUT, n)
    got = spread_pattern(pattern, LAYOUT, n, [5, 20])
    assert torch.equal(got.reached, spread(masks, [5, 20]).reached)
    for layer in range(n):
        assert torch.equal(keys_per_query(pattern, LAYOUT, layer), masks[layer].sum(-1))
        edges = block_edges(37, 5, LAYOUT)
        got = pooled_reasons(pattern, LAYOUT, layer, edges)
        assert torch.equal(got.counts, pool_counts(mask_reasons(pattern, LAYOUT, layer), edges, len(REASONS)))


@pytest.mark.parametrize("part, L", [(Strided(3), 10), (Strided((4, None)), 9), (Strided(20), 7)])
def test_pairs_enumerate_each_allowed_pair_once(part, L):
    for layer in range(part.num_layers or 1):
        fn = part.mask_fn(L, layer)
        chunks = list(part.pairs(L, layer, per_chunk=5))
        got = torch.zeros(L, L, dtype=torch.int64)
        for q, k in chunks:
            got.index_put_((q, k), torch.ones_like(q), accumulate=True)
        want = torch.zeros(L, L, dtype=torch.int64) if fn is None else fn(None, None, torch.arange(L)[:, None],
                                                                          torch.arange(L)[None, :]).long()
        assert torch.equal(got, want)


def test_cost_measurement_in_a_fresh_process_keeps_the_part():
    """measure_isolated sends the pattern to a child process as JSON: the part must arrive by name."""
    from attnviz.costs import measure_isolated

    pattern = AttentionPattern(window=8, causal=True, parts=(Strided(8),))
    (m,) = measure_isolated([dict(pattern=pattern, layout=256, num_heads=2, head_dim=16, backend="dense", repeats=1)])
    assert m.predicted.pairs == int(build_masks(pattern, 256, 1)[0].sum()) == 256 * 8 - 28 + sum(q // 8 for q in range(256))
