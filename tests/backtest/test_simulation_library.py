"""margin.simulation: the README snippet, per-side margin, calendar h-day losses, hourly steps, adaptive reports."""
from __future__ import annotations

import re
import types

import numpy as np
import pandas as pd
import pytest

import margin.simulation as ms
from margin.simulation.book import Book, OptionGrid
from margin.simulation.liquidation import SPAN_GRID, make_oracle, prepare_market, simulate
from margin.simulation import (BacktestInputError, daily_ledger, forecast_variability, h_day_losses,
                               hourly_schedule, render_report, run_venue_backtest)


def _snippet() -> str:
    doc = ms.__doc__
    block = doc[doc.index("Example::") + len("Example::"):]
    lines = [ln[4:] if ln.startswith("    ") else ln for ln in block.strip("\n").splitlines()]
    return "\n".join(lines).strip() + "\n"


def test_readme_snippet_runs(tmp_path, monkeypatch):
    """The snippet in margin.simulation's docstring (the README's "venue backtest from Python") runs as written."""
    code = _snippet()
    assert len([ln for ln in code.splitlines() if ln.strip()]) < 10
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, "<README snippet>", "exec"), ns)
    m = ns["result"].metrics
    assert m["config"]["book_start"] == "2021-01-01" and m["config"]["n_series"] == 4
    assert (tmp_path / "outputs" / "notebook_backtest" / "report.md").exists()


def _perp_book(q_usd) -> Book:
    q = np.atleast_2d(np.asarray(q_usd, float))
    n = q.shape[0]
    return Book(assets=("X",), perp_usd=q, opt_asset=np.full(n, -1), opt_idx=np.zeros((n, 2), int),
                opt_count=np.zeros((n, 2)), leverage=np.full(n, 2.0), reserve=np.zeros(n),
                collateral=np.full(n, np.nan), grid=OptionGrid())


def test_per_side_grid_moves():
    T = 5
    P = np.full((T, 1), 100.0)
    down, up = np.full((T, 1), 0.10), np.full((T, 1), 0.03)
    book = _perp_book([[1000.0], [-1000.0]])
    args = (book, P, make_oracle(P), np.full((T, 1), 1e9), np.full((T, 1), 0.02), np.full((T, 1), 0.5))
    m = prepare_market(*args, np.maximum(down, up), scan_down=down, scan_up=up, dtype=np.float64)
    mult, _, cover = SPAN_GRID.T
    expect = np.where(mult > 0, mult * 0.03, mult * 0.10) * cover
    np.testing.assert_allclose(np.asarray(m.perp_move)[0, 0], expect)
    # IM of a long = its down move, of a short = its up move (worst grid scenario: 1 x scan range)
    from margin.simulation.liquidation import _requirements

    S = len(SPAN_GRID)
    for q, want in ((100 / 100.0, 100 * 0.10), (-100 / 100.0, 100 * 0.03)):
        im, _ = _requirements(np.array([[q]]), np.zeros(1), np.zeros((1, S + 4)), np.zeros((1, 1)),
                              np.asarray(m.oracle)[0], np.asarray(m.perp_move)[0], np.array([0.8]))
        np.testing.assert_allclose(float(im[0]), want, rtol=1e-9)
    sym = prepare_market(*args, np.maximum(down, up), dtype=np.float64)
    np.testing.assert_allclose(np.asarray(sym.perp_move)[0, 0], mult * 0.10 * cover)


class _SidedPolicy:
    """Hand-made policy returning a PolicyOutput-like object with per-side scan ranges."""

    kind = "predictive"

    def __init__(self, down: float, up: float, name: str):
        self.down, self.up, self.name = down, up, name

    def __call__(self, inputs):
        T, A = len(inputs.dates), len(inputs.assets)
        d, u = np.full((T, A), self.down), np.full((T, A), self.up)
        return types.SimpleNamespace(scan_range=np.maximum(d, u), scan_down=d, scan_up=u, base=np.maximum(d, u),
                                     mm_factor=np.full(A, 0.8), name=self.name)


def _prices(n=400, start="2021-01-01", assets=("BTC",), seed=0, gap=None):
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, periods=n, freq="D")
    r = rng.normal(0, 0.03, (n, len(assets)))
    close = pd.DataFrame(100 * np.exp(np.cumsum(r, 0)), index=idx, columns=list(assets))
    if gap is not None:
        close = close.drop(close.index[gap[0]:gap[1]])
    return close


def test_coverage_judges_each_side_against_its_own_move():
    close = _prices(n=350)
    res = run_venue_backtest(close, [_SidedPolicy(0.5, 0.01, "sided")], book=50, stress_windows={},
                             hourly_comparison=False, progress=False)
    m = res.metrics["policies"]["sided"]
    c = close["BTC"].to_numpy()
    ret = c[1:] / c[:-1] - 1
    # plain-loop reference: long exceptions against the down move 0.5, short against the up move 0.01
    long_ref = sum(1 for x in ret if -x > 0.5)
    short_ref = sum(1 for x in ret if x > 0.01)
    assert m["exceptions"]["BTC"] == {"long": long_ref, "short": short_ref}
    assert m["coverage"]["BTC_short"]["exceptions"] == short_ref > 50
    assert m["avg_im_fraction_by_series"] == {"BTC_long": pytest.approx(0.5), "BTC_short": pytest.approx(0.01)}


