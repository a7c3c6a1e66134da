"""The main job (`make run`): forecast risk, set margin from the forecast, check how it fared, prove sufficiency.

Steps, on the embedded BTC/ETH daily data unless ``data.*`` points elsewhere:

1. build leakage-safe features and train the volatility models (``models``) on data up to ``train_end`` for the
   configured horizon ``h`` and ``seed``;
2. walk forward over ``eval_start .. end``: each day t set the initial margin (IM) of a long and a short 1x linear
   perpetual on each asset to ``z(coverage) x forecast sigma_h`` of notional under the reactive (EWMA) and the
   predictive (learned) policy, mark the accounts at the close of the calendar day t + h with the batched margin
   kernel, and count a BREACH when the h-day loss exceeds the IM (origins whose t + h close is missing are dropped
   and counted);
3. report per policy and asset: breaches, breach rate, Kupiec POF statistic and p-value, average margin as % of
   notional, largest 30-day margin increase (Murphy, Vasios & Vause 2014); the venue backtest's own EXCEPTIONS
   (h-day loss above the policy's scan range) are quoted from its metrics, not recomputed;
4. prove in zero knowledge that one account of the last day has equity >= maintenance margin, and verify it.

Writes ``metrics.json``, ``report.md`` and ``margin_paths.png`` into the Hydra run directory and prints the table.
"""
from __future__ import annotations

import importlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm import tqdm

from experiments._cli import hydra_app
from experiments.main_report import backtest_exceptions, format_table, plot_paths, render_report
from experiments.schema import MAIN

if TYPE_CHECKING:
    from experiments.walk_forward import MarginPath


