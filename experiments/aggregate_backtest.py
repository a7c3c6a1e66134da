"""Collect a backtest sweep into one comparison table and a Pareto plot (average margin vs largest 30-day increase,
bad debt as marker size).

    python -m experiments.aggregate_backtest multirun/backtest/<date>/<time> [--out DIR]

Reads every ``metrics.json`` under the directory (one per Hydra job; each may hold several policies), writes
``comparison.md``, ``comparison.csv`` and ``pareto.png`` (into ``--out``, default the sweep directory) and prints
the table. A policy is on the Pareto frontier when no other is at least as good on average margin, largest 30-day
increase and bad debt, and better on one (all over the evaluation period, ``eval_start .. end``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.data import iter_run_metrics


def collect(root: str | Path) -> pd.DataFrame:
    """One row per (job, policy) with the headline metrics; raises FileNotFoundError if no metrics.json."""
    root = Path(root)
    rows = []
    for f, m in iter_run_metrics(root, ("policies",)):
        for name, r in m["policies"].items():
            b = r["book"]
            exc = r.get("exceptions") or {}
            rows.append({
                "job": str(f.parent.relative_to(root)) or ".", "policy": name, "kind": r.get("kind"),
                "model": r.get("model"), "avg_im_fraction": r["avg_im_fraction"],
                "book_im_over_notional": b["avg_im_over_notional"], "exceptions": r["exceptions_total"],
                "exceptions_long": sum(v.get("long", 0) for v in exc.values()),
                "exceptions_short": sum(v.get("short", 0) for v in exc.values()),
                "coverage_pass_5pct": r["all_pass_5pct"], "max_increase_30d": r["max_increase_30d"],
                "peak_to_trough": r.get("peak_to_trough", float("nan")),
                "liquidations": b["liquidations"], "liquidation_volume_usd": b["liquidation_volume_usd"],
                "bad_debt_usd": b["bad_debt_usd"], "stress_bad_debt_usd": r["stress_bad_debt_usd"],
                "fund_min_usd": b["fund_min"]})
    df = pd.DataFrame(rows)
    df["pareto"] = pareto_front(df["avg_im_fraction"].to_numpy(), df["bad_debt_usd"].to_numpy(),
                                df["max_increase_30d"].to_numpy())
    return df


def pareto_front(cost: np.ndarray, loss: np.ndarray, *more: np.ndarray) -> np.ndarray:
    """Boolean mask of points not dominated (another point <= in every criterion and < in one); lower is better."""
    pts = np.stack([np.asarray(x, float) for x in (cost, loss, *more)], 1)
    le = (pts[None, :, :] <= pts[:, None, :]).all(-1)
    lt = (pts[None, :, :] < pts[:, None, :]).any(-1)
    return ~(le & lt).any(axis=1)


def to_markdown(df: pd.DataFrame) -> str:
    cols = ["job", "policy", "avg_im_fraction", "exceptions_long", "exceptions_short", "coverage_pass_5pct",
            "max_increase_30d", "peak_to_trough",
            "liquidations", "bad_debt_usd", "stress_bad_debt_usd", "pareto"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.sort_values(["avg_im_fraction"]).iterrows():
        vals = []
        for c in cols:
            v = r[c]
            if c in ("avg_im_fraction", "max_increase_30d"):
                vals.append(f"{100 * v:.1f}%")
            elif c == "peak_to_trough":
                vals.append(f"{v:.2f}")
            elif c.endswith("_usd"):
                vals.append(f"{v:,.0f}")
            else:
                vals.append(str(v))
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def pareto_plot(df: pd.DataFrame, path: Path) -> None:
    """Average margin vs largest 30-day increase, bad debt as marker size (:func:`margin.simulation.pareto_plot`)."""
    from margin.simulation import pareto_plot as plot

    pols = {f"{r['policy']} [{r['job']}]": {"avg_im_fraction": r["avg_im_fraction"],
                                           "max_increase_30d": r["max_increase_30d"],
                                           "book": {"bad_debt_usd": r["bad_debt_usd"]}} for _, r in df.iterrows()}
    plot({"policies": pols}, path)


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    df = collect(args.root)
    out = Path(args.out or args.root)
    out.mkdir(parents=True, exist_ok=True)
    md = to_markdown(df)
    (out / "comparison.md").write_text(md)
    df.to_csv(out / "comparison.csv", index=False)
    pareto_plot(df, out / "pareto.png")
    print(md)
    return df


if __name__ == "__main__":
    from experiments._cli import run_cli

    run_cli(main)
