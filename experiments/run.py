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
from experiments import backtest
from experiments._cli import hydra_app
from experiments.schema import MAIN
from experiments.data import load_features

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

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


def _margin_fraction(variance_h: np.ndarray, coverage: float) -> np.ndarray:
    """IM fraction of notional = z(coverage) x sigma_h, sigma_h = sqrt(forecast variance of the h-day log return)."""
    return stats.norm.ppf(coverage) * np.sqrt(variance_h)


def walk_forward(closes: dict[str, pd.Series], fractions: dict[str, pd.Series], horizon: int,
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
    closes = pd.DataFrame({a: closes[a] for a in assets})
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


def prove_last_day(path: MarginPath, close: pd.Series, horizon: int, maintenance_fraction: float,
                   backend: str) -> dict:
    """Prove and verify "equity - maintenance margin >= 0" for the long 1x account of the last walk-forward day.

    The account holds 1 coin long from the last origin t, collateral = notional at t; it is marked at t + h.
    """
    import zkproofs

    t = path.dates[-1]
    entry = float(close.loc[t])
    mark = float(close.iloc[close.index.get_loc(t) + horizon])
    result = margin.perpetual_margin(np.array([[1.0]]), np.array([entry]), np.array([mark]), np.array([entry]),
                                     np.array([path.im_fraction[-1]]),
                                     np.array([path.im_fraction[-1] * maintenance_fraction]), dtype=np.float64)
    equity, mm = float(result.equity[0]), float(result.maintenance_margin[0])
    # generators are derived once per process by hash-to-curve; time that apart from proving
    started = time.perf_counter()
    zkproofs.get_generators(backend).G(256)
    setup_ms = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    bundle = zkproofs.prove_equity_covers_margin(equity, mm, backend=backend)
    prove_ms = (time.perf_counter() - started) * 1e3
    public = bundle.to_json()  # what a verifier receives: no openings
    started = time.perf_counter()
    verified = zkproofs.verify_equity_covers_margin(public, backend=backend)
    verify_ms = (time.perf_counter() - started) * 1e3
    return {"verified": bool(verified), "bytes": int(bundle.proof_bytes), "prove_ms": prove_ms,
            "verify_ms": verify_ms, "generator_setup_ms": setup_ms, "backend": backend,
            "account": {"date": str(t.date()), "side": "long", "size_coin": 1.0, "equity_usd": equity,
                        "maintenance_margin_usd": mm}}


def prove_book_account(cfg: DictConfig, out_dir: Path) -> dict:
    """Scenario margin-sufficiency proof (issue 6) for one account of the backtest's synthetic book.

    Uses ``experiments.prove`` with ``conf/zk/cli/prove.yaml`` (SPAN-style grid) and the ``proof.backend`` group;
    writes ``bundle.json`` (public) and ``openings.PRIVATE.json`` into ``out_dir`` and verifies the public bundle.
    """
    import zkproofs
    from experiments import prove

    prove_cfg = OmegaConf.load(CONF_DIR / "zk" / "cli" / "prove.yaml")
    for key in ("defaults", "hydra"):
        prove_cfg.pop(key, None)
    prove_cfg.zk = OmegaConf.load(CONF_DIR / "zk" / f"{cfg.proof.backend}.yaml")
    prove_cfg.account.book_index = int(cfg.proof.book_account)
    prove_cfg.account.book_seed = int(cfg.seed)
    result = prove.prove_account(prove_cfg, out_dir)
    bundle = json.loads(Path(result["bundle"]).read_text())
    started = time.perf_counter()
    verified = zkproofs.verify_bundle(bundle, backend=cfg.proof.backend)
    result.update(verified=bool(verified), verify_ms=(time.perf_counter() - started) * 1e3,
                  book_account=int(cfg.proof.book_account))
    return result


def plot_paths(paths: dict[str, dict[str, MarginPath]], closes: dict[str, pd.Series], out: Path) -> None:
    """Price, both margin paths and the breaches of each policy, one panel pair per asset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assets = list(paths["reactive"])
    fig, axes = plt.subplots(2, len(assets), figsize=(7 * len(assets), 7), sharex="col", squeeze=False)
    colours = {"reactive": "tab:orange", "predictive": "tab:blue"}
    for col, asset in enumerate(assets):
        dates = paths["reactive"][asset].dates
        axes[0, col].plot(dates, closes[asset].reindex(dates), color="black", lw=0.8)
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
    """Run the main job and return its metrics (also written to ``output_dir/metrics.json``)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    horizon = int(cfg.horizon)
    features = load_features(cfg, with_prices=True)
    closes = {a: f["_close"] for a, f in features.items()}

    # 1. train every model once (EWMA, GARCH, the learned model) on rows <= train_end
    models, fit_seconds = backtest.train_models(cfg, features, list(cfg.models))
    forecasts = {name: model.forecast(features, horizon) for name, model in models.items()}

    # 2. the walk-forward of a long and a short 1x perpetual per asset, reactive vs predictive
    fractions: dict[str, dict[str, pd.Series]] = {}
    for policy, name in (("reactive", cfg.walk_forward.reactive_model),
                         ("predictive", cfg.walk_forward.predictive_model)):
        fractions[policy] = {}
        for asset, fc in forecasts[name].items():
            series = pd.Series(_margin_fraction(fc.variance, cfg.coverage), index=fc.index)
            last_origin = closes[asset].index[-1 - horizon]  # the h-day outcome must be known
            fractions[policy][asset] = series.loc[cfg.eval_start: min(pd.Timestamp(cfg.end), last_origin)]
    paths = {p: walk_forward(closes, fractions[p], horizon, cfg.maintenance_fraction) for p in POLICIES}
    metrics: dict = {p: {a: summarise(path, cfg.coverage) for a, path in paths[p].items()} for p in POLICIES}
    metrics["config"] = {"horizon": horizon, "coverage": cfg.coverage, "train_end": str(cfg.train_end),
                         "eval_start": str(cfg.eval_start), "end": str(cfg.end),
                         "reactive_model": cfg.walk_forward.reactive_model,
                         "predictive_model": cfg.walk_forward.predictive_model}
    metrics["timings"] = {f"fit_{k}_s": v for k, v in fit_seconds.items()}
    table = format_table(metrics)
    print(table)

    # 3. the venue backtest: policies, a synthetic book, liquidations, regulators' tests (report in backtest/)
    if cfg.backtest_enabled:
        dates = features[cfg.assets[0]].index
        for a in cfg.assets[1:]:
            dates = dates.intersection(features[a].index)
        arrays = backtest.forecast_arrays(models, features, dates[dates <= pd.Timestamp(cfg.end)], horizon)
        started = time.perf_counter()
        venue = backtest.run_backtest(cfg, output_dir / "backtest", forecasts=arrays)
        metrics["timings"]["backtest_s"] = time.perf_counter() - started
        metrics["backtest"] = {"report": "backtest/report.md", "targets": venue.get("targets")}

    # 4. zero-knowledge proofs: equity >= MM for a walk-forward account; scenario sufficiency for a book account
    if cfg.proof.enabled:
        first = next(iter(paths["predictive"]))
        metrics["proof"] = prove_last_day(paths["predictive"][first], closes[first], horizon,
                                          cfg.maintenance_fraction, cfg.proof.backend)
        metrics["proof"]["account"]["asset"] = first
        metrics["book_proof"] = prove_book_account(cfg, output_dir / "proof")

    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
    (output_dir / "report.md").write_text(render_report(metrics, cfg, table))
    if cfg.plot:
        plot_paths(paths, closes, output_dir / "margin_paths.png")
    return metrics


def _json_default(x):
    if isinstance(x, (np.integer, np.floating, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def render_report(metrics: dict, cfg: DictConfig, table: str) -> str:
    """``report.md``: what was run, the walk-forward table, how to read it, the proofs and the backtest link."""
    lines = [f"# predictive-margin main job: {cfg.eval_start} .. {cfg.end}", "",
             f"Models trained on data up to {cfg.train_end}. Each day, the initial margin (IM) of a long and a short "
             f"1x linear perpetual per asset is z({cfg.coverage}) x the forecast sigma of the {cfg.horizon}-day log "
             f"return, as a fraction of notional; an exception (breach) is an h-day loss above that IM. Reactive = "
             f"{cfg.walk_forward.reactive_model}, predictive = {cfg.walk_forward.predictive_model}.", "",
             table, "",
             "How to read it: at 99% coverage about 1% of position-days should breach. A Kupiec p-value below 0.05 "
             "rejects 99% coverage (too many or too few breaches). Lower average margin is cheaper for traders; a "
             "lower largest 30-day increase means gentler (less procyclical) margin calls. Breaches pool the long "
             "and the short position (2 x days observations); per-side figures are in metrics.json.", ""]
    if "backtest" in metrics:
        lines += ["The venue backtest (policies with anti-procyclicality tools, a synthetic book, liquidations, "
                  "bad debt, stress windows) is in [backtest/report.md](backtest/report.md).", ""]
    if "proof" in metrics:
        p, b = metrics["proof"], metrics["book_proof"]
        lines += ["## Zero-knowledge proofs (Bulletproofs on BLS12-381)", "",
                  f"- equity >= MM for the long 1x {p['account']['asset']} account of {p['account']['date']}: "
                  f"verified={p['verified']}, {p['bytes']} bytes, prove {p['prove_ms']:.1f} ms, "
                  f"verify {p['verify_ms']:.1f} ms ({p['backend']}).",
                  f"- book account {b['book_account']} covers every one of {b['scenarios']} scenarios "
                  f"({b['instruments']} positions, {b['collateral_assets']} collateral assets): "
                  f"verified={b['verified']}, {b['proof_bytes']} bytes, prove {b['prove_ms']:.1f} ms, "
                  f"verify {b['verify_ms']:.1f} ms. Public bundle: `proof/bundle.json` "
                  "(check it with `python -m experiments.verify proof/bundle.json`); openings stay in "
                  "`proof/openings.PRIVATE.json`.", ""]
    return "\n".join(lines)


@hydra_app("config", schema=MAIN)
def main(cfg: DictConfig) -> None:
    output_dir = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    run(cfg, output_dir)
    log.info("wrote metrics.json, report.md and margin_paths.png to %s", output_dir)


if __name__ == "__main__":
    main()