def test_h_day_losses_by_calendar_date_drop_gaps():
    idx = pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-03", "2021-01-10", "2021-01-11"])
    close = pd.DataFrame({"A": [100.0, 110.0, 99.0, 50.0, 55.0]}, index=idx)
    l1 = h_day_losses(close, 1)
    ref = np.full(5, np.nan)
    for i, d in enumerate(idx):                      # slow, obvious reference
        nxt = d + pd.Timedelta(days=1)
        if nxt in idx:
            ref[i] = 1 - close.loc[nxt, "A"] / close.loc[d, "A"]
    np.testing.assert_allclose(l1["long"][:, 0], ref)
    assert np.isnan(l1["long"][2, 0])               # 01-03 -> 01-04 is missing: dropped, not 01-03 -> 01-10
    np.testing.assert_allclose(l1["short"][:, 0], -ref)
    l2 = h_day_losses(close, 2)
    assert np.isfinite(l2["long"][0, 0]) and np.isnan(l2["long"][1:, 0]).all()
    with pytest.raises(BacktestInputError, match="horizon"):
        h_day_losses(close, 0)
    with pytest.raises(BacktestInputError, match="horizon"):
        h_day_losses(close, 1.5)


def test_h_day_losses_of_a_series_go_by_its_dates():
    days = pd.date_range("2021-01-01", periods=10)
    close = pd.Series(np.exp(np.arange(10.0) * 0.01), index=days).drop(days[5])  # 2021-01-06 missing
    r = pd.Series(np.log1p(h_day_losses(close, 2)["short"][:, 0]), close.index)
    np.testing.assert_allclose(r.loc["2021-01-01"], 0.02)
    # origins whose t + 2 days is the missing date, or past the end, are NaN: never a 3-day move
    assert np.isnan(r.loc["2021-01-04"]) and np.isnan(r.loc["2021-01-09"]) and np.isnan(r.loc["2021-01-10"])
    np.testing.assert_allclose(r.loc["2021-01-05"], 0.02)  # 01-05 -> 01-07 spans the gap by calendar: 2 days
    assert int(r.isna().sum()) == 3
    with pytest.raises(BacktestInputError, match="DatetimeIndex"):
        h_day_losses(close.reset_index(drop=True), 2)


def test_hourly_schedule_and_daily_ledger():
    days = pd.date_range("2021-01-01", periods=3, freq="D")
    hours = pd.date_range("2021-01-01", periods=72, freq="h")
    d = hourly_schedule(hours, days)
    assert (d[:23] == -1).all() and d[23] == 0          # the bar closing at midnight uses that day's margin
    assert (d[24:47] == 0).all() and d[47] == 1
    led = {"bad_debt_step": np.ones(72), "fund": np.arange(72.0)}
    agg = daily_ledger(led, hours, days)
    np.testing.assert_allclose(agg["bad_debt_step"], [24, 24, 24])
    np.testing.assert_allclose(agg["fund"], [23, 47, 71])


def test_hourly_steps_match_daily_when_prices_move_only_at_the_close(monkeypatch):
    """Hourly bars that repeat the previous daily close and jump at the day's last bar: hourly and daily steps see
    the same marks, so liquidations and bad debt agree (the hourly run only adds intraday top-ups). The hourly run
    goes through the block-wise market build."""
    import margin.simulation.backtest as bt

    monkeypatch.setattr(bt, "HOURLY_BLOCK", 245)     # 52 days -> 24 * 52 - 23 = 1,225 hours = 5 equal blocks
    close = _prices(n=52, seed=3)
    close.iloc[30:33] *= np.array([[0.7], [0.6], [0.9]])          # a crash that produces bad debt
    hours = pd.date_range(close.index[0], close.index[-1] + pd.Timedelta(hours=23), freq="h")
    day_close = close["BTC"].reindex(hours.normalize()).to_numpy()
    prev = close["BTC"].shift(1).bfill().reindex(hours.normalize()).to_numpy()
    hourly = pd.DataFrame({"BTC": np.where(hours.hour == 23, day_close, prev)}, index=hours)
    pol = [{"kind": "static", "name": "s", "scan_range": 0.05}]
    kw = dict(book=50, stress_windows={}, hourly_close=hourly, hourly_comparison=False, progress=False,
              dtype="float64")
    daily = run_venue_backtest(close, pol, **kw).metrics["policies"]["s"]["book"]
    hourly_m = run_venue_backtest(close, pol, frequency="hourly", **kw).metrics
    hb = hourly_m["policies"]["s"]["book"]
    assert daily["bad_debt_usd"] > 0
    assert hb["bad_debt_usd"] == pytest.approx(daily["bad_debt_usd"], rel=0.1)
    assert hb["ledger_max_abs_error"] < 1e-3
    w = hourly_m["hourly_vs_daily"]["whole_period"]["s"]
    assert w["daily_bad_debt_usd"] == pytest.approx(daily["bad_debt_usd"])


