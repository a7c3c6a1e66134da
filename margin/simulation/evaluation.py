"""Evaluation of a venue backtest: h-day losses, exceptions per side, coverage, procyclicality, stress windows,
capital efficiency, bad debt, the predictive-vs-reactive targets and the forecast's day-to-day variability.

Definitions (one vocabulary for every report of this project):

- **h-day loss** of a fixed 1x position of unit notional opened at the close of day t: long ``1 - C_{t+h}/C_t``,
  short ``C_{t+h}/C_t - 1``, where ``t+h`` is the calendar date h days later (:func:`h_day_losses`). When that date
  is missing from the data (a gap), the observation is dropped: a loss never spans a gap silently.
- **Exception**: a day whose h-day loss exceeds the IM fraction set at the close of that day: for a long, the
  policy's down move (``scan_down``, or ``scan_range`` for a symmetric policy); for a short, its up move
  (``scan_up``). Counted over ``eval_start .. end`` per series (asset x side).
- **Coverage tests**: Kupiec (1995) POF, Christoffersen (1998) independence and conditional coverage, Basel (1996)
  traffic light per 250 days (:mod:`margin.simulation.coverage`).
- **Procyclicality**: peak-to-trough ratio and largest 1/5/30-day relative increase of the IM fraction (Murphy,
  Vasios & Vause 2014; EMIR RTS 153/2013 Art. 28), :mod:`margin.simulation.procyclicality`.
- **Cost**: average IM as % of notional of the fixed positions (``avg_im_fraction``, a fraction: 0.08 = 8%).

All arrays are ``(T, A)`` float64 over days x assets unless stated otherwise; money in USD.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from margin.simulation.liquidation import LiquidationError
from margin.simulation.procyclicality import largest_increase, peak_to_trough
from margin.simulation.coverage import coverage_metrics

__all__ = [
    "BacktestInputError",
    "SIDES",
    "forecast_variability",
    "h_day_losses",
    "policy_metrics",
    "select_stress_windows",
    "side_scans",
    "targets",
]

SIDES = ("long", "short")


class BacktestInputError(LiquidationError):
    """Bad input to the venue backtest (names the argument, index / date and value)."""


def h_day_losses(close, horizon: int, dates=None) -> dict[str, np.ndarray]:
    """Loss per unit notional of a long and a short 1x position held from the close of t to the close of t + h days.

    One h-day move for every report: the venue backtest's exceptions and the main job's walk-forward breaches
    (``experiments.walk_forward``) both count it.

    Args:
        close: ``(T, A)`` (or ``(T,)``) closes, USD > 0, or a DataFrame / Series indexed by day (then ``dates`` is
            its index).
        horizon: h >= 1, an integer number of calendar days.
        dates: ``(T,)`` dates of the rows. With dates, the h-day move of origin t uses the close dated exactly
            ``t + h`` days; if that date is absent (a gap in the data) the loss is NaN, so it is dropped from the
            coverage tests instead of spanning the gap. Without dates the rows are taken as consecutive days.

    Returns:
        ``{"long": 1 - C_{t+h}/C_t, "short": C_{t+h}/C_t - 1}``, each ``(T, A)`` float64 (a fraction of notional),
        NaN where t + h is beyond the data or missing.

    Raises:
        BacktestInputError: horizon not an integer >= 1, a DataFrame / Series not indexed by dates, or ``dates``
            of the wrong length.
    """
    if int(horizon) != horizon or horizon < 1:
        raise BacktestInputError(f"horizon: must be an integer >= 1 day, got {horizon!r}")
    h = int(horizon)
    if isinstance(close, (pd.DataFrame, pd.Series)):
        if dates is None and not isinstance(close.index, pd.DatetimeIndex):
            raise BacktestInputError(f"close: must be indexed by a DatetimeIndex, got {type(close.index).__name__}")
        dates = close.index if dates is None else dates
        close = close.to_numpy()
    c = np.asarray(close, np.float64)
    if c.ndim == 1:
        c = c[:, None]
    fwd = np.full_like(c, np.nan)
    if dates is None:
        fwd[:-h] = c[h:] / c[:-h]
    else:
        d = pd.DatetimeIndex(dates)
        if len(d) != len(c):
            raise BacktestInputError(f"dates: {len(d)} dates for {len(c)} rows of close")
        pos = d.get_indexer(d + pd.Timedelta(days=h))
        ok = pos >= 0
        fwd[ok] = c[pos[ok]] / c[ok]
    return {"long": 1.0 - fwd, "short": fwd - 1.0}


def side_scans(out) -> tuple[np.ndarray, np.ndarray]:
    """(down, up) relative moves covered by a policy output: ``scan_down`` / ``scan_up`` when it has them
    (per-side margin), else ``scan_range`` for both. Each ``(T, A)`` float64."""
    s = np.asarray(out.scan_range, np.float64)
    down = getattr(out, "scan_down", None)
    up = getattr(out, "scan_up", None)
    return (s if down is None else np.asarray(down, np.float64), s if up is None else np.asarray(up, np.float64))


def select_stress_windows(windows: Mapping[str, Sequence], first: pd.Timestamp, last: pd.Timestamp,
                          train_end: pd.Timestamp | None) -> tuple[dict, dict]:
    """Keep the stress windows that overlap the simulated period, clipped to it.

    Args:
        windows: name -> (start, end) dates.
        first, last: first and last simulated day.
        train_end: last training day of the models (None: no fitted model).

    Returns:
        (kept: name -> dict(start, end, clipped, sample), skipped: name -> reason). ``sample`` is ``in-sample``
        when the window ends on or before ``train_end``, else ``out-of-sample`` (``n/a`` without a model).
    """
    kept, skipped = {}, {}
    for name, (w0, w1) in windows.items():
        w0, w1 = pd.Timestamp(w0), pd.Timestamp(w1)
        if w1 < first or w0 > last:
            skipped[str(name)] = f"outside the simulated data {first.date()} .. {last.date()}"
            continue
        a, b = max(w0, first), min(w1, last)
        sample = "n/a" if train_end is None else ("in-sample" if b <= train_end else "out-of-sample")
        kept[str(name)] = {"start": a, "end": b, "clipped": bool(a != w0 or b != w1), "sample": sample}
    return kept, skipped


def forecast_variability(sigma: np.ndarray, assets: Sequence[str]) -> dict:
    """Day-to-day variability of a volatility forecast: ``|log(sigma_t / sigma_{t-1})|`` per asset.

    Args:
        sigma: ``(T, A)`` forecast standard deviation (log-return units), NaN where unknown.
        assets: A names.

    Returns:
        asset -> ``{"median", "p99", "max"}`` of ``|log(sigma_t / sigma_{t-1})|`` (0.1 = a 10.5% move) and
        ``max_ratio`` = exp(max), the largest one-day factor.
    """
    s = np.asarray(sigma, np.float64)
    out = {}
    for a, asset in enumerate(assets):
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.abs(np.diff(np.log(s[:, a])))
        d = d[np.isfinite(d)]
        if d.size == 0:
            out[str(asset)] = {"median": float("nan"), "p99": float("nan"), "max": float("nan"),
                               "max_ratio": float("nan")}
            continue
        out[str(asset)] = {"median": float(np.median(d)), "p99": float(np.quantile(d, 0.99)),
                           "max": float(d.max()), "max_ratio": float(np.exp(d.max()))}
    return out


def _procyc(m: np.ndarray) -> dict:
    return {"peak_to_trough": float(peak_to_trough(m)),
            **{f"max_increase_{n}d": float(largest_increase(m, n)) for n in (1, 5, 30)}}


def policy_metrics(name: str, scans: tuple[np.ndarray, np.ndarray, np.ndarray], ledger: Mapping[str, np.ndarray],
                   losses: Mapping[str, np.ndarray], dates: pd.DatetimeIndex, eval_mask: np.ndarray,
                   assets: Sequence[str], windows: Mapping[str, dict], coverage: float = 0.99) -> dict:
    """Metrics of one policy over the simulated days.

    Args:
        name: policy label.
        scans: (scan_range, scan_down, scan_up), each ``(T, A)`` over the simulated days.
        ledger: the simulator's :class:`margin.simulation.liquidation.Ledger` fields as float64 arrays (leading axis T).
        losses: :func:`h_day_losses` restricted to the simulated days.
        dates: ``(T,)`` simulated days.
        eval_mask: ``(T,)`` bool, the evaluation period.
        assets: A names.
        windows: from :func:`select_stress_windows` (with ``sample`` set per model).
        coverage: 0.99.

    Returns:
        A JSON-ready dict: ``coverage`` per series ``<asset>_<side>`` (see
        :func:`margin.simulation.coverage.coverage_metrics`), ``exceptions`` (asset -> side -> count),
        ``procyclicality`` per asset (of ``scan_range``) and ``procyclicality_by_series``, ``avg_im_fraction``,
        ``avg_im_fraction_by_asset``, ``avg_im_fraction_by_series``, ``max_increase_30d`` (largest over series),
        ``all_pass_5pct``, ``exceptions_total``, ``margin_variability`` (per series: median / 99th percentile / max
        of ``|log(m_t / m_{t-1})|`` of the IM fraction, as :func:`forecast_variability`), ``book`` (liquidations,
        bad debt, fund, ledger check), ``stress`` per window, ``stress_bad_debt_usd`` and ``stress_bad_debt_oos_usd``.
    """
    s, down, up = scans
    ev = np.asarray(eval_mask, bool)
    side_scan = {"long": down, "short": up}
    res: dict = {"name": name, "coverage": {}, "exceptions": {}, "procyclicality": {},
                 "procyclicality_by_series": {}, "stress": {}}
    by_series = {}
    for a, asset in enumerate(assets):
        res["exceptions"][asset] = {}
        for side in SIDES:
            key = f"{asset}_{side}"
            lo = losses[side][ev][:, a]
            m = side_scan[side][ev][:, a]
            ok = np.isfinite(lo)
            c = coverage_metrics(lo[ok] > m[ok], coverage) if ok.sum() >= 2 else None
            if c is not None:
                res["coverage"][key] = c
                res["exceptions"][asset][side] = c["exceptions"]
            res["procyclicality_by_series"][key] = _procyc(m)
            by_series[key] = float(np.mean(m))
        res["procyclicality"][asset] = _procyc(s[ev][:, a])
    cov = list(res["coverage"].values())
    res["all_pass_5pct"] = bool(cov) and all(c["passes_5pct"] for c in cov)
    res["exceptions_total"] = int(sum(c["exceptions"] for c in cov))
    res["avg_im_fraction_by_series"] = by_series
    keys = [f"{asset}_{side}" for asset in assets for side in SIDES]
    res["margin_variability"] = forecast_variability(
        np.stack([side_scan[k.rsplit("_", 1)[1]][ev][:, assets.index(k.rsplit("_", 1)[0])] for k in keys], 1), keys)
    res["avg_im_fraction"] = float(np.mean(list(by_series.values())))
    res["avg_im_fraction_by_asset"] = {asset: float(np.mean([by_series[f"{asset}_{x}"] for x in SIDES]))
                                       for asset in assets}
    res["max_increase_30d"] = float(np.nanmax([v["max_increase_30d"]
                                               for v in res["procyclicality_by_series"].values()]))
    res["peak_to_trough"] = float(np.nanmax([v["peak_to_trough"] for v in res["procyclicality_by_series"].values()]))
    led = ledger
    im, notional = led["im"][ev], led["notional"][ev]
    drift = led["balances"] + led["fund"] + led["market"] - led["deposits"]
    res["book"] = {
        "avg_im_over_notional": float(np.mean(im / np.maximum(notional, 1e-9))),
        "avg_im_usd": float(np.mean(im)),
        "im_peak_to_trough": float(peak_to_trough(im)),
        "im_max_increase_30d": float(largest_increase(im, 30)),
        "liquidations": int(led["n_liquidations"][ev].sum()),
        "liquidation_volume_usd": float(led["liq_volume"][ev].sum()),
        "bad_debt_usd": float(led["bad_debt_step"][ev].sum()),
        "bad_debt_total_usd": float(led["bad_debt"][-1]),
        "fund_paid_usd": float(np.diff(led["fund_paid"], prepend=0)[ev].sum()),
        "adl_usd": float(np.diff(led["adl_paid"], prepend=0)[ev].sum()),
        "socialised_usd": float(np.diff(led["socialised"], prepend=0)[ev].sum()),
        "fees_usd": float(np.diff(led["fees"], prepend=0)[ev].sum()),
        "fund_start": float(led["fund"][0]), "fund_end": float(led["fund"][-1]), "fund_min": float(led["fund"].min()),
        "ledger_max_abs_error": float(np.max(np.abs(drift - drift[0]))),
    }
    top = np.argsort(-led["bad_debt_step"])[:5]
    res["book"]["worst_bad_debt_days"] = {str(dates[i].date()): float(led["bad_debt_step"][i])
                                          for i in top if led["bad_debt_step"][i] > 0}
    total_bad = 0.0
    for wname, w in windows.items():
        m = np.asarray((dates >= w["start"]) & (dates <= w["end"]))
        if not m.any():
            continue
        exc = 0
        for a in range(len(assets)):
            for side in SIDES:
                exc += int(np.nansum(losses[side][m][:, a] > side_scan[side][m][:, a]))
        first = int(np.flatnonzero(m)[0])
        lo = max(first - 5, 0)
        hi = int(np.flatnonzero(m)[-1]) + 1
        bd = float(led["bad_debt_step"][m].sum())
        total_bad += bd
        res["stress"][wname] = {
            "start": str(w["start"].date()), "end": str(w["end"].date()), "clipped": w["clipped"],
            "label": w["sample"], "exceptions": exc, "bad_debt_usd": bd,
            "liquidations": int(led["n_liquidations"][m].sum()),
            "liquidation_volume_usd": float(led["liq_volume"][m].sum()),
            "avg_im_fraction": float(np.mean(s[m])),
            "max_increase_5d": float(np.nanmax([largest_increase(x[lo:hi, a], 5)
                                                for x in (down, up) for a in range(len(assets))])),
            "fund_drawdown_usd": float(max(0.0, led["fund"][m].max() - led["fund"][m].min())),
        }
    res["stress_bad_debt_usd"] = total_bad
    res["stress_bad_debt_oos_usd"] = float(sum(w["bad_debt_usd"] for w in res["stress"].values()
                                               if w["label"] != "in-sample"))
    return res


def targets(results: Mapping[str, dict]) -> dict:
    """Predictive vs best reactive policy on the project's targets (issue 10), for the report.

    Best reactive = the reactive policy that passes every coverage test at 5% with the lowest average margin (if
    none passes: the one with the highest worst-series Kupiec p-value). Targets: coverage passes on every series;
    average margin no higher; largest 30-day increase at least 30% lower; peak-to-trough lower; bad debt over the
    evaluation period at least 50% lower; bad debt in each stress window no higher.

    Returns:
        predictive policy name -> dict of figures and ``*_met`` flags; empty without a predictive and a reactive
        policy.
    """
    pred = [k for k, v in results.items() if str(v.get("kind", "")).startswith("predictive")]  # incl. _smooth
    react = [k for k, v in results.items() if v.get("kind") == "reactive"]
    if not pred or not react:
        return {}
    passing = [k for k in react if results[k]["all_pass_5pct"]]
    if passing:
        best = min(passing, key=lambda k: results[k]["avg_im_fraction"])
    else:
        best = max(react, key=lambda k: min((c["kupiec_p"] for c in results[k]["coverage"].values()), default=0.0))

    def reduction(p, r):
        if r > 0:
            return 1 - p / r
        return 0.0 if p == 0 else -float("inf")

    rows = {}
    for p in pred:
        P, R = results[p], results[best]
        inc_red = 1 - P["max_increase_30d"] / R["max_increase_30d"] if R["max_increase_30d"] > 0 else float("nan")
        bd_red = reduction(P["stress_bad_debt_usd"], R["stress_bad_debt_usd"])
        bd_all_red = reduction(P["book"]["bad_debt_usd"], R["book"]["bad_debt_usd"])
        windows_ok = {w: P["stress"][w]["bad_debt_usd"] <= R["stress"][w]["bad_debt_usd"]
                      for w in P["stress"] if w in R["stress"]}
        rows[p] = {
            "best_reactive": best,
            "coverage_pass": P["all_pass_5pct"],
            "avg_margin": P["avg_im_fraction"], "avg_margin_reactive": R["avg_im_fraction"],
            "avg_margin_no_higher": P["avg_im_fraction"] <= R["avg_im_fraction"],
            "max_increase_30d": P["max_increase_30d"], "max_increase_30d_reactive": R["max_increase_30d"],
            "max_increase_30d_reduction": inc_red, "max_increase_30d_target_met": bool(inc_red >= 0.30),
            "peak_to_trough": P["peak_to_trough"], "peak_to_trough_reactive": R["peak_to_trough"],
            "peak_to_trough_lower": P["peak_to_trough"] < R["peak_to_trough"],
            "bad_debt": P["book"]["bad_debt_usd"], "bad_debt_reactive": R["book"]["bad_debt_usd"],
            "bad_debt_reduction": bd_all_red, "bad_debt_target_met": bool(bd_all_red >= 0.5),
            "stress_bad_debt": P["stress_bad_debt_usd"], "stress_bad_debt_reactive": R["stress_bad_debt_usd"],
            "stress_bad_debt_reduction": bd_red, "stress_bad_debt_target_met": bool(bd_red >= 0.5),
            "stress_windows_no_higher": windows_ok,
            "stress_windows_no_higher_met": all(windows_ok.values()),
            "stress_bad_debt_oos": P["stress_bad_debt_oos_usd"],
            "stress_bad_debt_oos_reactive": R["stress_bad_debt_oos_usd"],
        }
    return rows
