"""Hourly OHLCV and 8-hourly funding data: loading, validation, daily realised variance and funding features.

Embedded data (``predictive/data/``): Binance spot BTC/USDT and ETH/USDT hourly klines 2018-01-01 .. 2023-12-31
(``date`` = bar OPEN time, UTC) and Binance USDT-margined perpetual funding rates per 8h settlement
(00:00 / 08:00 / 16:00 UTC, a fraction: 0.0001 = 0.01%) from 2019-09 / 2019-11.

Day convention (UTC): hourly bars opening 00:00 .. 23:00 of day ``t`` belong to day ``t``; the last one closes at
24:00, the close of the daily bar. A funding settlement stamped on day ``t`` (00:00, 08:00 or 16:00) belongs to day
``t``. So every daily quantity here is known at the end of day ``t``.

Realised variance (Andersen & Bollerslev 1998; REFERENCE.md section 3): ``RV_t = sum_i r_{t,i}^2`` over the hourly
log returns of day ``t``. The hourly return of a bar is ``log(close / previous bar's close)`` when the previous hour
exists, else ``log(close / open)`` of the bar itself (after an exchange outage the gap return is not squeezed into one
"hour"). Days with missing hours are handled and reported, never silently treated as calm:

* 24 bars: ``rv = sum r^2``, source ``"hourly"``;
* 20..23 bars: ``rv = sum r^2 * 24 / n`` (scaled up for the missing hours), source ``"hourly_scaled"``;
* fewer than 20 bars on a day inside the hourly file's coverage: the Garman-Klass range variance of the DAILY bar
  (Garman & Klass 1980), source ``"garman_klass_missing_hours"``;
* no hourly data for the day (outside coverage, or no hourly file given): Garman-Klass, source ``"garman_klass"``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from predictive.data import DataValidationError, load_validated, resolve_path, validate_ohlcv

__all__ = [
    "MIN_HOURS_FOR_RV",
    "RV_SOURCES",
    "load_hourly",
    "load_funding",
    "validate_hourly",
    "validate_funding",
    "hourly_log_returns",
    "daily_realised_variance",
    "rv_summary",
    "daily_funding_features",
    "parkinson_variance",
    "garman_klass_variance",
]

#: Minimum number of hourly bars for an hourly realised variance (scaled by 24/n); below that, Garman-Klass.
MIN_HOURS_FOR_RV = 20
RV_SOURCES = ("hourly", "hourly_scaled", "garman_klass_missing_hours", "garman_klass")

_HOUR_NS = 3_600_000_000_000


def _fast_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """Parse ISO dates in one vectorised pass; if any cell fails, leave the raw text so the validator names it."""
    if "date" in frame.columns and frame["date"].dtype == object:
        parsed = pd.to_datetime(frame["date"], errors="coerce", format="ISO8601", utc=True)
        if not parsed.isna().any():
            frame = frame.copy()
            frame["date"] = parsed
    return frame


def validate_hourly(frame: pd.DataFrame, source: str = "<frame>", first_data_line: int = 1) -> pd.DataFrame:
    """Validate a raw hourly OHLCV table (all daily checks, plus: every timestamp on a whole UTC hour).

    Missing hours are allowed (real exchange outages) and reported by :func:`daily_realised_variance`.

    Returns:
        DataFrame indexed by ``date`` (bar open time, UTC-naive, strictly increasing), float64 columns
        ``open, high, low, close, volume``.

    Raises:
        DataValidationError: as :func:`predictive.data.validate_ohlcv`, or a timestamp not on a whole hour
            (the message names file, line, column and value).
    """
    clean = validate_ohlcv(_fast_dates(frame), source, first_data_line)
    ns = clean.index.as_unit("ns").asi8
    off = np.flatnonzero(ns % _HOUR_NS != 0)
    if off.size:
        i = int(off[0])
        raise DataValidationError(f"hourly timestamp {clean.index[i]} is not on a whole hour", file=source,
                                  line=first_data_line + i, column="date", value=str(clean.index[i]))
    return clean


def load_hourly(path_or_asset: str | Path, *, start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Load and validate an hourly OHLCV file.

    Args:
        path_or_asset: ``"BTC"`` / ``"ETH"`` (embedded ``*_1h.csv.gz``) or a ``.csv``, ``.csv.gz`` or ``.parquet``
            path with columns ``date,open,high,low,close,volume`` (``date`` = bar open time, UTC).
        start, end: optional inclusive bounds on the bar open time, applied after validation.

    Returns:
        See :func:`validate_hourly`. Prices in quote currency (USDT for the embedded files), volume in coin.

    Raises:
        DataValidationError: missing or malformed file (names file, line, column and value).
    """
    return load_validated(resolve_path(path_or_asset, "1h"), validate_hourly, start=start, end=end)


