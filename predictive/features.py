"""Leakage-safe daily features and forward targets (``PREDICTIVE_API.md``).

Every column at row ``t`` uses only information available at the end of day ``t`` (UTC close): the daily bar of
day ``t`` and earlier, hourly bars opening on day ``t`` or earlier (the last closes at 24:00) and funding settlements
stamped on day ``t`` or earlier. ``tests/predictive/test_features.py`` proves it by perturbing all data after a day
and checking that no feature at or before that day changes.

Columns of :func:`build_features` (log-return units; variances per day):

``log_return``      ``ln(close_t / close_{t-1})`` (NaN on the first row)
``rv``              realised variance of day t (hourly sum of squares, else Garman-Klass; see
                    :mod:`predictive.intraday`), with ``rv_source``, ``rv_n_hours``, ``rv_missing_hours``
``parkinson``       Parkinson (1980) range variance
``garman_klass``    Garman & Klass (1980) range variance
``rv_7``, ``rv_30`` trailing means of ``rv`` over 7 and 30 days including day t (NaN until the window is full);
                    the HAR-RV components for a 24/7 market (Corsi 2009, REFERENCE.md section 3)
``rvol_{w}``        annualised realised volatility ``sqrt(365 * mean(log_return^2 over w days))``, w in ``windows``
``funding_*``       when funding is given: ``funding_sum``, ``funding_mean``, ``funding_abs``, ``funding_n``
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

from predictive.base import validate_horizon
from predictive.intraday import (daily_funding_features, daily_realised_variance, garman_klass_variance,
                                 parkinson_variance, rv_summary)

__all__ = ["RVOL_WINDOWS", "build_features", "forward_targets", "rv_summary", "check_daily_prices"]

log = logging.getLogger(__name__)

RVOL_WINDOWS: tuple[int, ...] = (7, 30, 90)
_PRICES = ("open", "high", "low", "close")


def check_daily_prices(daily: pd.DataFrame, name: str = "daily") -> None:
    """Check a daily OHLCV frame given directly (not via the loader): columns, index, finite positive prices.

    Raises:
        ValueError: a missing column, a non-DatetimeIndex / unsorted / duplicate index, or a NaN, infinite or
            non-positive price, or high < low (the message names the column, date and value).
    """
    if not isinstance(daily, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame, got {type(daily).__name__}")
    missing = [c for c in _PRICES if c not in daily.columns]
    if missing:
        raise ValueError(f"{name} frame is missing column(s) {missing}; columns are {list(daily.columns)}")
    if not isinstance(daily.index, pd.DatetimeIndex):
        raise ValueError(f"{name} frame must have a DatetimeIndex, got {type(daily.index).__name__}")
    if len(daily) < 2:
        raise ValueError(f"{name} frame needs at least 2 rows for a log return, got {len(daily)}")
    if not daily.index.is_monotonic_increasing or daily.index.has_duplicates:
        raise ValueError(f"{name} frame index must be strictly increasing (sorted, no duplicate dates)")
    for col in _PRICES:
        x = daily[col].to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(x) | (x <= 0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name} {col} on {daily.index[i].date()} (row {i}) must be a finite positive price, "
                             f"got {x[i]!r}")
    hi, lo = daily["high"].to_numpy(np.float64), daily["low"].to_numpy(np.float64)
    bad = np.flatnonzero(hi < lo)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name} high {hi[i]!r} below low {lo[i]!r} on {daily.index[i].date()} (row {i})")


def build_features(daily: pd.DataFrame, hourly: pd.DataFrame | None = None, funding: pd.DataFrame | None = None,
                   *, windows: Iterable[int] = RVOL_WINDOWS) -> pd.DataFrame:
    """Build the daily feature frame of one asset.

    Args:
        daily: daily OHLCV (from :func:`predictive.data.load_ohlcv`), index = day (UTC-naive), float64 prices.
        hourly: optional hourly OHLCV (:func:`predictive.intraday.load_hourly`) for the realised variance.
        funding: optional funding settlements (:func:`predictive.intraday.load_funding`).
        windows: trailing windows (days) of the ``rvol_{w}`` columns.

    Returns:
        DataFrame indexed by day ``t`` (same index as ``daily``) with the columns listed in the module docstring;
        float64 except ``rv_source`` (str), ``rv_n_hours`` / ``funding_n`` (int) and ``rv_missing_hours`` (bool).
        ``attrs["rv_summary"]`` reports how many days used each RV source and which days had missing hours.

    Raises:
        ValueError: bad prices (see :func:`check_daily_prices`), a window < 1.
    """
    check_daily_prices(daily)
    windows = tuple(int(w) for w in windows)
    for w in windows:
        if w < 1:
            raise ValueError(f"rolling window must be >= 1 day, got {w!r}")
    close = daily["close"].to_numpy(np.float64)
    r = np.full(len(close), np.nan)
    r[1:] = np.log(close[1:] / close[:-1])
    out = pd.DataFrame({"log_return": r}, index=daily.index)
    rv = daily_realised_variance(daily, hourly)
    out = out.join(rv)
    out["parkinson"] = parkinson_variance(daily)
    out["garman_klass"] = garman_klass_variance(daily)
    out["rv_7"] = out["rv"].rolling(7, min_periods=7).mean()
    out["rv_30"] = out["rv"].rolling(30, min_periods=30).mean()
    r2 = out["log_return"] ** 2
    for w in windows:
        out[f"rvol_{w}"] = np.sqrt(365.0 * r2.rolling(w, min_periods=w).mean())
    if funding is not None:
        out = out.join(daily_funding_features(daily.index, funding))
    summary = rv_summary(out)
    out.attrs["rv_summary"] = summary
    if summary["n_missing_hours_days"]:
        log.info("realised variance: %d day(s) with missing hourly bars (%d scaled by 24/n, %d fell back to "
                 "Garman-Klass); sources %s", summary["n_missing_hours_days"],
                 summary["by_source"]["hourly_scaled"], summary["by_source"]["garman_klass_missing_hours"],
                 summary["by_source"])
    return out


def forward_targets(features: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Targets of a forecast made at origin ``t`` for horizon ``h``, aligned at ``t``.

    Returns:
        DataFrame with the index of ``features`` and columns ``ret_h = r_{t+1} + ... + r_{t+h}`` (log return) and
        ``rv_h = rv_{t+1} + ... + rv_{t+h}`` (realised-variance proxy, log-return^2); NaN in the last ``h`` rows
        where the future is unknown.

    Raises:
        ValueError: ``horizon`` < 1 or not an integer.
        KeyError: ``log_return`` or ``rv`` missing.
    """
    h = validate_horizon(horizon)
    for col in ("log_return", "rv"):
        if col not in features.columns:
            raise KeyError(f"features have no column {col!r}")
    out = {}
    for col, name in (("log_return", "ret_h"), ("rv", "rv_h")):
        x = features[col].to_numpy(np.float64)
        n = len(x)
        y = np.full(n, np.nan)
        if n > h:
            c = np.concatenate([[0.0], np.cumsum(x[1:])])  # c[i] = x[1] + ... + x[i]
            # sum_{j=1..h} x[t+j] = c[t+h] - c[t]
            t = np.arange(n - h)
            y[t] = c[t + h] - c[t]
        out[name] = y
    return pd.DataFrame(out, index=features.index)
