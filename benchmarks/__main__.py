"""python -m benchmarks [NAME ...] — run benchmarks (all by default) and write results/."""

import argparse
import importlib
import time

BENCHMARKS = {
    "attention_forward": "Forward time and net attention memory: stock sdpa vs dense-masked vs flex vs native Longformer",
    "long_attention": "Dense vs sdpa vs flex vs native Longformer, forward and forward+backward, L up to 16k (2-layer slice)",
    "long_capture": "Attention maps of long inputs: tiled capture vs eager hooks, L = 4k / 16k / 64k, peak memory vs attnviz.costs",
    "flex_mask_op": "FlexAttention mask cost on CPU: attnviz mask_mod vs a hand-written one on the same tiles (L=4096)",
    "explorer_latency": "Pattern explorer: control change -> figure data ready, L up to 16384 x 24 layers, vs the dense path",
    "training_step": "Prompt-tuning training step: attnviz vs PEFT (identical batches), and reach-aware pruning's speed-up",
    "memory_model": "Analytic vs measured attention memory per configuration (dense, windows, globals, BigBird, causal; Longformer's kernel)",
    "notebook_times": "Seconds to execute each notebooks/*.ipynb top to bottom (ATTNVIZ_FAST=1, optionally full)",
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller grid, for a smoke run")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    for name in args.names or list(BENCHMARKS):
        print(f"== {name}: {BENCHMARKS[name]}", flush=True)
        t = time.perf_counter()
        md = importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        print(f"   wrote {md} in {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
