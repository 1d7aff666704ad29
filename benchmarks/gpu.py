"""Issue 19: one prepared GPU run — attention op, training steps at long lengths, PEFT, compile counts.

Runs within ~6 minutes on one lent GPU (an H200) with only torch, transformers, peft and accelerate
(no plotly, no datasets, no downloads): the model is random weights of all-MiniLM-L6-v2's shape
(6 layers, hidden 384, 12 heads × 32, FFN 1536) from :func:`attnviz.models.tiny_model`. Writes
``benchmarks/results/gpu.{json,md}`` (or ``--out DIR``):

1. **op**: one attention call, 12 heads × 32, bf16, forward + backward, L = 16,384, window 512 +
   21 global positions ([CLS] + a 20-token prefix prompt): full attention through sdpa (flash),
   compiled flex with attnviz's ``BlockMask``, compiled flex with the hand-written
   ``(|q - k| <= 256) | (q < 21) | (k < 21)`` through ``create_block_mask`` (same tiles).
2. **train**: one training step (batch 1, gradient into the prompt and head) through
   :class:`attnviz.prompts.PromptModel` + :func:`attnviz.prompts.train_soft_prompt` at L ∈ {4k, 16k,
   32k, 64k} in bf16 and fp32: ``flex`` (window 512 + global prompt + [CLS]) vs full attention
   (``sdpa``, no mask: flash in bf16); median of the steps after the compiling ones, peak memory,
   the flex kernels the run compiled, and the analytic attention peak of :mod:`attnviz.costs`.
3. **peft**: PEFT prompt tuning vs attnviz's prompt (full attention, sdpa) on identical batches
   (8 × 512), median step.

Cells run in order of importance under a time budget (``--budget`` seconds); a cell that would
start after it is reported as skipped, one that fails (e.g. out of memory) reports its error.
``--quick`` runs tiny sizes on CPU (2 layers, L ≤ 512, uncompiled flex forward only: torch has no
CPU FlexAttention backward, so flex training is reported as skipped) into a temporary folder.

    python benchmarks/gpu.py                 # on the GPU machine
    python benchmarks/gpu.py --quick         # smoke run on CPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N_PROMPT, WINDOW, HEADS, HEAD_DIM, HIDDEN, FFN, LAYERS = 20, 512, 12, 32, 384, 1536, 6
GiB = 2**30


# ---- settings -----------------------------------------------------------------------------------
def settings(quick: bool) -> dict:
    if quick:
        return {"device": "cpu", "layers": 2, "op_length": 256, "window": 64, "compile": False,
                "train": [(256, "bf16"), (512, "no")], "steps": 3, "warm": 1, "peft": (2, 128), "budget": 120}
    return {"device": "cuda", "layers": LAYERS, "op_length": 16384, "window": WINDOW, "compile": True,
            "train": [(16384, "bf16"), (65536, "bf16"), (32768, "bf16"), (4096, "bf16"), (16384, "no"), (4096, "no"),
                      (32768, "no"), (65536, "no")],
            "steps": 6, "warm": 2, "peft": (8, 512), "budget": 330}


def _sync(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak(device):
    import torch

    return torch.cuda.max_memory_allocated() if torch.device(device).type == "cuda" else None


def _layout(length: int):
    from attnviz import PromptPlacement

    return PromptPlacement("prefix", n_tokens=N_PROMPT).layout(text_len=length - N_PROMPT - 2)


def _pattern(window: int):
    from attnviz import AttentionPattern

    return AttentionPattern(window=window, global_prompt=True, global_positions=(0,))


# ---- 1. the op ----------------------------------------------------------------------------------
def op_cell(s: dict) -> list[dict]:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from attnviz.blockmask import block_mask

    device, L, window = s["device"], s["op_length"], s["window"]
    backward = torch.device(device).type != "cpu"
    dtype = torch.bfloat16 if backward else torch.float32
    half, n_global = window // 2, N_PROMPT + 1

    def hand(b, h, q, k):
        return ((q - k).abs() <= half) | (q < n_global) | (k < n_global)

    ours = block_mask(_pattern(window), _layout(L), 0, device=device)
    ref = create_block_mask(hand, None, None, L, L, device=device)
    same = all(torch.equal(getattr(ours, n), getattr(ref, n)) for n in ("kv_num_blocks", "kv_indices",
                                                                      "full_kv_num_blocks", "full_kv_indices"))
    flex = torch.compile(flex_attention, dynamic=False) if s["compile"] else flex_attention
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(1, HEADS, L, HEAD_DIM, device=device, dtype=dtype, generator=gen).requires_grad_(backward)
               for _ in range(3))
    variants = {
        "full attention (sdpa / flash)": lambda: F.scaled_dot_product_attention(q, k, v),
        "attnviz flex": lambda: flex(q, k, v, block_mask=ours),
        "hand-written flex": lambda: flex(q, k, v, block_mask=ref),
    }
    rows = []
    for name, fn in variants.items():
        def once():
            with torch.enable_grad() if backward else torch.no_grad():
                out = fn()
                if backward:
                    out.sum().backward()
            _sync(device)
        t = time.perf_counter()
        once()
        first = time.perf_counter() - t
        times = []
        for _ in range(5 if s["compile"] else 2):
            t = time.perf_counter()
            once()
            times.append(time.perf_counter() - t)
        rows.append({"variant": name, "L": L, "pass": "fwd+bwd" if backward else "fwd", "dtype": str(dtype)[6:],
                     "median ms": 1e3 * statistics.median(times), "first call s": first, "same tables": same})
    hand_ms = rows[2]["median ms"]
    for r in rows:
        r["ratio to hand"] = r["median ms"] / hand_ms
    return rows


# ---- 2. training steps ----------------------------------------------------------------------------
def _base(s: dict, length: int, model_class=None):
    from attnviz.models import tiny_model

    return tiny_model("bert", hidden_size=HIDDEN, num_attention_heads=HEADS, intermediate_size=FFN,
                      num_hidden_layers=s["layers"], max_position_embeddings=length + 8, model_class=model_class)


def _rows(n: int, tokens: int, seed: int = 0) -> list[dict]:
    import torch

    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": [2] + torch.randint(5, 128, (tokens - 2,), generator=g).tolist() + [3], "label": i % 2}
            for i in range(n)]


def train_cell(s: dict, length: int, precision: str, backend: str) -> dict:
    import torch

    from attnviz import PromptPlacement
    from attnviz.costs import attention_cost
    from attnviz.prompts import ClassificationHead, PromptModel, SoftPrompt, TrainConfig, make_accelerator, train_soft_prompt

    device = s["device"]
    window = s["window"]
    pattern = _pattern(window) if backend == "flex" else None
    base = _base(s, length)
    torch.manual_seed(0)
    prompt = SoftPrompt(0.02 * torch.randn(N_PROMPT, HIDDEN), PromptPlacement("prefix", n_tokens=N_PROMPT))
    head = ClassificationHead(HIDDEN, 2, pooling="cls", dropout=0.0)
    model = PromptModel(base, head, prompt, pattern, backend=backend, prune=False, special_tokens=(True, True),
                        model_id="minilm-shape-random")
    acc = make_accelerator(precision, cpu=torch.device(device).type == "cpu")
    _peak_reset(device)
    result = train_soft_prompt(model, _rows(4, length - N_PROMPT), None, accelerator=acc, progress=False,
                               config=TrainConfig(steps=s["steps"], batch_size=1, eval_every=0, checkpoint_every=0,
                                                  mixed_precision=precision))
    seconds = [h["seconds"] for h in result.history]
    peak = _peak(device)
    row = {"L": length, "precision": precision, "backend": backend + ("" if pattern else " (full attention)"),
           "median step ms": 1e3 * statistics.median(seconds[s["warm"]:]), "first step s": seconds[0],
           "peak GiB": None if peak is None else peak / GiB, "flex kernels": result.flex_kernels,
           "loss": result.history[-1]["loss"]}
    if backend == "flex":
        cost = attention_cost(pattern, _layout(length), s["layers"], HEADS, HEAD_DIM, implementation="flex",
                              backward=True, dtype="bfloat16" if precision == "bf16" else "float32")
        row["attnviz.costs attention GiB"] = cost.peak_bytes / GiB
    return row


# ---- 3. PEFT ------------------------------------------------------------------------------------
def peft_cell(s: dict, precision: str) -> list[dict]:
    import torch
    import torch.nn.functional as F
    from peft import PromptTuningConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from attnviz import PromptPlacement
    from attnviz.prompts import ClassificationHead, PromptModel, SoftPrompt, TrainConfig, make_accelerator, train_soft_prompt

    device = s["device"]
    batch, length = s["peft"]
    rows = _rows(batch * s["steps"], length - N_PROMPT, seed=1)
    dtype = torch.bfloat16 if precision == "bf16" else None
    # PEFT: prompt tuning on the sequence-classification model, the same random weights
    clf = _base(s, length, AutoModelForSequenceClassification)
    clf.config.num_labels = 2
    peft_model = get_peft_model(clf, PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=N_PROMPT)).to(device)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=3e-2)
    times = []
    for step in range(s["steps"]):
        chunk = rows[step * batch:(step + 1) * batch]
        ids = torch.tensor([r["input_ids"] for r in chunk], device=device)
        labels = torch.tensor([r["label"] for r in chunk], device=device)
        _sync(device)
        t = time.perf_counter()
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            logits = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        float(loss.detach())
        _sync(device)
        times.append(time.perf_counter() - t)
    peft_ms = 1e3 * statistics.median(times[s["warm"]:])
    # attnviz: the same batches through PromptModel + train_soft_prompt (full attention, sdpa)
    base = _base(s, length)
    prompt = SoftPrompt(0.02 * torch.randn(N_PROMPT, HIDDEN), PromptPlacement("prefix", n_tokens=N_PROMPT))
    model = PromptModel(base, ClassificationHead(HIDDEN, 2, pooling="cls", dropout=0.0), prompt, None, backend="sdpa",
                        prune=False, special_tokens=(True, True), model_id="minilm-shape-random")
    acc = make_accelerator(precision, cpu=torch.device(device).type == "cpu")
    result = train_soft_prompt(model, rows, None, accelerator=acc, progress=False,
                               config=TrainConfig(steps=s["steps"], batch_size=batch, eval_every=0, checkpoint_every=0,
                                                  mixed_precision=precision, seed=0, lr_prompt=3e-2))
    ours_ms = 1e3 * statistics.median([h["seconds"] for h in result.history][s["warm"]:])
    return [{"what": "PEFT prompt tuning", "batch x L": f"{batch} x {length}", "precision": precision, "median step ms": peft_ms},
            {"what": "attnviz PromptModel (sdpa)", "batch x L": f"{batch} x {length}", "precision": precision,
             "median step ms": ours_ms, "ratio to PEFT": ours_ms / peft_ms}]


# ---- the run ------------------------------------------------------------------------------------
def _table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(none)"]
    cols = []
    for r in rows:
        cols += [c for c in r if c not in cols]

    def fmt(v):
        if v is None:
            return "—"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)
    return ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"] + [
        "| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]


def run(quick: bool = False, out: Path | None = None, budget: float | None = None) -> Path:
    import torch

    from attnviz.models.interface import flex_kernel_count, flex_trains_on

    s = settings(quick)
    if budget is not None:
        s["budget"] = budget
    if not quick and not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA GPU; run --quick for the CPU smoke run")
    out = Path(out) if out is not None else (Path(tempfile.mkdtemp(prefix="attnviz-gpu-")) if quick else ROOT / "benchmarks" / "results")
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="attnviz-inductor-"))
    start = time.perf_counter()
    tables = {"op": [], "train": [], "peft": []}
    skipped = []

    def cell(table, label, fn, *args):
        if time.perf_counter() - start > s["budget"]:
            skipped.append(f"{label}: over the {s['budget']:.0f} s budget")
            return
        try:
            got = fn(*args)
            tables[table] += got if isinstance(got, list) else [got]
        except Exception as exc:  # one failed cell (e.g. out of memory) must not lose the others
            skipped.append(f"{label}: {type(exc).__name__}: {str(exc)[:300]}")
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        print(f"[{time.perf_counter() - start:6.1f} s] {label}", flush=True)

    cell("op", "op", op_cell, s)
    for length, precision in s["train"]:
        if flex_trains_on(s["device"]):
            cell("train", f"train flex L={length} {precision}", train_cell, s, length, precision, "flex")
        else:
            skipped.append(f"train flex L={length} {precision}: no FlexAttention backward on {s['device']}")
        if precision == "bf16" or length <= 16384:
            cell("train", f"train full L={length} {precision}", train_cell, s, length, precision, "sdpa")
    for precision in ("no", "bf16"):
        cell("peft", f"peft {precision}", peft_cell, s, precision)

    from benchmarks.common import machine_info

    info = machine_info()
    payload = {"benchmark": "gpu", "quick": quick, "machine": info, "settings": {k: v for k, v in s.items()},
               "tables": tables, "skipped": skipped, "flex_kernels_total": flex_kernel_count(),
               "seconds": time.perf_counter() - start}
    (out / "gpu.json").write_text(json.dumps(payload, indent=2, default=str))
    lines = [f"# GPU benchmark (issue 19){' — quick CPU smoke run' if quick else ''}", "",
             f"{info['date']} · {info['machine']} · device {info['device']} · torch {info['torch']} · "
             f"transformers {info['transformers']} · {payload['seconds']:.0f} s", "",
             "Random weights of all-MiniLM-L6-v2's shape; window 512 + global [CLS] + 20-token global prefix prompt.", "",
             "## One attention call", ""] + _table(tables["op"]) + [
             "", "## Training step (batch 1, PromptModel + train_soft_prompt)", "",
             "Peak = torch.cuda.max_memory_allocated over the run (weights and activations included); "
             "attnviz.costs gives attention's own analytic peak.", ""] + _table(tables["train"]) + [
             "", "## Prompt step vs PEFT (identical batches, full attention)", ""] + _table(tables["peft"]) + [
             "", f"Flex kernel signatures compiled in this process: {flex_kernel_count()}."]
    if skipped:
        lines += ["", "Skipped / failed:", ""] + [f"- {x}" for x in skipped]
    (out / "gpu.md").write_text("\n".join(lines) + "\n")
    return out / "gpu.md"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes on CPU, into a temporary folder")
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu.json / gpu.md")
    parser.add_argument("--budget", type=float, default=None, help="seconds after which no new cell starts")
    args = parser.parse_args(argv)
    print(run(quick=args.quick, out=args.out, budget=args.budget))


if __name__ == "__main__":
    main()
