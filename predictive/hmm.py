"""Gaussian hidden Markov model of volatility regimes, fitted by EM (Baum-Welch), forecasting from FILTERED
regime probabilities only.

Model (Hamilton 1989; Rabiner 1989): a Markov chain ``s_t`` in ``{0..K-1}`` with initial distribution ``pi`` and
transition matrix ``A`` (``A[i, j] = P(s_{t+1} = j | s_t = i)``) drives daily observations
``x_t | s_t = k ~ N(mu_k, diag(var_k))`` where ``x_t = (r_t)`` (daily log return) or ``x_t = (r_t, ln RV_t)``
(``use_log_rv=True``, realised variance floored at 1e-10). With ``zero_mean=True`` the return mean of every regime
is fixed at 0 (the constrained M-step is still an exact maximiser, so EM stays monotone).

E-step: forward-backward in log space with ``jax.lax.scan`` (float64); M-step in closed form. The log-likelihood
equals ``hmmlearn.hmm.GaussianHMM(covariance_type="diag").score`` at the same parameters (tested to 1e-6
relative). Several initialisations (one quantile-based, the rest random responsibilities from
``numpy.random.default_rng(seed)``), best log-likelihood kept. Regimes are sorted by return variance (0 = calmest).

Forecast at origin ``t`` for horizon ``h`` (no smoothing, no look-ahead): the filtered ``f_t = P(s_t | x_0..x_t)``
gives ``w = f_t A = P(s_{t+1} | F_t)``. Conditional on ``s_{t+1} = k`` the h-day return
``R = r_{t+1} + ... + r_{t+h}`` has mean ``m_k = sum_{j<h} (A^j mu)_k`` and variance
``V_k = sum_{j<h} (A^j var)_k + Var(sum_j mu_{s_{t+j}} | s_{t+1} = k)`` (exact); the predictive distribution is
approximated by the mixture ``sum_k w_k N(m_k, V_k)``, which is exact for ``h = 1`` and has the exact mean and
variance of ``R`` for every ``h``. ``variance`` is ``Var(R | F_t)``; quantiles by bisection on the mixture CDF.
``regime_probs`` are the filtered ``P(s_t | F_t)``. Rows before the first finite return carry the prior ``pi``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.special import logsumexp

from predictive.base import DEFAULT_LEVELS, leading_returns, mixture_quantiles, PerAssetModel, VolatilityForecast

jax.config.update("jax_enable_x64", True)

__all__ = ["GaussianHMM", "HMMParams", "hmm_loglikelihood", "hmm_filter", "em_fit", "check_n_regimes"]

_LOG_2PI = math.log(2.0 * math.pi)
_BUCKET = 256
_RV_FLOOR = 1e-10


class HMMParams(dict):
    """``{"pi": (K,), "A": (K, K), "mu": (K, d), "var": (K, d)}`` float64 numpy arrays (diagonal covariances)."""


def check_n_regimes(k: object) -> int:
    """Return ``k`` as int >= 1. Raises ValueError naming the value otherwise."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"number of regimes K must be an integer >= 1, got {k!r}")
    return int(k)


def _log_emission(mu: jax.Array, var: jax.Array, x: jax.Array) -> jax.Array:
    """(T, K) log N(x_t; mu_k, diag var_k)."""
    d = (x[:, None, :] - mu[None, :, :]) ** 2 / var[None, :, :]
    return -0.5 * jnp.sum(_LOG_2PI + jnp.log(var)[None, :, :] + d, axis=-1)


def _forward(log_pi, log_A, logB, mask):
    """Normalised forward pass. Returns (log filtered probs (T, K), log-likelihood). Masked rows add nothing."""

    def step(carry, inp):
        log_f_prev, first = carry
        lb, m = inp
        pred = jnp.where(first, log_pi, logsumexp(log_f_prev[:, None] + log_A, axis=0))
        joint = pred + m * lb
        c = logsumexp(joint)
        return (joint - c, jnp.zeros((), bool)), (joint - c, c)

    K = log_pi.shape[0]
    init = (jnp.zeros(K), jnp.ones((), bool))
    _, (log_f, cs) = jax.lax.scan(step, init, (logB, mask))
    return log_f, jnp.sum(cs * mask)


