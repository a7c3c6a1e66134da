"""Collect the metrics.json of every run under a (multirun) directory into one table (Markdown + CSV).

    python -m experiments.aggregate_forecasts multirun/forecast/2026-11-22/05-30-00 [--out DIR]

One row per (run, model, asset): the evaluated model's mean losses, quantile exceedance rates and Kupiec
p-values (the baselines evaluated inside each run are listed once per distinct horizon / test period), then a
seed-averaged table per (model, horizon, asset). Writes ``forecasts.csv``, ``forecasts_by_model.csv`` and
``forecasts.md`` into ``--out`` (default: the searched directory) and prints the Markdown.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pandas as pd

from experiments.data import iter_run_metrics

__all__ = ["collect", "aggregate", "main"]

_COLS = ["qlike", "mse", "pinball_0.01", "pinball_0.99", "exceed_99", "kupiec99_p", "breach_01", "kupiec01_p",
         "dlogvar_med", "dlogvar_p99"]


def collect(root: str | Path) -> pd.DataFrame:
    """Rows of every ``metrics.json`` below ``root`` written by :mod:`experiments.forecast`.

    Columns: run (directory relative to root), model, config_id (hash of that model's config, so that two
    configurations of one model are not averaged together; "default" when a run did not record it), seed,
    horizon, refit_every, test_start, test_end, asset, role ("model" for the run's model, "baseline" for a baseline
    evaluated in the same run), n, held_out (the run's model never trained on this asset: leave-one-asset-out), the
    losses and the day-to-day variability (dlogvar_med, dlogvar_p99).

    Raises:
        FileNotFoundError: no metrics.json below ``root``.
    """
    root = Path(root)
    rows = []
    for f, m in iter_run_metrics(root, ("table", "model")):
        configs = dict(m.get("configs") or {})
        configs.setdefault(m["model"], m.get("model_config"))
        for rec in m["table"]:
            own = rec["model"] == m["model"]
            conf = configs.get(rec["model"])
            cfg_id = hashlib.sha1(json.dumps(conf, sort_keys=True).encode()).hexdigest()[:8] if conf else "default"
            row = {"run": str(f.parent.relative_to(root)), "model": rec["model"], "config_id": cfg_id,
                   "seed": m["seed"],
                   "horizon": m["horizon"], "refit_every": m.get("refit_every"), "test_start": m["test_start"],
                   "test_end": m["test_end"], "asset": rec["asset"],
                   "role": "model" if own else "baseline", "n": rec["n"],
                   "held_out": bool(own and rec["asset"] in (m.get("holdout") or []))}
            row.update({c: rec.get(c) for c in _COLS})
            rows.append(row)
    return pd.DataFrame(rows)


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Mean (and count) over seeds per (model, horizon, refit_every, test period, asset).

    A baseline that is also evaluated as a run's own model is counted once per seed-run; deterministic baselines
    evaluated inside many runs are de-duplicated by (model, horizon, period, asset, seed).
    """
    keys = ["model", "config_id", "horizon", "refit_every", "test_start", "test_end", "asset", "held_out"]
    d = df.sort_values("role", ascending=False).drop_duplicates(keys + ["seed"])  # "model" rows win
    g = d.groupby(keys)
    out = g[_COLS].mean()
    out["n_seeds"] = g.size()
    return out.reset_index().sort_values(["horizon", "asset", "qlike"])


def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="multirun (or any) directory holding metrics.json files")
    ap.add_argument("--out", default=None, help="output directory (default: root)")
    args = ap.parse_args(argv)
    df = collect(args.root)
    agg = aggregate(df)
    out = Path(args.out or args.root)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "forecasts.csv", index=False)
    agg.to_csv(out / "forecasts_by_model.csv", index=False)
    md = "# Volatility forecasts, all runs (mean over seeds)\n\n" + _md(agg) + "\n"
    (out / "forecasts.md").write_text(md)
    print(md)
    return agg


if __name__ == "__main__":
    from experiments._cli import run_cli

    run_cli(main)
