"""Out-of-sample volatility-forecast evaluation (Hydra app, config ``conf/forecast.yaml``).

For ``model=<name>`` (conf/model/<name>.yaml) and the baselines in ``cfg.baselines``:

1. load daily OHLCV (+ hourly bars for the daily realised variance, + 8-hourly funding) per asset and build the
   leakage-safe features (:func:`predictive.features.build_features`);
2. walk forward over ``test_start .. test_end`` with an expanding window, refitting every ``refit_every`` days
   (:func:`predictive.evaluation.walk_forward`; the first fit uses rows ``<= train_end``);
3. score the h-day forecasts: QLIKE and MSE against the realised-variance proxy (Patton 2011), pinball loss at
   1% and 99%, exceedance rates of the 1% / 99% quantiles with Kupiec POF p-values and the Kupiec 95% band,
   Diebold-Mariano (HLN-corrected) of the model against each baseline;
4. write ``metrics.json``, ``report.md`` (Markdown tables) and ``forecast_<model>_h<h>.png`` into the Hydra run
   directory and print the report.

``evaluate(cfg, output_dir)`` is the testable function; ``main`` wraps it.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from experiments._cli import hydra_app
from experiments.schema import FORECAST
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from experiments.data import load_features

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
_RESERVED = ("name", "seed", "horizon")


def model_factory(model_cfg, seed: int, horizon: int, progress: bool = False):
    """A zero-argument factory building a fresh model from its config node (keys besides ``name`` are kwargs).

    ``seed`` and ``horizon`` are passed to models whose constructor takes them (RegimeNet); the registry
    :func:`predictive.models.make_model` builds the model.
    """
    import inspect

    from predictive import models as registry

    mc = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    name = mc["name"]
    kwargs = {k: v for k, v in mc.items() if k not in _RESERVED}
    params = inspect.signature(registry.model_class(name).__init__).parameters
    takes_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    extra = {}
    for key, val in (("seed", seed), ("horizon", horizon), ("progress", progress)):
        if key in params or (takes_kw and name == "regime_net"):
            extra[key] = val
    if "progress" in extra:  # either the top-level switch or the model config turns the bar on
        extra["progress"] = bool(extra["progress"] or kwargs.pop("progress", False))

    def make():
        return registry.make_model(name, **kwargs, **extra)

    return make


def _baseline_cfg(name: str) -> dict:
    path = CONF_DIR / "model" / f"{name}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True) if path.exists() else {"name": name}


def evaluate(cfg: DictConfig, output_dir: str | Path | None = None) -> dict:
    """Run the walk-forward evaluation described in the module docstring and return the metrics dict.

    Writes metrics.json, report.md and the plot into ``output_dir`` when it is given.
    """
    from predictive.coverage import kupiec_acceptance_band
    from predictive.evaluation import dm_table, loss_table, summarise, walk_forward

    horizon, seed = int(cfg.horizon), int(cfg.seed)
    train_end, test_start = pd.Timestamp(cfg.train_end), pd.Timestamp(cfg.test_start)
    if train_end >= test_start:
        raise ValueError(f"train_end {train_end.date()} must be before test_start {test_start.date()}")
    features = load_features(cfg)
    name = str(cfg.model.name)
    configs = {name: cfg.model}
    for b in cfg.baselines:
        if str(b) != name:
            configs[str(b)] = _baseline_cfg(str(b))

    forecasts, timings = {}, {}
    for m, mc in configs.items():
        t0 = time.perf_counter()
        forecasts[m] = walk_forward(model_factory(mc, seed, horizon, bool(cfg.progress)), features, horizon,
                                    test_start, cfg.test_end, int(cfg.refit_every), train_end=train_end,
                                    progress=bool(cfg.progress))
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
        per_asset[a] = rec
    metrics = {
        "model": name, "seed": seed, "horizon": horizon, "refit_every": int(cfg.refit_every),
        "train_end": str(train_end.date()), "test_start": str(test_start.date()), "test_end": str(cfg.test_end),
        "assets": per_asset,
        "table": summary.to_dict(orient="records"),
        "dm": dm.to_dict(orient="records"),
        "walk_forward_seconds": timings,
        "model_config": OmegaConf.to_container(cfg.model, resolve=True),
        "configs": {m: (OmegaConf.to_container(mc, resolve=True) if isinstance(mc, DictConfig) else dict(mc))
                    for m, mc in configs.items()},
    }
    report = render_report(metrics, summary, dm)
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


def _md(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(floatfmt.format(v) if isinstance(v, (float, np.floating)) else str(v)
                                       for v in r) + " |")
    return "\n".join(lines)


def render_report(metrics: dict, summary: pd.DataFrame, dm: pd.DataFrame) -> str:
    """Markdown report: one row per model and asset, then the Diebold-Mariano table."""
    cols = ["model", "asset", "n", "qlike", "mse", "pinball_0.01", "pinball_0.99", "exceed_99", "kupiec99_p",
            "breach_01", "kupiec01_p"]
    s = summary[[c for c in cols if c in summary]].copy()
    s = s.sort_values(["asset", "qlike"])
    parts = [f"# Volatility forecast evaluation: {metrics['model']}, h = {metrics['horizon']} day(s), "
             f"seed {metrics['seed']}", "",
             f"Test origins {metrics['test_start']} - 1 day .. {metrics['test_end']} - h; first fit on data to "
             f"{metrics['train_end']}; expanding window, refit every {metrics['refit_every']} days. QLIKE and MSE "
             "against the realised-variance proxy (sum of daily RV over the h days); exceed_99 = share of h-day "
             "returns above the 99% quantile, breach_01 = below the 1% quantile (Kupiec POF p-values).", "",
             _md(s), ""]
    for a, rec in metrics["assets"].items():
        band = rec["kupiec_band_99"]
        line = (f"- {a}: {metrics['model']} exceed_99 = {rec.get('exceed_99', float('nan')):.4f} "
                f"(Kupiec 95% band {band[0]:.4f} .. {band[1]:.4f})")
        if "qlike_vs_best_baseline" in rec:
            line += (f"; QLIKE vs best baseline ({rec['best_baseline']}): "
                     f"{100 * rec['qlike_vs_best_baseline']:+.1f}%")
        parts.append(line)
    if len(dm):
        parts += ["", "Diebold-Mariano (HLN-corrected, Newey-West h-1 lags; negative = model better):", "",
                  _md(dm)]
    return "\n".join(parts) + "\n"


@hydra_app("forecast", schema=FORECAST)
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    evaluate(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
