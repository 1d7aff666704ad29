"""Issue 9 benchmark: analytic vs measured attention memory, ratio per configuration.

Each row is one layer's attention op run for real by :func:`attnviz.costs.measure` (random inputs,
12 heads × 32 like MiniLM, batch 1, float32; a warm-up, then the net peak of the op: CPU
``VmHWM`` under :data:`attnviz.memory.MALLOC_ENV`, or CUDA ``max_memory_allocated``) next to
:func:`attnviz.costs.attention_cost`'s prediction for the same implementation, and the ratio
measured / predicted (target: within 1.2×). Configurations: full attention, sliding windows of
64 / 256 / 512, + global tokens, BigBird-style (window + globals + random blocks), Mistral-style
causal windows; implementations dense (eager masked softmax), sdpa (fused kernel + float mask),
native Longformer (transformers' chunked kernel) and FlexAttention where it compiles in time;
forward, and forward + backward where marked. For Longformer the row also shows what the
idealised ``sparse`` model (scores and probs of allowed pairs only) predicted, and how far off it is.
Each backend runs in its own subprocess.
"""

from __future__ import annotations

from .common import run_cell, write_results

HEADS, HEAD_DIM = 12, 32
MiB = 2**20


def _pattern(kind: str, window: int | None):
    from attnviz import AttentionPattern

    if kind == "full":
        return None
    if kind == "window":
        return AttentionPattern(window=window)
    if kind == "window+global":
        return AttentionPattern(window=window, global_positions=(0, 1))
    if kind == "bigbird":
        return AttentionPattern(window=window, global_positions=(0, 1), random_blocks=3, block_size=64)
    if kind == "causal":
        return AttentionPattern(window=window, causal=True)
    raise ValueError(kind)


def grid(quick: bool) -> dict[str, list[tuple]]:
    """{backend: [(kind, window, L, backward), ...]}"""
    lengths = (1024, 2048) if quick else (1024, 2048, 4096)
    dense, sdpa, longformer, flex = [], [], [], []
    for L in lengths:
        dense += [("full", None, L, False), ("window", 256, L, False), ("bigbird", 192, L, False),
                  ("causal", 256, L, False)]
        if L <= 2048:
            dense += [("window+global", 256, L, True), ("causal", 256, L, True)]
        sdpa += [("window", 256, L, False)]
        for w in (64, 256, 512):
            longformer += [("window", w, L, False), ("window+global", w, L, False)]
        longformer += [("window+global", 256, L, True)]
    flex += [("window", 256, 2048, False)]
    return {"dense": dense, "sdpa": sdpa, "longformer": longformer, "flex": [] if quick else flex}


def cell(backend: str, configs: list, repeats: int = 2) -> dict:
    """Runs in a fresh subprocess: every configuration of one backend."""
    import torch

    from attnviz.costs import attention_cost, measure

    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows = []
    for kind, window, L, backward in configs:
        pattern = _pattern(kind, window)
        try:
            m = measure(pattern, L, HEADS, HEAD_DIM, backend=backend, backward=backward, repeats=repeats)
        except Exception as err:  # noqa: BLE001 - a row says what failed
            rows.append({"kind": kind, "window": window, "L": L, "backward": backward,
                         "error": f"{type(err).__name__}: {err}"[:160]})
            continue
        row = {"kind": kind, "window": window, "L": L, "backward": backward, "peak": m.peak_bytes,
               "predicted": m.predicted_bytes, "seconds": m.seconds, "note": m.note, "device": m.device}
        if backend == "longformer":
            sparse = attention_cost(pattern, L, 1, HEADS, HEAD_DIM, implementation="sparse", backward=backward)
            # the old comparison: the idealised band, plus the q, k, v projections the Longformer op makes
            row["sparse_predicted"] = sparse.per_layer[0].op_peak_bytes(backward) + 3 * L * HEADS * HEAD_DIM * 4
        rows.append(row)
    return {"rows": rows}


def run(quick: bool = False):
    rows = []
    for backend, configs in grid(quick).items():
        if not configs:
            continue
        print(f"   {backend}: {len(configs)} configurations ...", flush=True)
        # memory peaks repeat exactly: one measured run after the warm-up is enough
        out = run_cell("benchmarks.memory_model", "cell", timeout=400 if backend == "flex" else 1500, backend=backend, configs=configs, repeats=1)
        if "error" in out:
            rows += [{"backend": backend, "configuration": f"{k} {w or ''}".strip(), "L": L,
                      "pass": "fwd+bwd" if b else "fwd", "error": out["error"][:160]} for k, w, L, b in configs]
            continue
        for r in out["rows"]:
            row = {"backend": backend, "configuration": f"{r['kind']} {r['window'] or ''}".strip(), "L": r["L"],
                   "pass": "fwd+bwd" if r["backward"] else "fwd"}
            if "error" in r:
                rows.append({**row, "error": r["error"]})
                continue
            measurable = r["peak"] is not None and r["peak"] >= MiB
            rows.append({
                **row,
                "measured MiB": None if r["peak"] is None else r["peak"] / MiB,
                "predicted MiB": r["predicted"] / MiB,
                "measured / predicted": r["peak"] / r["predicted"] if measurable else None,
                "idealised sparse MiB": r["sparse_predicted"] / MiB if "sparse_predicted" in r else None,
                "measured / sparse": r["peak"] / r["sparse_predicted"] if measurable and "sparse_predicted" in r
                else None,
                "op s": r["seconds"],
                "note": r["note"] or None,
            })
    ok = [r["measured / predicted"] for r in rows if r.get("measured / predicted") is not None]
    worst = max(ok, key=lambda x: max(x, 1 / x)) if ok else None
    notes = (
        f"One layer's attention op, {HEADS} heads × {HEAD_DIM}, batch 1, float32, measured with "
        "attnviz.costs.measure (net peak of the op; CPU: VmHWM with MALLOC_ENV) against attnviz.costs.attention_cost "
        "for the same implementation. 'window w' is Longformer's total width (w/2 each side); 'window+global' adds "
        "global tokens 0 and 1; 'bigbird' = window 192 + globals 0, 1 + 3 random blocks of 64; 'causal' = Mistral's "
        "sliding window. Dense and sdpa compute every L² pair whatever the window, so their rows cost the same for "
        "every pattern. Longformer rows: the native LongformerSelfAttention (its q/k/v projections included) vs "
        "attnviz's model of its chunked kernel; 'idealised sparse' is the earlier model (allowed pairs only + the "
        "projections). Ratios are left empty under 1 MiB (page resolution)."
        + (f" Worst measured / predicted: {worst:.3f} over {len(ok)} rows." if worst else "")
    )
    cols = ["backend", "configuration", "L", "pass", "measured MiB", "predicted MiB", "measured / predicted",
            "idealised sparse MiB", "measured / sparse", "op s", "note", "error"]
    return write_results("memory_model", "Analytic vs measured attention memory, per configuration", rows, cols, notes)
