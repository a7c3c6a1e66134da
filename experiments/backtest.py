"""Venue backtest of margin policies on real history (Hydra app, config ``conf/backtest.yaml``).

A thin wrapper: data and features (:func:`experiments.data.load_features`), model training and forecast arrays
(:mod:`predictive.training`), then the venue backtest library (:func:`margin.simulation.run_venue_backtest`: policies,
liquidation simulator, coverage per side, procyclicality, stress windows, daily vs hourly liquidations, targets)
and its report (:func:`margin.simulation.write_outputs`). ``run_backtest(cfg, output_dir)`` is the testable
function; ``main`` wraps it.

Example::

    python -m experiments.backtest                              # all policies side by side
    python -m experiments.backtest policy=reactive policy.buffer=0.25 compare=[]
    python -m experiments.backtest liquidation.frequency=hourly  # hourly liquidation steps, margin set daily
    python -m experiments.backtest -m policy=reactive,predictive policy.buffer=0,0.25 compare=[] \
        hydra/launcher=joblib_local
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from experiments._cli import hydra_app
from experiments.data import load_features
from experiments.schema import BACKTEST
from margin.simulation import coverage_metrics, h_day_losses, render_report  # noqa: F401  (re-exported)
from predictive.training import (CONF_DIR, forecast_arrays, load_forecast_arrays, model_conf_digest,  # noqa: F401
                                 model_config, save_forecast_arrays, train_models, walk_forward_forecast_arrays)

log = logging.getLogger(__name__)

SIDES = ("long", "short")


def load_policy_config(name: str) -> dict:
    """``conf/policy/<name>.yaml`` with its ``defaults`` list merged in order (like Hydra, ``_self_`` last)."""
    from margin.simulation.policies import PolicyError

    path = CONF_DIR / "policy" / f"{name}.yaml"
    if not path.exists():
        raise PolicyError(f"compare: no policy config {path}")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    out: dict = {}
    for parent in raw.pop("defaults", []) or []:
        if isinstance(parent, str) and parent != "_self_":
            out.update(load_policy_config(parent))
    out.update(raw)
    return out


def policy_configs(cfg: DictConfig) -> list[dict]:
    """The selected policy plus ``cfg.compare`` (names of ``conf/policy/<name>.yaml``), de-duplicated by label."""
    from margin.simulation.policies import make_policy

    items = [OmegaConf.to_container(cfg.policy, resolve=True)]
    items += [load_policy_config(str(name)) for name in cfg.get("compare") or []]
    seen, out = set(), []
    for it in items:
        it.pop("defaults", None)
        label = make_policy(it).name
        if label not in seen:
            seen.add(label)
            out.append(it)
    return out


def _cache_path(cfg, needed, dates) -> Path | None:
    """``cfg.forecast_cache`` dir + a key of everything the forecasts depend on (None: no cache)."""
    if not cfg.get("forecast_cache"):
        return None
    key = json.dumps({"models": {m: OmegaConf.to_container(cfg.models, resolve=True).get(m) for m in needed},
                      "train_end": str(cfg.train_end), "horizon": int(cfg.horizon), "seed": int(cfg.seed),
                      "assets": [str(a) for a in cfg.assets], "data": OmegaConf.to_container(cfg.data, resolve=True),
                      "dates": [str(dates[0]), str(dates[-1]), len(dates)],
                      "model_files": model_conf_digest(), "refit_every": cfg.get("refit_every")}, sort_keys=True)
    return Path(cfg.forecast_cache) / f"forecasts_{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _hourly_closes(cfg, assets) -> pd.DataFrame | None:
    from predictive.intraday import load_hourly

    lq = cfg.get("liquidation") or {}
    wanted = lq.get("frequency", "daily") == "hourly" or lq.get("hourly_comparison", False)
    if not (cfg.data.use_hourly and wanted):
        return None
    return pd.DataFrame({a: load_hourly(cfg.data.hourly.get(a, a))["close"] for a in assets})


def _check(cfg) -> None:
    """Refuse a bad ``liquidation`` block before any work (the error names the key)."""
    from margin.simulation import BacktestInputError

    lq = cfg.get("liquidation") or {}
    freq = lq.get("frequency", "daily")
    if freq not in ("daily", "hourly"):
        raise BacktestInputError(f"liquidation.frequency: must be daily or hourly, got {freq!r}")
    if freq == "hourly" and not cfg.data.use_hourly:
        raise BacktestInputError("liquidation.frequency=hourly needs hourly bars: set data.use_hourly=true")
    if int(lq.get("crash_pad_days", 3)) < 1:
        raise BacktestInputError(f"liquidation.crash_pad_days: must be >= 1, got {lq.get('crash_pad_days')!r}")
    for d in lq.get("crash_days", ()) or ():
        try:
            pd.Timestamp(str(d))
        except ValueError:
            raise BacktestInputError(f"liquidation.crash_days: not a date: {d!r}") from None


def run_backtest(cfg: DictConfig, output_dir: str | Path | None = None, *, forecasts=None) -> dict:
    """Run the venue backtest of ``cfg`` and return the metrics dict (see :class:`margin.simulation.BacktestResult`).

    Args:
        cfg: composed ``conf/backtest.yaml``.
        output_dir: where metrics.json, report.md and plots go (None: nothing written).
        forecasts: optional precomputed ``{model: ForecastArrays}`` on the feature dates up to ``cfg.end`` or on
            all feature dates (skips training; used by ``experiments.run``, ``experiments.tune_policy``, tests).

    Returns:
        ``metrics`` with ``config``, ``policies`` (per policy: ``coverage`` per ``<asset>_<side>``, ``exceptions``
        asset -> side -> count, ``avg_im_fraction``, ``max_increase_30d``, ``book``, ``stress``, ...), ``targets``,
        ``oracle_study``, ``hourly_vs_daily``, ``forecast_variability``, ``stress_windows``, ``timings``.
    """
    from margin.simulation.book import OptionGrid, load_positions
    from margin.simulation.policies import make_policy
    from margin.simulation import run_venue_backtest, write_outputs

    t_start = time.perf_counter()
    _check(cfg)
    assets = [str(a) for a in cfg.assets]
    horizon = int(cfg.horizon)
    t0 = time.perf_counter()
    features = load_features(cfg, with_prices=True)
    dates = features[assets[0]].index
    for a in assets[1:]:
        dates = dates.intersection(features[a].index)
    full, dates = dates, dates[dates <= pd.Timestamp(cfg.end)]     # forecasts may come on either index
    hourly = _hourly_closes(cfg, assets)
    timings = {"features_s": time.perf_counter() - t0}

    pcfgs = policy_configs(cfg)
    needed = sorted({getattr(getattr(p, "inner", p), key, None) for p in map(make_policy, pcfgs)
                     for key in ("model", "lookahead_model")} - {None})  # lookahead: predictive_smooth's foresight
    cache = _cache_path(cfg, needed, dates)
    if forecasts is None and cache is not None and cache.exists():
        forecasts = load_forecast_arrays(cache)
        log.info("forecasts loaded from %s", cache)
    if forecasts is None:
        t0 = time.perf_counter()
        forecasts, secs = walk_forward_forecast_arrays(cfg, features, needed, dates, horizon,
                                                       refit_every=cfg.get("refit_every"))
        timings.update({f"train_{k}_s": v for k, v in secs.items()})
        timings["forecast_s"] = time.perf_counter() - t0 - sum(secs.values())
        if cache is not None:
            save_forecast_arrays(cache, forecasts)

    close = pd.DataFrame({a: features[a]["_close"].reindex(full) for a in assets})
    volume = pd.DataFrame({a: features[a]["_volume"].reindex(full) for a in assets})
    bk = cfg.book
    if bk.get("positions_file"):
        syn = bk.synthetic
        grid = OptionGrid(tuple(int(d) for d in syn.tenors), tuple(float(x) for x in syn.moneyness))
        book = load_positions(bk.positions_file, assets=assets, grid=grid)
    else:
        from margin.simulation.book import synthetic_book

        book = synthetic_book(int(bk.n_accounts), assets, seed=int(cfg.seed),
                              **OmegaConf.to_container(bk.synthetic, resolve=True))
    lq = OmegaConf.to_container(cfg.liquidation, resolve=True) if cfg.get("liquidation") else {}
    ostudy = (OmegaConf.to_container(cfg.oracle_study.oracles, resolve=True)
              if cfg.get("oracle_study") and cfg.oracle_study.enabled else None)
    result = run_venue_backtest(
        close, pcfgs, forecasts, volume=volume, hourly_close=hourly, book=book, horizon=horizon,
        coverage=float(cfg.coverage), start=cfg.start, eval_start=cfg.eval_start, end=cfg.end,
        train_end=cfg.train_end, liquidation=OmegaConf.to_container(bk.liquidation, resolve=True),
        market=OmegaConf.to_container(cfg.market, resolve=True),
        oracle=OmegaConf.to_container(cfg.oracle, resolve=True),
        stress_windows={k: tuple(v) for k, v in cfg.stress_windows.items()}, oracle_study=ostudy,
        frequency=str(lq.get("frequency", "daily")), hourly_comparison=bool(lq.get("hourly_comparison", True)),
        crash_days=tuple(str(d) for d in lq.get("crash_days", ())), crash_pad_days=int(lq.get("crash_pad_days", 3)),
        seed=int(cfg.seed), dtype=str(cfg.dtype), progress=cfg.get("progress"))
    metrics = result.metrics
    metrics["config"]["refit_every"] = cfg.get("refit_every")
    metrics["timings"] = {**timings, **metrics["timings"], "total_s": time.perf_counter() - t_start}
    if output_dir is not None:
        write_outputs(result, output_dir, plot=bool(cfg.plot))
    return metrics


@hydra_app("backtest", schema=BACKTEST)
def main(cfg: DictConfig) -> dict:
    from hydra.core.hydra_config import HydraConfig

    out_dir = HydraConfig.get().runtime.output_dir
    metrics = run_backtest(cfg, out_dir)
    print(render_report(metrics))
    return metrics


if __name__ == "__main__":
    main()
