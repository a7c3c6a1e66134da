"""Benchmark: RegimeNet training time (BTC + ETH, data to 2020-12-31) and, optionally, the forecast targets.

    python -m experiments.bench_regime_net [--presets regime_net regime_net_fast] [--out DIR]
        [--forecast-metrics RUN_DIR/metrics.json ...]

Measures the wall-clock fit time (JAX compilation included) of each preset, one fit training the heads of every
configured horizon (``horizons: [1, 5]``), with the epochs run per ensemble member. Targets: the fast preset
(``make run``) trains in <= 20 s on 2 CPU cores. With ``--forecast-metrics`` (``metrics.json`` files written by
``python -m experiments.forecast model=regime_net ...``) it adds one row per asset and horizon: RegimeNet QLIKE
relative to the best of the baselines, with the issue-10 targets (<= -5% on assets the model was trained on, <= 0%
on a held-out asset) and the Diebold-Mariano p-value against that baseline.

The table goes through :func:`experiments.bench_report.write_report` (``bench_regime_net.json`` / ``.md`` in
``--out``, default ``outputs/bench/<date>/<time>``), with the load average: timings are noisy on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

from experiments.bench_report import Row, write_report

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
FAST_TARGET_S = 20.0


def preset_config(name: str) -> dict:
    """The constructor arguments of ``conf/model/<name>.yaml`` (defaults list resolved one level deep)."""
    node = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    if "defaults" in node:
        bases = [d for d in node.defaults if d != "_self_"]
        merged = OmegaConf.create()
        for b in bases:
            merged = OmegaConf.merge(merged, OmegaConf.load(CONF_DIR / "model" / f"{b}.yaml"))
        node = OmegaConf.merge(merged, {k: v for k, v in node.items() if k != "defaults"})
    d = OmegaConf.to_container(node, resolve=True)
    d.pop("name", None)
    return d


def forecast_rows(paths: list[str]) -> list[Row]:
    """Rows "QLIKE vs best baseline" (with verdicts) from forecast-app metrics.json files."""
    rows = []
    for p in paths:
        m = json.loads(Path(p).read_text())
        dm = {(r["asset"], r["baseline"]): r for r in m.get("dm", []) if r.get("loss") == "qlike"}
        for asset, rec in m["assets"].items():
            if "qlike_vs_best_baseline" not in rec:
                continue
            rel = 100.0 * rec["qlike_vs_best_baseline"]
            held = bool(rec.get("held_out"))
            target, met = ("<= 0% (held out)", rel <= 0.0) if held else ("<= -5%", rel <= -5.0)
            d = dm.get((asset, rec["best_baseline"]), {})
            rows.append(Row(f"{m['model']} QLIKE vs best baseline ({rec['best_baseline']}), {asset}, "
                            f"h={m['horizon']}, test {m['test_start']}..{m['test_end']}", round(rel, 2), "%",
                            target=target, met=met,
                            note=f"QLIKE {rec['qlike']:.4f}; DM p={d.get('pvalue', float('nan')):.2g}; "
                                 f"dlogvar p99 {rec.get('dlogvar_p99', float('nan')):.3f}; seed {m['seed']}"))
    return rows


def main(argv=None) -> list[Row]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["regime_net_fast", "regime_net"])
    ap.add_argument("--horizon", type=int, default=1, help="main horizon (heads for `horizons` are trained too)")
    ap.add_argument("--train-end", default="2020-12-31")
    ap.add_argument("--forecast-metrics", nargs="*", default=[])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import jax

    from predictive.data import load_ohlcv
    from predictive.features import build_features
    from predictive.intraday import load_funding, load_hourly
    from predictive.regime_net import RegimeNet

    t0 = time.perf_counter()
    feats = {a: build_features(load_ohlcv(a), load_hourly(a), load_funding(a)).loc[: args.train_end]
             for a in ("BTC", "ETH")}
    context = {"features_s": round(time.perf_counter() - t0, 1), "rows": {a: len(f) for a, f in feats.items()},
               "jax_devices": str(jax.devices()), "train_end": args.train_end}
    rows, raw = [], {}
    for preset in args.presets:
        kw = preset_config(preset)
        kw["progress"] = False
        load0 = os.getloadavg()[0]
        t = time.perf_counter()
        m = RegimeNet(horizon=args.horizon, seed=0, **kw).fit(feats)
        sec = time.perf_counter() - t
        eps = [hh["epochs_run"] for hh in m.history_]
        fast = preset.endswith("_fast")
        rows.append(Row(f"{preset} fit, BTC+ETH to {args.train_end}, heads h={list(m.heads)}", round(sec, 1), "s",
                        target=f"<= {FAST_TARGET_S:g} s (make run)" if fast else "",
                        met=(sec <= FAST_TARGET_S) if fast else None,
                        note=f"n_ensemble={kw['n_ensemble']}, epochs run {eps}, load average at start {load0:.2f}"))
        raw[preset] = {"seconds": sec, "epochs": eps, "best_val": [hh["best_val"] for hh in m.history_],
                       "config": kw}
    rows += forecast_rows(args.forecast_metrics)
    out = args.out or Path("outputs/bench") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    write_report("bench_regime_net", rows, out, context=context, extra=raw)
    return rows


if __name__ == "__main__":
    from experiments._cli import run_cli

    run_cli(main)