def test_report_adapts_to_one_asset_and_its_windows():
    close = _prices(n=350, start="2022-01-01", assets=("SOL",), seed=1)      # same shapes as the coverage test
    res = run_venue_backtest(close, [{"kind": "static", "name": "s", "scan_range": 0.2}], book=50,
                             hourly_comparison=False, progress=False, train_end="2021-12-31")
    m = res.metrics
    assert m["config"]["book_start"] == "2022-01-01" and m["config"]["n_series"] == 2
    assert set(m["stress_windows"]["kept"]) == {"2022-05 LUNA", "2022-11 FTX"}
    assert set(m["stress_windows"]["skipped"]) == {"2020-03 covid", "2021-05 crash"}
    text = render_report(m)
    assert "of 2 series" in text and "4 series" not in text and "four" not in text
    assert "book opened 2022-01-01" in text and "2 stress window(s)" in text
    assert re.search(r"Not evaluated .*2020-03 covid", text)


def test_forecast_variability_against_loop():
    rng = np.random.default_rng(0)
    s = np.exp(rng.normal(0, 0.2, (300, 2)))
    s[0, 1] = np.nan
    v = forecast_variability(s, ["A", "B"])
    for j, a in enumerate("AB"):
        d = [abs(np.log(s[t, j] / s[t - 1, j])) for t in range(1, 300) if np.isfinite(s[t, j] * s[t - 1, j])]
        assert v[a]["median"] == pytest.approx(np.median(d)) and v[a]["p99"] == pytest.approx(np.quantile(d, 0.99))


def test_bad_input_is_typed():
    close = _prices(n=50)
    with pytest.raises(BacktestInputError, match="frequency"):
        run_venue_backtest(close, [{"kind": "static", "scan_range": 0.1}], frequency="weekly")
    with pytest.raises(BacktestInputError, match="hourly"):
        run_venue_backtest(close, [{"kind": "static", "scan_range": 0.1}], frequency="hourly")
    with pytest.raises(BacktestInputError, match="eval_start"):
        run_venue_backtest(close, [{"kind": "static", "scan_range": 0.1}], book=10, eval_start="2030-01-01",
                           end="2021-02-01")


@pytest.mark.slow
def test_block_wise_market_equals_one_pass():
    from margin.simulation.book import synthetic_book
    from margin.simulation.liquidation import simulate_blocks

    rng = np.random.default_rng(5)
    T = 28
    P = 100 * np.exp(np.cumsum(rng.normal(0, 0.05, (T, 2)), 0))
    book = synthetic_book(50, ("BTC", "ETH"), seed=1, tenors=(2, 5))
    args = (book, P, make_oracle(P), np.full((T, 2), 1e8), np.full((T, 2), 0.03), np.full((T, 2), 0.6),
            np.full((T, 2), 0.08))
    kw = dict(dtype=np.float64, scan_down=np.full((T, 2), 0.1))
    _, one, _ = simulate(book, prepare_market(*args, **kw), np.array([0.8, 0.8]))
    _, blk, _ = simulate_blocks(book, lambda r: prepare_market(*args, rows=r, **kw), T, np.array([0.8, 0.8]),
                                block=7)
    for f in ("balances", "fund", "bad_debt", "im", "equity", "n_liquidations"):
        np.testing.assert_allclose(np.asarray(getattr(blk, f)), np.asarray(getattr(one, f)), rtol=1e-9, atol=1e-6)


def test_forecasts_on_the_full_index_or_up_to_end_agree():
    from margin.simulation.policies import ForecastArrays

    close = _prices(n=400)
    rng = np.random.default_rng(2)
    sig = 0.03 * np.exp(rng.normal(0, 0.2, (400, 1)))
    fc = ForecastArrays(sig, -2.3 * sig, 2.3 * sig)
    cut = 350                                                   # same simulated shape as the coverage test
    kw = dict(book=50, stress_windows={}, hourly_comparison=False, progress=False, end=close.index[cut - 1])
    pol = [{"kind": "reactive", "name": "r", "model": "m"}]
    a = run_venue_backtest(close, pol, {"m": fc}, **kw).metrics["policies"]["r"]
    b = run_venue_backtest(close, pol, {"m": ForecastArrays(sig[:cut], -2.3 * sig[:cut], 2.3 * sig[:cut])},
                           **kw).metrics["policies"]["r"]
    assert a["exceptions"] == b["exceptions"] and a["avg_im_fraction"] == b["avg_im_fraction"]
    assert a["coverage"]["BTC_long"]["n"] == cut - 1          # the last day's 1-day loss lies beyond `end`
