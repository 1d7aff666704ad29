"""#17 item 2: the mask zoo on real models. Llama 4's chunks both ways (pattern_of / to_native /
apply_native) against the model's own masks, gpt-oss's layer types (its learned sinks keep no
token), StreamingLLM sinks through with_pattern on tiny decoders against a dense reference, and
diagnose's words for each family's pitfall on small hand-checked cases."""

import pytest
import torch
import transformers as tf

from attnviz import AttentionPattern, PromptPlacement, build_masks
from attnviz.capture import capture_attention
from attnviz.models import tiny_model, with_pattern
from attnviz.models.diagnose import diagnose
from attnviz.models.native import apply_native, pattern_of, to_native

tf.logging.set_verbosity_error()
C = dict(vocab_size=128, hidden_size=32, num_attention_heads=4, intermediate_size=64, max_position_embeddings=512)


def llama4_config(**kw):
    """4 layers; by default layers 0-2 use RoPE and are chunked, layer 3 (NoPE) is full."""
    return tf.Llama4TextConfig(**C, num_hidden_layers=4, num_key_value_heads=2, head_dim=8, intermediate_size_mlp=64,
                               num_local_experts=2, num_experts_per_tok=1, **kw)


def gpt_oss_config():
    return tf.GptOssConfig(**C, num_hidden_layers=2, num_key_value_heads=2, head_dim=8, sliding_window=3,
                           num_local_experts=2, num_experts_per_tok=1)


