"""Notebook 08 runs top to bottom (ATTNVIZ_FAST=1) and prints the library's numbers."""

import re

import pytest

from attnviz import AttentionPattern
from attnviz.costs import allowed_pairs, attention_cost, max_length_within

from _notebooks import output_text, run_notebook

GiB, MiB = 2**30, 2**20


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_notebook_08_prints_the_cost_model():
    nb, seconds = run_notebook("08_memory_and_speed.ipynb", timeout=600)
    text = output_text(nb)
    assert "attnviz notebook mode: fast" in text
    window = AttentionPattern(window=256, global_positions=(0,))
    # section 1: pairs
    for L in (512, 4096, 16384):
        w = allowed_pairs(window, L, 0)
        assert f"L={L:>6}: full {L * L:>12,} pairs   window 256 + [CLS] {w:>10,} pairs   {L * L / w:6.1f}x fewer" in text
    # section 2: bytes and FLOPs of BERT-base at 4096
    for impl in ("dense", "sparse", "longformer", "sdpa"):
        p = None if impl == "dense" else window
        inf = attention_cost(p, 4096, 12, 12, 64, implementation=impl)
        tr = attention_cost(p, 4096, 12, 12, 64, implementation=impl, backward=True)
        assert (f"{impl:<12} {inf.peak_bytes / GiB:>14.3f} {tr.peak_bytes / GiB:>13.3f} "
                f"{inf.flops_forward / 1e12:>10.3f} {inf.probs_bytes / GiB:>10.3f}") in text
    # section 3: budgets
    shape = dict(num_heads=12, head_dim=64, num_layers=12)
    dense16 = max_length_within(16 * GiB, **shape)
    train16 = max_length_within(16 * GiB, **shape, backward=True)
    assert f" 16 GiB: dense inference up to L={dense16:>6,}   dense training up to L={train16:>6,}" in text
    band = max_length_within(16 * GiB, **shape, implementation="sparse", pattern=window, limit=1 << 21)
    assert f"inference in 16 GiB: up to L={band:,}" in text and band > 40 * dense16
    # section 4: the explorer showed its summary
    assert "dense fits 16 GiB up to L=" in text
    # section 5: measured vs predicted, one row per run; predictions are the library's, ratios within 1.2x
    rows = re.findall(r"^(dense|sdpa|longformer)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+$", text, re.M)
    assert len(rows) == 6, rows
    for backend, L, measured, predicted, ratio in rows:
        L = int(L)
        p = None if backend == "dense" else window
        cost = attention_cost(p, L, 1, 12, 32, implementation=backend).per_layer[0]
        assert predicted == f"{cost.op_peak_bytes() / MiB:.2f}"
        if float(measured) >= 1:   # under 1 MiB is below page resolution
            assert 1 / 1.2 <= float(ratio) <= 1.2, (backend, L, measured, predicted)
    # what the prose says of the measured rows: dense x4 per doubling, Longformer below dense at both lengths
    got = {(b, int(L)): float(m) for b, L, m, _, _ in rows}
    assert sorted({L for _, L in got}) == [1024, 2048]
    for L in (1024, 2048):
        assert got[("longformer", L)] < got[("dense", L)] and got[("sdpa", L)] < got[("longformer", L)]
    assert 3.5 < got[("dense", 2048)] / got[("dense", 1024)] < 4.5
    assert 1.6 < got[("longformer", 2048)] / got[("longformer", 1024)] < 2.4
    assert "windowed (flex)" in text and "global 0" not in text    # the explorer's default: window 512, flex
    assert text.count('class="plotly-graph-div"') >= 1
