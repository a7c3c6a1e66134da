"""Every baseline model behind the one interface: built from its conf/model config, fitted on two assets, a
forecast at every row with valid quantiles, and NO look-ahead (perturbing daily, hourly and funding data after
day t leaves every forecast at rows <= t unchanged)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import optimize
from scipy.stats import norm

from predictive.base import (VolatilityForecast, VolatilityModel, gaussian_quantiles, mixture_quantiles)
from predictive.data import load_ohlcv
from predictive.features import build_features
from predictive.intraday import load_funding, load_hourly
from predictive.models import MODEL_NAMES, make_model

CONF = Path(__file__).resolve().parents[2] / "conf" / "model"
BASELINES = ("ewma", "garch", "har", "hmm")
FIT_END = pd.Timestamp("2019-12-31")
T_CUT = pd.Timestamp("2020-03-11")


def perturb_after(daily, hourly, funding, t, seed=0):
    """Copies with every observation after the end of day t changed."""
    rng = np.random.default_rng(seed)
    d, h, f = daily.copy(), hourly.copy(), funding.copy()
    cols = ["open", "high", "low", "close"]
    rows = d.index > t
    d.loc[rows, cols] = d.loc[rows, cols].to_numpy() * rng.uniform(0.7, 1.3, (rows.sum(), 1))
    d.loc[rows, "high"] *= 1 + rng.uniform(0, 0.05, rows.sum())
    rows = h.index >= t + pd.Timedelta(days=1)
    h.loc[rows, cols] = h.loc[rows, cols].to_numpy() * rng.uniform(0.9, 1.1, (rows.sum(), 1))
    rows = f.index >= t + pd.Timedelta(days=1)
    f.loc[rows, "funding_rate"] += rng.normal(0, 1e-3, rows.sum())
    return d, h, f


@pytest.fixture(scope="module")
def data():
    base, pert = {}, {}
    for asset in ("BTC", "ETH"):
        raw = (load_ohlcv(asset, start="2018-01-01", end="2020-09-30"),
               load_hourly(asset, start="2018-01-01", end="2020-09-30 23:00"),
               load_funding(asset).loc[:"2020-09-30"])
        base[asset] = build_features(*raw)
        pert[asset] = build_features(*perturb_after(*raw, T_CUT, seed=len(asset) + ord(asset[0])))
    return base, pert


@pytest.fixture(scope="module")
def fitted(data):
    base, _ = data
    train = {a: f.loc[:FIT_END] for a, f in base.items()}
    models = {}
    for name in BASELINES:
        cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
        models[name] = make_model(**cfg).fit(train)
    return models


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("h", [1, 5])
def test_forecast_contract(data, fitted, name, h):
    base, _ = data
    model = fitted[name]
    assert isinstance(model, VolatilityModel) and model.name == name
    out = model.forecast(base, h)
    assert set(out) == {"BTC", "ETH"}
    for asset, fc in out.items():
        assert isinstance(fc, VolatilityForecast) and fc.horizon == h
        assert fc.index.equals(base[asset].index)
        assert fc.variance.dtype == np.float64 and np.all(np.isfinite(fc.variance)) and np.all(fc.variance > 0)
        levels = sorted(fc.quantiles)
        assert 0.01 in levels and 0.99 in levels
        qs = np.stack([fc.quantiles[q] for q in levels])
        assert np.all(np.isfinite(qs)) and np.all(np.diff(qs, axis=0) > 0)
        assert np.all(fc.quantiles[0.01] < 0) and np.all(fc.quantiles[0.99] > 0)
        if fc.regime_probs is not None:
            np.testing.assert_allclose(fc.regime_probs.sum(1), 1.0, rtol=1e-10)


@pytest.mark.parametrize("name", BASELINES)
def test_no_look_ahead(data, fitted, name):
    base, pert = data
    model = fitted[name]
    for h in (1, 5):
        a, b = model.forecast(base, h), model.forecast(pert, h)
        for asset in base:
            upto = base[asset].index <= T_CUT
            np.testing.assert_array_equal(a[asset].variance[upto], b[asset].variance[upto])
            for q in (0.01, 0.99):
                np.testing.assert_array_equal(a[asset].quantiles[q][upto], b[asset].quantiles[q][upto])
            if a[asset].regime_probs is not None:
                np.testing.assert_array_equal(a[asset].regime_probs[upto], b[asset].regime_probs[upto])
            # the perturbation does reach the forecasts after t
            assert not np.allclose(a[asset].variance[~upto], b[asset].variance[~upto])


def test_registry_and_errors():
    assert set(BASELINES) <= set(MODEL_NAMES) and "regime_net" in MODEL_NAMES
    with pytest.raises(ValueError, match="'lstm'"):
        make_model("lstm")
    with pytest.raises(ValueError, match="1.2"):
        make_model("ewma", lam=1.2)
    with pytest.raises(ValueError, match="got 0"):
        make_model("hmm", n_regimes=0)
    with pytest.raises(TypeError):
        make_model("har", bogus=1)


def test_forecast_requires_fit_and_both_quantiles(data):
    base, _ = data
    with pytest.raises(RuntimeError, match="fit"):
        make_model("ewma").forecast(base, 1)
    idx = base["BTC"].index[:3]
    with pytest.raises(ValueError, match="0.99"):
        VolatilityForecast(idx, 1, np.ones(3), {0.01: -np.ones(3)})


def test_mixture_quantiles_against_root_finding():
    rng = np.random.default_rng(3)
    w = rng.dirichlet(np.ones(3), size=5)
    s = rng.uniform(0.005, 0.08, (5, 3))
    m = rng.normal(0, 0.01, (5, 3))
    q = mixture_quantiles(w, s, (0.01, 0.5, 0.99), means=m)
    for i in range(5):
        for level in (0.01, 0.5, 0.99):
            ref = optimize.brentq(lambda x: (w[i] * norm.cdf((x - m[i]) / s[i])).sum() - level, -2, 2, xtol=1e-14)
            assert q[level][i] == pytest.approx(ref, abs=1e-10)
    g = gaussian_quantiles(np.array([4e-4]), (0.01, 0.99))
    assert g[0.99][0] == pytest.approx(norm.ppf(0.99, scale=0.02), rel=1e-12)
    with pytest.raises(ValueError, match="sigmas"):
        mixture_quantiles(w, -s)


def test_make_model_takes_the_app_settings_once():
    """horizon, seed and progress reach every model that takes them, with or without the same key in the config."""
    from predictive.models import build_model

    net_cfg = OmegaConf.to_container(OmegaConf.load(CONF / "regime_net.yaml"))
    net_cfg["progress"] = True  # the crash of issue 9: the config and the app both set progress
    m = build_model(net_cfg, horizon=7, seed=3, progress=True)
    assert (m.horizon, m.config.seed, m.progress) == (7, 3, True) and 7 in m.heads and 5 in m.heads
    name = net_cfg.pop("name")
    net_cfg.pop("progress")
    m = make_model(name, horizon=2, seed=4, progress=False, **net_cfg)
    assert (m.horizon, m.config.seed, m.progress, m.heads[0]) == (2, 4, False, 2)
    assert make_model("hmm", seed=9, horizon=5, progress=True).seed == 9
    assert 10 in make_model("har", horizon=10).horizons
    assert make_model("ewma", horizon=5, seed=1, progress=True).lam == 0.94  # ignored where not taken
    assert build_model({"name": "garch", "seed": 1, "horizon": 3}, horizon=5).scale == 100.0
