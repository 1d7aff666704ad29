"""SoftPrompt, heads and PromptModel: frozen base, insertion per placement, ids, padding, pruning."""

import pytest
import torch

from _prompt_fixtures import batch, tiny_tokenizer
from attnviz import AttentionPattern, PromptPlacement, with_pattern
from attnviz.models import tiny_model
from attnviz.prompts import (ClassificationHead, PromptModel, QAHead, Readout, SoftPrompt, frequent_token_ids,
                             readout_reach)
from attnviz.prompts.model import pattern_from_dict, pattern_to_dict

H = 32


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def base():
    return tiny_model("bert", num_hidden_layers=3)


def prompt_of(base, placement, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return SoftPrompt(torch.randn(placement.n_tokens, H, generator=gen) * 0.05, placement)


def model_of(base, tok, placement, pattern=None, pooling="cls", **kw):
    torch.manual_seed(0)
    prompt = None if placement is None else prompt_of(base, placement)
    return PromptModel(base, ClassificationHead(H, 3, pooling=pooling), prompt, pattern, tokenizer=tok, **kw).eval()


# ---- frozen base ---------------------------------------------------------------------------------
def test_base_is_frozen_and_trainable_counts_are_exact(base, tok):
    model = model_of(base, tok, PromptPlacement("prefix", n_tokens=5), AttentionPattern(window=4)).train()
    assert not base.training and model.head.training  # the base stays in eval mode (dropout off)
    ids, am, tt = batch(tok, ["good film", "the food was very bad"])
    model(ids, am, tt).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in base.parameters())
    assert model.prompt.weight.grad is not None and model.prompt.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.head.parameters())
    assert model.trainable_parameters() == {"prompt": 5 * H, "head": H * 3 + 3, "base": 0, "total": 5 * H + H * 3 + 3}
    head_only = model_of(base, tok, None)
    assert head_only.trainable_parameters() == {"prompt": 0, "head": H * 3 + 3, "base": 0, "total": H * 3 + 3}


def test_n_tokens_zero_is_refused_and_head_only_is_the_baseline(base, tok):
    with pytest.raises(ValueError, match="n_tokens must be >= 1, got 0"):
        PromptPlacement("prefix", n_tokens=0)
    model = model_of(base, tok, None, AttentionPattern(window=4))
    ids, am, tt = batch(tok, ["good film was fine"])
    prepared = model.prepare(ids, am, tt)
    assert prepared.length == ids.shape[1]
    assert torch.equal(prepared.inputs["inputs_embeds"], base.get_input_embeddings()(ids))
    assert model(ids, am, tt).shape == (1, 3)


def test_prompt_that_does_not_fit_the_positions(tok):
    small = tiny_model("bert", max_position_embeddings=16)
    model = model_of(small, tok, PromptPlacement("prefix", n_tokens=6))
    ids, am, tt = batch(tok, ["good film was very bad and not fine at all"])  # 12 tokens + 6 > 16
    assert ids.shape[1] == 12
    with pytest.raises(ValueError, match=r"layout length 18 \(12 tokens \+ 6 prompt tokens\) exceeds the model's 16 positions"):
        model(ids, am, tt)


def test_prompt_checks(base, tok):
    with pytest.raises(ValueError, match="hidden size 8, the model 32"):
        PromptModel(base, ClassificationHead(H, 2), SoftPrompt(torch.zeros(2, 8), PromptPlacement("prefix", n_tokens=2)))
    with pytest.raises(ValueError, match="2 rows but the placement has n_tokens=3"):
        SoftPrompt(torch.zeros(2, H), PromptPlacement("prefix", n_tokens=3))
    with pytest.raises(ValueError, match="unknown backend 'native'"):
        PromptModel(base, ClassificationHead(H, 2), backend="native")


# ---- insertion -----------------------------------------------------------------------------------
# "good film was bad" -> [CLS] good film was bad [SEP]; P0, P1 = prompt tokens. Expected orders by hand.
EXPECTED = {
    ("start", None, None): "P0 P1 C good film was bad S",
    ("prefix", None, None): "C P0 P1 good film was bad S",
    ("infix", 2, None): "C good film P0 P1 was bad S",
    ("suffix", None, None): "C good film was bad P0 P1 S",
    ("scattered", None, 3): "C P0 good film was P1 bad S",
}


