"""Forecast combination (predictive/combo.py): no look-ahead (a leaky variant is caught), weights sum to 1 and
move towards the better member, vectorised weights equal a plain-loop reference, seeds and horizons reach the
members, typed errors for bad config."""
import numpy as np
import pandas as pd
import pytest

import predictive.combo as combo_mod
from predictive.combo import ComboConfigError, ForecastCombination, combination_weights, trailing_qlike
from predictive.data import load_ohlcv
from predictive.features import build_features
from predictive.intraday import load_hourly
from predictive.models import make_model

CHEAP = ["ewma", "garch", "har"]


def combination_weights_loop(losses: np.ndarray, available: np.ndarray, horizon: int, *, window: int = 250,
                             scheme: str = "inverse", power: float = 1.0, eta: float = 0.05, floor: float = 0.05,
                             min_periods: int = 60) -> np.ndarray:
    """Plain-loop reference of :func:`predictive.combo.combination_weights` (same arguments and result)."""
    L = np.asarray(losses, np.float64)
    T, M = L.shape
    W = np.full((T, M), np.nan)
    for t in range(T):
        a = [i for i in range(M) if available[t][i]]
        if not a:
            continue
        w = [0.0] * M
        if len(a) == 1:
            w[a[0]] = 1.0
        else:
            means, enough = {}, True
            for i in a:
                vals = [L[s, i] for s in range(max(0, t - horizon - window + 1), t - horizon + 1)
                        if s >= 0 and np.isfinite(L[s, i])]
                if len(vals) < min_periods:
                    enough = False
                means[i] = sum(vals) / max(len(vals), 1)
            if enough:
                if scheme == "inverse":
                    u = {i: max(means[i], 1e-12) ** (-power) for i in a}
                else:
                    best = min(means.values())
                    u = {i: float(np.exp(-eta * window * (means[i] - best))) for i in a}
                tot = sum(u.values())
                fl = min(floor, 1.0 / len(a))
                for i in a:
                    w[i] = fl + (1.0 - len(a) * fl) * u[i] / tot
            else:
                for i in a:
                    w[i] = 1.0 / len(a)
        W[t] = w
    return W


@pytest.fixture(scope="module")
def feats():
    daily = load_ohlcv("ETH", start="2017-01-01", end="2020-12-31")
    hourly = load_hourly("ETH", start="2018-01-01", end="2020-12-31 23:00")
    return {"ETH": build_features(daily, hourly)}