def _backward(log_A, logB, mask):
    """log beta_t (normalisation-free; masked rows contribute log-emission 0)."""

    def step(log_b_next, inp):
        lb_next, m_next = inp
        log_b = logsumexp(log_A + (m_next * lb_next + log_b_next)[None, :], axis=1)
        return log_b, log_b

    K = log_A.shape[0]
    _, log_b = jax.lax.scan(step, jnp.zeros(K), (logB[1:], mask[1:]), reverse=True)
    return jnp.concatenate([log_b, jnp.zeros((1, K))], axis=0)


@jax.jit
def _loglik_and_filter(pi, A, mu, var, x, mask):
    logB = _log_emission(mu, var, x)
    return _forward(jnp.log(pi), jnp.log(A), logB, mask)


@jax.jit
def _e_step(pi, A, mu, var, x, mask):
    """Expected sufficient statistics at the current parameters and the log-likelihood there."""
    log_pi, log_A = jnp.log(pi), jnp.log(A)
    logB = _log_emission(mu, var, x)
    # unnormalised forward in log space (needed jointly with beta for xi)
    def fstep(carry, inp):
        log_a_prev, first = carry
        lb, m = inp
        log_a = jnp.where(first, log_pi, logsumexp(log_a_prev[:, None] + log_A, axis=0)) + m * lb
        return (log_a, jnp.zeros((), bool)), log_a

    K = pi.shape[0]
    _, log_a = jax.lax.scan(fstep, (jnp.zeros(K), jnp.ones((), bool)), (logB, mask))
    log_b = _backward(log_A, logB, mask)
    ll = logsumexp(log_a[-1])
    gamma = jnp.exp(log_a + log_b - ll) * mask[:, None]
    # xi summed over t: alpha_t(i) A_ij B_{t+1}(j) beta_{t+1}(j) / L, only where row t+1 is observed
    log_xi = (log_a[:-1, :, None] + log_A[None, :, :] + (mask[1:, None] * logB[1:] + log_b[1:])[:, None, :] - ll)
    xi = jnp.sum(jnp.exp(log_xi) * mask[1:, None, None], axis=0)
    return gamma, xi, ll


