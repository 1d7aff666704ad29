"""Intervals for accuracies: is a difference between two cells real, or one binomial error wide?

Pure functions (numpy in, floats out), so a result table, a figure and a test all use the same
numbers:

* :func:`wilson_interval` — the Wilson score interval of ``k`` correct out of ``n`` (one seed,
  examples independent). Unlike ``p ± z·sqrt(p(1-p)/n)`` it stays inside [0, 1] and is not
  zero-width at 0 / n or n / n.
* :func:`bootstrap` — a two-level (seeds × held-out examples) percentile bootstrap of the mean
  accuracy: each resample draws ``S`` seeds with replacement and ``N`` examples with replacement
  (the same examples for every seed, because every seed is evaluated on the same held-out set), so
  the interval carries both the training noise between seeds and the sampling noise of the
  examples. Seeded: the same call gives the same interval.
* :func:`estimate` — per-seed per-example correctness ``(S, N)`` → :class:`Estimate` (mean, low,
  high, method): the bootstrap when there are two seeds or more, Wilson on the pooled counts
  when there is one.
* :func:`difference` — the same bootstrap for ``mean(a) - mean(b)`` of two cells measured on
  the same examples and seeds (paired): an ordering "holds" when this interval excludes 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

#: z of a two-sided 95 % normal interval.
Z95 = 1.959963984540054
#: Resamples of :func:`bootstrap` (percentiles of 2,000 means are stable to ~0.005 here).
RESAMPLES = 2000


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n``.

    ``centre = (p + z²/2n) / (1 + z²/n)``, ``half = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)``.

    Args:
        k: successes, ``0 <= k <= n``.
        n: trials, ``n >= 1``.
        z: normal quantile (1.96: 95 %).
    Returns:
        ``(low, high)`` within [0, 1].
    """
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise TypeError(f"k and n must be whole numbers, got k={k!r}, n={n!r}")
    k, n = int(k), int(n)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need n >= 1 and 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _matrix(correct) -> np.ndarray:
    a = np.asarray(correct, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"correctness must be (seeds, examples) with at least one of each, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("correctness holds non-finite values")
    return a


def bootstrap(correct, *, resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Two-level percentile bootstrap of the mean of ``correct``: float (S seeds, N examples) of 0 / 1
    (a 1-d array is one seed).

    Returns:
        ``(mean, low, high)``: the exact mean over all seeds and examples, and the 2.5 / 97.5
        percentiles (``level`` = 0.95) of the resampled means.
    """
    a = _matrix(correct)
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    S, N = a.shape
    rng = np.random.default_rng(seed)
    s_idx = rng.integers(0, S, size=(resamples, S))
    e_idx = rng.integers(0, N, size=(resamples, N))
    # mean over a resample = mean over its drawn seeds of (mean over its drawn examples)
    means = a[s_idx[:, :, None], e_idx[:, None, :]].mean(axis=(1, 2))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(a.mean()), float(low), float(high)


@dataclass(frozen=True)
class Estimate:
    """A mean accuracy with its 95 % interval.

    Attributes:
        mean: over all seeds and examples.
        low, high: the interval.
        method: ``"bootstrap over examples and seeds"`` or ``"Wilson (one seed)"``.
        seeds, examples: S and N.
    """

    mean: float
    low: float
    high: float
    method: str
    seeds: int
    examples: int

    def to_dict(self) -> dict:
        return asdict(self)

    def overlaps(self, other: "Estimate") -> bool:
        return not (self.high < other.low or other.high < self.low)


BOOTSTRAP = "bootstrap over examples and seeds (95 %, percentile)"
WILSON = "Wilson score (95 %, one seed)"


def estimate(correct, *, seed: int = 0, resamples: int = RESAMPLES) -> Estimate:
    """Per-seed per-example correctness (S, N) → :class:`Estimate`: the seeds × examples bootstrap
    when S >= 2, the Wilson interval of the pooled counts when S == 1."""
    a = _matrix(correct)
    S, N = a.shape
    if S == 1:
        k = int(round(a.sum()))
        low, high = wilson_interval(k, N)
        return Estimate(float(a.mean()), low, high, WILSON, 1, N)
    mean, low, high = bootstrap(a, seed=seed, resamples=resamples)
    return Estimate(mean, low, high, BOOTSTRAP, S, N)


def difference(a, b, *, seed: int = 0, resamples: int = RESAMPLES) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` with a paired 95 % bootstrap interval: ``a`` and ``b`` are (S, N)
    correctness of two cells on the same held-out examples and seeds; each resample draws the
    same seeds and examples for both. Returns ``(difference, low, high)``."""
    x, y = _matrix(a), _matrix(b)
    if x.shape != y.shape:
        raise ValueError(f"paired cells need equal shapes (seeds, examples), got {x.shape} and {y.shape}")
    return bootstrap(x - y, seed=seed, resamples=resamples)
