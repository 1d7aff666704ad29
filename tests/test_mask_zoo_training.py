"""A soft prompt trained under each family of the mask zoo (#17) on a tiny model: the prompt's
gradient is exactly zero where the pattern says the prompt cannot reach the head's readout
([CLS] at position 0), non-zero where it can, and a few training steps move the prompt."""

import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement
from attnviz.models import tiny_model
from attnviz.prompts import ClassificationHead, PromptModel, SoftPrompt, collate, train_soft_prompt
from attnviz.spread import spread_pattern
from tests._prompt_fixtures import encode, sentiment_rows, tiny_tokenizer

ROWS = [r for r in sentiment_rows(200, 0) if len(r["text"].split()) == 6][:16]   # equal lengths: L = 4 + 8


def setup(tmp_path, pattern, placement):
    tok = tiny_tokenizer(tmp_path / "tok")
    base = tiny_model("bert", num_hidden_layers=2)
    prompt = SoftPrompt.init(base, tok, placement, seed=0)
    torch.manual_seed(0)
    model = PromptModel(base, ClassificationHead(32, 2, pooling="cls"), prompt, pattern, tokenizer=tok,
                        model_id="tiny-bert")
    return model, encode(tok, ROWS)


def prompt_grad(model, rows):
    b = collate(rows)
    model.zero_grad()
    logits = model(b["input_ids"], b["attention_mask"], b.get("token_type_ids"))
    torch.nn.functional.cross_entropy(logits, b["labels"] if "labels" in b else b["label"]).backward()
    return model.prompt.weight.grad.abs().max().item()


PREFIX = PromptPlacement("prefix", n_tokens=4)                 # [CLS] p p p p t*6 [SEP]: L = 12
INFIX = PromptPlacement("infix", n_tokens=3, at=5)             # [CLS] t*5 p p p t [SEP]: prompt at 6..8, L = 11
CASES = [
    # (family, blocked pattern, reaching pattern, placement)
    ("prefix-LM", AttentionPattern(causal=True), AttentionPattern(causal=True, prefix_lm="prompt"), PREFIX),
    ("sinks", AttentionPattern(window=2), AttentionPattern(window=2, sinks=9), INFIX),
    ("chunk", AttentionPattern(chunk=1), AttentionPattern(chunk=5), PREFIX),
    ("documents", AttentionPattern(documents=(1, 11)), AttentionPattern(documents=(5, 7)), PREFIX),
]


@pytest.mark.parametrize("family, blocked, reaching, placement", CASES, ids=[c[0] for c in CASES])
def test_prompt_gradient_follows_the_mask(tmp_path, family, blocked, reaching, placement):
    layout = placement.layout(6)
    assert layout.length == 8 + placement.n_tokens
    for pattern, reaches in ((blocked, False), (reaching, True)):
        assert bool(spread_pattern(pattern, layout, 2).reached[-1, 0]) is reaches
        model, rows = setup(tmp_path, pattern, placement)
        g = prompt_grad(model, rows)
        assert (g > 0) is reaches, (family, pattern, g)
        if not reaches:
            assert g == 0.0
    # a few steps under the reaching pattern move the prompt
    model, rows = setup(tmp_path, reaching, placement)
    before = model.prompt.weight.detach().clone()
    result = train_soft_prompt(model, rows, steps=4, batch_size=8, progress=False)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    assert not torch.equal(model.prompt.weight.detach(), before)
