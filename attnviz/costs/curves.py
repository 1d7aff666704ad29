"""Cost over lengths, what the cost explorer draws: :func:`cost_curves` and where a budget stops
fitting (:func:`max_length_within`). Every number is :func:`attnviz.costs.attention_cost`'s."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import is_int
from ..patterns import AttentionPattern
from .model import IMPLEMENTATIONS, attention_cost, check_choice, dtype_name, plain_peak_bytes
from .pairs import check_positive


def max_length_within(
    budget_bytes: int,
    *,
    num_heads: int,
    head_dim: int,
    num_layers: int = 1,
    batch: int = 1,
    dtype: str | torch.dtype = "float32",
    implementation: str = "dense",
    backward: bool = False,
    pattern: AttentionPattern | None = None,
    limit: int = 1 << 20,
) -> int:
    """The longest plain sequence whose :attr:`AttentionCost.peak_bytes` fits ``budget_bytes``.

    The point where, e.g., dense attention stops fitting: ``attention_cost(pattern, L, ...)`` fits
    for the returned ``L`` and not for ``L + 1``. Only ``sparse`` memory depends on the pattern
    (its allowed pairs); the others cost the same for every pattern, so ``pattern`` is only read
    for ``sparse`` and ``longformer``. Returns 0 if no length fits, and ``limit`` if even that fits. Binary search:
    assumes memory grows with ``L`` (random blocks are redrawn per length, so ``sparse`` with them
    is only nearly monotone).
    """
    if not is_int(budget_bytes) or budget_bytes < 0:
        raise ValueError(f"budget_bytes must be an int >= 0, got {budget_bytes!r}")
    check_positive("limit", limit)
    pattern = AttentionPattern() if pattern is None else pattern
    kwargs = dict(batch=batch, dtype=dtype, implementation=implementation, backward=backward)
    structural = implementation in ("sparse", "longformer")   # memory depends on the pattern
    attention_cost(pattern if structural else None, max(pattern.global_positions, default=0) + 1,
                   num_layers if structural else 1, num_heads, head_dim, **kwargs)  # checks

    def fits(L: int) -> bool:
        if structural:
            return attention_cost(pattern, L, num_layers, num_heads, head_dim, **kwargs).peak_bytes <= budget_bytes
        return plain_peak_bytes(implementation, L, num_layers, batch, num_heads, head_dim, dtype,
                                backward) <= budget_bytes

    lo = max(pattern.global_positions, default=0) + 1 if structural else 1
    if not fits(lo):
        return 0
    hi = lo
    while hi < limit and fits(hi):
        lo, hi = hi, min(2 * hi, limit)
    if fits(hi):
        return hi
    while hi - lo > 1:  # fits(lo) and not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


# ---- curves over lengths (what the cost explorer draws) -----------------------------------------
#: Assumed attention throughput for the time axis of :func:`cost_curves`: 50 GFLOP/s (a laptop CPU
#: core pair reaches ~20-100 on these matmuls; an H100 ~100-400 TFLOP/s). :func:`measure` gives the real one.
DEFAULT_FLOPS_PER_SECOND = 5e10


@dataclass(frozen=True)
class CostCurves:
    """:func:`attention_cost` over a range of lengths, per implementation (what the cost explorer draws).

    Attributes:
        lengths: the lengths ``L`` costed, increasing.
        implementations: e.g. ``("dense", "sparse")``; ``"dense"`` is always full attention.
        peak_bytes, flops: ``{implementation: (value per length)}``; :attr:`AttentionCost.peak_bytes`
            and :attr:`AttentionCost.flops` (forward, plus backward when ``backward``).
        seconds: ``flops / flops_per_second`` (an estimate: the throughput is an assumption).
        budget_bytes: the memory budget (None = no budget).
        limits: ``{implementation: longest L whose peak fits the budget}`` (:func:`max_length_within`;
            for a windowed implementation searched up to ``max(lengths)`` only), empty without a budget.
        pattern, num_layers, num_heads, head_dim, batch, dtype, backward, flops_per_second: the configuration.
    """

    lengths: tuple[int, ...]
    implementations: tuple[str, ...]
    peak_bytes: dict
    flops: dict
    seconds: dict
    budget_bytes: int | None
    limits: dict
    pattern: AttentionPattern
    num_layers: int
    num_heads: int
    head_dim: int
    batch: int
    dtype: str
    backward: bool
    flops_per_second: float

    def pattern_of(self, implementation: str) -> AttentionPattern | None:
        """The pattern costed for ``implementation``: None (full attention) for ``"dense"``."""
        return None if implementation == "dense" else self.pattern


def curve_lengths(max_length: int, *, min_length: int = 128, points: int = 16) -> tuple[int, ...]:
    """About ``points`` lengths spaced evenly on a log axis from ``min_length`` to ``max_length``
    (both included, integers, no repeats)."""
    check_positive("max_length", max_length)
    check_positive("points", points)
    lo = min(min_length, max_length)
    if points == 1 or lo == max_length:
        return (max_length,)
    ratio = (max_length / lo) ** (1 / (points - 1))
    return tuple(sorted({int(round(lo * ratio ** i)) for i in range(points - 1)} | {max_length}))


def cost_curves(
    pattern: AttentionPattern | None,
    max_length: int,
    num_layers: int,
    num_heads: int,
    head_dim: int,
    *,
    implementations: tuple[str, ...] = ("dense", "sparse"),
    batch: int = 1,
    dtype: str | torch.dtype = "float32",
    backward: bool = False,
    budget_bytes: int | None = None,
    flops_per_second: float = DEFAULT_FLOPS_PER_SECOND,
    min_length: int = 128,
    points: int = 16,
) -> CostCurves:
    """Memory and time of attention vs length for each of ``implementations`` (``"dense"`` = full
    attention with a dense kernel; the others run ``pattern``), over :func:`curve_lengths`, and
    where each stops fitting ``budget_bytes``. Every number is :func:`attention_cost`'s."""
    pattern = AttentionPattern() if pattern is None else pattern
    for impl in implementations:
        check_choice("implementation", impl, IMPLEMENTATIONS)
    if not isinstance(flops_per_second, (int, float)) or flops_per_second <= 0:
        raise ValueError(f"flops_per_second must be > 0, got {flops_per_second!r}")
    if budget_bytes is not None and (not is_int(budget_bytes) or budget_bytes < 0):
        raise ValueError(f"budget_bytes must be an int >= 0 or None, got {budget_bytes!r}")
    dtype = dtype_name(dtype)
    lengths = curve_lengths(max_length, min_length=min_length, points=points)
    kw = dict(batch=batch, dtype=dtype, backward=backward)
    peak, flops, seconds, limits = {}, {}, {}, {}
    for impl in implementations:
        p = None if impl == "dense" else pattern
        costs = [attention_cost(p, L, num_layers, num_heads, head_dim, implementation=impl, **kw) for L in lengths]
        peak[impl] = tuple(c.peak_bytes for c in costs)
        flops[impl] = tuple(c.flops for c in costs)
        seconds[impl] = tuple(f / flops_per_second for f in flops[impl])
        if budget_bytes is not None:
            limits[impl] = max_length_within(budget_bytes, num_heads=num_heads, head_dim=head_dim,
                                             num_layers=num_layers, implementation=impl, pattern=p,
                                             limit=(1 << 20) if impl == "dense" else max(lengths), **kw)
    return CostCurves(lengths=lengths, implementations=tuple(implementations), peak_bytes=peak, flops=flops,
                      seconds=seconds, budget_bytes=budget_bytes, limits=limits, pattern=pattern,
                      num_layers=num_layers, num_heads=num_heads, head_dim=head_dim, batch=batch, dtype=dtype,
                      backward=backward, flops_per_second=float(flops_per_second))


# ---- a real run --------------------------------------------------------------------------------
