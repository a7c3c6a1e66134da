"""Out-of-sample evaluation of volatility forecasts: walk-forward, losses, Diebold-Mariano.

Pure functions (no I/O). Units: log-return and log-return^2 (variance of the h-day log return).

Sources
    * QLIKE and MSE against a noisy realised-variance proxy: Patton (2011), "Volatility forecast comparison using
      imperfect volatility proxies", J. Econometrics 160. ``QLIKE = h/s2 - ln(h/s2) - 1``, ``MSE = (s2 - h)^2``.
    * Pinball (quantile) loss: Koenker & Bassett (1978); ``L_tau(y, q) = (tau - 1{y < q}) (y - q)``.
    * Diebold & Mariano (1995), "Comparing predictive accuracy", JBES 13; long-run variance by Newey & West (1987)
      (Bartlett weights, ``h - 1`` lags); small-sample correction of Harvey, Leybourne & Newbold (1997), IJF 13,
      with Student-t(T-1) critical values.
    * Coverage: Kupiec (1995) POF test from :mod:`predictive.coverage`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "DMResult",
    "diebold_mariano",
    "qlike_loss",
    "mse_loss",
    "pinball_loss",
    "realised_targets",
    "walk_forward",
    "loss_table",
    "summarise",
    "dm_table",
    "day_to_day_variability",
    "HoldoutModel",
    "load_asset_features",
    "render_forecast_report",
]


def qlike_loss(proxy: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Elementwise QLIKE ``h/s2 - ln(h/s2) - 1`` (Patton 2011). Raises ValueError on non-positive inputs."""
    proxy, variance = np.asarray(proxy, np.float64), np.asarray(variance, np.float64)
    _positive("variance", variance)
    _positive("proxy", proxy)
    r = proxy / variance
    return r - np.log(r) - 1.0


