"""Conformal per-side recalibration (margin.simulation.calibration) on synthetic data with known quantiles."""
import math

import numpy as np
import pytest
from scipy import stats

from margin.simulation.calibration import CalibrationError, calibrate_quantile, conformal_scale, forward_returns


def _student(T=12000, nu=4, seed=0):
    rng = np.random.default_rng(seed)
    # known scale path: calm / stressed blocks, so a good forecast moves with it
    scale = 0.02 * np.where((np.arange(T) // 500) % 3 == 2, 2.5, 1.0)
    r = rng.standard_t(nu, size=T) * scale
    return r[:, None], scale[:, None], nu


def test_forward_returns_reference():
    r = np.arange(10.0)[:, None]
    got = forward_returns(r, 3)
    for t in range(7):
        assert got[t, 0] == r[t + 1: t + 4, 0].sum()
    assert np.isnan(got[7:]).all()


def test_scale_matches_plain_conformal_quantile():
    rng = np.random.default_rng(1)
    r = rng.normal(0, 0.02, (400, 1))
    q = np.full((400, 1), -0.03)
    h, w, lvl = 2, 100, 0.95
    c = conformal_scale(r, q, h, level=lvl, window=w, min_periods=100)
    R = forward_returns(r, h)
    t = 350
    scores = (R[: t - h + 1, 0] / q[: t - h + 1, 0])[-w:]       # origins <= t - h, last w of them
    k = math.ceil((w + 1) * lvl)
    assert c[t, 0] == pytest.approx(np.sort(scores)[k - 1])
    assert c[50, 0] == 1.0                                        # fallback before min_periods
    ce = conformal_scale(r, q, h, level=lvl, window=None, min_periods=10)
    sc = R[: t - h + 1, 0] / q[: t - h + 1, 0]
    n = len(sc)
    assert ce[t, 0] == pytest.approx(np.sort(sc)[min(n, math.ceil((n + 1) * lvl)) - 1])


@pytest.mark.parametrize("window", [1000, None])
def test_calibrated_coverage_per_side_student_t(window):
    r, scale, nu = _student()
    z = stats.norm.ppf(0.99)
    # a Gaussian forecast with the right scale path but too thin tails (Student-t 4 has fatter ones) and a
    # lower tail that is also 20% too narrow: each side needs a different correction
    q_lo = -0.8 * z * scale * np.sqrt(nu / (nu - 2))
    q_hi = z * scale * np.sqrt(nu / (nu - 2))
    R = forward_returns(r, 1)
    raw_lo = np.nanmean(R[2000:-1] < q_lo[2000:-1])
    assert raw_lo > 0.02                                          # uncalibrated: too many long exceptions
    lo = calibrate_quantile(r, q_lo, 1, level=0.99, window=window)
    hi = calibrate_quantile(r, q_hi, 1, level=0.99, window=window)
    rate_lo = np.mean(R[2000:-1] < lo[2000:-1])
    rate_hi = np.mean(R[2000:-1] > hi[2000:-1])
    assert abs(rate_lo - 0.01) < 0.0025 and abs(rate_hi - 0.01) < 0.0025
    # and the calibrated quantile approaches the known Student-t quantile
    true_q = stats.t.ppf(0.01, nu) * scale[-1, 0]
    assert lo[-1, 0] == pytest.approx(true_q, rel=0.12)


def test_no_look_ahead():
    r, scale, _ = _student(T=1500)
    q = -2.3 * scale
    c = conformal_scale(r, q, 3, window=500)
    r2 = r.copy()
    r2[1000:] = 10.0                                              # change the future after day 1000
    c2 = conformal_scale(r2, q, 3, window=500)
    np.testing.assert_array_equal(c[:1000], c2[:1000])           # row t uses returns up to t only


def test_bad_parameters():
    r = np.zeros((10, 1))
    with pytest.raises(CalibrationError, match="level"):
        conformal_scale(r, r, 1, level=1.2)
    with pytest.raises(CalibrationError, match="shape"):
        conformal_scale(r, np.zeros((10, 2)), 1)
    with pytest.raises(CalibrationError, match="horizon"):
        forward_returns(r, 0)