@pytest.mark.parametrize("kind,at,every", list(EXPECTED))
def test_insertion_matches_a_manual_construction(base, tok, kind, at, every):
    placement = PromptPlacement(kind, n_tokens=2, at=at, every=every)
    pattern = AttentionPattern(window=4, global_prompt=True)
    model = model_of(base, tok, placement, pattern, prune=False)
    ids, am, tt = batch(tok, ["good film was bad"])
    words = base.get_input_embeddings()(ids)[0]
    names = ["C", "good", "film", "was", "bad", "S"]
    rows = []
    for sym in EXPECTED[(kind, at, every)].split():
        rows.append(model.prompt.weight[int(sym[1])] if sym.startswith("P") else words[names.index(sym)])
    manual = torch.stack(rows)[None]
    prepared = model.prepare(ids, am, tt)
    assert torch.equal(prepared.inputs["inputs_embeds"], manual)
    assert torch.equal(prepared.inputs["position_ids"], torch.arange(8)[None])   # 0..L-1, text shifted by a start prompt
    assert torch.equal(prepared.inputs["token_type_ids"], torch.zeros(1, 8, dtype=torch.long))
    layout = placement.layout(4)
    assert [s for s, sym in enumerate(EXPECTED[(kind, at, every)].split()) if sym.startswith("P")] == list(layout.prompt_positions)
    with with_pattern(base, pattern, layout) as m:
        expected = m(inputs_embeds=manual, position_ids=torch.arange(8)[None], token_type_ids=torch.zeros(1, 8, dtype=torch.long)).last_hidden_state
    assert torch.equal(model.hidden_states(prepared), expected)
    readout = 2 if kind == "start" else 0
    assert int(prepared.readout.index) == readout                                # [CLS] wherever it sits


@pytest.mark.parametrize("kind,at,types", [
    ("start", None, [0, 0]), ("prefix", None, [0, 0]), ("infix", 3, [1, 1]), ("infix", 2, [0, 0]), ("suffix", None, [1, 1])])
def test_prompt_tokens_take_the_token_type_of_where_they_sit(base, tok, kind, at, types):
    # pair: [CLS] good film [SEP] was bad [SEP], types 0 0 0 0 1 1 1; infix at counts every token after [CLS]
    model = model_of(base, tok, PromptPlacement(kind, n_tokens=2, at=at))
    ids, am, tt = batch(tok, ["good film"], ["was bad"])
    assert tt.tolist() == [[0, 0, 0, 0, 1, 1, 1]]
    prepared = model.prepare(ids, am, tt)
    layout = model.layout(7)
    got = prepared.inputs["token_type_ids"][0]
    assert got[list(layout.prompt_positions)].tolist() == types
    text_types = got[[p for p in range(layout.length) if p not in layout.prompt_positions]]
    assert text_types.tolist() == tt[0].tolist()


@pytest.mark.parametrize("kind,at,every", list(EXPECTED))
@pytest.mark.parametrize("pattern", [AttentionPattern(window=4), AttentionPattern(window=2, global_prompt=True),
                                     AttentionPattern(window=None)])
def test_padded_batch_gives_each_row_its_own_layout(base, tok, kind, at, every, pattern):
    """Right-padded rows equal the same rows alone: a suffix prompt sits before each row's own [SEP]."""
    model = model_of(base, tok, PromptPlacement(kind, n_tokens=2, at=at, every=every), pattern)
    texts = ["good film was bad", "the food was very bad and not fine at all", "fine plot"] if kind != "infix" else \
        ["good film was bad", "the food was very bad and not fine at all", "fine plot ok"]
    ids, am, tt = batch(tok, texts)
    with torch.no_grad():
        logits = model(ids, am, tt)
        for b in range(len(texts)):
            n = int(am[b].sum())
            alone = model(ids[b:b + 1, :n], am[b:b + 1, :n], tt[b:b + 1, :n])
            assert torch.allclose(alone[0], logits[b], atol=1e-5), (b, (alone[0] - logits[b]).abs().max())


def test_per_row_layouts_are_used_for_suffix_and_refused_on_flex(base, tok):
    model = model_of(base, tok, PromptPlacement("suffix", n_tokens=2), AttentionPattern(window=4), prune=False)
    ids, am, tt = batch(tok, ["good film", "the food was very bad"])
    prepared = model.prepare(ids, am, tt)
    assert prepared.layout is None and prepared.masks.shape == (3, 2, ids.shape[1] + 2, ids.shape[1] + 2)
    # row 0: [CLS] good film P P [SEP] then padding; the prompt sits before its own [SEP]
    assert torch.equal(prepared.inputs["inputs_embeds"][0, 3:5], model.prompt.weight)
    assert prepared.inputs["attention_mask"][0].tolist() == [1] * 6 + [0] * 3
    flex = model_of(base, tok, PromptPlacement("suffix", n_tokens=2), AttentionPattern(window=4), backend="flex")
    with pytest.raises(ValueError, match="rows of this batch need different layouts"):
        flex.prepare(ids, am, tt)


