"""End-to-end: the main job composed from the real config, shrunk to a short slice, run through Hydra's compose()."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from experiments import run as main_job

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=[
            "train_end=2020-12-31", "start=2020-10-01", "eval_start=2021-01-01", "end=2021-06-30",
            "+models.regime_net.max_epochs=3", "~models.garch", "data.use_hourly=false", "data.use_funding=false",
            "book=tiny", "book.n_accounts=100", "policy=reactive", "compare=[predictive]",
            "oracle_study.enabled=false", "plot=true", "solvency.n_accounts=6", "solvency.executor=local",
        ])
    return main_job.run(cfg, out), out


def test_writes_metrics_report_and_plot(short_run):
    metrics, out = short_run
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics, default=float))
    assert (out / "report.md").read_text().count("| reactive |") == 2
    assert (out / "margin_paths.png").stat().st_size > 10_000


def test_metrics_have_the_promised_fields(short_run):
    metrics, _ = short_run
    for policy in ("reactive", "predictive"):
        for asset in ("BTC", "ETH"):
            m = metrics[policy][asset]
            assert {"breach_rate", "kupiec_pvalue", "avg_margin_pct", "max_30d_increase_pct"} <= m.keys()
            assert m["days"] == 181  # 2021-01-01 .. 2021-06-30
            assert 0 <= m["breach_rate"] <= 1 and 0 <= m["kupiec_pvalue"] <= 1
            assert 0 < m["avg_margin_pct"] < 100
    proof = metrics["proof"]
    assert proof["verified"] is True and proof["bytes"] > 0 and proof["prove_ms"] > 0 and proof["verify_ms"] > 0
    assert metrics["book_proof"]["verified"] is True


def test_exchange_wide_solvency_proved_and_verified(short_run):
    """The main job ends with an exchange-wide solvency proof whose public bundle verifies again from its file."""
    from zkproofs.solvency import verify_solvency_file

    metrics, out = short_run
    sol = metrics["solvency"]
    assert sol["verified"] is True and sol["accounts"] == 6
    assert not any(k.endswith("_PRIVATE") for k in sol)  # total equity and deficits stay private
    assert verify_solvency_file(sol["public"])


def test_backtest_report_and_public_bundle_written(short_run):
    import zkproofs

    _, out = short_run
    assert "reactive" in (out / "backtest" / "report.md").read_text()
    bundle = json.loads((out / "proof" / "bundle.json").read_text())
    assert zkproofs.verify_bundle(bundle, expected_statement=(out / "proof" / "statement.json").read_bytes())
    openings = json.loads((out / "proof" / "openings.PRIVATE.json").read_text())
    public_text = json.dumps(bundle)
    assert openings["blindings"] and not any(b in public_text for b in openings["blindings"])


def test_breaches_agree_with_a_direct_recount(short_run):
    """Recount the reactive BTC breaches from prices and the EWMA recursion, without the margin kernel."""
    from scipy import stats

    from predictive import load_ohlcv

    metrics, _ = short_run
    close = load_ohlcv("BTC", start="2018-01-01")["close"]
    r = np.log(close).diff().dropna()
    var = r.iloc[:30].pow(2).mean()  # start-up value; decays out long before 2021
    sigma = {}
    for t, x in r.items():
        var = 0.94 * var + 0.06 * x * x  # variance known at the close of t, for t + 1
        sigma[t] = np.sqrt(var)
    z = stats.norm.ppf(0.99)
    breaches = 0
    days = close.loc["2021-01-01":"2021-06-30"].index
    for t in days:
        nxt = close.index[close.index.get_loc(t) + 1]
        move = close[nxt] / close[t] - 1.0
        im = z * sigma[t]
        breaches += int(-move > im) + int(move > im)
    assert metrics["reactive"]["BTC"]["breaches"] == breaches


def test_backtest_exceptions_are_quoted_not_recomputed(short_run):
    """Same policy, asset and side: the main report's exception count is the venue backtest's own."""
    metrics, out = short_run
    venue = json.loads((out / "backtest" / "metrics.json").read_text())
    quoted = metrics["backtest"]["exceptions"]
    report = (out / "report.md").read_text()
    checked = 0
    for kind, per_policy in quoted.items():
        for name, q in per_policy.items():
            assert venue["policies"][name]["kind"] == kind
            for asset, sides in q["coverage"].items():
                for side, c in sides.items():
                    own = venue["policies"][name]["coverage"][f"{asset}_{side}"]
                    assert c["exceptions"] == own["exceptions"] and c["n"] == own["n"]
                    assert f"| {name} ({q['model']}) | {asset} | {side} | {own['n']} | {own['exceptions']} |" in report
                    checked += 1
    assert checked == 8  # reactive_ewma and predictive x BTC, ETH x long, short
    assert "breach" in report and "exceptions" in report and "different measure" in report


@pytest.fixture(scope="module")
def five_day_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run_h5")
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=[
            "horizon=5", "train_end=2020-12-31", "start=2020-10-01", "eval_start=2021-01-01", "end=2021-03-31",
            "+models.regime_net.max_epochs=2", "~models.garch", "data.use_hourly=false", "data.use_funding=false",
            "backtest_enabled=false", "proof.enabled=false", "solvency.enabled=false", "plot=false",
        ])
    return main_job.run(cfg, out), out


def test_five_day_horizon_end_to_end(five_day_run):
    """h = 5: RegimeNet is trained for 5-day heads, and the walk-forward counts 5-CALENDAR-day losses.

    The reactive BTC breaches are recounted from prices and the EWMA recursion (5-day variance = 5 x daily)."""
    from scipy import stats

    from predictive import load_ohlcv

    metrics, out = five_day_run
    assert metrics["config"]["horizon"] == 5
    close = load_ohlcv("BTC", start="2018-01-01")["close"]
    r = np.log(close).diff().dropna()
    var = r.iloc[:30].pow(2).mean()
    sigma = {}
    for t, x in r.items():
        var = 0.94 * var + 0.06 * x * x
        sigma[t] = np.sqrt(5 * var)
    z = stats.norm.ppf(0.99)
    breaches = 0
    days = close.loc["2021-01-01":"2021-03-31"].index
    for t in days:
        move = close[t + pd.Timedelta(days=5)] / close[t] - 1.0
        im = z * sigma[t]
        breaches += int(-move > im) + int(move > im)
    assert metrics["reactive"]["BTC"]["breaches"] == breaches
    assert metrics["predictive"]["BTC"]["days"] == len(days)
    # both IMs are 5-day margins: a 1-day learned IM would be about 1/sqrt(5) = 0.45 x the reactive one
    ratio = metrics["predictive"]["BTC"]["avg_margin_pct"] / metrics["reactive"]["BTC"]["avg_margin_pct"]
    assert 0.6 < ratio < 2.0
