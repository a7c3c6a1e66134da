"""Hourly / funding loaders and daily realised variance: precise errors on bad files, missing hours flagged and
never treated as calm, values equal to a plain-Python reference."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictive.data import DataValidationError, embedded_path, load_ohlcv
from predictive.intraday import (daily_funding_features, daily_realised_variance, hourly_log_returns,
                                 load_funding, load_hourly, rv_summary)

HEADER = "date,open,high,low,close,volume\n"


@pytest.fixture(scope="module")
def btc():
    return (load_ohlcv("BTC", start="2018-01-01", end="2018-12-31"),
            load_hourly("BTC", start="2018-01-01", end="2018-12-31 23:00"))


def test_embedded_hourly_and_funding_load():
    for asset in ("BTC", "ETH"):
        h = load_hourly(asset)
        assert len(h) == 52462  # SOURCES.md: 52462 bars, 122 hours missing in 27 gaps
        assert h.index[0] == pd.Timestamp("2018-01-01 00:00") and h.index[-1] == pd.Timestamp("2023-12-31 23:00")
        span_hours = (h.index[-1] - h.index[0]) / pd.Timedelta(hours=1) + 1
        assert span_hours - len(h) == 122
        raw = pd.read_csv(embedded_path(asset, "1h"))
        np.testing.assert_array_equal(h["close"].to_numpy(), raw["close"].to_numpy())
    f = load_funding("BTC")
    assert len(f) == 4721 and f["funding_rate"].abs().max() <= 0.003 + 1e-12


def test_real_outage_day_is_flagged(btc):
    """2018-02-08 01:00 .. 2018-02-09 09:00 is missing on Binance: both days fall back to Garman-Klass."""
    daily, hourly = btc
    rv = daily_realised_variance(daily, hourly)
    for day, n in (("2018-02-08", 1), ("2018-02-09", 14)):
        row = rv.loc[day]
        assert row["rv_n_hours"] == n and row["rv_missing_hours"]
        assert row["rv_source"] == "garman_klass_missing_hours"
    summary = rv.attrs["rv_summary"]
    assert ("2018-02-08", 1, "garman_klass_missing_hours") in summary["missing_hours_days"]
    assert summary["by_source"]["hourly"] + summary["by_source"]["hourly_scaled"] + \
        summary["by_source"]["garman_klass_missing_hours"] == len(daily)


def test_deleted_hours_scaled_or_fallback_not_calm(btc):
    daily, hourly = btc
    day = pd.Timestamp("2018-06-12")
    base = daily_realised_variance(daily, hourly)
    assert base.loc[day, "rv_source"] == "hourly"
    # delete 3 hours of the day: 21 bars -> scaled by 24/21; reference by an explicit loop
    drop = [day + pd.Timedelta(hours=k) for k in (5, 6, 13)]
    h3 = hourly.drop(drop)
    rv3 = daily_realised_variance(daily, h3)
    bars = h3.loc[day - pd.Timedelta(hours=1): day + pd.Timedelta(hours=23)]
    ssq, n = 0.0, 0
    for k in range(1, len(bars)):
        prev_ok = bars.index[k] - bars.index[k - 1] == pd.Timedelta(hours=1)
        ref_price = bars["close"].iloc[k - 1] if prev_ok else bars["open"].iloc[k]
        ssq += math.log(bars["close"].iloc[k] / ref_price) ** 2
        n += 1
    assert n == 21
    row = rv3.loc[day]
    assert row["rv_source"] == "hourly_scaled" and row["rv_n_hours"] == 21 and row["rv_missing_hours"]
    assert row["rv"] == pytest.approx(ssq * 24 / 21, rel=1e-12)
    # delete 10 hours: too few -> Garman-Klass of the daily bar, flagged; NOT the (calm-looking) partial sum
    h10 = hourly.drop([day + pd.Timedelta(hours=k) for k in range(2, 12)])
    row = daily_realised_variance(daily, h10).loc[day]
    o, hi, lo, c = (daily.loc[day, k] for k in ("open", "high", "low", "close"))
    gk = 0.5 * math.log(hi / lo) ** 2 - (2 * math.log(2) - 1) * math.log(c / o) ** 2
    assert row["rv_source"] == "garman_klass_missing_hours" and row["rv_n_hours"] == 14 and row["rv_missing_hours"]
    assert row["rv"] == pytest.approx(gk, rel=1e-12)
    partial = (hourly_log_returns(h10).loc[day: day + pd.Timedelta(hours=23)] ** 2).sum()
    assert row["rv"] != pytest.approx(partial)
    # other days untouched
    other = base.index != day
    np.testing.assert_array_equal(base.loc[other, "rv"], daily_realised_variance(daily, h10).loc[other, "rv"])


def test_days_outside_hourly_coverage_use_range(btc):
    daily = load_ohlcv("BTC", start="2017-12-20", end="2018-01-10")
    rv = daily_realised_variance(daily, btc[1])
    assert (rv.loc[:"2017-12-31", "rv_source"] == "garman_klass").all()
    assert not rv.loc[:"2017-12-31", "rv_missing_hours"].any()
    assert (rv.loc["2018-01-01":, "rv_source"].isin(["hourly", "hourly_scaled"])).all()
    s = rv_summary(rv)
    assert s["by_source"]["garman_klass"] == 12 and s["n_days"] == len(daily)


def test_funding_features_against_loop():
    f = load_funding("ETH")
    days = pd.date_range("2019-11-20", "2019-12-10", freq="D")
    feat = daily_funding_features(days, f)
    for d in days:
        rates = [r for t, r in zip(f.index, f["funding_rate"]) if t.normalize() == d]
        row = feat.loc[d]
        assert row["funding_n"] == len(rates)
        if rates:
            assert row["funding_sum"] == pytest.approx(sum(rates), abs=1e-16)
            assert row["funding_mean"] == pytest.approx(sum(rates) / len(rates), abs=1e-16)
            assert row["funding_abs"] == pytest.approx(sum(abs(r) for r in rates), abs=1e-16)
        else:  # before ETH perpetual funding starts (2019-11-27): no information, not zero
            assert math.isnan(row["funding_sum"])


def _write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = ["2021-01-01 00:00:00,100,110,90,105,1", "2021-01-01 01:00:00,105,112,101,110,2",
        "2021-01-01 02:00:00,110,115,100,102,3"]


@pytest.mark.parametrize("row, line, token", [
    ("2021-01-01 01:00:00,105,112,101,nan,2", 3, "'nan'"),
    ("2021-01-01 01:00:00,105,112,-101,110,2", 3, "'-101'"),
    ("2021-01-01 01:00:00,105,112,0,110,2", 3, "'0'"),
    ("2021-01-01 01:30:00,105,112,101,110,2", 3, "01:30"),
    ("2021-01-01 00:00:00,105,112,101,110,2", 3, "duplicate"),
    ("2020-12-31 23:00:00,105,112,101,110,2", 3, "ascending"),
    ("yesterday,105,112,101,110,2", 3, "'yesterday'"),
])
def test_bad_hourly_rows_named(tmp_path, row, line, token):
    path = _write(tmp_path, HEADER + "\n".join([GOOD[0], row, GOOD[2]]) + "\n")
    with pytest.raises(DataValidationError) as err:
        load_hourly(str(path))
    msg = str(err.value)
    assert str(path) in msg and f"line {line}" in msg and token in msg


def test_hourly_parquet_and_missing_column(tmp_path):
    frame = pd.read_csv(_write(tmp_path, HEADER + "\n".join(GOOD) + "\n"))
    pq = tmp_path / "bars.parquet"
    frame.to_parquet(pq)
    loaded = load_hourly(str(pq))
    assert len(loaded) == 3 and loaded["close"].iloc[-1] == 102.0
    fund = load_funding("BTC").iloc[:50].reset_index()
    fund.to_parquet(tmp_path / "funding.parquet")
    pd.testing.assert_frame_equal(load_funding(str(tmp_path / "funding.parquet")), load_funding("BTC").iloc[:50])
    path = _write(tmp_path, "date,open,high,low,volume\n2021-01-01 00:00:00,1,2,1,3\n", "nocl.csv")
    with pytest.raises(DataValidationError, match="close"):
        load_hourly(str(path))


@pytest.mark.parametrize("row, token", [("2021-01-01 08:00:00,abc", "'abc'"), ("2021-01-01 08:00:00,1.5", "'1.5'"),
                                        ("2021-01-01 00:00:00,0.0001", "duplicate")])
def test_bad_funding_rows_named(tmp_path, row, token):
    path = _write(tmp_path, "date,funding_rate\n2021-01-01 00:00:00,0.0001\n" + row + "\n", "funding.csv")
    with pytest.raises(DataValidationError) as err:
        load_funding(str(path))
    msg = str(err.value)
    assert str(path) in msg and "line 3" in msg and token in msg


def test_unreadable_hourly_and_funding_files_name_the_file(tmp_path):
    from predictive.data import DataValidationError
    from predictive.intraday import load_funding, load_hourly

    png = tmp_path / "hours.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(128, 256)))
    for loader in (load_hourly, load_funding):
        with pytest.raises(DataValidationError, match="hours.csv.*not a UTF-8 text file"):
            loader(png)
    with pytest.raises(DataValidationError, match="is a directory"):
        load_hourly(tmp_path)
