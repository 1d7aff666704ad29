"""attnviz.costs: structural pair counts equal the dense masks, hand-worked costs, and a real run
whose net peak memory the model predicts."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement, build_masks
from attnviz.costs import (
    allowed_pairs, attention_cost, block_pairs, keys_per_query, max_length_within, measure,
)
from attnviz.memory import MALLOC_ENV, cpu_peak_supported

MiB = 2**20
ROOT = Path(__file__).resolve().parents[1]


# ---- hand-worked pair counts -------------------------------------------------------------------
def test_bidirectional_window_by_hand():
    # L=10, window 4 = 2 each side: rows 0,1 and 8,9 are cut by the edges (3, 4 keys), the rest see 5.
    p = AttentionPattern(window=4)
    assert keys_per_query(p, 10, 0).tolist() == [3, 4, 5, 5, 5, 5, 5, 5, 4, 3]
    assert allowed_pairs(p, 10, 0) == 10 * 5 - 2 * (2 + 1) == 44


def test_causal_window_by_hand():
    # Mistral's sliding_window=3 over L=6: q sees q-2..q, so rows 0, 1 see 1, 2 keys.
    p = AttentionPattern(window=3, causal=True)
    assert keys_per_query(p, 6, 0).tolist() == [1, 2, 3, 3, 3, 3]
    assert allowed_pairs(p, 6, 0) == 6 * 3 - 3 * 2 // 2 == 15


def test_dilated_window_by_hand():
    # window 4, dilation 2: keys q-4, q-2, q, q+2, q+4 that exist in [0, 10).
    p = AttentionPattern(window=4, dilation=2)
    assert keys_per_query(p, 10, 0).tolist() == [3, 3, 4, 4, 5, 5, 4, 4, 3, 3]
    assert allowed_pairs(p, 10, 0) == 38


def test_global_token_by_hand():
    # window 2 (one each side) + global 0: row 0 sees all 10; rows 2..9 also see key 0 (rows 1 has it already).
    p = AttentionPattern(window=2, global_positions=(0,))
    assert keys_per_query(p, 10, 0).tolist() == [10, 3, 4, 4, 4, 4, 4, 4, 4, 3]
    assert allowed_pairs(p, 10, 0) == 44
    # causal window 3 + global 0: the global row only sees itself; rows 3.. add key 0 to their 3.
    c = AttentionPattern(window=3, causal=True, global_positions=(0,))
    assert keys_per_query(c, 6, 0).tolist() == [1, 2, 3, 4, 4, 4]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_bigbird_by_hand(seed):
    # L=8, blocks of 2, window 2: the window gives 8*3 - 2 = 22 pairs. Each query block's one random
    # key block is a non-neighbour block, which never meets a window of half-width 1: +2 keys per row.
    p = AttentionPattern(window=2, random_blocks=1, block_size=2, seed=seed)
    assert allowed_pairs(p, 8, 0) == 22 + 8 * 2 == 38


def test_full_attention_is_l_squared():
    assert allowed_pairs(AttentionPattern(), 37, 0) == 37 * 37
    assert allowed_pairs(AttentionPattern(causal=True), 37, 0) == 37 * 38 // 2
    assert attention_cost(None, 37, 1, 1, 8).pairs == 37 * 37


def test_global_prompt_counts_layout_prompt_positions():
    layout = PromptPlacement("prefix", n_tokens=3).layout(20)    # [CLS] P P P t0..t19 [SEP]: L=25
    p = AttentionPattern(window=2, global_prompt=True)
    # prompt rows 1-3 see all 25; [CLS] sees {0,1} ∪ {1,2,3}; t0 (4) sees {3,4,5} ∪ {1,2,3};
    # t1..t19 (5..23) see 3 window keys + 3 prompt keys; [SEP] (24) sees {23,24} + 3 prompt keys.
    rows = [4] + [25] * 3 + [5] + [6] * 19 + [5]
    assert keys_per_query(p, layout, 0).tolist() == rows
    assert allowed_pairs(p, layout, 0) == 203 == int(build_masks(p, layout, 1).sum())


# ---- structural counts equal the dense reference -----------------------------------------------
def _random_pattern(rng: random.Random):
    causal = rng.random() < 0.4
    layers = rng.randint(1, 3)
    L = rng.randint(1, 120)

    def win():
        w = rng.choice([None, 1, 2, 3, 4, 6, 9, 16, 40, 130, 300])
        return w if w is None or causal or w % 2 == 0 else w + 1

    window = tuple(win() for _ in range(layers)) if rng.random() < 0.5 else win()
    dilation = tuple(rng.choice([1, 2, 3, 5]) for _ in range(layers)) if rng.random() < 0.3 else rng.choice([1, 1, 2, 3])
    if rng.random() < 0.4:
        text = rng.randint(0, 100)
        kind = rng.choice(["prefix", "suffix", "infix", "scattered", "start"])
        kw = {"at": rng.randint(0, text)} if kind == "infix" else {"every": rng.randint(1, 9)} if kind == "scattered" else {}
        layout = PromptPlacement(kind, n_tokens=rng.randint(1, 6), **kw).layout(text, cls=not causal, sep=not causal)
    else:
        layout = L
    length = layout if isinstance(layout, int) else layout.length
    random_blocks = rng.choice([0, 0, 1, 2, 3])
    pattern = AttentionPattern(
        window=window, causal=causal, dilation=dilation,
        global_positions=tuple(sorted({rng.randrange(length) for _ in range(rng.randint(0, 4))})),
        global_prompt=rng.random() < 0.3,
        random_blocks=random_blocks, block_size=rng.choice([1, 2, 3, 7, 16]) if random_blocks else None,
        seed=rng.randint(0, 9),
    )
    return pattern, layout, layers


@pytest.mark.parametrize("seed", range(4))
def test_structural_counts_equal_dense_masks(seed):
    rng = random.Random(seed)
    for _ in range(50):
        pattern, layout, layers = _random_pattern(rng)
        masks = build_masks(pattern, layout, layers)
        cost = attention_cost(pattern, layout, layers, num_heads=1, head_dim=1, implementation="sparse")
        assert cost.pairs == int(masks.sum()), pattern
        for layer in range(layers):
            assert torch.equal(keys_per_query(pattern, layout, layer), masks[layer].sum(-1)), (pattern, layer)
            assert cost.per_layer[layer].pairs == int(masks[layer].sum())
            # block-sparse tiles: the (nt, nt) tiles that hold an allowed pair, times their sizes
            T = rng.choice([1, 4, 5, 16, 128])
            L = masks.shape[-1]
            nt = -(-L // T)
            padded = torch.zeros(nt * T, nt * T, dtype=torch.bool)
            padded[:L, :L] = masks[layer]
            tiles = padded.view(nt, T, nt, T).any(3).any(1)
            size = torch.clamp(torch.arange(1, nt + 1) * T, max=L) - torch.arange(nt) * T
            assert block_pairs(pattern, layout, layer, T) == int((tiles * size[:, None] * size[None, :]).sum()), (pattern, T)


def test_block_pairs_match_flex_block_mask():
    from torch.nn.attention.flex_attention import create_block_mask
    from attnviz.patterns import mask_mod

    cases = [(AttentionPattern(window=40, global_positions=(3,)), 300, 32),
             (AttentionPattern(window=9, causal=True, dilation=3, random_blocks=1, block_size=24), 256, 16)]
    for pattern, L, T in cases:
        bm = create_block_mask(mask_mod(pattern, L, 0), B=None, H=None, Q_LEN=L, KV_LEN=L, device="cpu", BLOCK_SIZE=T)
        tiles = bm.to_dense()[0, 0].to(torch.int64)
        nt = -(-L // T)
        size = torch.clamp(torch.arange(1, nt + 1) * T, max=L) - torch.arange(nt) * T
        assert block_pairs(pattern, L, 0, T) == int((tiles * size[:, None] * size[None, :]).sum())


def test_long_input_counts_without_masks():
    # 64k tokens: (L, L) masks would be 4 GiB; the count is closed form away from the edges.
    L, w = 65_536, 512
    assert allowed_pairs(AttentionPattern(window=w), L, 0) == L * (w + 1) - 2 * sum(range(1, w // 2 + 1))
    assert allowed_pairs(AttentionPattern(window=w, causal=True), L, 0) == L * w - w * (w - 1) // 2


# ---- the cost model ----------------------------------------------------------------------------
def _numbers(cost):
    return [(c.pairs, c.computed_pairs, c.flops_forward, c.flops_backward, c.probs_bytes, c.kv_bytes,
             c.mask_bytes, c.saved_bytes, c.forward_peak_bytes, c.backward_peak_bytes) for c in cost.per_layer]


@pytest.mark.parametrize("implementation", ["dense", "sparse", "sdpa", "flex"])
def test_window_wider_than_sequence_costs_as_full(implementation):
    kw = dict(num_layers=1, num_heads=2, head_dim=8, implementation=implementation, backward=True)
    L = 50
    full_causal = attention_cost(AttentionPattern(causal=True), L, **kw)
    assert _numbers(attention_cost(AttentionPattern(window=L + 5, causal=True), L, **kw)) == _numbers(full_causal)
    full = attention_cost(AttentionPattern(), L, **kw)
    assert _numbers(attention_cost(AttentionPattern(window=2 * L), L, **kw)) == _numbers(full)
    # a bidirectional window is the total width: w = L + 2 reaches L/2 + 1 each side, not everything
    assert attention_cost(AttentionPattern(window=L + 2), L, **kw).pairs < full.pairs


def test_flops_by_hand():
    # L=10, window 4: 44 allowed pairs; B=2, H=3, d=8.
    kw = dict(num_layers=1, num_heads=3, head_dim=8, batch=2)
    sparse = attention_cost(AttentionPattern(window=4), 10, implementation="sparse", **kw)
    assert sparse.flops_forward == 4 * 2 * 3 * 8 * 44 == 8448
    assert sparse.flops_backward == 21120 == 2.5 * sparse.flops_forward
    assert sparse.flops == 8448 and attention_cost(AttentionPattern(window=4), 10, implementation="sparse",
                                                   backward=True, **kw).flops == 8448 + 21120
    dense = attention_cost(AttentionPattern(window=4), 10, implementation="dense", **kw)
    assert dense.pairs == 44 and dense.computed_pairs == 100       # a dense kernel computes masked pairs too
    assert dense.flops_forward == 4 * 2 * 3 * 8 * 100
    assert dense.flops_backward == 2.5 * dense.flops_forward


def test_memory_by_hand():
    # fp32, B=1, H=16, d=32, L=256: S = 16*256*256*4 = 4 MiB, out O = 0.5 MiB, mask = 0.25 MiB.
    dense = attention_cost(AttentionPattern(window=64), 256, 1, 16, 32)
    layer = dense.per_layer[0]
    assert layer.probs_bytes == 4 * MiB and layer.mask_bytes == MiB // 4
    assert dense.peak_bytes == layer.op_peak_bytes() == (0.25 + 8) * MiB           # mask + scores + probs
    assert layer.op_peak_bytes(backward=True) == (12 + 1.5) * MiB                 # probs, grads; mask gone
    # inference keeps nothing for a backward: two layers peak like one
    assert attention_cost(AttentionPattern(window=64), 256, 2, 16, 32).peak_bytes == (0.25 + 8) * MiB
    two = attention_cost(AttentionPattern(window=64), 256, 2, 16, 32, backward=True)
    assert two.peak_bytes == (2 * 4 + 2 * 4 + 1.5) * MiB                        # both layers' probs + backward
    assert two.probs_bytes == 8 * MiB
    # KV cache: 2 * B * H_kv * L * d * bytes per layer; grouped-query attention with 4 KV heads, bf16
    gqa = attention_cost(None, 256, 3, 16, 32, num_kv_heads=4, dtype="bfloat16")
    assert gqa.kv_bytes == 3 * 2 * 4 * 256 * 32 * 2
    # sparse stores only the allowed pairs; fused kernels store none
    sparse = attention_cost(AttentionPattern(window=4), 10, 1, 3, 8, batch=2, implementation="sparse", dtype="float16")
    assert sparse.probs_bytes == 2 * 3 * 44 * 2 and sparse.mask_bytes == 0
    sdpa = attention_cost(AttentionPattern(window=64), 256, 1, 16, 32, implementation="sdpa")
    assert sdpa.probs_bytes == 0 and sdpa.peak_bytes == MiB // 4 + MiB // 2 + 16 * 256 * 4


def test_per_layer_windows_sum():
    p = AttentionPattern(window=(4, None, 2))
    cost = attention_cost(p, 10, 3, num_heads=2, head_dim=4, implementation="sparse")
    assert [c.pairs for c in cost.per_layer] == [44, 100, 28]
    assert [c.window for c in cost.per_layer] == [4, None, 2]
    assert cost.pairs == 172 and cost.probs_bytes == 2 * 4 * 172
    assert cost.flops_forward == sum(c.flops_forward for c in cost.per_layer) == 4 * 2 * 4 * 172
    assert cost.density == pytest.approx(172 / 300)


def test_max_length_within():
    # dense fp32, H=16: L² * 4 (mask) + 2 * 16 * L² * 4 (scores, probs) = 132 L² <= 1 GiB  ->  L = 2852
    kw = dict(num_heads=16, head_dim=64)
    L = max_length_within(2**30, **kw)
    assert L == 2852
    assert attention_cost(None, L, 1, **kw).peak_bytes <= 2**30 < attention_cost(None, L + 1, 1, **kw).peak_bytes
    # a sliding window stored sparsely goes much further; training (backward) less far
    window = AttentionPattern(window=256)
    Ls = max_length_within(2**30, **kw, implementation="sparse", pattern=window)
    assert Ls > 10 * L
    assert attention_cost(window, Ls, 1, **kw, implementation="sparse").peak_bytes <= 2**30
    assert attention_cost(window, Ls + 1, 1, **kw, implementation="sparse").peak_bytes > 2**30
    assert max_length_within(2**30, **kw, backward=True, num_layers=4) < L
    assert max_length_within(10, **kw) == 0
    assert max_length_within(2**40, **kw, limit=5000) == 5000


# ---- bad input ---------------------------------------------------------------------------------
def test_bad_input_is_named():
    p = AttentionPattern(window=4)
    for L in (0, -3):
        with pytest.raises(ValueError, match=f"length must be >= 1, got {L}"):
            attention_cost(p, L, 1, 1, 8)
    with pytest.raises(ValueError, match="unknown dtype 'float64'; allowed: float32, float16, bfloat16"):
        attention_cost(p, 10, 1, 1, 8, dtype="float64")
    with pytest.raises(ValueError, match="unknown dtype"):
        attention_cost(p, 10, 1, 1, 8, dtype=torch.int8)
    with pytest.raises(ValueError, match="unknown implementation 'banded'; allowed: dense, sparse, sdpa, flex"):
        attention_cost(p, 10, 1, 1, 8, implementation="banded")
    with pytest.raises(ValueError, match="num_heads must be an int >= 1, got 0"):
        attention_cost(p, 10, 1, 0, 8)
    with pytest.raises(ValueError, match="num_kv_heads=3 must divide num_heads=8"):
        attention_cost(p, 10, 1, 8, 8, num_kv_heads=3)
    with pytest.raises(ValueError, match="per-layer settings for 2 layers but the model has 3"):
        attention_cost(AttentionPattern(window=(2, 4)), 10, 3, 1, 8)
    with pytest.raises(ValueError, match="unknown backend 'xformers'; allowed: dense, sdpa, flex"):
        measure(p, 10, 1, 8, backend="xformers")
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        measure(p, 10, 1, 8, dtype="fp8")
    with pytest.raises(ValueError, match="length must be >= 1, got 0"):
        measure(p, 0, 1, 8)
    with pytest.raises(ValueError, match="layer must be an int >= 0, got -1"):
        measure(p, 10, 1, 8, layer=-1)
    with pytest.raises(ValueError, match="layer 2 is outside the pattern's layers"):
        measure(AttentionPattern(window=(2, 4)), 10, 1, 8, layer=2)
    with pytest.raises(ValueError, match="budget_bytes must be an int >= 0"):
        max_length_within(-1, num_heads=1, head_dim=8)
    with pytest.raises(ValueError, match="unknown implementation 'eager'"):
        max_length_within(2**20, num_heads=1, head_dim=8, implementation="eager")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU-only refusal")
def test_flex_backward_on_cpu_is_refused():
    with pytest.raises(ValueError, match="FlexAttention has no backward on CPU"):
        measure(AttentionPattern(window=4), 64, 1, 8, backend="flex", backward=True, device="cpu")


# ---- a real run --------------------------------------------------------------------------------
SCRIPT = """
import json
from attnviz import AttentionPattern
from attnviz.costs import measure
out = []
for backend, pattern, backward in [("dense", AttentionPattern(), False),
                                   ("dense", AttentionPattern(window=64, global_positions=(0,)), False),
                                   ("dense", AttentionPattern(window=32, causal=True), True),
                                   ("sdpa", AttentionPattern(window=64), False)]:
    m = measure(pattern, 256, 16, 32, backend=backend, backward=backward, repeats=2)
    out.append(dict(backend=backend, backward=backward, peak=m.peak_bytes, predicted=m.predicted_bytes,
                    ratio=m.ratio, seconds=m.seconds, note=m.note))
