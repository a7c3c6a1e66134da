"""The main job (`make run`): forecast risk, set margin from the forecast, check how it fared, prove sufficiency.

Steps, on the embedded BTC/ETH daily data unless ``data.*`` points elsewhere:

1. build leakage-safe features and train the learned volatility model on data up to ``train_end``;
2. walk forward day by day over ``test_start .. test_end``: each day set the initial margin (IM) of a long and a
   short 1x linear perpetual on each asset to ``z(coverage) x forecast sigma_h`` of notional under the reactive
   (EWMA) and the predictive (learned) policy, compute IM, MM and equity with the batched margin kernel, and count
   an exception when the h-day loss exceeds the IM;
3. report per policy and asset: exception (breach) rate, Kupiec POF statistic and p-value, average margin as % of
   notional, largest 30-day margin increase (Murphy, Vasios & Vause 2014);
4. prove in zero knowledge that one account of the last day has equity >= maintenance margin, and verify it.

Writes ``metrics.json``, ``report.md`` and ``margin_paths.png`` into the Hydra run directory and prints the table.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from scipy import stats
from tqdm import tqdm

import margin
import predictive
from predictive.features import build_features
from predictive.models import make_model

log = logging.getLogger(__name__)

POLICIES = ("reactive", "predictive")
SIDES = ("long", "short")


@dataclass(frozen=True)
class MarginPath:
    """One policy's margin on one asset over the test period (arrays of shape ``(T,)``, float64)."""

    dates: pd.DatetimeIndex      # forecast origins t
    im_fraction: np.ndarray      # IM as a fraction of notional set at t
    loss_fraction: dict[str, np.ndarray]  # side -> h-day loss over (t, t+h] as a fraction of notional at t
    exceptions: dict[str, np.ndarray]     # side -> bool, loss > IM


def load_assets(data_cfg: DictConfig) -> dict[str, pd.DataFrame]:
    """Daily OHLCV per asset from the embedded data set or the user's files (see ``conf/data/embedded.yaml``)."""
    paths = dict(data_cfg.get("paths") or {})
    if data_cfg.get("path"):
        if len(data_cfg.assets) != 1:
            raise ValueError("data.path names one file: set data.assets to a single name, e.g. data.assets=[SOL]")
        paths[data_cfg.assets[0]] = data_cfg.path
    assets = list(dict.fromkeys([*data_cfg.assets, *paths]))
    return {a: predictive.load_ohlcv(paths.get(a, a), start=data_cfg.get("start")) for a in assets}


def _margin_fraction(variance_h: np.ndarray, coverage: float) -> np.ndarray:
    """IM fraction of notional = z(coverage) x sigma_h, sigma_h = sqrt(forecast variance of the h-day log return)."""
    return stats.norm.ppf(coverage) * np.sqrt(variance_h)


def walk_forward(prices: dict[str, pd.DataFrame], fractions: dict[str, pd.Series], horizon: int,
                 maintenance_fraction: float) -> dict[str, MarginPath]:
    """Walk forward day by day, margining a long and a short 1x perpetual per asset with the margin kernel.

    Each day t, four isolated accounts (long / short on each asset, 1 coin, collateral = notional: 1x leverage)
    get IM and MM from ``fractions[asset][t]``; at t + h they are marked again, and an exception is an h-day loss
    larger than the IM set at t.
    """
    assets = list(fractions)
    dates = fractions[assets[0]].index
    for a in assets[1:]:
        dates = dates.intersection(fractions[a].index)
    closes = pd.DataFrame({a: prices[a]["close"] for a in assets})
    m = len(assets)
    positions = np.zeros((2 * m, m))
    for j in range(m):
        positions[2 * j, j], positions[2 * j + 1, j] = 1.0, -1.0
    im = np.zeros((len(dates), 2 * m))
    loss = np.zeros_like(im)
    for i, t in enumerate(tqdm(dates, desc="walk-forward", unit="day", leave=False)):
        entry = closes.loc[t].to_numpy()
        later = closes.index[closes.index.get_loc(t) + horizon]
        mark = closes.loc[later].to_numpy()
        imf = np.array([fractions[a].loc[t] for a in assets])
        collateral = np.abs(positions) @ entry
        at_entry = margin.perpetual_margin(positions, entry, entry, collateral, imf, imf * maintenance_fraction,
                                           dtype=np.float64)
        at_mark = margin.perpetual_margin(positions, entry, mark, collateral, imf, imf * maintenance_fraction,
                                          dtype=np.float64)
        im[i] = np.asarray(at_entry.initial_margin) / collateral
        loss[i] = -np.asarray(at_mark.unrealised_pnl) / collateral
    paths = {}
    for j, a in enumerate(assets):
        sides = {"long": 2 * j, "short": 2 * j + 1}
        paths[a] = MarginPath(dates, im[:, 2 * j],
                              {s: loss[:, k] for s, k in sides.items()},
                              {s: loss[:, k] > im[:, k] for s, k in sides.items()})
    return paths


