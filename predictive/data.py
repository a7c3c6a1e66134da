"""Loading and validating daily OHLCV price files.

The embedded default data set is BTC-USD and ETH-USD daily OHLCV to 2023-12-31 (see ``predictive/data/``;
provenance in the repository's data notes). Users point ``data.path=...`` at their own CSV or Parquet file with
columns ``date,open,high,low,close,volume``.

Every check reports precisely what is wrong and where: file, line (1-based, counting the header as line 1 in a
CSV; the row number in a Parquet file), column and value. Nothing is silently dropped or repaired.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "OHLCV_COLUMNS",
    "PRICE_COLUMNS",
    "EMBEDDED_ASSETS",
    "DataValidationError",
    "check_daily_gaps",
    "embedded_path",
    "load_ohlcv",
    "load_validated",
    "resolve_path",
    "validate_ohlcv",
]

OHLCV_COLUMNS = ("date", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
EMBEDDED_ASSETS = ("BTC", "ETH", "BNB")  # BNB: daily bars only (no hourly or funding file embedded)


class DataValidationError(ValueError):
    """A price file is malformed. ``file``, ``line``, ``column`` and ``value`` say where (``None`` if not applicable)."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: str | None = None, value: object = None):
        where = []
        if file is not None:
            where.append(str(file))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.file, self.line, self.column, self.value = file, line, column, value


@dataclass(frozen=True)
class _Source:
    """Where rows came from, so that errors can name the line a user sees in their editor."""

    name: str
    first_data_line: int  # line number of the first data row (2 for a CSV with one header row, 1 for Parquet rows)


def embedded_path(asset: str, frequency: str = "1d") -> Path:
    """Path of an embedded data file, e.g. ``embedded_path("BTC")`` -> ``.../predictive/data/BTC_1d.csv``.

    Raises:
        ValueError: unknown asset or frequency.
    """
    asset = asset.upper()
    if asset not in EMBEDDED_ASSETS:
        raise ValueError(f"unknown embedded asset {asset!r}; embedded assets are {EMBEDDED_ASSETS}")
    names = {"1d": f"{asset}_1d.csv", "1h": f"{asset}_1h.csv.gz", "funding_8h": f"{asset}_funding_8h.csv.gz"}
    if frequency not in names:
        raise ValueError(f"unknown frequency {frequency!r}; expected one of {sorted(names)}")
    return Path(str(resources.files("predictive") / "data" / names[frequency]))


def _read_raw(path: Path) -> tuple[pd.DataFrame, _Source]:
    """Read a CSV / CSV.gz / Parquet file as raw text cells; any read failure becomes a DataValidationError."""
    if not path.exists():
        raise DataValidationError("file does not exist", file=str(path))
    if path.is_dir():
        raise DataValidationError("is a directory, not a data file", file=str(path))
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith(".parquet") or suffixes.endswith(".pq"):
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types (ArrowInvalid, OSError...) for bad files
            raise DataValidationError(f"not a readable Parquet file ({type(exc).__name__}: {exc})",
                                      file=str(path)) from exc
        if "date" not in frame.columns and frame.index.name == "date":
            frame = frame.reset_index()
        frame = frame.astype({c: object for c in frame.columns if c == "date"})
        return frame, _Source(str(path), 1)
    if ".csv" in suffixes:
        # Read everything as text so that unparsable cells are reported with their raw value.
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8")
        except pd.errors.ParserError as exc:
            raise DataValidationError(f"not a well-formed CSV: {exc}", file=str(path)) from exc
        except pd.errors.EmptyDataError as exc:
            raise DataValidationError("file is empty", file=str(path)) from exc
        except UnicodeDecodeError as exc:
            raise DataValidationError(f"not a UTF-8 text file (byte {exc.object[exc.start:exc.start + 1]!r} at "
                                      f"offset {exc.start}); is it a binary file renamed .csv?",
                                      file=str(path)) from exc
        except (OSError, EOFError) as exc:  # unreadable: permissions, a corrupt .gz
            raise DataValidationError(f"cannot read the file ({type(exc).__name__}: {exc})", file=str(path)) from exc
        # Blank lines at the end of a file are harmless; blank lines inside it are reported as bad rows.
        blank = frame.apply(lambda col: col.isna() | (col.astype(str).str.strip() == "")).all(axis=1).to_numpy()
        trailing = len(blank) - (np.flatnonzero(~blank)[-1] + 1) if (~blank).any() else len(blank)
        return frame.iloc[:len(frame) - trailing], _Source(str(path), 2)
    raise DataValidationError(f"unsupported file type {path.suffix!r}; use .csv, .csv.gz or .parquet", file=str(path))


