"""Issue 5 benchmark: one prompt-tuning training step, attnviz vs PEFT, and reach-aware pruning.

Model: the embedded all-MiniLM-L6-v2 (frozen), 3 labels, float32, CPU. A training step is
``zero_grad`` + forward + cross-entropy + backward + ``AdamW.step`` over the trainable tensors
(prompt and head), on identical batches: 8 VitaminC pairs padded to 128 tokens, + 20 prompt
tokens = 148 positions.

Cells (each in its own subprocess; arms inside a cell interleaved A B A B …, median step time):

* ``full attention, eager``: attnviz ``PromptModel`` (placement ``"start"`` as PEFT, dense
  backend, full attention: no mask installed) vs ``peft.get_peft_model`` with
  ``PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20)``, both eager attention.
* ``window mask, sdpa``: attnviz with ``AttentionPattern(window=64)`` (global prompt) on the sdpa
  backend, pruning off, vs PEFT with full sdpa attention (PEFT cannot take a mask pattern).
* ``reach-aware pruning``: attnviz, window 32, no global tokens, ``[CLS]`` readout, prompt after
  ``[CLS]``, dense backend: ``prune=True`` vs ``prune=False``, at 148 and 512 positions.
"""

from __future__ import annotations

import statistics
import time

from .common import run_cell, write_results

N_TOKENS = 20


def _batches(tokenizer, n_batches: int, text_len: int, batch_size: int = 8):
    from attnviz.tasks.nli import load_nli

    rows = load_nli("train", "vitaminc", limit=n_batches * batch_size, seed=0)
    out = []
    for i in range(n_batches):
        part = rows[i * batch_size:(i + 1) * batch_size]
        enc = tokenizer(list(part["premise"]), list(part["hypothesis"]), truncation=True, max_length=text_len,
                        padding="max_length", return_tensors="pt")
        import torch

        out.append((enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], torch.tensor(part["label"])))
    return out


def _attnviz_arm(pattern, backend, attn, *, placement="start", prune=False, seed=0):
    import torch

    from attnviz import PromptPlacement
    from attnviz.models import load_model
    from attnviz.prompts import ClassificationHead, PromptModel, SoftPrompt

    base, tok, name = load_model("default", attn_implementation=attn)
    prompt = SoftPrompt.init(base, tok, PromptPlacement(placement, n_tokens=N_TOKENS), seed=seed)
    torch.manual_seed(seed)
    model = PromptModel(base, ClassificationHead(384, 3, pooling="cls"), prompt, pattern, backend=backend,
                        prune=prune, tokenizer=tok, model_id=name)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    def step(batch):
        ids, mask, types, labels = batch
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(ids, mask, types), labels)
        loss.backward()
        opt.step()
        return model.last_info

    return step, tok, model


def _peft_arm(attn, seed=0):
    import torch
    import transformers
    from peft import PromptTuningConfig, get_peft_model

    from attnviz.models import load_model

    torch.manual_seed(seed)
    model, tok, _ = load_model("default", model_class=transformers.AutoModelForSequenceClassification,
                               num_labels=3, attn_implementation=attn)
    peft_model = get_peft_model(model, PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=N_TOKENS))
    peft_model.eval()  # dropout off, as attnviz's frozen base (eval mode): the same computation; gradients still flow
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)

    def step(batch):
        ids, mask, types, labels = batch
        opt.zero_grad(set_to_none=True)
        logits = peft_model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        opt.step()
        return {}

    return step, tok, peft_model


def _interleave(arms: dict, batches: list, steps: int, warmup: int = 2) -> dict:
    """Run every arm on the same batch, arm after arm (A B A B …); median seconds per arm."""
    times = {k: [] for k in arms}
    infos = {}
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        for name, step in arms.items():
            t = time.perf_counter()
            infos[name] = step(batch)
            if i >= warmup:
                times[name].append(time.perf_counter() - t)
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "steps": len(v),
                "info": {kk: vv for kk, vv in (infos[k] or {}).items() if kk in ("length", "computed", "pruned")}}
            for k, v in times.items()}