def max_increase_pct(fraction: np.ndarray, days: int = 30) -> float:
    """Largest ``days``-day increase of margin, max_t (m_t / m_{t-days} - 1) in percent (Murphy et al. 2014)."""
    if fraction.size <= days:
        return float("nan")
    return float(np.max(fraction[days:] / fraction[:-days] - 1.0) * 100.0)


def summarise(path: MarginPath, coverage: float) -> dict:
    """Per-asset metrics of one policy; the top level pools the long and the short position's exceptions."""
    pooled = np.concatenate([path.exceptions[s] for s in SIDES])
    kupiec = predictive.kupiec_pof(pooled, coverage)
    per_side = {}
    for side in SIDES:
        k = predictive.kupiec_pof(path.exceptions[side], coverage)
        per_side[side] = {"breaches": k.x, "breach_rate": k.rate, "kupiec_lr": k.statistic,
                          "kupiec_pvalue": k.pvalue}
    return {
        "days": int(path.dates.size),
        "breaches": kupiec.x,
        "breach_rate": kupiec.rate,
        "kupiec_lr": kupiec.statistic,
        "kupiec_pvalue": kupiec.pvalue,
        "avg_margin_pct": float(np.mean(path.im_fraction) * 100.0),
        "max_30d_increase_pct": max_increase_pct(path.im_fraction, 30),
        "sides": per_side,
    }


