"""Attention at any length: the tiled backend and the tiled capture equal the dense path exactly
(within float rounding) on tiny BERT / GPT-2 / Mistral, with windows, globals, dilation, random
blocks, causality, padding and a prompt layout; the cost model is checked on a hand-worked case."""

import warnings

import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement, build_masks, insert_prompt, with_pattern
from attnviz.capture import capture_attention, capture_rows
from attnviz.costs import capture_cost
from attnviz.models import tiny_model
from attnviz.tiled_attention import tiled_attention

CASES = [
    ("bert", AttentionPattern(window=8, global_positions=(0,), dilation=2)),
    ("bert", AttentionPattern(window=16, random_blocks=1, block_size=32, global_positions=(3, 4))),
    ("gpt2", AttentionPattern(window=8, causal=True, global_positions=(0,))),
    ("mistral", AttentionPattern(window=12, causal=True, global_positions=(2,), dilation=(1, 2))),
]
L, PAD_FROM = 300, 250   # two rows: the second padded from position 250 on


def _model(kind):
    kw = {"max_position_embeddings": 512} if kind in ("bert", "gpt2") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = tiny_model(kind, **kw)
    return m.eval()


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 90, (2, L), generator=g)
    am = torch.ones(2, L, dtype=torch.long)
    am[1, PAD_FROM:] = 0
    return {"input_ids": ids, "attention_mask": am}


def _last_hidden(out):
    return out.hidden_states[-1]


