"""Posterior summaries as published: the joint mode of several parameters (not the marginal
modes) and Monte-Carlo standard errors of summaries by batch means, on samples with known
answers (exact, iid and autocorrelated)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxlike.bayes import Posterior, batch_mcse, hdi, joint_mode, kde_mode
from jaxlike.exceptions import InvalidArgument


def test_joint_mode_of_a_curved_skewed_posterior_is_not_the_marginal_one():
    """x ~ Gamma(3, 1), y | x ~ N(x², 0.5): the joint density peaks at (2, 4); the marginal of
    y = x² + noise peaks far lower (the stretch dy = 2x dx puts it at y = 1 without the
    noise; 2.3 with it)."""
    rng = np.random.default_rng(0)
    x = rng.gamma(3.0, 1.0, 20000)
    y = rng.normal(x**2, 0.5)
    m = joint_mode(np.column_stack([x, y]), [[0.0, np.inf], [-np.inf, np.inf]])
    assert m[0] == pytest.approx(2.0, abs=0.2) and m[1] == pytest.approx(4.0, abs=0.4)
    assert kde_mode(y) < 3.0


def test_joint_mode_on_a_bound_and_through_a_posterior():
    rng = np.random.default_rng(1)
    e, z = rng.exponential(1.0, 20000), rng.normal(0.0, 1.0, 20000)
    m = joint_mode(np.column_stack([e, z]), [[0.0, np.inf], [-np.inf, np.inf]])
    assert m[0] == pytest.approx(0.0, abs=0.05) and abs(m[1]) < 0.35
    samples = np.stack([e, z], axis=-1).reshape(4, 5000, 2)
    post = Posterior.from_samples(samples, ["c", "d"], bounds=[[0.0, 10.0], [-10.0, 10.0]])
    jm = post.joint_mode(["c", "d"])
    assert list(jm) == ["c", "d"] and jm["c"] == pytest.approx(m[0], abs=1e-6)


def test_batch_mcse_matches_known_standard_errors():
    rng = np.random.default_rng(2)
    iid = rng.normal(size=(4, 5000))
    n = iid.size
    assert batch_mcse(iid, np.mean) == pytest.approx(1 / np.sqrt(n), rel=0.4)
    # a quantile: √(p(1 − p)/N) / f(q)
    q95 = np.sqrt(0.95 * 0.05 / n) / 0.10313564037537128
    assert batch_mcse(iid, lambda v: np.quantile(v, 0.95)) == pytest.approx(q95, rel=0.4)
    lo, hi = batch_mcse(iid, lambda v: hdi(v, 0.95))
    assert 0.5 * q95 < lo < 3 * q95 and 0.5 * q95 < hi < 3 * q95
    # autocorrelated chains (AR(1), ρ = 0.8): the error of the mean grows by √((1 + ρ)/(1 − ρ))
    rho = 0.8
    ar = np.zeros((4, 5000))
    ar[:, 0] = rng.normal(size=4)
    for i in range(1, 5000):
        ar[:, i] = rho * ar[:, i - 1] + np.sqrt(1 - rho**2) * rng.normal(size=4)
    want = np.sqrt((1 + rho) / (1 - rho) / n)
    assert batch_mcse(ar, np.mean) == pytest.approx(want, rel=0.4)
    post = Posterior.from_samples(ar[..., None], ["a"])
    assert post.mcse("a", np.mean) == pytest.approx(batch_mcse(ar, np.mean))


def test_bad_inputs():
    with pytest.raises(InvalidArgument, match="chains, draws"):
        batch_mcse(np.zeros(10), np.mean)
    with pytest.raises(InvalidArgument, match="too few"):
        batch_mcse(np.zeros((2, 10)), np.mean, n_batches=20)
    with pytest.raises(InvalidArgument, match="bounds"):
        joint_mode(np.zeros((10, 2)), [[0.0, 1.0]])
