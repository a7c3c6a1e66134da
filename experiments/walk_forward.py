"""The main job's walk-forward: margin a long and a short 1x perpetual per asset and day, count h-day breaches.

A BREACH here is an h-day loss of a 1x linear perpetual above its Gaussian initial margin ``z(coverage) x sigma_h``
(fraction of notional). The venue backtest (``experiments.backtest``) counts EXCEPTIONS of a policy's scan range
instead: a different margin (buffers, floors, the policy's quantiles), so the two names are kept apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

import margin
import predictive
from margin.simulation import h_day_losses

__all__ = ["BLOCK_DAYS", "MarginPath", "SIDES", "margin_fraction", "max_increase_pct", "summarise", "walk_forward"]

SIDES = ("long", "short")
BLOCK_DAYS = 64  # walk-forward days margined per kernel call (one progress step)


@dataclass(frozen=True)
class MarginPath:
    """One policy's margin on one asset over the evaluation period (arrays of shape ``(T,)``, float64)."""

    dates: pd.DatetimeIndex      # forecast origins t whose t + h close exists
    im_fraction: np.ndarray      # IM as a fraction of notional set at t
    loss_fraction: dict[str, np.ndarray]  # side -> h-day loss over (t, t + h days] as a fraction of notional at t
    breaches: dict[str, np.ndarray]       # side -> bool, loss > IM
    dropped_gap: int = 0         # origins dropped because the close of t + h days is missing (a gap, the end)


def margin_fraction(variance_h: np.ndarray, coverage: float) -> np.ndarray:
    """IM fraction of notional = z(coverage) x sigma_h, sigma_h = sqrt(forecast variance of the h-day log return),
    capped at 1 (a 1x account cannot post more than its notional)."""
    return np.minimum(stats.norm.ppf(coverage) * np.sqrt(variance_h), 1.0)


def walk_forward(closes: dict[str, pd.Series], fractions: dict[str, pd.Series], horizon: int,
                 maintenance_fraction: float, *, progress: bool = False) -> dict[str, MarginPath]:
    """Margin a long and a short 1x perpetual per asset and origin with the batched margin kernel.

    Each origin t gets two isolated accounts (1 coin long / short, collateral = notional: 1x leverage) with IM
    and MM from ``fractions[asset][t]`` (MM = ``maintenance_fraction`` x IM); they are marked at the close of the
    CALENDAR day t + h (:func:`margin.simulation.h_day_losses`) and a breach is an h-day loss above the IM.
    ``BLOCK_DAYS`` origins go through one kernel call (each origin is its own market), one progress step each.

    Args:
        closes: asset -> daily closes (USD), DatetimeIndex.
        fractions: asset -> IM fraction of notional per origin (NaN origins are dropped).
        horizon: h in days (>= 1).
    """
    paths = {}
    for asset, imf_all in fractions.items():
        close = closes[asset]
        # h-day move C_{t+h}/C_t - 1 (a short's loss), NaN where the close of t + h days is missing
        move = pd.Series(h_day_losses(close, horizon)["short"][:, 0], close.index).reindex(imf_all.index)
        usable = imf_all.notna() & move.notna()
        dates = imf_all.index[usable.to_numpy()]
        entry = close.reindex(dates).to_numpy(np.float64)
        mark = entry * (1.0 + move[usable].to_numpy())
        imf = imf_all[usable].to_numpy(np.float64)
        im, loss = np.zeros((len(dates), 2)), np.zeros((len(dates), 2))
        blocks = range(0, len(dates), BLOCK_DAYS)
        for lo in tqdm(blocks, desc=f"walk-forward {asset}", unit="block", disable=not progress, leave=False):
            hi = min(lo + BLOCK_DAYS, len(dates))
            n = hi - lo
            positions = np.zeros((2 * n, n))
            positions[2 * np.arange(n), np.arange(n)] = 1.0
            positions[2 * np.arange(n) + 1, np.arange(n)] = -1.0
            collateral = np.repeat(entry[lo:hi], 2)
            res = margin.perpetual_margin(positions, entry[lo:hi], mark[lo:hi], collateral, imf[lo:hi],
                                          imf[lo:hi] * maintenance_fraction, dtype=np.float64)
            # the kernel's IM is on the notional at the mark; per unit notional it is the IM fraction set at t
            im[lo:hi] = (np.asarray(res.initial_margin) / np.repeat(mark[lo:hi], 2)).reshape(n, 2)
            loss[lo:hi] = (-np.asarray(res.unrealised_pnl) / collateral).reshape(n, 2)
        dropped = int((imf_all.notna() & move.isna()).sum())
        paths[asset] = MarginPath(dates, im[:, 0], {s: loss[:, k] for k, s in enumerate(SIDES)},
                                  {s: loss[:, k] > im[:, k] for k, s in enumerate(SIDES)}, dropped)
    return paths


def max_increase_pct(fraction: np.ndarray, days: int = 30) -> float:
    """Largest ``days``-day increase of margin, max_t (m_t / m_{t-days} - 1) in percent (Murphy et al. 2014)."""
    if fraction.size <= days:
        return float("nan")
    return float(np.max(fraction[days:] / fraction[:-days] - 1.0) * 100.0)


def summarise(path: MarginPath, coverage: float) -> dict:
    """Per-asset metrics of one policy; the top level pools the long and the short position's breaches."""
    pooled = np.concatenate([path.breaches[s] for s in SIDES])
    kupiec = predictive.kupiec_pof(pooled, coverage)
    per_side = {}
    for side in SIDES:
        k = predictive.kupiec_pof(path.breaches[side], coverage)
        per_side[side] = {"breaches": k.x, "breach_rate": k.rate, "kupiec_lr": k.statistic,
                          "kupiec_pvalue": k.pvalue}
    return {
        "days": int(path.dates.size),
        "first_origin": str(path.dates[0].date()) if path.dates.size else None,
        "last_origin": str(path.dates[-1].date()) if path.dates.size else None,
        "origins_dropped_gap": path.dropped_gap,
        "breaches": kupiec.x,
        "breach_rate": kupiec.rate,
        "kupiec_lr": kupiec.statistic,
        "kupiec_pvalue": kupiec.pvalue,
        "avg_margin_pct": float(np.mean(path.im_fraction) * 100.0),
        "max_30d_increase_pct": max_increase_pct(path.im_fraction, 30),
        "sides": per_side,
    }
