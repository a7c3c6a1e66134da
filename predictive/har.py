"""HAR-RV (Corsi 2009) on daily realised variance, for a 24/7 market (7- and 30-day components).

For horizon ``h`` the model is a DIRECT regression of the ``h``-day realised variance on today's components
(REFERENCE.md section 3)::

    RV_{t+1} + ... + RV_{t+h} = b0 + b_d RV_t + b_w RV^{(7)}_t + b_m RV^{(30)}_t + e_t,

``RV^{(w)}_t = mean(RV_{t-w+1} .. RV_t)``. One coefficient vector per horizon and asset, fitted by ordinary least
squares (``numpy.linalg.lstsq``) on the rows whose 30-day window is full and whose ``h``-day target is known. A
direct regression avoids iterating the one-step model (whose errors compound and which would need forecasts of the
weekly/monthly means); it is the usual choice for multi-step HAR (e.g. Corsi 2009 sec. 4, Patton & Sheppard 2015).

At forecast time the components at early rows (fewer than 7 / 30 days of history) are means over the days available.
Forecasts are floored at ``floor_frac * h * mean(RV)`` of the fit sample, since OLS can predict a negative variance
after a calm spell. Quantiles are Gaussian with the forecast variance (zero mean).

Fitting needs the target ``RV_{t+h}``, so :meth:`HARRV.fit` fits all horizons in ``horizons`` at once (and fits
a missing horizon lazily from the data stored at fit time if :meth:`forecast` is asked for another one).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from predictive.base import (DEFAULT_LEVELS, gaussian_quantiles, InsufficientDataError, PerAssetModel,
                             validate_horizon, VolatilityForecast)

__all__ = ["HARRV", "har_design", "fit_har"]


def _check_rv(frame: pd.DataFrame, column: str, asset: str) -> np.ndarray:
    if column not in frame.columns:
        raise KeyError(f"asset {asset!r}: feature frame has no column {column!r}")
    rv = frame[column].to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(rv) | (rv < 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"asset {asset!r}: {column} at row {i} ({frame.index[i]}) must be finite and >= 0, "
                         f"got {rv[i]!r}")
    return rv


def har_design(rv: np.ndarray, windows: tuple[int, int] = (7, 30)) -> np.ndarray:
    """Regressors ``[1, RV_t, RV^(w1)_t, RV^(w2)_t]`` at every row ``t``; shape ``(T, 4)``.

    Trailing means over ``min(w, t + 1)`` available days (partial at the start; rows with full windows are those
    with ``t >= max(windows) - 1``).
    """
    rv = np.asarray(rv, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(rv)])
    t = np.arange(rv.size)
    cols = [np.ones(rv.size), rv]
    for w in windows:
        lo = np.maximum(t + 1 - w, 0)
        cols.append((c[t + 1] - c[lo]) / (t + 1 - lo))
    return np.stack(cols, axis=1)


def fit_har(rv: np.ndarray, horizon: int, windows: tuple[int, int] = (7, 30)) -> np.ndarray:
    """OLS coefficients ``(b0, b_d, b_w, b_m)`` of the direct ``h``-day HAR regression (see module docstring)."""
    h = validate_horizon(horizon)
    X = har_design(rv, windows)
    c = np.concatenate([[0.0], np.cumsum(rv)])
    first = max(windows) - 1
    t = np.arange(first, rv.size - h)
    if t.size < 10:
        raise InsufficientDataError(f"HAR-RV needs at least {max(windows) + h + 10} rows for horizon {h}, "
                                    f"got {rv.size}")
    y = c[t + h + 1] - c[t + 1]  # rv[t+1] + ... + rv[t+h]
    beta, *_ = np.linalg.lstsq(X[t], y, rcond=None)
    return beta


class HARRV(PerAssetModel):
    """HAR-RV with direct ``h``-step regressions, one coefficient set per asset and horizon.

    Args:
        horizons: horizons (days) fitted by :meth:`fit`.
        rv_column: feature column holding daily realised variance.
        windows: (weekly, monthly) window lengths in days (7, 30 for 24/7 crypto; 5, 22 for exchanges).
        floor_frac: variance floor as a fraction of ``h * mean(RV)`` of the fit sample (> 0).
        levels: quantile levels of the forecasts.

    Attributes (after fit): ``coef_[asset][h] = (b0, b_d, b_w, b_m)``, ``floor_[asset]`` = mean daily RV * floor_frac.
    """

    _fitted_attr = "coef_"

    name = "har"

    def __init__(self, horizons: Iterable[int] = (1, 5), rv_column: str = "rv", windows=(7, 30),
                 floor_frac: float = 0.05, levels=DEFAULT_LEVELS):
        self.horizons = tuple(validate_horizon(h) for h in horizons)
        self.rv_column = rv_column
        self.windows = tuple(int(w) for w in windows)
        if len(self.windows) != 2 or min(self.windows) < 1:
            raise ValueError(f"windows must be two lengths >= 1 day, got {windows!r}")
        if not 0 < floor_frac < 1:
            raise ValueError(f"floor_frac must lie in (0, 1), got {floor_frac!r}")
        self.floor_frac = float(floor_frac)
        self.levels = tuple(levels)
        self.min_history = max(self.windows) + max(self.horizons) + 30
        self.coef_: dict[str, dict[int, np.ndarray]] = {}
        self.floor_: dict[str, float] = {}
        self._rv_fit: dict[str, np.ndarray] = {}

    def fit(self, features: Mapping[str, pd.DataFrame]) -> "HARRV":
        self._check_mapping(features)
        coef, floor, store = {}, {}, {}
        for asset, frame in features.items():
            rv = _check_rv(frame, self.rv_column, asset)
            self._check_history(asset, rv.size)
            coef[asset] = {h: fit_har(rv, h, self.windows) for h in self.horizons}
            floor[asset] = self.floor_frac * float(np.mean(rv))
            store[asset] = rv
        self.coef_, self.floor_, self._rv_fit = coef, floor, store
        return self

    def _forecast_asset(self, asset: str, frame: pd.DataFrame, coefs, h: int) -> VolatilityForecast:
        if h not in coefs:
            coefs[h] = fit_har(self._rv_fit[asset], h, self.windows)
        rv = _check_rv(frame, self.rv_column, asset)
        var = har_design(rv, self.windows) @ coefs[h]
        var = np.maximum(var, h * self.floor_[asset])
        return VolatilityForecast(frame.index, h, var, gaussian_quantiles(var, self.levels))
