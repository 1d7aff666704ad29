"""Extractive QA with a soft prompt: the span head on the frozen embedded MiniLM equals stock
``BertForQuestionAnswering``, decoding cuts the right text by offsets, training with start / end
labels lowers the loss and raises EM / F1, and a QA checkpoint reloads to identical predictions."""

import pytest
import torch
from datasets import Dataset

from attnviz import AttentionPattern, PromptPlacement
from attnviz.prompts import PromptModel, QAHead, SoftPrompt, TrainConfig, load_into, train_soft_prompt
from attnviz.tasks.qa_features import qa_features
from attnviz.tasks.qa_metrics import evaluate_qa, predict_spans

FACTS = [("Denver Broncos", "won Super Bowl 50", "Who won Super Bowl 50?"),
         ("Marie Curie", "discovered polonium", "Who discovered polonium?"),
         ("Ada Lovelace", "wrote the first program", "Who wrote the first program?"),
         ("Alan Turing", "broke the Enigma code", "Who broke the Enigma code?"),
         ("Grace Hopper", "built the first compiler", "Who built the first compiler?"),
         ("Isaac Newton", "described gravity", "Who described gravity?"),
         ("Nikola Tesla", "designed the AC motor", "Who designed the AC motor?"),
         ("Rosalind Franklin", "imaged DNA", "Who imaged DNA?")]


def _rows() -> Dataset:
    rows = []
    for i, (who, did, question) in enumerate(FACTS):
        other = FACTS[(i + 3) % len(FACTS)]
        context = f"In the story, {other[0]} {other[1]} on Monday. Later {who} {did} in the city."
        rows.append({"id": f"q{i}", "question": question, "context": context,
                     "answers": {"text": [who], "answer_start": [context.index(f"Later {who}") + 6]}})
    return Dataset.from_list(rows)


@pytest.fixture(scope="module")
def embedded():
    from attnviz.models import load_model

    return load_model("default")


def test_span_head_equals_stock_bert_for_question_answering(embedded):
    from transformers import BertForQuestionAnswering

    base, tok, name = embedded
    torch.manual_seed(0)
    head = QAHead(base.config.hidden_size)
    stock = BertForQuestionAnswering(base.config).eval()
    missing, unexpected = stock.bert.load_state_dict(base.state_dict(), strict=False)
    assert not missing and all(k.startswith("pooler.") for k in unexpected)
    stock.qa_outputs.load_state_dict(head.qa_outputs.state_dict())
    model = PromptModel(base, head, None, tokenizer=tok, model_id=name).eval()
    enc = tok(["Who won?", "Where is it?"], ["The Denver Broncos won Super Bowl 50.", "Paris."],
              padding=True, return_tensors="pt")
    with torch.no_grad():
        start, end = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        ref = stock(**enc)
    real = enc["attention_mask"].bool()
    assert torch.allclose(start[real], ref.start_logits[real], atol=1e-5)
    assert torch.allclose(end[real], ref.end_logits[real], atol=1e-5)
    assert (start[~real] == torch.finfo(start.dtype).min).all()  # padding is never chosen


class _Pointer(torch.nn.Module):
    """Start logit 10 on token ``a``, end logit 10 on token ``b``: a model whose answer is known."""

    def __init__(self, a: int, b: int):
        super().__init__()
        self.a, self.b = a, b
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask, token_type_ids):
        return (input_ids == self.a).float() * 10, (input_ids == self.b).float() * 10


def test_predict_spans_cuts_the_context_by_offsets(embedded):
    _, tok, _ = embedded
    feats = qa_features(_rows(), tok, max_length=64, drop_outside=False)
    ids = tok.convert_tokens_to_ids(["denver", "broncos"])
    assert tok.unk_token_id not in ids
    preds = predict_spans(_Pointer(*ids), feats, batch_size=3)
    assert preds["q0"] == "Denver Broncos"       # original casing, from the context by offsets
    assert preds["q5"] == "Denver Broncos"       # q5's context names the Broncos as its "other" fact
    res = evaluate_qa(_Pointer(*ids), feats)
    assert res.n == 8 and res.exact_match == pytest.approx(100 / 8) and res.in_window == 1.0
    # the span never leaves the context: a pointer at [CLS] / the question falls back to context tokens
    cls = tok.cls_token_id
    assert all(p for p in predict_spans(_Pointer(cls, cls), feats).values())


@pytest.mark.slow
def test_prompt_and_head_learn_spans_and_reload_exactly(embedded, tmp_path):
    base, tok, name = embedded
    torch.manual_seed(0)
    feats = qa_features(_rows(), tok, max_length=64)
    assert len(feats) == 8
    prompt = SoftPrompt.init(base, tok, PromptPlacement("prefix", n_tokens=4), "text", text="answer")
    model = PromptModel(base, QAHead(base.config.hidden_size), prompt, AttentionPattern(window=16),
                        tokenizer=tok, model_id=name)
    before = evaluate_qa(model, qa_features(_rows(), tok, max_length=64, drop_outside=False))
    result = train_soft_prompt(model, feats, feats, config=TrainConfig(steps=40, batch_size=8, lr_head=3e-2,
                               eval_every=0, checkpoint_every=0, warmup=0.0), out_dir=tmp_path / "run",
                               progress=False, task={"name": "qa-fixture"})
    losses = [h["loss"] for h in result.history]
    assert losses[0] > 3.0 and sum(losses[-5:]) / 5 < 0.5 * losses[0]
    assert result.trainable == {"prompt": 4 * 384, "head": 384 * 2 + 2, "base": 0, "total": 4 * 384 + 770}
    assert all(p.grad is None for p in base.parameters())
    after = evaluate_qa(model, qa_features(_rows(), tok, max_length=64, drop_outside=False))
    assert after.f1 > before.f1 + 30 and after.exact_match >= 50
    # a QA checkpoint reloads into a fresh model and predicts the same spans
    fresh = PromptModel(base, QAHead(base.config.hidden_size),
                        SoftPrompt.init(base, tok, PromptPlacement("prefix", n_tokens=4)), AttentionPattern(window=16),
                        tokenizer=tok, model_id=name)
    load_into(fresh, result.checkpoint)
    again = evaluate_qa(fresh, qa_features(_rows(), tok, max_length=64, drop_outside=False))
    assert again.predictions == after.predictions and again.f1 == after.f1
