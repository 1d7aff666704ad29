"""Deep (P-tuning-v2-style) prompts: PromptModel(deep=True) adds per-layer vectors at the prompt slots."""

import pytest
import torch

from _prompt_fixtures import batch, make_run, tiny_tokenizer
from attnviz import AttentionPattern, PromptPlacement
from attnviz.models import tiny_model
from attnviz.prompts import (
    CheckpointError, ClassificationHead, PromptModel, SoftPrompt, TrainConfig, export_peft_adapter, load_into,
    train_soft_prompt)


def _deep_model(tmp_path, *, window=None, pooling="mean", placement=None, prune="auto"):
    """(shallow model, deep model with a copy of the same prompt and head, train rows, eval rows)."""
    model, train, test = make_run(tmp_path, window=window, pooling=pooling)
    prompt = SoftPrompt(model.prompt.weight, placement or model.placement)
    head = ClassificationHead(32, 2, pooling=pooling)
    head.load_state_dict(model.head.state_dict())
    deep = PromptModel(model.base, head, prompt, model.pattern, prune=prune,
                       special_tokens=model.special_tokens, model_id=model.model_id, deep=True)
    return model, deep, train, test


def _inputs(tmp_path):
    tok = tiny_tokenizer(tmp_path / "tok")
    ids, mask, types = batch(tok, ["good film", "the food was very bad and poor"], ["yes", "not the plot"])
    return ids, mask, types


def test_fresh_deep_prompt_equals_the_shallow_prompt_and_base_stays_frozen(tmp_path):
    shallow, deep, train, _ = _deep_model(tmp_path)
    assert deep.prompt.deep.shape == (2, 4, 32)              # (layers, n_tokens, H), zeros at the start
    assert torch.equal(deep.prompt.deep, torch.zeros(2, 4, 32))
    assert deep.trainable_parameters() == {"prompt": 4 * 32 + 2 * 4 * 32, "head": 66, "base": 0, "total": 450}
    ids, mask, types = _inputs(tmp_path)
    shallow.eval(), deep.eval()
    assert torch.equal(shallow(ids, mask, types), deep(ids, mask, types))
    assert deep.config()["deep"] is True and "deep" not in PromptModel(
        tiny_model("bert", num_hidden_layers=2), ClassificationHead(32, 2)).config()
    assert "deep prompt" in deep.describe()
    deep.train()
    with torch.no_grad():
        deep.prompt.deep.normal_()
    deep(ids, mask, types).sum().backward()
    assert all(p.grad is None for p in deep.base.parameters())
    assert deep.prompt.deep.grad.shape == (2, 4, 32) and deep.prompt.deep.grad.abs().sum() > 0


def test_deep_vectors_are_added_to_the_prompt_slots_only(tmp_path):
    _, deep, _, _ = _deep_model(tmp_path, placement=PromptPlacement("infix", n_tokens=4, at=2))
    ids, mask, types = _inputs(tmp_path)
    layer = deep._layer_modules[1]
    seen = []
    hook = layer.attention.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        deep.eval()
        deep(ids, mask, types)                      # deep = 0
        v = torch.randn(4, 32)
        with torch.no_grad():
            deep.prompt.deep[1] = v
        deep(ids, mask, types)                      # deep[1] = v: layer 1's input moves at the prompt slots by v
    finally:
        hook.remove()
    batch_ = deep.prepare(ids, mask, types)
    slots = batch_.prompt_slot
    assert slots.shape == (2, ids.shape[1] + 4)
    # infix at=2: [CLS] t0 t1 P0..P3 ...: slots 3..6 hold prompt tokens 0..3 in both rows
    assert slots[:, 3:7].tolist() == [[0, 1, 2, 3]] * 2 and (slots >= 0).sum() == 8
    diff = seen[1] - seen[0]
    expected = torch.where((slots >= 0)[..., None], v[slots.clamp(min=0)], torch.zeros(()))
    assert torch.allclose(diff, expected, atol=1e-6)
    assert torch.equal(diff[slots < 0], torch.zeros_like(diff[slots < 0]))


