"""Issue #15's studies, in priority order, each a resumable `attnviz sweep` (run_sweep) folder.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/evidence_studies.py [--out sweeps/issue15] [--only NAME]

One torch thread (torch.set_num_threads(1)); the frozen MiniLM, BBC News, 20-token prompt,
30 steps of 8, 240 training / 200 held-out articles, seeds 0, 1, 2. Inputs are 176 tokens:
[CLS] + 96 filler ("the") + up to 78 article tokens + [SEP], the article placed by the "position"
variant (1.0 = after all the filler: evidence far; under window 32 [CLS] sees 6 x 16 = 96 positions,
so nothing of the article reaches it without a global prompt). The studies (same settings, so
the folders can be read together):

  far        windows 32, 128 x head only / prefix prompt / prefix + global, position 1.0
  placement  window 128 x suffix, scattered x global off / on, position 1.0 (prefix: from "far")
  schedules  per-layer windows increasing / uniform / decreasing at equal total width (6 x 64),
             prefix + global prompt, position 1.0
  position   "far" extended with positions 0.0 and 0.5 (the evidence-position curve)

Each equals an `attnviz sweep` command (printed with --commands).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

COMMON = dict(task="documents", variant="position", n_tokens=20, max_length=176, filler_tokens=96, steps=30,
              batch_size=8, train_size=240, test_size=200, seed=0, influence_examples=8, seeds=(0, 1, 2))
INCREASING = (16, 32, 48, 80, 96, 112)
STUDIES = [
    ("far", "far", dict(windows=(32, 128), global_prompt=(False, True), placements=("prefix",),
                        references=("head_only",), positions=(1.0,))),
    ("placement", "placement", dict(windows=(128,), global_prompt=(False, True), placements=("suffix", "scattered"),
                                    references=(), positions=(1.0,))),
    ("schedules", "schedules", dict(windows=(INCREASING, 64, tuple(reversed(INCREASING))), global_prompt=(True,),
                                    placements=("prefix",), references=(), positions=(1.0,))),
    ("position0", "far", dict(windows=(32, 128), global_prompt=(False, True), placements=("prefix",),
                              references=("head_only",), positions=(1.0, 0.0))),
    ("position", "far", dict(windows=(32, 128), global_prompt=(False, True), placements=("prefix",),
                             references=("head_only",), positions=(1.0, 0.0, 0.5))),
]


def command(name: str, folder: str, kw: dict, out: str) -> str:
    cfg = dict(COMMON, **kw)
    w = ",".join("-".join(map(str, x)) if isinstance(x, tuple) else str(x) for x in cfg["windows"])
    onoff = ",".join("on" if g else "off" for g in cfg["global_prompt"])
    return (f"OMP_NUM_THREADS=1 nice -n 10 attnviz sweep --threads 1 --task documents --variant position "
            f"--positions {','.join(f'{p:g}' for p in cfg['positions'])} --window {w} --global-prompt {onoff} "
            f"--placement {','.join(cfg['placements'])} --references {','.join(cfg['references']) or 'none'} "
            f"--max-length {cfg['max_length']} --filler-tokens {cfg['filler_tokens']} --steps {cfg['steps']} "
            f"--train-size {cfg['train_size']} --test-size {cfg['test_size']} --seeds {','.join(map(str, cfg['seeds']))} "
            f"--out {out}/{folder}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="sweeps/issue15")
    p.add_argument("--only", action="append", help="run only these studies (names above)")
    p.add_argument("--commands", action="store_true", help="print the equivalent attnviz sweep commands and exit")
    args = p.parse_args(argv)
    if args.commands:
        for name, folder, kw in STUDIES:
            print(f"{name}: {command(name, folder, kw, args.out)}")
        return 0
    import torch

    torch.set_num_threads(1)
    from attnviz.studies.sweep import SweepConfig, run_sweep

    for name, folder, kw in STUDIES:
        if args.only and name not in args.only:
            continue
        t0 = time.time()
        print(f"== {name}: {command(name, folder, kw, args.out)}", flush=True)
        result = run_sweep(SweepConfig(**dict(COMMON, **kw)), os.path.join(args.out, folder), progress=False)
        for r in result.rows:
            print(f"   {r['key']:<40} {r['accuracy']:.3f} [{r['low']:.3f}, {r['high']:.3f}] "
                  f"infl {r.get('influence_cls')}", flush=True)
        print(f"== {name} done in {(time.time() - t0) / 60:.1f} min, trained {len(result.trained)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
