"""The daily OHLCV loader: the embedded data set loads, and each kind of bad row is reported precisely."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictive.data import DataValidationError, embedded_path, load_ohlcv

HEADER = "date,open,high,low,close,volume\n"
GOOD_ROWS = [
    "2021-01-01,100,110,90,105,1000",
    "2021-01-02,105,112,101,110,1200",
    "2021-01-03,110,115,100,102,900",
]


def write_csv(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text(header + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("asset, rows, first, last", [("BTC", 3657, "2013-12-27", "2023-12-31"),
                                                       ("ETH", 3068, "2015-08-08", "2023-12-31")])
def test_embedded_data_loads(asset, rows, first, last):
    frame = load_ohlcv(asset)
    assert len(frame) == rows
    assert frame.index[0] == pd.Timestamp(first) and frame.index[-1] == pd.Timestamp(last)
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert (frame[["open", "high", "low", "close"]] > 0).all().all()
    assert frame.dtypes.eq(np.float64).all()


def test_embedded_values_match_source_file():
    raw = pd.read_csv(embedded_path("BTC"))
    frame = load_ohlcv("BTC")
    np.testing.assert_array_equal(frame["close"].to_numpy(), raw["close"].to_numpy())


def test_good_csv_and_parquet_agree(tmp_path):
    csv = load_ohlcv(write_csv(tmp_path, GOOD_ROWS))
    parquet_path = tmp_path / "prices.parquet"
    csv.reset_index().to_parquet(parquet_path)
    pd.testing.assert_frame_equal(csv, load_ohlcv(parquet_path))
    assert csv["close"].tolist() == [105.0, 110.0, 102.0]


def test_date_bounds(tmp_path):
    frame = load_ohlcv(write_csv(tmp_path, GOOD_ROWS), start="2021-01-02")
    assert len(frame) == 2


@pytest.mark.parametrize("bad_row, line, column, words", [
    ("2021-01-04,102,108,99,,800", 5, "close", "finite positive"),
    ("2021-01-04,102,108,99,nan,800", 5, "close", "finite positive"),
    ("2021-01-04,102,108,-5,104,800", 5, "low", "finite positive"),
    ("2021-01-04,0,108,99,104,800", 5, "open", "finite positive"),
    ("2021-01-04,102,108,99,abc,800", 5, "close", "unparsable number 'abc'"),
    ("2021-01-04,102,90,99,95,800", 5, "high", "below low"),
    ("2021-01-04,102,108,99,120,800", 5, "close", "outside [low, high]"),
    ("not-a-date,102,108,99,104,800", 5, "date", "unparsable date 'not-a-date'"),
    ("2021-01-03,102,108,99,104,800", 5, "date", "duplicate date"),
    ("2020-12-31,102,108,99,104,800", 5, "date", "ascending"),
    ("2021-01-04,102,108,99,104,-1", 5, "volume", "non-negative"),
])
def test_bad_rows_are_reported_with_file_line_column(tmp_path, bad_row, line, column, words):
    path = write_csv(tmp_path, GOOD_ROWS + [bad_row])
    with pytest.raises(DataValidationError) as info:
        load_ohlcv(path)
    message = str(info.value)
    assert str(path) in message and f"line {line}" in message and f"column {column!r}" in message
    assert words in message
    assert info.value.line == line and info.value.column == column


def test_missing_column_is_named(tmp_path):
    path = write_csv(tmp_path, ["2021-01-01,100,110,90,1000"], header="date,open,high,low,volume\n")
    with pytest.raises(DataValidationError, match=r"missing required column\(s\) \['close'\]"):
        load_ohlcv(path)


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(DataValidationError, match="does not exist"):
        load_ohlcv(tmp_path / "nope.csv")
    other = tmp_path / "prices.xlsx"
    other.write_text("x")
    with pytest.raises(DataValidationError, match="unsupported file type"):
        load_ohlcv(other)


def test_blank_line_inside_is_reported_trailing_ones_ignored(tmp_path):
    path = write_csv(tmp_path, GOOD_ROWS[:1] + [""] + GOOD_ROWS[1:])
    with pytest.raises(DataValidationError, match="line 3, column 'date'"):
        load_ohlcv(path)
    assert len(load_ohlcv(write_csv(tmp_path, GOOD_ROWS + ["", ""]))) == 3


def test_empty_file(tmp_path):
    path = write_csv(tmp_path, [])
    with pytest.raises(DataValidationError, match="no data rows"):
        load_ohlcv(path)


def test_parquet_rows_are_numbered(tmp_path):
    frame = pd.DataFrame({"date": ["2021-01-01", "2021-01-02"], "open": [1.0, 2.0], "high": [2.0, 3.0],
                          "low": [0.5, float("nan")], "close": [1.5, 2.5], "volume": [1.0, 1.0]})
    path = tmp_path / "p.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataValidationError, match="line 2, column 'low'"):
        load_ohlcv(path)


def test_binary_file_renamed_csv_names_the_file(tmp_path):
    png = tmp_path / "chart.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(DataValidationError, match="chart.csv.*not a UTF-8 text file") as info:
        load_ohlcv(png)
    assert info.value.file == str(png)


def test_corrupt_gzip_and_parquet_name_the_file(tmp_path):
    gz = tmp_path / "prices.csv.gz"
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(DataValidationError, match="prices.csv.gz: cannot read"):
        load_ohlcv(gz)
    pq = tmp_path / "prices.parquet"
    pq.write_text("date,open\n")
    with pytest.raises(DataValidationError, match="prices.parquet: not a readable Parquet file"):
        load_ohlcv(pq)


def daily_rows(dates) -> list[str]:
    return [f"{d.date()},100,110,90,105,1000" for d in dates]


def test_missing_days_are_refused_with_the_first_gap(tmp_path):
    days = pd.date_range("2021-01-01", "2021-01-31")
    kept = days.delete(list(range(9, 19)))  # 2021-01-10 .. 2021-01-19 missing: 10 days
    kept = kept.delete([kept.get_loc(pd.Timestamp("2021-01-25"))])  # a second, shorter gap
    path = write_csv(tmp_path, daily_rows(kept))
    with pytest.raises(DataValidationError) as info:
        load_ohlcv(path, max_gap_days=0)
    message = str(info.value)
    assert "10 missing day(s) between 2021-01-09 and 2021-01-20" in message
    assert "first of 2 gap(s)" in message and "data.max_gap_days=10" in message
    assert info.value.line == 11  # header + 9 rows, then the row after the gap
    with pytest.raises(DataValidationError, match="between 2021-01-09 and 2021-01-20"):
        load_ohlcv(path, max_gap_days=9)
    assert len(load_ohlcv(path, max_gap_days=10)) == len(kept)
    assert len(load_ohlcv(path)) == len(kept)  # the library default does not check gaps