def test_deep_prompt_is_exact_under_reach_aware_pruning(tmp_path):
    _, pruned, _, _ = _deep_model(tmp_path, window=2, pooling="cls", prune=True)
    ids, mask, types = _inputs(tmp_path)
    with torch.no_grad():
        pruned.prompt.deep.copy_(torch.randn(2, 4, 32))
    full = PromptModel(pruned.base, pruned.head, pruned.prompt, pruned.pattern, prune=False,
                       special_tokens=pruned.special_tokens, model_id=pruned.model_id, deep=True)
    pruned.eval(), full.eval()
    a, b = pruned(ids, mask, types), full(ids, mask, types)
    assert pruned.last_info["pruned"] and not full.last_info["pruned"]
    assert torch.allclose(a, b, atol=1e-6), (a, b)


def test_deep_training_checkpoints_and_resumes_exactly(tmp_path):
    cfg = TrainConfig(steps=6, batch_size=8, eval_every=0, checkpoint_every=0, lr_prompt=0.1, lr_head=0.1)
    _, straight, train, test = _deep_model(tmp_path / "a")
    r = train_soft_prompt(straight, train, test, config=cfg, out_dir=tmp_path / "straight", progress=False)
    assert r.step == 6 and straight.prompt.deep.abs().sum() > 0

    _, first, train, test = _deep_model(tmp_path / "b")
    train_soft_prompt(first, train, test, config=cfg, out_dir=tmp_path / "split", progress=False,
                      callback=lambda e: e.step == 3)
    _, second, train, test = _deep_model(tmp_path / "c")
    more = train_soft_prompt(second, train, test, config=cfg, out_dir=tmp_path / "split", resume=True, progress=False)
    assert more.resumed_from.name == "step-00000003"
    assert torch.equal(second.prompt.deep, straight.prompt.deep)
    assert torch.equal(second.prompt.weight, straight.prompt.weight)

    shallow, *_ = make_run(tmp_path / "d")
    with pytest.raises(CheckpointError, match=r"prompt is deep \(a prompt per layer\), this model's is shallow; "
                                              r"build the PromptModel with deep=True"):
        load_into(shallow, r.checkpoint)


def test_deep_prompt_refuses_peft_export_and_bad_arguments(tmp_path):
    _, deep, _, _ = _deep_model(tmp_path)
    with pytest.raises(ValueError, match="deep prompt.*drop the layers"):
        export_peft_adapter(deep.prompt, tmp_path / "adapter", model=deep.base)
    base = tiny_model("bert", num_hidden_layers=2)
    with pytest.raises(ValueError, match="deep=True needs a prompt"):
        PromptModel(base, ClassificationHead(32, 2), None, deep=True)
    with pytest.raises(ValueError, match="deep over 2 layers; build the model with deep=True"):
        PromptModel(base, ClassificationHead(32, 2), deep.prompt)
    with pytest.raises(ValueError, match="already deep over 2 layers, not 3"):
        deep.prompt.add_layers(3)
    with pytest.raises(TypeError, match="deep must be True or False"):
        PromptModel(base, ClassificationHead(32, 2), SoftPrompt(torch.zeros(2, 32), PromptPlacement("prefix", 2)), deep=1)


def test_cli_trains_resumes_and_evaluates_a_deep_prompt(tmp_path, capsys):
    import json

    from _prompt_fixtures import sentiment_rows, write_jsonl
    from test_training import _cli

    model_dir = tmp_path / "tiny"
    tiny_model("bert", num_hidden_layers=2).save_pretrained(model_dir)
    tiny_tokenizer(model_dir)
    rows = sentiment_rows(24, 0)
    for i, r in enumerate(rows):
        r["split"] = "test" if i % 4 == 0 else "train"
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "run"
    assert _cli(["train", "--task", data, "--model", model_dir, "--n-tokens", "3", "--deep", "--steps", "2",
                 "--batch-size", "4", "--out", out, "--no-progress"]) == 0
    assert "3-token prefix deep prompt" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["settings"]["deep"] is True
    assert _cli(["train", "--out", out, "--resume", "--steps", "3", "--no-progress"]) == 0   # deep from config.json
    assert _cli(["evaluate", out]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["step"] == 3 and report["n"] == 6 and "deep prompt" in report["model"]