def validate_funding(frame: pd.DataFrame, source: str = "<frame>", first_data_line: int = 1,
                     max_abs_rate: float = 0.05) -> pd.DataFrame:
    """Validate a raw funding table with columns ``date,funding_rate``.

    Args:
        frame: raw table (strings or numbers).
        source, first_data_line: for error messages.
        max_abs_rate: largest plausible |rate| per settlement (5%; venue caps are 0.3% .. 2%). A larger value is
            almost surely a unit error (percent or bps instead of a fraction) and is rejected.

    Returns:
        DataFrame indexed by ``date`` (settlement time, UTC-naive, strictly increasing), float64 ``funding_rate``
        (fraction of notional per settlement, paid by longs to shorts when positive).

    Raises:
        DataValidationError: missing column, empty, unparsable / duplicate / unsorted dates, unparsable, NaN,
            infinite or implausibly large rates (names file, line, column and value).
    """
    missing = [c for c in ("date", "funding_rate") if c not in frame.columns]
    if missing:
        raise DataValidationError(f"missing required column(s) {missing}; found {list(frame.columns)}", file=source)
    if len(frame) == 0:
        raise DataValidationError("no data rows", file=source)
    frame = _fast_dates(frame)
    raw_dates = frame["date"]
    dates = pd.to_datetime(raw_dates, errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataValidationError(f"unparsable date {raw_dates.iloc[i]!r}", file=source, line=first_data_line + i,
                                  column="date", value=raw_dates.iloc[i])
    dates = pd.DatetimeIndex(dates.dt.tz_convert(None), name="date")
    raw = frame["funding_rate"]
    rate = pd.to_numeric(raw, errors="coerce").astype("float64").to_numpy()
    bad = np.flatnonzero(~np.isfinite(rate) | (np.abs(rate) > max_abs_rate))
    if bad.size:
        i = int(bad[0])
        what = ("funding_rate must be a finite number" if not np.isfinite(rate[i]) else
                f"|funding_rate| above {max_abs_rate} per settlement (a fraction is expected, 0.0001 = 0.01%)")
        raise DataValidationError(f"{what}, got {raw.iloc[i]!r}", file=source, line=first_data_line + i,
                                  column="funding_rate", value=raw.iloc[i])
    step = np.diff(dates.as_unit("ns").asi8)
    for cond, msg in ((step == 0, "duplicate date"), (step < 0, "dates not in ascending order at")):
        idx = np.flatnonzero(cond)
        if idx.size:
            i = int(idx[0]) + 1
            raise DataValidationError(f"{msg} {raw_dates.iloc[i]!r}", file=source, line=first_data_line + i,
                                      column="date", value=raw_dates.iloc[i])
    return pd.DataFrame({"funding_rate": rate}, index=dates)


def load_funding(path_or_asset: str | Path) -> pd.DataFrame:
    """Load and validate a funding-rate file (``"BTC"`` / ``"ETH"`` embedded, or a CSV / Parquet path).

    Returns / raises: see :func:`validate_funding`.
    """
    return load_validated(resolve_path(path_or_asset, "funding_8h"), validate_funding)


# --------------------------------------------------------------------------------------------------------------
# Range estimators (daily bars)

def parkinson_variance(daily: pd.DataFrame) -> pd.Series:
    """Parkinson (1980) range variance ``(ln H/L)^2 / (4 ln 2)`` per day (log-return^2), float64."""
    hl = np.log(daily["high"].to_numpy(np.float64) / daily["low"].to_numpy(np.float64))
    return pd.Series(hl**2 / (4.0 * np.log(2.0)), index=daily.index, name="parkinson")


def garman_klass_variance(daily: pd.DataFrame) -> pd.Series:
    """Garman & Klass (1980) variance ``0.5 (ln H/L)^2 - (2 ln 2 - 1) (ln C/O)^2`` per day (>= 0 since |ln C/O| <= ln H/L)."""
    hl = np.log(daily["high"].to_numpy(np.float64) / daily["low"].to_numpy(np.float64))
    co = np.log(daily["close"].to_numpy(np.float64) / daily["open"].to_numpy(np.float64))
    gk = 0.5 * hl**2 - (2.0 * np.log(2.0) - 1.0) * co**2
    return pd.Series(np.maximum(gk, 0.0), index=daily.index, name="garman_klass")


# --------------------------------------------------------------------------------------------------------------
# Realised variance from hourly bars

def hourly_log_returns(hourly: pd.DataFrame) -> pd.Series:
    """One log return per hourly bar: ``log(close_s / close_{s-1h})`` if the previous hour exists, else
    ``log(close_s / open_s)`` (first bar, or first bar after a gap). Index = bar open time."""
    close = hourly["close"].to_numpy(np.float64)
    opn = hourly["open"].to_numpy(np.float64)
    ns = hourly.index.as_unit("ns").asi8
    prev_close = np.empty_like(close)
    prev_close[0] = np.nan
    prev_close[1:] = close[:-1]
    consecutive = np.zeros(len(close), dtype=bool)
    consecutive[1:] = np.diff(ns) == _HOUR_NS
    base = np.where(consecutive, prev_close, opn)
    return pd.Series(np.log(close / base), index=hourly.index, name="hourly_log_return")


def daily_realised_variance(daily: pd.DataFrame, hourly: pd.DataFrame | None = None,
                            min_hours: int = MIN_HOURS_FOR_RV) -> pd.DataFrame:
    """Daily realised variance with per-day source flags (see the module docstring for the rules).

    Args:
        daily: validated daily OHLCV (``DatetimeIndex`` of days), used for the Garman-Klass fallback.
        hourly: validated hourly OHLCV or ``None`` (then every day uses Garman-Klass).
        min_hours: minimum bars for an hourly RV (1..24).

    Returns:
        DataFrame indexed like ``daily`` with columns ``rv`` (float64, log-return^2 per day), ``rv_source``
        (one of :data:`RV_SOURCES`), ``rv_n_hours`` (int, hourly bars on that day, 0 if none) and
        ``rv_missing_hours`` (bool: the day lies inside the hourly coverage and has fewer than 24 bars).
        ``attrs["rv_summary"]`` holds :func:`rv_summary` of the result.

    Raises:
        ValueError: ``min_hours`` outside 1..24.
    """
    if not 1 <= int(min_hours) <= 24:
        raise ValueError(f"min_hours must lie in 1..24, got {min_hours!r}")
    days = daily.index.normalize()
    gk = garman_klass_variance(daily).to_numpy()
    n_hours = np.zeros(len(daily), dtype=np.int64)
    rv_hourly = np.full(len(daily), np.nan)
    covered = np.zeros(len(daily), dtype=bool)
    if hourly is not None and len(hourly):
        r = hourly_log_returns(hourly)
        by_day = (r**2).groupby(r.index.normalize())
        ssq = by_day.sum().reindex(days)
        cnt = by_day.count().reindex(days)
        n_hours = cnt.fillna(0).to_numpy().astype(np.int64)
        rv_hourly = ssq.to_numpy()
        first_day, last_day = hourly.index[0].normalize(), hourly.index[-1].normalize()
        covered = np.asarray((days >= first_day) & (days <= last_day))
    full = n_hours == 24
    scaled = (n_hours >= min_hours) & (n_hours < 24)
    rv = np.where(full, rv_hourly, np.where(scaled, rv_hourly * 24.0 / np.maximum(n_hours, 1), gk))
    source = np.where(full, "hourly", np.where(scaled, "hourly_scaled",
                                               np.where(covered, "garman_klass_missing_hours", "garman_klass")))
    out = pd.DataFrame({"rv": rv.astype(np.float64), "rv_source": source, "rv_n_hours": n_hours,
                        "rv_missing_hours": covered & (n_hours < 24)}, index=daily.index)
    out.attrs["rv_summary"] = rv_summary(out)
    return out


def rv_summary(frame: pd.DataFrame) -> dict:
    """Summary of how each day's ``rv`` was obtained: counts per source and the days with missing hours.

    Args:
        frame: a frame with ``rv_source``, ``rv_n_hours`` and ``rv_missing_hours`` (from
            :func:`daily_realised_variance` or :func:`predictive.features.build_features`).

    Returns:
        ``{"n_days", "by_source": {source: count}, "n_missing_hours_days", "missing_hours_days":
        [(date 'YYYY-MM-DD', n_hours, source), ...]}``.
    """
    counts = {s: int((frame["rv_source"] == s).sum()) for s in RV_SOURCES}
    miss = frame[frame["rv_missing_hours"].to_numpy(bool)]
    return {
        "n_days": int(len(frame)),
        "by_source": counts,
        "n_missing_hours_days": int(len(miss)),
        "missing_hours_days": [(d.strftime("%Y-%m-%d"), int(n), str(s))
                               for d, n, s in zip(miss.index, miss["rv_n_hours"], miss["rv_source"])],
    }


# --------------------------------------------------------------------------------------------------------------
# Funding features

def daily_funding_features(daily_index: pd.DatetimeIndex, funding: pd.DataFrame) -> pd.DataFrame:
    """Funding features per day from settlements stamped on that day (known at the end of day ``t``).

    Args:
        daily_index: the days (``DatetimeIndex``).
        funding: validated funding frame (``funding_rate`` per settlement, a fraction).

    Returns:
        DataFrame indexed by ``daily_index``: ``funding_sum`` (sum of rates settled that day, fraction of notional
        paid by longs per day), ``funding_mean`` (mean per settlement), ``funding_abs`` (sum of |rate|) and
        ``funding_n`` (number of settlements, int). Days without settlements have ``funding_n = 0`` and NaN in the
        other columns (no funding information; before the perpetual existed), never a made-up 0.
    """
    rate = funding["funding_rate"]
    g = rate.groupby(rate.index.normalize())
    agg = pd.DataFrame({"funding_sum": g.sum(), "funding_mean": g.mean(), "funding_abs": rate.abs().groupby(
        rate.index.normalize()).sum(), "funding_n": g.count()})
    agg = agg.reindex(daily_index.normalize())
    agg.index = daily_index
    agg["funding_n"] = agg["funding_n"].fillna(0).astype(np.int64)
    return agg
