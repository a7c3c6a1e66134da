"""GARCH(1,1): log-likelihood parity with arch at fixed parameters, fitted parameters close to arch's fit,
forecasts equal to arch's analytic forecasts, and invalid parameters refused."""
import warnings

import numpy as np
import pandas as pd
import pytest
from arch import arch_model

from predictive.data import load_ohlcv
from predictive.features import build_features
from predictive.garch import GARCH11, fit_garch, garch_loglikelihood, garch_variance


def pct_returns(asset, start, n=1000):
    close = load_ohlcv(asset)["close"]
    r = 100 * np.log(close / close.shift(1)).loc[start:].iloc[:n]
    assert len(r) == n
    return r.to_numpy()


def arch_zero_garch(y):
    return arch_model(y, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=False)


@pytest.fixture(scope="module")
def btc_1000():
    return pct_returns("BTC", "2020-11-01")  # 1000 daily returns 2020-11-01 .. 2023-07-28


@pytest.mark.parametrize("params", [(0.3, 0.06, 0.91), (1.5, 0.15, 0.6), (0.05, 0.01, 0.985)])
def test_loglik_equals_arch_at_fixed_params(btc_1000, params):
    ref = arch_zero_garch(btc_1000).fix(list(params)).loglikelihood
    ours = garch_loglikelihood(params, btc_1000)
    assert abs(ours - ref) <= 1e-6 * abs(ref)


def test_conditional_variance_equals_arch(btc_1000):
    params = (0.3, 0.06, 0.91)
    ref = arch_zero_garch(btc_1000).fix(list(params)).conditional_volatility ** 2
    np.testing.assert_allclose(garch_variance(params, btc_1000)[:-1], ref, rtol=1e-10)


@pytest.mark.parametrize("asset, start", [("BTC", "2020-11-01"), ("ETH", "2019-09-17")])
def test_fit_close_to_arch(asset, start):
    y = pct_returns(asset, start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = arch_zero_garch(y).fit(disp="off")
    ours, ll, converged = fit_garch(y)
    assert converged
    omega, alpha, beta = res.params.to_numpy()
    assert abs(ours.alpha - alpha) < 5e-2 and abs(ours.beta - beta) < 5e-2
    assert abs(ll - res.loglikelihood) <= 1e-3 * abs(res.loglikelihood)
    assert ll >= res.loglikelihood - 1e-6 * abs(res.loglikelihood)  # at least as good as arch's optimum


def test_fit_never_worse_than_arch_on_two_optimum_slice():
    """BTC 2021-04-06 .. 2023-12-31 has a second optimum near integration (alpha ~ 0.003, beta ~ 0.995).
    Whatever point each optimiser lands on, ours must score at least arch's optimum under ARCH's own
    log-likelihood."""
    y = pct_returns("BTC", "2021-04-06")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = arch_zero_garch(y).fit(disp="off")
    ours, ll, _ = fit_garch(y)
    arch_ll_at_ours = arch_zero_garch(y).fix(list(ours)).loglikelihood
    assert abs(arch_ll_at_ours - ll) <= 1e-6 * abs(ll)
    assert arch_ll_at_ours >= res.loglikelihood - 1e-6 * abs(res.loglikelihood)


def test_forecasts_equal_arch_analytic(btc_1000):
    idx = pd.date_range("2020-11-01", periods=btc_1000.size + 1, freq="D")
    frame = pd.DataFrame({"log_return": np.concatenate([[np.nan], btc_1000 / 100])}, index=idx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = arch_zero_garch(btc_1000).fit(disp="off")
    params = tuple(res.params.to_numpy())
    model = GARCH11(fixed_params=params).fit({"BTC": frame})
    ref = res.forecast(horizon=10, reindex=False).variance.to_numpy()[0]  # percent^2, steps 1..10 from last obs
    for h in (1, 5, 10):
        fc = model.forecast({"BTC": frame}, h)["BTC"]
        assert fc.variance[-1] * 1e4 == pytest.approx(ref[:h].sum(), rel=1e-9)
    # in-sample one-step forecasts equal arch's conditional variance of the next day
    fc1 = model.forecast({"BTC": frame}, 1)["BTC"]
    np.testing.assert_allclose(fc1.variance[:-1] * 1e4, res.conditional_volatility**2, rtol=1e-9)


@pytest.mark.parametrize("params, token", [((0.1, 0.2, 0.8), "= 1.0"), ((0.1, 0.5, 0.6), "= 1.1"),
                                           ((-0.1, 0.1, 0.8), "-0.1"), ((0.1, -0.05, 0.8), "-0.05"),
                                           ((float("nan"), 0.1, 0.8), "nan")])
def test_invalid_params_refused(btc_1000, params, token):
    with pytest.raises(ValueError) as err:
        garch_loglikelihood(params, btc_1000)
    assert token in str(err.value)
    with pytest.raises(ValueError):
        GARCH11(fixed_params=params)


def test_alpha_plus_beta_message():
    with pytest.raises(ValueError, match=r"alpha \+ beta must be < 1.*alpha=0.3.*beta=0.7"):
        GARCH11(fixed_params=(0.1, 0.3, 0.7))


def test_model_fit_scales_to_percent():
    feats = {"ETH": build_features(load_ohlcv("ETH", start="2019-09-16", end="2022-06-12"))}
    model = GARCH11().fit(feats)
    p = model.params_["ETH"]
    y = 100 * feats["ETH"]["log_return"].to_numpy()[1:]
    ours, _, _ = fit_garch(y)
    assert (p["omega"], p["alpha"], p["beta"]) == pytest.approx(tuple(ours), rel=1e-6)
    fc = model.forecast(feats, 1)["ETH"]
    s2 = garch_variance(tuple(ours), y, bc=p["backcast"])
    np.testing.assert_allclose(fc.variance, s2 / 1e4, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("asset", ["BTC", "ETH"])
def test_fit_close_to_arch_full_history(asset):
    close = load_ohlcv(asset)["close"].to_numpy()
    y = 100 * np.diff(np.log(close))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = arch_zero_garch(y).fit(disp="off")
    ours, ll, converged = fit_garch(y)
    assert converged
    np.testing.assert_allclose(tuple(ours), res.params.to_numpy(), rtol=1e-3, atol=1e-3)
    assert ll >= res.loglikelihood - 1e-6 * abs(res.loglikelihood)
