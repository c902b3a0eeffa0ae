"""Bootstrap CI of the mean and the paired bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brain3d.eval.stats import bootstrap_ci, bootstrap_means, paired_bootstrap


def test_ci_contains_the_mean_and_is_seeded():
    x = np.random.default_rng(0).uniform(size=80)
    iv = bootstrap_ci(x)
    assert iv.lo < iv.mean < iv.hi
    assert iv.mean == pytest.approx(x.mean())
    assert iv.n == 80
    assert bootstrap_ci(x) == iv  # seed 42 by default: identical on rerun
    assert bootstrap_ci(x, seed=7) != iv


def test_ci_shrinks_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 200, 2000):
        iv = bootstrap_ci(rng.normal(size=n))
        widths.append(iv.hi - iv.lo)
    assert widths[0] > widths[1] > widths[2]
    # the percentile CI of a mean of N(0,1) has width ~ 2 * 1.96 / sqrt(n)
    assert widths[2] == pytest.approx(2 * 1.96 / math.sqrt(2000), rel=0.15)


def test_constant_values_give_a_point_interval_and_nan_is_dropped():
    iv = bootstrap_ci([1.0, 1.0, math.nan, 1.0])
    assert (iv.mean, iv.lo, iv.hi, iv.n) == (1.0, 1.0, 1.0, 3)
    empty = bootstrap_ci([math.nan])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_bootstrap_means_resample_with_replacement():
    means = bootstrap_means([0.0, 1.0], n_boot=1000, seed=42)
    assert means.shape == (1000,)
    assert set(np.unique(means)) <= {0.0, 0.5, 1.0}
    assert 0.4 < float(np.mean(means == 0.5)) < 0.6  # P(one of each) = 1/2


def test_paired_bootstrap_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(3)
    a = rng.uniform(size=100)
    better = paired_bootstrap(a + 0.1, a)
    assert better.diff == pytest.approx(0.1)
    assert better.lo == pytest.approx(0.1) and better.hi == pytest.approx(0.1)
    assert better.p < 0.01
    noise = paired_bootstrap(a, rng.permutation(a))
    assert noise.lo < 0 < noise.hi and noise.p > 0.05
    same = paired_bootstrap(a, a)
    assert same.diff == 0 and same.p == 1.0


def test_paired_bootstrap_uses_shared_defined_pairs_only():
    d = paired_bootstrap([1.0, math.nan, 3.0], [0.0, 2.0, math.nan])
    assert d.n == 1 and d.diff == 1.0 and (d.mean_a, d.mean_b) == (1.0, 0.0)
    with pytest.raises(ValueError, match="length"):
        paired_bootstrap([1.0], [1.0, 2.0])