print("@@" + json.dumps(out))
"""


@pytest.mark.skipif(not cpu_peak_supported(), reason="needs Linux /proc/self/clear_refs")
def test_measured_peak_matches_prediction_on_cpu():
    env = dict(os.environ, **MALLOC_ENV)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(next(line[2:] for line in proc.stdout.splitlines() if line.startswith("@@")))
    dense_fwd, windowed_fwd, causal_bwd, sdpa = rows
    # L=256, H=16, d=32, fp32: mask 0.25 MiB + scores 4 MiB + probs 4 MiB
    assert dense_fwd["predicted"] == windowed_fwd["predicted"] == 8.25 * MiB
    assert causal_bwd["predicted"] == 13.5 * MiB
    for row in (dense_fwd, windowed_fwd, causal_bwd):
        assert 1 / 1.2 <= row["ratio"] <= 1.2, row
        assert row["seconds"] > 0 and row["note"] == ""
    # the fused kernel never holds (B, H, L, L): far below the two 4 MiB tensors of the dense op
    assert sdpa["peak"] < 2 * MiB and sdpa["predicted"] < 1 * MiB


@pytest.mark.gpu
def test_measure_on_cuda():
    dense = measure(AttentionPattern(window=128), 2048, 8, 64, backend="dense", device="cuda")
    assert 1 / 1.2 <= dense.ratio <= 1.2, (dense.peak_bytes, dense.predicted_bytes)
    flex = measure(AttentionPattern(window=128), 2048, 8, 64, backend="flex", backward=True, device="cuda")
    assert flex.peak_bytes < dense.predicted.probs_bytes / 4
    lf = measure(AttentionPattern(window=128, global_positions=(0,)), 2048, 8, 64, backend="longformer", device="cuda")
    assert 1 / 1.2 <= lf.ratio <= 1.2, (lf.peak_bytes, lf.predicted_bytes)


# ---- hand-worked: L=8, window 4 ----------------------------------------------------------------
def test_l8_window4_by_hand():
    # bidirectional window 4 = 2 each side over L=8: rows 0, 7 see 3 keys, rows 1, 6 see 4, rows 2..5 see 5.
    p = AttentionPattern(window=4)
    assert keys_per_query(p, 8, 0).tolist() == [3, 4, 5, 5, 5, 5, 4, 3]
    assert allowed_pairs(p, 8, 0) == 34 == int(build_masks(p, 8, 1).sum())
    # + global token 0: row 0 sees all 8 (+5), keys 0 is new for rows 3..7 (+5): 44
    assert allowed_pairs(AttentionPattern(window=4, global_positions=(0,)), 8, 0) == 44
    # causal window 4 (Mistral): q sees q-3..q: 1+2+3+4*5 = 26; the L² dense kernel computes all 64
    assert allowed_pairs(AttentionPattern(window=4, causal=True), 8, 0) == 26
    kw = dict(num_layers=2, num_heads=2, head_dim=4, batch=3)
    sparse = attention_cost(p, 8, implementation="sparse", **kw)
    assert sparse.flops_forward == 2 * 4 * 3 * 2 * 4 * 34            # 2 layers · 4·B·H·d · pairs = 6528
    assert attention_cost(p, 8, implementation="sparse", backward=True, **kw).flops == 6528 * 3.5
    assert attention_cost(p, 8, implementation="dense", **kw).flops_forward == 2 * 4 * 3 * 2 * 4 * 64
    # bfloat16 halves every byte count of float32
    f32, bf16 = (attention_cost(p, 8, implementation="dense", dtype=t, backward=True, **kw) for t in ("float32", "bfloat16"))
    assert (f32.peak_bytes, f32.probs_bytes, f32.kv_bytes) == (2 * bf16.peak_bytes, 2 * bf16.probs_bytes, 2 * bf16.kv_bytes)
    assert f32.kv_bytes == 2 * 2 * 3 * 2 * 8 * 4 * 4                # layers · (k, v) · B · H · L · d · 4 bytes


# ---- Longformer's chunked kernel ---------------------------------------------------------------
def test_longformer_memory_by_hand():
    # L=8, window 4 (w=2 each side), 1 head of dim 2, float32, batch 1. Counted in elements:
    #   q·k phase: q, k, v 3·8·2 = 48, chunks C = 8/2 - 1 = 3 of 2w × 2w = 48, padded copy 3·5·4 = 60  -> 156
    #   softmax: 48 + scores 8·5 = 40, probs and their masked copy 2·40 (float32), diagonal mask 40  -> 208
    #   probs·v: 48 + mask 40 + probs 40 + padded v (8+4)·2 = 24 + chunked v 3·8·2 = 48
    #            + diagonalised probs 8·(3·2+2) = 64 + output 8·2 = 16                             -> 280
    cost = attention_cost(AttentionPattern(window=4), 8, 1, 1, 2, implementation="longformer")
    layer = cost.per_layer[0]
    assert layer.forward_peak_bytes == 280 * 4 == cost.peak_bytes
    assert layer.probs_bytes == 40 * 4 and layer.mask_bytes == 0
    # computed pairs: the (2w + 1)-wide band of every padded query, allowed or not
    assert layer.computed_pairs == 8 * 5 and layer.pairs == 34
    # the input is padded to a multiple of the window: L=9 costs what L=12 costs
    assert attention_cost(AttentionPattern(window=4), 9, 1, 1, 2, implementation="longformer").peak_bytes == \
        attention_cost(AttentionPattern(window=4), 12, 1, 1, 2, implementation="longformer").peak_bytes
    # one global token: probs gain a column (8·6 = 48), plus the probs without it (40) and the global
    # keys' output (16); the global query row costs 8 more computed pairs
    g = attention_cost(AttentionPattern(window=4, global_positions=(0,)), 8, 1, 1, 2, implementation="longformer")
    assert g.per_layer[0].computed_pairs == 8 * 6 + 8
    assert g.peak_bytes == (48 + 40 + 48 + 24 + 48 + 64 + 16 + 40 + 16) * 4
    # ~2.2x the idealised sparse band at long lengths (the chunks overlap and are copied twice)
    L, kw = 4096, dict(num_layers=1, num_heads=12, head_dim=32)
    lf = attention_cost(AttentionPattern(window=512), L, implementation="longformer", **kw).peak_bytes
    ideal = attention_cost(AttentionPattern(window=512), L, implementation="sparse", **kw).peak_bytes
    assert 2.0 < lf / ideal < 2.4


def test_longformer_refuses_what_it_cannot_run():
    kw = dict(implementation="longformer")
    with pytest.raises(ValueError, match="needs a window in every layer, layer 1 has full attention"):
        attention_cost(AttentionPattern(window=(4, None)), 16, 2, 1, 8, **kw)
    with pytest.raises(ValueError, match="is bidirectional"):
        attention_cost(AttentionPattern(window=4, causal=True), 16, 1, 1, 8, **kw)
    with pytest.raises(ValueError, match="has no random blocks"):
        attention_cost(AttentionPattern(window=4, random_blocks=1, block_size=4), 16, 1, 1, 8, **kw)
    with pytest.raises(ValueError, match="has no dilation"):
        attention_cost(AttentionPattern(window=4, dilation=2), 16, 1, 1, 8, **kw)
    # the budget search knows the pattern matters for longformer
    p = AttentionPattern(window=256)
    L = max_length_within(2**28, num_heads=12, head_dim=32, implementation="longformer", pattern=p)
    assert attention_cost(p, L, 1, 12, 32, implementation="longformer").peak_bytes <= 2**28
    assert attention_cost(p, L + 256, 1, 12, 32, implementation="longformer").peak_bytes > 2**28


LONGFORMER_SCRIPT = """
import json
from attnviz import AttentionPattern
from attnviz.costs import measure
out = []
for L, w, g, backward in [(1024, 64, 0, False), (1000, 256, 1, False), (1024, 128, 1, True)]:
    m = measure(AttentionPattern(window=w, global_positions=tuple(range(g))), L, 12, 32, backend="longformer",
                backward=backward, repeats=2)
    out.append(dict(peak=m.peak_bytes, predicted=m.predicted_bytes, ratio=m.ratio, note=m.note))
