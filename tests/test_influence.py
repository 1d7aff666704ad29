"""attnviz.influence: the measured influence of the prompt agrees exactly with the structural reach.

The invariant (DESIGN.md): with the dense backend, ablation influence is exactly 0.0 wherever
``spread`` says the prompt has not arrived, and > 0 wherever it has.

The tiny BERT here uses ``initializer_range=0.2`` (the default 0.02 makes every attention hop shrink
a difference ~100x, so after 3-4 hops a *reached* token changes by less than float32 resolution and
ablation rounds to exactly 0 there too: measured 0.0 at reached positions with window 4, 4 layers).
"""

from types import SimpleNamespace

import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement, build_masks, insert_prompt, spread, with_pattern
from attnviz.influence import (InfluenceMap, attention_rollout, block_means, distance_profile, prompt_influence,
                               rollout_step)
from attnviz.models import load_model, tiny_model

H = 32


@pytest.fixture(scope="module")
def bert():
    return tiny_model("bert", num_hidden_layers=4, initializer_range=0.2)


def _batch(lengths=(30, 30, 24), T=None, seed=0, types=False):
    """Right-padded tokenizer-like rows: [CLS]=1 text [SEP]=2 then padding 0."""
    g = torch.Generator().manual_seed(seed)
    T = T or max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    am = torch.zeros_like(ids)
    for b, t in enumerate(lengths):
        ids[b, :t] = torch.randint(5, 120, (t,), generator=g)
        ids[b, 0], ids[b, t - 1] = 1, 2
        am[b, :t] = 1
    out = dict(input_ids=ids, attention_mask=am)
    if types:
        tt = torch.zeros_like(ids)
        for b, t in enumerate(lengths):
            tt[b, t // 2: t] = 1
        out["token_type_ids"] = tt
    return out


def _prompt(n, seed=1, scale=0.5):
    return scale * torch.randn(n, H, generator=torch.Generator().manual_seed(seed))


def _reference_reach(pattern, layout, num_layers):
    """The dense reference: spread on build_masks, independent of spread_pattern."""
    return spread(build_masks(pattern, layout, num_layers), layout.prompt_positions).reached


CASES = [
    ("prefix", {}, AttentionPattern(window=4)),
    ("prefix", {}, AttentionPattern(window=(2, 4, 2, 6))),
    ("suffix", {}, AttentionPattern(window=2, global_prompt=True)),
    ("infix", dict(at=10), AttentionPattern(window=(6, 2, 2, 4), global_positions=(0,))),
    ("scattered", dict(every=7), AttentionPattern(window=4)),
    ("start", {}, AttentionPattern(window=4, dilation=2)),
]


# ---- the invariant ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind,kw,pattern", CASES, ids=[f"{c[0]}-{c[2].window}" for c in CASES])
def test_ablation_is_exactly_zero_where_unreached_and_positive_where_reached(bert, kind, kw, pattern):
    placement = PromptPlacement(kind, 4, **kw)
    batch = _batch(types=kind == "infix")
    r = prompt_influence(bert, _prompt(4), batch, pattern, placement, method="ablation")
    assert r.values.shape == (3, 5, 34) and r.values.dtype == torch.float32
    for b, lay in enumerate(r.layouts):
        Lb = lay.length
        ref = _reference_reach(pattern, lay, 4)
        assert torch.equal(r.reached[b, :, :Lb], ref)
        v = r.values[b, :, :Lb]
        assert torch.equal(v[~ref], torch.zeros(int((~ref).sum())))         # exactly 0.0, not just small
        assert bool((v[ref] > 0).all()), f"row {b}: reached but unchanged at {(~(v > 0) & ref).nonzero().tolist()}"
        assert torch.equal(r.values[b, :, Lb:], torch.zeros(5, 34 - Lb))    # padding
        assert r.valid[b].sum() == Lb
    # the structural row 0 is the prompt itself: only prompt positions change in the embeddings
    assert torch.equal(r.values[0, 0] > 0, r.layouts[0].prompt_mask())


def test_ablation_invariant_on_the_embedded_minilm():
    model, tok, _ = load_model("default")
    texts = ["The quick brown fox jumps over the lazy dog while the cat sleeps on the warm windowsill.",
             "Attention windows decide which tokens see each other."]
    batch = tok(texts, return_tensors="pt", padding=True)
    emb = model.get_input_embeddings().weight.detach()
    g = torch.Generator().manual_seed(0)
    prompt = emb[torch.randint(1000, 20000, (5,), generator=g)] + 0.01 * torch.randn(5, 384, generator=g)
    pattern, placement = AttentionPattern(window=(2, 2, 4, 4, 2, 2)), PromptPlacement("scattered", 5, every=6)
    r = prompt_influence(model, prompt, batch, pattern, placement, tokenizer=tok)
    assert r.num_layers == 6 and r.batch_size == 2
    for b, lay in enumerate(r.layouts):
        ref = _reference_reach(pattern, lay, 6)
        v = r.values[b, :, : lay.length]
        assert torch.equal(v[~ref], torch.zeros(int((~ref).sum())))
        assert bool((v[ref] > 0).all())
        assert bool((~ref).any()) and bool(ref[-1].sum() > ref[0].sum())       # the test has both kinds of cells


def test_rows_of_different_lengths_run_as_if_alone(bert):
    """Padding stays at the end: a short row's suffix prompt sits before its own [SEP]; its values
    equal running it alone, unpadded."""
    placement, pattern = PromptPlacement("suffix", 3), AttentionPattern(window=4)
    batch = _batch(lengths=(20, 14))
    both = prompt_influence(bert, _prompt(3), batch, pattern, placement)
    alone = prompt_influence(bert, _prompt(3), {k: v[1:, :14] for k, v in batch.items()}, pattern, placement)
    assert both.layouts[1] == alone.layouts[0] and both.layouts[1].prompt_positions == (13, 14, 15)
    assert both.layout.prompt_positions == (19, 20, 21) and not both.same_layout
    torch.testing.assert_close(both.values[1, :, :17], alone.values[0], rtol=1e-5, atol=1e-6)
    assert torch.equal(both.values[1, :, 17:], torch.zeros(5, 6))
    assert any("different prompt positions" in n for n in both.notes)


def test_mean_ignores_padding(bert):
    r = prompt_influence(bert, _prompt(4), _batch(lengths=(30, 22)), AttentionPattern(window=4),
                         PromptPlacement("prefix", 4))
    assert r.same_layout is False  # lengths differ, prompt positions do not: one padded run
    expected = r.values[0].clone()
    expected[:, :26] = (r.values[0, :, :26] + r.values[1, :, :26]) / 2
    torch.testing.assert_close(r.mean, expected, rtol=0, atol=0)


def test_prompt_object_with_weight_and_placement(bert):
    placement = PromptPlacement("prefix", 4)
    obj = SimpleNamespace(weight=torch.nn.Parameter(_prompt(4)), placement=placement)
    a = prompt_influence(bert, obj, _batch(), AttentionPattern(window=4))
    b = prompt_influence(bert, _prompt(4), _batch(), AttentionPattern(window=4), placement)
    assert torch.equal(a.values, b.values)


def test_mean_embedding_baseline_and_sdpa_backend(bert):
    args = (bert, _prompt(4), _batch(), AttentionPattern(window=4), PromptPlacement("prefix", 4))
    dense = prompt_influence(*args, baseline="mean")
    sdpa = prompt_influence(*args, baseline="mean", backend="sdpa")
    assert dense.baseline == "mean"
    torch.testing.assert_close(sdpa.values, dense.values, rtol=1e-4, atol=1e-6)
    zeros = prompt_influence(*args)
    assert not torch.equal(zeros.values, dense.values)
    # exact zeros where unreached are promised on dense and tiled, not on the fused kernels
    assert [n for n in sdpa.notes if "exact zeros" in n] == [
        "backend 'sdpa': exact zeros where unreached are only guaranteed on 'dense' and 'tiled'"]
    tiled = prompt_influence(*args, baseline="mean", backend="tiled")
    assert not any("exact zeros" in n for n in tiled.notes + dense.notes)
    assert bool((tiled.values[~tiled.reached] == 0).all())


def test_each_method_is_one_module_behind_a_dict():
    from attnviz.influence import METHODS, METHODS_BY_NAME

    assert tuple(METHODS_BY_NAME) == METHODS
    assert all(callable(m.run_group) and callable(m.check) and callable(m.notes) for m in METHODS_BY_NAME.values())


def test_decoder_readout_is_the_last_token():
    gpt2 = tiny_model("gpt2", initializer_range=0.2)
    pattern = AttentionPattern(window=3, causal=True)
    batch = _batch(lengths=(16, 16))
    r = prompt_influence(gpt2, _prompt(2), batch, pattern, PromptPlacement("infix", 2, at=4))
    lay = r.layout
    assert lay.length == 18 and lay.prompt_positions == (4, 5) and r.readout.tolist() == [17, 17]
    ref = _reference_reach(pattern, lay, 2)
    assert torch.equal(r.values[0][~ref], torch.zeros(int((~ref).sum())))
    assert bool((r.values[0][ref] > 0).all()) and not bool(ref[:, :4].any())  # nothing before the prompt


# ---- rollout ----------------------------------------------------------------------------------
def test_rollout_by_hand_three_tokens_two_layers():
    # layer 1, two heads; their mean A1 = [[1, 0, 0], [.5, .5, 0], [0, .25, .75]]
    l1 = torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]],
                       [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]])
    # layer 2, both heads [[.5, .5, 0], [0, 1, 0], [0, .5, .5]]
    h = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]])
    l2 = torch.stack([h, h])
    # (A + I) row-normalised:
    a1 = torch.tensor([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.0, 0.125, 0.875]])
    a2 = torch.tensor([[0.75, 0.25, 0.0], [0.0, 1.0, 0.0], [0.0, 0.25, 0.75]])
    # rollout after two layers: a2 @ a1
    r2 = torch.tensor([[0.8125, 0.1875, 0.0], [0.25, 0.75, 0.0], [0.0625, 0.28125, 0.65625]])
    torch.testing.assert_close(a2 @ a1, r2, rtol=0, atol=0)
    out = attention_rollout([l1, l2], sources=[0])                          # (layers+1, L, n)
    assert out.shape == (3, 3, 1)
    expected = torch.tensor([[1.0, 0.0, 0.0],         # the source itself
                             [1.0, 0.25, 0.0],        # token 2 does not attend token 0 in layer 1: exactly 0
                             [0.8125, 0.25, 0.0625]])  # ... and gets it through token 1 in layer 2
    torch.testing.assert_close(out[..., 0], expected, rtol=0, atol=1e-7)
    both = attention_rollout([l1, l2], sources=[0, 1])
    torch.testing.assert_close(both[2], r2[:, :2], rtol=0, atol=1e-7)       # columns of the full rollout
    step = rollout_step(l1[None], torch.eye(3)[None])
    torch.testing.assert_close(step[0], a1, rtol=0, atol=0)


