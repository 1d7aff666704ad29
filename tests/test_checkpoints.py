"""Checkpoints: kill -9 and resume bit for bit, damaged files, other models, no pickle, atomic writes."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from _prompt_fixtures import make_run
from attnviz.prompts import (CheckpointError, TrainConfig, latest_checkpoint, list_checkpoints, load_checkpoint,
                             load_into, train_soft_prompt)
from attnviz.prompts.checkpoints import optimizer_from_flat, optimizer_to_flat, save_checkpoint

TESTS = Path(__file__).parent
CFG = dict(steps=10, batch_size=4, checkpoint_every=2, eval_every=5, keep_checkpoints=10)


def _weights(model):
    return {"prompt": model.prompt.weight.detach().clone(),
            **{k: v.detach().clone() for k, v in model.head.state_dict().items()}}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from _prompt_fixtures import make_run
    from attnviz.prompts import TrainConfig, train_soft_prompt
    model, train, test = make_run(Path({folder!r}))
    print("ready", flush=True)
    train_soft_prompt(model, train, test, config=TrainConfig(**{cfg!r}), out_dir={out!r}, progress=False,
                      callback=lambda event: time.sleep(0.3))
    print("finished", flush=True)
""")


def test_killed_run_resumes_bit_for_bit(tmp_path):
    # the uninterrupted run
    model, train, test = make_run(tmp_path / "a")
    full = train_soft_prompt(model, train, test, config=TrainConfig(**CFG), out_dir=tmp_path / "full", progress=False)
    expected = _weights(model)
    assert full.step == 10

    # the same run in a real process, killed with SIGKILL once it has written the step-4 checkpoint
    out = tmp_path / "killed"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(TESTS), folder=str(tmp_path / "b"), cfg=CFG, out=str(out)))
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "step-00000004" / "state.json").exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child wrote no checkpoint in time"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    written = [p.name for p in list_checkpoints(out)]
    assert "step-00000004" in written and "step-00000010" not in written, written   # killed mid-way

    resumed_model, train2, test2 = make_run(tmp_path / "c")
    result = train_soft_prompt(resumed_model, train2, test2, config=TrainConfig(**CFG), out_dir=out, resume=True,
                               progress=False)
    assert result.resumed_from.name in written and result.step == 10
    assert _same(_weights(resumed_model), expected)   # bit for bit
    assert result.eval == full.eval


