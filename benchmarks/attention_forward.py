"""Issue 4 benchmark: forward time and net attention memory of windowed attention at long lengths.

Model: the embedded MiniLM (6 layers, 12 heads, head dim 32) with its positions extended to 4096
(`extend_positions`), batch 1, float32, ``torch.no_grad``. Variants, side by side in one run:

* ``stock sdpa``   — the model with transformers' sdpa attention, full attention (the baseline
  a user starts from; independent of the window);
* ``dense``        — ``with_pattern(backend="dense")``: eager, additive float mask, (L, L) probs;
* ``sdpa``         — ``with_pattern(backend="sdpa")``: same mask, fused kernel;
* ``flex``         — ``with_pattern(backend="flex")``: compiled FlexAttention with a BlockMask;
* ``longformer``   — a native ``LongformerModel`` of the same shape (random weights), banded kernel.

Attention memory is *net*: the peak of a forward minus the peak of the same forward with a null
attention (a registered function that returns ``v``), so weights, embeddings and the FFN do not
hide it. Each variant runs in its own subprocess; every forward is measured with
``attnviz.memory.peak_memory`` after a warm-up at the same length.
"""

from __future__ import annotations

import statistics
import time

from .common import run_cell, write_results

LENGTHS = (512, 1024, 2048, 4096)
WINDOWS = (64, 256, 512)
VARIANTS = ("stock sdpa", "dense", "sdpa", "flex", "longformer")
HEADS, HEAD_DIM, LAYERS = 12, 32, 6


def _null_attention(module, query, key, value, attention_mask, **kwargs):
    return value.transpose(1, 2).contiguous(), None


def _timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cell(variant: str, lengths: list, windows: list, repeats: int = 2) -> dict:
    """Runs in a fresh subprocess: every (L, w) of one variant. Returns {"L,w": {...}}."""
    import torch
    import transformers
    from transformers import AttentionInterface

    from attnviz import AttentionPattern
    from attnviz.memory import peak_memory
    from attnviz.models import extend_positions, load_model, with_pattern

    torch.manual_seed(0)
    max_len = max(lengths)
    out = {}
    if variant == "longformer":
        for w in windows:
            cfg = transformers.LongformerConfig(
                vocab_size=30522, hidden_size=HEADS * HEAD_DIM, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, intermediate_size=1536, attention_window=[w] * LAYERS,
                max_position_embeddings=max_len + 2, pad_token_id=1)
            model = transformers.LongformerModel(cfg).eval()
            for L in lengths:
                ids = torch.randint(5, 30000, (1, L))
                glob = torch.zeros(1, L, dtype=torch.long)
                glob[:, 0] = 1
                run = lambda: model(input_ids=ids, global_attention_mask=glob)
                with torch.no_grad():
                    run()
                    with peak_memory() as mem:
                        run()
                    out[f"{L},{w}"] = {"seconds": _timed(run, repeats), "peak": mem.peak_bytes}
        return out

    model, tok, _ = load_model("default")
    extend_positions(model, max_len)
    AttentionInterface.register("attnviz_null", _null_attention)
    for L in lengths:
        ids = torch.randint(1000, 30000, (1, L))
        ids[:, 0] = tok.cls_token_id
        with torch.no_grad():
            model.set_attn_implementation("attnviz_null")
            model(input_ids=ids)
            with peak_memory() as base:
                model(input_ids=ids)
            model.set_attn_implementation("eager")
            if variant == "stock sdpa":
                model.set_attn_implementation("sdpa")
                run = lambda: model(input_ids=ids)
                run()
                with peak_memory() as mem:
                    run()
                out[f"{L},full"] = {"seconds": _timed(run, repeats), "peak": mem.peak_bytes, "null_peak": base.peak_bytes}
                model.set_attn_implementation("eager")
                continue
            # dense and sdpa compute every (L, L) pair whatever the window (the mask only zeroes some),
            # so one window stands for all; flex skips empty tiles and depends on w.
            for w in (windows if variant == "flex" else windows[:1]):
                pattern = AttentionPattern(window=w, global_positions=(0,))
                with with_pattern(model, pattern, backend=variant) as m:
                    run = lambda: m(input_ids=ids)
                    run()
                    with peak_memory() as mem:
                        run()
                    out[f"{L},{w}"] = {"seconds": _timed(run, repeats), "peak": mem.peak_bytes,
                                       "null_peak": base.peak_bytes}
    return out


