"""Venue backtest of margin policies on a price history: the library behind ``experiments/backtest.py``.

:func:`run_venue_backtest` takes daily closes (and optionally volumes and hourly closes), the policies and the
models' forecasts as arrays (:class:`margin.simulation.policies.ForecastArrays`; ``margin`` never trains a model), and:

1. maps each policy to its scan ranges per day and asset (per side when the policy sets ``scan_down`` /
   ``scan_up``);
2. runs the liquidation simulator (:mod:`margin.simulation.liquidation`) on an account book opened at the first simulated
   day: daily steps, or hourly steps on hourly bars with margin set daily (``frequency="hourly"``,
   :mod:`margin.simulation.intraday`);
3. evaluates over ``eval_start .. end`` (:mod:`margin.simulation.evaluation`): exceptions per asset and side with
   Kupiec, Christoffersen and the Basel traffic light, procyclicality (Murphy, Vasios & Vause 2014), cost,
   liquidations, bad debt, insurance fund, the stress windows inside the data, the predictive-vs-reactive targets,
   an oracle study and the day-to-day variability of each forecast;
4. compares daily and hourly bad debt around the crash days inside the hourly data (a fresh book opened
   ``crash_pad_days`` before each crash day, simulated daily and hourly over the same days).

Example (a notebook)::

    import pandas as pd
    from margin.simulation import run_venue_backtest
    from predictive import load_ohlcv

    close = pd.DataFrame({a: load_ohlcv(a)["close"] for a in ("BTC", "ETH")}).dropna()
    result = run_venue_backtest(close, [{"kind": "static", "scan_range": {"BTC": 0.16, "ETH": 0.18}}],
                                book=2_000, start="2021-01-01", eval_start="2021-01-01")
    print(result.metrics["policies"]["static"]["coverage"]["BTC_long"])
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from margin.simulation.book import Book, synthetic_book
from margin.simulation.liquidation import LiquidationParams, make_oracle, prepare_market, simulate, simulate_blocks
from margin.simulation.policies import MarginPolicy, RiskInputs, make_policy
from margin.simulation.evaluation import (BacktestInputError, forecast_variability, h_day_losses, policy_metrics,
                                          select_stress_windows, side_scans, targets)
from margin.simulation.intraday import HOURS_PER_DAY, daily_ledger, hourly_schedule

log = logging.getLogger(__name__)

__all__ = ["BacktestResult", "MarketSettings", "DEFAULT_STRESS_WINDOWS", "DEFAULT_CRASH_DAYS", "ewma_sigma",
           "run_venue_backtest"]

DEFAULT_STRESS_WINDOWS: dict[str, tuple[str, str]] = {
    "2020-03 covid": ("2020-03-01", "2020-03-31"),
    "2021-05 crash": ("2021-05-01", "2021-05-31"),
    "2022-05 LUNA": ("2022-05-01", "2022-05-31"),
    "2022-11 FTX": ("2022-11-01", "2022-11-30"),
}
DEFAULT_CRASH_DAYS: tuple[str, ...] = ("2020-03-12", "2021-05-19", "2022-11-09")
HOURLY_BLOCK = 24 * 90      # hourly steps per block of the market build and scan (bounds memory: ~1.5 GB at 10k)


@dataclasses.dataclass(frozen=True)
class MarketSettings:
    """Market model of the simulation (``conf/backtest.yaml`` ``market:``).

    Attributes:
        adv_share: share of the 30-day average daily volume (USD) the venue's liquidations can hit (impact law).
        iv_premium: option IV proxy = iv_premium x annualised EWMA realised vol (variance risk premium) ...
        iv_floor: ... floored at this annualised vol.
        vol_scan: SPAN volatility scan range of the option grid (relative).
    """

    adv_share: float = 0.02
    iv_premium: float = 1.1
    iv_floor: float = 0.2
    vol_scan: float = 0.25


@dataclasses.dataclass
class BacktestResult:
    """What :func:`run_venue_backtest` returns.

    Attributes:
        metrics: JSON-ready dict: ``config``, ``policies`` (name -> :func:`margin.simulation.evaluation.policy_metrics`
            plus ``kind``, ``model``, ``seconds``), ``targets``, ``oracle_study``, ``hourly_vs_daily``,
            ``forecast_variability``, ``stress_windows`` (kept / skipped), ``timings``.
        dates: ``(T,)`` simulated days. eval_mask: ``(T,)`` bool, evaluation period.
        losses: h-day losses over the simulated days (``long`` / ``short`` -> ``(T, A)``).
        paths: policy -> ``scan_range``, ``scan_down``, ``scan_up`` ``(T, A)``, ``fund``, ``bad_debt``, ``im``
            ``(T,)`` and ``p_high`` ``(T, A)`` or None (for plots).
        windows: stress windows kept (name -> start, end, clipped, sample).
    """

    metrics: dict
    dates: pd.DatetimeIndex
    eval_mask: np.ndarray
    losses: dict
    paths: dict
    windows: dict


def ewma_sigma(log_returns: np.ndarray, lam: float = 0.94) -> np.ndarray:
    """RiskMetrics (1996) EWMA daily volatility ``(T, A)`` known at the close before each row (NaN returns = 0),
    seeded with the mean square of the first 30 rows; used by the impact law and the option IV proxy only."""
    r = np.asarray(log_returns, np.float64)
    out = np.empty_like(r)
    v = np.nanmean(r[:30] ** 2, axis=0)
    v = np.where(np.isfinite(v) & (v > 0), v, 1e-4)
    for t in range(len(r)):
        out[t] = np.sqrt(v)
        x = np.where(np.isfinite(r[t]), r[t], 0.0)
        v = lam * v + (1 - lam) * x ** 2
    return out


def _progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


def _policy(p) -> tuple[MarginPolicy, str | None]:
    if isinstance(p, MarginPolicy) or (callable(p) and not isinstance(p, Mapping)):
        pol, kind = p, getattr(p, "kind", None)
    else:
        cfg = {k: v for k, v in dict(p).items() if k != "defaults"}
        pol, kind = make_policy(cfg), cfg.get("kind")
    if kind is None:
        cls = type(getattr(pol, "inner", pol)).__name__.lower()
        kind = next((k for k in ("predictive", "reactive", "static") if k in cls), cls)
    return pol, kind


def _frame(x, name: str, dates: pd.DatetimeIndex, assets: list[str]) -> np.ndarray:
    if isinstance(x, pd.DataFrame):
        missing = [a for a in assets if a not in x.columns]
        if missing:
            raise BacktestInputError(f"{name}: no column for asset {missing[0]!r}")
        return x[assets].reindex(dates).to_numpy(np.float64)
    arr = np.asarray(x, np.float64)
    if arr.shape != (len(dates), len(assets)):
        raise BacktestInputError(f"{name}: shape {arr.shape} != (T={len(dates)}, A={len(assets)})")
    return arr


def _market_inputs(close, volume, sig_d, ms: MarketSettings):
    if volume is None:
        adv = np.full_like(close, 1e18)                           # no volume: practically no impact
    else:
        adv = pd.DataFrame(volume).rolling(30, min_periods=1).mean().to_numpy() * ms.adv_share
        adv = np.where(np.isfinite(adv) & (adv > 0), adv, 1e18)
    iv = np.maximum(sig_d * np.sqrt(365.0) * ms.iv_premium, ms.iv_floor)
    return adv, iv


def _simulate(book, P, oracle_kw, adv, sig, iv, scans, mm, lp, ms, dtype, spd=1, progress=False, desc=""):
    s, down, up = scans
    okw = dict(oracle_kw)
    if spd > 1:                       # oracle lags / windows are given in days
        okw["lag"] = int(okw.get("lag", 1)) * spd
        okw["window"] = int(okw.get("window", 3)) * spd
        lp = dataclasses.replace(lp, reentry_days=int(lp.reentry_days) * spd)
    kw = dict(vol_scan=ms.vol_scan, dtype=dtype, scan_down=down, scan_up=up, steps_per_day=spd)
    O = make_oracle(P, **okw)
    if spd > 1 and len(P) > HOURLY_BLOCK:   # long hourly paths: market built per 90-day block (bounded memory)
        _, led, _ = simulate_blocks(book, lambda r: prepare_market(book, P, O, adv, sig, iv, s, lp, rows=r, **kw),
                                    len(P), mm, lp, block=HOURLY_BLOCK, progress=progress, desc=desc)
    else:
        _, led, _ = simulate(book, prepare_market(book, P, O, adv, sig, iv, s, lp, **kw), mm, lp)
    return {k: np.asarray(v, np.float64) for k, v in led._asdict().items()}


def _hourly_inputs(hourly_close, assets, days, rows, adv, sig, iv, scans):
    """Hourly prices and per-hour inputs for the simulated days ``days`` (``rows``: their rows in the daily arrays)."""
    H = hourly_close[assets]
    H = H[(H.index >= days[0]) & (H.index < days[-1] + pd.Timedelta(days=1))].dropna()
    d = hourly_schedule(H.index, days)
    keep = d >= 0
    H, d = H[keep], d[keep]
    r = np.asarray(rows)[d]
    per_h = np.sqrt(HOURS_PER_DAY)
    return (H.index, H.to_numpy(np.float64), adv[r] / HOURS_PER_DAY, sig[r] / per_h, iv[r],
            tuple(x[r] for x in scans))


def run_venue_backtest(close: pd.DataFrame, policies: Sequence, forecasts: Mapping | None = None, *,
                       volume: pd.DataFrame | None = None, hourly_close: pd.DataFrame | None = None,
                       book: Book | int = 10_000, horizon: int = 1, coverage: float = 0.99,
                       start=None, eval_start=None, end=None, train_end=None,
                       liquidation: LiquidationParams | Mapping | None = None,
                       market: MarketSettings | Mapping | None = None, oracle: Mapping | None = None,
                       stress_windows: Mapping | None = None, oracle_study: Mapping | None = None,
                       frequency: str = "daily", hourly_comparison: bool = True,
                       crash_days: Sequence[str] = DEFAULT_CRASH_DAYS, crash_pad_days: int = 3,
                       seed: int = 0, dtype: str = "float32", progress: bool | None = None) -> BacktestResult:
    """Run a venue backtest (module docstring) and return its metrics and paths.

    Args:
        close: daily closes, USD, DataFrame indexed by day (DatetimeIndex), one column per asset; rows with a NaN in
            any asset are dropped. The full history (policies with look-back windows and the forecasts use it).
        policies: policy configs (mappings as ``conf/policy/*.yaml``, with ``kind``),
            :class:`margin.simulation.policies.MarginPolicy` objects, or any callable ``inputs -> PolicyOutput``-like object
            (``scan_range``, ``mm_factor``, ``name`` and optionally per-side ``scan_down`` / ``scan_up``).
        forecasts: model name -> :class:`margin.simulation.policies.ForecastArrays` ``(T, A)`` aligned on ``close``'s rows
            (after dropping rows with a NaN), either all of them or those up to ``end``.
        volume: daily traded volume, USD, same shape as ``close`` (None: no market impact).
        hourly_close: hourly closes, USD, indexed by bar open time (UTC), one column per asset; needed for
            ``frequency="hourly"`` and the daily-vs-hourly comparison.
        book: a :class:`margin.simulation.book.Book` or the number of accounts of a synthetic book (seeded by ``seed``).
        horizon: h in days: an exception is an h-day loss above the IM fraction (h-day losses by calendar date).
        coverage: target coverage of the margin (0.99).
        start: first day of the book (default: the first day of the data); the book opens at the first day
            ``>= start`` on which every policy has a finite margin (recorded as ``config.book_start``).
        eval_start, end: evaluation period (default: the book's start .. the last day).
        train_end: last training day of the models (labels the stress windows in/out of sample; None: n/a).
        liquidation: :class:`margin.simulation.liquidation.LiquidationParams` or a mapping of its fields.
        market: :class:`MarketSettings` or mapping. oracle: ``{"kind": "spot"}`` etc. (:func:`make_oracle`).
        stress_windows: name -> (start, end); default :data:`DEFAULT_STRESS_WINDOWS`; only those inside the data
            are evaluated.
        oracle_study: name -> oracle mapping; re-runs the first policy with each (None: skipped).
        frequency: ``"daily"`` or ``"hourly"`` (hourly steps on ``hourly_close``, margin set daily; the per-day
            metrics aggregate the hours; a daily run over the same days is added for the whole-period comparison).
        hourly_comparison: daily vs hourly bad debt on the crash days inside the hourly data.
        crash_days: days of the comparison; crash_pad_days: days simulated before and after each.
        seed: synthetic book seed. dtype: ``"float32"`` or ``"float64"`` simulation dtype.
        progress: tqdm bars on stderr (None: when stderr is a terminal).

    Returns:
        :class:`BacktestResult`.

    Raises:
        BacktestInputError: bad dates, shapes, frequency, or a policy without margin inside the period.
        margin.simulation.policies.PolicyError, margin.simulation.liquidation.LiquidationError, margin.simulation.book.BookError: from the parts.
    """
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    show = _progress(progress)
    if frequency not in ("daily", "hourly"):
        raise BacktestInputError(f"liquidation.frequency: must be daily or hourly, got {frequency!r}")
    if not isinstance(close, pd.DataFrame) or not isinstance(close.index, pd.DatetimeIndex):
        raise BacktestInputError("close: expected a DataFrame indexed by date, one column per asset")
    if frequency == "hourly" and hourly_close is None:
        raise BacktestInputError("liquidation.frequency=hourly: needs hourly closes (data.use_hourly=true)")
    assets = [str(a) for a in close.columns]
    close = close.dropna()
    dates = close.index
    if len(dates) < 2:
        raise BacktestInputError(f"close: need at least 2 days with every asset, got {len(dates)}")
    forecasts = dict(forecasts or {})
    ms = market if isinstance(market, MarketSettings) else MarketSettings(**dict(market or {}))
    lp = liquidation if isinstance(liquidation, LiquidationParams) else LiquidationParams(**dict(liquidation or {}))
    oracle = dict(oracle or {"kind": "spot"})
    jdtype = jnp.float64 if str(dtype) == "float64" else jnp.float32
    end = pd.Timestamp(end) if end is not None else dates[-1]
    start = pd.Timestamp(start) if start is not None else dates[0]
    if start > end:
        raise BacktestInputError(f"start {start.date()} is after end {end.date()}")
    dates_all = dates
    keep = dates <= end
    dates = dates[keep]
    C = close.to_numpy(np.float64)[keep]
    for name, fc in forecasts.items():
        if len(fc.sigma) == len(dates_all) and len(dates) != len(dates_all):
            forecasts[name] = type(fc)(**{f.name: (None if getattr(fc, f.name) is None else
                                                   np.asarray(getattr(fc, f.name))[keep])
                                          for f in dataclasses.fields(fc)})
    V = None if volume is None else _frame(volume, "volume", dates, assets)
    logret = np.vstack([np.full((1, len(assets)), np.nan), np.diff(np.log(C), axis=0)])
    inputs = RiskInputs(dates=dates, assets=tuple(assets), log_returns=logret, horizon=int(horizon),
                        forecasts=forecasts)

    # policies -> scan ranges over the whole history; the book opens when every policy has margin
    t0 = time.perf_counter()
    outs, kinds, models = [], [], []
    for p in policies:
        pol, kind = _policy(p)
        outs.append(pol(inputs))
        kinds.append(kind)
        models.append(getattr(getattr(pol, "inner", pol), "model", None))
    if not outs:
        raise BacktestInputError("policies: need at least one policy")
    finite = np.ones(len(dates), bool)
    for o in outs:
        for x in side_scans(o) + (o.scan_range,):
            finite &= np.isfinite(x).all(1)
    cand = np.flatnonzero((dates >= start) & finite)
    if cand.size == 0:
        raise BacktestInputError(f"no day in {start.date()} .. {end.date()} on which every policy has a margin "
                                 "(forecasts missing?)")
    first = dates[cand[0]]
    sim = (dates >= first) & (dates <= end)
    sdates = dates[sim]
    for o in outs:
        for label, x in zip(("scan_range", "scan_down", "scan_up"), (o.scan_range,) + side_scans(o)):
            bad = np.argwhere(~np.isfinite(x[sim]))
            if bad.size:
                t, a = bad[0]
                raise BacktestInputError(f"policy {o.name}: no {label} on {sdates[t].date()} for {assets[a]} "
                                         "(forecast missing inside the period?)")
    eval_start = pd.Timestamp(eval_start) if eval_start is not None else first
    if not first <= eval_start <= end:
        raise BacktestInputError(f"eval_start {eval_start.date()} outside the simulated period "
                                 f"{first.date()} .. {end.date()}")
    ev = np.asarray(sdates >= eval_start)
    timings = {"policies_s": time.perf_counter() - t0}

    P = C[sim]
    sig_all = ewma_sigma(logret)
    adv_all, iv_all = _market_inputs(C, V, sig_all, ms)
    adv, sig_d, iv = adv_all[sim], sig_all[sim], iv_all[sim]
    losses = {k: v[sim] for k, v in h_day_losses(C, horizon, dates).items()}
    if isinstance(book, Book):
        bk = book
    else:
        bk = synthetic_book(int(book), assets, seed=int(seed))
    if list(bk.assets) != assets:
        raise BacktestInputError(f"book: assets {list(bk.assets)} != price columns {assets}")
    tr_end = pd.Timestamp(train_end) if train_end is not None else None
    windows, skipped = select_stress_windows(dict(stress_windows if stress_windows is not None
                                                  else DEFAULT_STRESS_WINDOWS), sdates[0], sdates[-1], tr_end)
    hourly_ok = hourly_close is not None
    if hourly_ok:
        hourly_close = hourly_close.sort_index()

    results, paths, whole = {}, {}, {}
    bar = tqdm(list(zip(outs, kinds, models)), desc="backtest policies", disable=not show, leave=False)
    for out, kind, model in bar:
        t0 = time.perf_counter()
        scans = (np.asarray(out.scan_range, np.float64)[sim],) + tuple(x[sim] for x in side_scans(out))
        if frequency == "hourly":
            h0, h1 = hourly_close.dropna().index[[0, -1]]
            if h0 > sdates[0] + pd.Timedelta(hours=23) or h1 < sdates[-1]:
                raise BacktestInputError(f"hourly_close: bars {h0} .. {h1} do not cover the simulated days "
                                         f"{sdates[0].date()} .. {sdates[-1].date()} (frequency=hourly)")
            hrs, Ph, adv_h, sig_h, iv_h, sc_h = _hourly_inputs(hourly_close, assets, sdates, np.arange(len(sdates)),
                                                               adv, sig_d, iv, scans)
            led_h = _simulate(bk, Ph, oracle, adv_h, sig_h, iv_h, sc_h, out.mm_factor, lp, ms, jdtype,
                              spd=HOURS_PER_DAY, progress=show, desc=f"{out.name} hourly")
            led = daily_ledger(led_h, hrs, sdates)
            led_d = _simulate(bk, P, oracle, adv, sig_d, iv, scans, out.mm_factor, lp, ms, jdtype)
            whole[out.name] = {"daily_bad_debt_usd": float(led_d["bad_debt_step"][ev].sum()),
                               "hourly_bad_debt_usd": float(led["bad_debt_step"][ev].sum()),
                               "daily_liquidations": int(led_d["n_liquidations"][ev].sum()),
                               "hourly_liquidations": int(led["n_liquidations"][ev].sum())}
        else:
            led = _simulate(bk, P, oracle, adv, sig_d, iv, scans, out.mm_factor, lp, ms, jdtype)
        trained = tr_end is not None and model is not None and model != "ewma"
        wins = {k: {**w, "sample": w["sample"] if trained else "n/a (no fitted parameters)"}
                for k, w in windows.items()}
        res = policy_metrics(out.name, scans, led, losses, sdates, ev, assets, wins, coverage)
        res.update(kind=kind, model=model, seconds=time.perf_counter() - t0)
        results[out.name] = res
        fc = forecasts.get(model)
        paths[out.name] = {"scan_range": scans[0], "scan_down": scans[1], "scan_up": scans[2], "fund": led["fund"],
                           "im": led["im"], "bad_debt": led["bad_debt"],
                           "p_high": None if fc is None or fc.p_high is None else np.asarray(fc.p_high)[sim]}
        log.info("%s: %.1f s", out.name, res["seconds"])
    timings["simulate_s"] = sum(r["seconds"] for r in results.values())

    # daily vs hourly on the crash days inside the data (fresh book per window, same days both ways)
    t0 = time.perf_counter()
    crash = {}
    if hourly_comparison and hourly_ok:
        crash = _crash_comparison(outs, sim, sdates, hourly_close, assets, bk, P, adv, sig_d, iv, oracle, lp, ms,
                                  jdtype, crash_days, int(crash_pad_days), show)
    timings["hourly_comparison_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ostudy = None
    if oracle_study:
        out = outs[0]
        scans = (np.asarray(out.scan_range, np.float64)[sim],) + tuple(x[sim] for x in side_scans(out))
        ostudy = {"policy": out.name}
        for label, okw in dict(oracle_study).items():
            led = _simulate(bk, P, dict(okw), adv, sig_d, iv, scans, out.mm_factor, lp, ms, jdtype)
            bd = led["bad_debt_step"]
            ostudy[str(label)] = {"oracle": dict(okw), "bad_debt_usd": float(bd.sum()),
                                  "liquidations": int(led["n_liquidations"].sum()),
                                  "stress": {w: float(bd[np.asarray((sdates >= x["start"]) & (sdates <= x["end"]))]
                                                      .sum()) for w, x in windows.items()}}
    timings["oracle_study_s"] = time.perf_counter() - t0

    evd = np.flatnonzero(sim)[ev]
    variability = {name: forecast_variability(np.asarray(fc.sigma)[evd], assets) for name, fc in forecasts.items()}
    metrics = {
        "config": {"assets": assets, "horizon": int(horizon), "coverage": float(coverage),
                   "train_end": None if tr_end is None else str(tr_end.date()),
                   "start": str(start.date()), "book_start": str(first.date()),
                   "data_start": str(dates[0].date()), "data_end": str(dates[-1].date()),
                   "eval_start": str(eval_start.date()), "end": str(sdates[-1].date()),
                   "n_series": 2 * len(assets), "accounts": bk.n_accounts, "oracle": oracle,
                   "frequency": frequency, "book": bk.summary(), "liquidation": dataclasses.asdict(lp),
                   "market": dataclasses.asdict(ms)},
        "policies": results,
        "targets": targets(results),
        "oracle_study": ostudy,
        "hourly_vs_daily": {"whole_period": whole, "crash_days": crash,
                            "hourly_data": None if not hourly_ok else
                            [str(hourly_close.index[0]), str(hourly_close.index[-1])]},
        "forecast_variability": variability,
        "stress_windows": {"kept": {k: {"start": str(w["start"].date()), "end": str(w["end"].date()),
                                        "clipped": w["clipped"], "sample": w["sample"]} for k, w in windows.items()},
                           "skipped": skipped},
        "timings": {**timings, "total_s": time.perf_counter() - t_start},
    }
    return BacktestResult(metrics, sdates, ev, losses, paths, windows)


def _crash_comparison(outs, sim, sdates, hourly_close, assets, bk, P, adv, sig_d, iv, oracle, lp, ms, dtype,
                      crash_days, pad, show) -> dict:
    from tqdm.auto import tqdm

    h0, h1 = hourly_close.index[0], hourly_close.index[-1]
    res = {}
    jobs = []
    for day in crash_days:
        d = pd.Timestamp(day)
        w0, w1 = d - pd.Timedelta(days=pad), d + pd.Timedelta(days=pad)
        rows = np.flatnonzero(np.asarray((sdates >= w0) & (sdates <= w1)))
        if rows.size < 2 or w0 < h0.normalize() or w1 > h1 or sdates[rows[0]] != w0 or sdates[rows[-1]] != w1:
            res[str(d.date())] = {"skipped": "outside the simulated daily or hourly data"}
            continue
        jobs.append((d, rows))
    for d, rows in tqdm(jobs, desc="daily vs hourly (crash days)", disable=not show, leave=False):
        days = sdates[rows]
        per = {}
        for out in outs:
            scans = tuple(x[sim][rows] for x in (np.asarray(out.scan_range, np.float64),) + side_scans(out))
            led_d = _simulate(bk, P[rows], oracle, adv[rows], sig_d[rows], iv[rows], scans, out.mm_factor, lp, ms,
                              dtype)
            hrs, Ph, adv_h, sig_h, iv_h, sc_h = _hourly_inputs(hourly_close, assets, days, rows, adv, sig_d, iv,
                                                               tuple(x[sim] for x in
                                                                     (np.asarray(out.scan_range, np.float64),)
                                                                     + side_scans(out)))
            led_h = _simulate(bk, Ph, oracle, adv_h, sig_h, iv_h, sc_h, out.mm_factor, lp, ms, dtype,
                              spd=HOURS_PER_DAY)
            on_day = np.asarray(days == d)
            on_hour = np.asarray(hrs.normalize() == d)
            per[out.name] = {
                "daily_bad_debt_usd": float(led_d["bad_debt_step"].sum()),
                "hourly_bad_debt_usd": float(led_h["bad_debt_step"].sum()),
                "daily_bad_debt_on_day_usd": float(led_d["bad_debt_step"][on_day].sum()),
                "hourly_bad_debt_on_day_usd": float(led_h["bad_debt_step"][on_hour].sum()),
                "daily_liquidations": int(led_d["n_liquidations"].sum()),
                "hourly_liquidations": int(led_h["n_liquidations"].sum()),
            }
        res[str(d.date())] = {"start": str(days[0].date()), "end": str(days[-1].date()), "hours": int(len(hrs)),
                              "policies": per}
    return res
