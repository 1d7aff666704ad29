"""Native long-context arguments: to_native / pattern_of / apply_native / diagnose against the real models."""

import math

import pytest
import torch
import transformers as tf

from attnviz import AttentionPattern, PromptPlacement, build_masks, spread
from attnviz.capture import capture_attention
from attnviz.models.diagnose import diagnose, readout_reach
from attnviz.models.native import (apply_native, bigbird_fallback_length, check_longformer_window, pattern_of,
                                   to_native)
from attnviz.models.tiny import tiny_config, tiny_model

tf.logging.set_verbosity_error()
NEG = float("-inf")


def ids_for(length, seed=0, batch=1):
    return torch.randint(3, 128, (batch, length), generator=torch.Generator().manual_seed(seed))


def built(cls, family, seed=0, **overrides):
    """A task-head model from a tiny config (tiny_model only builds Auto classes)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(tiny_config(family, **overrides)).eval()


# ---- Longformer vs an attnviz dense reference on the same weights -------------------------------
def longformer_reference(model, input_ids, pattern, layout):
    """Longformer's layers with a dense masked softmax under build_masks(pattern): local rows use
    query/key/value, global rows query_global/key_global/value_global over all keys, as Longformer does.
    Returns hidden states (1, L, D) and probabilities (layers, heads, L, L)."""
    L = layout.length
    masks = build_masks(pattern, layout, len(model.encoder.layer))
    g = pattern.global_mask(layout)[None, None, :, None]
    h = model.embeddings(input_ids=input_ids)
    probs = []
    for l, layer in enumerate(model.encoder.layer):
        sa = layer.attention.self
        H, d = sa.num_heads, sa.head_dim

        def heads(x):
            return x.view(1, L, H, d).transpose(1, 2)

        def attend(q, k):
            return (heads(q / math.sqrt(d)) @ heads(k).transpose(-1, -2)).masked_fill(~masks[l], NEG).softmax(-1)

        p_local = attend(sa.query(h), sa.key(h))
        p_global = attend(sa.query_global(h), sa.key_global(h))
        ctx = torch.where(g, p_global @ heads(sa.value_global(h)), p_local @ heads(sa.value(h)))
        h = layer.ff_chunk(layer.attention.output(ctx.transpose(1, 2).reshape(1, L, H * d), h))
        probs.append(torch.where(g, p_global, p_local)[0])
    return h, torch.stack(probs)


@pytest.fixture(scope="module")
def longformer():
    return tiny_model("longformer", attention_window=[4, 8])


LAYOUT = PromptPlacement("infix", n_tokens=3, at=8).layout(text_len=16)      # L = 21, prompt at 9, 10, 11
PATTERN = AttentionPattern(window=(4, 8), global_positions=(0,), global_prompt=True)


def test_longformer_equals_dense_reference_hidden_states_and_maps(longformer):
    native = to_native(PATTERN, longformer, LAYOUT)
    assert native.config == {"attention_window": [4, 8]}
    gmask = native.inputs["global_attention_mask"]
    assert gmask.tolist() == [[1] + [0] * 8 + [1, 1, 1] + [0] * 9]
    assert native.pattern == PATTERN
    assert any("pads the 21 tokens to 24" in n for n in native.notes)
    applied = pattern_of(longformer, LAYOUT, global_attention_mask=gmask)
    assert applied == PATTERN

    ids = ids_for(LAYOUT.length)
    with torch.no_grad():
        out = longformer(ids, **native.inputs).last_hidden_state
        ref_h, ref_p = longformer_reference(longformer, ids, applied, LAYOUT)
        wrong_h, _ = longformer_reference(longformer, ids, AttentionPattern(window=(4, 4), global_positions=(0,),
                                                                              global_prompt=True), LAYOUT)
    assert (out - ref_h).abs().max() <= 1e-5
    assert (out - wrong_h).abs().max() > 1e-3          # the comparison sees a one-layer window change

    maps = capture_attention(longformer, {"input_ids": ids, **native.inputs})
    assert maps.values.shape == (2, 4, 21, 21) and maps.source == "longformer"
    allowed = build_masks(applied, LAYOUT, 2)[:, None].expand_as(maps.values)
    assert (maps.values - ref_p).abs()[allowed].max() <= 1e-6
    assert torch.count_nonzero(maps.values[~allowed]) == 0
    assert torch.allclose(maps.values.sum(-1), torch.ones(2, 4, 21), atol=1e-6)


def test_longformer_batch_broadcast_and_padded_second_sequence(longformer):
    """A (1, L) global mask broadcasts over the batch; padded positions of row 1 drop out of its maps."""
    native = to_native(PATTERN, longformer, LAYOUT)
    ids = ids_for(21, seed=1, batch=2)
    am = torch.ones(2, 21, dtype=torch.long)
    am[1, 17:] = 0
    maps = capture_attention(longformer, {"input_ids": ids, "attention_mask": am, **native.inputs}, index=1)
    assert maps.length == 17 and maps.values.shape == (2, 4, 17, 17)
    short = PromptPlacement("infix", n_tokens=3, at=8).layout(text_len=12)    # the same first 17 positions
    allowed = build_masks(PATTERN, short, 2)[:, None].expand_as(maps.values)
    assert torch.count_nonzero(maps.values[~allowed]) == 0
    assert torch.allclose(maps.values.sum(-1), torch.ones(2, 4, 17), atol=1e-6)


def test_apply_native_sets_module_windows_and_restores():
    model = tiny_model("longformer", attention_window=[4, 4])
    ids = ids_for(16)
    with torch.no_grad():
        before = model(ids).last_hidden_state
        target = tiny_model("longformer", attention_window=[4, 8])(ids).last_hidden_state
    previous = apply_native(model, to_native(AttentionPattern(window=(4, 8)), model))
    assert previous == {"attention_window": [4, 4]}
    assert pattern_of(model) == AttentionPattern(window=(4, 8))
    with torch.no_grad():
        assert torch.equal(model(ids).last_hidden_state, target)
    apply_native(model, previous)
    with torch.no_grad():
        assert torch.equal(model(ids).last_hidden_state, before)


# ---- LED ----------------------------------------------------------------------------------------
def test_led_encoder_pattern_and_decoder_refusal():
    led = tiny_model("led")
    native = to_native(AttentionPattern(window=4, global_positions=(0,)), led, 14)
    assert native.config == {"attention_window": [4, 4]}
    ids = ids_for(14)
    maps = capture_attention(led, {"input_ids": ids, **native.inputs})
    allowed = build_masks(native.pattern, 14, 2)[:, None].expand_as(maps.values)
    assert torch.count_nonzero(maps.values[~allowed]) == 0 and bool((maps.values[allowed] > 0).all())
    assert pattern_of(led, stack="decoder") == AttentionPattern(window=None, causal=True)
    with pytest.raises(ValueError, match="global attention exist only in the encoder"):
        to_native(AttentionPattern(window=4, global_positions=(0,)), led, 14, stack="decoder")
    with pytest.raises(ValueError, match="decoder has no global tokens"):
        pattern_of(led, stack="decoder", global_attention_mask=native.inputs["global_attention_mask"])
    with pytest.raises(ValueError, match="encoder-decoder"):
        pattern_of(tiny_config("bert"), stack="decoder")


# ---- BigBird ------------------------------------------------------------------------------------
def test_bigbird_block_layout_matches_pattern():
    """BigBird returns dense attention_probs for block_sparse: derive its block layout from them."""
    model = tiny_model("bigbird")                       # block_size 4, 2 random blocks
    L, b = 40, 4
    with torch.no_grad():
        att = torch.stack(model(ids_for(L), output_attentions=True).attentions)[:, 0]   # (layers, H, L, L)
    assert model.attention_type == "block_sparse"
    pattern = pattern_of(model, L)
    assert pattern == AttentionPattern(window=8, global_positions=(0, 1, 2, 3, 36, 37, 38, 39), block_size=4)
    nb = L // b
    seen = (att != 0).reshape(2, 4, nb, b, nb, b).any(3).any(-1)                   # (layers, H, nb, nb)
    masks = build_masks(pattern, L, 2)
    ours = masks.reshape(2, nb, b, nb, b).any(2).any(-1)
    assert torch.equal(seen, ours[:, None].expand_as(seen))
    assert bool((att != 0)[masks[:, None].expand_as(att)].all())  # token level: the pattern lies inside BigBird's band
    assert int(((att[0, 0] != 0) & ~masks[0]).sum()) > 0        # ... which is wider (whole blocks)
    assert pattern_of(model.train(), L).random_blocks == 2
    model.eval()


def test_bigbird_eval_counts_block_zero_one_plus_r_times():
    """In eval all random slots point at block 0: the context equals a softmax where block 0 has
    multiplicity 1 + r in rows of blocks 1..nb-2; the returned probabilities show one copy."""
    model = tiny_model("bigbird")
    L, b, r = 40, 4, 2
    sa = model.encoder.layer[0].attention.self
    h = torch.randn(1, L, 32, generator=torch.Generator().manual_seed(1))
    blocked, band, from_mask, to_mask = model.create_masks_for_block_sparse_attn(torch.ones(1, L), b)
    with torch.no_grad():
        ctx, probs = sa(h, band_mask=band, from_mask=from_mask, to_mask=to_mask, from_blocked_mask=blocked,
                        to_blocked_mask=blocked)
        q, k, v = (lin(h).view(1, L, 4, 8).transpose(1, 2) for lin in (sa.query, sa.key, sa.value))
        masks = (probs[0, 0] != 0)
        blk = torch.arange(L) // b
        mult = torch.ones(L, L)
        mult[((blk >= 1) & (blk <= L // b - 2))[:, None] & (blk == 0)[None, :]] = 1 + r
        scores = (q @ k.transpose(-1, -2) / math.sqrt(8)).masked_fill(~masks, NEG)
        p_mult = (scores + mult.log()).softmax(-1)
        p_plain = scores.softmax(-1)
    def as_ctx(p):
        return (p @ v).transpose(1, 2).reshape(1, L, 32)
    assert (as_ctx(p_mult) - ctx).abs().max() <= 1e-6
    assert (as_ctx(p_plain) - ctx).abs().max() > 1e-3
    assert (p_mult / mult - probs[0]).abs().max() <= 1e-6
    assert float(probs[0].sum(-1)[:, b:L - b].max()) < 0.99       # returned rows do not sum to 1
    maps = capture_attention(model, {"input_ids": ids_for(L)})
    assert torch.allclose(maps.values.sum(-1), torch.ones(2, 4, L), atol=1e-5)
    assert maps.source == "bigbird" and "1 + 2" in maps.notes[0]


def test_bigbird_fallback_is_sticky_and_diagnosed():
    model = tiny_model("bigbird")
    cut = bigbird_fallback_length(model)
    assert cut == (5 + 2 * 2) * 4 == 36
    assert [f.kind for f in diagnose(model, 40)] == ["bigbird-eval-random"]
    found = {f.kind: f for f in diagnose(model, 36)}
    assert "bigbird-fallback" in found and "(5 + 2*2)*4 = 36 tokens; this input has 36" in found["bigbird-fallback"].message
    assert pattern_of(model, 36) == AttentionPattern(window=None)
    assert pattern_of(model, 37).window == 8

    with torch.no_grad():
        short = model(ids_for(36), output_attentions=True)
    assert short.attentions == ()                                   # hooks sat on the replaced modules
    assert model.attention_type == "original_full" and model.config.attention_type == "block_sparse"
    with torch.no_grad():
        long = model(ids_for(40), output_attentions=True)
    assert long.attentions == () and model.attention_type == "original_full"      # sticks for long inputs
    switched = diagnose(model, 40)
    assert [f.kind for f in switched] == ["bigbird-switched"] and "set_attention_type('block_sparse')" in switched[0].fix
    assert pattern_of(model, 40) == AttentionPattern(window=None)

    previous = apply_native(model, {"attention_type": "block_sparse"})
    assert previous == {"attention_type": "original_full"}
    assert model.attention_type == "block_sparse" and pattern_of(model, 40).window == 8
    with torch.no_grad():
        again = model(ids_for(40)).last_hidden_state
        fresh = tiny_model("bigbird")(ids_for(40)).last_hidden_state
    assert torch.equal(again, fresh)


def test_bigbird_to_native():
    cfg = tiny_config("bigbird")
    native = to_native(AttentionPattern(window=8, block_size=4, random_blocks=1, global_positions=(0,)), cfg, 40)
    assert native.config == {"attention_type": "block_sparse", "block_size": 4, "num_random_blocks": 1}
    assert native.pattern.global_positions == (0, 1, 2, 3, 36, 37, 38, 39) and native.pattern.random_blocks == 0
    assert any("whole blocks" in n for n in native.notes)
    assert to_native(AttentionPattern(window=None), cfg).config == {"attention_type": "original_full"}
    with pytest.raises(ValueError, match="use window=8"):
        to_native(AttentionPattern(window=6, block_size=4), cfg, 40)
    with pytest.raises(ValueError, match=r"positions \[10\] cannot be global"):
        to_native(AttentionPattern(window=8, block_size=4, global_positions=(10,)), cfg, 40)
    with pytest.raises(ValueError, match="pass layout="):
        pattern_of(cfg)


# ---- decoders and local/global layer types --------------------------------------------------------
C = dict(vocab_size=128, hidden_size=32, num_attention_heads=4, intermediate_size=64, max_position_embeddings=512)
FAMILY_CONFIGS = {
    "mistral": lambda: tf.MistralConfig(**C, num_hidden_layers=2, num_key_value_heads=2, head_dim=8, sliding_window=3),
    "qwen2": lambda: tf.Qwen2Config(**C, num_hidden_layers=4, num_key_value_heads=2, use_sliding_window=True,
                                    sliding_window=3, max_window_layers=2),
    "gemma2": lambda: tf.Gemma2Config(**C, num_hidden_layers=2, num_key_value_heads=2, head_dim=8, sliding_window=3),
    "gemma3_text": lambda: tf.Gemma3TextConfig(**C, num_hidden_layers=2, num_key_value_heads=2, head_dim=8,
                                               sliding_window=3, layer_types=["sliding_attention", "full_attention"]),
    "gemma3_text-bidirectional": lambda: tf.Gemma3TextConfig(
        **C, num_hidden_layers=2, num_key_value_heads=2, head_dim=8, sliding_window=6, use_bidirectional_attention=True,
        layer_types=["sliding_attention", "full_attention"]),
    "modernbert": lambda: tf.ModernBertConfig(**C, num_hidden_layers=3, local_attention=4, global_attn_every_n_layers=3,
                                              pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1,
                                              sep_token_id=2),
}
EXPECTED = {
    "mistral": AttentionPattern(window=3, causal=True),
    "qwen2": AttentionPattern(window=(None, None, 3, 3), causal=True),
    "gemma2": AttentionPattern(window=(3, None), causal=True),
    "gemma3_text": AttentionPattern(window=(3, None), causal=True),
    "gemma3_text-bidirectional": AttentionPattern(window=(6, None)),   # stored as 6 // 2 + 1, used as |q - k| < 4
    "modernbert": AttentionPattern(window=(None, 4, 4)),
}


@pytest.mark.parametrize("family", list(FAMILY_CONFIGS))
def test_pattern_of_equals_what_the_model_attends(family):
    cfg = FAMILY_CONFIGS[family]()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tf.AutoModel.from_config(cfg, attn_implementation="eager").eval()
    pattern = pattern_of(model)
    assert pattern == EXPECTED[family]
    maps = capture_attention(model, {"input_ids": ids_for(10)})
    masks = build_masks(pattern, 10, maps.values.shape[0])
    assert torch.equal(maps.values.abs().amax(1) > 0, masks)
    native = to_native(pattern, cfg)
    assert native.pattern == pattern
    # native.config holds attribute values, set the way from_pretrained(name, **native.config) sets them
    assert pattern_of(type(cfg).from_dict(cfg.to_dict(), **native.config)) == pattern


def test_layer_types_translation_and_refusals():
    qwen = FAMILY_CONFIGS["qwen2"]()
    native = to_native(AttentionPattern(window=(5, None, 5, None), causal=True), qwen)
    assert native.config == {"layer_types": ["sliding_attention", "full_attention"] * 2, "sliding_window": 5,
                             "use_sliding_window": True}
    with pytest.raises(ValueError, match=r"one sliding_window .* got windows \[3, 5\]"):
        to_native(AttentionPattern(window=(3, 5, None, None), causal=True), qwen)
    gemma3 = tf.AutoModel.from_config(FAMILY_CONFIGS["gemma3_text"](), attn_implementation="eager")
    with pytest.raises(ValueError, match="rotary base"):
        apply_native(gemma3, to_native(AttentionPattern(window=(None, 3), causal=True), gemma3))
    modernbert = FAMILY_CONFIGS["modernbert"]()
    assert to_native(AttentionPattern(window=(8, 8, None)), modernbert).config["local_attention"] == 8
    with pytest.raises(ValueError, match="bidirectional"):
        to_native(AttentionPattern(window=4, causal=True), modernbert)


# ---- bad input ----------------------------------------------------------------------------------
def test_longformer_refusals():
    cfg = tiny_config("longformer")
    with pytest.raises(ValueError, match=r"^window must be even for Longformer, got 63; try 62 or 64$"):
        check_longformer_window(63)
    with pytest.raises(ValueError, match=r"window must be even for Longformer \(layer 1\), got 63; try 62 or 64"):
        pattern_of(tiny_config("longformer", attention_window=[4, 63]))
    with pytest.raises(ValueError, match="bidirectional"):
        to_native(AttentionPattern(window=4, causal=True), cfg)
    with pytest.raises(ValueError, match="no dilated windows"):
        to_native(AttentionPattern(window=4, dilation=2), cfg)
    with pytest.raises(ValueError, match="no random blocks"):
        to_native(AttentionPattern(window=4, random_blocks=1, block_size=4), cfg)
    with pytest.raises(ValueError, match="layer 1 asks for full attention"):
        to_native(AttentionPattern(window=(4, None)), cfg)
    with pytest.raises(ValueError, match=r"windows \[4\] do not divide 6"):
        to_native(AttentionPattern(window=(4, 6)), cfg)
    with pytest.raises(ValueError, match="pass layout="):
        to_native(AttentionPattern(window=4, global_positions=(0,)), cfg)
    with pytest.raises(ValueError, match="per-layer settings for 3 layers"):
        to_native(AttentionPattern(window=(4, 4, 4)), cfg)
    with pytest.raises(ValueError, match="has 20 positions but the layout has 21"):
        pattern_of(cfg, 21, global_attention_mask=torch.zeros(20))
    with pytest.raises(ValueError, match="question tokens global"):
        pattern_of(built(tf.LongformerForQuestionAnswering, "longformer"))
    assert pattern_of(built(tf.LongformerForSequenceClassification, "longformer")).global_positions == (0,)
    with pytest.raises(TypeError, match="AttentionPattern"):
        to_native({"window": 4}, cfg)


def test_other_families_refuse_what_they_cannot_express():
    with pytest.raises(ValueError, match="no global tokens"):
        to_native(AttentionPattern(window=3, causal=True, global_positions=(0,)), FAMILY_CONFIGS["mistral"]())
    with pytest.raises(ValueError, match="is a decoder"):
        to_native(AttentionPattern(window=4), FAMILY_CONFIGS["mistral"]())
    with pytest.raises(ValueError, match="with_pattern"):
        to_native(AttentionPattern(window=4), tiny_config("bert"))
    assert to_native(AttentionPattern(causal=True), tiny_config("gpt2")).config == {}
    assert pattern_of(tiny_config("gpt2")) == AttentionPattern(causal=True)
    assert pattern_of(tiny_config("bert")) == AttentionPattern()
    with pytest.raises(TypeError, match="transformers model or config"):
        pattern_of("longformer")


# ---- diagnose -----------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", [
    AttentionPattern(window=4),
    AttentionPattern(window=(2, 6, 4), dilation=(1, 2, 1), global_positions=(7,)),
    AttentionPattern(window=3, causal=True, random_blocks=1, block_size=4, seed=3),
])
def test_readout_reach_is_spread_backwards(pattern):
    layout = PromptPlacement("infix", n_tokens=4, at=9).layout(text_len=24)
    for readout in (0, 13, layout.length - 1):
        masks = build_masks(pattern, layout, 3)
        expected = spread(masks.transpose(1, 2).flip(0), [readout]).reached[-1]
        assert torch.equal(readout_reach(pattern, layout, 3, readout), expected)
        # and per source: p reaches the readout iff spread from p arrives there
        for p in (2, 11, 20):
            assert bool(spread(masks, [p]).reached[-1, readout]) == bool(expected[p])


def test_diagnose_reach_on_hand_built_layouts():
    model = tiny_model("longformer")                                     # windows [4, 4]: 2 + 2 positions
    far = PromptPlacement("infix", n_tokens=3, at=10).layout(text_len=16)   # prompt 11, 12, 13; L = 21
    found = {f.kind: f for f in diagnose(model, far, global_attention_mask=torch.zeros(1, 21))}
    assert set(found) == {"padding", "reach"}
    msg = found["reach"].message
    assert msg.startswith("3 of 3 prompt tokens (positions 11, 12, 13) cannot reach [CLS] at position 0 within "
                          "the model's 2 layers: through the windows alone information moves at most 4 positions")
    assert "global_prompt=True" in found["reach"].fix and "window >= 14" in found["reach"].fix
    assert "placement 'prefix', right after [CLS]" in found["reach"].fix
    assert "pads the 21 tokens to 24" in found["padding"].message

    gmask = to_native(AttentionPattern(window=4, global_prompt=True), model, far).inputs["global_attention_mask"]
    assert [f.kind for f in diagnose(model, far, global_attention_mask=gmask)] == ["padding"]
    near = PromptPlacement("infix", n_tokens=3, at=2).layout(text_len=15)  # prompt 3, 4, 5; L = 20
    found = diagnose(model, near, global_attention_mask=torch.zeros(20))
    assert [f.kind for f in found] == ["reach"] and "1 of 3 prompt tokens (positions 5)" in found[0].message


def test_diagnose_decoder_reach_reads_the_last_token():
    model = tf.AutoModel.from_config(FAMILY_CONFIGS["mistral"](), attn_implementation="eager")   # causal window 3
    layout = PromptPlacement("start", n_tokens=2).layout(text_len=10, cls=False, sep=False)     # L = 12
    (finding,) = diagnose(model, layout)
    assert finding.message.startswith("2 of 2 prompt tokens (positions 0, 1) cannot reach the last token at position 11")
    assert "causal window >= 7" in finding.fix
    assert "placement 'suffix': a decoder reads the last token" in finding.fix and "[CLS]" not in finding.fix
    assert diagnose(model, PromptPlacement("suffix", n_tokens=2).layout(text_len=10, cls=False, sep=False)) == []


def test_diagnose_longformer_inputs():
    # PEFT: the virtual tokens are in inputs_embeds and attention_mask, not in global_attention_mask
    model = tiny_model("longformer")
    start = PromptPlacement("start", n_tokens=3).layout(text_len=16)           # L = 21
    found = {f.kind: f for f in diagnose(model, start, global_attention_mask=torch.zeros(1, 18))}
    assert "global-mask-length" in found
    assert "has 18 positions but the input has 21 (3 more" in found["global-mask-length"].message
    embeds = torch.randn(1, 21, 32)
    with pytest.raises(RuntimeError, match=r"size of tensor a \(21\) must match the size of tensor b \(18\)"):
        model(inputs_embeds=embeds, attention_mask=torch.ones(1, 21), global_attention_mask=torch.zeros(1, 18))

    classifier = built(tf.LongformerForSequenceClassification, "longformer")
    found = {f.kind: f for f in diagnose(classifier, start)}
    assert "position 0 is prompt token 0, not <s>" in found["default-global"].message
    with pytest.raises(TypeError, match="zeros_like"):
        classifier(inputs_embeds=embeds)

    # windows that do not divide the padded length: a stale config after construction makes them
    model.config.attention_window = [6, 6]
    found = {f.kind: f for f in diagnose(model, 6, global_attention_mask=torch.zeros(6))}
    assert "stale-windows" in found and "window-divides" in found
    assert "Sequence length should be multiple of 4" in found["window-divides"].message
    with pytest.raises(AssertionError, match="Sequence length should be multiple of 4"):
        model(ids_for(6))


def test_diagnose_position_table_and_clean_case():
    bert = tiny_model("bert")
    (finding,) = diagnose(bert, PromptPlacement("prefix", n_tokens=20).layout(text_len=600))
    assert finding.kind == "positions" and "needs 622 positions" in finding.message
    assert "extend_positions(model, 1024)" in finding.fix
    short = PromptPlacement("suffix", n_tokens=4).layout(text_len=100)
    assert diagnose(bert, short) == []
    (reach,) = diagnose(bert, short, pattern=AttentionPattern(window=8))       # e.g. the pattern of with_pattern
    assert reach.kind == "reach" and "4 of 4 prompt tokens (positions 101, 102, 103, 104)" in reach.message
