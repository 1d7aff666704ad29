"""with_pattern: attnviz patterns inside Hugging Face models through AttentionInterface."""

import pytest
import torch
import transformers as tf
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface

from attnviz import AttentionPattern, PromptPlacement, build_masks, insert_prompt
from attnviz.models import load_model, tiny_model, with_pattern


def tiny_llama():
    cfg = tf.LlamaConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return tf.AutoModel.from_config(cfg, attn_implementation="eager").eval()


def build(family):
    return tiny_llama() if family == "llama" else tiny_model(family)


CAUSAL = {"bert": False, "gpt2": True, "mistral": True, "llama": True}


def batch(length=10, pad_from=7, seed=0):
    """ids (2, length) and a mask whose second row is padded from ``pad_from`` on (right padding)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (2, length), generator=g)
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, pad_from:] = 0
    return ids, mask


def snapshot(out):
    return [out.last_hidden_state.detach().clone()] + [a.detach().clone() for a in out.attentions]


def assert_bitwise(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y), float((x - y).abs().max())


@pytest.fixture(scope="module")
def minilm():
    return load_model("default")


# ---- identity: a full pattern changes nothing, inside or after ---------------------------------
@pytest.mark.parametrize("family", ["bert", "gpt2", "mistral", "llama"])
def test_full_pattern_is_bitwise_identity(family):
    model = build(family)
    ids, mask = batch()
    config_before = model.config.to_dict()
    with torch.no_grad():
        ref = snapshot(model(input_ids=ids, attention_mask=mask, output_attentions=True))
        with with_pattern(model, AttentionPattern(causal=CAUSAL[family])) as m:
            assert m is model and model.config._attn_implementation.startswith("attnviz_dense_")
            inside = snapshot(m(input_ids=ids, attention_mask=mask, output_attentions=True))
        after = snapshot(model(input_ids=ids, attention_mask=mask, output_attentions=True))
    assert_bitwise(inside, ref)
    assert_bitwise(after, ref)
    assert model.config._attn_implementation == "eager"
    assert model.config.to_dict() == config_before


def test_minilm_full_pattern_is_bitwise_identity(minilm):
    model, tok, _ = minilm
    enc = tok(["attention windows shape how far a prompt reaches", "short text"], padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = snapshot(model(**enc, output_attentions=True))
        with with_pattern(model, AttentionPattern()) as m:
            inside = snapshot(m(**enc, output_attentions=True))
        after = snapshot(model(**enc, output_attentions=True))
    assert_bitwise(inside, ref)
    assert_bitwise(after, ref)
    assert model.config._attn_implementation == "eager"


def test_minilm_window_changes_outputs_and_zeros_blocked(minilm):
    model, tok, _ = minilm
    enc = tok("the prompt can only reach tokens inside its window at each layer", return_tensors="pt")
    L = enc["input_ids"].shape[1]
    pattern = AttentionPattern(window=4, global_positions=(0,))
    with torch.no_grad(), with_pattern(model, pattern) as m:
        out = m(**enc, output_attentions=True)
        full = model(**enc)  # same model inside the block: still patterned
    masks = build_masks(pattern, L, 6)
    for layer, a in enumerate(out.attentions):
        assert a.shape == (1, 12, L, L)
        assert (a[0][:, ~masks[layer]] == 0).all()
        assert (a[0][:, masks[layer]] > 0).all()
    assert torch.equal(full.last_hidden_state, out.last_hidden_state)
    with torch.no_grad():
        stock = model(**enc).last_hidden_state
    assert (stock - out.last_hidden_state).abs().max() > 1e-3


def test_restored_after_exception():
    model = tiny_model("bert")
    with pytest.raises(RuntimeError, match="boom"):
        with with_pattern(model, AttentionPattern(window=2)):
            name = model.config._attn_implementation
            raise RuntimeError("boom")
    assert model.config._attn_implementation == "eager"
    assert name not in AttentionInterface._global_mapping
    assert name not in AttentionMaskInterface._global_mapping


# ---- agreement with a native implementation ----------------------------------------------------
def test_mistral_native_sliding_window_equals_pattern():
    W, L = 4, 13
    native = tiny_model("mistral", sliding_window=W)
    plain = tiny_model("mistral")  # same seed, same weights, sliding_window=None
    ids, mask = batch(L, pad_from=10)
    with torch.no_grad():
        want = native(input_ids=ids, attention_mask=mask, output_attentions=True)
        unwindowed = plain(input_ids=ids, attention_mask=mask).last_hidden_state
        with with_pattern(plain, AttentionPattern(window=W, causal=True)) as m:
            got = m(input_ids=ids, attention_mask=mask, output_attentions=True)
    real = mask.bool()
    assert (got.last_hidden_state - want.last_hidden_state)[real].abs().max() <= 1e-5
    for a, b in zip(got.attentions, want.attentions):  # (B, H, L, L), compared on real queries
        assert (a - b).transpose(1, 2)[real].abs().max() <= 1e-5
    assert (unwindowed - want.last_hidden_state)[real].abs().max() > 1e-3  # the window matters here


# ---- dense probabilities -----------------------------------------------------------------------
def test_dense_probabilities_exact_zeros_with_prompt_layout():
    model = tiny_model("bert")
    layout = PromptPlacement("infix", n_tokens=3, at=4).layout(text_len=10)
    pattern = AttentionPattern(window=(2, 4), global_prompt=True, global_positions=(0,), dilation=(1, 2))
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 100, (2, layout.n_tokens), generator=g)
    embeds = insert_prompt(model.embeddings.word_embeddings(ids), torch.randn(3, 32, generator=g), layout)
    with torch.no_grad(), with_pattern(model, pattern, layout=layout) as m:
        out = m(inputs_embeds=embeds, output_attentions=True)
    masks = build_masks(pattern, layout, 2)
    assert masks[0].float().mean() < 0.6  # a real pattern, not nearly full
    for layer, a in enumerate(out.attentions):
        assert a.shape == (2, 4, layout.length, layout.length)
        assert (a[:, :, ~masks[layer]] == 0).all()
        assert (a[:, :, masks[layer]] > 0).all()
        assert torch.allclose(a.sum(-1), torch.ones(()), atol=1e-6)


@pytest.mark.parametrize("family", ["bert", "gpt2", "mistral"])
def test_padding_matches_unpadded_and_gets_zero_probability(family):
    model = tiny_model(family)
    n_real = 7
    ids, mask = batch(11, pad_from=n_real)
    causal = CAUSAL[family]
    pattern = AttentionPattern(window=3 if causal else 4, causal=causal, global_positions=(1,))
    with torch.no_grad(), with_pattern(model, pattern) as m:
        padded = m(input_ids=ids, attention_mask=mask, output_attentions=True)
        single = m(input_ids=ids[1:, :n_real], output_attentions=True)
    assert (padded.last_hidden_state[1, :n_real] - single.last_hidden_state[0]).abs().max() <= 1e-5
    for a, s in zip(padded.attentions, single.attentions):
        assert (a[1, :, :n_real, n_real:] == 0).all()  # padded keys: exactly zero for real queries
        assert (a[1, :, :n_real, :n_real] - s[0]).abs().max() <= 1e-6


def test_per_layer_window_uses_the_right_layer():
    model = tiny_model("bert")
    ids, _ = batch(9)
    with torch.no_grad(), with_pattern(model, AttentionPattern(window=(2, None))) as m:
        out = m(input_ids=ids, output_attentions=True)
    q = torch.arange(9)
    band = (q[:, None] - q[None, :]).abs() <= 1
    a0, a1 = out.attentions
    assert (a0[:, :, ~band] == 0).all() and (a0[:, :, band] > 0).all()
    assert (a1 > 0).all()


# ---- backends agree ----------------------------------------------------------------------------
@pytest.mark.parametrize("family,pattern", [
    ("bert", AttentionPattern(window=4, global_positions=(0, 5), random_blocks=1, block_size=3)),
    ("gpt2", AttentionPattern(window=3, causal=True, global_positions=(2,))),
    ("mistral", AttentionPattern(window=(3, 5), causal=True)),
])
def test_dense_sdpa_flex_agree(family, pattern):
    model = tiny_model(family)
    ids, mask = batch(12, pad_from=9)
    real = mask.bool()
    outs = {}
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).last_hidden_state
        for backend in ("dense", "sdpa", "flex"):
            with with_pattern(model, pattern, backend=backend, compile=False) as m:
                outs[backend] = m(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (outs["dense"] - full)[real].abs().max() > 1e-3  # the pattern changes the result
    for backend in ("sdpa", "flex"):
        assert (outs[backend] - outs["dense"])[real].abs().max() <= 1e-4, backend


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch")
def test_compiled_flex_agrees_with_dense(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    model = tiny_model("bert")
    ids, mask = batch(16, pad_from=12)
    pattern = AttentionPattern(window=4, global_positions=(0,))
    with torch.no_grad():
        with with_pattern(model, pattern) as m:
            dense = m(input_ids=ids, attention_mask=mask).last_hidden_state
        with with_pattern(model, pattern, backend="flex", compile=True) as m:
            flex = m(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert (flex - dense)[real].abs().max() <= 1e-4


# ---- the boolean-mask trap ---------------------------------------------------------------------
def test_boolean_4d_mask_is_converted_not_added():
    model = tiny_model("bert")
    ids, _ = batch(6)
    keep = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    keep[..., 4:] = False  # True = may attend; keys 4, 5 blocked
    with torch.no_grad():
        stock = model(input_ids=ids, attention_mask=keep, output_attentions=True)
        with with_pattern(model, AttentionPattern()) as m:
            ours = m(input_ids=ids, attention_mask=keep, output_attentions=True)
    # The trap: stock eager adds True as +1.0, so "blocked" keys still get probability.
    assert stock.attentions[0][..., 4:].min() > 0.01
    for a in ours.attentions:
        assert (a[..., 4:] == 0).all()
        assert torch.allclose(a.sum(-1), torch.ones(()), atol=1e-6)


# ---- training ----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["dense", "sdpa"])
def test_gradients_reach_inputs_embeds_only_inside_reach(backend):
    model = tiny_model("bert")
    ids, _ = batch(10)
    embeds = model.embeddings.word_embeddings(ids).detach().requires_grad_(True)
    with with_pattern(model, AttentionPattern(window=2), backend=backend) as m:
        out = m(inputs_embeds=embeds).last_hidden_state
    probe = torch.randn(32, generator=torch.Generator().manual_seed(2))  # sum() of a LayerNorm output has no gradient
    (out[:, 0] @ probe).sum().backward()
    grad = embeds.grad.abs().sum(-1)  # (B, L)
    # two layers of |q - k| <= 1: position 0 depends on positions 0, 1, 2 only
    assert (grad[:, :3] > 0).all()
    assert (grad[:, 3:] == 0).all()


def test_flex_refuses_backward_on_cpu():
    model = tiny_model("bert")
    ids, _ = batch(6)
    with with_pattern(model, AttentionPattern(window=2), backend="flex", compile=False) as m:
        with pytest.raises(ValueError, match="inference-only on CPU.*torch.no_grad"):
            m(input_ids=ids)


# ---- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["longformer", "bigbird", "led"])
def test_native_models_point_to_native(family):
    model = tiny_model(family)
    with pytest.raises(ValueError, match=r"attnviz\.models\.native"):
        with with_pattern(model, AttentionPattern(window=2)):
            pass
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize("window", [(2, 2, 2), (2,)])
def test_per_layer_settings_must_match_layers(window):
    model = tiny_model("bert")
    with pytest.raises(ValueError, match=rf"{len(window)} layers but the model has 2"):
        with with_pattern(model, AttentionPattern(window=window)):
            pass


def test_layout_longer_than_positions():
    model = tiny_model("bert")
    layout = PromptPlacement("prefix", n_tokens=20).layout(text_len=500)
    with pytest.raises(ValueError, match=r"layout length 522 .* 512 positions.*extend_positions"):
        with with_pattern(model, AttentionPattern(window=8), layout=layout):
            pass


def test_input_length_must_match_layout():
    model = tiny_model("bert")
    layout = PromptPlacement("prefix", n_tokens=2).layout(text_len=6)
    ids, _ = batch(8)  # 8 tokens, the layout wants 10
    with with_pattern(model, AttentionPattern(window=2), layout=layout) as m:
        with pytest.raises(ValueError, match=r"8 positions but the layout has length 10.*insert_prompt"):
            m(input_ids=ids)
    assert model.config._attn_implementation == "eager"


def test_bidirectional_pattern_on_decoder_is_refused():
    model = tiny_model("gpt2")
    with pytest.raises(ValueError, match=r"causal decoder.*causal=True"):
        with with_pattern(model, AttentionPattern(window=4)):
            pass


def test_causal_pattern_on_encoder_warns_and_is_causal():
    model = tiny_model("bert")
    ids, _ = batch(6)
    with pytest.warns(UserWarning, match="causal pattern on the bidirectional encoder"):
        with torch.no_grad(), with_pattern(model, AttentionPattern(causal=True)) as m:
            out = m(input_ids=ids, output_attentions=True)
    upper = torch.ones(6, 6, dtype=torch.bool).triu(1)
    assert (out.attentions[0][:, :, upper] == 0).all()


def test_native_sliding_window_warns():
    model = tiny_model("mistral", sliding_window=4)
    with pytest.warns(UserWarning, match="sliding_window=4 still applies"):
        with with_pattern(model, AttentionPattern(window=2, causal=True)):
            pass


def test_flex_missing_in_torch(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch.nn.attention.flex_attention", None)
    with pytest.raises(ValueError, match=r"backend='flex' needs torch.nn.attention.flex_attention.*'dense' or 'sdpa'"):
        with with_pattern(tiny_model("bert"), AttentionPattern(window=2), backend="flex"):
            pass


def test_bad_arguments():
    model = tiny_model("bert")
    with pytest.raises(ValueError, match=r"unknown backend 'flash'; allowed: dense, sdpa, flex"):
        with with_pattern(model, AttentionPattern(), backend="flash"):
            pass
    with pytest.raises(TypeError, match="pattern must be an attnviz.AttentionPattern"):
        with with_pattern(model, {"window": 2}):
            pass
    with pytest.raises(TypeError, match="layout must be an attnviz.SequenceLayout"):
        with with_pattern(model, AttentionPattern(), layout=12):
            pass
    with pytest.raises(TypeError, match="PreTrainedModel"):
        with with_pattern(torch.nn.Linear(2, 2), AttentionPattern()):
            pass
    # none of the above leaves anything switched or registered
    assert model.config._attn_implementation == "eager"
    assert not [k for k in AttentionInterface._global_mapping if k.startswith("attnviz_")]


@pytest.mark.parametrize("backend", ["dense", "sdpa", "tiled", "flex"])
def test_bidirectional_chunks_and_documents_without_a_window_are_masked(backend):
    """window=None but chunks / packed documents: not full attention. Each chunk (document) must equal
    the model run on that piece alone at the same positions (an independent reference); the dense and
    flex backends once skipped the mask here because the window was None."""
    model = tiny_model("bert")
    ids = torch.randint(3, 100, (1, 20), generator=torch.Generator().manual_seed(0))
    cases = [(AttentionPattern(chunk=4), [(a, a + 4) for a in range(0, 20, 4)]),
             (AttentionPattern(documents=(10, 10)), [(0, 10), (10, 20)])]
    kwargs = {"compile": False} if backend == "flex" else {}
    with torch.no_grad():
        for pattern, pieces in cases:
            assert not pattern.is_full(0)
            with with_pattern(model, pattern, backend=backend, **kwargs) as m:
                out = m(input_ids=ids).last_hidden_state
            for a, b in pieces:
                alone = model(input_ids=ids[:, a:b], position_ids=torch.arange(a, b)[None]).last_hidden_state
                assert (out[:, a:b] - alone).abs().max() <= 1e-5, (pattern, backend, a)
    assert AttentionPattern().is_full(0) and not AttentionPattern(causal=True).is_full(0)
