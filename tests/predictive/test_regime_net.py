"""RegimeNet: loss against scipy, mixture forecast consistency, reproducibility, resume, no look-ahead, errors,
h-day heads, pooled HAR anchor against a plain loop, unseen-asset fallback, daily-only inputs."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from predictive.base import InsufficientDataError
from predictive.data import load_ohlcv
from predictive.features import build_features
from predictive.intraday import load_funding, load_hourly
from predictive.regime_net import RegimeNet, har_anchor, mixture_nll, pooled_har_coef, qlike

START, END = "2019-06-01", "2020-12-31"
TINY = dict(n_regimes=2, lookback=8, hidden=8, embed_dim=2, batch_size=64, max_epochs=4, patience=100,
            progress=False)


@pytest.fixture(scope="module")
def feats():
    out = {}
    for a in ("BTC", "ETH"):
        d = load_ohlcv(a).loc[START:END]
        h = load_hourly(a, start=START, end=END)
        out[a] = build_features(d, h, load_funding(a))
    return out


@pytest.fixture(scope="module")
def fitted(feats):
    return RegimeNet(horizon=2, seed=3, **TINY).fit(feats)


def _leaves(model):
    from flax import nnx
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))]


def test_mixture_nll_and_qlike_match_scipy():
    rng = np.random.default_rng(0)
    y = rng.normal(size=7) * 0.05
    w = rng.dirichlet(np.ones(3), size=7)
    s2 = rng.uniform(1e-4, 1e-2, size=(7, 3))
    ref = -np.log(np.sum(w * stats.norm.pdf(y[:, None], 0.0, np.sqrt(s2)), axis=1))
    got = np.asarray(mixture_nll(jnp.asarray(y), jnp.log(jnp.asarray(w)), jnp.log(jnp.asarray(s2))))
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    h, v = rng.uniform(1e-4, 1e-2, 5), rng.uniform(1e-4, 1e-2, 5)
    np.testing.assert_allclose(np.asarray(qlike(jnp.asarray(h), jnp.asarray(v))), h / v - np.log(h / v) - 1,
                               rtol=1e-12)


def test_forecast_is_a_consistent_mixture(fitted, feats):
    fc = fitted.forecast(feats, 2)
    assert set(fc) == {"BTC", "ETH"}
    w, v = fitted.predict_mixture(feats)["BTC"]
    f = fc["BTC"]
    assert len(f.index) == len(feats["BTC"]) and f.horizon == 2
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(f.regime_probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(f.variance, (w * v).sum(axis=1), rtol=1e-12)
    assert np.all(np.diff(v, axis=1) > 0), "regime variances must be ordered (regime 0 calmest)"
    # quantiles: the mixture CDF (scipy) at the 1% / 99% quantile equals the level
    for lev in (0.01, 0.99):
        q = f.quantiles[lev]
        cdf = np.sum(w * stats.norm.cdf(q[:, None], 0.0, np.sqrt(v)), axis=1)
        np.testing.assert_allclose(cdf, lev, atol=1e-9)
    assert np.all(np.isfinite(f.variance)) and np.all(f.variance > 0)


def test_training_reduces_loss_and_is_bit_reproducible(fitted, feats):
    hist = fitted.history_[0]
    assert hist["train"][-1] < hist["train"][0]
    again = RegimeNet(horizon=2, seed=3, **TINY).fit(feats)
    for a, b in zip(_leaves(fitted.members_[0]), _leaves(again.members_[0])):
        np.testing.assert_array_equal(a, b)
    other = RegimeNet(horizon=2, seed=4, **TINY).fit(feats)
    assert any(not np.array_equal(a, b) for a, b in zip(_leaves(fitted.members_[0]), _leaves(other.members_[0])))


def test_resume_from_orbax_checkpoint_equals_uninterrupted_run(feats, tmp_path):
    cfg = dict(TINY, max_epochs=5)
    full = RegimeNet(horizon=1, seed=1, **cfg).fit(feats)
    killed = RegimeNet(horizon=1, seed=1, checkpoint_dir=str(tmp_path), checkpoint_every=1, **cfg)
    killed._interrupt_after = 2  # stop after epoch 2 as if the process died
    killed.fit(feats)
    assert killed.history_[0]["epochs_run"] == 3
    resumed = RegimeNet(horizon=1, seed=1, checkpoint_dir=str(tmp_path), resume=True, **cfg).fit(feats)
    assert resumed.history_[0]["resumed_from"] == 2
    assert resumed.history_[0]["epochs_run"] == 5
    np.testing.assert_array_equal(resumed.history_[0]["val"], full.history_[0]["val"][3:])
    for a, b in zip(_leaves(full.members_[0]), _leaves(resumed.members_[0])):
        np.testing.assert_array_equal(a, b)


def test_forecast_uses_no_future_rows(fitted, feats):
    cut = pd.Timestamp("2020-06-30")
    base = fitted.forecast(feats, 2)
    noisy = {}
    rng = np.random.default_rng(7)
    for a, f in feats.items():
        g = f.copy()
        late = g.index > cut
        for c in ("log_return", "rv", "garman_klass", "rv_7", "rv_30", "funding_sum", "funding_abs"):
            g.loc[late, c] = g.loc[late, c].to_numpy() * rng.uniform(0.1, 10.0, late.sum())
        noisy[a] = g
    pert = fitted.forecast(noisy, 2)
    for a in feats:
        early = base[a].index <= cut
        np.testing.assert_array_equal(base[a].variance[early], pert[a].variance[early])
        assert not np.allclose(base[a].variance[~early], pert[a].variance[~early])


def test_bad_inputs_raise(fitted, feats):
    with pytest.raises(ValueError, match="horizon"):
        RegimeNet(horizon=0)
    with pytest.raises(ValueError, match="n_regimes"):
        RegimeNet(n_regimes=0)
    with pytest.raises(ValueError, match="val_frac"):
        RegimeNet(val_frac=1.5)
    with pytest.raises(ValueError, match="horizon=5"):
        fitted.forecast(feats, 5)
    with pytest.raises(ValueError, match="inputs"):
        RegimeNet(inputs=["nope"])
    with pytest.raises(ValueError, match="embed_dropout"):
        RegimeNet(embed_dropout=1.0)
    with pytest.raises(InsufficientDataError, match="BTC"):
        RegimeNet(horizon=1, **TINY).fit({"BTC": feats["BTC"].iloc[:40]})
    with pytest.raises(RuntimeError, match="fit"):
        RegimeNet(horizon=1, **TINY).forecast(feats, 1)


def test_auxiliary_heads_and_bounded_regime_variances(feats):
    m = RegimeNet(horizon=2, seed=3, aux_horizons=[1, 4], max_log_ratio=0.5,
                  **dict(TINY, max_epochs=2)).fit(feats)
    assert m.heads == (2, 1, 4) and m.members_[0].n_heads == 3
    fc = m.forecast(feats, 2)["ETH"]
    w, v = m.predict_mixture(feats)["ETH"]
    assert w.shape == (len(feats["ETH"]), 2)
    np.testing.assert_allclose(fc.variance, (w * v).sum(axis=1), rtol=1e-12)
    # every regime variance within a factor exp(0.5) of the anchor 2 * rv_7 (HAR-like level)
    dev = np.log(v) - m._anchor(feats["ETH"], 2)[:, None]
    assert np.all(np.abs(dev) <= 0.5 + 1e-12)
    with pytest.raises(ValueError, match="aux_horizons"):
        RegimeNet(aux_horizons=[0])


def test_direct_heads_and_unseen_asset_fallback_to_har(feats):
    """Heads trained directly for h = 1 and 3; an asset outside the training set uses the unknown-asset embedding
    and is pulled towards the pooled HAR anchor by exactly unseen_shrink (in log variance)."""
    import dataclasses
    m = RegimeNet(horizon=1, horizons=[1, 3], seed=0, unseen_shrink=0.0, **TINY).fit({"BTC": feats["BTC"]})
    assert m.heads == (1, 3) and m.members_[0].n_heads == 2
    v1, v3 = m.forecast(feats, 1)["BTC"], m.forecast(feats, 3)["BTC"]
    assert v3.horizon == 3 and np.all(np.isfinite(v3.variance))
    # the 3-day head forecasts the variance of a 3-day return: larger than the 1-day head's on average
    assert np.median(v3.variance / v1.variance) > 1.5
    with pytest.raises(ValueError, match=r"trained for horizons \[1, 3\].*horizon=2"):
        m.forecast(feats, 2)
    eth = {"ETH": feats["ETH"]}
    for h in (1, 3):
        m.config = dataclasses.replace(m.config, unseen_shrink=0.0)
        raw = m.forecast(eth, h)["ETH"].variance
        anc = m._anchor(feats["ETH"], h)
        m.config = dataclasses.replace(m.config, unseen_shrink=1.0)
        np.testing.assert_allclose(np.log(m.forecast(eth, h)["ETH"].variance), anc, rtol=0, atol=1e-10)
        m.config = dataclasses.replace(m.config, unseen_shrink=0.5)
        half = np.log(m.forecast(eth, h)["ETH"].variance)
        np.testing.assert_allclose(half - anc, 0.5 * (np.log(raw) - anc), rtol=0, atol=1e-10)


def test_pooled_har_anchor_matches_a_plain_loop(feats):
    h = 3
    coef = pooled_har_coef(feats, h)
    rows, ys = [], []
    for f in feats.values():  # the regression written out row by row (rv_7 / rv_30 windows full from row 29)
        rv, rv7, rv30 = (f[c].to_numpy() for c in ("rv", "rv_7", "rv_30"))
        for t in range(29, len(f) - h):
            rows.append([1.0, min(rv[t] / rv30[t], 50.0), min(rv7[t] / rv30[t], 50.0)])
            ys.append(min(sum(rv[t + 1:t + h + 1]) / (h * rv30[t]), 50.0))
    # the model also uses rows 0..28 (expanding-mean level while the window fills); compare on full windows only
    full = {a: np.arange(len(f)) >= 29 for a, f in feats.items()}
    ref, *_ = np.linalg.lstsq(np.array(rows), np.array(ys), rcond=None)
    np.testing.assert_allclose(pooled_har_coef(feats, h, full), ref, rtol=1e-10)
    f = feats["ETH"]
    a = np.exp(har_anchor(f, h, coef))[40]
    expect = h * (coef[0] * f["rv_30"].iloc[40] + coef[1] * f["rv"].iloc[40] + coef[2] * f["rv_7"].iloc[40])
    assert a == pytest.approx(max(expect, 0.1 * h * f["rv_30"].iloc[40]), rel=1e-12)


def test_daily_only_assets_pool_with_hourly_ones():
    """An asset with daily bars only (rv = Garman-Klass range variance, no funding) trains and forecasts."""
    daily = {a: load_ohlcv(a).loc[START:END] for a in ("BTC", "ETH")}
    mixed = {"BTC": build_features(daily["BTC"], load_hourly("BTC", start=START, end=END)),
             "ETH": build_features(daily["ETH"])}
    assert "funding_sum" not in mixed["ETH"] and (mixed["ETH"]["rv_source"] == "garman_klass").all()
    m = RegimeNet(horizon=1, seed=0, smooth_weight=1.0, **TINY).fit(mixed)  # also: the persistence penalty trains
    assert np.all(np.isfinite(m.history_[0]["train"]))
    fc = m.forecast(mixed, 1)
    for a in mixed:
        assert np.all(np.isfinite(fc[a].variance)) and np.all(fc[a].variance > 0)
    minimal = {"X": mixed["ETH"][["log_return", "rv", "rv_7"]]}  # only the required columns
    assert np.all(np.isfinite(m.forecast(minimal, 1)["X"].variance))

