"""HAR-RV: coefficients equal to a reference built with explicit loops and solved by the normal equations,
forecasts = design x coefficients with the positivity floor, errors on bad input."""
import numpy as np
import pandas as pd
import pytest

from predictive.base import InsufficientDataError
from predictive.data import load_ohlcv
from predictive.features import build_features
from predictive.har import HARRV
from predictive.intraday import load_hourly


@pytest.fixture(scope="module")
def feats():
    daily = load_ohlcv("ETH", start="2018-01-01", end="2020-12-31")
    hourly = load_hourly("ETH", start="2018-01-01", end="2020-12-31 23:00")
    return {"ETH": build_features(daily, hourly)}


def loop_reference(rv, h):
    """Rows t with a full 30-day window and a known h-day target; regress sum rv[t+1..t+h] on
    [1, rv_t, mean(rv[t-6..t]), mean(rv[t-29..t])] by the normal equations."""
    X, y = [], []
    for t in range(29, len(rv) - h):
        w = sum(rv[t - 6:t + 1]) / 7
        m = sum(rv[t - 29:t + 1]) / 30
        X.append([1.0, rv[t], w, m])
        y.append(sum(rv[t + 1:t + h + 1]))
    X, y = np.array(X), np.array(y)
    return np.linalg.solve(X.T @ X, X.T @ y)


@pytest.mark.parametrize("h", [1, 5])
def test_coefficients_equal_loop_reference(feats, h):
    model = HARRV(horizons=(h,)).fit(feats)
    ref = loop_reference(feats["ETH"]["rv"].tolist(), h)
    np.testing.assert_allclose(model.coef_["ETH"][h], ref, rtol=1e-7)


def test_lazy_horizon_fit_equals_direct(feats):
    model = HARRV(horizons=(1,)).fit(feats)
    model.forecast(feats, 3)
    np.testing.assert_allclose(model.coef_["ETH"][3], loop_reference(feats["ETH"]["rv"].tolist(), 3), rtol=1e-7)


def test_forecast_is_design_times_coef_with_floor(feats):
    model = HARRV(horizons=(5,)).fit(feats)
    rv = feats["ETH"]["rv"].tolist()
    b = model.coef_["ETH"][5]
    floor = 0.05 * np.mean(rv) * 5
    fc = model.forecast(feats, 5)["ETH"]
    for t in (0, 3, 29, 400, len(rv) - 1):
        k7, k30 = min(7, t + 1), min(30, t + 1)  # partial windows before a full month of history
        x = [1.0, rv[t], sum(rv[t - k7 + 1:t + 1]) / k7, sum(rv[t - k30 + 1:t + 1]) / k30]
        assert fc.variance[t] == pytest.approx(max(float(np.dot(x, b)), floor), rel=1e-10)
    assert np.all(fc.variance > 0)


def test_floor_binds_after_calm_spell(feats):
    model = HARRV(horizons=(1,)).fit(feats)
    calm = feats["ETH"].copy()
    calm.loc[calm.index[-60:], "rv"] = 0.0  # a market that stops moving: raw OLS prediction is b0 only
    b0 = model.coef_["ETH"][1][0]
    fc = model.forecast({"ETH": calm}, 1)["ETH"]
    floor = model.floor_["ETH"]
    assert fc.variance[-1] == pytest.approx(max(b0, floor), rel=1e-12)
    assert np.all(fc.variance >= floor)


def test_bad_input(feats):
    with pytest.raises(InsufficientDataError, match="needs at least"):
        HARRV().fit({"ETH": feats["ETH"].iloc[:50]})
    model = HARRV().fit(feats)
    with pytest.raises(ValueError, match="got 0"):
        model.forecast(feats, 0)
    bad = feats["ETH"].copy()
    bad.iloc[10, bad.columns.get_loc("rv")] = -1e-4
    with pytest.raises(ValueError, match=r"rv at row 10 .*-0.0001"):
        model.forecast({"ETH": bad}, 1)
    with pytest.raises(ValueError, match="got 0"):
        HARRV(horizons=(0,))
    assert isinstance(feats["ETH"].index, pd.DatetimeIndex)