def test_left_padding_is_refused(base, tok):
    model = model_of(base, tok, PromptPlacement("prefix", n_tokens=2))
    with pytest.raises(ValueError, match="right padding"):
        model(torch.tensor([[0, 2, 6, 3]]), torch.tensor([[0, 1, 1, 1]]))


def test_sdpa_matches_dense(base, tok):
    ids, am, tt = batch(tok, ["good film was bad", "fine plot"])
    for kind in ("prefix", "suffix"):
        dense = model_of(base, tok, PromptPlacement(kind, n_tokens=3), AttentionPattern(window=4), prune=False)
        sdpa = model_of(base, tok, PromptPlacement(kind, n_tokens=3), AttentionPattern(window=4), backend="sdpa", prune=False)
        with torch.no_grad():
            assert torch.allclose(dense(ids, am, tt), sdpa(ids, am, tt), atol=1e-5)


# ---- heads ---------------------------------------------------------------------------------------
def test_classification_pooling_by_hand():
    head = ClassificationHead(2, 2, pooling="mean", dropout=0.0)
    with torch.no_grad():
        head.classifier.weight.copy_(torch.eye(2))
        head.classifier.bias.zero_()
    hidden = torch.tensor([[[1.0, 0.0], [9.0, 9.0], [3.0, 2.0], [5.0, 4.0]]])      # slot 1 prompt, slot 3 padding
    readout = Readout(index=torch.tensor([2]), text=torch.tensor([[True, False, True, False]]), token_slot=torch.tensor([[0, 2, -1]]))
    assert head(hidden, readout).tolist() == [[2.0, 1.0]]                          # mean of slots 0 and 2
    head.pooling = "cls"
    assert head(hidden, readout).tolist() == [[3.0, 2.0]]                          # the readout slot
    head.pooling = "first"
    assert head(hidden, Readout(torch.tensor([0]), readout.text, readout.token_slot)).tolist() == [[1.0, 0.0]]
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        ClassificationHead(2, 2, pooling="max")


def test_qa_logits_are_indexed_by_token_and_masked(base, tok):
    torch.manual_seed(0)
    model = PromptModel(base, QAHead(H), prompt_of(base, PromptPlacement("infix", n_tokens=2, at=1)),
                        AttentionPattern(window=4), tokenizer=tok).eval()
    ids, am, tt = batch(tok, ["what is good", "the film"], ["it was good", "was bad"])
    with torch.no_grad():
        start, end = model(ids, am, tt)
        prepared = model.prepare(ids, am, tt)
        hidden = model.hidden_states(prepared)
    assert start.shape == end.shape == ids.shape
    for b in range(2):
        for t in range(ids.shape[1]):
            if am[b, t]:
                slot = int(prepared.readout.token_slot[b, t])
                assert torch.allclose(start[b, t], model.head.qa_outputs(hidden[b, slot])[0])
            else:
                assert start[b, t] == torch.finfo(start.dtype).min
    assert model.pruning_status()[0] is False   # a QA head reads every token: no pruning


