"""Evaluation: losses against direct formulas, Diebold-Mariano against scipy / a hand computation, walk-forward
strictly out of sample (perturbation test)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from predictive.base import VolatilityForecast, VolatilityModel, gaussian_quantiles
from predictive.data import load_ohlcv
from predictive.evaluation import (diebold_mariano, loss_table, mse_loss, pinball_loss, qlike_loss, summarise,
                                   walk_forward)
from predictive.features import build_features


def test_qlike_mse_pinball_match_direct_formulas():
    rng = np.random.default_rng(1)
    h, s2 = rng.uniform(1e-5, 1e-2, 50), rng.uniform(1e-5, 1e-2, 50)
    y, q = rng.normal(0, 0.05, 50), rng.normal(0, 0.05, 50)
    for i in range(50):
        assert qlike_loss(h[i:i + 1], s2[i:i + 1])[0] == pytest.approx(h[i] / s2[i] - math.log(h[i] / s2[i]) - 1,
                                                                        rel=1e-12)
        assert mse_loss(h[i:i + 1], s2[i:i + 1])[0] == pytest.approx((s2[i] - h[i]) ** 2, rel=1e-12)
        for tau in (0.01, 0.99):
            ref = tau * (y[i] - q[i]) if y[i] >= q[i] else (1 - tau) * (q[i] - y[i])
            assert pinball_loss(y[i:i + 1], q[i:i + 1], tau)[0] == pytest.approx(ref, rel=1e-12, abs=1e-15)


def test_losses_are_minimised_by_the_truth():
    # QLIKE(h, s2) is minimised at s2 = h; mean pinball over a sample is minimised at the empirical quantile
    grid = np.linspace(0.2, 3.0, 281)
    assert grid[np.argmin(qlike_loss(np.ones_like(grid), grid))] == pytest.approx(1.0)
    y = np.random.default_rng(2).standard_t(4, size=2001)
    cands = np.sort(y)
    risk = [pinball_loss(y, np.full_like(y, c), 0.99).mean() for c in cands]
    assert cands[int(np.argmin(risk))] == pytest.approx(np.quantile(y, 0.99, method="inverted_cdf"))
    with pytest.raises(ValueError, match="variance"):
        qlike_loss(np.ones(3), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="tau"):
        pinball_loss(y, y, 1.0)


def test_dm_h1_equals_one_sample_t_test():
    # with h = 1 the HLN-corrected DM statistic is exactly the one-sample t statistic of d_t
    rng = np.random.default_rng(3)
    a, b = rng.gamma(2.0, size=300), rng.gamma(2.1, size=300)
    res = diebold_mariano(a, b, horizon=1)
    ref = stats.ttest_1samp(a - b, 0.0)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-10)
    assert res.mean_diff == pytest.approx(np.mean(a - b), rel=1e-12)


def test_dm_h5_matches_hand_computation():
    rng = np.random.default_rng(4)
    e = rng.normal(size=205)
    d = np.convolve(e, np.ones(5), mode="valid")[:200] * 0.1 + 0.03  # MA(4) loss differential
    T, h = len(d), 5
    dbar = sum(d) / T
    gamma = [sum((d[t] - dbar) * (d[t - k] - dbar) for t in range(k, T)) / T for k in range(h)]
    lrv = gamma[0] + 2 * sum((1 - k / h) * gamma[k] for k in range(1, h))
    dm = dbar / math.sqrt(lrv / T) * math.sqrt((T + 1 - 2 * h + h * (h - 1) / T) / T)
    p = 2 * (1 - stats.t.cdf(abs(dm), T - 1))
    res = diebold_mariano(d, np.zeros(T), horizon=h)
    assert res.statistic == pytest.approx(dm, rel=1e-10)
    assert res.pvalue == pytest.approx(p, rel=1e-8)
    with pytest.raises(ValueError, match="index 3"):
        diebold_mariano(np.array([1.0, 2, 3, np.nan]), np.zeros(4))


class _MeanModel(VolatilityModel):
    """Toy model whose parameters depend on the fit data: s2_t = 0.5 * mean(r^2 | fit rows) + 0.5 * r_t^2."""

    name = "toy"
    min_history = 10
    seen: list = []

    def fit(self, features):
        self.level = {a: float(np.nanmean(f["log_return"] ** 2)) for a, f in features.items()}
        _MeanModel.seen.append({a: f.index[-1] for a, f in features.items()})
        return self

    def forecast(self, features, horizon):
        out = {}
        for a, f in features.items():
            r2 = np.nan_to_num(f["log_return"].to_numpy() ** 2)
            var = horizon * (0.5 * self.level[a] + 0.5 * r2)
            out[a] = VolatilityForecast(f.index, horizon, var, gaussian_quantiles(var))
        return out


@pytest.fixture(scope="module")
def feats():
    return {a: build_features(load_ohlcv(a).loc["2022-01-01":"2023-12-31"]) for a in ("BTC", "ETH")}


def _perturb(feats, cut, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for a, f in feats.items():
        g = f.copy()
        late = g.index > cut
        for c in ("log_return", "rv", "rv_7", "rv_30", "garman_klass", "parkinson"):
            g.loc[late, c] = g.loc[late, c].to_numpy() * rng.uniform(0.2, 5.0, late.sum())
        out[a] = g
    return out


def test_walk_forward_origins_refits_and_targets(feats):
    _MeanModel.seen = []
    wf = walk_forward(_MeanModel, feats, 3, "2023-03-01", "2023-06-30", refit_every=30, train_end="2023-02-15")
    f = wf["BTC"]
    assert f.index[0] == pd.Timestamp("2023-02-28") and f.index[-1] == pd.Timestamp("2023-06-27")
    assert len(_MeanModel.seen) == math.ceil(len(f) / 30)
    assert _MeanModel.seen[0]["BTC"] == pd.Timestamp("2023-02-15")  # first fit capped at train_end
    fit_ends = sorted(set(f["fit_end"]))
    assert [s["BTC"] for s in _MeanModel.seen] == fit_ends
    assert (f["fit_end"] <= f.index).all()
    r = feats["BTC"]["log_return"]
    t = pd.Timestamp("2023-04-10")
    assert f.loc[t, "y"] == pytest.approx(r.loc[t + pd.Timedelta(days=1): t + pd.Timedelta(days=3)].sum(), rel=1e-12)
    with pytest.raises(ValueError, match="leak"):
        walk_forward(_MeanModel, feats, 1, "2023-03-01", "2023-06-30", train_end="2023-03-05")


@pytest.mark.parametrize("factory", ["toy", "ewma_fitted"])
def test_walk_forward_never_uses_data_after_the_origin(feats, factory):
    from predictive.models import make_model

    make = _MeanModel if factory == "toy" else (lambda: make_model("ewma", fit_lambda=True))
    cut = pd.Timestamp("2023-05-20")
    base = walk_forward(make, feats, 1, "2023-03-01", "2023-08-31", refit_every=45)
    pert = walk_forward(make, _perturb(feats, cut), 1, "2023-03-01", "2023-08-31", refit_every=45)
    for a in feats:
        early = base[a].index <= cut
        cols = ["variance", "q_0.01", "q_0.99"]
        np.testing.assert_array_equal(base[a].loc[early, cols].to_numpy(), pert[a].loc[early, cols].to_numpy())
        assert not np.allclose(base[a].loc[~early, "variance"], pert[a].loc[~early, "variance"])


def test_summary_matches_loss_table_and_kupiec(feats):
    from predictive.coverage import kupiec_pof

    wf = walk_forward(_MeanModel, feats, 1, "2023-01-01", "2023-12-31", refit_every=400)
    s = summarise(wf, 1).set_index("asset")
    f = wf["ETH"].dropna(subset=["y", "rv_h"])
    lt = loss_table(wf["ETH"])
    assert s.loc["ETH", "qlike"] == pytest.approx(np.mean(f.rv_h / f.variance - np.log(f.rv_h / f.variance) - 1))
    assert s.loc["ETH", "pinball_0.99"] == pytest.approx(lt["pinball_0.99"].mean())
    exc = (f.y > f["q_0.99"]).to_numpy()
    assert s.loc["ETH", "exceed_99"] == pytest.approx(exc.mean())
    assert s.loc["ETH", "kupiec99_p"] == pytest.approx(kupiec_pof(exc, 0.99).pvalue)


def test_day_to_day_variability_matches_a_plain_loop():
    from predictive.evaluation import day_to_day_variability

    v = np.exp(np.random.default_rng(3).normal(-8, 0.6, 400))
    d = [abs(math.log(v[i] / v[i - 1])) for i in range(1, len(v))]
    got = day_to_day_variability(v)
    assert got["dlogvar_med"] == pytest.approx(float(np.median(d)), rel=1e-12)
    assert got["dlogvar_p99"] == pytest.approx(float(np.quantile(d, 0.99)), rel=1e-12)
    assert got["dlogvar_max"] == pytest.approx(max(d), rel=1e-12)
    assert got["share_day_x2"] == pytest.approx(sum(x >= math.log(2) for x in d) / len(d))
    assert math.isnan(day_to_day_variability(v[:1])["dlogvar_med"])


@pytest.mark.slow
def test_leave_one_asset_out_walk_forward_has_no_look_ahead():
    """RegimeNet trained on BTC only, scored on the unseen ETH (daily bars only): the held-out asset never enters a
    fit, and deleting every row after a day and re-running gives the same forecasts up to that day."""
    from predictive.evaluation import HoldoutModel
    from predictive.intraday import load_hourly
    from predictive.regime_net import RegimeNet

    feats = {"BTC": build_features(load_ohlcv("BTC").loc["2018-01-01":"2020-06-30"],
                                   load_hourly("BTC", start="2018-01-01", end="2020-06-30 23:00")),
             "ETH": build_features(load_ohlcv("ETH").loc["2018-01-01":"2020-06-30"])}
    seen = []

    class Spy(RegimeNet):
        def fit(self, features):
            seen.append(sorted(features))
            return super().fit(features)

    def make():
        return HoldoutModel(Spy(horizon=2, seed=0, n_regimes=2, lookback=8, hidden=8, embed_dim=2, batch_size=64,
                                max_epochs=3, progress=False), ["ETH"])

    cut = pd.Timestamp("2020-04-15")
    full = walk_forward(make, feats, 2, "2020-03-01", "2020-06-20", refit_every=60, train_end="2020-02-15")
    cut_feats = {a: f.loc[:cut + pd.Timedelta(days=2)] for a, f in feats.items()}
    short = walk_forward(make, cut_feats, 2, "2020-03-01", cut + pd.Timedelta(days=2), refit_every=60,
                         train_end="2020-02-15")
    assert all(s == ["BTC"] for s in seen)
    for a in feats:
        idx = short[a].index[short[a].index <= cut]
        np.testing.assert_allclose(full[a].loc[idx, "variance"], short[a].loc[idx, "variance"], rtol=1e-12)
    s = summarise(full, 2).set_index("asset")
    assert np.isfinite(s.loc["ETH", "qlike"]) and np.isfinite(s.loc["ETH", "dlogvar_p99"])


def test_load_asset_features_daily_only_fallback_prices_and_gaps(tmp_path, caplog):
    from predictive.data import DataValidationError, embedded_path
    from predictive.evaluation import load_asset_features

    with caplog.at_level("WARNING", logger="predictive.evaluation"):
        feats = load_asset_features(["BNB"], use_funding=False, with_prices=True)
    # BNB has daily bars only: Garman-Klass rv, one warning for the missing hourly file (funding is switched off)
    assert [r.getMessage() for r in caplog.records] == [
        "BNB: no hourly file; daily-only features (rv = Garman-Klass range variance; set data.hourly.BNB="
        "/path/to/file to add one)"]
    bars = load_ohlcv("BNB")
    pd.testing.assert_series_equal(feats["BNB"]["_close"], bars["close"], check_names=False)
    assert {"_open", "_high", "_low", "_volume"} <= set(feats["BNB"])
    assert "_close" not in load_asset_features(["BNB"], use_hourly=False, use_funding=False)["BNB"]

    raw = pd.read_csv(embedded_path("BTC"))
    gap = tmp_path / "gap.csv"
    raw.drop(index=raw.index[(raw["date"] >= "2020-06-01") & (raw["date"] <= "2020-06-10")]).to_csv(gap, index=False)
    kw = dict(daily={"SOL": gap}, use_hourly=False, use_funding=False)
    with pytest.raises(DataValidationError, match="10 missing day"):
        load_asset_features(["SOL"], max_gap_days=9, **kw)
    assert len(load_asset_features(["SOL"], max_gap_days=10, **kw)["SOL"]) > 0
    with pytest.raises(DataValidationError, match=r"no daily file.*\+data\.daily\.SOL="):
        load_asset_features(["SOL"])
