"""One line per user error, exit 2, config checked before any work, no run directory left behind."""
import sys
import time

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from experiments import _cli
from experiments import run as main_job
from experiments.schema import ConfigError
from predictive.data import embedded_path


def run_app(app, monkeypatch, capsys, *overrides):
    """Run a Hydra app in-process with ``overrides``; returns (exit status, stderr, seconds)."""
    monkeypatch.setattr(sys, "argv", ["app", *overrides])
    started = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        app()
    return exit_info.value.code, capsys.readouterr().err, time.perf_counter() - started


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def daily_only_asset(tmp_path_factory):
    """A SOL-like asset with a short history: BTC's daily bars from 2020-06-01, prices scaled by 1/1000."""
    raw = pd.read_csv(embedded_path("BTC"))
    raw = raw[raw["date"] >= "2020-06-01"].copy()
    for col in ("open", "high", "low", "close"):
        raw[col] = raw[col] / 1000.0
    path = tmp_path_factory.mktemp("sol") / "sol_1d.csv"
    raw.to_csv(path, index=False)
    return path


def bad_files(tmp_path):
    png = tmp_path / "chart.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    gap = tmp_path / "gap.csv"
    raw = pd.read_csv(embedded_path("BTC"))
    raw.drop(index=raw.index[(raw["date"] >= "2020-06-01") & (raw["date"] <= "2020-06-10")]).to_csv(gap, index=False)
    return {"png": png, "gap": gap}


@pytest.mark.parametrize("overrides, words", [
    (["horizon=abc"], ["horizon", "integer", "'abc'"]),
    (["horizon=-1"], ["horizon", ">= 1"]),
    (["refit_every=0"], ["refit_every", ">= 1", "got 0"]),
    (["refit_every=yearly"], ["refit_every", "'yearly'"]),
    (["coverage=1.5"], ["coverage", "< 1"]),
    (["book.n_accounts=0"], ["book.n_accounts", ">= 1"]),
    (["horizn=5"], ["horizn"]),
    (["train_end=2022-01-01"], ["train_end", "eval_start"]),
    (["eval_start=2019-01-01", "train_end=2018-12-31", "start=2019-06-01"], ["start", "eval_start"]),
    (["assets=[SOL]"], ["data.daily.SOL"]),
    (["~models.garch"], ["compare", "reactive_garch", "'garch'"]),
    (["assets=[SOL]", "data.daily.SOL=/no/such/sol.csv"], ["data.daily.SOL", "/no/such/sol.csv", "does not exist"]),
    (["data.daily.BTC=/no/such/btc.csv"], ["data.daily.BTC", "does not exist"]),
    (["assets=[SOL]", "data.daily.SOL={sol}"], ["hourly", "data.use_hourly=false"]),
    (["assets=[SOL]", "data.daily.SOL={sol}", "data.use_hourly=false"], ["funding", "data.use_funding=false"]),
    (["assets=[SOL]", "data.daily.SOL={sol}", "data.use_hourly=false", "data.use_funding=false"],
     ["train_end=2020-12-31 leaves SOL 214 daily rows", "'regime_net' needs at least", "move train_end"]),
    (["data.daily.BTC={png}"], ["chart.csv", "UTF-8"]),
    (["data.daily.BTC={gap}"], ["gap.csv", "10 missing day(s) between 2020-05-31 and 2020-06-11",
                                "data.max_gap_days=10"]),
])
def test_main_job_refuses_bad_input_in_one_line(in_tmp, monkeypatch, capsys, daily_only_asset, overrides, words):
    files = {"sol": daily_only_asset, **bad_files(in_tmp)}
    status, err, seconds = run_app(main_job.main, monkeypatch, capsys, *[o.format(**files) for o in overrides])
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    for word in words:
        assert word in lines[0]
    assert seconds < 5.0  # refused before any training
    assert not (in_tmp / "outputs").exists()  # the failed run leaves no directory


def test_gaps_up_to_max_gap_days_pass_the_check(in_tmp, monkeypatch, capsys):
    gap = bad_files(in_tmp)["gap"]
    # with the gap accepted the check passes and the job fails later on purpose (an unknown walk-forward model)
    status, err, _ = run_app(main_job.main, monkeypatch, capsys, f"data.daily.BTC={gap}", "data.max_gap_days=10",
                             "walk_forward.predictive_model=nope")
    assert status == 2 and "missing day" not in err and "walk_forward.predictive_model" in err


def test_full_error_env_shows_the_traceback(in_tmp, monkeypatch, capsys):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(sys, "argv", ["run", "coverage=1.5"])
    with pytest.raises(ConfigError, match="coverage"):
        main_job.main()


def test_an_earlier_output_is_not_overwritten(in_tmp, monkeypatch, capsys):
    earlier = in_tmp / "fixed"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")
    status, err, _ = run_app(main_job.main, monkeypatch, capsys, f"hydra.run.dir={earlier}", "horizon=abc")
    assert status == 2 and "overwrite=true" in err
    assert (earlier / "metrics.json").read_text() == "{}"
    # with overwrite=true the directory is accepted and the next check speaks
    status, err, _ = run_app(main_job.main, monkeypatch, capsys, f"hydra.run.dir={earlier}", "horizon=abc",
                             "overwrite=true")
    assert status == 2 and "horizon" in err and (earlier / "metrics.json").exists()


