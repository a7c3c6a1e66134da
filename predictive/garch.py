"""GARCH(1,1) with zero mean and normal innovations, fitted by maximum likelihood in JAX (float64).

Model (Bollerslev 1986; REFERENCE.md section 3), on scaled returns ``y_t = scale * r_t``::

    y_t = sigma_t z_t,  z_t ~ N(0, 1),     sigma2_t = omega + alpha y_{t-1}^2 + beta sigma2_{t-1},
    omega > 0, alpha >= 0, beta >= 0, alpha + beta < 1.

Start-up exactly as ``arch``: ``sigma2_0 = omega + (alpha + beta) * backcast`` where ``backcast`` is the
``0.94^k``-weighted mean (weights normalised) of the first ``min(75, n)`` squared ``y``. The log-likelihood

    ll = -1/2 sum_t [ln(2 pi) + ln sigma2_t + y_t^2 / sigma2_t]

equals ``arch_model(y, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=False).fix([omega, alpha,
beta]).loglikelihood`` (tested to 1e-6 relative). ``arch`` additionally clamps ``sigma2_t`` to very loose bounds
(``EWMA/1e6 .. EWMA*1e6``); with admissible parameters on real returns they never bind, so they are not replicated.

Scaling: like ``arch``'s advice, the model works on returns in percent (``scale = 100``): the optimiser is better
conditioned when ``omega`` is O(0.1 .. 1) rather than O(1e-5). ``omega`` is therefore reported in percent^2 per day;
``alpha`` and ``beta`` are scale-free. Forecast variances are converted back to log-return^2 (divided by
``scale**2``).

Fit: L-BFGS-B (scipy.optimize) on an unconstrained reparameterisation
``omega = exp(u0)``, ``alpha + beta = sigmoid(u1)``, ``alpha = sigmoid(u1) sigmoid(u2)``, so every iterate satisfies
the constraints; gradients by ``jax.grad`` of the jitted log-likelihood; several starting points, best kept.

h-step forecast at origin t: ``sum_{j=1..h} [sbar + (alpha+beta)^{j-1} (sigma2_{t+1} - sbar)]`` with
``sbar = omega / (1 - alpha - beta)``; quantiles Gaussian.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import optimize

from predictive.base import DEFAULT_LEVELS, gaussian_quantiles, leading_returns, PerAssetModel, VolatilityForecast
from predictive.ewma import backcast

jax.config.update("jax_enable_x64", True)

__all__ = ["GARCH11", "GARCHParams", "check_garch_params", "garch_loglikelihood", "garch_variance"]

_LOG_2PI = math.log(2.0 * math.pi)
_BUCKET = 256  # pad series to a multiple of this so that refits on growing windows reuse compiled code


class GARCHParams(tuple):
    """``(omega, alpha, beta)``; ``omega`` in (scale * log-return)^2 per day."""

    __slots__ = ()

    def __new__(cls, omega: float, alpha: float, beta: float):
        return super().__new__(cls, (float(omega), float(alpha), float(beta)))

    omega = property(lambda self: self[0])
    alpha = property(lambda self: self[1])
    beta = property(lambda self: self[2])


def check_garch_params(omega: float, alpha: float, beta: float) -> GARCHParams:
    """Validate GARCH(1,1) parameters.

    Raises:
        ValueError: a non-finite value, ``omega <= 0``, ``alpha < 0``, ``beta < 0`` or ``alpha + beta >= 1``
            (covariance non-stationary); the message names the values.
    """
    vals = {"omega": omega, "alpha": alpha, "beta": beta}
    for k, v in vals.items():
        if not np.isfinite(float(v)):
            raise ValueError(f"GARCH parameter {k} must be finite, got {v!r}")
    if omega <= 0:
        raise ValueError(f"GARCH omega must be > 0, got {omega!r}")
    if alpha < 0 or beta < 0:
        raise ValueError(f"GARCH alpha and beta must be >= 0, got alpha={alpha!r}, beta={beta!r}")
    if alpha + beta >= 1:
        raise ValueError(f"GARCH alpha + beta must be < 1 for a stationary variance, got alpha={alpha!r} + "
                         f"beta={beta!r} = {alpha + beta!r}")
    return GARCHParams(omega, alpha, beta)


@jax.jit
def _filter(params: jax.Array, y2: jax.Array, bc: jax.Array) -> tuple[jax.Array, jax.Array]:
    """sigma2_t for t = 0..n-1 and sigma2_n (the forecast after the last observation)."""
    omega, alpha, beta = params[0], params[1], params[2]

    def step(s2, x):
        return omega + alpha * x + beta * s2, s2

    s2_last, s2 = jax.lax.scan(step, omega + (alpha + beta) * bc, y2)
    return s2, s2_last


def _masked_loglik(params: jax.Array, y2: jax.Array, mask: jax.Array, bc: jax.Array) -> jax.Array:
    s2, _ = _filter(params, y2, bc)
    return -0.5 * jnp.sum(mask * (_LOG_2PI + jnp.log(s2) + y2 / s2))


def _to_params(u: jax.Array) -> jax.Array:
    p = jax.nn.sigmoid(u[1])
    a = jax.nn.sigmoid(u[2])
    return jnp.stack([jnp.exp(u[0]), p * a, p * (1.0 - a)])


@jax.jit
def _neg_ll_and_grad(u: jax.Array, y2: jax.Array, mask: jax.Array, bc: jax.Array) -> tuple[jax.Array, jax.Array]:
    f = lambda v: -_masked_loglik(_to_params(v), y2, mask, bc)  # noqa: E731
    return jax.value_and_grad(f)(u)


def _pad(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = y.size
    m = _BUCKET * max(1, -(-n // _BUCKET))
    y2 = np.zeros(m)
    y2[:n] = y**2
    mask = np.zeros(m)
    mask[:n] = 1.0
    return y2, mask


def _as_returns(y: np.ndarray, what: str = "returns") -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or y.size < 2:
        raise ValueError(f"{what} must be a 1-D array with at least 2 values, got shape {y.shape}")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise ValueError(f"{what}[{int(bad[0])}] = {y[bad[0]]!r} is not finite")
    return y


def garch_loglikelihood(params, y: np.ndarray) -> float:
    """Gaussian log-likelihood of zero-mean GARCH(1,1) at fixed ``params = (omega, alpha, beta)``.

    Args:
        params: ``(omega, alpha, beta)`` in the units of ``y`` (omega in y^2).
        y: ``(n,)`` float64 returns in any scale (use the same scale as arch, e.g. percent).

    Returns:
        float, equal to arch's ``fix(params).loglikelihood`` with the same backcast.

    Raises:
        ValueError: invalid parameters (see :func:`check_garch_params`) or non-finite ``y``.
    """
    p = check_garch_params(*params)
    y = _as_returns(y)
    y2, mask = _pad(y)
    return float(_masked_loglik(jnp.asarray(p), jnp.asarray(y2), jnp.asarray(mask), jnp.asarray(backcast(y))))


def garch_variance(params, y: np.ndarray, bc: float | None = None) -> np.ndarray:
    """Conditional variances ``sigma2_0 .. sigma2_n`` (``(n + 1,)``, last = one-step forecast after ``y[n-1]``).

    ``bc`` defaults to the backcast of ``y`` itself.
    """
    p = check_garch_params(*params)
    y = np.asarray(y, dtype=np.float64)
    bc = backcast(y) if bc is None else float(bc)
    if y.size == 0:
        return np.array([p.omega + (p.alpha + p.beta) * bc])
    y2, _ = _pad(y)
    s2, _ = _filter(jnp.asarray(p), jnp.asarray(y2), jnp.asarray(bc))
    s2 = np.asarray(s2)[: y.size]
    nxt = p.omega + p.alpha * y[-1] ** 2 + p.beta * s2[-1]
    return np.concatenate([s2, [nxt]])


def fit_garch(y: np.ndarray) -> tuple[GARCHParams, float, bool]:
    """MLE of GARCH(1,1) on ``y`` (any scale; percent recommended). Returns ``(params, loglik, converged)``."""
    y = _as_returns(y)
    y2, mask = _pad(y)
    y2j, maskj, bcj = jnp.asarray(y2), jnp.asarray(mask), jnp.asarray(backcast(y))
    var = float(np.mean(y**2))

    def fun(u):
        v, g = _neg_ll_and_grad(jnp.asarray(u), y2j, maskj, bcj)
        v, g = float(v), np.asarray(g, dtype=np.float64)
        if not np.isfinite(v):
            return 1e300, np.zeros(3)
        return v, g

    best = None
    for alpha, beta in ((0.05, 0.90), (0.10, 0.85), (0.15, 0.80), (0.03, 0.96), (0.20, 0.70)):
        p = alpha + beta
        u0 = np.array([math.log(var * (1 - p)), math.log(p / (1 - p)), math.log(alpha / beta)])
        res = optimize.minimize(fun, u0, jac=True, method="L-BFGS-B", options={"maxiter": 500, "gtol": 1e-7})
        if best is None or res.fun < best.fun:
            best = res
    params = np.asarray(_to_params(jnp.asarray(best.x)))
    return GARCHParams(*params), -float(best.fun), bool(best.success)


class GARCH11(PerAssetModel):
    """Zero-mean Gaussian GARCH(1,1), one parameter set per asset; see the module docstring.

    Args:
        scale: multiplier applied to log returns before fitting (100 = percent, as arch recommends).
        fixed_params: optional fixed ``(omega, alpha, beta)`` (omega in ``(scale * log-return)^2``) used for every asset
            instead of fitting; ``fit`` then only records each asset's start-up variance.
        levels: quantile levels of the forecasts.

    Attributes (after fit):
        params_: ``{asset: {"omega", "alpha", "beta", "backcast", "loglik", "converged"}}``.

    Raises:
        ValueError: invalid fixed parameters (e.g. ``alpha + beta >= 1``) or ``scale <= 0``.
    """

    name = "garch"
    min_history = 100

    def __init__(self, scale: float = 100.0, fixed_params=None, levels=DEFAULT_LEVELS):
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite positive number, got {scale!r}")
        self.scale = float(scale)
        self.fixed = None if fixed_params is None else check_garch_params(*fixed_params)
        self.levels = tuple(levels)
        self.params_: dict[str, dict[str, float]] = {}

    def fit(self, features: Mapping[str, pd.DataFrame]) -> "GARCH11":
        self._check_mapping(features)
        out = {}
        for asset, frame in features.items():
            r, _ = leading_returns(frame, asset=asset)
            self._check_history(asset, r.size)
            y = self.scale * r
            if self.fixed is None:
                p, ll, ok = fit_garch(y)
            else:
                p, ok = self.fixed, True
                ll = garch_loglikelihood(p, y)
            out[asset] = {"omega": p.omega, "alpha": p.alpha, "beta": p.beta, "backcast": backcast(y),
                          "loglik": ll, "converged": ok}
        self.params_ = out
        return self

    def _forecast_asset(self, asset: str, frame: pd.DataFrame, p, h: int) -> VolatilityForecast:
        r, n_lead = leading_returns(frame, asset=asset)
        prm = (p["omega"], p["alpha"], p["beta"])
        s2 = garch_variance(prm, self.scale * r, bc=p["backcast"])
        one = np.concatenate([np.full(n_lead, s2[0]), s2[1:]])  # sigma2_{t+1|t} at each row t
        phi = p["alpha"] + p["beta"]
        sbar = p["omega"] / (1.0 - phi)
        var = h * sbar + (one - sbar) * (1.0 - phi**h) / (1.0 - phi)
        var = var / self.scale**2
        return VolatilityForecast(frame.index, h, var, gaussian_quantiles(var, self.levels))
