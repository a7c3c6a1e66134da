"""Out-of-sample volatility-forecast evaluation (Hydra app, config ``conf/forecast.yaml``).

For ``model=<name>`` (conf/model/<name>.yaml) and the baselines in ``cfg.baselines``:

1. load daily OHLCV (+ hourly bars for the daily realised variance, + 8-hourly funding) per asset and build the
   leakage-safe features (:func:`predictive.features.build_features`);
2. walk forward over ``test_start .. test_end`` with an expanding window, refitting every ``refit_every`` days
   (:func:`predictive.evaluation.walk_forward`; the first fit uses rows ``<= train_end``);
3. score the h-day forecasts: QLIKE and MSE against the realised-variance proxy (Patton 2011), pinball loss at
   1% and 99%, exceedance rates of the 1% / 99% quantiles with Kupiec POF p-values and the Kupiec 95% band,
   Diebold-Mariano (HLN-corrected) of the model against each baseline, and how much each forecast moves from day
   to day (median and 99th percentile of ``|ln(var_t / var_{t-1})|``, :func:`predictive.evaluation.day_to_day_variability`);
4. write ``metrics.json``, ``report.md`` (Markdown tables) and ``forecast_<model>_h<h>.png`` into the Hydra run
   directory and print the report.

Leave-one-asset-out (``holdout=BNB`` with ``assets=[BTC,ETH,BNB]``): the model (a pooled one, ``regime_net``) is
fitted on the other assets only (:class:`predictive.evaluation.HoldoutModel`) and scored on the held-out asset,
against baselines fitted on that asset itself. An asset without hourly bars or funding files (BNB) gets the
daily-only features (rv = Garman-Klass range variance), with one warning.

``seed``, ``horizon`` and ``progress`` reach every model that takes them (:func:`predictive.models.build_model`).
``evaluate(cfg, output_dir)`` is the testable function; ``main`` wraps it.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from experiments._cli import hydra_app
from experiments.schema import FORECAST


log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
_RESERVED = ("name", "seed", "horizon")


def model_factory(model_cfg, seed: int, horizon: int, progress=False, holdout=()):
    """A zero-argument factory building a fresh model from its config node (keys besides ``name`` are kwargs).

    ``seed``, ``horizon`` and ``progress`` reach every model whose constructor takes them
    (:func:`predictive.models.build_model`; a value in the model config is overridden, progress is on if either
    says so). With ``holdout`` the model is wrapped in :class:`predictive.evaluation.HoldoutModel`.
    """
    from predictive import models as registry
    from predictive.evaluation import HoldoutModel

    mc = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)

    def make():
        m = registry.build_model(mc, horizon=horizon, seed=seed, progress=progress)
        return HoldoutModel(m, holdout) if holdout else m

    return make


def _baseline_cfg(name: str) -> dict:
    path = CONF_DIR / "model" / f"{name}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True) if path.exists() else {"name": name}


def evaluate(cfg: DictConfig, output_dir: str | Path | None = None) -> dict:
    """Run the walk-forward evaluation described in the module docstring and return the metrics dict.

    Writes metrics.json, report.md and the plot into ``output_dir`` when it is given.
    """
    from experiments.data import load_features
    from predictive.coverage import kupiec_acceptance_band
    from predictive.evaluation import dm_table, loss_table, render_forecast_report, summarise, walk_forward
    from predictive.regime_net import resolve_progress

    horizon, seed = int(cfg.horizon), int(cfg.seed)
    train_end, test_start = pd.Timestamp(cfg.train_end), pd.Timestamp(cfg.test_start)
    if train_end >= test_start:
        raise ValueError(f"train_end {train_end.date()} must be before test_start {test_start.date()}")
    features = load_features(cfg)
    name = str(cfg.model.name)
    holdout = [str(a) for a in (cfg.get("holdout") or [])] if not isinstance(cfg.get("holdout"), str) \
        else [str(cfg.holdout)]
    unknown = [a for a in holdout if a not in features]
    if unknown:
        raise ValueError(f"holdout {unknown} is not among assets {list(features)}")
    configs = {name: cfg.model}
    for b in cfg.baselines:
        if str(b) != name:
            configs[str(b)] = _baseline_cfg(str(b))

    forecasts, timings = {}, {}
    for m, mc in configs.items():
        t0 = time.perf_counter()
        progress = cfg.progress if m == name else False
        forecasts[m] = walk_forward(model_factory(mc, seed, horizon, progress, holdout if m == name else ()),
                                    features, horizon,
                                    test_start, cfg.test_end, int(cfg.refit_every), train_end=train_end,
                                    progress=resolve_progress(cfg.progress))
        timings[m] = time.perf_counter() - t0
        log.info("%s: walk-forward %.1f s", m, timings[m])

    losses = {m: {a: loss_table(fc) for a, fc in fcs.items()} for m, fcs in forecasts.items()}
    summary = pd.concat([summarise(fcs, horizon).assign(model=m) for m, fcs in forecasts.items()],
                        ignore_index=True)
    bases = [b for b in configs if b != name]
    dm = pd.concat([dm_table(losses, [name], bases, horizon, loss=l) for l in ("qlike", "mse")],
                   ignore_index=True) if bases else pd.DataFrame()

    per_asset = {}
    for a in features:
        row = summary[(summary.model == name) & (summary.asset == a)].iloc[0].to_dict()
        n = int(row["n"])
        lo, hi = kupiec_acceptance_band(n, 0.99)
        rec = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()
               if k not in ("asset", "model")}
        rec["kupiec_band_99"] = [lo / n, hi / n]
        base_q = {b: float(summary[(summary.model == b) & (summary.asset == a)].qlike.iloc[0]) for b in bases}
        if base_q:
            best = min(base_q, key=base_q.get)
            rec["best_baseline"] = best
            rec["qlike_vs_best_baseline"] = rec["qlike"] / base_q[best] - 1.0
        rec["held_out"] = a in holdout
        per_asset[a] = rec
    metrics = {
        "model": name, "seed": seed, "horizon": horizon, "refit_every": int(cfg.refit_every),
        "holdout": holdout,
        "train_end": str(train_end.date()), "test_start": str(test_start.date()), "test_end": str(cfg.test_end),
        "assets": per_asset,
        "table": summary.to_dict(orient="records"),
        "dm": dm.to_dict(orient="records"),
        "walk_forward_seconds": timings,
        "model_config": OmegaConf.to_container(cfg.model, resolve=True),
        "configs": {m: (OmegaConf.to_container(mc, resolve=True) if isinstance(mc, DictConfig) else dict(mc))
                    for m, mc in configs.items()},
    }
    report = render_forecast_report(metrics, summary, dm)
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
        (out / "report.md").write_text(report)
        if cfg.plot:
            from predictive.plots import plot_forecasts
            base_for_plot = per_asset[next(iter(per_asset))].get("best_baseline")
            plot_forecasts(forecasts[name], out / f"forecast_{name}_h{horizon}.png", horizon=horizon, label=name,
                           baseline=forecasts.get(base_for_plot) if base_for_plot else None,
                           baseline_label=base_for_plot)
        metrics["output_dir"] = str(out)
    print(report)
    return metrics


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (pd.Timestamp,)):
        return str(o)
    return str(o)


@hydra_app("forecast", schema=FORECAST)
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    evaluate(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
