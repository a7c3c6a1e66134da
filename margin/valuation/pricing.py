"""Black-76 option prices, closed-form Greeks and vectorised implied volatility.

Black (1976), "The pricing of commodity contracts", J. Financial Economics 3: European options on a forward /
futures price F with strike K, time to expiry T (years), volatility sigma (annualised, 1.0 = 100%) and
discount rate r (continuous, default 0 as on crypto venues that quote forwards):

    d1 = (ln(F/K) + sigma^2 T / 2) / (sigma sqrt(T)),   d2 = d1 - sigma sqrt(T),   D = exp(-r T)
    call = D (F N(d1) - K N(d2)),                        put = D (K N(-d2) - F N(-d1))

Greeks (per unit of F, per 1.00 of vol, per year of calendar time):

    delta = D N(d1) (call), D (N(d1) - 1) (put)         gamma = D n(d1) / (F sigma sqrt(T))
    vega  = D F n(d1) sqrt(T)                            theta = -dV/dT = r V - D F n(d1) sigma / (2 sqrt(T))

All functions broadcast their arguments, take a ``dtype`` (float64 default: float32 deltas are off by up to
4.6e-3 relative at small deltas, issue 13 item 2; pass ``jnp.float32`` for speed) and are jitted. Prices are in the
units of F (USD for a USD forward). Deribit quotes option prices in coin: divide by F (see :mod:`margin.valuation.chain`).
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from margin.validation import MarginInputError, check_finite, check_positive

__all__ = [
    "Greeks",
    "ImpliedVolResult",
    "black76_price",
    "black76_greeks",
    "implied_vol",
]

_INV_SQRT_2PI = 0.3989422804014327


class Greeks(NamedTuple):
    """Black-76 price and Greeks, each broadcast to the common input shape.

    price (units of F), delta (dV/dF), gamma (d2V/dF2), vega (dV/dsigma per 1.00 vol),
    theta (dV/dt per year of calendar time, = -dV/dT).
    """

    price: jax.Array
    delta: jax.Array
    gamma: jax.Array
    vega: jax.Array
    theta: jax.Array


class ImpliedVolResult(NamedTuple):
    """vol: annualised implied vol (finite everywhere; the bracket end where nothing fits);
    converged: bool, True where |price(vol) - target| <= tol and the target lies strictly inside the
    no-arbitrage bounds (intrinsic, F or K discounted)."""

    vol: jax.Array
    converged: jax.Array


def _npdf(x):
    return _INV_SQRT_2PI * jnp.exp(-0.5 * x * x)


def _d1d2(f, k, t, sigma):
    sq = sigma * jnp.sqrt(t)
    d1 = (jnp.log(f / k) + 0.5 * sq * sq) / sq
    return d1, d1 - sq, sq


def _price_core(f, k, t, sigma, is_call, r):
    d1, d2, _ = _d1d2(f, k, t, sigma)
    disc = jnp.exp(-r * t)
    call = disc * (f * ndtr(d1) - k * ndtr(d2))
    put = disc * (k * ndtr(-d2) - f * ndtr(-d1))
    return jnp.where(is_call, call, put)


def _cast(dtype, *xs):
    return [jnp.asarray(x, dtype) for x in xs]


@partial(jax.jit, static_argnames=("dtype",))
def _price_jit(f, k, t, sigma, is_call, r, dtype):
    f, k, t, sigma, r = _cast(dtype, f, k, t, sigma, r)
    return _price_core(f, k, t, sigma, jnp.asarray(is_call, bool), r)


@partial(jax.jit, static_argnames=("dtype",))
def _greeks_jit(f, k, t, sigma, is_call, r, dtype):
    f, k, t, sigma, r = _cast(dtype, f, k, t, sigma, r)
    is_call = jnp.asarray(is_call, bool)
    d1, d2, sq = _d1d2(f, k, t, sigma)
    disc = jnp.exp(-r * t)
    nd1 = ndtr(d1)
    pdf = _npdf(d1)
    call = disc * (f * nd1 - k * ndtr(d2))
    put = disc * (k * ndtr(-d2) - f * ndtr(-d1))
    price = jnp.where(is_call, call, put)
    delta = disc * jnp.where(is_call, nd1, nd1 - 1)
    gamma = disc * pdf / (f * sq)
    sqrt_t = jnp.sqrt(t)
    vega = disc * f * pdf * sqrt_t
    theta = r * price - disc * f * pdf * sigma / (2 * sqrt_t)
    shape = jnp.broadcast_shapes(price.shape, gamma.shape)
    b = lambda x: jnp.broadcast_to(x, shape)  # noqa: E731
    return Greeks(b(price), b(delta), b(gamma), b(vega), b(theta))


def _validate(f, k, t, sigma, r):
    check_positive("forward", f)
    check_positive("strike", k)
    check_positive("expiry", t)
    check_positive("vol", sigma)
    check_finite("rate", r)


def black76_price(forward, strike, expiry, vol, is_call, rate=0.0, *, dtype=jnp.float64, validate=True):
    """Black-76 price of European options (broadcast over all arguments).

    Args:
        forward: forward / futures price F (> 0), units U (e.g. USD per coin).
        strike: strike K (> 0), units U.
        expiry: time to expiry T in years (> 0; an expiry in the past raises).
        vol: annualised volatility (> 0), 1.0 = 100%.
        is_call: bool (True call, False put).
        rate: continuous discount rate per year (default 0).
        dtype: ``jnp.float64`` (default; a venue's published Greeks need it) or ``jnp.float32`` (faster, about
            1e-3 relative error in small deltas).
        validate: check inputs on the host first (set False inside hot loops with known-good data).

    Returns:
        price in units U, broadcast shape, ``dtype``.

    Raises:
        MarginInputError (ValueError) naming field and index for NaN/inf or non-positive F, K, T, vol.
    """
    if validate:
        _validate(forward, strike, expiry, vol, rate)
    return _price_jit(forward, strike, expiry, vol, is_call, rate, dtype)


def black76_greeks(forward, strike, expiry, vol, is_call, rate=0.0, *, dtype=jnp.float64, validate=True) -> Greeks:
    """Black-76 price, delta, gamma, vega, theta in closed form (see module docstring for formulas/units).

    Same arguments and errors as :func:`black76_price`. Vega is per 1.00 of vol (divide by 100 for per vol
    point), theta per year of calendar time (divide by 365 for per day).
    """
    if validate:
        _validate(forward, strike, expiry, vol, rate)
    return _greeks_jit(forward, strike, expiry, vol, is_call, rate, dtype)


@partial(jax.jit, static_argnames=("dtype", "iterations"))
def _iv_jit(price, f, k, t, is_call, r, lo, hi, tol, dtype, iterations):
    price, f, k, t, r = _cast(dtype, price, f, k, t, r)
    is_call = jnp.asarray(is_call, bool)
    shape = jnp.broadcast_shapes(price.shape, f.shape, k.shape, t.shape, is_call.shape, r.shape)
    price, f, k, t, r, is_call = (jnp.broadcast_to(x, shape) for x in (price, f, k, t, r, is_call))
    disc = jnp.exp(-r * t)
    intrinsic = disc * jnp.where(is_call, jnp.maximum(f - k, 0), jnp.maximum(k - f, 0))
    upper = disc * jnp.where(is_call, f, k)
    inside = (price > intrinsic) & (price < upper)
    lo = jnp.full(shape, lo, dtype)
    hi = jnp.full(shape, hi, dtype)

    # Safeguarded Newton on a shrinking bracket [lo, hi]: price is increasing in vol, so each evaluation
    # tightens the bracket; a Newton step outside the bracket (or with tiny vega) falls back to bisection.
    def body(_, state):
        lo, hi, x = state
        d1, _, _ = _d1d2(f, k, t, x)
        p = _price_core(f, k, t, x, is_call, r)
        vega = disc * f * _npdf(d1) * jnp.sqrt(t)
        too_high = p > price
        hi = jnp.where(too_high, x, hi)
        lo = jnp.where(too_high, lo, x)
        step = x - (p - price) / jnp.where(vega > 0, vega, 1)
        ok = (vega > 0) & (step > lo) & (step < hi)
        x = jnp.where(ok, step, 0.5 * (lo + hi))
        return lo, hi, x

    x0 = jnp.full(shape, 0.5, dtype)
    x0 = jnp.clip(x0, lo, hi)
    _, _, x = jax.lax.fori_loop(0, iterations, body, (lo, hi, x0))
    err = jnp.abs(_price_core(f, k, t, x, is_call, r) - price)
    converged = inside & (err <= tol * jnp.maximum(1, price))
    return ImpliedVolResult(jnp.where(jnp.isfinite(x), x, hi), converged)


def _iv_bucketed(price, f, k, t, is_call, r, lo, hi, tol, dtype, iterations) -> ImpliedVolResult:
    """Runs the solver on inputs flattened and padded to a power-of-two length (>= 64) with a benign option, so
    chains of different sizes share one compiled program (compiling the solver costs seconds on a small CPU)."""
    arrs = np.broadcast_arrays(*(np.asarray(a) for a in (price, f, k, t, is_call, r)))
    shape = arrs[0].shape
    n = int(np.prod(shape))
    size = max(64, 1 << max(0, (n - 1).bit_length()))
    fill = (0.1, 1.0, 1.0, 1.0, True, 0.0)  # an ATM call worth 0.1: converges
    flat = [np.concatenate([a.ravel(), np.full(size - n, v, a.dtype)]) for a, v in zip(arrs, fill)]
    res = _iv_jit(*flat, lo, hi, tol, dtype, iterations)
    return ImpliedVolResult(res.vol[:n].reshape(shape), res.converged[:n].reshape(shape))


def implied_vol(
    price,
    forward,
    strike,
    expiry,
    is_call,
    rate=0.0,
    *,
    lo=1e-4,
    hi=10.0,
    tol=None,
    iterations=60,
    dtype=jnp.float64,
    raise_on_failure=False,
) -> ImpliedVolResult:
    """Vectorised Black-76 implied volatility by a bracketed (safeguarded Newton / bisection) solver.

    Args:
        price: option price (>= 0) in units of F.
        forward, strike, expiry, is_call, rate: as in :func:`black76_price`.
        lo, hi: vol bracket (annualised); vols outside it do not fit.
        tol: absolute price tolerance relative to max(1, price); default 1e-9 (float64) / 1e-4 (float32).
        iterations: fixed number of solver steps (no data-dependent loop, so it vectorises and jits).
        dtype: computation dtype (float64 default: implied vol is ill-conditioned for deep ITM/OTM).
        raise_on_failure: raise a MarginInputError naming the first index where no vol fits.

    Returns:
        :class:`ImpliedVolResult` with finite ``vol`` and a bool ``converged`` flag (never NaN).

    Raises:
        MarginInputError (ValueError) for NaN/inf, negative prices, non-positive F/K/T, and (optionally) no fit.
    """
    p = check_finite("price", price)
    if (p < 0).any():
        i = tuple(int(j) for j in np.argwhere(p < 0)[0])
        raise MarginInputError("price", "must be >= 0", i, float(p[i]))
    check_positive("forward", forward)
    check_positive("strike", strike)
    check_positive("expiry", expiry)
    check_finite("rate", rate)
    if tol is None:
        tol = 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-4
    res = _iv_bucketed(price, forward, strike, expiry, is_call, rate, lo, hi, tol, dtype, iterations)
    if raise_on_failure:
        conv = np.asarray(res.converged)
        if not conv.all():
            i = tuple(int(j) for j in np.argwhere(~conv)[0])
            raise MarginInputError("price", "no volatility in the bracket reproduces this price", i,
                                   float(np.broadcast_to(p, conv.shape)[i]))
    return res
