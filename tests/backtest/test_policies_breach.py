"""Ad-hoc call after a breach (SmoothPredictivePolicy.breach_reset) and per-side calibration levels: plain-loop
reference of the extended speed_limited_path, default parameters reproduce the plain path, bad parameters."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from margin.simulation.policies import (ForecastArrays, PolicyError, RiskInputs, make_policy,
                                        speed_limited_path)


def _loop_breach(target, floor, rise, release, moves, reset, trigger, h):
    """Plain-loop reference of speed_limited_path(..., moves=, reset=, trigger=, horizon=h)."""
    T, A = target.shape
    out = np.full_like(target, np.nan)
    for a in range(A):
        prev = None
        for t in range(T):
            g, f = target[t, a], floor[t, a]
            if np.isnan(g) or np.isnan(f):
                continue
            m = max(g, f) if prev is None else max(f, prev * (1 - release), min(g, prev * (1 + rise)))
            if t >= h and not np.isnan(out[t - h, a]) and not np.isnan(moves[t, a]) \
                    and moves[t, a] > trigger * out[t - h, a] and not np.isnan(reset[t, a]):
                m = max(m, reset[t, a])
            out[t, a] = m
            prev = m
    return out


@pytest.fixture
def series():
    rng = np.random.default_rng(7)
    T, A = 300, 3
    target = 0.05 * np.exp(np.cumsum(0.08 * rng.standard_normal((T, A)), 0))
    floor = 0.8 * target
    floor[50:53, 1] = np.nan                                     # skipped rows
    moves = np.abs(rng.standard_normal((T, A))) * 0.05           # some exceed the margin, some do not
    moves[0] = np.nan
    reset = np.maximum(target, 1.3 * moves)
    reset[100, 0] = np.nan
    return target, floor, moves, reset


@pytest.mark.parametrize("h,trigger", [(1, 1.0), (1, 0.6), (3, 0.8)])
def test_breach_path_matches_loop(series, h, trigger):
    target, floor, moves, reset = series
    got = speed_limited_path(target, floor, 0.03, 0.02, moves=moves, reset=reset, trigger=trigger, horizon=h)
    ref = _loop_breach(target, floor, 0.03, 0.02, moves, reset, trigger, h)
    np.testing.assert_allclose(got, ref, rtol=1e-12, equal_nan=True)
    plain = speed_limited_path(target, floor, 0.03, 0.02)
    assert np.nanmax(got - plain) > 0.01                         # the calls happened and raised margin
    assert np.all(got[np.isfinite(got)] >= plain[np.isfinite(got)] - 1e-15)   # a call only ever adds margin


def test_no_breach_is_the_plain_path(series):
    target, floor, moves, reset = series
    never = speed_limited_path(target, floor, 0.03, 0.02, moves=np.zeros_like(moves), reset=reset)
    np.testing.assert_allclose(never, speed_limited_path(target, floor, 0.03, 0.02), rtol=1e-12, equal_nan=True)


def test_breach_jumps_past_the_rise_limit():
    target = np.full((10, 1), 0.05)
    target[5:] = 0.20                                            # the requirement quadruples after a crash day
    moves = np.zeros_like(target)
    moves[5] = 0.30                                              # the crash: 30% against the side, margin 5%
    floor = np.zeros_like(target)
    plain = speed_limited_path(target, floor, 0.05, 0.02)[:, 0]
    call = speed_limited_path(target, floor, 0.05, 0.02, moves=moves, reset=target, trigger=1.0)[:, 0]
    assert plain[5] == pytest.approx(0.0525) and call[5] == pytest.approx(0.20)
    stressed = speed_limited_path(target, floor, 0.05, 0.02, moves=moves, reset=np.fmax(target, 1.0 * moves))
    assert stressed[5, 0] == pytest.approx(0.30)                 # breach_move = 1: at least the move just seen
    late = moves.copy()
    late[5], late[6] = 0.0, 0.04                                 # a move below the margin set for it: no call
    np.testing.assert_allclose(speed_limited_path(target, floor, 0.05, 0.02, moves=late, reset=target)[:, 0], plain)


def test_bad_breach_parameters(series):
    target, floor, moves, reset = series
    with pytest.raises(PolicyError, match="breach_trigger"):
        speed_limited_path(target, floor, 0.03, 0.02, moves=moves, reset=reset, trigger=0.0)
    with pytest.raises(PolicyError, match="reset"):
        speed_limited_path(target, floor, 0.03, 0.02, moves=moves)
    with pytest.raises(PolicyError, match="moves"):
        speed_limited_path(target, floor, 0.03, 0.02, moves=moves[:-1], reset=reset)
    inputs = _inputs()
    for bad in ({"breach_trigger": 1.5}, {"breach_trigger": 0.0}, {"breach_move": -0.1},
                {"calib_level_down": 1.0}, {"calib_level_up": 0.3}):
        with pytest.raises(PolicyError, match=next(iter(bad))):
            make_policy({"kind": "predictive_smooth", "model": "m", **bad})(inputs)


def _inputs(T=700, seed=3):
    rng = np.random.default_rng(seed)
    vol = np.full(T, 0.02)
    vol[500:530] = 0.06                                          # an unforecast stress episode
    r = rng.standard_normal((T, 1)) * vol[:, None]
    z = stats.norm.ppf(0.99)
    sig = np.full((T, 1), 0.02)
    sig[1:] = vol[:-1, None]                                     # knows yesterday's regime only
    return RiskInputs(pd.date_range("2018-01-01", periods=T, freq="D"), ("X",), r, 1,
                      {"m": ForecastArrays(sig, -z * sig, z * sig)})


def test_policy_defaults_reproduce_and_breach_reset_cuts_exceptions():
    inputs = _inputs()
    common = dict(kind="predictive_smooth", model="m", max_rise=0.01, max_release=0.02, coverage_floor=0.5,
                  calib_window=None, calib_min_periods=100)
    base = make_policy({**common, "name": "a"})(inputs)
    same = make_policy({**common, "name": "b", "breach_reset": False, "breach_trigger": 0.5,
                        "calib_level_down": None, "calib_level_up": None})(inputs)
    np.testing.assert_array_equal(base.scan_down, same.scan_down)
    call = make_policy({**common, "name": "c", "breach_reset": True})(inputs)
    r = np.asarray(inputs.log_returns)[:, 0]
    fwd = np.append(r[1:], np.nan)

    def exc(out):
        return int(np.nansum(fwd < np.log1p(-out.scan_down[:, 0])) + np.nansum(fwd > np.log1p(out.scan_up[:, 0])))

    assert exc(call) < exc(base)                                 # the call restores coverage inside the episode
    assert np.all(call.scan_down >= base.scan_down - 1e-15)
    # per-side levels: a higher level on the longs' side only raises the down side
    lvl = make_policy({**common, "name": "d", "calib_level_down": 0.995, "calib_level_up": 0.99})(inputs)
    assert np.nanmean(lvl.scan_down) > np.nanmean(base.scan_down)
    np.testing.assert_allclose(lvl.scan_up, base.scan_up)
