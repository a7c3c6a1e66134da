"""Black-76 price/Greeks against QuantLib and jax.grad; implied vol round trip and failure flag."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import QuantLib as ql

import margin
from margin.valuation.pricing import _price_core


@pytest.fixture(scope="module")
def random_inputs():
    rng = np.random.default_rng(42)
    n = 200
    f = rng.uniform(50, 200, n)
    k = f * np.exp(rng.normal(0, 0.3, n))
    t = rng.uniform(0.01, 2.0, n)
    v = rng.uniform(0.05, 1.5, n)
    r = rng.uniform(-0.01, 0.08, n)
    c = rng.random(n) < 0.5
    return f, k, t, v, r, c


def test_price_and_greeks_match_quantlib(random_inputs):
    f, k, t, v, r, c = random_inputs
    g = margin.black76_greeks(f, k, t, v, c, r, dtype=jnp.float64)
    for i in range(len(f)):
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if c[i] else ql.Option.Put, float(k[i]))
        calc = ql.BlackCalculator(payoff, float(f[i]), float(v[i] * math.sqrt(t[i])), float(math.exp(-r[i] * t[i])))
        assert float(g.price[i]) == pytest.approx(calc.value(), rel=1e-10, abs=1e-10)
        assert float(g.delta[i]) == pytest.approx(calc.deltaForward(), rel=1e-9, abs=1e-12)
        assert float(g.gamma[i]) == pytest.approx(calc.gammaForward(), rel=1e-9, abs=1e-12)
        assert float(g.vega[i]) == pytest.approx(calc.vega(float(t[i])), rel=1e-9, abs=1e-10)
        bf = ql.blackFormula(payoff.optionType(), float(k[i]), float(f[i]), float(v[i] * math.sqrt(t[i])),
                             float(math.exp(-r[i] * t[i])))
        assert float(g.price[i]) == pytest.approx(bf, rel=1e-10, abs=1e-10)


def test_greeks_match_jax_grad(random_inputs):
    f, k, t, v, r, c = (jnp.asarray(a) for a in random_inputs)

    @jax.jit
    def autodiff(f, t, v):
        price = lambda f_, t_, v_: _price_core(f_, k, t_, v_, c, r)  # noqa: E731
        delta = jax.grad(lambda x: price(x, t, v).sum())(f)
        gamma = jax.grad(lambda x: jax.grad(lambda y: price(y, t, v).sum())(x).sum())(f)
        vega = jax.grad(lambda x: price(f, t, x).sum())(v)
        theta = -jax.grad(lambda x: price(f, x, v).sum())(t)
        return delta, gamma, vega, theta

    delta, gamma, vega, theta = autodiff(f, t, v)
    g = margin.black76_greeks(f, k, t, v, c, r, dtype=jnp.float64)
    np.testing.assert_allclose(g.delta, delta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g.gamma, gamma, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(g.vega, vega, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(g.theta, theta, rtol=1e-8, atol=1e-9)


def test_float32_close_to_float64(random_inputs):
    f, k, t, v, r, c = random_inputs
    p32 = margin.black76_price(f, k, t, v, c, r, dtype=jnp.float32)
    p64 = margin.black76_price(f, k, t, v, c, r, dtype=jnp.float64)
    assert p32.dtype == jnp.float32
    np.testing.assert_allclose(p32, p64, rtol=1e-3, atol=1e-3)


def test_put_call_parity(random_inputs):
    f, k, t, v, r, _ = random_inputs
    call = margin.black76_price(f, k, t, v, True, r, dtype=jnp.float64)
    put = margin.black76_price(f, k, t, v, False, r, dtype=jnp.float64)
    np.testing.assert_allclose(call - put, np.exp(-r * t) * (f - k), rtol=1e-10, atol=1e-9)


def test_implied_vol_round_trip(random_inputs):
    f, k, t, v, r, c = random_inputs
    p = np.asarray(margin.black76_price(f, k, t, v, c, r, dtype=jnp.float64))
    # keep prices with enough time value for the vol to be identifiable in float64
    intrinsic = np.exp(-r * t) * np.where(c, np.maximum(f - k, 0), np.maximum(k - f, 0))
    ok = (p - intrinsic) > 1e-6 * f
    res = margin.implied_vol(p[ok], f[ok], k[ok], t[ok], c[ok], r[ok])
    assert bool(np.all(res.converged))
    np.testing.assert_allclose(res.vol, v[ok], rtol=1e-6)


def test_implied_vol_flags_no_fit_without_nan():
    # below intrinsic, above the forward, and zero price: nothing fits
    price = np.array([5.0, 150.0, 0.0, 10.0])
    f = np.array([110.0, 100.0, 100.0, 100.0])
    res = margin.implied_vol(price, f, 100.0, 0.5, True)
    assert np.all(np.isfinite(res.vol))
    assert list(np.asarray(res.converged)) == [False, False, False, True]
    with pytest.raises(ValueError, match=r"price at index \(0,\)"):
        margin.implied_vol(price, f, 100.0, 0.5, True, raise_on_failure=True)


@pytest.mark.parametrize("field,kw", [("vol", {"vol": [0.2, -0.1]}), ("expiry", {"expiry": [0.5, 0.0]}),
                                      ("forward", {"forward": [100.0, np.nan]}), ("strike", {"strike": [1.0, np.inf]})])
def test_bad_inputs(field, kw):
    args = dict(forward=[100.0, 100.0], strike=[100.0, 90.0], expiry=[0.5, 0.5], vol=[0.2, 0.3], is_call=True)
    args.update({k: np.asarray(v) for k, v in kw.items()})
    with pytest.raises(ValueError, match=rf"{field} at index \(1,\)"):
        margin.black76_greeks(**args)
