"""attnviz.prompts.nearest: a prompt built from token embeddings reads back as those tokens."""

import torch
import pytest

from attnviz import PromptPlacement
from attnviz.models import tiny_model
from attnviz.prompts import SoftPrompt
from attnviz.prompts.checkpoints import save_checkpoint, step_dir
from attnviz.prompts.nearest import drift, nearest_over_checkpoints, nearest_tokens

from _prompt_fixtures import tiny_tokenizer


def test_prompt_from_token_embeddings_returns_those_tokens(tmp_path):
    tok = tiny_tokenizer(tmp_path / "tok")
    base = tiny_model("bert", num_hidden_layers=2)
    emb = base.get_input_embeddings().weight.detach()
    words = ["good", "film", "plot", "neutral"]
    ids = tok.convert_tokens_to_ids(words)
    prompt = SoftPrompt(emb[ids] * 3.0, PromptPlacement("prefix", n_tokens=4))   # scaled: cosine ignores the norm
    got = nearest_tokens(prompt, base, tok, k=3)
    assert got.ids[:, 0].tolist() == ids
    assert [t[0] for t in got.tokens] == words
    assert torch.allclose(got.cosine[:, 0], torch.ones(4), atol=1e-6)
    assert (got.cosine[:, 1] < 1 - 1e-4).all()                          # the second neighbour is another token
    assert torch.allclose(got.norm, 3.0 * emb[ids].norm(dim=1), atol=1e-5)
    assert got.embedding_norm > 0
    assert "| 0 |" in got.table() and "`good` 1.00" in got.table()


def test_special_tokens_skipped_unless_asked(tmp_path):
    tok = tiny_tokenizer(tmp_path / "tok")
    base = tiny_model("bert", num_hidden_layers=2)
    emb = base.get_input_embeddings().weight.detach()
    sep = tok.sep_token_id
    w = emb[[sep, sep]]
    assert nearest_tokens(w, base, tok, k=1, skip_special=False).ids[:, 0].tolist() == [sep, sep]
    assert sep not in nearest_tokens(w, base, tok, k=5).ids.flatten().tolist()
    with pytest.raises(ValueError):
        nearest_tokens(torch.zeros(2, 7), base, tok)                     # wrong hidden size


def test_words_over_checkpoints(tmp_path):
    tok = tiny_tokenizer(tmp_path / "tok")
    base = tiny_model("bert", num_hidden_layers=2)
    emb = base.get_input_embeddings().weight.detach()
    a, b = tok.convert_tokens_to_ids(["good", "bad"]), tok.convert_tokens_to_ids(["film", "bad"])
    run = tmp_path / "run"
    for step, ids in ((0, a), (10, b)):
        save_checkpoint(step_dir(run, step), {"prompt.weight": emb[ids].clone()}, {"step": step})
    seq = nearest_over_checkpoints(run, base, tok, k=2)
    assert [w.step for w in seq] == [0, 10]
    assert [w.tokens[0][0] for w in seq] == ["good", "film"]
    d = drift(seq)
    assert d[0]["changed_top_token"] == 0.0 and d[1]["changed_top_token"] == 0.5
    with pytest.raises(ValueError):
        nearest_over_checkpoints(tmp_path / "empty", base, tok)