def test_damaged_checkpoint_is_named_and_nothing_else_is_lost(tmp_path):
    model, train, test = make_run(tmp_path / "a")
    train_soft_prompt(model, train, test, config=TrainConfig(**CFG), out_dir=tmp_path / "run", progress=False)
    expected = _weights(model)
    paths = list_checkpoints(tmp_path / "run")
    assert [p.name for p in paths] == [f"step-{s:08d}" for s in (2, 4, 6, 8, 10)]
    # damage step 8 (one flipped byte) and truncate step 10
    f8 = paths[3] / "state.safetensors"
    data = bytearray(f8.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f8.write_bytes(bytes(data))
    f10 = paths[4] / "state.safetensors"
    f10.write_bytes(f10.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"step-00000010/state.safetensors is damaged: its SHA-256 does not match"):
        load_checkpoint(paths[4])
    (paths[2] / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"step-00000006/state.json is damaged \(not valid JSON"):
        load_checkpoint(paths[2])
    with pytest.warns(RuntimeWarning, match="skipping damaged checkpoint"):
        assert latest_checkpoint(tmp_path / "run") == paths[1]
    assert _same({k: v for k, v in load_checkpoint(paths[1])[0].items() if k == "prompt.weight"},
                 {"prompt.weight": load_checkpoint(paths[1])[0]["prompt.weight"]})
    # resuming goes back to the newest good checkpoint (step 4) and still ends where the run ended
    again, train2, test2 = make_run(tmp_path / "b")
    with pytest.warns(RuntimeWarning):
        result = train_soft_prompt(again, train2, test2, config=TrainConfig(**CFG), out_dir=tmp_path / "run",
                                   resume=True, progress=False)
    assert result.resumed_from == paths[1]
    assert _same(_weights(again), expected)
    # the damaged ones were moved aside, not deleted
    aside = sorted(p.name.split(".")[0] for p in (tmp_path / "run" / "checkpoints").iterdir() if ".replaced-" in p.name)
    assert aside == ["step-00000006", "step-00000008", "step-00000010"]


def test_checkpoint_from_another_model_says_what_differs(tmp_path):
    from attnviz import AttentionPattern, PromptPlacement
    from attnviz.models import tiny_model
    from attnviz.prompts import ClassificationHead, PromptModel, SoftPrompt

    model, train, test = make_run(tmp_path / "a")
    r = train_soft_prompt(model, train, test, config=TrainConfig(steps=2), out_dir=tmp_path / "run", progress=False)
    wide = tiny_model("bert", num_hidden_layers=2, hidden_size=48)
    other = PromptModel(wide, ClassificationHead(48, 2, pooling="mean"),
                        SoftPrompt(torch.zeros(4, 48), PromptPlacement("prefix", n_tokens=4)), model_id="wide-bert")
    with pytest.raises(CheckpointError, match=r"trained on model 'tiny-bert' \(hidden size 32\), this model is "
                                              r"'wide-bert' \(hidden size 48\)"):
        load_into(other, r.checkpoint)
    moved, _, _ = make_run(tmp_path / "b", placement="suffix", n_tokens=3)
    with pytest.raises(CheckpointError, match="its placement is prefix with n_tokens=4, this model's is suffix with n_tokens=3"):
        load_into(moved, r.checkpoint)
    # same model: loads, and equals the trained tensors
    same, _, _ = make_run(tmp_path / "c")
    meta = load_into(same, r.checkpoint)
    assert meta["step"] == 2 and meta["model"]["pattern"]["window"] is None and meta["task"] == {}
    assert _same(_weights(same), _weights(model))
    # resuming under another pattern is refused (it could not continue exactly)
    windowed, _, _ = make_run(tmp_path / "d", window=4)
    with pytest.raises(CheckpointError, match="its pattern is"):
        train_soft_prompt(windowed, train, test, config=TrainConfig(steps=4), out_dir=tmp_path / "run", resume=True,
                          progress=False)


def test_runs_are_never_overwritten(tmp_path):
    model, train, test = make_run(tmp_path / "a")
    train_soft_prompt(model, train, None, config=TrainConfig(steps=1), out_dir=tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds checkpoints of a run; pass resume=True"):
        train_soft_prompt(model, train, None, config=TrainConfig(steps=1), out_dir=tmp_path / "run", progress=False)


def test_atomic_folders_and_optimizer_round_trip(tmp_path):
    model, train, test = make_run(tmp_path / "a")
    opt = torch.optim.AdamW([model.prompt.weight, *model.head.parameters()])
    model(**{k: torch.tensor([[2, 6, 3]]) for k in ("input_ids",)}).sum().backward()
    opt.step()
    tensors, data = optimizer_to_flat(opt.state_dict())
    json.dumps(data)  # JSON-able
    back = optimizer_from_flat(tensors, json.loads(json.dumps(data)))
    ref = opt.state_dict()
    assert back["param_groups"] == ref["param_groups"]
    assert all(torch.equal(back["state"][i][k], ref["state"][i][k]) for i in ref["state"] for k in ref["state"][i])
    # a half-written folder is invisible; writing over an existing step moves it aside
    (tmp_path / "run" / "checkpoints" / ".tmp-step-00000003-1-2").mkdir(parents=True)
    save_checkpoint(tmp_path / "run" / "checkpoints" / "step-00000001", {"x": torch.ones(2)}, {"step": 1})
    save_checkpoint(tmp_path / "run" / "checkpoints" / "step-00000001", {"x": torch.zeros(2)}, {"step": 1})
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-00000001"]
    assert torch.equal(load_checkpoint(list_checkpoints(tmp_path / "run")[0])[0]["x"], torch.zeros(2))


def test_nothing_is_unpickled():
    root = Path(__file__).parents[1] / "attnviz" / "prompts"
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "torch.load(" not in text and "import pickle" not in text and "pickle.load" not in text, path
