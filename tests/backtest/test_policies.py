"""Policies and anti-procyclicality wrappers against plain-loop references."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from margin.policies import (AntiProcyclical, ForecastArrays, PolicyError, PredictivePolicy, ReactivePolicy,
                             RiskInputs, StaticPolicy, buffer_release, cap_daily_increase, historical_move_quantile,
                             make_policy, stressed_move_quantile)


def _loop_buffer(b, buffer, rebuild):
    out = np.empty_like(b)
    for a in range(b.shape[1]):
        prev = None
        for t in range(b.shape[0]):
            x = b[t, a]
            m = (1 + buffer) * x if prev is None else max(x, min((1 + buffer) * x, prev * (1 + rebuild)))
            out[t, a] = m
            prev = m
    return out


def _loop_cap(b, cap):
    out = np.empty_like(b)
    for a in range(b.shape[1]):
        for t in range(b.shape[0]):
            out[t, a] = b[t, a] if t == 0 else min(b[t, a], out[t - 1, a] * (1 + cap))
    return out


@pytest.fixture(scope="module")
def base():
    rng = np.random.default_rng(3)
    b = 0.05 * np.exp(np.cumsum(rng.normal(0, 0.08, (400, 2)), 0))
    b[200:205] *= 3.0      # a stress spike
    return b


def test_buffer_matches_loop(base):
    got = buffer_release(base, 0.25, 0.02)
    np.testing.assert_allclose(got, _loop_buffer(base, 0.25, 0.02), rtol=1e-12)
    assert np.all(got >= base - 1e-15) and np.all(got <= 1.25 * base + 1e-15)


def test_buffer_released_in_stress():
    b = np.array([[0.1], [0.1], [0.1], [0.2], [0.2], [0.2]])
    got = buffer_release(b, 0.25, 0.02)[:, 0]
    # calm: held at 125%; the jump to 0.2 is absorbed: margin rises from 0.125 to 0.2 (+60%), not to 0.25 (+100%)
    np.testing.assert_allclose(got[:3], 0.125)
    assert got[3] == pytest.approx(0.2)
    assert got[4] == pytest.approx(0.204) and got[5] == pytest.approx(0.20808)


def test_cap_matches_loop(base):
    np.testing.assert_allclose(cap_daily_increase(base, 0.1), _loop_cap(base, 0.1), rtol=1e-12)


def test_floor_and_stress_weight_reference():
    rng = np.random.default_rng(0)
    r = rng.standard_t(4, size=(700, 1)) * 0.03
    fl = historical_move_quantile(r, 1, 3650, 0.99, min_periods=250)
    t = 600
    moves = np.maximum(np.expm1(r[: t + 1, 0]), -np.expm1(r[: t + 1, 0]))
    assert fl[t, 0] == pytest.approx(np.quantile(moves, 0.99))
    assert np.isnan(fl[248, 0]) and np.isfinite(fl[249, 0])
    st = stressed_move_quantile(r, 1, window=250, coverage=0.99)
    ref = max(np.quantile(moves[e - 249: e + 1], 0.99) for e in range(249, t + 1))
    assert st[t, 0] == pytest.approx(ref)


def _inputs(T=300, A=2):
    rng = np.random.default_rng(1)
    dates = pd.date_range("2020-01-01", periods=T, freq="D")
    r = rng.normal(0, 0.03, (T, A))
    sig = np.full((T, A), 0.03)
    p = np.clip(rng.random((T, A)), 0, 1)
    fc = {"ewma": ForecastArrays(sig, -2.33 * sig, 2.33 * sig),
          "regime_net": ForecastArrays(sig, -2.5 * sig, 2.6 * sig, p)}
    return RiskInputs(dates, ("BTC", "ETH"), r, 1, fc), p


def test_policy_formulas():
    inp, p = _inputs()
    s = StaticPolicy({"BTC": 0.16, "ETH": 0.18})(inp).scan_range
    assert s.shape == (300, 2) and np.all(s[:, 0] == 0.16) and np.all(s[:, 1] == 0.18)
    r = ReactivePolicy(model="ewma")(inp).scan_range
    np.testing.assert_allclose(r, np.expm1(stats.norm.ppf(0.99) * 0.03))
    pr = PredictivePolicy(addon=0.5, threshold=0.2)(inp).scan_range
    base = np.maximum(np.expm1(2.6 * 0.03), -np.expm1(-2.5 * 0.03))
    np.testing.assert_allclose(pr, base * (1 + 0.5 * np.maximum(p - 0.2, 0) / 0.8))


def test_wrapper_order_and_name():
    inp, _ = _inputs()
    pol = make_policy({"kind": "reactive", "name": "r", "model": "ewma", "buffer": 0.25, "cap": 0.1,
                       "floor": False, "stress_weight": 0.0})
    assert isinstance(pol, AntiProcyclical) and pol.name == "r+buf0.25+cap0.1"
    out = pol(inp)
    ref = _loop_cap(_loop_buffer(out.base, 0.25, 0.02), 0.1)
    np.testing.assert_allclose(out.scan_range, ref, rtol=1e-12)


def test_bad_parameters():
    inp, _ = _inputs()
    with pytest.raises(PolicyError, match="kind"):
        make_policy({"kind": "magic"})
    with pytest.raises(PolicyError, match="unknown parameter 'foo'"):
        make_policy({"kind": "static", "foo": 1})
    with pytest.raises(PolicyError, match="scan_range\\[ETH\\]"):
        StaticPolicy({"BTC": 0.1, "ETH": -0.1})(inp)
    with pytest.raises(PolicyError, match="model 'garch'"):
        ReactivePolicy(model="garch")(inp)
    with pytest.raises(PolicyError, match="buffer"):
        AntiProcyclical(inner=StaticPolicy(), buffer=-0.1)
    with pytest.raises(PolicyError, match="log_returns"):
        RiskInputs(inp.dates, ("BTC",), inp.log_returns)