print("@@" + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(not cpu_peak_supported(), reason="needs Linux /proc/self/clear_refs")
def test_longformer_measured_peak_matches_its_model():
    env = dict(os.environ, **MALLOC_ENV, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", LONGFORMER_SCRIPT], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(next(line[2:] for line in proc.stdout.splitlines() if line.startswith("@@")))
    for row in rows:
        # measured within 6 % here (the target is 1.2x); the idealised sparse model was off 2.2-4.3x
        assert 0.9 <= row["ratio"] <= 1.1, row
        assert row["note"] == ""


def test_measure_isolated_runs_the_measure_module_in_a_fresh_process():
    # python -m attnviz.costs.measure, JSON in on stdin and out on stdout: the same configuration comes back,
    # with MALLOC_ENV applied (no note) and the function attnviz.costs.measure still the function afterwards
    from attnviz import costs
    from attnviz.costs import measure_isolated

    p = AttentionPattern(window=8, global_positions=(0,))
    (m,) = measure_isolated([dict(pattern=p, layout=64, num_heads=2, head_dim=8, backend="dense", repeats=1)])
    assert (m.backend, m.length, m.num_heads, m.head_dim, m.dtype) == ("dense", 64, 2, 8, "float32")
    assert m.predicted == attention_cost(p, 64, 1, 2, 8).per_layer[0]
    assert m.note == "" or not cpu_peak_supported()
    assert callable(costs.measure)
    with pytest.raises(TypeError, match="plain lengths"):
        measure_isolated([dict(pattern=p, layout=PromptPlacement, num_heads=2, head_dim=8)])
