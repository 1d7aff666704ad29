"""Issue 7 benchmark: pattern explorer, control change -> figure data ready.

For L in {512, 4096, 16384} and 6 / 12 / 24 layers, a :class:`attnviz.widgets.PatternExplorer`
(prefix prompt of 20 tokens, ``[CLS]`` global, window 64) has its window slider moved through
32 -> 64 -> 128 -> 256 -> ... in plain Python: each change reads the controls, computes the views
from the pattern's structure (``spread_pattern``, ``pooled_reasons``), updates both
``FigureWidget`` s in place and serialises the widget messages, exactly as in a kernel (only the
socket write is missing). Reported per cell, medians over the changes:

* ``change ms`` (wall) and ``change cpu ms`` (process CPU time: on a shared machine wall time
  also counts other processes);
* ``view ms``: :func:`attnviz.widgets.pattern_view` alone (the computation);
* ``payload MB``: both figures as plotly JSON (what a page or a notebook output carries);
* ``dense ms``: the dense path for the same reach, ``build_masks`` + ``spread`` (only where its
  ``layers * L * L`` bytes of masks fit in 512 MB), its ``structural ms`` counterpart
  ``spread_pattern``, and ``dense / structural``.

Rows at L = 16384 x 24 layers also move other controls: the layer shown, the seed with random
blocks on (new random tables every change), the global prompt, per-layer windows and the
placement (prefix / scattered every 64 / infix / suffix: the segment shapes change in number), and
the mask part (``attnviz.masks``: strided 32 / 64 / 128, summary columns every 64 / 128).
"""

from __future__ import annotations

import os
import statistics
import time

from .common import run_cell, write_results

LENGTHS = (512, 4096, 16384)
LAYERS = (6, 12, 24)
DENSE_BYTES = 512 * 2**20
TARGET_MS = 100


