"""capture_attention: one square map per layer and head from every backend; pooled views for long inputs."""

import pytest
import torch
import transformers as tf

from attnviz import AttentionPattern, PromptPlacement, build_masks
from attnviz.capture import AttentionMaps, capture_attention, pool_edges, units_of
from attnviz.models.native import to_native
from attnviz.models.positions import extend_positions
from attnviz.models.tiny import tiny_model

tf.logging.set_verbosity_error()


def ids_for(length, seed=0, batch=1):
    return torch.randint(3, 128, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def bert():
    return tiny_model("bert")


def block_means(dense, unit_of):
    """Reference pooling, one unit pair at a time: mean of dense[..., rows of u, cols of v]."""
    U = int(unit_of.max()) + 1
    out = torch.empty(*dense.shape[:-2], U, U)
    for u in range(U):
        for v in range(U):
            out[..., u, v] = dense[..., unit_of == u, :][..., unit_of == v].mean((-2, -1))
    return out


def test_exact_maps_equal_output_attentions(bert):
    ids = ids_for(12, batch=2)
    with torch.no_grad():
        ref = torch.stack(bert(ids, output_attentions=True).attentions)[:, 1]
    maps = capture_attention(bert, {"input_ids": ids}, index=1)
    assert isinstance(maps, AttentionMaps) and not maps.pooled
    assert maps.values.shape == (2, 4, 12, 12) and maps.layers == (0, 1) and maps.heads == (0, 1, 2, 3)
    assert torch.equal(maps.values, ref)
    some = capture_attention(bert, {"input_ids": ids}, index=1, layers=[1], heads=(0, 3))
    assert some.values.shape == (1, 2, 12, 12) and torch.equal(some.values, ref[1:, [0, 3]])


def test_padding_positions_are_dropped(bert):
    ids = ids_for(12, batch=2)
    am = torch.ones(2, 12, dtype=torch.long)
    am[1, 9:] = 0
    with torch.no_grad():
        ref = torch.stack(bert(ids[1:, :9], output_attentions=True).attentions)[:, 0]
    maps = capture_attention(bert, {"input_ids": ids, "attention_mask": am}, index=1)
    assert maps.length == 9 and (maps.values - ref).abs().max() <= 1e-6


def test_causal_model_exact_zeros_above_the_diagonal():
    maps = capture_attention(tiny_model("gpt2"), {"input_ids": ids_for(9)})
    lower = torch.ones(9, 9, dtype=torch.bool).tril()
    assert torch.count_nonzero(maps.values[..., ~lower]) == 0 and bool((maps.values[..., lower] > 0).all())


def test_pool_edges():
    assert pool_edges(12, 4, keep=[5]) == (0, 4, 5, 6, 8, 12)
    assert units_of(pool_edges(12, 4, keep=[5])).tolist() == [0, 0, 0, 0, 1, 2, 3, 3, 4, 4, 4, 4]
    assert pool_edges(10, 4, keep=[3, 4]) == (0, 3, 4, 5, 8, 10)
    assert pool_edges(3, None) == (0, 1, 2, 3)
    assert pool_edges(10, (0, 1, 7, 10)) == (0, 1, 7, 10)
    with pytest.raises(ValueError, match=r"keep positions \[12\] are outside \[0, 12\)"):
        pool_edges(12, 4, keep=[12])
    with pytest.raises(ValueError, match="pool must be a block size >= 1"):
        pool_edges(12, 0)
    with pytest.raises(ValueError, match="must rise strictly from 0 to L=10"):
        pool_edges(10, (0, 5, 5, 10))


def test_pooled_values_are_block_means_with_exact_prompt_rows(bert):
    layout = PromptPlacement("infix", n_tokens=3, at=6).layout(text_len=12)     # L = 17, prompt 7, 8, 9
    ids = ids_for(layout.length)
    dense = capture_attention(bert, {"input_ids": ids}).values
    pooled = capture_attention(bert, {"input_ids": ids}, pool=4, keep=layout)
    assert pooled.pooled and pooled.kept == (7, 8, 9) and pooled.block_size == 4
    assert pooled.edges == (0, 4, 7, 8, 9, 10, 12, 16, 17)
    assert pooled.unit_sizes.tolist() == [4, 3, 1, 1, 1, 2, 4, 1]
    assert pooled.values.shape == (2, 4, 8, 8)
    assert (pooled.values - block_means(dense, pooled.unit_of)).abs().max() <= 1e-6
    u = [int(pooled.unit_of[p]) for p in (7, 8, 9)]
    assert torch.equal(pooled.values[..., u, :][..., u], dense[..., 7:10, 7:10])     # prompt x prompt exact
    assert (pooled.values[..., u[0], 0] - dense[..., 7, 0:4].mean(-1)).abs().max() <= 1e-6
    assert pooled.unit_positions(5) == range(10, 12)
    edged = capture_attention(bert, {"input_ids": ids}, pool=(0, 1, 7, 10, 17))     # e.g. from pooling.block_edges
    assert edged.values.shape == (2, 4, 4, 4) and edged.block_size is None and edged.pooled
    assert (edged.values - block_means(dense, edged.unit_of)).abs().max() <= 1e-6
    # without kept positions on an aligned length: a plain reshape-mean
    grid = capture_attention(bert, {"input_ids": ids[:, :16]}, pool=4)
    plain = capture_attention(bert, {"input_ids": ids[:, :16]}).values
    assert (grid.values - plain.reshape(2, 4, 4, 4, 4, 4).mean((3, 5))).abs().max() <= 1e-6


def test_longformer_pooled_from_the_band_equals_block_means_of_its_square():
    model = tiny_model("longformer", attention_window=[4, 8])
    layout = PromptPlacement("prefix", n_tokens=3).layout(text_len=20)           # L = 25
    native = to_native(AttentionPattern(window=(4, 8), global_prompt=True), model, layout)
    inputs = {"input_ids": ids_for(layout.length), **native.inputs}
    dense = capture_attention(model, inputs)
    pooled = capture_attention(model, inputs, pool=8, keep=layout, layers=1, heads=[2])
    assert pooled.values.shape[:2] == (1, 1) and pooled.layers == (1,) and pooled.heads == (2,)
    assert (pooled.values - block_means(dense.values[1:, 2:3], pooled.unit_of)).abs().max() <= 1e-6
    masks = build_masks(native.pattern, layout, 2)[:, None].expand_as(dense.values)
    assert torch.count_nonzero(dense.values[~masks]) == 0


def test_long_input_is_captured_pooled_and_refused_exact():
    """2048 tokens: pooled maps of (2 layers, 4 heads, 37, 37) instead of (2, 4, 2048, 2048):
    [CLS], 20 prompt tokens, [21, 128) and 15 blocks of 128."""
    model = extend_positions(tiny_model("bert"), 2048)
    layout = PromptPlacement("prefix", n_tokens=20).layout(text_len=2026)          # L = 2048
    inputs = {"input_ids": ids_for(2048)}
    with pytest.raises(ValueError, match=r"2 layers x 4 heads x 2048\^2 floats take 0.1 GiB .* pass pool="):
        capture_attention(model, inputs, max_bytes=2**26)
    maps = capture_attention(model, inputs, pool=128, keep=layout, max_bytes=2**26)
    assert maps.values.shape == (2, 4, 37, 37) and maps.nbytes == 2 * 4 * 37 * 37 * 4
    assert maps.edges[:3] == (0, 1, 2) and maps.edges[20:24] == (20, 21, 128, 256)
    sums = (maps.values * maps.unit_sizes.to(torch.float32)).sum(-1)               # rows still sum to one
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-4)


def test_errors(bert):
    with pytest.raises(ValueError, match=r"layers \[2\] are not in \[0, 2\)"):
        capture_attention(bert, {"input_ids": ids_for(5)}, layers=[2])
    with pytest.raises(ValueError, match=r"heads \[4\] are not in \[0, 4\)"):
        capture_attention(bert, {"input_ids": ids_for(5)}, heads=[4])
    with pytest.raises(ValueError, match="need input_ids or inputs_embeds"):
        capture_attention(bert, {})
    sdpa = tiny_model("bert")
    sdpa.set_attn_implementation("sdpa")
    with pytest.raises(ValueError, match=r"returned no attention probabilities .*set_attn_implementation\(.eager.\)"):
        capture_attention(sdpa, {"input_ids": ids_for(5)})