def cell_vs_peft(window: int | None, backend: str, attn: str, steps: int) -> dict:
    """Runs in a fresh subprocess: attnviz vs PEFT on identical batches."""
    import torch

    from attnviz import AttentionPattern

    torch.manual_seed(0)
    ours, tok, model = _attnviz_arm(AttentionPattern(window=window), backend, attn)
    theirs, _, peft_model = _peft_arm(attn)
    trainable = {"attnviz": sum(p.numel() for p in model.parameters() if p.requires_grad),
                 "peft": sum(p.numel() for p in peft_model.parameters() if p.requires_grad)}
    batches = _batches(tok, 4, 128)
    res = _interleave({"attnviz": ours, "peft": theirs}, batches, steps)
    return {"times": res, "trainable": trainable, "length": 128 + N_TOKENS, "threads": torch.get_num_threads()}


def cell_pruning(text_len: int, steps: int) -> dict:
    """Runs in a fresh subprocess: window 32, no globals, [CLS] readout: prune on vs off."""
    import torch

    from attnviz import AttentionPattern

    pattern = AttentionPattern(window=32, global_positions=(), global_prompt=False)
    on, tok, _ = _attnviz_arm(pattern, "dense", "eager", placement="prefix", prune=True)
    off, _, _ = _attnviz_arm(pattern, "dense", "eager", placement="prefix", prune=False)
    batches = _batches(tok, 2, text_len)
    res = _interleave({"pruned": on, "full": off}, batches, steps, warmup=1)
    return {"times": res, "threads": torch.get_num_threads()}


def run(quick: bool = False) -> str:
    steps = 3 if quick else 10
    rows = []
    for label, window, backend, attn in (("full attention, eager", None, "dense", "eager"),
                                         ("window 64 + global prompt, sdpa", 64, "sdpa", "sdpa")):
        r = run_cell("benchmarks.training_step", "cell_vs_peft", timeout=1800, memory_allocator=False,
                     window=window, backend=backend, attn=attn, steps=steps)
        if "error" in r:
            rows.append({"comparison": f"attnviz vs PEFT, {label}", "error": r["error"]})
            continue
        t = r["times"]
        rows.append({"comparison": f"attnviz vs PEFT, {label}", "positions": r["length"], "batch": 8,
                     "A s/step": t["attnviz"]["median_s"], "B s/step": t["peft"]["median_s"],
                     "A / B": t["attnviz"]["median_s"] / t["peft"]["median_s"],
                     "target": 1.05 if window is None else 1.10, "steps": t["attnviz"]["steps"],
                     "A computed": t["attnviz"]["info"].get("computed"),
                     "trainable A / B": f"{r['trainable']['attnviz']} / {r['trainable']['peft']}"})
    for text_len in (128, 492):  # 492 + 20 prompt tokens = MiniLM's 512 positions
        r = run_cell("benchmarks.training_step", "cell_pruning", timeout=1800, memory_allocator=False,
                     text_len=text_len, steps=steps if text_len <= 128 else max(2, steps // 2))
        if "error" in r:
            rows.append({"comparison": "pruned vs unpruned (window 32, no globals)", "positions": text_len + N_TOKENS,
                         "error": r["error"]})
            continue
        t = r["times"]
        rows.append({"comparison": "pruned vs unpruned (window 32, no globals)", "positions": text_len + N_TOKENS,
                     "batch": 8, "A s/step": t["pruned"]["median_s"], "B s/step": t["full"]["median_s"],
                     "A / B": t["pruned"]["median_s"] / t["full"]["median_s"],
                     "speed-up": t["full"]["median_s"] / t["pruned"]["median_s"], "steps": t["pruned"]["steps"],
                     "A computed": t["pruned"]["info"].get("computed")})
    notes = ("One training step = zero_grad + forward + cross-entropy + backward + AdamW step of prompt and head on the "
             "frozen embedded MiniLM; batch 8 VitaminC pairs padded to 128 (or 492) tokens + 20 prompt tokens; both bases in eval mode (dropout off). "
             "A = attnviz, B = PEFT prompt tuning (rows 1-2) or attnviz without pruning (rows 3-4). Arms interleaved "
             "A B A B on the same batches in one process, median step time after warm-up. 'A computed' = positions "
             "the encoder actually runs after pruning. Measured on a shared 2-core machine: absolute times are "
             "inflated by other jobs; the ratios were measured side by side.")
    return str(write_results("training_step", "Prompt-tuning training step: attnviz vs PEFT, and reach-aware pruning",
                             rows, ["comparison", "positions", "batch", "A s/step", "B s/step", "A / B", "target",
                                    "speed-up", "A computed", "steps", "trainable A / B", "error"], notes))
