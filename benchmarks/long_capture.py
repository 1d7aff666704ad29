"""Attention maps of long inputs: the tiled capture (``capture_attention(pattern=...)``) against
today's eager-hook path and against :func:`attnviz.costs.capture_cost`.

The embedded MiniLM (6 layers, 12 heads × 32) with its position table extended to ``L``, a 20-token
prefix prompt with global attention plus global [CLS], window 256 (Longformer semantics), maps
pooled to blocks of 64 with the prompt's rows and columns exact. Each cell runs in a fresh process:
first the model's own forward with a *null* attention (output = values: the memory of embeddings,
projections and FFN without any attention), then the capture. Reported: net peaks of each (VmHWM,
:func:`attnviz.memory.peak_memory`), the capture's peak above the null forward (the target:
≤ 200 MB at 4k, ≤ 1 GB at 64k), the analytic :class:`attnviz.costs.CaptureCost` and wall times.
At 4k the eager path (dense masks + forward hooks, the way every model was captured before) runs
too, and the two maps are compared.

    python -m benchmarks.long_capture [--quick]
"""

from __future__ import annotations

import argparse
import time

from .common import run_cell, write_results

NAME = "long_capture"
LENGTHS = (4096, 16384, 65536)
WINDOW, N_PROMPT, POOL = 256, 20, 64


def _null_attention(module, query, key, value, attention_mask, **kwargs):
    return value.transpose(1, 2).contiguous(), None


def _no_mask(*args, **kwargs):
    return None


def cell(length: int, eager: bool = False, threads: int = 2) -> dict:
    """One length in this process: null forward, tiled capture, optionally the eager-hook capture."""
    import torch
    from transformers import AttentionInterface, AttentionMaskInterface

    from attnviz import AttentionPattern, PromptPlacement, capture_attention, with_pattern
    from attnviz.costs import capture_cost
    from attnviz.memory import peak_memory
    from attnviz.models import extend_positions, load_model

    torch.set_num_threads(threads)
    model, tokenizer, _ = load_model("default")
    if length > model.config.max_position_embeddings:
        extend_positions(model, length)
    model.eval()
    layout = PromptPlacement("prefix", n_tokens=N_PROMPT).layout(text_len=length - N_PROMPT - 2)
    pattern = AttentionPattern(window=WINDOW, global_positions=(0,), global_prompt=True)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (1, length), generator=g)
    ids[0, 0], ids[0, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    AttentionInterface.register("bench_null", _null_attention)
    AttentionMaskInterface.register("bench_null", _no_mask)
    model.set_attn_implementation("bench_null")
    with peak_memory() as null, torch.no_grad():
        t = time.perf_counter()
        model(**inputs)
        null_s = time.perf_counter() - t
    model.set_attn_implementation("eager")

    with peak_memory() as tiled:
        t = time.perf_counter()
        maps = capture_attention(model, inputs, pool=POOL, keep=layout, pattern=pattern, layout=layout)
        tiled_s = time.perf_counter() - t
    cost = capture_cost(pattern, layout, model.config.num_hidden_layers, num_heads=model.config.num_attention_heads,
                        head_dim=model.config.hidden_size // model.config.num_attention_heads,
                        units=maps.values.shape[-1])
    row = {"L": length, "units": maps.values.shape[-1], "result MiB": maps.nbytes / 2**20,
           "null forward MiB": null.peak_mib, "null forward s": null_s,
           "tiled capture MiB": tiled.peak_mib, "tiled capture s": tiled_s,
           "tiled above null MiB": None if tiled.peak_mib is None else tiled.peak_mib - null.peak_mib,
           "analytic MiB": cost.peak_bytes / 2**20, "computed pairs (M)": cost.computed_pairs / 1e6}
    if eager:
        del maps
        ref_maps = None
        with peak_memory() as dense:
            t = time.perf_counter()
            with with_pattern(model, pattern, layout, backend="dense"):
                ref_maps = capture_attention(model, inputs, pool=POOL, keep=layout)
            dense_s = time.perf_counter() - t
        again = capture_attention(model, inputs, pool=POOL, keep=layout, pattern=pattern, layout=layout)
        row.update({"eager-hook capture MiB": dense.peak_mib, "eager-hook capture s": dense_s,
                    "max |tiled - eager|": float((again.values - ref_maps.values).abs().max())})
    return row


def run(quick: bool = False, lengths=None, threads: int = 1) -> object:
    lengths = lengths or ((1024, 4096) if quick else LENGTHS)
    rows = []
    for length in lengths:
        print(f"   L={length} ...", flush=True)
        row = run_cell("benchmarks.long_capture", "cell", timeout=1800, length=length, eager=length <= 4096,
                       threads=threads)
        row.setdefault("L", length)
        rows.append(row)
        print(f"   {row}", flush=True)
    columns = ["L", "units", "result MiB", "null forward MiB", "tiled capture MiB", "tiled above null MiB",
               "analytic MiB", "eager-hook capture MiB", "null forward s", "tiled capture s", "eager-hook capture s",
               "computed pairs (M)", "max |tiled - eager|", "error"]
    notes = (f"Embedded MiniLM (6 layers, 12 heads x 32, positions extended to L), window {WINDOW} + global [CLS] + "
             f"{N_PROMPT}-token global prefix prompt, maps pooled to blocks of {POOL} with the prompt's rows and "
             f"columns exact, float32, batch 1, {threads} torch thread(s) (on a shared 2-core machine one thread gives steadier times). Net peaks (VmHWM) of a fresh process per length: the "
             f"model's forward with a null attention first, then the tiled capture (capture_attention(pattern=...)); "
             f"'tiled above null' is the capture's peak minus the null forward's; 'analytic' is "
             f"attnviz.costs.capture_cost(...).peak_bytes (tile working set + result). At L <= 4096 the eager-hook "
             f"path (with_pattern(backend='dense') + forward hooks, materialising each layer's (12, L, L)) runs too and "
             f"the maps are compared. Timings on a shared 2-core machine.")
    return write_results(NAME, "Attention maps at long lengths: tiled capture vs eager hooks", rows, columns, notes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lengths", type=int, nargs="*")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(run(quick=args.quick, lengths=args.lengths, threads=args.threads))