def build(cfg, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return tf.AutoModel.from_config(cfg, attn_implementation="eager").eval()


def ids_for(length, seed=0):
    return torch.randint(3, 128, (1, length), generator=torch.Generator().manual_seed(seed))


def attended(model, length):
    """bool (layers, L, L): the pairs the model really gives weight to."""
    return capture_attention(model, {"input_ids": ids_for(length)}).values.abs().amax(1) > 0


# ---- Llama 4: attention_chunk_size ---------------------------------------------------------------
def test_llama4_pattern_of_is_chunk_per_layer_and_equals_the_models_masks():
    cfg = llama4_config(attention_chunk_size=4)
    assert cfg.layer_types == ["chunked_attention"] * 3 + ["full_attention"]
    model = build(cfg)
    pattern = pattern_of(model)
    assert pattern == AttentionPattern(causal=True, chunk=(4, 4, 4, None))
    for length in (7, 10, 12):
        assert torch.equal(attended(model, length), build_masks(pattern, length, 4))
    # every layer chunked collapses to one int
    assert pattern_of(llama4_config(attention_chunk_size=3, layer_types=["chunked_attention"] * 4)) == \
        AttentionPattern(causal=True, chunk=3)


def test_llama4_to_native_sets_chunks_and_apply_native_changes_the_masks():
    cfg = llama4_config(attention_chunk_size=4)
    want = AttentionPattern(causal=True, chunk=(None, 5, None, 5))
    native = to_native(want, cfg)
    assert native.config == {"layer_types": ["full_attention", "chunked_attention"] * 2, "attention_chunk_size": 5}
    assert native.pattern == want
    assert pattern_of(type(cfg).from_dict(cfg.to_dict(), **native.config)) == want
    model = build(cfg)
    previous = apply_native(model, native)
    try:
        assert pattern_of(model) == want and torch.equal(attended(model, 11), build_masks(want, 11, 4))
    finally:
        apply_native(model, previous)
    assert pattern_of(model) == AttentionPattern(causal=True, chunk=(4, 4, 4, None))
    # all layers full: no chunks, the chunk size is kept for later
    assert to_native(AttentionPattern(causal=True), cfg).config == {"layer_types": ["full_attention"] * 4,
                                                                  "attention_chunk_size": 4}


def test_llama4_refusals_name_the_alternative():
    cfg = llama4_config(attention_chunk_size=4)
    with pytest.raises(ValueError, match=r"one attention_chunk_size .* got chunks \[3, 5\]"):
        to_native(AttentionPattern(causal=True, chunk=(3, 5, None, None)), cfg)
    with pytest.raises(ValueError, match="no sliding window: its local layers are chunks"):
        to_native(AttentionPattern(window=4, causal=True), cfg)
    with pytest.raises(ValueError, match=r"cannot express sinks=2 natively.*with_pattern"):
        to_native(AttentionPattern(causal=True, chunk=4, sinks=2), cfg)
    with pytest.raises(ValueError, match="decoder"):
        to_native(AttentionPattern(chunk=4), cfg)


def test_llama4_native_chunks_equal_with_pattern_on_the_same_weights():
    """The chunked model equals its all-full twin (same seed, same weights) under with_pattern(chunk)."""
    L = 11
    native = build(llama4_config(attention_chunk_size=4))
    plain = build(llama4_config(attention_chunk_size=4, layer_types=["full_attention"] * 4))
    ids = ids_for(L)
    with torch.no_grad():
        want = native(input_ids=ids, output_attentions=True)
        unchunked = plain(input_ids=ids).last_hidden_state
        with with_pattern(plain, pattern_of(native)) as m:
            got = m(input_ids=ids, output_attentions=True)
    assert (got.last_hidden_state - want.last_hidden_state).abs().max() <= 1e-5
    for a, b in zip(got.attentions, want.attentions):
        assert (a - b).abs().max() <= 1e-5
    assert (unchunked - want.last_hidden_state).abs().max() > 1e-3      # the chunks matter here


# ---- gpt-oss: layer types; its learned sinks are logits, not positions ----------------------------
def test_gpt_oss_reads_as_layer_types_and_its_sinks_keep_no_token():
    cfg = gpt_oss_config()
    model = build(cfg)
    pattern = pattern_of(model)
    assert pattern == AttentionPattern(window=(3, None), causal=True)       # sinks=0: no position is a sink
    maps = capture_attention(model, {"input_ids": ids_for(10)}).values
    assert torch.equal(maps.abs().amax(1) > 0, build_masks(pattern, 10, 2))
    assert (maps.sum(-1) < 1 - 1e-3).any()          # the learned sink logit takes part of every row's mass
    assert to_native(AttentionPattern(window=(None, 5), causal=True), cfg).config == {
        "layer_types": ["full_attention", "sliding_attention"], "sliding_window": 5}
    with pytest.raises(ValueError, match="gpt-oss's 'sinks' are learned logits"):
        to_native(AttentionPattern(window=(3, None), causal=True, sinks=4), cfg)
    layout = PromptPlacement("start", n_tokens=2).layout(text_len=10, cls=False, sep=False)
    found = {f.kind: f for f in diagnose(model, layout)}
    assert "learned-sinks" in found
    assert "no token is kept as a sink, so in its sliding layers [0]" in found["learned-sinks"].message


# ---- StreamingLLM sinks on any decoder through with_pattern --------------------------------------
@pytest.mark.parametrize("family", ["mistral", "gpt2"])
def test_sinks_with_pattern_equal_the_dense_reference(family):
    """Layer 0 has the plain model's inputs, so its probabilities under the pattern are the plain
    causal ones renormalised over build_masks; every layer is exactly zero outside the mask."""
    L, pattern = 12, AttentionPattern(window=3, causal=True, sinks=2)
    model = tiny_model(family)
    ids = ids_for(L)
    masks = build_masks(pattern, L, 2)
    with torch.no_grad():
        plain = model(input_ids=ids, output_attentions=True).attentions[0][0]          # (H, L, L)
        with with_pattern(model, pattern) as m:
            got = m(input_ids=ids, output_attentions=True).attentions
    reference = plain * masks[0]
    reference = reference / reference.sum(-1, keepdim=True)
    assert (got[0][0] - reference).abs().max() <= 1e-6
    for layer, a in enumerate(got):
        assert (a[0][:, ~masks[layer]] == 0).all() and (a[0][:, masks[layer]] > 0).all()
    assert masks[0][L - 1, :2].all() and not masks[0][L - 1, 2:L - 3].any()     # the sinks and the window


# ---- diagnose: each family's pitfall for a soft prompt, on small cases ----------------------------
INFIX = PromptPlacement("infix", n_tokens=2, at=6).layout(text_len=14)       # L = 18, prompt at 7, 8


def kinds(model, layout, pattern):
    return {f.kind: f for f in diagnose(model, layout, pattern=pattern)}


def test_diagnose_prompt_outside_the_sink():
    model = tiny_model("mistral")
    found = kinds(model, INFIX, AttentionPattern(window=3, causal=True, sinks=2))
    assert found["sink"].message.startswith(
        "the prompt sits outside the sink: the 2 attention sinks are positions 0..1 and prompt positions 7, 8 lie past "
        "them; after layer 0 no query beyond the window sees it (a query q sees prompt position p only while q - p < 3)")
    assert "sinks >= 9" in found["sink"].fix
    inside = PromptPlacement("start", n_tokens=2).layout(text_len=14, cls=False, sep=False)
    assert "sink" not in kinds(model, inside, AttentionPattern(window=3, causal=True, sinks=2))
    assert "sink" not in kinds(model, INFIX, AttentionPattern(causal=True, sinks=2))   # no window: nothing to lose


def test_diagnose_chunked_attention_names_the_chunks_that_see_the_prompt():
    model = build(llama4_config(attention_chunk_size=6))           # chunked layers 0-2, full layer 3
    layout = PromptPlacement("start", n_tokens=2).layout(text_len=16, cls=False, sep=False)   # L = 18
    found = {f.kind: f for f in diagnose(model, layout)}
    assert found["chunk"].message == (
        "chunked attention: only chunk 1 (chunks of 6 positions, numbered from 1) sees the prompt at 0, 1 in the "
        "chunked layers [0, 1, 2]; chunks 2, 3 reach it only through the full layers [3].")
    found = kinds(model, INFIX, AttentionPattern(causal=True, chunk=6))
    assert "only chunk 2 " in found["chunk"].message and "chunk 3 never sees it: every layer is chunked" in \
        found["chunk"].message
    # causal: chunk 1 lies before the prompt and could not see it anyway; a global prompt reaches chunk 3
    assert "chunk" not in kinds(model, INFIX, AttentionPattern(causal=True, chunk=6, global_prompt=True))
    assert "chunk" not in kinds(model, INFIX, AttentionPattern(causal=True, chunk=6, sinks=9))


def test_diagnose_packed_documents_each_need_a_prompt():
    found = kinds(tiny_model("mistral"), INFIX, AttentionPattern(causal=True, documents=(5, 7, 6)))
    assert found["documents"].message.startswith(
        "packed documents: each document needs its own prompt; documents 1 (0..4), 3 (12..17) (numbered from 1) hold "
        "no prompt token")


def test_diagnose_prefix_lm_prompt_past_the_prefix():
    model = tiny_model("mistral")
    found = kinds(model, INFIX, AttentionPattern(causal=True, prefix_lm=8))
    assert found["prefix"].message.startswith(
        "prefix-LM: the prompt is bidirectional among itself only if it lies in the prefix; the prefix is positions "
        "0..7 and prompt positions 8 lie past it")
    assert 'prefix_lm="prompt"' in found["prefix"].fix and "prefix_lm >= 9" in found["prefix"].fix
    assert "prefix" not in kinds(model, INFIX, AttentionPattern(causal=True, prefix_lm="prompt"))


def test_other_families_refuse_the_zoo_parts_and_point_to_with_pattern():
    mistral = tf.MistralConfig(**C, num_hidden_layers=2, num_key_value_heads=2, head_dim=8, sliding_window=3)
    for extra in (dict(prefix_lm=4), dict(sinks=4), dict(chunk=4), dict(documents=(4, 4))):
        with pytest.raises(ValueError, match=f"cannot express {next(iter(extra))}=.*with_pattern"):
            to_native(AttentionPattern(window=3, causal=True, **extra), mistral)
    assert to_native(AttentionPattern(window=3, causal=True, chunk=(None, None)), mistral).pattern == \
        AttentionPattern(window=3, causal=True)


@pytest.mark.parametrize("family", ["mistral", "gpt2"])
def test_prefix_lm_on_a_decoder_opens_the_causal_mask_inside_the_prefix(family):
    """with_pattern ANDs the model's own mask; a prefix-LM is an exception to causal, so the prefix
    square is opened in the decoder's causal mask (its padding kept): the support equals build_masks
    on real rows, padded keys stay zero, dense and sdpa agree."""
    L, pattern = 12, AttentionPattern(causal=True, prefix_lm=5)
    model = tiny_model(family)
    ids = torch.cat([ids_for(L), ids_for(L, seed=1)])
    mask = torch.ones(2, L, dtype=torch.long)
    mask[1, 9:] = 0                                           # right padding in the second row
    masks = build_masks(pattern, L, 2)
    with torch.no_grad():
        with with_pattern(model, pattern) as m:
            dense = m(input_ids=ids, attention_mask=mask, output_attentions=True)
        with with_pattern(model, pattern, backend="sdpa") as m:
            sdpa = m(input_ids=ids, attention_mask=mask).last_hidden_state
    for layer, a in enumerate(dense.attentions):
        assert torch.equal(a[0].amax(0) > 0, masks[layer])
        assert torch.equal(a[1, :, :9].amax(0) > 0, masks[layer][:9] & mask[1].bool())
    assert (dense.last_hidden_state - sdpa)[mask.bool()].abs().max() <= 1e-5
    assert masks[0][1, 4] and not masks[0][5, 6]              # q < k inside the prefix; causal after it
