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
daily-only features (rv = Garman-Klass range variance), with one log line.

``seed``, ``horizon`` and ``progress`` reach every model that takes them (:func:`predictive.models.build_model`).
``evaluate(cfg, output_dir)`` is the testable function; ``main`` wraps it.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf


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


def load_asset_features(cfg: DictConfig) -> dict[str, pd.DataFrame]:
    """Feature frames per asset; an asset without hourly bars or funding (e.g. BNB, daily bars only) gets the
    daily-only features (rv = Garman-Klass range variance) with one log line, instead of an error.

    A user file (``data.daily.<A>``, ``data.hourly.<A>``, ``data.funding.<A>``) is always read; otherwise the
    embedded file of that asset and kind is used when it exists.
    """
    from predictive.data import DataValidationError, load_ohlcv
    from predictive.features import build_features
    from predictive.intraday import load_funding, load_hourly

    here = Path(__file__).resolve().parents[1] / "predictive" / "data"
    names = {"daily": "{a}_1d.csv", "hourly": "{a}_1h.csv.gz", "funding": "{a}_funding_8h.csv.gz"}

    def source(kind: str, a: str):
        user = cfg.data.get(kind, {}).get(a) if cfg.data.get(kind) is not None else None
        if user:
            return str(user)
        emb = here / names[kind].format(a=a.upper())
        return str(emb) if emb.exists() else None

    out = {}
    for a in (str(x) for x in cfg.assets):
        daily_src = source("daily", a)
        if daily_src is None:
            raise DataValidationError(f"asset {a!r}: no daily file (embedded assets have predictive/data/"
                                      f"{a}_1d.csv); give one with +data.daily.{a}=/path/to/{a.lower()}_1d.csv")
        hourly_src = source("hourly", a) if cfg.data.use_hourly else None
        funding_src = source("funding", a) if cfg.data.use_funding else None
        for kind, src, switch in (("hourly", hourly_src, "use_hourly"), ("funding", funding_src, "use_funding")):
            if cfg.data.get(switch) and src is None:
                log.info("%s: no %s file; daily-only features (%s)", a, kind,
                         "rv = Garman-Klass range variance" if kind == "hourly" else "no funding inputs")
        out[a] = build_features(load_ohlcv(daily_src), load_hourly(hourly_src) if hourly_src else None,
                                load_funding(funding_src) if funding_src else None)
    return out


def _baseline_cfg(name: str) -> dict:
    path = CONF_DIR / "model" / f"{name}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True) if path.exists() else {"name": name}


def evaluate(cfg: DictConfig, output_dir: str | Path | None = None) -> dict:
    """Run the walk-forward evaluation described in the module docstring and return the metrics dict.

    Writes metrics.json, report.md and the plot into ``output_dir`` when it is given.
    """
    from predictive.coverage import kupiec_acceptance_band
    from predictive.evaluation import dm_table, loss_table, summarise, walk_forward
    from predictive.regime_net import resolve_progress

    horizon, seed = int(cfg.horizon), int(cfg.seed)
    train_end, test_start = pd.Timestamp(cfg.train_end), pd.Timestamp(cfg.test_start)
    if train_end >= test_start:
        raise ValueError(f"train_end {train_end.date()} must be before test_start {test_start.date()}")
    features = load_asset_features(cfg)
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


def _holdout_lines(metrics: dict) -> list[str]:
    held = list(metrics.get("holdout") or [])
    if not held:
        return []
    trained = ", ".join(a for a in metrics["assets"] if a not in held)
    return [f"Leave-one-asset-out: {metrics['model']} is trained on {trained} only and evaluated on the held-out "
            f"{', '.join(held)}; the baselines are fitted on each asset itself.", ""]


def render_report(metrics: dict, summary: pd.DataFrame, dm: pd.DataFrame) -> str:
    """Markdown report: one row per model and asset, then the Diebold-Mariano table."""
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


@hydra.main(version_base=None, config_path="../conf", config_name="forecast")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    evaluate(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
