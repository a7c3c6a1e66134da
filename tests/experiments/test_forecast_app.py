"""experiments.forecast through Hydra's compose() on a short slice; experiments.aggregate_forecasts on its output."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments import aggregate_forecasts, forecast

OVERRIDES = ["model=regime_net", "model.max_epochs=2", "model.n_ensemble=1", "model.hidden=8", "model.lookback=8",
             "model.n_regimes=2", "horizon=2", "train_end=2023-08-31", "test_start=2023-09-01",
             "test_end=2023-12-31", "refit_every=80", "baselines=[ewma,har]"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, repo_root):
    with initialize_config_dir(config_dir=str(repo_root / "conf"), version_base=None):
        cfg = compose(config_name="forecast", overrides=OVERRIDES)
    out = tmp_path_factory.mktemp("forecast") / "0_regime_net"
    return cfg, forecast.evaluate(cfg, out), out


def test_evaluate_writes_metrics_report_and_plot(run):
    _, _, out = run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["model"] == "regime_net" and saved["horizon"] == 2
    assert set(saved["assets"]) == {"BTC", "ETH"}
    models = {r["model"] for r in saved["table"]}
    assert models == {"regime_net", "ewma", "har"}
    # origins 2023-08-31 .. 2023-12-29 (targets within the test period), two refits
    assert all(r["n"] == 121 for r in saved["table"])
    for rec in saved["assets"].values():
        assert rec["qlike"] > 0 and np.isfinite(rec["qlike"]) and 0 <= rec["exceed_99"] <= 1
        assert rec["best_baseline"] in ("ewma", "har")
    assert {(d["baseline"], d["loss"]) for d in saved["dm"]} == {("ewma", "qlike"), ("har", "qlike"),
                                                                  ("ewma", "mse"), ("har", "mse")}
    report = (out / "report.md").read_text()
    assert "| regime_net | BTC | 121 |" in report
    assert (out / "forecast_regime_net_h2.png").stat().st_size > 10_000


def test_aggregator_collects_runs(run, tmp_path):
    _, _, out = run
    agg = aggregate_forecasts.main([str(out.parent), "--out", str(tmp_path)])
    assert set(agg.model) == {"regime_net", "ewma", "har"} and len(agg) == 6
    assert (tmp_path / "forecasts.md").read_text().startswith("# Volatility forecasts")
    assert (tmp_path / "forecasts.csv").exists()
