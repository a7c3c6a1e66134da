"""End-to-end: run_backtest on a 2022 slice with a tiny book via hydra.compose (< 30 s)."""
import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments.backtest import CONF_DIR, run_backtest


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    # a sweep-like layout of its own: the aggregator scans out.parent, which must hold only this run
    out = tmp_path_factory.mktemp("bt_sweep") / "run0"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="backtest", overrides=[
            "book=tiny", "book.n_accounts=150", "policy=predictive", "policy.model=ewma", "policy.name=pred_ewma",
            "policy.buffer=0.25", "policy.floor=true", "compare=[static,reactive]", "start=2022-01-01", "eval_start=2022-02-01", "end=2022-12-31",
            "train_end=2021-12-31", "data.use_hourly=false", "data.use_funding=false", "dtype=float64",
            "~oracle_study.oracles.twap_3d"])
    return run_backtest(cfg, out), out


def test_outputs(result):
    m, out = result
    assert set(m["policies"]) == {"pred_ewma+floor+buf0.25", "static_deribit", "reactive_ewma"}
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["policies"].keys() == m["policies"].keys()
    report = (out / "report.md").read_text()
    assert report.startswith("# Margin policy backtest") and "How to read this report" in report
    for section in ("## Coverage per side", "## Forecast day-to-day variability", "of 4 series",
                    "book opened 2022-01-01", "2 stress window(s)", "## Daily vs hourly liquidations"):
        assert section in report, section
    assert "2020-03 covid" in report.split("Not evaluated")[1].splitlines()[0]
    for f in ("margin_vs_loss_BTC.png", "margin_vs_loss_ETH.png", "insurance_fund.png", "pareto.png"):
        assert (out / f).stat().st_size > 1000


def test_metrics_consistent(result):
    m, _ = result
    n_eval = 333 - 1        # 2022-02-01 .. 2022-12-31 = 334 days, the last has no next-day loss... h = 1
    for name, r in m["policies"].items():
        for ser, c in r["coverage"].items():
            assert c["n"] in (n_eval, n_eval + 1, n_eval + 2)
            assert c["traffic_light"] and set(c["traffic_light"]) <= {"green", "yellow", "red"}
        assert r["book"]["ledger_max_abs_error"] < 1e-4
        assert set(r["stress"]) == {"2022-05 LUNA", "2022-11 FTX"}
        assert all(w["label"] == "n/a (no fitted parameters)" for w in r["stress"].values())
        for asset in ("BTC", "ETH"):
            for side in ("long", "short"):
                assert r["exceptions"][asset][side] == r["coverage"][f"{asset}_{side}"]["exceptions"]
    assert m["hourly_vs_daily"]["crash_days"] == {}          # data.use_hourly=false: no hourly bars
    assert set(m["forecast_variability"]) == {"ewma"}
    assert m["forecast_variability"]["ewma"]["BTC"]["p99"] > m["forecast_variability"]["ewma"]["BTC"]["median"] > 0
    s = m["policies"]["static_deribit"]
    assert s["avg_im_fraction"] == pytest.approx((0.16 + 0.18) / 2)
    assert s["procyclicality"]["BTC"]["max_increase_30d"] == 0.0
    assert set(m["oracle_study"]) == {"policy", "spot", "lagged_1d"}
    assert m["targets"] and "pred_ewma+floor+buf0.25" in m["targets"]
    # the floored, buffered policy never asks less than the plain EWMA quantile policy (same forecasts)
    pe, re_ = m["policies"]["pred_ewma+floor+buf0.25"], m["policies"]["reactive_ewma"]
    assert pe["avg_im_fraction"] >= re_["avg_im_fraction"] * 0.99


def test_aggregate(result, tmp_path):
    from experiments.aggregate_backtest import collect, main, pareto_front

    m, out = result
    df = collect(out.parent)
    assert set(df["policy"]) == set(m["policies"])
    main([str(out.parent), "--out", str(tmp_path)])
    assert (tmp_path / "pareto.png").stat().st_size > 1000 and (tmp_path / "comparison.md").exists()
    cost = np.array([1.0, 2.0, 3.0, 2.0])
    loss = np.array([3.0, 1.0, 0.5, 2.0])
    assert pareto_front(cost, loss).tolist() == [True, True, True, False]


def test_launcher_configs():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="backtest", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
        assert cfg.hydra.launcher.cpus_per_task == 2 and "SlurmLauncher" in cfg.hydra.launcher._target_
        cfg = compose(config_name="backtest", overrides=["hydra/launcher=joblib_local"], return_hydra_config=True)
        assert cfg.hydra.launcher.n_jobs == 2


@pytest.mark.parametrize("override, match", [("liquidation.frequency=weekly", "liquidation.frequency"),
                                             ("liquidation.crash_days=[notadate]", "liquidation.crash_days")])
def test_bad_liquidation_block_refused_before_any_work(override, match):
    import time

    from margin.simulation.liquidation import LiquidationError

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="backtest", overrides=[override])
    t0 = time.perf_counter()
    with pytest.raises(LiquidationError, match=match):
        run_backtest(cfg)
    assert time.perf_counter() - t0 < 2.0
