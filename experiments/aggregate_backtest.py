"""Collect a backtest sweep into one comparison table and a Pareto plot (bad debt vs average margin).

    python -m experiments.aggregate_backtest multirun/backtest/<date>/<time> [--out DIR]

Reads every ``metrics.json`` under the directory (one per Hydra job; each may hold several policies), writes
``comparison.md``, ``comparison.csv`` and ``pareto.png`` (into ``--out``, default the sweep directory) and prints
the table. A policy is on the Pareto frontier when no other has both lower average margin and lower bad debt
(both over the evaluation period, ``eval_start .. end``).
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
            rows.append({
                "job": str(f.parent.relative_to(root)) or ".", "policy": name, "kind": r.get("kind"),
                "model": r.get("model"), "avg_im_fraction": r["avg_im_fraction"],
                "book_im_over_notional": b["avg_im_over_notional"], "exceptions": r["exceptions_total"],
                "coverage_pass_5pct": r["all_pass_5pct"], "max_increase_30d": r["max_increase_30d"],
                "liquidations": b["liquidations"], "liquidation_volume_usd": b["liquidation_volume_usd"],
                "bad_debt_usd": b["bad_debt_usd"], "stress_bad_debt_usd": r["stress_bad_debt_usd"],
                "fund_min_usd": b["fund_min"]})
    df = pd.DataFrame(rows)
    df["pareto"] = pareto_front(df["avg_im_fraction"].to_numpy(), df["bad_debt_usd"].to_numpy())
    return df


def pareto_front(cost: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Boolean mask of points not dominated (another point <= in both and < in one)."""
    cost, loss = np.asarray(cost, float), np.asarray(loss, float)
    dom = (cost[None, :] <= cost[:, None]) & (loss[None, :] <= loss[:, None]) & \
          ((cost[None, :] < cost[:, None]) | (loss[None, :] < loss[:, None]))
    return ~dom.any(axis=1)


def to_markdown(df: pd.DataFrame) -> str:
    cols = ["job", "policy", "avg_im_fraction", "exceptions", "coverage_pass_5pct", "max_increase_30d",
            "liquidations", "bad_debt_usd", "stress_bad_debt_usd", "pareto"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.sort_values(["avg_im_fraction"]).iterrows():
        vals = []
        for c in cols:
            v = r[c]
            if c in ("avg_im_fraction", "max_increase_30d"):
                vals.append(f"{100 * v:.1f}%")
            elif c.endswith("_usd"):
                vals.append(f"{v:,.0f}")
            else:
                vals.append(str(v))
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def pareto_plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6))
    loss = df["bad_debt_usd"] / 1e6
    ax.scatter(100 * df["avg_im_fraction"], loss, c=np.where(df["pareto"], "tab:red", "tab:blue"))
    for (_, r), y in zip(df.iterrows(), loss):
        ax.annotate(f"{r['policy']} [{r['job']}]", (100 * r["avg_im_fraction"], y), fontsize=6)
    front = df.assign(loss=loss)[df["pareto"]].sort_values("avg_im_fraction")
    ax.plot(100 * front["avg_im_fraction"], front["loss"], "r--", lw=1, label="Pareto frontier")
    ax.set_xlabel("average IM (% of notional), evaluation period")
    ax.set_ylabel("bad debt over the evaluation period (USD m)")
    ax.set_title("Bad debt vs average margin")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
