"""Issue 19 benchmark: what attnviz's ``mask_mod`` costs inside compiled FlexAttention.

One attention call, compiled ``flex_attention`` forward (CPU: torch has no CPU flex backward),
batch 1, 12 heads × 32, float32, L = 4096, window 512 + a 20-token global prefix prompt + global
``[CLS]`` (positions 0..20 global). Every variant runs on the same tiles (the tables are equal):

* ``attnviz``      — :func:`attnviz.blockmask.block_mask`: attnviz's tables and its ``mask_mod``
  (:meth:`attnviz.patterns.LayerRule.mask_fn`, the composed parts the pattern needs);
* ``tables+hand``  — attnviz's tables with the hand-written ``mask_mod`` swapped in;
* ``hand``         — ``create_block_mask`` of the hand-written
  ``(|q - k| <= 256) | (q < 21) | (k < 21)``;
* ``legacy``       — attnviz's tables with the ``mask_mod`` attnviz had before issue 19 (every
  part evaluated whatever the pattern uses: a modulo, two gathers, a random-block stand-in and
  ``ones_like`` / ``zeros_like``). It is a copy of the old ``patterns._parts``, kept here only to
  measure the before / after ratio side by side on the same machine.

Variants are timed in alternating rounds in one process (the machine is shared: alternation keeps
a burst of someone else's load from landing on one variant only); the median per variant is
reported with its ratio to ``hand``. Target: ``attnviz`` ≤ 1.15 × ``hand``.

    python -m benchmarks.flex_mask_op [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from .common import write_results

LENGTH, WINDOW, N_PROMPT, HEADS, HEAD_DIM = 4096, 512, 20, 12, 32
VARIANTS = ("attnviz", "tables+hand", "hand", "legacy")


def _legacy_mask_mod(is_global, window, dilation):
    """The pre-#19 closure (``patterns._parts`` + ``(local | glob | rnd) & ok``), for the ratio."""
    import torch

    w_t, d_t = torch.tensor(window), torch.tensor(dilation)

    def attnviz_windowed_mask(b, h, q_idx, kv_idx):
        diff = q_idx - kv_idx
        local = diff.abs() <= (w_t // 2) * d_t
        local = local & (diff % d_t == 0)
        glob = is_global[q_idx] | is_global[kv_idx]
        rnd = torch.zeros_like(local)
        ok = torch.ones_like(local)
        return (local | glob | rnd) & ok

    return attnviz_windowed_mask


def measure(length: int = LENGTH, window: int = WINDOW, rounds: int = 7, heads: int = HEADS,
            head_dim: int = HEAD_DIM) -> dict:
    """Median seconds per compiled flex forward for every variant (see the module doc)."""
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from attnviz import AttentionPattern, PromptPlacement
    from attnviz.blockmask import block_mask, tables_to_block_mask

    layout = PromptPlacement("prefix", n_tokens=N_PROMPT).layout(text_len=length - N_PROMPT - 2)
    pattern = AttentionPattern(window=window, global_prompt=True, global_positions=(0,))
    n_global = N_PROMPT + 1
    half = window // 2

    def hand(b, h, q, k):
        return ((q - k).abs() <= half) | (q < n_global) | (k < n_global)

    ours = block_mask(pattern, layout, 0)
    ref = create_block_mask(hand, None, None, length, length, device="cpu")
    for name in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices"):
        assert torch.equal(getattr(ours, name), getattr(ref, name)), f"tables differ: {name}"
    full, partial = _tables(ours)
    masks = {
        "attnviz": ours,
        "tables+hand": tables_to_block_mask(full, partial, hand, length),
        "hand": ref,
        "legacy": tables_to_block_mask(full, partial, _legacy_mask_mod(pattern.global_mask(layout), window, 1), length),
    }
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, heads, length, head_dim) for _ in range(3))
    compiled = torch.compile(flex_attention, dynamic=False)
    compile_s = {}
    with torch.no_grad():
        for name, bm in masks.items():
            t = time.perf_counter()
            compiled(q, k, v, block_mask=bm)
            compiled(q, k, v, block_mask=bm)
            compile_s[name] = time.perf_counter() - t
        times = {name: [] for name in masks}
        for _ in range(rounds):
            for name, bm in masks.items():
                t = time.perf_counter()
                compiled(q, k, v, block_mask=bm)
                times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    density = float(partial.float().mean() + full.float().mean())
    return {"length": length, "window": window, "heads": heads, "head_dim": head_dim, "rounds": rounds,
            "tiles_nonempty": density, "median_s": med, "min_s": {n: min(ts) for n, ts in times.items()},
            "first_two_calls_s": compile_s, "torch_threads": torch.get_num_threads()}


def _tables(bm):
    """bool ``(nt, nt)`` full and partial tables of a one-batch BlockMask."""
    import torch

    nt = bm.kv_indices.shape[-1]
    out = []
    for num, idx in ((bm.full_kv_num_blocks, bm.full_kv_indices), (bm.kv_num_blocks, bm.kv_indices)):
        dense = torch.zeros(nt, nt + 1, dtype=torch.bool)
        rows = torch.arange(nt)[:, None].expand(nt, nt)
        cols = torch.where(torch.arange(nt)[None, :] < num[0, 0][:, None], idx[0, 0].long(), nt)
        dense[rows, cols] = True
        out.append(dense[:, :nt])
    return out[0], out[1]


def run(quick: bool = False, out_name: str = "flex_mask_op"):
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(tempfile.gettempdir(), "attnviz-inductor"))
    r = measure(length=1024 if quick else LENGTH, rounds=3 if quick else 9)
    hand = r["median_s"]["hand"]
    rows = [{"variant": name, "median ms": 1e3 * r["median_s"][name], "min ms": 1e3 * r["min_s"][name],
             "ratio to hand": r["median_s"][name] / hand, "first two calls s": r["first_two_calls_s"][name]}
            for name in VARIANTS]
    notes = (f"Compiled flex_attention forward, batch 1, {r['heads']} heads x {r['head_dim']}, float32, "
             f"L={r['length']}, window {r['window']} + global [CLS] + {N_PROMPT} global prefix-prompt tokens; "
             f"{100 * r['tiles_nonempty']:.1f} % of the 128x128 tiles non-empty, identical tables in every variant. "
             f"Median of {r['rounds']} alternating rounds, {r['torch_threads']} torch threads. Target: attnviz <= 1.15x hand. "
             f"'legacy' is the mask_mod before issue 19 (all parts on every cell).")
    return write_results(out_name, "Flex mask_mod cost: attnviz vs hand-written on the same tiles (CPU)", rows,
                         ["variant", "median ms", "min ms", "ratio to hand", "first two calls s"], notes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="L=1024, 3 rounds (a smoke run)")
    args = parser.parse_args()
    print(run(quick=args.quick, out_name="flex_mask_op_quick" if args.quick else "flex_mask_op"))
