"""attnviz.stats on cases worked out by hand."""

import numpy as np
import pytest

from attnviz.stats import BOOTSTRAP, WILSON, bootstrap, difference, estimate, wilson_interval

# Wilson, z = 1.959964 (z² = 3.841459):
#   centre = (p + z²/2n) / (1 + z²/n),  half = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)
# 0/10:   1 + z²/n = 1.384146; centre = 0.192073 / 1.384146 = 0.138767;
#         half = 1.416010 * sqrt(0 + 3.841459/400) = 1.416010 * 0.097998 = 0.138767  -> [0, 0.277534]
# 5/10:   centre = (0.5 + 0.192073) / 1.384146 = 0.5;
#         half = 1.416010 * sqrt(0.025 + 0.009604) = 1.416010 * 0.186021 = 0.263408  -> [0.236592, 0.763408]
# 81/100: 1 + z²/n = 1.038415; centre = (0.81 + 0.019207) / 1.038415 = 0.798532;
#         half = 1.887458 * sqrt(0.001539 + 0.000096) = 1.887458 * 0.040436 = 0.076322 -> [0.722210, 0.874854]
HAND = [(0, 10, 0.0, 0.277534), (5, 10, 0.236592, 0.763408), (81, 100, 0.722210, 0.874854)]


@pytest.mark.parametrize("k,n,low,high", HAND)
def test_wilson_by_hand(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=2e-5)
    assert hi == pytest.approx(high, abs=2e-5)


def test_wilson_symmetry_and_bad_input():
    lo, hi = wilson_interval(10, 10)
    assert (lo, hi) == pytest.approx((1 - 0.277534, 1.0), abs=2e-5)   # mirror of 0/10
    for bad in [(11, 10), (-1, 10), (0, 0)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)
    with pytest.raises(TypeError):
        wilson_interval(0.5, 10)


def test_bootstrap_seeded_and_exact_when_all_agree():
    rng = np.random.default_rng(1)
    c = (rng.random((3, 200)) < 0.8).astype(float)
    a, b = bootstrap(c, seed=7), bootstrap(c, seed=7)
    assert a == b                                    # reproducible with a seed
    assert a[0] == pytest.approx(c.mean())           # the point estimate is the exact mean
    assert a[1] < a[0] < a[2]
    ones = np.ones((3, 50))
    assert bootstrap(ones) == (1.0, 1.0, 1.0)        # all examples agree: no spread at all
    assert bootstrap(np.zeros((2, 50))) == (0.0, 0.0, 0.0)


def test_bootstrap_width_close_to_binomial():
    # one seed, 400 examples at p = 0.5: the bootstrap's 95 % half width is ~1.96 * sqrt(.25/400) = 0.049
    c = np.array([1.0, 0.0] * 200)
    mean, lo, hi = bootstrap(c, seed=0)
    assert mean == 0.5
    assert (hi - lo) / 2 == pytest.approx(0.049, abs=0.006)


def test_estimate_method_and_difference():
    one = estimate([[1] * 81 + [0] * 19])
    assert one.method == WILSON and (one.low, one.high) == pytest.approx((0.722210, 0.874854), abs=2e-5)
    many = estimate(np.ones((3, 40)))
    assert many.method == BOOTSTRAP and (many.mean, many.low, many.high) == (1.0, 1.0, 1.0)
    assert many.seeds == 3 and many.examples == 40
    d = difference(np.ones((3, 40)), np.zeros((3, 40)))
    assert d == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        difference(np.ones((3, 40)), np.ones((2, 40)))
