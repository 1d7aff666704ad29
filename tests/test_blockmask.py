"""attnviz.blockmask: the structural FlexAttention BlockMask equals create_block_mask's, and the flex
backend never evaluates a mask_mod over L²."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn.attention.flex_attention import _ordered_to_dense, and_masks, create_block_mask

from attnviz import AttentionPattern, PromptPlacement, build_masks, mask_mod
from attnviz.blockmask import block_mask, block_tables, key_tiles
from attnviz.models import tiny_model, with_pattern

TABLES = ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices",
          "q_num_blocks", "q_indices", "full_q_num_blocks", "full_q_indices")
PLACEMENTS = ("prefix", "infix", "suffix", "scattered")


def dense_of(bm, L):
    """bool ``(B, L, L)`` that a BlockMask stands for: full tiles all True, partial tiles through
    its mask_mod, empty tiles False (what the kernel computes)."""
    B = bm.kv_num_blocks.shape[0]
    nt = bm.kv_indices.shape[-1]
    bs = bm.BLOCK_SIZE[0]
    partial = _ordered_to_dense(bm.kv_num_blocks, bm.kv_indices, nt)[:, 0].bool()
    full = _ordered_to_dense(bm.full_kv_num_blocks, bm.full_kv_indices, nt)[:, 0].bool()
    assert not (partial & full).any()
    up = lambda t: t.repeat_interleave(bs, 1).repeat_interleave(bs, 2)[:, :L, :L]
    b = torch.arange(B)[:, None, None]
    q = torch.arange(L)[None, :, None]
    k = torch.arange(L)[None, None, :]
    mod = bm.mask_mod(b, torch.zeros((), dtype=torch.long), q, k).expand(B, L, L)
    return up(full) | (up(partial) & mod)


def assert_same_tables(ours, ref):
    assert ours.BLOCK_SIZE == ref.BLOCK_SIZE and ours.seq_lengths == ref.seq_lengths
    for name in TABLES:
        assert torch.equal(getattr(ours, name), getattr(ref, name)), name


@st.composite
def cases(draw):
    """(pattern, layout or int, L, num_layers, block) with L up to 150 and tiles of 4..32."""
    num_layers = draw(st.integers(1, 3))
    causal = draw(st.booleans())
    one = st.none() | (st.integers(1, 40) if causal else st.integers(1, 20).map(lambda h: 2 * h))
    window = draw(one | st.tuples(*[one] * num_layers))
    dil = st.integers(1, 3)
    dilation = draw(dil | st.tuples(*[dil] * num_layers))
    if draw(st.booleans()):
        kind = draw(st.sampled_from(PLACEMENTS))
        text_len = draw(st.integers(0, 120))
        extra = {"at": draw(st.integers(0, text_len))} if kind == "infix" else {}
        if kind == "scattered":
            extra["every"] = draw(st.integers(1, 30))
        placement = PromptPlacement(kind, n_tokens=draw(st.integers(1, 12)), **extra)
        layout = placement.layout(text_len, cls=draw(st.booleans()), sep=draw(st.booleans()))
        L = layout.length
    else:
        L = draw(st.integers(1, 150))
        layout = L
    globals_ = tuple(draw(st.lists(st.integers(0, L - 1), max_size=4, unique=True)))
    random_blocks = draw(st.integers(0, 2))
    # the mask zoo (#17): prefix-LM, attention sinks, chunks per layer, packed documents
    chunk = st.none() | st.integers(1, 40)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(L - 1, 1)), max_size=3)))) if L > 1 else []
    documents = tuple(b - a for a, b in zip([0] + cuts, cuts + [L])) if draw(st.booleans()) else ()
    pattern = AttentionPattern(
        window=window, causal=causal, global_positions=globals_, global_prompt=draw(st.booleans()),
        dilation=dilation, random_blocks=random_blocks,
        block_size=draw(st.integers(1, 24)) if random_blocks else None, seed=draw(st.integers(0, 1000)),
        prefix_lm=draw(st.none() | st.integers(1, L)), sinks=draw(st.integers(0, 3) | st.just(0)),
        chunk=draw(chunk | st.tuples(*[chunk] * num_layers)), documents=documents,
    )
    return pattern, layout, L, num_layers, draw(st.sampled_from((4, 8, 16, 32)))


PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(cases())
def test_structural_block_mask_equals_create_block_mask(case):
    pattern, layout, L, n, bs = case
    masks = build_masks(pattern, layout, n)
    for layer in range(n):
        ours = block_mask(pattern, layout, layer, block_size=bs)
        ref = create_block_mask(mask_mod(pattern, layout, layer), None, None, L, L, device="cpu", BLOCK_SIZE=bs)
        assert_same_tables(ours, ref)                               # same tiles, same full / partial split
        assert torch.equal(dense_of(ours, L)[0], masks[layer])      # and the kernel's mask is build_masks'


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.data())
def test_key_padding_folds_in_per_tile(case, data):
    pattern, layout, L, n, bs = case
    lengths = data.draw(st.lists(st.integers(0, L), min_size=1, max_size=3))
    pad = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]          # (B, L) right padding
    if data.draw(st.booleans()):  # and arbitrary holes
        pad &= torch.rand(len(lengths), L, generator=torch.Generator().manual_seed(L)) > 0.2
    layer = n - 1
    ours = block_mask(pattern, layout, layer, key_padding=pad, block_size=bs)
    ref = create_block_mask(and_masks(mask_mod(pattern, layout, layer), lambda b, h, q, k: pad[b, k]),
                            len(lengths), None, L, L, device="cpu", BLOCK_SIZE=bs)
    # Full tiles are exact (pattern full AND only real keys); a tile where the pattern's allowed cells
    # and the real keys both exist but never meet stays partial (its mask_mod says False): a few
    # extra partial tiles, only in key tiles that mix real and padded keys.
    nt = ref.kv_indices.shape[-1]
    dense = lambda n, i: _ordered_to_dense(n, i, nt)[:, 0].bool()
    assert torch.equal(dense(ours.full_kv_num_blocks, ours.full_kv_indices),
                       dense(ref.full_kv_num_blocks, ref.full_kv_indices))
    ours_p, ref_p = dense(ours.kv_num_blocks, ours.kv_indices), dense(ref.kv_num_blocks, ref.kv_indices)
    assert not (ref_p & ~ours_p).any()
    only_real, any_real = key_tiles(pad, bs)
    assert not (ours_p & ~ref_p & (only_real | ~any_real)[:, None, :]).any()
    expected = build_masks(pattern, layout, n)[layer][None] & pad[:, None, :]
    assert torch.equal(dense_of(ours, L), expected)


# ---- hand-worked cases --------------------------------------------------------------------------
def test_band_tiles_by_hand():
    # window 256 = 128 keys each side, tiles of 128, L = 4096 (32 tiles): the diagonal tile holds
    # |q - k| <= 127 only, so it is full; its two neighbours hold offsets 1..255: partial; the rest empty.
    t = block_tables(AttentionPattern(window=256), 4096, 0)
    i = torch.arange(32)
    assert torch.equal(t.full, i[:, None] == i[None, :])
    assert torch.equal(t.partial, (i[:, None] - i[None, :]).abs() == 1)
    assert int(t.full.sum()) == 32 and int(t.partial.sum()) == 62
    # a global [CLS] makes tile row 0 and tile column 0 non-empty, partial where not full
    g = block_tables(AttentionPattern(window=256, global_positions=(0,)), 4096, 0)
    assert int(g.full.sum()) == 32 and int(g.partial.sum()) == 62 + 2 * 30


def test_causal_and_short_last_tile_by_hand():
    # causal full attention, L = 8, tiles of 4: diagonal tiles partial, below full, above empty
    t = block_tables(AttentionPattern(causal=True), 8, 0, block_size=4)
    assert t.full.tolist() == [[False, False], [True, False]]
    assert t.partial.tolist() == [[True, False], [False, True]]
    # full attention, L = 10: the last tiles are cut short (2 positions) and count as partial,
    # as create_block_mask pads the grid with blocked cells
    t = block_tables(AttentionPattern(), 10, 0, block_size=4)
    assert t.full.tolist() == [[True, True, False], [True, True, False], [False, False, False]]
    assert t.partial.tolist() == [[False, False, True], [False, False, True], [True, True, True]]


def test_key_tiles_by_hand():
    pad = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    only_real, any_real = key_tiles(pad, 4)
    assert only_real.tolist() == [[True, False, False], [True, True, False]]   # last tile is 2 long
    assert any_real.tolist() == [[True, True, False], [True, True, True]]


def test_cached_per_pattern_layout_layer_device():
    p = AttentionPattern(window=(4, 8), global_positions=(0,))
    assert block_mask(p, 300, 0) is block_mask(p, 300, 0)
    assert block_mask(p, 300, 0) is not block_mask(p, 300, 1)
    assert block_mask(p, 300, 0) is not block_mask(p, 301, 0)
    assert block_tables(p, 300, 1) is block_tables(p, 300, 1)


def test_bad_input_names_the_value():
    p = AttentionPattern(window=4)
    with pytest.raises(ValueError, match=r"block_size must be an int >= 1 .*got 0"):
        block_mask(p, 10, 0, block_size=0)
    with pytest.raises(ValueError, match=r"key_padding must be a bool tensor \(B, 10\).*got \(2, 9\)"):
        block_mask(p, 10, 0, key_padding=torch.ones(2, 9, dtype=torch.bool))
    with pytest.raises(TypeError, match="pattern must be an attnviz.AttentionPattern, got dict"):
        block_tables({}, 10, 0)
    with pytest.raises(ValueError, match="layer 2 is outside the pattern's layers"):
        block_tables(AttentionPattern(window=(2, 4)), 10, 2)


# ---- the flex backend ---------------------------------------------------------------------------
@pytest.fixture
def no_create_block_mask(monkeypatch):
    """Make torch's create_block_mask (the L² path) fail loudly if anything calls it."""
    import torch.nn.attention.flex_attention as fa

    def refuse(*args, **kwargs):
        raise AssertionError("create_block_mask evaluates mask_mod over L²; the flex backend must not call it")

    monkeypatch.setattr(fa, "create_block_mask", refuse)


