"""Issue 4 benchmark: forward time and net attention memory of windowed attention at long lengths.

Model: the embedded MiniLM (6 layers, 12 heads, head dim 32) with its positions extended to 4096
(`extend_positions`), batch 1, float32, ``torch.no_grad``. Variants, side by side in one run:

* ``stock sdpa``   — the model with transformers' sdpa attention, full attention (the baseline
  a user starts from; independent of the window);
* ``dense``        — ``with_pattern(backend="dense")``: eager, additive float mask, (L, L) probs;
* ``sdpa``         — ``with_pattern(backend="sdpa")``: same mask, fused kernel;
* ``flex``         — ``with_pattern(backend="flex")``: compiled FlexAttention with the BlockMask built
  from the pattern's structure (:func:`attnviz.blockmask.block_mask`, cached per layer and length);
* ``longformer``   — a native ``LongformerModel`` of the same shape (random weights), banded kernel.

Attention memory is *net*: the peak of a forward minus the peak of the same forward with a null
attention (a registered function that returns ``v``), so weights, embeddings and the FFN do not
hide it. Each variant runs in its own subprocess; every forward is measured with
``attnviz.memory.peak_memory`` after a warm-up at the same length.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from pathlib import Path

from .common import run_cell, write_results

LENGTHS = (512, 1024, 2048, 4096)
WINDOWS = (64, 256, 512)
VARIANTS = ("stock sdpa", "dense", "sdpa", "flex", "longformer")
HEADS, HEAD_DIM, LAYERS = 12, 32, 6


def _null_attention(module, query, key, value, attention_mask, **kwargs):
    return value.transpose(1, 2).contiguous(), None


def _measured(fn, repeats):
    """Run ``fn`` ``repeats`` times: (median seconds, net peak bytes of the first run)."""
    from attnviz.memory import peak_memory

    times = []
    with peak_memory() as mem:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    for _ in range(repeats - 1):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), mem.peak_bytes


@contextlib.contextmanager
def _op_meter(model, variant: str):
    """Record the net peak of every attention op of ``model`` during the block (a list of bytes,
    one per layer call): the registered attention function (or Longformer's self-attention) runs
    inside :func:`attnviz.memory.peak_memory`, so the reading is the op's own memory (its mask,
    scores / kernel workspace, output) on top of the q, k, v it was given."""
    from transformers import AttentionInterface

    from attnviz.memory import peak_memory

    peaks = []

    def metered(fn):
        def run(*args, **kwargs):
            with peak_memory() as mem:
                out = fn(*args, **kwargs)
            peaks.append(mem.peak_bytes)
            return out
        return run

    if variant == "longformer":
        modules = [layer.attention.self for layer in model.encoder.layer]
        for m in modules:
            m.forward = metered(m.forward)
        try:
            yield peaks
        finally:
            for m in modules:
                del m.forward  # back to the class's forward
        return
    name = model.config._attn_implementation
    original = AttentionInterface._global_mapping[name]
    AttentionInterface._global_mapping[name] = metered(original)
    try:
        yield peaks
    finally:
        AttentionInterface._global_mapping[name] = original


def _op_peak(model, variant, run) -> int | None:
    """Largest net peak of one attention op over the layers of one forward of ``run``."""
    with _op_meter(model, variant) as peaks:
        run()
    return max(peaks) if peaks and None not in peaks else None


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
                    run()  # warm-up
                    seconds, peak = _measured(run, repeats)
                    out[f"{L},{w}"] = {"seconds": seconds, "peak": peak, "op_peak": _op_peak(model, variant, run)}
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
                run()  # warm-up
                seconds, peak = _measured(run, repeats)
                out[f"{L},full"] = {"seconds": seconds, "peak": peak, "null_peak": base.peak_bytes,
                                    "op_peak": _op_peak(model, variant, run)}
                model.set_attn_implementation("eager")
                continue
            # dense and sdpa compute every (L, L) pair whatever the window (the mask only zeroes some),
            # so one window stands for all; flex skips empty tiles and depends on w.
            for w in (windows if variant == "flex" else windows[:1]):
                pattern = AttentionPattern(window=w, global_positions=(0,))
                with with_pattern(model, pattern, backend=variant) as m:
                    run = lambda: m(input_ids=ids)
                    run()  # warm-up
                    seconds, peak = _measured(run, repeats)
                    out[f"{L},{w}"] = {"seconds": seconds, "peak": peak, "null_peak": base.peak_bytes,
                                       "op_peak": _op_peak(m, variant, run)}
    return out


def _analytic(implementation: str, L: int, w: int | None) -> int:
    from attnviz import AttentionPattern
    from attnviz.costs import attention_cost

    pattern = AttentionPattern(window=w, global_positions=(0,)) if w else None
    cost = attention_cost(pattern, L, 1, HEADS, HEAD_DIM, implementation=implementation)
    return cost.per_layer[0].op_peak_bytes()  # the mask (dense / sdpa: float (L, L)) is included


def run(quick: bool = False, repeats: int = 1):
    # Compiled FlexAttention kernels are cached across runs (cold compile ~20-90 s per shape on CPU).
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path.home() / ".cache" / "attnviz" / "torchinductor"))
    lengths = [512, 1024] if quick else list(LENGTHS)
    windows = [64, 256] if quick else list(WINDOWS)
    results = {}
    null_peak = {}
    for variant in VARIANTS:
        print(f"   {variant} ...", flush=True)
        results[variant] = run_cell("benchmarks.attention_forward", "cell", timeout=1800,
                                    variant=variant, lengths=lengths, windows=windows, repeats=repeats)
        for key, r in results[variant].items():
            if isinstance(r, dict) and "null_peak" in r:
                null_peak[int(key.split(",")[0])] = r["null_peak"]
    rows = []
    from attnviz.costs import IMPLEMENTATIONS

    impl = {"stock sdpa": "sdpa", "dense": "dense", "sdpa": "sdpa", "flex": "flex",
            "longformer": "longformer" if "longformer" in IMPLEMENTATIONS else "sparse"}
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
                op = cellr.get("op_peak")
                op_ok = op is not None and op >= MiB
                rows.append({
                    **row,
                    "forward s": cellr["seconds"],
                    "× stock time": cellr["seconds"] / stock["seconds"] if stock.get("seconds") else None,
                    "attention MiB (net)": None if net is None else max(net, 0) / MiB,
                    "dense / this (net)": dense_net / net if measurable and dense_net else None,
                    "op MiB (in model)": None if op is None else op / MiB,
                    "analytic MiB": predicted / MiB,
                    "op / analytic": op / predicted if op_ok else None,
                    "dense op / this op": dense["op_peak"] / op if op_ok and dense.get("op_peak") else None,
                })
    notes = (
        "MiniLM (6 layers, 12 heads × 32) extended to 4096 positions; batch 1, float32, no_grad; window w "
        "(Longformer semantics) + global [CLS]. 'attention MiB (net)' = peak of the forward minus the peak of "
        "the same forward with a null attention (weights, embeddings and FFN excluded); where attention's own "
        "transient is smaller than the FFN's (4·L·1536 bytes: 24 MiB at 4096) this reads ~0, as the forward's "
        "peak is then the FFN's. 'op MiB (in model)' = the largest net peak of one attention op inside the same "
        "model forward (the registered attention function, or Longformer's self-attention module, run inside "
        "attnviz.memory.peak_memory: its mask, scores or kernel workspace and output on top of its q, k, v); this "
        "is what the analytic model predicts. 'analytic' = attnviz.costs.attention_cost(...).per_layer[0]"
        ".op_peak_bytes() for the variant's implementation (dense: mask + scores + probs; sdpa/flex: "
        "mask + output + lse, the mask being the BlockMask's int32 tile tables; longformer: its banded scores and "
        "probs). flex builds its BlockMask from the pattern's structure (attnviz.blockmask, no L² mask_mod "
        "evaluation), once per layer and length (cached: the measured forward reuses it). The longformer row "
        "is a native LongformerModel of the same shape with random weights; its null baseline is MiniLM's. "
        "dense and sdpa compute all L² pairs for any window (the mask only zeroes some), so they are measured "
        "once per L and repeated on each window's rows. Ratios are left empty where the net attention memory is "
        "under 1 MiB (below what page-level peaks resolve). Timings: one warm-up, then the median of "
        f"{repeats} timed run(s) (the first also records the peak), on a shared 2-core machine under load from other jobs: inflated, compare "
        "within one run."
    )
    cols = ["L", "window", "variant", "forward s", "× stock time", "attention MiB (net)", "dense / this (net)",
            "op MiB (in model)", "analytic MiB", "op / analytic", "dense op / this op", "error"]
    return write_results("attention_forward", "Windowed attention at long lengths: time and net attention memory",
                         rows, cols, notes)
