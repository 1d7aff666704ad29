"""Issue 19 on CPU: flex refused only where torch has no backward, flex batches padded to a few
lengths (exact), compile signatures counted, one precision per run, non-finite runs stop cleanly."""

import json

import pytest
import torch

from _prompt_fixtures import make_run
from attnviz import AttentionPattern, PromptPlacement
from attnviz.models.interface import flex_kernel_count, flex_trains_on, flex_training_error
from attnviz.prompts import (
    NonFiniteError, TrainConfig, collate, list_checkpoints, load_checkpoint, make_accelerator, train_soft_prompt,
)


def test_flex_trains_only_where_torch_has_a_backward():
    assert flex_trains_on("cuda") and flex_trains_on(torch.device("cuda", 1)) and flex_trains_on("xpu")
    assert not flex_trains_on("cpu") and not flex_trains_on("mps")
    msg = flex_training_error("cpu")
    assert "cannot train on CPU" in msg and "device 'cpu'" in msg and "'dense' or 'sdpa'" in msg
    assert "cannot train on MPS" in flex_training_error("mps")


def test_train_soft_prompt_refuses_flex_on_cpu_naming_the_device(tmp_path):
    model, train, _ = make_run(tmp_path, backend="flex")
    with pytest.raises(ValueError, match="cannot train on CPU \\(device 'cpu'"):
        train_soft_prompt(model, train, None, config=TrainConfig(steps=1), out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()   # refused before anything was written


def test_cli_refuses_flex_on_cpu_before_loading(tmp_path, capsys):
    from attnviz.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--task", "nli", "--backend", "flex", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "backend='flex' cannot train on CPU (device 'cpu'" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_flex_batches_are_padded_to_the_tile_and_equal_dense(tmp_path):
    pattern = AttentionPattern(window=4, global_prompt=True, global_positions=(0,))
    dense, train, _ = make_run(tmp_path / "d", window=4)
    flex, _, _ = make_run(tmp_path / "f", window=4, backend="flex")
    dense.pattern = flex.pattern = pattern
    dense.eval(), flex.eval()
    assert flex.pad_to == 128 and dense.pad_to is None
    before = flex_kernel_count()
    lengths = []
    with torch.no_grad():
        for start in (0, 4, 8):   # three batches of different lengths
            batch = collate(train[start:start + 4])
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
            want = dense(**inputs)
            got = flex(**inputs)
            assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
            assert flex.last_info["length"] == 128
            lengths.append(flex.last_info["input_length"])
            assert dense.last_info["length"] == dense.last_info["input_length"] == lengths[-1]
    assert len(set(lengths)) >= 2                       # the inputs did differ in length
    # one padded length, one batch size, one mask structure: at most one new kernel signature
    assert flex.last_info["flex_kernels"] - before <= 1


def test_pad_to_is_skipped_where_the_prompt_moves_with_the_length(tmp_path):
    model, train, _ = make_run(tmp_path, placement="suffix", backend="dense")
    model.pad_to = 16
    ids = torch.tensor([train[0]["input_ids"]])
    model.prepare(ids)
    assert model.last_info["length"] == model.last_info["input_length"] == ids.shape[1] + 4
    prefix, _, _ = make_run(tmp_path / "p", backend="dense")
    prefix.pad_to = 16
    batch = prefix.prepare(ids)
    assert prefix.last_info["length"] == 16 and batch.inputs["attention_mask"].sum() == ids.shape[1] + 4


def test_pad_to_is_checked(tmp_path):
    model, _, _ = make_run(tmp_path)
    from attnviz.prompts import PromptModel

    with pytest.raises(ValueError, match="pad_to must be an int >= 1, 'auto' or None, got 0"):
        PromptModel(model.base, model.head, model.prompt, pad_to=0)


def test_two_runs_with_different_mixed_precision_in_one_process(tmp_path):
    cfg = TrainConfig(steps=3, batch_size=4, eval_every=0)
    prompts, losses = [], []
    for precision in ("no", "bf16", "no"):
        model, train, _ = make_run(tmp_path / precision)
        result = train_soft_prompt(model, train, None, config=cfg, mixed_precision=precision, progress=False)
        assert result.step == 3
        prompts.append(model.prompt.weight.detach().clone())
        losses.append([h["loss"] for h in result.history])
    from accelerate.state import AcceleratorState

    assert AcceleratorState().mixed_precision == "no"
    # the two fp32 runs are the same run; bf16 autocast differs from them, a little
    assert torch.equal(prompts[0], prompts[2]) and losses[0] == losses[2]
    # bf16 autocast ran (losses differ) and moved the prompt within Adam's reach of 3 steps
    assert losses[1] != losses[0] and 0 < (prompts[1] - prompts[0]).abs().max() < 3 * cfg.lr_prompt
    assert all(abs(a - b) < 0.05 for a, b in zip(losses[0], losses[1]))
    assert make_accelerator("bf16").mixed_precision == "bf16"
    assert make_accelerator("no").mixed_precision == "no"
    with pytest.raises(ValueError, match="unknown mixed_precision 'fp8'; allowed: no, bf16, fp16"):
        make_accelerator("fp8")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model, train, _ = make_run(tmp_path)
    good = {}

    def poison(event):   # after step 3 (checkpoint at 2), the prompt goes bad: step 4's loss is NaN
        if event.step == 2:
            good["prompt"] = event.model.prompt.weight.detach().clone()
        if event.step == 3:
            with torch.no_grad():
                event.model.prompt.weight[0, 0] = float("nan")

    run = tmp_path / "run"
    cfg = TrainConfig(steps=8, batch_size=4, eval_every=0, checkpoint_every=2)
    with pytest.raises(NonFiniteError) as err:
        train_soft_prompt(model, train, None, config=cfg, out_dir=run, callback=poison, progress=False)
    message = str(err.value)
    assert message.startswith("step 4: the loss is not finite (nan) with mixed_precision='no'")
    assert "the last good checkpoint is" in message and "step-00000002" in message
    assert err.value.step == 4 and err.value.checkpoint.name == "step-00000002"
    assert [p.name for p in list_checkpoints(run)] == ["step-00000002"]
    tensors, meta = load_checkpoint(run / "checkpoints" / "step-00000002")
    assert meta["step"] == 2 and torch.equal(tensors["prompt.weight"], good["prompt"])
    assert all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1] == {"step": 3, "stopped": "non-finite", "checkpoint": str(run / "checkpoints" / "step-00000002")}
    # the run resumes from the good checkpoint and finishes
    fresh, _, _ = make_run(tmp_path / "again")
    done = train_soft_prompt(fresh, train, None, config=cfg, out_dir=run, resume=True, progress=False)
    assert done.step == 8 and done.resumed_from.name == "step-00000002"
    assert bool(torch.isfinite(fresh.prompt.weight).all())


def test_non_finite_update_writes_nothing(tmp_path):
    model, train, _ = make_run(tmp_path)
    run = tmp_path / "run"
    before = model.prompt.weight.detach().clone()
    with pytest.raises(NonFiniteError, match="step 1: the prompt / head after the update is not finite .*"
                                             "no checkpoint had been written yet"):
        train_soft_prompt(model, train, None, config=TrainConfig(steps=4, batch_size=4, lr_prompt=float("inf"),
                                                                 warmup=0.0, checkpoint_every=1), out_dir=run, progress=False)
    assert list_checkpoints(run) == [] and not bool(torch.isfinite(model.prompt.weight).all())
    assert bool(torch.isfinite(before).all())


def test_training_monitor_shows_flex_kernels():
    pytest.importorskip("ipywidgets")
    from types import SimpleNamespace

    from attnviz.widgets.training import TrainingMonitor

    monitor = TrainingMonitor(steps=4)
    model = SimpleNamespace(last_info={"flex_kernels": 2})
    event = SimpleNamespace(step=1, steps=4, loss=0.5, accuracy=1.0, eval=None, checkpoint=None, seconds=0.1, model=model)
    assert monitor.callback(event) is None
    assert monitor.history[-1]["flex_kernels"] == 2
    assert "flex kernels compiled 2" in monitor.status.value
