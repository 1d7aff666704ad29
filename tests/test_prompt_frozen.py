"""Cached features of a frozen prompt: exactly what PromptModel feeds its head; a head trained on them learns."""

import pytest
import torch

from _prompt_fixtures import make_run
from attnviz.prompts import ClassificationHead, QAHead, collate
from attnviz.prompts.frozen import fit_head, head_accuracy, pooled_features


@pytest.mark.parametrize("pooling,window", [("cls", 4), ("mean", None)])
def test_features_are_the_heads_input(tmp_path, pooling, window):
    model, train, _ = make_run(tmp_path, window=window, pooling=pooling)
    feats, labels = pooled_features(model, train, batch_size=16)
    assert feats.shape == (48, 32) and feats.dtype == torch.float32
    assert labels.tolist() == [r["label"] for r in train]
    model.eval()
    with torch.no_grad():
        b = collate(train[:16])
        logits = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
    torch.testing.assert_close(model.head.classifier(feats[:16]), logits, rtol=0, atol=1e-6)
    if pooling == "cls" and window == 4:
        assert model.last_info["pruned"] is True  # reach-aware pruning ran, and the features still equal the input of the logits


def test_fit_head_learns_and_is_reproducible(tmp_path):
    model, train, held = make_run(tmp_path, window=None, pooling="mean")
    f_train, y_train = pooled_features(model, train)
    f_held, y_held = pooled_features(model, held)
    heads = []
    for _ in range(2):
        torch.manual_seed(0)
        head = ClassificationHead(32, 2, pooling="mean")
        losses = fit_head(head, f_train, y_train, steps=150, batch_size=16, lr=5e-2, seed=3)
        heads.append(head)
        assert len(losses) == 150 and losses[-1] < losses[0]
        assert not head.training
    assert torch.equal(heads[0].classifier.weight, heads[1].classifier.weight)   # seeded, global RNG untouched
    assert head_accuracy(heads[0], f_train, y_train) > 0.9


def test_bad_inputs(tmp_path):
    model, train, _ = make_run(tmp_path)
    feats, labels = pooled_features(model, train[:8])
    head = ClassificationHead(32, 2)
    with pytest.raises(ValueError, match="features have size 31, the head expects 32"):
        fit_head(head, feats[:, :31], labels)
    with pytest.raises(ValueError, match=r"features must be \(N, H\) and labels \(N,\)"):
        fit_head(head, feats, labels[:3])
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        fit_head(head, feats, labels, steps=0)
    with pytest.raises(TypeError, match="QAHead"):
        head_accuracy(QAHead(32), feats, labels)
    with pytest.raises(ValueError, match="data is empty"):
        pooled_features(model, [])