def _analytic(implementation: str, L: int, w: int | None) -> int:
    from attnviz import AttentionPattern
    from attnviz.costs import attention_cost

    pattern = AttentionPattern(window=w, global_positions=(0,)) if w else None
    cost = attention_cost(pattern, L, 1, HEADS, HEAD_DIM, implementation=implementation)
    return cost.per_layer[0].op_peak_bytes() + cost.mask_bytes


def run(quick: bool = False):
    lengths = [512, 1024] if quick else list(LENGTHS)
    windows = [64, 256] if quick else list(WINDOWS)
    results = {}
    null_peak = {}
    for variant in VARIANTS:
        print(f"   {variant} ...", flush=True)
        results[variant] = run_cell("benchmarks.attention_forward", "cell", timeout=1800,
                                    variant=variant, lengths=lengths, windows=windows)
        for key, r in results[variant].items():
            if isinstance(r, dict) and "null_peak" in r:
                null_peak[int(key.split(",")[0])] = r["null_peak"]
    rows = []
    impl = {"stock sdpa": "sdpa", "dense": "dense", "sdpa": "sdpa", "flex": "flex", "longformer": "sparse"}
    MiB = 2**20

    def lookup(variant, L, w):
        r = results[variant]
        if "error" in r:
            return {"error": r["error"][:120]}
        if variant == "stock sdpa":
            return r.get(f"{L},full")
        if variant in ("dense", "sdpa"):
            return r.get(f"{L},{windows[0]}")
        return r.get(f"{L},{w}")

    for L in lengths:
        base = null_peak.get(L)
        stock = lookup("stock sdpa", L, None) or {}
        dense = lookup("dense", L, None) or {}
        dense_net = dense["peak"] - base if dense.get("peak") is not None and base is not None else None
        for w in [None] + windows:
            for variant in (["stock sdpa"] if w is None else VARIANTS[1:]):
                cellr = lookup(variant, L, w)
                if cellr is None:
                    continue
                row = {"L": L, "window": "full" if w is None else w, "variant": variant}
                if "error" in cellr:
                    rows.append({**row, "error": cellr["error"]})
                    continue
                net = cellr["peak"] - base if cellr.get("peak") is not None and base is not None else None
                predicted = _analytic(impl[variant], L, w)
                measurable = net is not None and net >= MiB  # below 1 MiB is under the page-level resolution
                rows.append({
                    **row,
                    "forward s": cellr["seconds"],
                    "× stock time": cellr["seconds"] / stock["seconds"] if stock.get("seconds") else None,
                    "attention MiB (net)": None if net is None else max(net, 0) / MiB,
                    "analytic MiB": predicted / MiB,
                    "measured / analytic": net / predicted if measurable else None,
                    "dense / this (memory)": dense_net / net if measurable and dense_net else None,
                })
    notes = (
        "MiniLM (6 layers, 12 heads × 32) extended to 4096 positions; batch 1, float32, no_grad; window w "
        "(Longformer semantics) + global [CLS]. 'attention MiB (net)' = peak of the forward minus the peak of "
        "the same forward with a null attention (weights, embeddings and FFN excluded). 'analytic' = "
        "attnviz.costs for one layer of the variant's implementation (dense: mask + scores + probs; sdpa/flex: "
        "mask + output + lse; longformer: 'sparse', scores and probs of allowed pairs only). The longformer row "
        "is a native LongformerModel of the same shape with random weights; its null baseline is MiniLM's. "
        "dense and sdpa compute all L² pairs for any window (the mask only zeroes some), so they are measured "
        "once per L and repeated on each window's rows. Ratios are left empty where the net attention memory is "
        "under 1 MiB (below what page-level peaks resolve)."
    )
    cols = ["L", "window", "variant", "forward s", "× stock time", "attention MiB (net)", "analytic MiB",
            "measured / analytic", "dense / this (memory)", "error"]
    return write_results("attention_forward", "Windowed attention at long lengths: time and net attention memory",
                         rows, cols, notes)
