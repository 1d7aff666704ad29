"""benchmarks/gpu.py stays runnable: ``--quick`` on CPU, without plotly, writes its tables."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BLOCK_PLOTLY = """
import sys, runpy
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "plotly" or name.startswith("plotly.") or name == "datasets" or name.startswith("datasets."):
            raise ImportError(f"{name} is not on the GPU machine")
sys.meta_path.insert(0, Block())
sys.argv = ["benchmarks/gpu.py", "--quick", "--out", sys.argv[1]]
runpy.run_path("benchmarks/gpu.py", run_name="__main__")
assert "plotly" not in sys.modules
"""


@pytest.mark.slow
def test_gpu_benchmark_quick_runs_on_cpu_without_plotly(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"),
               PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", BLOCK_PLOTLY, str(tmp_path / "out")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert payload["quick"] is True and payload["machine"]["device"] == "cpu"
    op = payload["tables"]["op"]
    assert [r["variant"] for r in op] == ["full attention (sdpa / flash)", "attnviz flex", "hand-written flex"]
    assert all(r["same tables"] for r in op) and op[2]["ratio to hand"] == 1.0
    train = payload["tables"]["train"]
    assert [(r["L"], r["precision"], r["backend"]) for r in train] == [
        (256, "bf16", "sdpa (full attention)"), (512, "no", "sdpa (full attention)")]
    assert all(r["median step ms"] > 0 for r in train)
    assert [r["what"] for r in payload["tables"]["peft"]] == ["PEFT prompt tuning", "attnviz PromptModel (sdpa)"] * 2
    assert payload["skipped"] == ["train flex L=256 bf16: no FlexAttention backward on cpu",
                                  "train flex L=512 no: no FlexAttention backward on cpu"]
    md = (tmp_path / "out" / "gpu.md").read_text()
    assert "## One attention call" in md and "## Prompt step vs PEFT" in md
