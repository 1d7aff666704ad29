"""extend_positions: the Longformer paper's copy of the 512 learned positions, on MiniLM and RoBERTa-style tables."""

import pytest
import torch
import transformers as tf

from attnviz.models import load_model
from attnviz.models.positions import extend_positions, position_table
from attnviz.models.tiny import tiny_model

tf.logging.set_verbosity_error()


@pytest.fixture(scope="module")
def minilm():
    model, tokenizer, _ = load_model("default")
    text = " ".join(["attention windows shape how far a soft prompt reaches"] * 60)
    full = tokenizer(text, return_tensors="pt", truncation=True, max_length=512)        # exactly 512 tokens
    short = tokenizer("a short sentence about sparse attention", return_tensors="pt")
    with torch.no_grad():
        before = {n: model(**enc).last_hidden_state for n, enc in (("full", full), ("short", short))}
    old = model.embeddings.position_embeddings.weight.detach().clone()
    extend_positions(model, 4096, tokenizer=tokenizer)
    return model, tokenizer, full, short, before, old


def test_table_is_copied_every_512_positions(minilm):
    model, tokenizer, *_, old = minilm
    new = model.embeddings.position_embeddings.weight.detach()
    assert old.shape == (512, 384) and new.shape == (4096, 384)
    assert torch.equal(new[:512], old)
    assert torch.equal(new[512:1024], old)
    assert torch.equal(new[4095], old[4095 % 512])
    assert model.config.max_position_embeddings == 4096 and tokenizer.model_max_length == 4096
    assert model.embeddings.position_ids.tolist()[0][-3:] == [4093, 4094, 4095]
    assert model.embeddings.token_type_ids.shape == (1, 4096) and int(model.embeddings.token_type_ids.abs().sum()) == 0


def test_outputs_up_to_512_tokens_are_bit_identical(minilm):
    model, _, full, short, before, _ = minilm
    assert full["input_ids"].shape[1] == 512
    with torch.no_grad():
        assert torch.equal(model(**full).last_hidden_state, before["full"])
        assert torch.equal(model(**short).last_hidden_state, before["short"])


def test_a_2048_token_input_runs(minilm):
    model = minilm[0]
    ids = torch.randint(1000, 20000, (1, 2048), generator=torch.Generator().manual_seed(0))
    model.set_attn_implementation("sdpa")                     # same positions, no (12, 2048, 2048) probabilities
    try:
        with torch.no_grad():
            out = model(input_ids=ids).last_hidden_state
    finally:
        model.set_attn_implementation("eager")
    assert out.shape == (1, 2048, 384) and bool(torch.isfinite(out).all())


def test_roberta_style_table_keeps_its_reserved_rows():
    model = tiny_model("longformer")                       # 514 rows: padding_idx 1, positions start at 2
    table = position_table(model)
    assert (table.offset, table.size) == (2, 512)
    old = table.embedding.weight.detach().clone()
    ids = torch.randint(3, 128, (1, 600), generator=torch.Generator().manual_seed(0))
    with pytest.raises(IndexError, match="index out of range"):
        model(ids)
    extend_positions(model, 1024)
    new = model.embeddings.position_embeddings.weight.detach()
    assert new.shape == (1026, 32) and model.config.max_position_embeddings == 1026
    assert torch.equal(new[:514], old) and torch.equal(new[514:1026], old[2:514])
    assert model(ids).last_hidden_state.shape == (1, 600, 32)


def test_refusals():
    bert = tiny_model("bert")
    with pytest.raises(ValueError, match="smaller than the current 512 positions"):
        extend_positions(bert, 256)
    with pytest.raises(TypeError, match="max_positions must be an int"):
        extend_positions(bert, 1024.0)
    with pytest.raises(ValueError, match="no learned position table"):
        extend_positions(tiny_model("mistral"), 1024)
    assert extend_positions(bert, 512) is bert and bert.config.max_position_embeddings == 512