def test_progress_auto_follows_the_terminal():
    cfg = OmegaConf.create({"progress": "auto"})
    _cli._prepare(cfg, None, None)
    assert cfg.progress is sys.stderr.isatty()
    cfg = OmegaConf.create({"progress": True})
    _cli._prepare(cfg, None, None)
    assert cfg.progress is True


def test_open_keys_need_no_plus():
    argv = ["app", "data.daily.SOL=/x.csv", "+data.hourly.SOL=/y.csv", "data.max_gap_days=2", "horizon=5",
            "overwrite=true"]
    assert _cli._open_keys(argv) == ["app", "++data.daily.SOL=/x.csv", "+data.hourly.SOL=/y.csv",
                                     "++data.max_gap_days=2", "horizon=5", "++overwrite=true"]


def test_run_cli_exit_codes(capsys):
    def missing():
        raise FileNotFoundError("no metrics.json below /nowhere")

    with pytest.raises(SystemExit) as e:
        _cli.run_cli(missing)
    assert e.value.code == 2 and capsys.readouterr().err == "error: no metrics.json below /nowhere\n"
    with pytest.raises(SystemExit) as e:
        _cli.run_cli(lambda: 1)
    assert e.value.code == 1

    def bug():
        raise KeyError("a bug keeps its traceback")

    with pytest.raises(KeyError):
        _cli.run_cli(bug)


def test_forecast_and_backtest_apps_check_their_configs(in_tmp, monkeypatch, capsys):
    from experiments import backtest, forecast

    status, err, _ = run_app(forecast.main, monkeypatch, capsys, "test_start=2020-01-01")
    assert status == 2 and "train_end" in err and "test_start" in err
    status, err, _ = run_app(backtest.main, monkeypatch, capsys, "coverage=0.3")
    assert status == 2 and "coverage" in err and "> 0.5" in err
    assert not (in_tmp / "outputs").exists()


def test_tune_policy_refuses_a_bad_refit_every(in_tmp, monkeypatch, capsys):
    from experiments import tune_policy

    status, err, _ = run_app(tune_policy.main, monkeypatch, capsys, "refit_every=-30")
    assert status == 2 and err.count("\n") == 1 and "refit_every" in err and "-30" in err


def test_a_bad_combination_model_is_one_line(in_tmp, monkeypatch, capsys):
    """A forecast combination with one member is the user's mistake: one line naming it, exit 2."""
    from experiments import backtest

    status, err, _ = run_app(backtest.main, monkeypatch, capsys, "policy=predictive_smooth",
                             "+models.combo_k.members=[garch]", "compare=[]",
                             "train_end=2020-12-31", "start=2020-10-01", "eval_start=2021-01-01", "end=2021-02-28",
                             "data.use_hourly=false", "data.use_funding=false", "book=tiny", "book.n_accounts=20",
                             "oracle_study.enabled=false", "plot=false")
    assert status == 2 and err.count("\n") == 1 and "members needs at least 2 models" in err


def test_min_training_rows_matches_regime_net_refusal():
    """The pre-check's RegimeNet minimum is at least the model's own min_history."""
    from predictive.regime_net import RegimeNet
    from experiments.schema import min_training_rows

    for h in (1, 5):
        need, _ = min_training_rows({"name": "regime_net", "lookback": 30, "batch_size": 256, "val_frac": 0.15}, h, 2)
        assert need >= RegimeNet(horizon=h, lookback=30).min_history
    assert np.isfinite(need)


def test_aggregators_skip_a_broken_metrics_file(tmp_path, capsys):
    from experiments.data import iter_run_metrics

    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "metrics.json").write_text('{"policies": {}, "targets": 1}')
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "metrics.json").write_text('{"policies": {')  # a job that died while writing
    assert [p.parent.name for p, _ in iter_run_metrics(tmp_path, ("policies",))] == ["0"]
    with pytest.raises(SystemExit) as e:
        _cli.run_cli(lambda: list(iter_run_metrics(tmp_path, ("table",))))
    assert e.value.code == 2 and "no metrics.json with keys ['table']" in capsys.readouterr().err


def test_load_features_reads_the_config_and_warns_once_per_missing_file(tmp_path, caplog):
    """experiments.data.load_features is the library loader on the app's settings: ConfigError naming the key for
    a missing file, one warning per missing file kind of an embedded daily-only asset, data.max_gap_days."""
    import logging

    from experiments.data import load_features
    from predictive.data import DataValidationError

    def cfg(assets, **data):
        return OmegaConf.create({"assets": assets, "data": {"use_hourly": True, "use_funding": True, **data}})

    with pytest.raises(ConfigError, match="data.daily.SOL"):
        load_features(cfg(["SOL"]))
    with caplog.at_level(logging.WARNING):
        feats = load_features(cfg(["BNB"]), with_prices=True)
    assert [r.getMessage().split(";")[0] for r in caplog.records if r.levelno >= logging.WARNING] == [
        "BNB: no hourly file", "BNB: no funding file"]
    assert "_close" in feats["BNB"]
    gap = bad_files(tmp_path)["gap"]
    with pytest.raises(DataValidationError, match="data.max_gap_days=10"):
        load_features(cfg(["BTC"], daily={"BTC": str(gap)}, use_hourly=False))