@pytest.mark.parametrize("family,pattern,L", [
    ("bert", AttentionPattern(window=8, global_positions=(0, 33), dilation=2, random_blocks=1, block_size=16), 150),
    ("bert", AttentionPattern(window=(None, 6)), 140),
    ("gpt2", AttentionPattern(window=20, causal=True, global_positions=(5,)), 140),
    ("mistral", AttentionPattern(window=(9, 33), causal=True), 131),
])
def test_flex_backend_equals_dense_without_create_block_mask(family, pattern, L, no_create_block_mask):
    model = tiny_model(family)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 100, (2, L), generator=g)
    mask = torch.ones(2, L, dtype=torch.long)
    mask[1, L - 13:] = 0
    real = mask.bool()
    with torch.no_grad():
        with with_pattern(model, pattern, backend="dense") as m:
            dense = m(input_ids=ids, attention_mask=mask).last_hidden_state
            dense_unpadded = m(input_ids=ids).last_hidden_state
        with with_pattern(model, pattern, backend="flex", compile=False) as m:
            flex = m(input_ids=ids, attention_mask=mask).last_hidden_state
            flex_unpadded = m(input_ids=ids).last_hidden_state
    assert (flex - dense)[real].abs().max() <= 1e-4
    assert (flex_unpadded - dense_unpadded).abs().max() <= 1e-4
    full = model(input_ids=ids).last_hidden_state
    assert (dense_unpadded - full).abs().max() > 1e-3  # the pattern matters here