def test_rollout_is_zero_where_unreached_and_matches_captured_attentions(bert):
    pattern, placement = AttentionPattern(window=(2, 4, 2, 6)), PromptPlacement("scattered", 4, every=9)
    batch = _batch(lengths=(30, 30))
    r = prompt_influence(bert, _prompt(4), batch, pattern, placement, method="rollout")
    lay = r.layout
    v = r.values[0]
    assert torch.equal(v[~r.reached[0]], torch.zeros(int((~r.reached[0]).sum())))
    assert bool((v[r.reached[0]] > 0).all())
    assert torch.equal(v[0], lay.prompt_mask().float())
    # the hooks give the same as rollout on output_attentions of the same run
    embeds = insert_prompt(bert.get_input_embeddings()(batch["input_ids"]), _prompt(4), lay)
    with torch.no_grad(), with_pattern(bert, pattern, lay) as m:
        att = m(inputs_embeds=embeds, output_attentions=True).attentions
    ref = attention_rollout(att, lay.prompt_positions)
    torch.testing.assert_close(r.values, ref.sum(-1), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(r.attribution, ref[:, -1, lay.readout_position], rtol=1e-5, atol=1e-7)
    assert torch.equal(r.attribution[0] > 0, r.can_reach[0])


# ---- gradient ---------------------------------------------------------------------------------
def test_gradient_attribution_is_zero_exactly_for_prompt_tokens_that_cannot_reach_the_readout(bert):
    pattern, placement = AttentionPattern(window=4), PromptPlacement("scattered", 4, every=4)
    r = prompt_influence(bert, _prompt(4), _batch(lengths=(30, 30)), pattern, placement, method="gradient")
    lay = r.layout
    masks = build_masks(pattern, lay, 4)
    can = torch.tensor([bool(spread(masks, [p]).reached[-1, lay.readout_position]) for p in lay.prompt_positions])
    assert can.tolist() == [True, True, False, False]  # [CLS] at 0, window ±2, 4 layers: positions <= 8
    assert torch.equal(r.can_reach, can.expand(2, -1))
    assert r.attribution.shape == (2, 4)
    assert torch.equal(r.attribution[:, ~can], torch.zeros(2, 2))
    assert bool((r.attribution[:, can] != 0).all())
    # the map (first-order ablation) obeys the same invariant
    assert torch.equal(r.values[~r.reached & r.valid[:, None]], torch.zeros(int((~r.reached & r.valid[:, None]).sum())))
    assert bool((r.values[r.reached] > 0).all())
    assert r.per_token.shape == (4,)


def test_gradient_with_a_classifier_and_ablation_per_token(bert):
    torch.manual_seed(0)
    head = torch.nn.Linear(H, 3)
    args = (bert, _prompt(4), _batch(lengths=(30, 30)), AttentionPattern(window=4), PromptPlacement("prefix", 4))
    r = prompt_influence(*args, method="gradient", classifier=head, target=1)
    assert r.attribution.shape == (2, 4) and bool((r.attribution != 0).all())
    assert any("logit" in n for n in r.notes)
    abl = prompt_influence(*args, method="ablation", per_token=True, classifier=head, target=1)
    assert abl.attribution.shape == (2, 4) and bool((abl.attribution != 0).all())
    custom = prompt_influence(*args, method="gradient", output=lambda out: out.last_hidden_state[:, 0, 0])
    assert bool((custom.attribution != 0).all())


def test_integrated_gradients_add_up_to_the_readout_displacement(bert):
    pytest.importorskip("captum")
    pattern, placement = AttentionPattern(window=4), PromptPlacement("prefix", 3)
    batch = _batch(lengths=(20, 20))
    prompt = _prompt(3)
    r = prompt_influence(bert, prompt, batch, pattern, placement, method="gradient", integrated=True, steps=16)
    lay = r.layout
    words = bert.get_input_embeddings()(batch["input_ids"])
    with torch.no_grad(), with_pattern(bert, pattern, lay) as m:
        h = m(inputs_embeds=insert_prompt(words, prompt, lay)).last_hidden_state[:, 0]
        h0 = m(inputs_embeds=insert_prompt(words, torch.zeros_like(prompt), lay)).last_hidden_state[:, 0]
    torch.testing.assert_close(r.attribution.sum(1), (h - h0).norm(dim=-1), rtol=2e-3, atol=1e-4)  # completeness


# ---- helpers ----------------------------------------------------------------------------------
def test_distance_profile_and_block_means(bert):
    r = prompt_influence(bert, _prompt(2), _batch(lengths=(12, 10)), AttentionPattern(window=4),
                         PromptPlacement("prefix", 2))
    d, mean, count = distance_profile(r)
    # row 0: [CLS] P P t.. (L=14); row 1: L=12. Distances from positions 1-2.
    assert d.tolist() == list(range(12))
    assert count[0] == 4 and count[1] == 4 and count[11] == 1
    torch.testing.assert_close(mean[:, 11], r.values[0, :, 13])
    torch.testing.assert_close(mean[:, 0], r.values[:, :, 1:3].mean((0, 2)))
    v = torch.arange(10.0)[None]
    torch.testing.assert_close(block_means(v, (0, 3, 4, 10)), torch.tensor([[1.0, 3.0, 6.5]]))
    with pytest.raises(ValueError, match="edges"):
        block_means(v, (0, 5, 9))


def test_summary_says_exactly_zero(bert):
    r = prompt_influence(bert, _prompt(2), _batch(), AttentionPattern(window=4), PromptPlacement("prefix", 2))
    assert isinstance(r, InfluenceMap)
    assert "exactly 0 wherever the prompt has not arrived" in r.summary()
    assert r.spread.reached.shape == (5, r.length)


# ---- bad input ----------------------------------------------------------------------------------
def test_bad_input_names_the_value(bert):
    p, pl, pat = _prompt(4), PromptPlacement("prefix", 4), AttentionPattern(window=4)
    batch = _batch()
    with pytest.raises(ValueError, match="unknown method 'saliency'.*ablation, rollout, gradient"):
        prompt_influence(bert, p, batch, pat, pl, method="saliency")
    with pytest.raises(ValueError, match="unknown baseline 'noise'"):
        prompt_influence(bert, p, batch, pat, pl, baseline="noise")
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        prompt_influence(bert, p, batch, pat, pl, backend="fast")
    with pytest.raises(ValueError, match="rollout needs .* backend='dense'"):
        prompt_influence(bert, p, batch, pat, pl, method="rollout", backend="sdpa")
    # a batch whose layout differs from the prompt's
    with pytest.raises(ValueError, match="prompt has 4 vectors but the placement says n_tokens=5"):
        prompt_influence(bert, p, batch, pat, PromptPlacement("prefix", 5))
    obj = SimpleNamespace(weight=p, placement=pl)
    with pytest.raises(ValueError, match="made for .*'prefix'.* but placement=.*'suffix'"):
        prompt_influence(bert, obj, batch, pat, PromptPlacement("suffix", 4))
    with pytest.raises(ValueError, match="at=40 is beyond the text"):
        prompt_influence(bert, p, batch, pat, PromptPlacement("infix", 4, at=40))
    with pytest.raises(ValueError, match="exceeds the model's 512 positions"):
        prompt_influence(bert, p, _batch(lengths=(510,)), pat, pl)
    with pytest.raises(ValueError, match="hidden size 16, the model 32"):
        prompt_influence(bert, torch.zeros(4, 16), batch, pat, pl)
    # empty batches and rows
    with pytest.raises(ValueError, match=r"empty batch: input_ids has shape \(0, 30\)"):
        prompt_influence(bert, p, {"input_ids": torch.zeros(0, 30, dtype=torch.long)}, pat, pl)
    with pytest.raises(ValueError, match=r"empty batch: input_ids has shape \(2, 0\)"):
        prompt_influence(bert, p, {"input_ids": torch.zeros(2, 0, dtype=torch.long)}, pat, pl)
    with pytest.raises(ValueError, match=r"rows \[1\] have no text tokens"):
        prompt_influence(bert, p, _batch(lengths=(10, 2)), pat, pl)
    left = _batch(lengths=(10, 8))
    left["attention_mask"] = left["attention_mask"].flip(1)
    with pytest.raises(ValueError, match="right padding"):
        prompt_influence(bert, p, left, pat, pl)
    with pytest.raises(ValueError, match="no placement"):
        prompt_influence(bert, p, batch, pat)
    with pytest.raises(ValueError, match=r"output must give one scalar per example, shape \(3,\)"):
        prompt_influence(bert, p, batch, pat, pl, method="gradient", output=lambda out: out.last_hidden_state)
    bert.train()
    try:
        with pytest.raises(ValueError, match="training mode"):
            prompt_influence(bert, p, batch, pat, pl)
    finally:
        bert.eval()


def test_rollout_from_captured_attention_maps_exact_and_pooled(bert):
    from attnviz import capture_attention

    pattern, placement = AttentionPattern(window=4), PromptPlacement("prefix", 3)
    batch = _batch(lengths=(40,))
    r = prompt_influence(bert, _prompt(3), batch, pattern, placement, method="rollout")
    lay = r.layout
    inputs = {"inputs_embeds": insert_prompt(bert.get_input_embeddings()(batch["input_ids"]), _prompt(3), lay)}
    with with_pattern(bert, pattern, lay) as m:
        exact = capture_attention(m, inputs)
        pooled = capture_attention(m, inputs, pool=8, keep=lay)
    torch.testing.assert_close(attention_rollout(exact, lay.prompt_positions).sum(-1), r.values[0], rtol=1e-5, atol=1e-7)
    units = attention_rollout(pooled, lay.prompt_positions)                  # (layers+1, U, n)
    assert units.shape == (5, pooled.values.shape[-1], 3)
    p = [int(u) for u in pooled.unit_of[list(lay.prompt_positions)]]
    torch.testing.assert_close(units[0, p], torch.eye(3))                    # kept prompt units start at 1
    # [CLS] (position 0) is a unit of its own; pooling the text around it makes its rollout approximate
    torch.testing.assert_close(units[:, 0].sum(-1), r.values[0, :, 0], rtol=0.05, atol=1e-3)


def test_a_prompt_model_stands_for_its_frozen_base(bert):
    """PromptModel has a .config() *method*; influence must still run on its .base (regression)."""
    from attnviz.prompts import ClassificationHead, PromptModel

    placement = PromptPlacement("prefix", 4)
    obj = SimpleNamespace(weight=torch.nn.Parameter(_prompt(4)), placement=placement)
    wrapped = PromptModel(bert, ClassificationHead(H, 3), None, AttentionPattern(window=4))
    a = prompt_influence(wrapped, obj, _batch(), AttentionPattern(window=4))
    b = prompt_influence(bert, obj, _batch(), AttentionPattern(window=4))
    assert torch.equal(a.values, b.values)