def mse_loss(proxy: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Elementwise squared error ``(s2 - h)^2`` (Patton 2011)."""
    return (np.asarray(variance, np.float64) - np.asarray(proxy, np.float64)) ** 2


def pinball_loss(y: np.ndarray, q: np.ndarray, tau: float) -> np.ndarray:
    """Elementwise pinball loss ``(tau - 1{y < q}) (y - q)`` of quantile forecast ``q`` at level ``tau``."""
    if not 0.0 < tau < 1.0:
        raise ValueError(f"pinball_loss: tau must lie in (0, 1), got {tau!r}")
    y, q = np.asarray(y, np.float64), np.asarray(q, np.float64)
    return (tau - (y < q).astype(np.float64)) * (y - q)


def _positive(name: str, x: np.ndarray) -> None:
    bad = np.flatnonzero(~(x > 0))
    if bad.size:
        raise ValueError(f"{name} must be positive and finite; index {bad[0]} has {x[bad[0]]!r}")


@dataclasses.dataclass(frozen=True)
class DMResult:
    """Diebold-Mariano test of equal predictive accuracy; ``mean_diff < 0`` means the first forecast is better."""

    statistic: float  # HLN-corrected statistic, compare with Student-t(n-1)
    pvalue: float     # two-sided
    mean_diff: float  # mean of d_t = loss_a - loss_b
    n: int


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> DMResult:
    """Diebold-Mariano test on loss differentials ``d_t = loss_a - loss_b``.

    Long-run variance: Newey-West with Bartlett weights ``1 - k/h`` for lags ``k = 1..h-1`` (h-step forecasts have
    MA(h-1) errors); statistic ``DM = mean(d) / sqrt(LRV / T)``, times the Harvey-Leybourne-Newbold factor
    ``sqrt((T + 1 - 2h + h(h-1)/T) / T)``; p-value two-sided from Student-t with ``T - 1`` degrees of freedom.

    Raises:
        ValueError: shapes differ, non-finite losses, horizon < 1, or fewer than 3 observations.
    """
    a, b = np.asarray(loss_a, np.float64), np.asarray(loss_b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"diebold_mariano: loss arrays must be 1-D of equal shape, got {a.shape} and {b.shape}")
    if horizon < 1:
        raise ValueError(f"diebold_mariano: horizon must be >= 1, got {horizon!r}")
    d = a - b
    if not np.all(np.isfinite(d)):
        i = int(np.flatnonzero(~np.isfinite(d))[0])
        raise ValueError(f"diebold_mariano: non-finite loss differential at index {i}: {d[i]!r}")
    T = d.size
    if T < 3:
        raise ValueError(f"diebold_mariano: need at least 3 observations, got {T}")
    dbar = d.mean()
    e = d - dbar
    lrv = e @ e / T
    for k in range(1, horizon):
        lrv += 2.0 * (1.0 - k / horizon) * (e[k:] @ e[:-k]) / T
    if lrv <= 0:
        stat = 0.0 if dbar == 0 else np.sign(dbar) * np.inf
    else:
        stat = dbar / np.sqrt(lrv / T)
    stat *= np.sqrt((T + 1 - 2 * horizon + horizon * (horizon - 1) / T) / T)
    p = 2.0 * stats.t.sf(abs(stat), df=T - 1)
    return DMResult(float(stat), float(p), float(dbar), int(T))


def realised_targets(features: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """h-day forward log return ``y`` and realised-variance proxy ``rv_h`` aligned at origin t (NaN at the end).

    Uses ``predictive.features.forward_targets`` (the project's single definition of the targets).
    """
    from predictive.features import forward_targets

    t = forward_targets(features, horizon)
    return pd.DataFrame({"y": t["ret_h"].to_numpy(np.float64), "rv_h": t["rv_h"].to_numpy(np.float64)},
                        index=features.index)


def walk_forward(model_factory: Callable[[], object], features: Mapping[str, pd.DataFrame], horizon: int,
                 test_start, test_end, refit_every: int = 90, train_end=None,
                 progress: bool = False) -> dict[str, pd.DataFrame]:
    """Expanding-window walk-forward forecasts, strictly out of sample.

    Forecast origins are the days ``t`` with ``test_start - 1 day <= t <= test_end - h days`` (so realised targets
    ``t+1..t+h`` lie in ``[test_start, test_end]``). Origins are cut into blocks of ``refit_every`` days; for the
    block starting at origin ``tau`` a fresh model from ``model_factory()`` is fitted on every row ``<= tau`` of
    every asset (targets after ``tau`` are unknown to it: the frame is sliced), then ``forecast`` runs on rows
    ``<= block end`` and the block's rows are kept; the model contract guarantees row ``t`` uses rows ``<= t`` only.
    ``train_end`` (optional, ``<= test_start - 1 day``) caps the first fit (a gap between training and test).

    Returns {asset: DataFrame indexed by origin} with columns ``variance``, ``q_<level>`` for each quantile level,
    ``p_<k>`` regime probabilities when the model gives them, ``y`` (realised h-day log return), ``rv_h``
    (realised-variance proxy) and ``fit_end`` (the last row the model was fitted on).
    """
    if refit_every < 1:
        raise ValueError(f"walk_forward: refit_every must be >= 1, got {refit_every!r}")
    if horizon < 1:
        raise ValueError(f"walk_forward: horizon must be >= 1, got {horizon!r}")
    test_start, test_end = pd.Timestamp(test_start), pd.Timestamp(test_end)
    first, last = test_start - pd.Timedelta(days=1), test_end - pd.Timedelta(days=horizon)
    if last < first:
        raise ValueError(f"walk_forward: empty test period {test_start.date()}..{test_end.date()} for h={horizon}")
    if train_end is not None and pd.Timestamp(train_end) > first:
        raise ValueError(f"walk_forward: train_end {pd.Timestamp(train_end).date()} is after the first forecast "
                         f"origin {first.date()} (test_start - 1 day): that would leak test data")
    origins = pd.date_range(first, last, freq="D")
    blocks = [origins[i:i + refit_every] for i in range(0, len(origins), refit_every)]
    pieces: dict[str, list[pd.DataFrame]] = {a: [] for a in features}
    it = blocks
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(blocks, desc="walk-forward", leave=False)
    for j, block in enumerate(it):
        tau, end = block[0], block[-1]
        cutoff = pd.Timestamp(train_end) if (j == 0 and train_end is not None) else tau
        train = {a: f.loc[:cutoff] for a, f in features.items()}
        model = model_factory().fit(train)
        fc = model.forecast({a: f.loc[:end] for a, f in features.items()}, horizon)
        for a, vf in fc.items():
            df = pd.DataFrame({"variance": np.asarray(vf.variance, np.float64)}, index=vf.index)
            for lev, q in sorted(vf.quantiles.items()):
                df[f"q_{lev:g}"] = np.asarray(q, np.float64)
            if vf.regime_probs is not None:
                for k in range(vf.regime_probs.shape[1]):
                    df[f"p_{k}"] = vf.regime_probs[:, k]
            df = df.loc[(df.index >= tau) & (df.index <= end)]
            df["fit_end"] = cutoff
            pieces[a].append(df)
    out = {}
    for a, f in features.items():
        df = pd.concat(pieces[a])
        tg = realised_targets(f, horizon)
        out[a] = df.join(tg, how="left")
    return out


def loss_table(fc: pd.DataFrame) -> pd.DataFrame:
    """Per-origin losses of one forecast frame (from :func:`walk_forward`): qlike, mse, pinball_0.01, pinball_0.99."""
    ok = np.isfinite(fc["y"]) & np.isfinite(fc["rv_h"]) & (fc["rv_h"] > 0)
    f = fc.loc[ok]
    out = pd.DataFrame(index=f.index)
    out["qlike"] = qlike_loss(f["rv_h"].to_numpy(), f["variance"].to_numpy())
    out["mse"] = mse_loss(f["rv_h"].to_numpy(), f["variance"].to_numpy())
    for lev in (0.01, 0.99):
        col = f"q_{lev:g}"
        if col in f:
            out[f"pinball_{lev:g}"] = pinball_loss(f["y"].to_numpy(), f[col].to_numpy(), lev)
    return out


def day_to_day_variability(variance: np.ndarray | pd.Series) -> dict[str, float]:
    """How much a forecast moves from one day to the next: ``d_t = |ln(var_t / var_{t-1})|`` over consecutive
    origins (``variance``: (T,) float64, forecast variance of the h-day log return, > 0).

    Returns ``{"dlogvar_med", "dlogvar_p99", "dlogvar_max", "share_day_x2"}``: median, 99th percentile and maximum
    of ``d_t`` and the share of days on which the variance at least doubles or halves (``d_t >= ln 2``). NaN for
    fewer than 2 origins. Procyclicality context: Murphy, Vasios & Vause (2014).
    """
    v = np.asarray(variance, np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size < 2:
        return {"dlogvar_med": float("nan"), "dlogvar_p99": float("nan"), "dlogvar_max": float("nan"),
                "share_day_x2": float("nan")}
    d = np.abs(np.diff(np.log(v)))
    return {"dlogvar_med": float(np.median(d)), "dlogvar_p99": float(np.quantile(d, 0.99)),
            "dlogvar_max": float(d.max()), "share_day_x2": float(np.mean(d >= np.log(2.0)))}


def summarise(forecasts: Mapping[str, pd.DataFrame], horizon: int) -> pd.DataFrame:
    """Per-asset summary: mean losses, exceedance rates of the 1% / 99% quantiles with Kupiec POF p-values.

    ``exceed_99`` counts ``y > q_0.99`` (upper tail: losses of a short position), ``breach_01`` counts
    ``y < q_0.01`` (lower tail: losses of a long). For h > 1 the origins overlap, so exceptions are serially
    dependent and the Kupiec test (which assumes independence) is only indicative; ``kupiec99_nonoverlap``
    repeats it on every h-th origin.
    """
    from predictive.coverage import kupiec_pof

    rows = []
    for a, fc in forecasts.items():
        lt = loss_table(fc)
        f = fc.loc[lt.index]
        row = {"asset": a, "horizon": horizon, "n": len(lt)}
        row.update({c: float(lt[c].mean()) for c in lt.columns})
        row.update(day_to_day_variability(fc["variance"].to_numpy()))
        if "q_0.99" in f:
            exc = (f["y"] > f["q_0.99"]).to_numpy()
            k = kupiec_pof(exc, coverage=0.99)
            row.update(exceed_99=float(exc.mean()), kupiec99_p=float(k.pvalue),
                       kupiec99_p_nonoverlap=float(kupiec_pof(exc[::horizon], coverage=0.99).pvalue))
        if "q_0.01" in f:
            br = (f["y"] < f["q_0.01"]).to_numpy()
            row.update(breach_01=float(br.mean()), kupiec01_p=float(kupiec_pof(br, coverage=0.99).pvalue))
        rows.append(row)
    return pd.DataFrame(rows)


def dm_table(losses: Mapping[str, Mapping[str, pd.DataFrame]], models: Sequence[str], baselines: Sequence[str],
             horizon: int, loss: str = "qlike") -> pd.DataFrame:
    """Diebold-Mariano tests of each model against each baseline, per asset, on the common origins.

    Args:
        losses: {model: {asset: loss_table frame}}.
    Returns rows (asset, model, baseline, loss, mean_diff, dm_stat, pvalue, n); negative statistic = model better.
    """
    rows = []
    for m in models:
        for b in baselines:
            if m == b or m not in losses or b not in losses:
                continue
            for a in losses[m]:
                if a not in losses[b]:
                    continue
                la, lb = losses[m][a][loss], losses[b][a][loss]
                idx = la.index.intersection(lb.index)
                r = diebold_mariano(la.loc[idx].to_numpy(), lb.loc[idx].to_numpy(), horizon)
                rows.append({"asset": a, "model": m, "baseline": b, "loss": loss, "mean_diff": r.mean_diff,
                             "dm_stat": r.statistic, "pvalue": r.pvalue, "n": r.n})
    return pd.DataFrame(rows)


class HoldoutModel:
    """Leave-one-asset-out wrapper: fits the wrapped POOLED model on every asset except ``holdout`` and forecasts
    all assets, so that :func:`walk_forward` scores the held-out asset out of sample in time AND in asset.

    Args:
        model: a fresh pooled model (e.g. ``RegimeNet``) that can forecast an asset it was not fitted on.
        holdout: asset names left out of every fit.

    Raises (from fit): ``ValueError`` when no training asset is left.
    """

    def __init__(self, model, holdout: Sequence[str]):
        self.model = model
        self.holdout = tuple(str(a) for a in holdout)
        self.name = getattr(model, "name", "model")

    def fit(self, features: Mapping[str, pd.DataFrame]) -> "HoldoutModel":
        train = {a: f for a, f in features.items() if a not in self.holdout}
        if not train:
            raise ValueError(f"holdout {list(self.holdout)} leaves no asset to train on (assets: {list(features)})")
        self.model.fit(train)
        return self

    def forecast(self, features: Mapping[str, pd.DataFrame], horizon: int):
        return self.model.forecast(features, horizon)


def _md(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(floatfmt.format(v) if isinstance(v, (float, np.floating)) else str(v)
                                       for v in r) + " |")
    return "\n".join(lines)


def _holdout_lines(metrics: dict) -> list[str]:
    held = list(metrics.get("holdout") or [])
    if not held:
        return []
    trained = ", ".join(a for a in metrics["assets"] if a not in held)
    return [f"Leave-one-asset-out: {metrics['model']} is trained on {trained} only and evaluated on the held-out "
            f"{', '.join(held)}; the baselines are fitted on each asset itself.", ""]


def render_forecast_report(metrics: dict, summary: pd.DataFrame, dm: pd.DataFrame) -> str:
    """Markdown report of :mod:`experiments.forecast`: one row per model and asset (losses, coverage, day-to-day
    variability), the leave-one-asset-out note, per-asset verdicts, then the Diebold-Mariano table.

    Args:
        metrics: the app's metrics dict (model, horizon, seed, dates, refit_every, assets, holdout).
        summary: :func:`summarise` rows of every model (column ``model`` added).
        dm: :func:`dm_table` rows.
    """
    cols = ["model", "asset", "n", "qlike", "mse", "pinball_0.01", "pinball_0.99", "exceed_99", "kupiec99_p",
            "breach_01", "kupiec01_p", "dlogvar_med", "dlogvar_p99", "share_day_x2"]
    s = summary[[c for c in cols if c in summary]].copy()
    s = s.sort_values(["asset", "qlike"])
    parts = [f"# Volatility forecast evaluation: {metrics['model']}, h = {metrics['horizon']} day(s), "
             f"seed {metrics['seed']}", "",
             f"Test origins {metrics['test_start']} - 1 day .. {metrics['test_end']} - h; first fit on data to "
             f"{metrics['train_end']}; expanding window, refit every {metrics['refit_every']} days. QLIKE and MSE "
             "against the realised-variance proxy (sum of daily RV over the h days); exceed_99 = share of h-day "
             "returns above the 99% quantile, breach_01 = below the 1% quantile (Kupiec POF p-values). "
             "Day-to-day variability: dlogvar_med / dlogvar_p99 = median / 99th percentile of "
             "|ln(var_t / var_t-1)| over consecutive origins, share_day_x2 = share of days on which the forecast "
             "variance doubles or halves.", "",
             *_holdout_lines(metrics),
             _md(s), ""]
    for a, rec in metrics["assets"].items():
        band = rec["kupiec_band_99"]
        tag = " (held out: never in training)" if rec.get("held_out") else ""
        line = (f"- {a}{tag}: {metrics['model']} exceed_99 = {rec.get('exceed_99', float('nan')):.4f} "
                f"(Kupiec 95% band {band[0]:.4f} .. {band[1]:.4f})")
        if "qlike_vs_best_baseline" in rec:
            line += (f"; QLIKE vs best baseline ({rec['best_baseline']}): "
                     f"{100 * rec['qlike_vs_best_baseline']:+.1f}%")
        parts.append(line)
    if len(dm):
        parts += ["", "Diebold-Mariano (HLN-corrected, Newey-West h-1 lags; negative = model better):", "",
                  _md(dm)]
    return "\n".join(parts) + "\n"


def load_asset_features(assets: Sequence[str], *, daily: Mapping[str, str] | None = None,
                        hourly: Mapping[str, str] | None = None, funding: Mapping[str, str] | None = None,
                        use_hourly: bool = True, use_funding: bool = True, max_gap_days: int | None = None,
                        with_prices: bool = False) -> dict[str, pd.DataFrame]:
    """Feature frames (:func:`predictive.features.build_features`) per asset, each from its own files.

    A user file (``daily[asset]`` etc.) is always read; otherwise the embedded file of that asset and kind in
    ``predictive/data/`` is used when it exists. An asset without hourly bars or funding (e.g. BNB: daily bars only)
    gets the daily-only features (rv = Garman-Klass range variance, no funding), with one warning, not an error.
    The Hydra apps call this through :func:`experiments.data.load_features`.

    Args:
        assets: asset names, e.g. ``["BTC", "ETH"]``.
        daily, hourly, funding: asset -> file (CSV, CSV.gz or Parquet; or an embedded asset's name) replacing the
            embedded one.
        use_hourly, use_funding: read hourly bars / funding at all (off: daily-only rv / no funding inputs).
        max_gap_days: longest run of missing days accepted in a daily file (:func:`predictive.data.check_daily_gaps`);
            ``None``: gaps are not checked.
        with_prices: also copy the daily bars into columns ``_open, _high, _low, _close, _volume`` (the backtest
            marks positions at ``_close``).

    Raises:
        predictive.DataValidationError: no daily file for an asset (names the asset and the setting), or a
            malformed file or a gap (file, line, column, value).
    """
    import logging
    from pathlib import Path

    from predictive.data import EMBEDDED_ASSETS, DataValidationError, embedded_path, load_ohlcv
    from predictive.features import build_features
    from predictive.intraday import load_funding, load_hourly

    frequency = {"daily": "1d", "hourly": "1h", "funding": "funding_8h"}
    given = {"daily": dict(daily or {}), "hourly": dict(hourly or {}), "funding": dict(funding or {})}

    def source(kind: str, a: str) -> str | Path | None:
        if given[kind].get(a):
            return given[kind][a]
        emb = embedded_path(a, frequency[kind]) if a.upper() in EMBEDDED_ASSETS else None
        return emb if emb is not None and emb.is_file() else None

    out = {}
    for a in (str(x) for x in assets):
        daily_src = source("daily", a)
        if daily_src is None:
            raise DataValidationError(f"asset {a!r}: no daily file (embedded assets have predictive/data/"
                                      f"{a}_1d.csv); give one with +data.daily.{a}=/path/to/{a.lower()}_1d.csv")
        srcs = {"hourly": source("hourly", a) if use_hourly else None,
                "funding": source("funding", a) if use_funding else None}
        for kind, on in (("hourly", use_hourly), ("funding", use_funding)):
            if on and srcs[kind] is None:
                logging.getLogger(__name__).warning(
                    "%s: no %s file; daily-only features (%s; set data.%s.%s=/path/to/file to add one)", a, kind,
                    "rv = Garman-Klass range variance" if kind == "hourly" else "no funding inputs", kind, a)
        bars = load_ohlcv(daily_src, max_gap_days=max_gap_days)
        frame = build_features(bars, load_hourly(srcs["hourly"]) if srcs["hourly"] else None,
                               load_funding(srcs["funding"]) if srcs["funding"] else None)
        if with_prices:
            for col in ("open", "high", "low", "close", "volume"):
                frame[f"_{col}"] = bars[col]
        out[a] = frame
    return out
