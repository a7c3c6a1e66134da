"""Policies and anti-procyclicality wrappers against plain-loop references."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from margin.simulation.policies import (AntiProcyclical, ForecastArrays, PolicyError, PredictivePolicy, ReactivePolicy,
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


# ------------------------------------------------------------------ per-side output, smooth policy, default tiers

def _loop_speed(target, floor, rise, release):
    """Plain-loop reference of margin.simulation.policies.speed_limited_path."""
    out = np.full_like(target, np.nan)
    for a in range(target.shape[1]):
        prev = None
        for t in range(target.shape[0]):
            g, f = target[t, a], floor[t, a]
            if np.isnan(g) or np.isnan(f):
                continue
            if prev is None:
                m = max(g, f)
            else:
                m = max(f, prev * (1 - release), min(g, prev * (1 + rise)))
            out[t, a] = m
            prev = m
    return out


def test_speed_limited_path_matches_loop(base):
    from margin.simulation.policies import speed_limited_path

    floor = 0.9 * base
    floor[10:14, 0] = np.nan
    got = speed_limited_path(base, floor, 0.05, 0.02)
    np.testing.assert_allclose(got, _loop_speed(base, floor, 0.05, 0.02), rtol=1e-12, equal_nan=True)
    ok = np.isfinite(got[1:]) & np.isfinite(got[:-1])
    rel = got[1:][ok] / got[:-1][ok] - 1
    assert rel.min() >= -0.02 - 1e-12                            # release limit always holds
    assert np.all(got[np.isfinite(got)] >= floor[np.isfinite(got)] - 1e-15)   # floor always holds


def test_speed_limited_path_rises_early_and_releases_slowly():
    from margin.simulation.policies import speed_limited_path

    target = np.full((40, 1), 0.05)
    target[20:25] = 0.10                                         # a stress episode that doubles the requirement
    floor = np.zeros_like(target)
    early = target.copy()
    early[13:20] = 0.10                                          # foresight: the target is known 7 days ahead
    late = speed_limited_path(target, floor, 0.1, 0.02)[:, 0]
    soon = speed_limited_path(early, floor, 0.1, 0.02)[:, 0]
    assert late[20] < 0.10 and soon[20] == pytest.approx(0.10)   # with lookahead the step limit still covers day 20
    assert soon[25] == pytest.approx(0.098) and soon[26] == pytest.approx(0.098 * 0.98)


def test_policy_output_contract():
    from margin.simulation.policies import PolicyOutput

    d = np.array([[0.1, 0.2]])
    u = np.array([[0.3, 0.1]])
    out = PolicyOutput(np.maximum(d, u), np.array([0.8, 0.8]), np.maximum(d, u), "x", scan_down=d, scan_up=u)
    np.testing.assert_array_equal(out.side("long"), d)
    np.testing.assert_array_equal(out.side("short"), u)
    with pytest.raises(PolicyError, match="max"):
        PolicyOutput(d, np.array([0.8, 0.8]), d, "x", scan_down=d, scan_up=u)
    with pytest.raises(PolicyError, match="together"):
        PolicyOutput(d, np.array([0.8, 0.8]), d, "x", scan_down=d)


def test_predictive_per_side_and_symmetric_max():
    inputs, p = _inputs()
    out = PredictivePolicy(addon=0.0)(inputs)
    sig = 0.03
    np.testing.assert_allclose(out.scan_down, -np.expm1(-2.5 * sig))
    np.testing.assert_allclose(out.scan_up, np.expm1(2.6 * sig))
    np.testing.assert_allclose(out.scan_range, np.maximum(out.scan_down, out.scan_up))
    wrapped = make_policy({"kind": "predictive", "name": "p", "buffer": 0.25, "addon": 0.0})(inputs)
    np.testing.assert_allclose(wrapped.scan_range, np.fmax(wrapped.scan_down, wrapped.scan_up))
    np.testing.assert_allclose(wrapped.scan_down, buffer_release(out.scan_down, 0.25, 0.02))


def _smooth_inputs(T=900, seed=2):
    """Synthetic market whose k-day forecast sees a volatility rise 5 days before it starts."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2018-01-01", periods=T, freq="D")
    vol = np.full(T, 0.02)
    for s0 in range(400, T - 40, 120):
        vol[s0: s0 + 20] = 0.06
    r = (rng.standard_normal((T, 1)) * vol[:, None])
    z = stats.norm.ppf(0.99)
    sig1 = vol[:, None].copy()                                  # h=1 forecast: knows today's regime only
    sig1[1:] = vol[:-1, None]
    k = 5
    fut = pd.Series(vol ** 2).rolling(k).mean().shift(-k).bfill().ffill().to_numpy()   # mean daily var next k days
    sigk = np.sqrt(k * fut)[:, None]
    fc = {"m": ForecastArrays(sig1, -z * sig1, z * sig1), "m_k": ForecastArrays(sigk, -z * sigk, z * sigk)}
    return RiskInputs(dates, ("X",), r, 1, fc)


