"""Several processes (issue 19): ``torchrun --nproc_per_node 2`` on CPU gives accelerate MULTI_CPU
(gloo). Two processes splitting each global batch train the same prompt as one process, and a
killed two-process run resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
STEPS, GLOBAL_BATCH = 6, 8

SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path

    sys.path.insert(0, {tests!r})
    import torch
    from safetensors.torch import save_file
    from _prompt_fixtures import make_run
    from attnviz.prompts import TrainConfig, make_accelerator, train_soft_prompt

    args = json.loads(sys.argv[1])
    acc = make_accelerator("no", cpu=True)
    rank = acc.process_index
    model, train, _ = make_run(Path(args["work"]) / f"rank{{rank}}")
    model.head.dropout.p = 0.0          # no random numbers that depend on the share of the batch

    def kill(event):
        if event.step == args.get("kill_at") and rank == 0:
            os.kill(os.getpid(), 9)     # after the checkpoint of that step is safely written

    cfg = TrainConfig(steps={steps}, batch_size=args["batch_size"], eval_every=0, checkpoint_every=2, warmup=0.2)
    result = train_soft_prompt(model, train, None, config=cfg, out_dir=args["out"], resume=args.get("resume", False),
                               accelerator=acc, callback=kill, progress=False)
    if acc.is_main_process:
        save_file({{"prompt": model.prompt.weight.detach().contiguous(),
                    **{{"head." + k: v.contiguous() for k, v in model.head.state_dict().items()}}}}, args["result"])
        Path(args["result"] + ".json").write_text(json.dumps({{
            "distributed": acc.distributed_type.value, "processes": acc.num_processes, "step": result.step,
            "resumed_from": str(result.resumed_from) if result.resumed_from else None}}))
    acc.end_training()
""")


def _run(tmp_path: Path, name: str, processes: int, **args) -> subprocess.CompletedProcess:
    script = tmp_path / "train_mp.py"
    script.write_text(SCRIPT.format(tests=str(TESTS), steps=STEPS))
    args = {"work": str(tmp_path / f"work-{name}"), "out": str(tmp_path / f"run-{name}"),
            "result": str(tmp_path / f"{name}.safetensors"), "batch_size": GLOBAL_BATCH // processes, **args}
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if processes == 1:
        cmd = [sys.executable, str(script), json.dumps(args)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               str(script), json.dumps(args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=600)


def _result(tmp_path: Path, name: str):
    return load_file(str(tmp_path / f"{name}.safetensors")), json.loads((tmp_path / f"{name}.safetensors.json").read_text())


def test_two_processes_train_the_same_prompt_as_one(tmp_path):
    one = _run(tmp_path, "one", 1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run(tmp_path, "two", 2)
    assert two.returncode == 0, two.stderr[-3000:]
    (t1, m1), (t2, m2) = _result(tmp_path, "one"), _result(tmp_path, "two")
    assert m1["processes"] == 1 and m2["processes"] == 2 and m2["distributed"] == "MULTI_CPU"
    assert m1["step"] == m2["step"] == STEPS
    sys.path.insert(0, str(TESTS))
    from _prompt_fixtures import make_run

    start = make_run(tmp_path / "start")[0].prompt.weight.detach()
    assert (t1["prompt"] - start).abs().max() > 1e-2                  # the prompt did train
    for key in t1:
        diff = (t1[key] - t2[key]).abs().max().item()
        assert diff <= 1e-6, (key, diff)
    # one checkpoint set, written by the main process only
    assert sorted(p.name for p in (tmp_path / "run-two" / "checkpoints").iterdir()) == [
        "step-00000002", "step-00000004", "step-00000006"]


def test_killed_two_process_run_resumes_exactly(tmp_path):
    whole = _run(tmp_path, "whole", 2)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _run(tmp_path, "cut", 2, kill_at=4)
    assert killed.returncode != 0                                   # rank 0 died of SIGKILL, torchrun ended the rest
    assert f"exitcode  : -{int(signal.SIGKILL)}" in killed.stderr or "Signal 9" in killed.stderr or "SIGKILL" in killed.stderr
    assert not (tmp_path / "cut.safetensors").exists()
    checkpoints = sorted(p.name for p in (tmp_path / "run-cut" / "checkpoints").iterdir())
    assert checkpoints == ["step-00000002", "step-00000004"]
    resumed = _run(tmp_path, "cut", 2, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (tw, _), (tc, mc) = _result(tmp_path, "whole"), _result(tmp_path, "cut")
    assert mc["step"] == STEPS and mc["resumed_from"].endswith("step-00000004")
    for key in tw:
        assert torch.equal(tw[key], tc[key]), (key, (tw[key] - tc[key]).abs().max().item())