# ---- initialisation ------------------------------------------------------------------------------
def test_inits(base, tok):
    table = base.get_input_embeddings().weight.detach()
    pl = PromptPlacement("prefix", n_tokens=5)
    rnd = SoftPrompt.init(base, tok, pl, "random", seed=1)
    assert rnd.weight.shape == (5, H) and rnd.weight.min() >= -0.5 and rnd.weight.max() <= 0.5
    assert torch.equal(rnd.weight, SoftPrompt.init(base, tok, pl, "random", seed=1).weight)
    assert not torch.equal(rnd.weight, SoftPrompt.init(base, tok, pl, "random", seed=2).weight)

    text = SoftPrompt.init(base, tok, pl, "text", text="good film", noise=0.0)
    ids = [tok.convert_tokens_to_ids(w) for w in ["good", "film", "good", "film", "good"]]
    assert torch.equal(text.weight, table[ids])
    sep = SoftPrompt.init(base, tok, pl, noise=0.0)                                 # default: [SEP] copies
    assert torch.equal(sep.weight, table[[3] * 5]) and sep.init_info["text"] == "[SEP]"
    noisy = SoftPrompt.init(base, tok, pl)
    assert 0 < float((noisy.weight - sep.weight).detach().std()) < 0.2 * float(table.std())

    vocab = SoftPrompt.init(base, tok, pl, "vocab", seed=0)
    pool = frequent_token_ids(tok)
    assert set(vocab.init_info["token_ids"]) <= set(pool) and len(set(vocab.init_info["token_ids"])) == 5
    assert torch.equal(vocab.weight, table[vocab.init_info["token_ids"]])

    labels = SoftPrompt.init(base, tok, pl, "labels", labels=["positive", "negative"])
    assert torch.equal(labels.weight[0], table[tok.convert_tokens_to_ids("positive")])
    assert torch.equal(labels.weight[1], table[tok.convert_tokens_to_ids("negative")])
    assert torch.equal(labels.weight[2:], table[labels.init_info["token_ids_rest"]])
    with pytest.raises(ValueError, match="needs labels="):
        SoftPrompt.init(base, tok, pl, "labels")
    with pytest.raises(ValueError, match="unknown init 'zeros'"):
        SoftPrompt.init(base, tok, pl, "zeros")


def test_frequent_tokens_of_the_embedded_minilm_are_common_words():
    from transformers import AutoTokenizer

    from attnviz.models import default_model_path

    tok = AutoTokenizer.from_pretrained(default_model_path())
    ids = frequent_token_ids(tok)
    assert len(ids) == 5000
    assert tok.convert_ids_to_tokens(ids[:6]) == ["the", "of", "and", "in", "to", "was"]


# ---- reach-aware pruning -------------------------------------------------------------------------
def test_readout_reach_by_hand_and_against_the_dense_spread():
    layout = PromptPlacement("suffix", n_tokens=2).layout(20)          # L = 24, [CLS] at 0
    # window 4: 2 each side per layer; 3 layers -> positions 0..6 reach [CLS]
    assert readout_reach(AttentionPattern(window=4), layout, 3).nonzero().flatten().tolist() == list(range(7))
    # per-layer windows are run in reverse order: (2, 2, 8) -> last layer first: 4 + 1 + 1
    assert readout_reach(AttentionPattern(window=(2, 2, 8)), layout, 3).nonzero().flatten().tolist() == list(range(7))
    assert readout_reach(AttentionPattern(window=(8, 2, 2)), layout, 3).nonzero().flatten().tolist() == list(range(7))
    # global prompt at 21, 22: reaches [CLS] after one layer, and everything reaches the prompt
    assert bool(readout_reach(AttentionPattern(window=4, global_prompt=True), layout, 3).all())
    # the symmetric fast path equals the transposed dense masks
    from attnviz import build_masks, spread

    for pattern in [AttentionPattern(window=(4, 2, 6), dilation=(1, 2, 1)), AttentionPattern(window=2, global_positions=(9,))]:
        masks = build_masks(pattern, layout, 3)
        dense = spread(masks.flip(0).transpose(1, 2), [0]).reached[-1]
        assert torch.equal(readout_reach(pattern, layout, 3), dense)


@pytest.mark.parametrize("kind,pooling", [("prefix", "cls"), ("suffix", "cls"), ("infix", "cls"), ("start", "cls"),
                                          ("start", "first"), ("scattered", "cls")])
def test_pruning_gives_identical_logits(base, tok, kind, pooling):
    kw = {"at": 3} if kind == "infix" else {"every": 4} if kind == "scattered" else {}
    placement = PromptPlacement(kind, n_tokens=3, **kw)
    pattern = AttentionPattern(window=2)
    pruned = model_of(base, tok, placement, pattern, pooling=pooling)
    full = model_of(base, tok, placement, pattern, pooling=pooling, prune=False)
    ids, am, tt = batch(tok, ["the food was very bad and not fine at all and the plot was poor", "good film was fine"])
    with torch.no_grad():
        a = pruned(ids, am, tt)
        info = dict(pruned.last_info)
        b = full(ids, am, tt)
    assert info["pruned"] and info["computed"] < info["length"], info
    assert full.last_info["pruned"] is False
    assert torch.allclose(a, b, atol=1e-6, rtol=0), (a - b).abs().max()
    # dropped positions really do not matter: change every token outside the kept set, same logits
    kept = pruned.prepare(ids, am, tt).kept
    changed = ids.clone()
    for r in range(ids.shape[0]):
        layout = pruned.layout(int(am[r].sum()))
        keep_tokens = {layout.token_index[int(s)] for s in kept[r] if layout.token_index[int(s)] >= 0}
        for t in range(int(am[r].sum()) - 1):
            if t not in keep_tokens and t > 0:
                changed[r, t] = 5
    with torch.no_grad():
        assert torch.allclose(full(changed, am, tt), b, atol=1e-6)


