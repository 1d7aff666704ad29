"""Issue 9 benchmark: dense vs sdpa vs flex vs native Longformer, forward and forward+backward, L up to 16k.

Model: a 2-layer slice with MiniLM's sizes (hidden 384, 12 heads × 32, FFN 1536), random weights,
positions up to 16 384; batch 1, float32; window w = 256 (Longformer semantics) + global [CLS].
Variants, each in its own subprocess, side by side in one run:

* ``dense``      — ``with_pattern(backend="dense")``: eager attention, additive float mask, (L, L) probs;
* ``sdpa``       — ``with_pattern(backend="sdpa")``: the same mask through the fused kernel;
* ``flex``       — ``with_pattern(backend="flex")``: compiled FlexAttention with the structural
  ``BlockMask`` (:func:`attnviz.blockmask.block_mask`); forward only on CPU (torch has no CPU
  backward for FlexAttention);
* ``longformer`` — a native ``LongformerModel`` of the same shape, its banded kernel.

Net memory = the peak of the run minus the peak of the same run with a null attention (a function
that returns ``v``), so weights, embeddings, FFN and weight gradients do not hide attention. A
variant stops at the first length whose memory or time, extrapolated from the previous length
(``L²`` for dense / sdpa, ``L`` for flex / Longformer), would exceed the budget: those rows say
"skipped: over budget" instead of running out of memory on a shared 2-core machine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .attention_forward import _op_peak
from .common import run_cell, write_results

LENGTHS = (1024, 2048, 4096, 8192, 16384)
WINDOW = 256
VARIANTS = ("dense", "sdpa", "flex", "longformer")
HEADS, HEAD_DIM, LAYERS, FFN = 12, 32, 2, 1536
MEMORY_BUDGET = 3 * 2**30   # net bytes per run
TIME_BUDGET = 45.0          # seconds per run (a cell runs 3-5 of them)
_GROWTH = {"dense": 2, "sdpa": 2, "flex": 1, "longformer": 1}   # exponent of L in memory and time
MiB = 2**20


def _null_attention(module, query, key, value, attention_mask, **kwargs):
    return value.transpose(1, 2).contiguous(), None


def _run_once(fn, backward: bool):
    """Run ``fn`` (forward, plus backward of a scalar when ``backward``); (seconds, net peak bytes)."""
    import torch

    from attnviz.memory import peak_memory

    context = torch.enable_grad() if backward else torch.no_grad()
    with context, peak_memory() as mem:
        t = time.perf_counter()
        out = fn().last_hidden_state
        if backward:
            out.pow(2).mean().backward()
        seconds = time.perf_counter() - t
        del out
    return seconds, mem.peak_bytes


def cell(variant: str, lengths: list, window: int = WINDOW) -> dict:
    """Runs in a fresh subprocess: every L of one variant, forward and (where it can) forward+backward.
    Returns ``{"L,mode": {...}}`` with mode ``fwd`` / ``fwd+bwd``."""
    import torch
    import transformers
    from transformers import AttentionInterface

    from attnviz import AttentionPattern
    from attnviz.models import with_pattern

    torch.manual_seed(0)
    max_len = max(lengths)
    common = dict(vocab_size=30522, hidden_size=HEADS * HEAD_DIM, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, intermediate_size=FFN, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    if variant == "longformer":
        model = transformers.LongformerModel(transformers.LongformerConfig(
            **common, attention_window=[window] * LAYERS, max_position_embeddings=max_len + 2, pad_token_id=1))
    else:
        model = transformers.BertModel(transformers.BertConfig(**common, max_position_embeddings=max_len),
                                       add_pooling_layer=False)
        AttentionInterface.register("attnviz_null", _null_attention)
    # Frozen weights, gradients into inputs_embeds (as when training a soft prompt): the backward's
    # memory is then attention's and the FFN's, not a 45 MiB word-embedding gradient that would
    # land at the same moment in the null run and hide the difference.
    model.eval().requires_grad_(False)
    pattern = AttentionPattern(window=window, global_positions=(0,))
    modes = ("fwd",) if variant == "flex" else ("fwd", "fwd+bwd")
    out, previous = {}, {}
    for L in lengths:
        ids = torch.randint(5, 30000, (1, L))
        embeds = model.get_input_embeddings()(ids).detach()
        for mode in modes:
            key = f"{L},{mode}"
            prev = previous.get(mode)  # None: first length; "stop": a shorter length was over budget
            if prev == "stop":
                out[key] = {"skipped": "over budget (a shorter length already was)"}
                continue
            if prev is not None:  # extrapolate from the last length that ran
                L0, s0, m0 = prev
                grow = (L / L0) ** _GROWTH[variant]
                if m0 * grow > MEMORY_BUDGET or s0 * grow > TIME_BUDGET:
                    out[key] = {"skipped": f"over budget (predicted {m0 * grow / MiB:,.0f} MiB, "
                                           f"{s0 * grow:.0f} s from L={L0})"}
                    previous[mode] = "stop"
                    continue
            backward = mode == "fwd+bwd"
            x = embeds.clone().requires_grad_(backward)
            if variant == "longformer":
                glob = torch.zeros(1, L, dtype=torch.long)
                glob[:, 0] = 1
                run = lambda: model(inputs_embeds=x, global_attention_mask=glob)
                _run_once(run, backward)  # warm-up
                seconds, peak = _run_once(run, backward)
                null = None
                op = None if backward else _op_peak(model, variant, lambda: _run_once(run, False))
            else:
                model.set_attn_implementation("attnviz_null")
                run = lambda: model(inputs_embeds=x)
                _run_once(run, backward)
                _, null = _run_once(run, backward)
                model.set_attn_implementation("eager")
                with with_pattern(model, pattern, backend=variant) as m:
                    run = lambda: m(inputs_embeds=x)
                    _run_once(run, backward)  # warm-up (and compile, for flex)
                    seconds, peak = _run_once(run, backward)
                    op = None if backward else _op_peak(m, variant, lambda: _run_once(run, False))
            out[key] = {"seconds": seconds, "peak": peak, "null_peak": null, "op_peak": op}
            previous[mode] = (L, seconds, max(peak - (null or 0), 0))
    return out


def _analytic(variant: str, L: int, backward: bool, layers: int = LAYERS) -> int | None:
    from attnviz import AttentionPattern
    from attnviz.costs import IMPLEMENTATIONS, attention_cost

    impl = variant if variant != "longformer" else ("longformer" if "longformer" in IMPLEMENTATIONS else "sparse")
    try:
        cost = attention_cost(AttentionPattern(window=WINDOW, global_positions=(0,)), L, layers, HEADS, HEAD_DIM,
                              implementation=impl, backward=backward)
    except ValueError:
        return None
    return cost.peak_bytes if layers > 1 else cost.per_layer[0].op_peak_bytes()


def run(quick: bool = False):
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path.home() / ".cache" / "attnviz" / "torchinductor"))
    lengths = [1024, 2048] if quick else list(LENGTHS)
    results, walls = {}, {}
    for variant in VARIANTS:
        print(f"   {variant} ...", flush=True)
        t = time.perf_counter()
        results[variant] = run_cell("benchmarks.long_attention", "cell", timeout=1800, variant=variant,
                                    lengths=lengths)
        walls[variant] = time.perf_counter() - t
    null = {}  # the BERT slice's null-attention peak per (L, mode); Longformer is netted against it too
    for variant in ("dense", "sdpa", "flex"):
        for key, r in results[variant].items():
            if isinstance(r, dict) and r.get("null_peak") is not None:
                null.setdefault(key, r["null_peak"])
    rows = []
    for L in lengths:
        dense_fwd = results["dense"].get(f"{L},fwd", {})
        for mode in ("fwd", "fwd+bwd"):
            dense = results["dense"].get(f"{L},{mode}", {})
            dense_net = dense["peak"] - null[f"{L},{mode}"] if "peak" in dense and f"{L},{mode}" in null else None
            for variant in VARIANTS:
                row = {"L": L, "mode": mode, "variant": variant}
                r = results[variant]
                if "error" in r:
                    rows.append({**row, "status": "error: " + r["error"][:150]})
                    continue
                if variant == "flex" and mode == "fwd+bwd":
                    rows.append({**row, "status": "n/a: FlexAttention has no backward on CPU (torch); on CUDA it has"})
                    continue
                cellr = r.get(f"{L},{mode}")
                if cellr is None:
                    rows.append({**row, "status": "not run"})
                    continue
                if "skipped" in cellr:
                    rows.append({**row, "status": "skipped: " + cellr["skipped"]})
                    continue
                base = cellr.get("null_peak") or null.get(f"{L},{mode}")
                net = max(cellr["peak"] - base, 0) if base is not None else None
                predicted = _analytic(variant, L, mode == "fwd+bwd")
                measurable = net is not None and net >= MiB
                op = cellr.get("op_peak")
                op_predicted = _analytic(variant, L, False, layers=1) if op is not None else None
                rows.append({
                    **row, "status": "ok", "seconds": cellr["seconds"],
                    "× dense time": cellr["seconds"] / dense["seconds"] if dense.get("seconds") else None,
                    "attention MiB (net)": None if net is None else net / MiB,
                    "analytic MiB": None if predicted is None else predicted / MiB,
                    "measured / analytic": net / predicted if measurable and predicted else None,
                    "dense / this (memory)": dense_net / net if measurable and dense_net else None,
                    "op MiB (fwd, in model)": None if op is None else op / MiB,
                    "op / analytic": op / op_predicted if op is not None and op >= MiB and op_predicted else None,
                })
    notes = (
        f"A 2-layer slice with MiniLM's sizes (hidden 384, {HEADS} heads × {HEAD_DIM}, FFN {FFN}; random weights), "
        f"batch 1, float32, window w={WINDOW} (Longformer semantics) + global [CLS]; weights frozen, "
        f"forward+backward = gradient of mean(h²) into inputs_embeds (as when training a soft prompt). One warm-up, then one measured "
        f"run per cell (time and net peak). 'attention MiB (net)' = peak minus the peak of the same run with a null "
        f"attention (the Longformer rows are netted against the BERT slice's null run); in the forward it reads ~0 where "
        f"attention's transient is below the FFN's (4·L·{FFN} bytes). 'op MiB (fwd, in model)' = the largest net peak of "
        f"one attention op inside a forward (benchmarks.attention_forward._op_meter), against one layer's "
        f"op_peak_bytes(). 'analytic' = "
        f"attnviz.costs.attention_cost(...).peak_bytes for the stack. A variant stops where the previous length's "
        f"memory or time, grown as L² (dense, sdpa) or L (flex, longformer), would pass {MEMORY_BUDGET / 2**30:.0f} GiB "
        f"or {TIME_BUDGET:.0f} s. FlexAttention has no backward on CPU in torch {_torch_version()}, so its "
        f"forward+backward rows are n/a. Subprocess wall time per variant (incl. compile): "
        + ", ".join(f"{v} {s:.0f} s" for v, s in walls.items()) + ". Timings on a shared, loaded 2-core machine are "
        f"inflated; compare within one run."
    )
    cols = ["L", "mode", "variant", "status", "seconds", "× dense time", "attention MiB (net)", "analytic MiB",
            "measured / analytic", "dense / this (memory)", "op MiB (fwd, in model)", "op / analytic"]
    return write_results("long_attention", "Long inputs: dense vs sdpa vs flex vs native Longformer, forward and backward",
                         rows, cols, notes)


def _torch_version() -> str:
    import torch

    return torch.__version__