def format_table(metrics: dict) -> str:
    """Markdown table of the per-policy, per-asset metrics."""
    lines = ["| policy | asset | days | breaches (long+short) | breach rate | Kupiec LR | Kupiec p | "
             "avg margin % | max 30d increase % |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for policy in POLICIES:
        for asset, m in metrics[policy].items():
            lines.append(f"| {policy} | {asset} | {m['days']} | {m['breaches']} | {m['breach_rate']:.2%} | "
                         f"{m['kupiec_lr']:.2f} | {m['kupiec_pvalue']:.3f} | {m['avg_margin_pct']:.2f} | "
                         f"{m['max_30d_increase_pct']:.1f} |")
    return "\n".join(lines)


def prove_last_day(path: MarginPath, prices: pd.DataFrame, horizon: int, maintenance_fraction: float,
                   backend: str) -> dict:
    """Prove and verify "equity - maintenance margin >= 0" for the long 1x account of the last test day."""
    import zkproofs

    t = path.dates[-1]
    closes = prices["close"]
    entry = float(closes.loc[t])
    mark = float(closes.iloc[closes.index.get_loc(t) + horizon])
    result = margin.perpetual_margin(np.array([[1.0]]), np.array([entry]), np.array([mark]), np.array([entry]),
                                     np.array([path.im_fraction[-1]]),
                                     np.array([path.im_fraction[-1] * maintenance_fraction]), dtype=np.float64)
    equity, mm = float(result.equity[0]), float(result.maintenance_margin[0])
    started = time.perf_counter()
    proof = zkproofs.prove_equity_covers_margin(equity, mm, backend=backend)
    prove_ms = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    verified = zkproofs.verify_equity_covers_margin(proof, backend=backend)
    verify_ms = (time.perf_counter() - started) * 1e3
    return {"verified": bool(verified), "bytes": len(proof.to_bytes()), "prove_ms": prove_ms, "verify_ms": verify_ms,
            "account": {"date": str(t.date()), "side": "long", "size_coin": 1.0}, "backend": backend}


def plot_paths(paths: dict[str, dict[str, MarginPath]], prices: dict[str, pd.DataFrame], out: Path) -> None:
    """Price, both margin paths and the breaches of each policy, one panel pair per asset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assets = list(paths["reactive"])
    fig, axes = plt.subplots(2, len(assets), figsize=(7 * len(assets), 7), sharex="col", squeeze=False)
    colours = {"reactive": "tab:orange", "predictive": "tab:blue"}
    for col, asset in enumerate(assets):
        dates = paths["reactive"][asset].dates
        axes[0, col].plot(dates, prices[asset]["close"].reindex(dates), color="black", lw=0.8)
        axes[0, col].set_yscale("log")
        axes[0, col].set_title(f"{asset} close (USD)")
        for policy in POLICIES:
            p = paths[policy][asset]
            axes[1, col].plot(p.dates, p.im_fraction * 100, color=colours[policy], lw=0.9, label=f"{policy} IM")
            hits = p.exceptions["long"] | p.exceptions["short"]
            axes[1, col].scatter(p.dates[hits], p.im_fraction[hits] * 100, color=colours[policy], marker="x",
                                 s=30, label=f"{policy} breach")
        worst = np.maximum(paths["reactive"][asset].loss_fraction["long"],
                           paths["reactive"][asset].loss_fraction["short"])
        axes[1, col].plot(dates, worst * 100, color="grey", lw=0.5, alpha=0.6, label="realised loss (worse side)")
        axes[1, col].set_ylabel("% of notional")
        axes[1, col].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run(cfg: DictConfig, output_dir: Path) -> dict:
    """Run the main job and return ``metrics`` (also written to ``output_dir/metrics.json``)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    prices = load_assets(cfg.data)
    features = {a: build_features(df) for a, df in prices.items()}
    train = {a: f.loc[: cfg.train_end] for a, f in features.items()}
    horizon = int(cfg.horizon)

    models = {
        "reactive": make_model("ewma", lam=float(cfg.reactive.lam)),
        "predictive": make_model(cfg.learned_model.name, seed=int(cfg.seed),
                                 **{k: v for k, v in OmegaConf.to_container(cfg.learned_model).items()
                                    if k not in ("name", "seed")}, horizon=horizon),
    }
    timings = {}
    fractions: dict[str, dict[str, pd.Series]] = {}
    for policy, model in models.items():
        started = time.perf_counter()
        model.fit(train)
        timings[f"{policy}_fit_s"] = time.perf_counter() - started
        forecasts = model.forecast(features, horizon)
        fractions[policy] = {}
        for asset, fc in forecasts.items():
            series = pd.Series(_margin_fraction(fc.variance, cfg.coverage), index=fc.index)
            # the h-day outcome must be known: origins end h rows before the last price
            last_origin = prices[asset].index[-1 - horizon]
            fractions[policy][asset] = series.loc[cfg.test_start: min(pd.Timestamp(cfg.test_end), last_origin)]

    paths = {p: walk_forward(prices, fractions[p], horizon, cfg.maintenance_fraction) for p in POLICIES}
    metrics: dict = {p: {a: summarise(path, cfg.coverage) for a, path in paths[p].items()} for p in POLICIES}
    metrics["config"] = {"horizon": horizon, "coverage": cfg.coverage, "train_end": str(cfg.train_end),
                         "test_start": str(cfg.test_start), "test_end": str(cfg.test_end),
                         "learned_model": cfg.learned_model.name}
    metrics["timings"] = timings
    if cfg.proof.enabled:
        first = next(iter(paths["predictive"]))
        metrics["proof"] = prove_last_day(paths["predictive"][first], prices[first], horizon,
                                          cfg.maintenance_fraction, cfg.proof.backend)

    table = format_table(metrics)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    report = [f"# Margin backtest {cfg.test_start} .. {cfg.test_end}", "",
              f"Margin = z({cfg.coverage}) x forecast sigma of the {horizon}-day log return, long and short 1x "
              f"perpetual per asset; an exception is an h-day loss above the IM. Reactive = EWMA "
              f"(lambda {cfg.reactive.lam}); predictive = {cfg.learned_model.name} trained to {cfg.train_end}.", "",
              table, ""]
    if "proof" in metrics:
        p = metrics["proof"]
        report.append(f"Zero-knowledge proof that equity >= MM for the long {first} account on "
                      f"{p['account']['date']}: verified={p['verified']}, {p['bytes']} bytes, "
                      f"prove {p['prove_ms']:.1f} ms, verify {p['verify_ms']:.1f} ms.")
    (output_dir / "report.md").write_text("\n".join(report) + "\n")
    if cfg.plot:
        plot_paths(paths, prices, output_dir / "margin_paths.png")
    print(table)
    return metrics


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    output_dir = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    run(cfg, output_dir)
    log.info("wrote metrics.json, report.md and margin_paths.png to %s", output_dir)


if __name__ == "__main__":
    main()