def _pad(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    m = _BUCKET * max(1, -(-n // _BUCKET))
    xp = np.zeros((m, x.shape[1]))
    xp[:n] = x
    mask = np.zeros(m)
    mask[:n] = 1.0
    return xp, mask


def _check_params(p: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    pi, A, mu, var = (np.asarray(p[k], dtype=np.float64) for k in ("pi", "A", "mu", "var"))
    K = pi.shape[0]
    if A.shape != (K, K) or mu.ndim != 2 or mu.shape[0] != K or var.shape != mu.shape:
        raise ValueError(f"inconsistent HMM shapes: pi {pi.shape}, A {A.shape}, mu {mu.shape}, var {var.shape}")
    if np.any(var <= 0) or not np.all(np.isfinite(var)):
        raise ValueError(f"HMM variances must be finite and > 0, got {var.tolist()}")
    return pi, A, mu, var


def _as_obs(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = bad[0]
        raise ValueError(f"observation [{i}, {j}] = {x[i, j]!r} is not finite")
    return x


def hmm_loglikelihood(params: Mapping[str, np.ndarray], x: np.ndarray) -> float:
    """Log-likelihood ``ln p(x_0..x_{T-1})`` of the diagonal Gaussian HMM (hmmlearn's ``score``).

    Args:
        params: see :class:`HMMParams`.
        x: ``(T,)`` or ``(T, d)`` float64 observations.
    """
    pi, A, mu, var = _check_params(params)
    xp, mask = _pad(_as_obs(x))
    _, ll = _loglik_and_filter(*(jnp.asarray(a) for a in (pi, A, mu, var, xp, mask)))
    return float(ll)


def hmm_filter(params: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Filtered regime probabilities ``P(s_t | x_0..x_t)``, shape ``(T, K)``."""
    pi, A, mu, var = _check_params(params)
    x = _as_obs(x)
    xp, mask = _pad(x)
    log_f, _ = _loglik_and_filter(*(jnp.asarray(a) for a in (pi, A, mu, var, xp, mask)))
    return np.exp(np.asarray(log_f)[: x.shape[0]])


def _m_step(gamma, xi, x, zero_mean_cols, var_floor):
    nk = gamma.sum(axis=0)
    pi = gamma[0] / gamma[0].sum()
    A = xi / xi.sum(axis=1, keepdims=True)
    mu = (gamma.T @ x) / nk[:, None]
    mu[:, zero_mean_cols] = 0.0
    var = (gamma.T @ x**2) / nk[:, None] - 2 * mu * (gamma.T @ x) / nk[:, None] + mu**2
    var = np.maximum(var, var_floor[None, :])
    return pi, A, mu, var


def em_fit(x: np.ndarray, n_regimes: int, *, zero_mean_cols=(0,), n_init: int = 4, max_iter: int = 300,
           tol: float = 1e-8, seed: int = 0,
           init: Mapping[str, np.ndarray] | None = None) -> tuple[HMMParams, float, list[list[float]]]:
    """Baum-Welch EM for the diagonal Gaussian HMM with several initialisations.

    Args:
        x: ``(T, d)`` observations; ``zero_mean_cols`` lists the columns whose regime means are fixed at 0.
        n_regimes: K >= 1.
        n_init: initialisations (the first is quantile-based on column 0's magnitude, others random).
        max_iter, tol: stop when the log-likelihood gain per observation is below ``tol``.
        seed: seed of ``numpy.random.default_rng`` for the random initialisations.
        init: optional starting parameters (:class:`HMMParams`); then this single start is used.

    Returns:
        ``(params, loglik, histories)``; ``params`` sorted by the variance of column 0 (calmest first);
        ``histories[i]`` is the log-likelihood before each EM step of initialisation ``i`` (non-decreasing).
    """
    K = check_n_regimes(n_regimes)
    x = _as_obs(x)
    T, d = x.shape
    if T < 2 * K:
        raise ValueError(f"EM needs at least {2 * K} observations for K={K}, got {T}")
    zero_mean_cols = list(zero_mean_cols)
    var_floor = 1e-6 * np.var(x, axis=0) + 1e-300
    xp, mask = _pad(x)
    xj, mj = jnp.asarray(xp), jnp.asarray(mask)
    rng = np.random.default_rng(seed)
    best, best_ll, histories = None, -np.inf, []
    for i in range(1 if init is not None else max(1, int(n_init))):
        if init is not None:
            pi, A, mu, var = (a.copy() for a in _check_params(init))
            if pi.shape[0] != K or mu.shape[1] != d:
                raise ValueError(f"init parameters have K={pi.shape[0]}, d={mu.shape[1]}; expected K={K}, d={d}")
        elif i == 0:
            ranks = np.argsort(np.argsort(np.abs(x[:, 0] - (0 if 0 in zero_mean_cols else x[:, 0].mean()))))
            labels = np.minimum(ranks * K // T, K - 1)
            resp = np.full((T, K), 0.05 / max(K - 1, 1)) if K > 1 else np.ones((T, 1))
            resp[np.arange(T), labels] = 0.95 if K > 1 else 1.0
        else:
            resp = rng.dirichlet(np.ones(K), size=T)
        if init is None:
            xi0 = np.full((K, K), 1.0) + np.eye(K) * 20 * T / K  # sticky start: regimes persist ~20 days
            pi, A, mu, var = _m_step(resp, xi0, x, zero_mean_cols, var_floor)
            pi = np.full(K, 1.0 / K)
        hist = []
        for _ in range(max_iter):
            gamma, xi, ll = _e_step(*(jnp.asarray(a) for a in (pi, A, mu, var)), xj, mj)
            ll = float(ll)
            hist.append(ll)
            if not np.isfinite(ll):
                break
            gamma = np.asarray(gamma)[:T]
            pi, A, mu, var = _m_step(gamma, np.asarray(xi), x, zero_mean_cols, var_floor)
            A = np.maximum(A, 1e-300)
            A /= A.sum(axis=1, keepdims=True)
            if len(hist) > 1 and hist[-1] - hist[-2] < tol * T:
                break
        final = hmm_loglikelihood({"pi": pi, "A": A, "mu": mu, "var": var}, x)
        hist.append(final)
        histories.append(hist)
        if final > best_ll:
            best_ll, best = final, (pi, A, mu, var)
    pi, A, mu, var = best
    order = np.argsort(var[:, 0])
    params = HMMParams(pi=pi[order], A=A[np.ix_(order, order)], mu=mu[order], var=var[order])
    return params, best_ll, histories


def _horizon_components(A: np.ndarray, mu: np.ndarray, var: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean m_k and variance V_k of the h-day return given s_{t+1} = k (exact; see the module docstring)."""
    K = A.shape[0]
    powers = [np.eye(K)]
    for _ in range(h - 1):
        powers.append(powers[-1] @ A)
    m = sum(P @ mu for P in powers)
    v = sum(P @ var for P in powers)
    # E[(sum_j mu_{s_j})^2 | s_1 = k] = sum_i E[mu_{s_i}^2] + 2 sum_{i<j} E[mu_{s_i} mu_{s_j}]
    second = sum(P @ mu**2 for P in powers)
    for i in range(h):
        for j in range(i + 1, h):
            second = second + 2.0 * powers[i] @ (mu * (powers[j - i] @ mu))
    return m, v + second - m**2


class GaussianHMM(PerAssetModel):
    """Gaussian HMM volatility-regime model, one parameter set per asset; see the module docstring.

    Args:
        n_regimes: K >= 1.
        use_log_rv: add ``ln(rv)`` as a second observed dimension (helps identify regimes).
        zero_mean: fix the return mean of every regime at 0.
        n_init, max_iter, tol, seed: EM settings (see :func:`em_fit`).
        levels: quantile levels of the forecasts.

    Raises:
        ValueError: K < 1 (the message names the value).
    """

    name = "hmm"
    min_history = 100

    def __init__(self, n_regimes: int = 3, use_log_rv: bool = True, zero_mean: bool = True, n_init: int = 4,
                 max_iter: int = 300, tol: float = 1e-8, seed: int = 0, levels=DEFAULT_LEVELS):
        self.n_regimes = check_n_regimes(n_regimes)
        self.use_log_rv = bool(use_log_rv)
        self.zero_mean = bool(zero_mean)
        self.n_init, self.max_iter, self.tol, self.seed = int(n_init), int(max_iter), float(tol), int(seed)
        self.levels = tuple(levels)
        self.params_: dict[str, HMMParams] = {}
        self.loglik_: dict[str, float] = {}

    def _observations(self, frame: pd.DataFrame, asset: str) -> tuple[np.ndarray, int]:
        r, n_lead = leading_returns(frame, asset=asset)
        cols = [r]
        if self.use_log_rv:
            rv, _ = leading_returns(frame.iloc[n_lead:], "rv", asset=asset)
            if rv.size != r.size:
                raise ValueError(f"asset {asset!r}: rv is NaN where log_return is known")
            cols.append(np.log(np.maximum(rv, _RV_FLOOR)))
        return np.stack(cols, axis=1), n_lead

    def fit(self, features: Mapping[str, pd.DataFrame]) -> "GaussianHMM":
        self._check_mapping(features)
        params, lls = {}, {}
        for asset, frame in features.items():
            x, _ = self._observations(frame, asset)
            self._check_history(asset, x.shape[0])
            p, ll, _ = em_fit(x, self.n_regimes, zero_mean_cols=(0,) if self.zero_mean else (), n_init=self.n_init,
                              max_iter=self.max_iter, tol=self.tol, seed=self.seed)
            params[asset], lls[asset] = p, ll
        self.params_, self.loglik_ = params, lls
        return self

    def _forecast_asset(self, asset: str, frame: pd.DataFrame, p, h: int) -> VolatilityForecast:
        x, n_lead = self._observations(frame, asset)
        filt = hmm_filter(p, x) if x.shape[0] else np.zeros((0, self.n_regimes))
        probs = np.concatenate([np.tile(p["pi"], (n_lead, 1)), filt])  # P(s_t | F_t); prior before data
        # weights on s_{t+1}: filtered propagated one step; before any data the prior is for the first obs
        w = np.concatenate([np.tile(p["pi"], (n_lead, 1)), filt @ p["A"]])
        m, v = _horizon_components(p["A"], p["mu"][:, :1], p["var"][:, :1], h)
        m, v = m[:, 0], v[:, 0]
        mean = w @ m
        var = w @ (v + m**2) - mean**2
        T = len(frame)
        q = mixture_quantiles(w, np.tile(np.sqrt(v), (T, 1)), self.levels, means=np.tile(m, (T, 1)))
        return VolatilityForecast(frame.index, h, var, q, regime_probs=probs)