def test_smooth_policy_lookahead_makes_speed_limit_affordable():
    from margin.simulation.procyclicality import largest_increase

    inputs = _smooth_inputs()
    common = dict(kind="predictive_smooth", model="m", max_rise=0.08, max_release=0.03, calib_window=None,
                  calib_min_periods=100)
    no_look_soft = make_policy({**common, "name": "a", "coverage_floor": 0.0})(inputs)
    look_soft = make_policy({**common, "name": "b", "coverage_floor": 0.0, "lookahead_model": "m_k",
                             "lookahead_horizon": 5, "lookahead_weight": 1.0})(inputs)
    no_look_hard = make_policy({**common, "name": "c"})(inputs)
    R = np.asarray(inputs.log_returns)
    ev = slice(400, None)
    fwd = np.full_like(R, np.nan)
    fwd[:-1] = R[1:]

    def exceptions(out):
        return int(np.sum(fwd[ev] < np.log1p(-out.scan_down[ev]))) + int(np.sum(fwd[ev] > np.log1p(out.scan_up[ev])))

    # same step limit: without foresight coverage is lost; with it, it is kept
    assert exceptions(look_soft) < 0.6 * exceptions(no_look_soft)
    # with a hard coverage floor and no foresight the path jumps instead
    assert largest_increase(look_soft.scan_range[ev, 0], 1) < largest_increase(no_look_hard.scan_range[ev, 0], 1)
    assert isinstance(no_look_hard.scan_down, np.ndarray) and no_look_hard.name == "c"


def test_smooth_policy_bad_parameters():
    inputs = _smooth_inputs(T=300)
    with pytest.raises(PolicyError, match="lookahead_horizon"):
        make_policy({"kind": "predictive_smooth", "model": "m", "lookahead_model": "m_k",
                     "lookahead_horizon": 0})(inputs)
    # k <= h: the h-day requirement already looks k days ahead; the policy runs without foresight, and says so
    with pytest.warns(UserWarning, match="without foresight"):
        with_k1 = make_policy({"kind": "predictive_smooth", "model": "m", "lookahead_model": "m_k",
                               "lookahead_horizon": 1})(inputs)
    without = make_policy({"kind": "predictive_smooth", "model": "m"})(inputs)
    np.testing.assert_array_equal(with_k1.scan_range, without.scan_range)
    with pytest.raises(PolicyError, match="max_rise"):
        make_policy({"kind": "predictive_smooth", "model": "m", "max_rise": 0})(inputs)
    with pytest.raises(PolicyError, match="calib|level"):
        make_policy({"kind": "predictive_smooth", "model": "m", "calib_level": 1.5})(inputs)


def test_static_default_tier_for_unknown_asset():
    from margin.simulation.policies import missing_asset_values

    inputs, _ = _inputs()
    inputs = RiskInputs(inputs.dates, ("BTC", "SOL"), inputs.log_returns, 1, inputs.forecasts)
    strict = make_policy({"kind": "static", "name": "s", "scan_range": {"BTC": 0.16}})
    with pytest.raises(PolicyError, match="scan_range: no value for asset 'SOL'"):
        strict(inputs)
    assert missing_asset_values(strict, inputs.assets) == ["s: scan_range: no value for asset 'SOL'"]
    pol = make_policy({"kind": "static", "name": "s", "scan_range": {"BTC": 0.16}, "default_scan_range": 0.2,
                       "mm_factor": {"BTC": 0.6}, "default_mm_factor": 0.5})
    out = pol(inputs)
    np.testing.assert_allclose(out.scan_range[0], [0.16, 0.2])
    np.testing.assert_allclose(out.mm_factor, [0.6, 0.5])
    assert missing_asset_values(pol, inputs.assets) == []


@pytest.mark.parametrize("name", ["static", "static_dydx", "predictive_smooth", "predictive_smooth_nolook"])
def test_policy_configs_load(name):
    from experiments.backtest import load_policy_config

    cfg = load_policy_config(name)
    pol = make_policy(cfg)
    inputs, _ = _inputs()
    if name.startswith("static"):
        out = pol(RiskInputs(inputs.dates, ("SOL",), inputs.log_returns[:, :1], 1, {}))
        assert np.all(out.scan_range > 0)                       # a new asset gets the documented default tier
    else:  # the default backtest trains every model the smooth policies need (conf/backtest.yaml models)
        from omegaconf import OmegaConf

        from predictive.training import CONF_DIR

        inner = getattr(pol, "inner", pol)                      # wrapped when an Art. 28 tool is on
        assert inner.name == name and pol.name.startswith(name)
        models = OmegaConf.load(CONF_DIR / "backtest.yaml").models
        assert inner.model in models and (inner.lookahead_model is None or inner.lookahead_model in models)