def _garch_frame(n=2500, seed=0, omega=2e-5, alpha=0.1, beta=0.85):
    """Synthetic GARCH(1,1) daily returns; rv = r^2 (a noisy but unbiased proxy)."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n)
    s2 = omega / (1 - alpha - beta)
    for t in range(n):
        r[t] = np.sqrt(s2) * rng.standard_normal()
        s2 = omega + alpha * r[t] ** 2 + beta * s2
    idx = pd.date_range("2010-01-01", periods=n, freq="D")
    return pd.DataFrame({"log_return": r, "rv": np.maximum(r ** 2, 1e-12)}, index=idx)


def _forecast_table(model, frames, h):
    fc = model.forecast(frames, h)
    return {a: np.column_stack([f.variance, f.quantiles[0.01], f.quantiles[0.99]]) for a, f in fc.items()}


def _leaks(model, feats, cut, h):
    """True if forecasts at origins <= cut change when rows after cut are deleted or perturbed."""
    full = _forecast_table(model, feats, h)
    trunc = _forecast_table(model, {a: f.loc[:cut] for a, f in feats.items()}, h)
    rng = np.random.default_rng(1)
    pert = {}
    for a, f in feats.items():
        g = f.copy()
        after = g.index > cut
        g.loc[after, "log_return"] *= rng.uniform(0.2, 5.0, after.sum())
        g.loc[after, "rv"] *= rng.uniform(0.2, 5.0, after.sum())
        pert[a] = g
    perturbed = _forecast_table(model, pert, h)
    for a in feats:
        n = len(trunc[a])
        for other in (full[a][:n], perturbed[a][:n]):
            if not np.allclose(other, trunc[a], rtol=1e-10, atol=0, equal_nan=True):
                return True
    return False


@pytest.mark.parametrize("h", [1, 5])
def test_no_look_ahead(feats, h):
    model = ForecastCombination(CHEAP, horizon=h, min_periods=20, window=60).fit(
        {a: f.loc[:"2018-12-31"] for a, f in feats.items()})
    cut = pd.Timestamp("2019-09-30")
    assert not _leaks(model, feats, cut, h)


def test_no_look_ahead_check_catches_a_leak(feats, monkeypatch):
    """The same check fails for a combination that scores the forecast from s already at s + h - 1."""
    h = 5
    model = ForecastCombination(CHEAP, horizon=h, min_periods=20, window=60).fit(
        {a: f.loc[:"2018-12-31"] for a, f in feats.items()})
    honest = combination_weights

    def leaky(losses, available, horizon, **kw):
        return honest(losses, available, horizon - 1, **kw)

    monkeypatch.setattr(combo_mod, "combination_weights", leaky)
    assert _leaks(model, feats, pd.Timestamp("2019-09-30"), h)


def test_forecast_contract_and_weights_sum_to_one(feats):
    model = ForecastCombination(CHEAP, horizon=1).fit({a: f.loc[:"2018-12-31"] for a, f in feats.items()})
    fc = model.forecast(feats, 1)["ETH"]
    assert fc.variance.shape == (len(feats["ETH"]),) and fc.variance.dtype == np.float64
    ok = np.isfinite(fc.variance)
    assert ok[-500:].all() and np.all(fc.variance[ok] > 0)
    assert np.all(fc.quantiles[0.01][ok] < 0) and np.all(fc.quantiles[0.99][ok] > 0)
    W = model.last_weights_["ETH"]
    rows = np.isfinite(W).all(axis=1)
    np.testing.assert_allclose(W[rows].sum(axis=1), 1.0, atol=1e-12)
    assert np.all(W[rows] >= model.floor - 1e-12)
    assert fc.regime_probs is None                    # no member with regimes: p_high fallback is None
    # the combined log variance lies between the members' (a convex combination)
    members = np.column_stack([m.forecast(feats, 1)["ETH"].variance for m in model.members_])
    lv = np.log(fc.variance[-500:])
    assert np.all(lv >= np.log(members[-500:]).min(axis=1) - 1e-12)
    assert np.all(lv <= np.log(members[-500:]).max(axis=1) + 1e-12)


@pytest.mark.parametrize("scheme", ["inverse", "exp"])
def test_weights_move_to_the_better_member(scheme):
    """GARCH data: a GARCH(1,1) member is known better than an EWMA with a far too short memory."""
    frame = _garch_frame()
    feats = {"X": frame}
    model = ForecastCombination([{"name": "garch"}, {"name": "ewma", "lam": 0.3}], horizon=1, scheme=scheme,
                                eta=0.05, window=250, floor=0.05).fit({"X": frame.iloc[:1000]})
    model.forecast(feats, 1)
    W = model.last_weights_["X"]
    late = W[1300:]
    np.testing.assert_allclose(late.sum(axis=1), 1.0, atol=1e-12)
    assert late[:, 0].mean() > 0.55 and np.all(late[:, 0] > late[:, 1])
    # and the weight the vectorised recursion gives is what a direct computation gives at one date
    V = np.column_stack([m.forecast(feats, 1)["X"].variance for m in model.members_])
    proxy = np.r_[frame["rv"].to_numpy()[1:], np.nan]
    L = trailing_qlike(V, proxy, 1)
    t = 2000
    lbar = np.nanmean(L[t - 250:t], axis=0)
    u = lbar ** -1.0 if scheme == "inverse" else np.exp(-0.05 * 250 * (lbar - lbar.min()))
    np.testing.assert_allclose(W[t], 0.05 + 0.9 * u / u.sum(), rtol=1e-8)  # running sums: rounding


@pytest.mark.parametrize("scheme,h,window,min_periods", [("inverse", 1, 30, 10), ("exp", 5, 40, 25),
                                                         ("inverse", 3, 7, 7)])
def test_vectorised_weights_equal_loop_reference(scheme, h, window, min_periods):
    rng = np.random.default_rng(3)
    T, M = 300, 3
    L = rng.gamma(2.0, 0.3, (T, M)) * np.array([1.0, 1.3, 0.8])
    L[rng.random((T, M)) < 0.1] = np.nan
    avail = rng.random((T, M)) > 0.05
    avail[:20, 2] = False
    kw = dict(window=window, scheme=scheme, power=1.5, eta=0.1, floor=0.1, min_periods=min_periods)
    fast = combination_weights(L, avail, h, **kw)
    slow = combination_weights_loop(L, avail, h, **kw)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12, equal_nan=True)
    assert not np.allclose(fast[-50:], 1.0 / M)       # the weights do leave equal weighting


def test_seed_and_horizon_reach_members():
    model = make_model("combo", members=["regime_net_fast", "garch", {"config": "har", "windows": [5, 22]}],
                       horizon=3, seed=7)
    members = model._build_members()
    rn, har = members[0], members[2]
    assert rn.config.seed == 7 and rn.config.horizon == 3 and 3 in rn.heads and 5 in rn.heads
    assert 3 in har.horizons and har.windows == (5, 22)


@pytest.mark.parametrize("kwargs,match", [
    ({"members": ["garch"]}, "at least 2"),
    ({"members": "garch"}, "list"),
    ({"scheme": "median"}, "scheme"),
    ({"floor": 0.5}, "floor"),
    ({"window": 0}, "window"),
    ({"min_periods": 500}, "min_periods"),
    ({"horizon": 0}, "horizon"),
    ({"members": ["garch", {"name": "combo"}]}, "own member"),
    ({"members": ["garch", {"foo": 1}]}, "member"),
])
def test_bad_config_raises_typed_error(kwargs, match):
    args = {"members": CHEAP, **kwargs}
    with pytest.raises(ComboConfigError, match=match):
        ForecastCombination(**args)


def test_forecast_before_fit_raises(feats):
    with pytest.raises(RuntimeError, match="fit"):
        ForecastCombination(CHEAP).forecast(feats, 1)


def test_default_members_match_the_config_and_use_the_short_window_regime_net():
    """conf/model/combo.yaml and the class default name the same members; the RegimeNet member is the 10-day-window
    preset with the EWMA input (chosen on the 2018-2020 validation, conf/model/regime_net_l10.yaml)."""
    import inspect

    from predictive.training import model_config

    conf = model_config("combo")
    default = inspect.signature(ForecastCombination.__init__).parameters["members"].default
    assert list(conf["members"]) == list(default)
    rn = make_model("combo", horizon=1, seed=0)._build_members()[0]
    assert rn.config.lookback == 10 and "log_ewma_rel" in rn.config.inputs
    assert rn.config.n_ensemble == 1 and rn.config.max_epochs == 40
    base = model_config("regime_net")
    assert base["lookback"] == 30 and "log_ewma_rel" not in base["inputs"]  # the base preset is unchanged