@pytest.mark.parametrize("kind,pattern", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_tiled_backend_equals_dense_and_capture_equals_eager_capture(kind, pattern):
    model, inputs = _model(kind), _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hidden = {}
        for backend in ("dense", "tiled"):
            with with_pattern(model, pattern, backend=backend) as m, torch.no_grad():
                hidden[backend] = _last_hidden(m(**inputs, output_hidden_states=True))
        assert torch.allclose(hidden["tiled"][0], hidden["dense"][0], atol=2e-6, rtol=0)
        assert torch.allclose(hidden["tiled"][1, :PAD_FROM], hidden["dense"][1, :PAD_FROM], atol=2e-6, rtol=0)
        for index, length in ((0, L), (1, PAD_FROM)):
            with with_pattern(model, pattern, backend="dense"):
                ref = capture_attention(model, inputs, index=index)
                ref_pooled = capture_attention(model, inputs, index=index, pool=16, keep=(0, 5, 6))
            got = capture_attention(model, inputs, index=index, pattern=pattern)
            pooled = capture_attention(model, inputs, index=index, pool=16, keep=(0, 5, 6), pattern=pattern)
            rows = capture_rows(model, inputs, (0, 7, length - 1), pattern, index=index, layers=(1,), heads=(0, 3))
    assert got.source == "tiled" and got.values.shape == ref.values.shape == (2, 4, length, length)
    assert (got.values - ref.values).abs().max() <= 1e-6
    assert pooled.edges == ref_pooled.edges and (pooled.values - ref_pooled.values).abs().max() <= 1e-6
    masks = build_masks(pattern, L, 2)[:, :length, :length]   # the model ran on all L positions (padded)
    assert (got.values.permute(1, 0, 2, 3)[:, ~masks] == 0).all()        # exactly zero where the pattern blocks
    torch.testing.assert_close(got.values.sum(-1), torch.ones(2, 4, length), atol=1e-5, rtol=0)
    assert rows.values.shape == (1, 2, 3, length) and rows.rows == (0, 7, length - 1)
    assert (rows.values - ref.values[1:2][:, [0, 3]][:, :, [0, 7, length - 1]]).abs().max() <= 1e-6


def test_capture_with_a_prompt_layout_and_global_prompt():
    model = _model("bert")
    layout = PromptPlacement("infix", n_tokens=6, at=100).layout(text_len=250)
    pattern = AttentionPattern(window=10, global_prompt=True, global_positions=(0,))
    g = torch.Generator().manual_seed(3)
    embeds = model.get_input_embeddings()(torch.randint(5, 90, (1, 252), generator=g))
    prompt = torch.randn(6, embeds.shape[-1], generator=g)
    inputs = {"inputs_embeds": insert_prompt(embeds, prompt, layout)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with with_pattern(model, pattern, layout, backend="dense"):
            ref = capture_attention(model, inputs, pool=32, keep=layout)
        got = capture_attention(model, inputs, pool=32, keep=layout, pattern=pattern, layout=layout)
        rows = capture_rows(model, inputs, layout, pattern, layout=layout)
    assert got.kept == tuple(layout.prompt_positions)
    assert (got.values - ref.values).abs().max() <= 1e-6
    # the prompt rows attend everywhere (global): a row's total over all keys is 1
    assert rows.rows == tuple(layout.prompt_positions) + (layout.readout_position,)
    torch.testing.assert_close(rows.values.sum(-1), torch.ones(2, 4, 7), atol=1e-5, rtol=0)


def test_chunked_keys_give_the_same_probabilities_and_output():
    """A global row sees every key: with max_keys of one tile it is done in many chunks (one pass for
    the log-sum-exp, one for the probabilities) and must equal the single-chunk result."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 200, 8, generator=g) for _ in range(3))
    k, v = k[:, :2], v[:, :2]                                              # grouped-query: 2 key heads
    allowed = build_masks(AttentionPattern(window=6, global_positions=(1,)), 200, 1)[0]

    def rule(b, qi, ki):
        return allowed[qi, ki]

    seen = {}

    def collect(name):
        def sink(b, q_pos, k_pos, p):
            seen.setdefault(name, torch.zeros(4, 200, 200))[:, q_pos[:, None], k_pos[None, :]] = p
        return sink

    tiles = torch.ones(4, 4, dtype=torch.bool)
    one = tiled_attention(q, k, v, scale=0.3, nonempty=tiles, pair_allowed=rule, block_size=64, on_tile=collect("one"))
    many = tiled_attention(q, k, v, scale=0.3, nonempty=tiles, pair_allowed=rule, block_size=64, max_keys=64,
                           on_tile=collect("many"))
    kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    scores = (q @ kk.transpose(-1, -2) * 0.3).masked_fill(~allowed, float("-inf"))
    probs = scores.softmax(-1)
    assert torch.allclose(one, (probs @ vv).transpose(1, 2), atol=1e-6) and torch.allclose(many, one, atol=1e-6)
    assert torch.allclose(seen["one"], probs[0], atol=1e-7) and torch.allclose(seen["many"], probs[0], atol=1e-7)
    with pytest.raises(ValueError, match="do not cover L=200 in blocks of 128"):
        tiled_attention(q, k, v, scale=1.0, nonempty=tiles, pair_allowed=rule, block_size=128)


def test_capture_cost_on_a_hand_worked_case():
    # L = 384 = 3 tiles of 128, window 2 (|q - k| <= 1): tile rows see tiles {0,1}, {0,1,2}, {1,2}
    cost = capture_cost(AttentionPattern(window=2), 384, 2, num_heads=2, head_dim=4, units=384)
    assert cost.computed_pairs == 2 * 128 * (256 + 384 + 256)
    assert cost.work_bytes == 4 * (2 * 2 * 128 * 384 + 2 * 2 * 384 * 4 + 2 * 128 * 384)
    assert cost.result_bytes == 4 * 2 * 2 * 384 * 384 and cost.peak_bytes == cost.work_bytes + cost.result_bytes
    capped = capture_cost(AttentionPattern(window=2, global_positions=(0,)), 384, 1, num_heads=1, head_dim=4,
                          units=10, max_keys=128)
    assert capped.work_bytes == 4 * (2 * 128 * 128 + 2 * 128 * 4 + 128 * 10)   # a global row: one tile at a time


def test_native_models_and_other_backends_are_refused_clearly():
    from attnviz.models import tiny_model as tm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        longformer = tm("longformer")
    ids = {"input_ids": torch.randint(5, 90, (1, 64))}
    with pytest.raises(ValueError, match="longformer does not support.*without pattern="):
        capture_attention(longformer, ids, pattern=AttentionPattern(window=8))
    with pytest.raises(ValueError, match="on_tile needs backend='tiled'.*got backend='dense'"):
        with with_pattern(_model("bert"), AttentionPattern(window=8), backend="dense", on_tile=print):
            pass


def test_prompt_on_text_takes_the_tiled_path_for_long_inputs_with_the_same_numbers(tmp_path):
    from attnviz.prompt_on_text import prompt_on_text

    from _prompt_fixtures import tiny_tokenizer

    model, tok = _model("bert"), tiny_tokenizer(tmp_path / "tok")
    text = " ".join(["w1 w2 w3 w4 w5 w6 w7 w8 w9 w10"] * 20)
    pattern = AttentionPattern(window=8, global_prompt=True, global_positions=(0,))
    prompt = torch.randn(4, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        short = prompt_on_text(model, tok, text, prompt, pattern, lambda n: PromptPlacement("infix", 4, at=n // 2),
                               layers=(0, 1), max_side=64)
        long = prompt_on_text(model, tok, text, prompt, pattern, lambda n: PromptPlacement("infix", 4, at=n // 2),
                              layers=(0, 1), max_side=64, long_from=100)
        with pytest.raises(ValueError, match="method 'rollout' needs the dense attention.*use method='ablation'"):
            prompt_on_text(model, tok, text, prompt, pattern, PromptPlacement("prefix", 4), method="rollout",
                           long_from=100)
    assert short.backend == "dense" and long.backend == "tiled" and long.layout.length > 100
    assert long.placement.at == 200 // 2 and long.layout == short.layout   # 200 text tokens + [CLS], [SEP]
    assert long.maps.pooled and long.maps.kept == tuple(long.layout.prompt_positions)
    assert (long.maps.values - short.maps.values).abs().max() <= 1e-6
    assert (long.influence.values - short.influence.values).abs().max() <= 1e-5
    # exact zeros where the prompt has not arrived, on the tiled path too
    assert (long.influence.values[~long.influence.reached] == 0).all()


@pytest.mark.parametrize("kind", ["gpt2", "mistral"])
def test_tiled_prefix_lm_on_a_padded_decoder_equals_dense(kind):
    """A prefix-LM pattern on a causal decoder, right padding: the tiled backend keeps the prefix
    square open (the model's causal mask must add only its padding) and equals dense."""
    model, inputs = _model(kind), _inputs()
    pattern = AttentionPattern(window=8, causal=True, prefix_lm=6, sinks=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with with_pattern(model, pattern, backend="dense"):
            ref = capture_attention(model, inputs, index=1)
        got = capture_attention(model, inputs, index=1, pattern=pattern)
    assert (got.values - ref.values).abs().max() <= 1e-6
    assert (got.values[:, :, 0, 1:6] > 0).all()          # [CLS] attends forward inside the prefix