def test_flex_backend_with_native_window_and_4d_mask(no_create_block_mask):
    # a model mask that is neither plain bidirectional nor causal (Mistral's own sliding window), and
    # a caller's 4D mask: ANDed through mask_mod on the pattern's non-empty tiles
    pattern = AttentionPattern(window=(40, 12), causal=True, global_positions=(3,))
    ids = torch.randint(3, 100, (1, 140), generator=torch.Generator().manual_seed(2))
    model = tiny_model("mistral", sliding_window=24)
    outs = {}
    with torch.no_grad(), pytest.warns(UserWarning, match="sliding_window=24 still applies"):
        for backend in ("dense", "flex"):
            with with_pattern(model, pattern, backend=backend, compile=False) as m:
                outs[backend] = m(input_ids=ids).last_hidden_state
    assert (outs["flex"] - outs["dense"]).abs().max() <= 1e-4

    bert = tiny_model("bert")
    keep = torch.ones(1, 1, 140, 140, dtype=torch.bool)
    keep[..., 100:] = False
    with torch.no_grad():
        for backend in ("dense", "flex"):
            with with_pattern(bert, AttentionPattern(window=16), backend=backend, compile=False) as m:
                outs[backend] = m(input_ids=ids, attention_mask=keep).last_hidden_state
    # rows 0..99 (their keys are real); rows past 107 have no allowed key at all: flex gives zeros there
    assert (outs["flex"] - outs["dense"])[:, :100].abs().max() <= 1e-4


def test_flex_backend_reuses_one_block_mask_per_layer():
    from attnviz.models.interface import _PatternAttention

    model = tiny_model("bert")
    state = _PatternAttention(model, AttentionPattern(window=8, global_positions=(0,)), None, "flex", False)
    first = [state._flex_block_mask(layer, 300, torch.device("cpu"), None) for layer in range(2)]
    again = [state._flex_block_mask(layer, 300, torch.device("cpu"), None) for layer in range(2)]
    assert all(a is b for a, b in zip(first, again))
    assert first[0].kv_indices.shape == (1, 1, 3, 3)  # 300 positions in tiles of 128