def test_pruning_position_ids_are_the_original_ones(base, tok):
    model = model_of(base, tok, PromptPlacement("start", n_tokens=3), AttentionPattern(window=2))
    ids, am, tt = batch(tok, ["the food was very bad and not fine at all"])
    prepared = model.prepare(ids, am, tt)
    # [CLS] at 3 after a start prompt; window 2 over 3 layers -> positions 0..6 reach it
    assert prepared.kept.tolist() == [list(range(7))]
    assert prepared.inputs["position_ids"].tolist() == [list(range(7))]
    assert int(prepared.readout.index) == 3
    assert model.last_info["computed"] == 7 and model.last_info["length"] == ids.shape[1] + 3


def test_pruning_is_off_where_it_cannot_be_exact(base, tok):
    ids, am, tt = batch(tok, ["good film was bad"])
    mean = model_of(base, tok, PromptPlacement("prefix", n_tokens=2), AttentionPattern(window=2), pooling="mean")
    mean(ids, am, tt)
    assert not mean.last_info["pruned"] and "reads every token" in mean.last_info["reason"]
    glob = model_of(base, tok, PromptPlacement("prefix", n_tokens=2), AttentionPattern(window=2, global_prompt=True))
    glob(ids, am, tt)
    assert not glob.last_info["pruned"] and "nothing to drop" in glob.last_info["reason"]


def test_pattern_dict_round_trip():
    p = AttentionPattern(window=(4, 2, 8), global_positions=(0, 3), dilation=(1, 2, 1), global_prompt=True)
    assert pattern_from_dict(pattern_to_dict(p)) == p


# ---- Longformer (native) -------------------------------------------------------------------------
def test_longformer_native_global_prompt(tok):
    base = tiny_model("longformer")
    placement = PromptPlacement("suffix", n_tokens=2)
    torch.manual_seed(0)
    model = PromptModel(base, ClassificationHead(H, 2), prompt_of(base, placement), AttentionPattern(window=4, global_prompt=True),
                        special_tokens=(True, True)).eval()
    assert model.backend == "native" and model.pruning_status()[0] is False
    ids = torch.tensor([[0, 10, 11, 12, 13, 14, 2], [0, 10, 11, 2, 1, 1, 1]])
    am = (ids != 1).long()
    prepared = model.prepare(ids, am)
    g = prepared.inputs["global_attention_mask"]
    assert g[0].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 0] and g[1].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert prepared.inputs["position_ids"][0].tolist() == list(range(2, 11))      # RoBERTa offset padding_idx + 1
    with torch.no_grad():
        logits = model(ids, am)
        alone = model(ids[1:, :4], am[1:, :4])
    assert torch.allclose(logits[1], alone[0], atol=1e-5)
    model.train()
    model(ids, am).sum().backward()
    assert model.prompt.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in base.parameters())
    assert base.config.attention_window == [4, 4]                                   # restored after each call


def test_decoder_reads_the_last_real_token_and_prunes_causally():
    base = tiny_model("gpt2")
    placement = PromptPlacement("suffix", n_tokens=2)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 0, 0, 0, 0]])
    am = torch.tensor([[1] * 7, [1] * 3 + [0] * 4])
    outs = {}
    for prune in ("auto", False):
        torch.manual_seed(0)
        model = PromptModel(base, ClassificationHead(H, 2), prompt_of(base, placement),
                            AttentionPattern(window=3, causal=True), prune=prune).eval()
        assert model.special_tokens == (False, False)
        with torch.no_grad():
            outs[prune] = model(ids, am)
            alone = model(ids[1:, :3], am[1:, :3])
        assert torch.allclose(outs[prune][1], alone[0], atol=1e-6)
    # causal window 3 over 2 layers: the last token (a prompt token, index 8) needs positions 4..8
    assert model.kept_positions(model.layout(7), 8).tolist() == [4, 5, 6, 7, 8]
    assert torch.allclose(outs["auto"], outs[False], atol=1e-6)
