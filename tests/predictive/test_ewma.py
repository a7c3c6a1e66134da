"""RiskMetrics EWMA against a hand-written loop of the recursion, arch's backcast, and a brute-force QML."""
import math

import numpy as np
import pandas as pd
import pytest
from arch.univariate import GARCH

from predictive.base import InsufficientDataError
from predictive.data import load_ohlcv
from predictive.ewma import EWMA, backcast
from predictive.features import build_features


@pytest.fixture(scope="module")
def feats():
    return {"BTC": build_features(load_ohlcv("BTC", start="2019-01-01", end="2020-12-31"))}


def loop_forecasts(returns, lam, s2):
    """Forecast made after each return: s2 <- lam s2 + (1 - lam) r^2 (RiskMetrics 1996)."""
    out = []
    for r in returns:
        s2 = lam * s2 + (1 - lam) * r * r
        out.append(s2)
    return out


def loop_backcast(returns):
    m = min(75, len(returns))
    w = [0.94**k for k in range(m)]
    return sum(wk * r * r for wk, r in zip(w, returns[:m])) / sum(w)


def test_backcast_equals_arch(feats):
    r = feats["BTC"]["log_return"].to_numpy()[1:] * 100
    assert backcast(r) == pytest.approx(GARCH().backcast(r), rel=1e-14)
    assert backcast(r[:40]) == pytest.approx(loop_backcast(list(r[:40])), rel=1e-13)


@pytest.mark.parametrize("lam", [0.94, 0.97, 0.5])
def test_forecasts_equal_loop(feats, lam):
    model = EWMA(lam=lam).fit(feats)
    r = feats["BTC"]["log_return"].tolist()[1:]
    s2_0 = loop_backcast(r)
    ref = [s2_0] + loop_forecasts(r, lam, s2_0)  # row 0 (no return yet) forecasts the first return
    for h in (1, 5):
        fc = model.forecast(feats, h)["BTC"]
        np.testing.assert_allclose(fc.variance, h * np.asarray(ref), rtol=1e-12)
        z99 = 2.3263478740408408  # Phi^{-1}(0.99)
        np.testing.assert_allclose(fc.quantiles[0.99], z99 * np.sqrt(h * np.asarray(ref)), rtol=1e-10)
        np.testing.assert_allclose(fc.quantiles[0.01], -fc.quantiles[0.99], rtol=1e-12)
        np.testing.assert_allclose(fc.sigma_annualised(), np.sqrt(np.asarray(ref) * 365), rtol=1e-12)


def test_fitted_lambda_maximises_gaussian_likelihood(feats):
    model = EWMA(fit_lambda=True).fit(feats)
    lam_hat = model.params_["BTC"]["lam"]
    r = feats["BTC"]["log_return"].tolist()[1:]
    s2_0 = loop_backcast(r)

    def qml(lam):
        s2 = [s2_0] + loop_forecasts(r, lam, s2_0)[:-1]
        return -0.5 * sum(math.log(v) + x * x / v for v, x in zip(s2, r))

    grid = np.arange(0.50, 0.9999, 0.005)
    best = grid[int(np.argmax([qml(g) for g in grid]))]
    assert abs(lam_hat - best) <= 0.005
    assert qml(lam_hat) >= max(qml(best), qml(0.94)) - 1e-9


@pytest.mark.parametrize("lam", [0.0, 1.0, 1.5, -0.1, float("nan"), "abc"])
def test_lambda_outside_unit_interval_rejected(lam):
    with pytest.raises(ValueError) as err:
        EWMA(lam=lam)
    assert repr(lam) in str(err.value)


def test_bad_horizon_short_series_and_interior_nan(feats):
    model = EWMA().fit(feats)
    for h in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"got {h!r}"):
            model.forecast(feats, h)
    with pytest.raises(InsufficientDataError, match="has 19 usable rows, needs at least 30"):
        EWMA().fit({"BTC": feats["BTC"].iloc[:20]})
    bad = feats["BTC"].copy()
    bad.iloc[100, bad.columns.get_loc("log_return")] = np.nan
    with pytest.raises(ValueError, match="row 100"):
        model.forecast({"BTC": bad}, 1)
    with pytest.raises(KeyError, match="ETH"):
        model.forecast({"ETH": feats["BTC"]}, 1)
    assert isinstance(feats["BTC"].index, pd.DatetimeIndex)
