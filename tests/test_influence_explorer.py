"""attnviz.widgets.InfluenceExplorer: setting controls redraws the attention heatmap with exactly
the numbers of capture_attention and the influence map with exactly those of prompt_influence
(computed here independently, on a tiny BERT); a trained checkpoint's prompt is used as saved;
bad values show a message and leave the figures alone; the export is offline; the nearest-token
table says what the prompt is (a prompt made of token embeddings reads back as those tokens, cosine
exactly 1.0) and follows the prompt source."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement, build_masks, capture_attention, insert_prompt, prompt_influence
from attnviz.models import tiny_model
from attnviz.models.interface import with_pattern
from attnviz.prompts import SoftPrompt, load_checkpoint, train_soft_prompt
from attnviz.prompts.checkpoints import save_checkpoint, step_dir
from attnviz.widgets import InfluenceExplorer, InfluenceSettings, influence_view

from _prompt_fixtures import make_run, tiny_tokenizer
from _values import shows

TEXT = "the film was very good and the plot was fine but the service was poor"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def model():
    return tiny_model("bert", num_hidden_layers=3)


def _reference(model, tok, s: InfluenceSettings, weight=None):
    """What the explorer should show, computed from the library directly."""
    placement = PromptPlacement(s.placement, n_tokens=s.n_tokens, at=s.at if s.placement == "infix" else None,
                                every=s.every if s.placement == "scattered" else None)
    pattern = AttentionPattern(window=s.window, global_prompt=s.global_prompt,
                               global_positions=tuple(int(p) for p in s.global_positions.split(",") if p.strip()))
    if weight is None:
        weight = SoftPrompt.init(model, tok, placement, s.prompt, seed=s.seed).weight.detach()
    enc = tok(s.text, return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    layout = placement.layout(enc["input_ids"].shape[1] - 2)
    with torch.no_grad(), with_pattern(model, pattern, layout) as m:
        embeds = insert_prompt(model.get_input_embeddings()(enc["input_ids"]), weight, layout)
        maps = capture_attention(m, {"inputs_embeds": embeds, "attention_mask": torch.ones(1, layout.length)},
                                 layers=[s.layer])
    infl = prompt_influence(model, weight, batch, pattern, placement, method=s.method)
    return pattern, layout, maps, infl


def _check(ex: InfluenceExplorer, model, tok, weight=None):
    assert ex.error is None, ex.error
    s = ex.settings()
    pattern, layout, maps, infl = _reference(model, tok, s, weight)
    att = ex.figures["attention"].data[0]
    expected = maps.values[0].mean(0) if s.head is None else maps.values[0, s.head]
    z = np.asarray(att.z)
    assert z.shape == (layout.length, layout.length)
    assert shows(att.z, expected)
    # nothing outside the pattern's mask, rows are probabilities
    allowed = build_masks(pattern, layout, model.config.num_hidden_layers)[s.layer].numpy()
    assert (z[~allowed] == 0).all()
    np.testing.assert_allclose(z.sum(1), 1.0, atol=1e-5)
    heat = ex.figures["influence"].data[0]
    values = infl.values[0].numpy()
    assert shows(heat.customdata, infl.values[0])
    # blank exactly where the influence is 0, and 0 wherever spread says the prompt has not arrived
    assert np.array_equal(np.isnan(np.asarray(heat.z, dtype=float)), values == 0)
    assert (values[~infl.reached[0].numpy()] == 0).all()
    return pattern, layout, maps, infl


def test_controls_redraw_to_capture_and_influence_numbers(model, tok):
    ex = InfluenceExplorer(model, tok, text=TEXT, window=4, n_tokens=3)
    assert set(ex.figures) == {"attention", "influence", "words"}
    _, layout, _, infl = _check(ex, model, tok)
    assert layout.prompt_positions == (1, 2, 3)
    assert ex.figures["attention"].layout.title.text.startswith("Attention in layer 0, mean of heads")

    ex.set(window=8, layer=2, head=1, placement="infix", at=5)
    _, layout, _, _ = _check(ex, model, tok)
    assert layout.prompt_positions == (6, 7, 8)           # [CLS] + 5 text tokens, then the prompt
    assert "layer 2, head 1" in ex.figures["attention"].layout.title.text

    ex.set(window=2, global_prompt=True, method="rollout", head=None, layer=1)
    _, layout, _, infl = _check(ex, model, tok)
    assert infl.method == "rollout"
    # a global prompt reaches every token after one layer: no blank cell above the embeddings row
    assert (infl.values[0, 1:] > 0).all()

    ex.set(placement="scattered", every=3, window=None, method="gradient")
    _check(ex, model, tok)


def test_window_bounds_how_far_the_prompt_reaches(model, tok):
    """window=2 (one neighbour each side), 3 layers, prefix prompt at 1..2: after layer l the
    influence is non-zero exactly up to position 2 + l (worked by hand), zero beyond."""
    ex = InfluenceExplorer(model, tok, text=TEXT, window=2, n_tokens=2)
    _, layout, _, infl = _check(ex, model, tok)
    v = infl.values[0]
    for l in range(1, 4):
        assert (v[l, : 3 + l] > 0).all()
        assert (v[l, 3 + l:] == 0).all()


def test_checkpoint_prompt_is_used_as_saved(tmp_path):
    model, train_rows, _ = make_run(tmp_path, n_tokens=4, window=4)
    train_soft_prompt(model, train_rows, config=None, out_dir=tmp_path / "run", steps=3, batch_size=4,
                      checkpoint_every=3, progress=False)
    base, tok = model.base, tiny_tokenizer(tmp_path / "tok2")
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "step-00000003")[0]["prompt.weight"]
    ex = InfluenceExplorer(base, tok, text=TEXT, prompt=str(tmp_path / "run"), window=4)
    assert ex.controls["n_tokens"].value == 4 and ex.controls["n_tokens"].disabled
    assert torch.equal(ex.result.prompt, saved)
    assert ex.result.prompt_source.endswith("step-00000003")
    _check(ex, base, tok, weight=saved)
    ex.set(placement="suffix")                            # the trained vectors, moved elsewhere
    _check(ex, base, tok, weight=saved)
    ex.set(prompt="text", n_tokens=2)                    # back to an init: tokens free again
    assert not ex.controls["n_tokens"].disabled
    _check(ex, base, tok)


def test_bad_values_show_a_message_and_keep_the_figures(model, tok):
    ex = InfluenceExplorer(model, tok, text=TEXT, window=4, n_tokens=3)
    before = np.asarray(ex.figures["influence"].data[0].customdata).copy()
    ex.set(global_positions="999")
    assert ex.error is not None and "999" in ex.error
    assert "Cannot draw this" in ex.message.value
    assert np.array_equal(np.asarray(ex.figures["influence"].data[0].customdata), before)
    ex.set(global_positions="", prompt="/no/such/run")
    assert "/no/such/run" in ex.error
    ex.set(prompt="text", text="   ")
    assert "empty" in ex.error
    ex.set(text=TEXT)
    assert ex.error is None and ex.message.value == ""
    with pytest.raises(TypeError, match="unknown setting"):
        InfluenceExplorer(model, tok, windw=4)
    with pytest.raises(TypeError, match="both"):
        InfluenceExplorer(model)


def test_long_text_pools_the_heatmap_but_keeps_the_prompt_exact(model, tok):
    s = InfluenceSettings(text=" ".join(["the film was good"] * 40), window=8, n_tokens=3)
    view = influence_view(model, tok, s, max_side=64)
    maps = view.maps
    assert maps.pooled and maps.values.shape[-1] < view.layout.length
    for p in view.layout.prompt_positions:                 # each prompt position is a unit of its own
        assert maps.unit_sizes[maps.unit_of[p]] == 1
    assert shows(view.attention.traces[0].z, maps.values[0].mean(0))


def test_export_html_is_offline(model, tok, tmp_path):
    ex = InfluenceExplorer(model, tok, text=TEXT, window=4, n_tokens=3)
    page = ex.export_html(tmp_path / "influence.html").read_text()
    assert not re.search(r"<script[^>]+src=[\"']?https?:", page)
    assert "window=4" in page and "How much the prompt changes each token" in page
    assert "What the prompt says" in page and "text init (seed 0)" in page
    assert re.search(r"nearest(\\u00a0|\u00a0)tokens(\\u00a0|\u00a0)\(cosine\)", page)   # the table's header


@pytest.mark.slow
def test_default_model_is_the_embedded_minilm():
    from attnviz.widgets.influence import default_model

    ex = InfluenceExplorer(window=16, n_tokens=4, layer=5, head=3)
    model, tok, name = default_model()
    assert name == "all-MiniLM-L6-v2" and ex.model is model
    assert InfluenceExplorer(window=8).model is model      # loaded once
    _check(ex, model, tok)
    # the default init is noisy copies of [SEP]: every vector still reads as [SEP]
    assert [t[0] for t in ex.result.words.tokens] == ["[SEP]"] * 4
    assert (ex.result.words.cosine[:, 0] > 0.9).all() and (ex.result.words.cosine[:, 0] < 1).all()


def _table(ex) -> dict:
    """The nearest-token table the explorer shows, as {header: column values}."""
    t = ex.figures["words"].data[0]
    plain = lambda text: text.replace("\u00a0", " ")                 # the table's spaces are non-breaking
    return {plain(h.replace("<b>", "").replace("</b>", "")): [plain(v) for v in col]
            for h, col in zip(t.header.values, t.cells.values)}


def test_words_of_a_prompt_made_of_tokens_are_those_tokens_and_follow_the_source(model, tok):
    ex = InfluenceExplorer(model, tok, text=TEXT, prompt="vocab", seed=3, n_tokens=4, window=4)
    _check(ex, model, tok)
    emb = model.get_input_embeddings().weight.detach()
    weight = SoftPrompt.init(model, tok, PromptPlacement("prefix", n_tokens=4), "vocab", seed=3).weight.detach()
    # which rows of the embedding matrix the init copied (each vector equals exactly one row)
    ids = [int((emb == row).all(1).nonzero().item()) for row in weight]
    words = ex.result.words
    assert words.ids[:, 0].tolist() == ids
    assert [t[0] for t in words.tokens] == tok.convert_ids_to_tokens(ids)
    assert torch.equal(words.cosine[:, 0], torch.ones(4))              # exactly 1.0: the vector is the token
    assert (words.cosine[:, 1] < 1 - 1e-4).all()                      # and the next one is another token
    assert torch.allclose(words.norm, emb[ids].norm(dim=1), atol=1e-6)
    table = _table(ex)
    assert table["position"] == ["1", "2", "3", "4"]                  # after [CLS]
    assert table["norm"] == [f"{float(v):.2f}" for v in emb[ids].norm(dim=1)]
    near = table["nearest tokens (cosine)"]
    assert [n.split(",")[0] for n in near] == [f"{t} 1.000" for t in tok.convert_ids_to_tokens(ids)]
    assert "vocab init (seed 3)" in ex.figures["words"].layout.title.text

    ex.set(prompt="text")                                             # [SEP] copies + noise: the table follows
    assert [t[0] for t in ex.result.words.tokens] == ["[SEP]"] * 4
    assert (ex.result.words.cosine[:, 0] < 1).all() and (ex.result.words.cosine[:, 0] > 0.9).all()
    assert all(n.startswith("[SEP] 0.9") for n in _table(ex)["nearest tokens (cosine)"])
    ex.set(placement="suffix")                                        # positions move with the placement
    L = ex.result.layout.length
    assert _table(ex)["position"] == [str(p) for p in range(L - 5, L - 1)]


def test_words_of_a_hand_made_checkpoint_prompt(model, tok, tmp_path):
    """Three vectors worked out by hand: 3 x the embedding of "good" (nearest "good", cosine 1, norm
    3 |e_good|); the sum of the unit vectors of "film" and "plot" (both at cosine sqrt((1 + c) / 2),
    c = cos(film, plot)); minus the embedding of "bad" (cosine -1 to "bad", so "bad" is not near)."""
    emb = model.get_input_embeddings().weight.detach().float()
    good, film, plot, bad = tok.convert_tokens_to_ids(["good", "film", "plot", "bad"])
    unit = torch.nn.functional.normalize(emb, dim=1)
    w = torch.stack([3 * emb[good], unit[film] + unit[plot], -emb[bad]])
    save_checkpoint(step_dir(tmp_path / "run", 5), {"prompt.weight": w}, {"step": 5})
    ex = InfluenceExplorer(model, tok, text=TEXT, prompt=str(tmp_path / "run"), window=4)
    assert ex.controls["n_tokens"].value == 3
    words = ex.result.words
    assert words.tokens[0][0] == "good" and float(words.cosine[0, 0]) == 1.0
    assert float(words.norm[0]) == pytest.approx(3 * float(emb[good].norm()), rel=1e-6)
    c = float(unit[film] @ unit[plot])
    assert set(words.tokens[1][:2]) == {"film", "plot"}
    assert words.cosine[1, :2].tolist() == pytest.approx([((1 + c) / 2) ** 0.5] * 2, abs=1e-6)
    assert float(words.norm[1]) == pytest.approx((2 + 2 * c) ** 0.5, rel=1e-6)
    assert "bad" not in words.tokens[2]
    assert float(words.cosine[2, 0]) < 1.0
    assert "run, step 5 · cosine" in ex.figures["words"].layout.title.text


def test_words_show_where_a_trained_prompt_started(model, tok, tmp_path):
    """A run with two checkpoints: step 5 holds the embeddings of "good" and "film" (cosine 1), step 10
    the same vectors moved by hand (good + 2 * bad; film scaled by 4). The table of the newest
    checkpoint shows, per vector, where it started (token, cosine 1.000, norm) beside where it is."""
    emb = model.get_input_embeddings().weight.detach().float()
    good, film, bad = tok.convert_tokens_to_ids(["good", "film", "bad"])
    start = torch.stack([emb[good], emb[film]])
    moved = torch.stack([emb[good] + 2 * emb[bad], 4 * emb[film]])
    save_checkpoint(step_dir(tmp_path / "run", 5), {"prompt.weight": start}, {"step": 5})
    save_checkpoint(step_dir(tmp_path / "run", 10), {"prompt.weight": moved}, {"step": 10})
    ex = InfluenceExplorer(model, tok, text=TEXT, prompt=str(tmp_path / "run"), window=4)
    table = _table(ex)
    norms = emb[[good, film]].norm(dim=1)
    assert table["at step 5"] == [f"good 1.000 · {float(norms[0]):.2f}", f"film 1.000 · {float(norms[1]):.2f}"]
    assert table["norm"] == [f"{float(v):.2f}" for v in moved.norm(dim=1)]
    assert table["nearest tokens (cosine)"][1].startswith("film 1.000")     # scaling keeps the direction
    assert not table["nearest tokens (cosine)"][0].startswith("good 1.000")  # good + 2 bad has left "good"
    assert "run, step 10" in ex.figures["words"].layout.title.text
    ex.set(prompt=str(tmp_path / "run" / "checkpoints" / "step-00000005"))  # the first checkpoint itself:
    assert "at step 5" not in _table(ex)                                    # nothing earlier to show