def _changes(control: str, layers: int) -> tuple[dict, list]:
    """Starting extra settings and the sequence of values for one control."""
    if control == "window":
        return {}, [32, 64, 128, 256, 16] * 2
    if control == "layer":
        return {}, [l % layers for l in (1, 5, 9, 13, 17, 3, 7, 11, 15, 19)]
    if control == "seed (random blocks on)":
        return {"random_blocks": 2, "block_size": 64}, list(range(1, 11))
    if control == "global prompt":
        return {}, [True, False] * 5
    if control == "placement":
        return {"every": 64, "at": 100}, ["scattered", "infix", "suffix", "prefix", "scattered"] * 2
    if control == "mask part":
        return {"parts": "strided:64"}, ["strided:128", "summary:64", "strided:32", "summary:128", "strided:64"] * 2
    if control == "per-layer windows":
        per = lambda a, b: ",".join(str(a if i < layers // 2 else b) for i in range(layers))
        return {}, [per(32, 128), per(64, 256), per(16, 512), per(128, 32), per(256, 64)] * 2
    raise ValueError(control)


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def cell(length: int, layers: int, controls: list, repeats: int = 1) -> dict:
    """Runs in a fresh subprocess: one (L, layers), every control given."""
    import plotly.io as pio
    import torch

    from attnviz import AttentionPattern, build_masks, spread, spread_pattern
    from attnviz.widgets import PatternExplorer, pattern_view

    out = {}
    for control in controls:
        start, values = _changes(control, layers)
        ex = PatternExplorer(text_len=length - 22, n_tokens=20, num_layers=layers, window=64, global_positions="0",
                             **start)
        assert ex.result.layout.length == length
        name = {"seed (random blocks on)": "seed", "global prompt": "global_prompt",
                "per-layer windows": "windows", "mask part": "parts"}.get(control, control)
        ex.set(**{name: values[-1]})  # warm-up: first calls fill caches (imports, plotly validators)
        wall, cpu = [], []
        for _ in range(repeats):
            for v in values:
                c, t = time.process_time(), time.perf_counter()
                ex.controls[name].value = ex.control_value(name, v)
                wall.append(1000 * (time.perf_counter() - t))
                cpu.append(1000 * (time.process_time() - c))
                assert ex.error is None, ex.error
        view = []
        for _ in range(3):
            t = time.perf_counter()
            pattern_view(ex.settings())
            view.append(1000 * (time.perf_counter() - t))
        payload = sum(len(pio.to_json(f, validate=False)) for f in ex.figures.values())
        out[control] = {"change_ms": statistics.median(wall), "change_cpu_ms": statistics.median(cpu),
                        "change_max_ms": max(wall), "view_ms": statistics.median(view),
                        "payload_mb": payload / 1e6}

    row = out.setdefault("window", {})
    pattern, layout = AttentionPattern(window=64, global_positions=(0,)), ex.result.layout
    structural = spread_pattern(pattern, layout, layers)            # warm-up
    row["structural_ms"] = _median_ms(lambda: spread_pattern(pattern, layout, layers), 5)
    if layers * length * length <= DENSE_BYTES:
        reach = spread(build_masks(pattern, layout, layers), layout.prompt_positions)   # warm-up
        assert torch.equal(reach.reached, structural.reached)
        row["dense_ms"] = _median_ms(lambda: spread(build_masks(pattern, layout, layers), layout.prompt_positions), 3)
    return out


def run(quick: bool = False) -> "os.PathLike":
    lengths = LENGTHS[:2] if quick else LENGTHS
    layer_counts = LAYERS[:1] if quick else LAYERS
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = []
    for L in lengths:
        for n in layer_counts:
            big = L == max(lengths) and n == max(layer_counts)
            controls = ["window"] + (["layer", "seed (random blocks on)", "global prompt", "per-layer windows",
                                               "placement", "mask part"] if big else [])
            res = run_cell("benchmarks.explorer_latency", "cell", timeout=900, memory_allocator=False, length=L, layers=n, controls=controls, repeats=1 if quick else 2)
            if "error" in res:
                rows.append({"L": L, "layers": n, "control": "window", "error": res["error"]})
                continue
            for control in controls:
                r = res[control]
                row = {"L": L, "layers": n, "control": control,
                       "change ms": round(r["change_ms"], 1), "change cpu ms": round(r["change_cpu_ms"], 1),
                       "worst ms": round(r["change_max_ms"], 1), "view ms": round(r["view_ms"], 1),
                       "payload MB": round(r["payload_mb"], 2)}
                if "structural_ms" in r:
                    row["structural ms"] = round(r["structural_ms"], 1)
                if "dense_ms" in r:
                    row["dense ms"] = round(r["dense_ms"], 1)
                    row["dense / structural"] = round(r["dense_ms"] / r["structural_ms"], 1)
                    row["dense / change"] = round(r["dense_ms"] / r["change_ms"], 1)
                rows.append(row)
            print(f"   L={L} layers={n}: " + ", ".join(f"{c} {res[c]['change_ms']:.0f} ms" for c in controls), flush=True)
    notes = (
        "Control change -> figure data ready, pattern explorer (prefix prompt of 20, [CLS] global, window 64), "
        "plain Python: controls read, views computed from the structure, both FigureWidgets updated in place and "
        "their messages serialised. Medians over 10 changes per repeat (worst: the slowest change). "
        f"Target: <= {TARGET_MS} ms at L=16384 x 24 layers, payload <= 2 MB. 'dense' = build_masks + spread for the "
        f"same reach (masks of layers*L*L bytes, run only up to {DENSE_BYTES >> 20} MB); 'structural' = spread_pattern; "
        "'dense / change' compares the dense computation alone with the whole structural update. "
        "'mask part' (attnviz.masks: strided 32 / 64 / 128, summary columns every 64 / 128) is above the target: "
        "the built-in parts are counted in closed form, the part's own pairs (L²/stride: 8-17 M at stride 32) one by "
        "one. "
        + (f"Load average at the start: {load:.1f} on {os.cpu_count()} cores (a shared machine: wall time includes "
           "waiting for other processes; the CPU column does not)." if load is not None else ""))
    columns = ["L", "layers", "control", "change ms", "change cpu ms", "worst ms", "view ms", "payload MB",
               "structural ms", "dense ms", "dense / structural", "dense / change"]
    columns += ["error"] if any("error" in r for r in rows) else []
    return write_results("explorer_latency", "Pattern explorer: control change -> figure data ready", rows, columns,
                         notes=notes)
