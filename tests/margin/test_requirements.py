"""Requirement kernels against per-account loops / NumPy references, plus property tests."""
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import margin


@pytest.fixture(scope="module")
def book():
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (203, 6)) * (rng.random((203, 6)) < 0.6)
    lm = rng.normal(0, 1, (6, 11))
    addons = rng.uniform(0, 0.5, 203)
    return x, lm, addons


@pytest.mark.parametrize("chunk", [None, 64])
def test_portfolio_matches_loop_reference(book, chunk):
    x, lm, addons = book
    ref = margin.portfolio_margin_reference(x, lm, addons)
    got = margin.portfolio_margin(x, lm, addons, chunk_size=chunk, dtype=jnp.float64)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    got32 = margin.portfolio_margin(x, lm, addons, chunk_size=chunk)
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(got32, ref, rtol=1e-5, atol=1e-5)


def test_isolated_cross_and_ratio(book):
    x, lm, _ = book
    iso_ref = np.array([sum(max(0.0, max(-x[a, i] * lm[i, s] for s in range(lm.shape[1])))
                            for i in range(lm.shape[0])) for a in range(x.shape[0])])
    iso = margin.isolated_margin(x, lm, dtype=jnp.float64)
    np.testing.assert_allclose(iso, iso_ref, rtol=1e-12, atol=1e-12)
    per = margin.isolated_margin(x, lm, per_position=True, dtype=jnp.float64)
    assert per.shape == x.shape
    np.testing.assert_allclose(per.sum(axis=1), iso_ref, rtol=1e-12, atol=1e-12)
    single = np.maximum(-(x[:, 2:3] * lm[2][None, :]).min(axis=1), 0)
    np.testing.assert_allclose(per[:, 2], single, rtol=1e-12, atol=1e-12)
    port = margin.portfolio_margin(x, lm, dtype=jnp.float64)
    ratio = margin.net_gross_ratio(x, lm, dtype=jnp.float64)
    exp = np.where(iso_ref > 0, np.asarray(port) / np.where(iso_ref > 0, iso_ref, 1), 1.0)
    np.testing.assert_allclose(ratio, exp, rtol=1e-12)
    assert np.all(np.asarray(ratio) <= 1 + 1e-12)
    coll = np.linspace(0, 10, x.shape[0])
    cr = margin.cross_margin(x, lm, coll, np.full(x.shape[0], 0.5), dtype=jnp.float64)
    np.testing.assert_allclose(cr.requirement, iso_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cr.excess, coll + 0.5 - iso_ref, rtol=1e-12, atol=1e-12)
    assert np.array_equal(np.asarray(cr.sufficient), coll + 0.5 >= iso_ref)


def test_im_mm(book):
    x, lm, addons = book
    im, mm = margin.portfolio_im_mm(x, lm, addons, mm_factor=0.8, dtype=jnp.float64)
    np.testing.assert_allclose(mm, 0.8 * np.asarray(im), rtol=1e-15)


@pytest.mark.parametrize("conf", [0.9, 0.95, 0.99])
def test_historical_var_es_vs_numpy(conf):
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (17, 4))
    lm = rng.standard_t(4, (4, 250))
    res = margin.historical_var_es(x, lm, conf, chunk_size=8, dtype=jnp.float64)
    pnl = x @ lm
    var_ref = -np.quantile(pnl, 1 - conf, axis=1, method="inverted_cdf")
    np.testing.assert_allclose(res.var, var_ref, rtol=1e-12)
    k = int(np.ceil(round((1 - conf) * 250, 9)))
    es_ref = np.sort(-pnl, axis=1)[:, ::-1][:, :k].mean(axis=1)
    np.testing.assert_allclose(res.es, es_ref, rtol=1e-12)
    assert np.all(np.asarray(res.es) >= np.asarray(res.var) - 1e-12)


def test_parametric_var_es_vs_scipy():
    from scipy.stats import norm

    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, (9, 3))
    lm = rng.normal(0.1, 1, (3, 500))
    res = margin.parametric_var_es(x, lm, 0.99, dtype=jnp.float64)
    pnl = x @ lm
    mu, sd = pnl.mean(axis=1), pnl.std(axis=1, ddof=1)
    np.testing.assert_allclose(res.var, -norm.ppf(0.01, mu, sd), rtol=1e-10)
    es_ref = sd * norm.pdf(norm.ppf(0.99)) / 0.01 - mu
    np.testing.assert_allclose(res.es, es_ref, rtol=1e-10)


def test_bad_inputs(book):
    x, lm, _ = book
    x_bad = x.copy()
    x_bad[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"positions at index \(5, 2\)"):
        margin.portfolio_margin(x_bad, lm)
    with pytest.raises(ValueError, match="pnl"):
        margin.portfolio_margin(x, lm[:4])
    with pytest.raises(ValueError, match=r"addons at index \(3,\)"):
        margin.portfolio_margin(x, lm, np.r_[np.zeros(3), -1.0, np.zeros(199)])
    import jax.numpy as jnp_
    with pytest.raises(ValueError, match=r"positions at index \(5, 2\)"):
        margin.portfolio_margin(jnp_.asarray(x_bad), lm)


finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.float64, (4, 3), elements=finite), lm=arrays(np.float64, (3, 5), elements=finite))
def test_portfolio_le_sum_isolated(x, lm):
    port = np.asarray(margin.portfolio_margin(x, lm, dtype=jnp.float64))
    iso = np.asarray(margin.isolated_margin(x, lm, dtype=jnp.float64))
    assert np.all(port <= iso + 1e-9 * (1 + iso))