def validate_ohlcv(frame: pd.DataFrame, source: str = "<frame>", first_data_line: int = 1) -> pd.DataFrame:
    """Check a raw OHLCV table and return it clean and typed.

    Args:
        frame: table with at least the columns ``date, open, high, low, close, volume`` (extra columns are
            ignored); cells may be strings (as read from CSV) or numbers.
        source: name used in error messages (file path).
        first_data_line: line number of the first row in ``source``, used in error messages.

    Returns:
        DataFrame indexed by a ``DatetimeIndex`` named ``date`` (timezone-naive UTC, strictly increasing) with float64
        columns ``open, high, low, close`` (quote currency, e.g. USD) and ``volume`` (as in the source file).

    Raises:
        DataValidationError: missing columns, empty table, unparsable / duplicate / unsorted dates, unparsable,
            NaN, infinite or non-positive prices, negative or unparsable volume, ``high < low``, or ``open``/``close``
            outside ``[low, high]``. The message names the file, line, column and value.
    """
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"missing required column(s) {missing}; found {list(frame.columns)}", file=source)
    if len(frame) == 0:
        raise DataValidationError("no data rows", file=source)

    def line_of(position: int) -> int:
        return first_data_line + position

    raw_dates = frame["date"]
    dates = pd.to_datetime(raw_dates, errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataValidationError(f"unparsable date {raw_dates.iloc[i]!r}", file=source, line=line_of(i),
                                  column="date", value=raw_dates.iloc[i])
    dates = dates.dt.tz_convert(None)
    values = {}
    for column in (*PRICE_COLUMNS, "volume"):
        raw = frame[column]
        numeric = pd.to_numeric(raw, errors="coerce").astype("float64")
        as_text = raw.astype(str).str.strip().str.lower()
        unparsable = numeric.isna() & ~as_text.isin(["nan", ""])
        if unparsable.any():
            i = int(np.flatnonzero(unparsable.to_numpy())[0])
            raise DataValidationError(f"unparsable number {raw.iloc[i]!r}", file=source, line=line_of(i),
                                      column=column, value=raw.iloc[i])
        arr = numeric.to_numpy()
        if column in PRICE_COLUMNS:
            invalid = ~np.isfinite(arr) | (arr <= 0)
            what = "price must be a finite positive number"
        else:
            invalid = ~np.isfinite(arr) | (arr < 0)
            what = "volume must be a finite non-negative number"
        if invalid.any():
            i = int(np.flatnonzero(invalid)[0])
            raise DataValidationError(f"{what}, got {raw.iloc[i]!r}", file=source, line=line_of(i),
                                      column=column, value=raw.iloc[i])
        values[column] = arr

    high, low = values["high"], values["low"]
    inverted = high < low
    if inverted.any():
        i = int(np.flatnonzero(inverted)[0])
        raise DataValidationError(f"high {high[i]!r} is below low {low[i]!r}", file=source, line=line_of(i),
                                  column="high", value=high[i])
    for column in ("open", "close"):
        outside = (values[column] > high) | (values[column] < low)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise DataValidationError(
                f"{column} {values[column][i]!r} lies outside [low, high] = [{low[i]!r}, {high[i]!r}]",
                file=source, line=line_of(i), column=column, value=values[column][i])

    date_values = dates.to_numpy()
    if len(date_values) > 1:
        step = np.diff(date_values.astype("datetime64[ns]").astype(np.int64))
        duplicate = np.flatnonzero(step == 0)
        if duplicate.size:
            i = int(duplicate[0]) + 1
            raise DataValidationError(f"duplicate date {raw_dates.iloc[i]!r}", file=source, line=line_of(i),
                                      column="date", value=raw_dates.iloc[i])
        backwards = np.flatnonzero(step < 0)
        if backwards.size:
            i = int(backwards[0]) + 1
            raise DataValidationError(
                f"dates not in ascending order: {raw_dates.iloc[i]!r} follows {raw_dates.iloc[i - 1]!r}",
                file=source, line=line_of(i), column="date", value=raw_dates.iloc[i])

    clean = pd.DataFrame(values, index=pd.DatetimeIndex(date_values, name="date"))
    return clean[[*PRICE_COLUMNS, "volume"]]


def load_ohlcv(path_or_asset: str | Path, *, start: str | None = None, end: str | None = None,
               max_gap_days: int | None = None) -> pd.DataFrame:
    """Load and validate a daily OHLCV file.

    Args:
        path_or_asset: ``"BTC"`` or ``"ETH"`` for the embedded data set, or a path to a ``.csv``, ``.csv.gz`` or
            ``.parquet`` file with columns ``date,open,high,low,close,volume``.
        start, end: optional inclusive date bounds (``"2021-01-01"``), applied after validation.
        max_gap_days: if given, refuse runs of more than this many consecutive missing calendar days (see
            :func:`check_daily_gaps`); ``0`` = one row for every day. ``None`` (default): gaps are not checked.

    Returns:
        DataFrame as described in :func:`validate_ohlcv` (prices in quote currency, e.g. USD).

    Raises:
        DataValidationError: the file is missing, unreadable or malformed, or has a gap longer than
            ``max_gap_days`` (the message names file, line, column and value).
        ValueError: an unknown embedded asset name.
    """
    path = resolve_path(path_or_asset, "1d")
    frame = load_validated(path, validate_ohlcv)
    if max_gap_days is not None:
        check_daily_gaps(frame.index, max_gap_days, source=str(path))
    if start is not None or end is not None:
        frame = frame.loc[start:end]
        if frame.empty:
            raise DataValidationError(f"no rows between start={start} and end={end}", file=str(path))
    return frame


def check_daily_gaps(dates: pd.DatetimeIndex, max_gap_days: int = 0, *, source: str = "<frame>",
                     first_data_line: int = 2) -> None:
    """Refuse missing days in a daily series: a run of more than ``max_gap_days`` consecutive missing calendar days.

    Crypto trades every day, so a missing day is a data fault; silently accepted, the move across the gap would
    be counted as a one-day move.

    Args:
        dates: strictly increasing daily dates (UTC-naive).
        max_gap_days: longest accepted run of missing days (0: none accepted).
        source, first_data_line: for the error message (the line of the row after the gap; CSV numbering).

    Raises:
        DataValidationError: names the first too-long gap (last date before it, first date after it, its length
            in missing days), how many such gaps there are, and the setting ``max_gap_days`` that accepts them.
    """
    if len(dates) < 2:
        return
    days = np.diff(dates.normalize().as_unit("ns").asi8) // 86_400_000_000_000
    missing = days - 1
    too_long = np.flatnonzero(missing > max_gap_days)
    if too_long.size:
        i = int(too_long[0])
        raise DataValidationError(
            f"{int(missing[i])} missing day(s) between {dates[i].date()} and {dates[i + 1].date()} (first of "
            f"{too_long.size} gap(s) longer than max_gap_days={max_gap_days}; data.max_gap_days="
            f"{int(missing[too_long].max())} accepts them)",
            file=source, line=first_data_line + i + 1, column="date", value=str(dates[i + 1].date()))


def resolve_path(path_or_asset: str | Path, frequency: str = "1d") -> Path:
    """An embedded asset name (``"BTC"``, ``"ETH"``, unless a file of that name exists) -> its embedded file of
    ``frequency`` (see :func:`embedded_path`); anything else -> that path, ``~`` expanded."""
    text = str(path_or_asset)
    if text.upper() in EMBEDDED_ASSETS and not Path(text).exists():
        return embedded_path(text, frequency)
    return Path(text).expanduser()


def load_validated(path: Path, validate, *, start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Read ``path`` (CSV, CSV.gz or Parquet), check it with ``validate(raw, source, first_data_line)`` and
    apply optional inclusive date bounds.

    Raises:
        DataValidationError: the file is missing or malformed, or no rows lie between ``start`` and ``end``.
    """
    raw, source = _read_raw(path)
    frame = validate(raw, source.name, source.first_data_line)
    if start is not None or end is not None:
        frame = frame.loc[start:end]
        if frame.empty:
            raise DataValidationError(f"no rows between start={start} and end={end}", file=str(path))
    return frame
