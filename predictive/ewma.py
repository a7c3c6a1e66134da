"""RiskMetrics EWMA volatility (J.P. Morgan / Reuters, RiskMetrics Technical Document, 1996).

Recursion on daily log returns ``r_t`` (REFERENCE.md section 3)::

    s2_{t+1|t} = lam * s2_{t|t-1} + (1 - lam) * r_t^2,        lam = 0.94 for daily data

The forecast made at the end of day ``t`` for the next day is ``s2_{t+1|t}``; for ``h`` days it is ``h * s2_{t+1|t}``
(EWMA has no mean reversion, so every future day has the same forecast variance). Quantiles are Gaussian.

Start-up: ``s2_{1|0}`` (the forecast for the first return) is the arch-style backcast of the FIT sample: the
``0.94^k``-weighted mean of its first ``min(75, n)`` squared returns (weights normalised). It is stored per asset as a
fitted quantity, so forecasting never looks past row ``t`` of the data it is given.

With ``fit_lambda=True`` ``lam`` is fitted per asset by Gaussian quasi-maximum likelihood,
``max_lam  -1/2 sum_t [ln s2_{t|t-1} + r_t^2 / s2_{t|t-1}]`` over ``lam`` in ``[0.5, 0.9999]`` (bounded Brent).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import optimize, signal

from predictive.base import DEFAULT_LEVELS, gaussian_quantiles, leading_returns, PerAssetModel, VolatilityForecast

__all__ = ["EWMA", "ewma_variance", "backcast"]


def _check_lam(lam: object) -> float:
    try:
        value = float(lam)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"lam must be a number strictly between 0 and 1, got {lam!r}") from None
    if not 0.0 < value < 1.0:
        raise ValueError(f"lam must be strictly between 0 and 1, got {lam!r}")
    return value


def backcast(returns: np.ndarray, tau: int = 75, decay: float = 0.94) -> float:
    """arch's start-up variance: ``sum_k w_k r_k^2`` over the first ``min(tau, n)`` returns, ``w_k ∝ decay^k``.

    Args:
        returns: ``(n,)`` float64 log returns (any scale), ``n >= 1``.

    Returns:
        float, in the squared units of ``returns``.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size == 0:
        raise ValueError("backcast needs at least one return")
    m = min(tau, r.size)
    w = decay ** np.arange(m, dtype=np.float64)
    w /= w.sum()
    return float(np.sum(w * r[:m] ** 2))


def ewma_variance(returns: np.ndarray, lam: float, s2_init: float) -> np.ndarray:
    """One-step forecasts ``s2_{t+1|t}`` for ``t = 0..n-1`` and the start value.

    Args:
        returns: ``(n,)`` float64 log returns.
        lam: decay in (0, 1).
        s2_init: ``s2_{0|-1}``, the forecast for ``returns[0]``.

    Returns:
        ``(n + 1,)`` float64: element 0 is ``s2_init`` (forecast of ``r_0``), element ``t + 1`` is the forecast of
        ``r_{t+1}`` made after observing ``r_t``.
    """
    lam = _check_lam(lam)
    r2 = np.asarray(returns, dtype=np.float64) ** 2
    # IIR filter y_t = lam y_{t-1} + (1 - lam) r2_t with y_{-1} = s2_init, i.e. zi = lam * s2_init.
    y, _ = signal.lfilter([1.0 - lam], [1.0, -lam], r2, zi=np.array([lam * s2_init]))
    return np.concatenate([[s2_init], y])


def _neg_qml(lam: float, r: np.ndarray, s2_init: float) -> float:
    s2 = ewma_variance(r, lam, s2_init)[:-1]
    return 0.5 * float(np.sum(np.log(s2) + r**2 / s2))


class EWMA(PerAssetModel):
    """RiskMetrics EWMA; see the module docstring.

    Args:
        lam: decay in (0, 1) (fixed, or the fallback if fitting is off).
        fit_lambda: fit ``lam`` per asset by Gaussian QML.
        levels: quantile levels of the forecasts.

    Raises:
        ValueError: ``lam`` outside (0, 1) (the message names the value).
    """

    name = "ewma"
    min_history = 30

    def __init__(self, lam: float = 0.94, fit_lambda: bool = False, levels=DEFAULT_LEVELS):
        self.lam = _check_lam(lam)
        self.fit_lambda = bool(fit_lambda)
        self.levels = tuple(levels)
        self.params_: dict[str, dict[str, float]] = {}

    def fit(self, features: Mapping[str, pd.DataFrame]) -> "EWMA":
        self._check_mapping(features)
        params = {}
        for asset, frame in features.items():
            r, _ = leading_returns(frame, asset=asset)
            self._check_history(asset, r.size)
            s2_0 = backcast(r)
            lam = self.lam
            if self.fit_lambda:
                res = optimize.minimize_scalar(_neg_qml, bounds=(0.5, 0.9999), args=(r, s2_0), method="bounded",
                                               options={"xatol": 1e-6})
                lam = float(res.x)
            params[asset] = {"lam": lam, "s2_init": s2_0}
        self.params_ = params
        return self

    def _forecast_asset(self, asset: str, frame: pd.DataFrame, p, h: int) -> VolatilityForecast:
        r, n_lead = leading_returns(frame, asset=asset)
        s2 = ewma_variance(r, p["lam"], p["s2_init"])
        one_step = np.concatenate([np.full(n_lead, p["s2_init"]), s2[1:]])  # forecast made at each row
        var = h * one_step
        return VolatilityForecast(frame.index, h, var, gaussian_quantiles(var, self.levels))
