"""On CUDA (marker ``gpu``; skipped without it): dense / sdpa / flex agree including gradients,
flex trains through ``train_soft_prompt``, and a killed CUDA run resumes exactly.

The model is a tiny BERT with head size 16 (inductor's flex kernel needs at least 16)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.gpu

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SIZES = dict(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_hidden_layers=2)


def tiny_run(folder: Path, backend: str):
    """``(model, train_rows)``: a PromptModel on a tiny BERT with head size 16, prefix prompt of 4."""
    sys.path.insert(0, str(TESTS))
    from _prompt_fixtures import encode, sentiment_rows, tiny_tokenizer
    from attnviz import AttentionPattern, PromptPlacement
    from attnviz.models import tiny_model
    from attnviz.prompts import ClassificationHead, PromptModel, SoftPrompt

    tok = tiny_tokenizer(folder / "tokenizer")
    base = tiny_model("bert", **SIZES)
    prompt = SoftPrompt.init(base, tok, PromptPlacement("prefix", n_tokens=4), seed=0)
    torch.manual_seed(0)
    head = ClassificationHead(64, 2, pooling="mean", dropout=0.0)
    pattern = AttentionPattern(window=4, global_prompt=True, global_positions=(0,))
    model = PromptModel(base, head, prompt, pattern, backend=backend, tokenizer=tok, model_id="tiny-bert-16")
    return model, encode(tok, sentiment_rows(48, 0))


def test_dense_sdpa_flex_agree_on_cuda_with_gradients():
    from attnviz import AttentionPattern, with_pattern
    from attnviz.models import tiny_model

    base = tiny_model("bert", **SIZES, max_position_embeddings=512).cuda()
    pattern = AttentionPattern(window=16, global_positions=(0, 1, 2))
    L = 300
    g = torch.Generator(device="cuda").manual_seed(0)
    embeds = torch.randn(2, L, 64, device="cuda", generator=g)
    mask = torch.ones(2, L, dtype=torch.long, device="cuda")
    mask[1, 200:] = 0                                             # padding on the right of row 1
    real = mask.bool()[..., None]
    outs, grads = {}, {}
    for backend in ("dense", "sdpa", "flex"):
        x = embeds.clone().requires_grad_(True)
        with with_pattern(base, pattern, backend=backend, compile=True if backend == "flex" else None) as m:
            hidden = m(inputs_embeds=x, attention_mask=mask).last_hidden_state
        (hidden * real).pow(2).sum().backward()
        outs[backend], grads[backend] = (hidden * real).detach(), x.grad.detach()
    for backend in ("sdpa", "flex"):
        assert (outs[backend] - outs["dense"]).abs().max().item() < 1e-4, backend
        scale = grads["dense"].abs().max().item()
        assert (grads[backend] - grads["dense"]).abs().max().item() < 1e-4 * max(scale, 1.0), backend


def test_flex_trains_through_train_soft_prompt_on_cuda(tmp_path):
    from attnviz.prompts import TrainConfig, train_soft_prompt

    cfg = TrainConfig(steps=8, batch_size=4, eval_every=0, checkpoint_every=0)
    prompts = {}
    for backend in ("dense", "flex"):
        model, train = tiny_run(tmp_path / backend, backend)
        result = train_soft_prompt(model, train, None, config=cfg, progress=False)
        assert result.step == 8
        assert model.prompt.weight.device.type == "cuda"
        prompts[backend] = model.prompt.weight.detach().cpu()
        if backend == "flex":
            # every batch padded to 128 positions: one length, so few kernel signatures (forward + grad mode)
            assert model.last_info["length"] == 128
            assert 1 <= result.flex_kernels <= 2, result.flex_kernels
    assert (prompts["flex"] - prompts["dense"]).abs().max().item() < 1e-3


CHILD = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from safetensors.torch import save_file
    from test_gpu import tiny_run
    from attnviz.prompts import TrainConfig, train_soft_prompt

    args = json.loads(sys.argv[1])
    model, train = tiny_run(Path(args["work"]), "flex")

    def kill(event):
        if event.step == args.get("kill_at"):
            os.kill(os.getpid(), 9)

    train_soft_prompt(model, train, None, config=TrainConfig(steps=6, batch_size=4, eval_every=0, checkpoint_every=2),
                      out_dir=args["out"], resume=args.get("resume", False), callback=kill, progress=False)
    save_file({{"prompt": model.prompt.weight.detach().cpu().contiguous()}}, args["result"])
""")


def _child(tmp_path: Path, name: str, **args) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(TESTS)))
    args = {"work": str(tmp_path / f"work-{name}"), "out": str(tmp_path / f"run-{name}"),
            "result": str(tmp_path / f"{name}.safetensors"), **args}
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + str(TESTS), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(script), json.dumps(args)], capture_output=True, text=True, env=env,
                          timeout=900, cwd=str(tmp_path))


def test_killed_cuda_flex_run_resumes_exactly(tmp_path):
    from safetensors.torch import load_file

    whole = _child(tmp_path, "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    cut = _child(tmp_path, "cut", kill_at=4)
    assert cut.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (tmp_path / "run-cut" / "checkpoints").iterdir()) == ["step-00000002", "step-00000004"]
    resumed = _child(tmp_path, "cut", resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_file(str(tmp_path / "whole.safetensors"))["prompt"]
    b = load_file(str(tmp_path / "cut.safetensors"))["prompt"]
    # the same kernels on the same device: the same prompt (flex's backward may use atomics; allow 1e-6)
    assert (a - b).abs().max().item() <= 1e-6
    assert json.loads((tmp_path / "run-cut" / "result.json").read_text())["step"] == 6