class _OnFirstUse:
    """A module imported on first attribute access: JAX loads after the config check, so a bad override is
    reported within a second or two (``margin``, ``experiments.backtest`` and the walk-forward import JAX)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


margin = _OnFirstUse("margin")
backtest = _OnFirstUse("experiments.backtest")
wf = _OnFirstUse("experiments.walk_forward")

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

log = logging.getLogger(__name__)

POLICIES = ("reactive", "predictive")


def prove_last_day(path: MarginPath, close: pd.Series, horizon: int, maintenance_fraction: float,
                   backend: str) -> dict:
    """Prove and verify "equity - maintenance margin >= 0" for the long 1x account of the last walk-forward day,
    with the maintenance margin DERIVED inside the statement (``zkproofs.EquityStatement``, issue 11).

    The account holds 1 coin long from the last origin t (bought with borrowed quote: quote balance -entry USD),
    collateral = notional at t in USDC; it is marked at t + h. Public: the mark price, the MM rate
    (IM fraction x maintenance_fraction, ppm, rounded up); private: collateral, quote balance, position. Value
    unit 1e-6 USD, amount unit 1e-4 coin; the context binds venue, account, epoch (t's day number) and a one-day
    expiry. Cross-checked against ``margin.perpetual_margin`` (equity and MM in USD)."""
    import zkproofs

    t = path.dates[-1]
    entry = float(close.loc[t])
    mark = float(close.iloc[close.index.get_loc(t) + horizon])
    mm_frac = float(path.im_fraction[-1]) * float(maintenance_fraction)
    result = margin.perpetual_margin(np.array([[1.0]]), np.array([entry]), np.array([mark]), np.array([entry]),
                                     np.array([path.im_fraction[-1]]), np.array([mm_frac]), dtype=np.float64)
    equity, mm = float(result.equity[0]), float(result.maintenance_margin[0])
    vs, asc = 10**6, 10**4
    mark_units = zkproofs.to_fixed_point(mark, vs, rounding="down") // asc  # value units per amount unit, floor
    mark_up = -(-zkproofs.to_fixed_point(mark, vs, rounding="up") // asc)
    rate_ppm = zkproofs.to_fixed_point(mm_frac, 10**6, rounding="up")
    ctx = zkproofs.Context("predictive-margin/walk-forward", "long-1x-last-day", int(t.value // 86_400_000_000_000),
                           int(time.time()) + 86_400)
    st = zkproofs.EquityStatement(ctx, [vs // asc], [mark_units], [min(mark_up, mark_units + 1)], [rate_ppm],
                                  collateral_names=("USDC",), instruments=("PERP",), value_scale=vs,
                                  amount_scale=asc, unit="value unit 1e-6 USD; amount unit 1e-4 coin")
    bal = [zkproofs.to_fixed_point(entry, asc, rounding="down")]
    quote = -zkproofs.to_fixed_point(entry, vs, rounding="up")
    pos = [asc]  # 1 coin
    e_int, m_int = st.equity_and_mm(bal, quote, pos)
    # generators are derived once per process by hash-to-curve; time that apart from proving
    started = time.perf_counter()
    zkproofs.get_generators(backend).G(512)
    setup_ms = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    bundle = zkproofs.prove_equity_covers_margin(st, bal, quote, pos, backend=backend)
    prove_ms = (time.perf_counter() - started) * 1e3
    public = bundle.to_json()  # what a verifier receives: no openings
    started = time.perf_counter()
    verified = zkproofs.verify_equity_covers_margin(public, backend=backend, expected_statement=st)
    verify_ms = (time.perf_counter() - started) * 1e3
    return {"verified": bool(verified), "bytes": int(bundle.proof_bytes), "prove_ms": prove_ms,
            "verify_ms": verify_ms, "generator_setup_ms": setup_ms, "backend": backend,
            "proved": (f"equity - MM - buffer >= 0 with MM derived in the statement as {rate_ppm / 1e4:g}% of the "
                       f"mark notional (rate rounded up) from the committed position"),
            "statement_digest": st.digest(),
            "account": {"date": str(t.date()), "side": "long", "size_coin": 1.0, "equity_usd": equity,
                        "maintenance_margin_usd": mm, "proved_equity_usd": e_int / vs,
                        "proved_maintenance_margin_usd": m_int / vs, "mm_rate_ppm": rate_ppm}}


def prove_book_account(cfg: DictConfig, out_dir: Path) -> dict:
    """Scenario margin-sufficiency proof (issues 6, 11) for one account of the backtest's synthetic book, its
    perpetuals AND option legs, verified against the statement the venue side wrote (``statement.json``).

    Uses ``experiments.prove`` with ``conf/zk/cli/prove.yaml`` (SPAN-style grid; amount unit at most 1e-4 coin,
    finer positions rounded against the prover into the buffer) and the ``proof.backend`` group; writes
    ``statement.json`` and ``bundle.json`` (public) and ``openings.PRIVATE.json`` into ``out_dir``.
    """
    import zkproofs
    from experiments import prove

    prove_cfg = OmegaConf.load(CONF_DIR / "zk" / "cli" / "prove.yaml")
    for key in ("defaults", "hydra"):
        prove_cfg.pop(key, None)
    prove_cfg.zk = OmegaConf.load(CONF_DIR / "zk" / f"{cfg.proof.backend}.yaml")
    prove_cfg.account.book_index = int(cfg.proof.book_account)
    prove_cfg.account.book_seed = int(cfg.seed)
    prove_cfg.units.max_amount_scale = 10_000
    prove_cfg.positions.sub_unit = "round"
    prove_cfg.context.venue = "predictive-margin/book"
    prove_cfg.context.account = f"book-account-{int(cfg.proof.book_account)}"
    result = prove.prove_account(prove_cfg, out_dir)
    bundle = json.loads(Path(result["bundle"]).read_text())
    started = time.perf_counter()
    verified = zkproofs.verify_bundle(bundle, backend=cfg.proof.backend,
                                      expected_statement=Path(result["statement"]).read_bytes())
    result.update(verified=bool(verified), verify_ms=(time.perf_counter() - started) * 1e3,
                  book_account=int(cfg.proof.book_account))
    return result


def run(cfg: DictConfig, output_dir: Path) -> dict:
    """Run the main job and return its metrics (also written to ``output_dir/metrics.json``)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    horizon, progress = int(cfg.horizon), bool(cfg.get("progress", False) is True)
    cfg = _with_run_settings(cfg, progress)  # every model gets horizon, seed, progress; "auto" resolved
    from experiments.data import load_features

    features = load_features(cfg, with_prices=True)
    closes = {a: f["_close"] for a, f in features.items()}

    # 1. train every model once (EWMA, GARCH, the learned model) on rows <= train_end, for horizon h and seed
    models, fit_seconds = backtest.train_models(cfg, features, list(cfg.models))
    forecasts = {name: model.forecast(features, horizon) for name, model in models.items()}

    # 2. the walk-forward of a long and a short 1x perpetual per asset, reactive vs predictive
    fractions: dict[str, dict[str, pd.Series]] = {}
    full: dict[str, dict[str, pd.Series]] = {}  # whole forecast path, for the plot (warm-up before eval_start)
    for policy, name in (("reactive", cfg.walk_forward.reactive_model),
                         ("predictive", cfg.walk_forward.predictive_model)):
        full[policy] = {a: pd.Series(wf.margin_fraction(fc.variance, cfg.coverage), index=fc.index)
                        for a, fc in forecasts[name].items()}
        fractions[policy] = {a: s.loc[cfg.eval_start:cfg.end] for a, s in full[policy].items()}
    paths = {p: wf.walk_forward(closes, fractions[p], horizon, cfg.maintenance_fraction, progress=progress)
             for p in POLICIES}
    metrics: dict = {p: {a: wf.summarise(path, cfg.coverage) for a, path in paths[p].items()} for p in POLICIES}
    metrics["config"] = {"horizon": horizon, "seed": int(cfg.seed), "coverage": cfg.coverage,
                         "train_end": str(cfg.train_end), "eval_start": str(cfg.eval_start), "end": str(cfg.end),
                         "reactive_model": cfg.walk_forward.reactive_model,
                         "predictive_model": cfg.walk_forward.predictive_model,
                         "data_start": {a: str(c.index[0].date()) for a, c in closes.items()},
                         "data_end": {a: str(c.index[-1].date()) for a, c in closes.items()}}
    metrics["timings"] = {f"fit_{k}_s": v for k, v in fit_seconds.items()}
    table = format_table(metrics, POLICIES)
    print(table)

    # 3. the venue backtest: policies, a synthetic book, liquidations, regulators' tests (report in backtest/)
    if cfg.backtest_enabled:
        dates = features[cfg.assets[0]].index
        for a in cfg.assets[1:]:
            dates = dates.intersection(features[a].index)
        dates = dates[dates <= pd.Timestamp(cfg.end)]
        # the venue backtest refits on a walk-forward from the models above (the walk-forward above keeps the one fit)
        arrays, _ = backtest.walk_forward_forecast_arrays(cfg, features, list(cfg.models), dates, horizon,
                                                          refit_every=cfg.get("refit_every"), fitted=models)
        started = time.perf_counter()
        venue = backtest.run_backtest(cfg, output_dir / "backtest", forecasts=arrays)
        metrics["timings"]["backtest_s"] = time.perf_counter() - started
        metrics["backtest"] = {"report": "backtest/report.md", "targets": venue.get("targets"),
                               "exceptions": backtest_exceptions(venue, POLICIES),
                               "start": str(max(pd.Timestamp(cfg.start), dates[0]).date())}  # first day with data

    # 4. zero-knowledge proofs: equity >= MM for a walk-forward account; scenario sufficiency for a book account
    if cfg.proof.enabled:
        first = next(iter(paths["predictive"]))
        with tqdm(total=2, desc="proofs", unit="proof", disable=not progress, leave=False) as bar:
            metrics["proof"] = prove_last_day(paths["predictive"][first], closes[first], horizon,
                                              cfg.maintenance_fraction, cfg.proof.backend)
            metrics["proof"]["account"]["asset"] = first
            bar.update()
            metrics["book_proof"] = prove_book_account(cfg, output_dir / "proof")
            bar.update()
    # 5. exchange-wide solvency (issue 12): reserves cover equity, stress deficits fit in the insurance fund
    if cfg.solvency.enabled:
        from experiments.solvency import prove_book_solvency

        started = time.perf_counter()
        metrics["solvency"] = prove_book_solvency(output_dir / "solvency", n_accounts=int(cfg.solvency.n_accounts),
                                                  seed=int(cfg.seed), workers=int(cfg.solvency.workers),
                                                  executor=str(cfg.solvency.executor), progress=progress)
        metrics["timings"]["solvency_s"] = time.perf_counter() - started

    from margin.simulation.tuning import json_default

    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=json_default))
    (output_dir / "report.md").write_text(render_report(metrics, cfg, table))
    if cfg.plot:
        plot_paths(paths, full, closes, cfg, output_dir / "margin_paths.png")
    return metrics


def _with_run_settings(cfg: DictConfig, progress: bool) -> DictConfig:
    """A copy of ``cfg`` whose ``models.<name>`` carry the run's ``horizon``, ``seed`` and ``progress`` unless set
    there explicitly (``train_models`` passes each to the models that accept it: RegimeNet trains h-day heads)."""
    specs = OmegaConf.to_container(cfg.models, resolve=True)
    for spec in specs.values():
        for key, value in (("horizon", int(cfg.horizon)), ("seed", int(cfg.seed)), ("progress", progress)):
            spec.setdefault(key, value)
    out = cfg.copy()
    with open_dict(out):
        out.models = specs
        out.progress = progress
    return out


@hydra_app("config", schema=MAIN)
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    run(cfg, output_dir)
    log.info("wrote metrics.json, report.md and margin_paths.png to %s", output_dir)


if __name__ == "__main__":
    main()
