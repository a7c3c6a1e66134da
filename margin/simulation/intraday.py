"""Hourly liquidation steps with margin set daily (issue 10 item 5).

A venue sets its margin parameters once a day from the daily policy but marks and liquidates continuously. The
crash days 2020-03-12, 2021-05-19 and 2022-11-09 played out within hours, so a daily-step simulation misses
the intraday path: an account can fall through its maintenance margin and into bankruptcy between two daily
closes. Stepping the same simulator hourly on hourly bars measures that.

Conventions:

- an hourly bar is labelled by its open time (UTC); it closes at ``ts + 1h``. The scan range in force at that close
  is the one set at the latest daily close at or before it: day ``(ts + 1h).normalize() - 1 day``, so the bar that
  closes at midnight (23:00) uses the margin set at that same daily close, as the daily simulation does, and the
  other 23 bars use the previous day's margin. Days missing from the daily data carry the last margin forward.
- the impact law keeps its daily calibration: per hour the volatility is ``sigma_daily / sqrt(24)`` and the
  volume ``ADV / 24``, so the coefficient on ``sqrt(V)`` is the same as in the daily simulation;
- option series roll every ``tenor x 24`` hours (:func:`margin.simulation.liquidation.prepare_market` ``steps_per_day``),
  IV and the option grid follow the daily proxy of the day in force; ``reentry_days`` is scaled to hours.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["HOURS_PER_DAY", "daily_ledger", "hourly_schedule"]

HOURS_PER_DAY = 24


def hourly_schedule(hours: pd.DatetimeIndex, days: pd.DatetimeIndex) -> np.ndarray:
    """Row of ``days`` whose margin is in force at the close of each hourly bar (-1 before the first day).

    Args:
        hours: ``(H,)`` bar open times, increasing.
        days: ``(T,)`` daily closes (dates), increasing.

    Returns:
        ``(H,)`` int64 index into ``days``.
    """
    set_on = (pd.DatetimeIndex(hours) + pd.Timedelta(hours=1)).normalize() - pd.Timedelta(days=1)
    return np.asarray(pd.DatetimeIndex(days).get_indexer(set_on, method="ffill"), np.int64)


_FLOWS = ("bad_debt_step", "n_liquidations", "liq_volume", "n_adl")


def daily_ledger(ledger: dict[str, np.ndarray], hours: pd.DatetimeIndex, days: pd.DatetimeIndex
                 ) -> dict[str, np.ndarray]:
    """Aggregate an hourly :class:`margin.simulation.liquidation.Ledger` (as a dict of arrays) to the calendar days of
    ``days``: flows (bad debt, liquidations, liquidation volume, ADL count) are summed over the day's bars (by open
    time); stocks (balances, fund, cumulative bad debt, IM, notional, ...) take the day's last bar. Days without
    bars carry the previous day's stocks and zero flows.

    Returns:
        field -> ``(T,)`` (``impact``: ``(T, A)``) float64 arrays aligned on ``days``.
    """
    day_of = pd.DatetimeIndex(hours).normalize()
    pos = pd.DatetimeIndex(days).get_indexer(day_of)
    out = {}
    T = len(days)
    for k, v in ledger.items():
        v = np.asarray(v, np.float64)
        ok = pos >= 0
        if k in _FLOWS:
            agg = np.zeros((T,) + v.shape[1:])
            np.add.at(agg, pos[ok], v[ok])
        else:
            agg = np.full((T,) + v.shape[1:], np.nan)
            agg[pos[ok]] = v[ok]            # later bars overwrite: the day's last bar
            agg = pd.DataFrame(agg.reshape(T, -1)).ffill().bfill().to_numpy().reshape(agg.shape)
        out[k] = agg
    return out
