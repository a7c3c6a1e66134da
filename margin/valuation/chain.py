"""Deribit option chains (BTC or ETH, any date): loading, implied vols, repricing, Greek checks, instruments.

Deribit conventions (checked against the embedded 2020-05-14 BTC chain, see ``tests/margin/test_chain.py``):
- option prices (mark, bid, ask) are in coin: USD Black-76 price / F, with F the option's synthetic forward
  (``underlying_price``) and zero rate;
- ``mark_iv`` in percent; expiry 08:00 UTC; T = (expiry - snapshot time) / 365 days;
- ``delta`` = Black-76 forward delta N(d1) (no premium adjustment); ``gamma`` per USD of F;
  ``vega`` USD per 1 vol point (Black vega / 100); ``theta`` USD per calendar day (Black theta / 365).
Source: Deribit API ``public/get_book_summary_by_currency`` / ``ticker`` field documentation; Black (1976).
The embedded data is from the schepal/deribit_data_collector sample (see ``/work/shared/data/SOURCES.md``).

A chain file needs the columns :data:`REQUIRED_COLUMNS`; ``mark_iv`` may be absent or empty, and is then backed
out of ``mark_price`` (:func:`margin.valuation.pricing.implied_vol`, float64); ``index_price`` defaults to
``underlying_price``; the published Greeks (``delta``, ``gamma``, ``vega``, ``theta``) are optional and are only
compared (:func:`flag_greeks`), never asserted on.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd

from margin.valuation.instruments import Instruments
from margin.valuation.pricing import black76_greeks, implied_vol
from margin.validation import MarginInputError

__all__ = ["load_deribit_chain", "reprice_chain", "repricing_summary", "chain_instruments", "flag_greeks",
           "synthetic_deribit_chain", "CHAIN_COLUMNS", "REQUIRED_COLUMNS", "GREEK_COLUMNS"]

CHAIN_COLUMNS = (
    "snapshot_time_utc", "underlying", "instrument_name", "expiry_utc", "strike", "option_type",
    "underlying_index", "underlying_price", "index_price", "mark_price", "mark_iv", "bid_price", "ask_price",
    "bid_iv", "ask_iv", "open_interest", "volume_24h", "delta", "gamma", "vega", "theta",
)
REQUIRED_COLUMNS = ("snapshot_time_utc", "underlying", "instrument_name", "expiry_utc", "strike", "option_type",
                    "underlying_price", "mark_price")
GREEK_COLUMNS = ("delta", "gamma", "vega", "theta")
_POSITIVE = ("strike", "underlying_price", "index_price")
_NONNEG = ("mark_price",)


def load_deribit_chain(path: str | Path | None = None, *, on_bad_rows: str = "raise") -> pd.DataFrame:
    """Loads a Deribit option-chain CSV of any currency and date (default: the embedded BTC 2020-05-14 snapshot).

    Adds ``T`` (years to expiry, float64), ``is_call`` (bool), ``line`` (1-based file line, header = 1) and
    ``iv_source`` (``"mark_iv"`` where the file gives one, ``"mark_price"`` where it was backed out of the mark
    price). ``mark_iv`` (percent) is always filled on return.

    Args:
        path: CSV file (default: the embedded chain).
        on_bad_rows: ``"raise"`` (default): the first unusable row raises. ``"skip"``: unusable rows are dropped
            and listed in ``df.attrs["rejected"]`` (a DataFrame with ``line``, ``instrument_name``, ``column``,
            ``value``, ``reason``).

    Raises:
        MarginInputError (ValueError) naming file, line (1-based, header = line 1), column and value for missing
        columns, unparsable times, non-positive strikes / forwards / IVs, negative mark prices, option types
        other than C / P, an expiry at or before the snapshot time, or (where ``mark_iv`` is empty) a mark price
        from which no volatility can be backed out (outside the no-arbitrage bounds).
    """
    if on_bad_rows not in ("raise", "skip"):
        raise MarginInputError("on_bad_rows", "must be 'raise' or 'skip'", None, on_bad_rows)
    if path is None:
        path = resources.files("margin") / "data" / "DERIBIT_BTC_options_2020-05-14.csv"
    name = str(path)
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MarginInputError(f"{name}", f"cannot parse CSV: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise MarginInputError(f"{name}: columns", f"missing {missing}")
    df = df.reset_index(drop=True)
    df["line"] = np.arange(len(df)) + 2
    if "index_price" not in df.columns:
        df["index_price"] = df["underlying_price"]
    if "mark_iv" not in df.columns:
        df["mark_iv"] = np.nan
    rejected: list[dict] = []
    bad_any = np.zeros(len(df), bool)

    def fail(col, mask, msg, values):
        nonlocal bad_any
        mask = mask & ~bad_any
        if not mask.any():
            return
        if on_bad_rows == "raise":
            i = int(np.argmax(mask))
            raise MarginInputError(f"{name}: line {i + 2}, column {col}", msg, None, values[i])
        for i in np.flatnonzero(mask):
            rejected.append({"line": int(i + 2), "instrument_name": df["instrument_name"].iloc[i], "column": col,
                             "value": values[i], "reason": msg})
        bad_any = bad_any | mask

    for col in ("snapshot_time_utc", "expiry_utc"):
        raw = df[col].to_numpy()
        parsed = pd.to_datetime(df[col], errors="coerce")
        fail(col, parsed.isna().to_numpy(), "unparsable timestamp", raw)
        df[col] = parsed
    for col in _POSITIVE + _NONNEG:
        raw = df[col].to_numpy()
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(v) | ((v <= 0) if col in _POSITIVE else (v < 0))
        fail(col, bad, "must be finite and " + ("> 0" if col in _POSITIVE else ">= 0"), raw)
        df[col] = v
    raw_iv = df["mark_iv"].to_numpy()
    iv = pd.to_numeric(df["mark_iv"], errors="coerce").to_numpy(np.float64).copy()
    empty = pd.isna(df["mark_iv"]).to_numpy() | (df["mark_iv"].astype(str).str.strip() == "").to_numpy()
    fail("mark_iv", ~empty & ~(np.isfinite(iv) & (iv > 0)), "must be empty or finite and > 0", raw_iv)
    fail("option_type", ~df["option_type"].isin(["C", "P"]).to_numpy(), "must be C or P",
         df["option_type"].to_numpy())
    t = (df["expiry_utc"] - df["snapshot_time_utc"]).dt.total_seconds().to_numpy() / (365.0 * 86400.0)
    fail("expiry_utc", ~(t > 0), "expiry at or before the snapshot time", df["expiry_utc"].to_numpy())
    df["T"] = t
    df["is_call"] = (df["option_type"] == "C").to_numpy()
    need = empty & ~bad_any
    if need.any():
        f = df["underlying_price"].to_numpy()[need]
        res = implied_vol(df["mark_price"].to_numpy()[need] * f, f, df["strike"].to_numpy()[need],
                          t[need], df["is_call"].to_numpy()[need])
        iv[need] = np.where(np.asarray(res.converged), np.asarray(res.vol) * 100.0, np.nan)
        no_fit = np.zeros(len(df), bool)
        no_fit[np.flatnonzero(need)[~np.asarray(res.converged)]] = True
        fail("mark_price", no_fit, "mark_iv is empty and no volatility reproduces this mark price (outside the "
                                   "no-arbitrage bounds)", df["mark_price"].to_numpy())
    df["mark_iv"] = iv
    df["iv_source"] = np.where(empty, "mark_price", "mark_iv")
    out = df[~bad_any].reset_index(drop=True)
    out.attrs["rejected"] = pd.DataFrame(rejected, columns=["line", "instrument_name", "column", "value", "reason"])
    out.attrs["path"] = name
    return out


def reprice_chain(df: pd.DataFrame, *, dtype=jnp.float64) -> pd.DataFrame:
    """Reprices every option from its mark IV and compares with Deribit's mark price and Greeks.

    Returns:
        A copy of ``df`` with columns ``model_price`` (BTC), ``model_delta``, ``model_gamma`` (per USD),
        ``model_vega`` (USD per vol point), ``model_theta`` (USD per day), the errors ``err_price`` (BTC),
        ``err_delta``, ``err_gamma``, ``err_vega``, ``err_theta`` (model - Deribit), and ``iv_from_mark``
        (percent, implied from the mark price; NaN-free, ``iv_converged`` flags where it fits). Published Greeks
        missing from the file give NaN errors.
    """
    f = df["underlying_price"].to_numpy()
    k = df["strike"].to_numpy()
    t = df["T"].to_numpy()
    v = df["mark_iv"].to_numpy() / 100.0
    c = df["is_call"].to_numpy()
    g = black76_greeks(f, k, t, v, c, dtype=dtype)
    out = df.copy()
    for col in GREEK_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
        out[col] = pd.to_numeric(out[col], errors="coerce")
    out["model_price"] = np.asarray(g.price, np.float64) / f
    out["model_delta"] = np.asarray(g.delta, np.float64)
    out["model_gamma"] = np.asarray(g.gamma, np.float64)
    out["model_vega"] = np.asarray(g.vega, np.float64) / 100.0
    out["model_theta"] = np.asarray(g.theta, np.float64) / 365.0
    for name in ("price", "delta", "gamma", "vega", "theta"):
        ref = "mark_price" if name == "price" else name
        out[f"err_{name}"] = out[f"model_{name}"] - out[ref]
    iv = implied_vol(out["mark_price"].to_numpy() * f, f, k, t, c)
    out["iv_from_mark"] = np.asarray(iv.vol) * 100.0
    out["iv_converged"] = np.asarray(iv.converged)
    return out


DEFAULT_GREEK_THRESHOLDS = {
    # greek: (absolute, relative): flagged where |model - published| > absolute + relative x |published|
    "delta": (1e-4, 0.0),
    "gamma": (6e-6, 1e-2),  # Deribit publishes Greeks to 5 decimals: the absolute floors cover that rounding
    "vega": (1e-2, 1e-2),
    "theta": (1e-2, 1e-2),
}


def flag_greeks(repriced: pd.DataFrame, thresholds: dict | None = None) -> pd.DataFrame:
    """Rows whose published Greeks disagree with the Black-76 model beyond a threshold (a flag, not an error).

    Args:
        repriced: output of :func:`reprice_chain`.
        thresholds: ``{greek: (absolute, relative)}``; a row is flagged for a greek when
            |model - published| > absolute + relative x |published| (defaults :data:`DEFAULT_GREEK_THRESHOLDS`:
            delta 1e-4; gamma 6e-6 per USD + 1%; vega and theta 0.01 USD + 1%). Rows without a published value
            are not flagged.

    Returns:
        DataFrame with one row per (option, greek) flagged: ``line``, ``instrument_name``, ``days``, ``greek``,
        ``published``, ``model``, ``error``, ``threshold``.
    """
    th = {**DEFAULT_GREEK_THRESHOLDS, **{k: tuple(v) for k, v in (thresholds or {}).items()}}
    parts = []
    for greek, (a, r) in th.items():
        if greek not in GREEK_COLUMNS:
            raise MarginInputError("thresholds", f"unknown greek; allowed {list(GREEK_COLUMNS)}", None, greek)
        pub = repriced[greek].to_numpy(np.float64)
        err = repriced[f"err_{greek}"].to_numpy(np.float64)
        lim = a + r * np.abs(pub)
        sel = np.isfinite(pub) & (np.abs(err) > lim)
        sub = repriced.loc[sel]
        parts.append(pd.DataFrame({
            "line": sub["line"].to_numpy() if "line" in sub else sub.index.to_numpy() + 2,
            "instrument_name": sub["instrument_name"].to_numpy(), "days": sub["T"].to_numpy() * 365.0,
            "greek": greek, "published": pub[sel], "model": sub[f"model_{greek}"].to_numpy(), "error": err[sel],
            "threshold": lim[sel]}))
    return pd.concat(parts, ignore_index=True)


def repricing_summary(repriced: pd.DataFrame) -> pd.DataFrame:
    """Max and median absolute errors per expiry (and ``ALL``) of :func:`reprice_chain` output."""
    cols = ["err_price", "err_delta", "err_gamma", "err_vega", "err_theta"]
    rows = []
    for exp, grp in list(repriced.groupby(repriced["expiry_utc"].dt.strftime("%Y-%m-%d"))) + [("ALL", repriced)]:
        row = {"expiry": exp, "n": len(grp)}
        for col in cols:
            a = grp[col].abs()
            row[f"max|{col[4:]}|"] = a.max()
            row[f"med|{col[4:]}|"] = a.median()
        conv = grp["iv_converged"]
        dv = (grp["iv_from_mark"] - grp["mark_iv"]).abs()[conv]
        row["iv_fit"] = f"{int(conv.sum())}/{len(grp)}"
        row["med|iv-mark_iv|"] = dv.median() if len(dv) else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("expiry")


def chain_instruments(df: pd.DataFrame, rows=None) -> tuple[Instruments, np.ndarray, np.ndarray]:
    """Coin-settled option instruments (1 BTC per contract) for the chain's ``rows`` (default all).

    Returns:
        ``(inst, forwards (I,) USD per BTC, vols (I,) annualised)``.
    """
    sub = df if rows is None else df.iloc[np.asarray(rows)]
    n = len(sub)
    inst = Instruments.create(
        ["option"] * n,
        contract_size=np.ones(n),
        strike=sub["strike"].to_numpy(),
        expiry=sub["T"].to_numpy(),
        settlement=["coin"] * n,
        option_type=sub["option_type"].tolist(),
        names=sub["instrument_name"].tolist(),
    )
    return inst, sub["underlying_price"].to_numpy(), sub["mark_iv"].to_numpy() / 100.0


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def synthetic_deribit_chain(currency: str = "ETH", snapshot: str = "2021-03-05 06:00:00", index: float = 1500.0,
                            expiry_days=(2.08, 8.08, 22.08, 50.08, 113.08, 204.08),
                            moneyness=(0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5, 2.0),
                            atm_vol: float = 0.85, skew: float = -0.15, smile: float = 0.4,
                            basis_per_year: float = 0.08, strike_step: float | None = None,
                            mark_iv: bool = True, greeks: bool = True) -> pd.DataFrame:
    """A Deribit-format option chain priced by Black-76 (for tests and examples; no market data).

    Per expiry d days ahead (08:00 UTC): forward F = index x (1 + basis_per_year x d / 365); strikes
    round(F x moneyness / step) x step; vol(k) = atm_vol + skew x k + smile x k^2 with k = ln(K / F); mark price
    in coin = Black-76 USD price / F; Greeks in Deribit's units (module docstring).

    Args:
        mark_iv: write ``mark_iv`` (percent); False leaves the column empty (IV to be backed out of the price).
        greeks: write ``delta``, ``gamma``, ``vega``, ``theta``; False leaves them empty.

    Returns:
        DataFrame with the columns :data:`CHAIN_COLUMNS` (write it with ``to_csv(path, index=False)``).
    """
    snap = pd.Timestamp(snapshot)
    step = strike_step or float(10 ** np.floor(np.log10(index)) / 20)
    rows = []
    for d in expiry_days:
        exp = (snap + pd.Timedelta(days=float(d))).normalize() + pd.Timedelta(hours=8)
        t = (exp - snap).total_seconds() / (365.0 * 86400.0)
        f = index * (1 + basis_per_year * t)
        tag = f"{exp.day}{_MONTHS[exp.month - 1]}{exp.strftime('%y')}"
        for k in sorted({max(step, round(f * m / step) * step) for m in moneyness}):
            lk = np.log(k / f)
            vol = atm_vol + skew * lk + smile * lk * lk
            for typ in ("C", "P"):
                rows.append((snap, currency, f"{currency}-{tag}-{k:g}-{typ}", exp, k, typ, f"SYN.{currency}-{tag}",
                             f, index, t, vol))
    df = pd.DataFrame(rows, columns=["snapshot_time_utc", "underlying", "instrument_name", "expiry_utc", "strike",
                                     "option_type", "underlying_index", "underlying_price", "index_price", "T",
                                     "vol"])
    g = black76_greeks(df["underlying_price"].to_numpy(), df["strike"].to_numpy(), df["T"].to_numpy(),
                       df["vol"].to_numpy(), (df["option_type"] == "C").to_numpy(), dtype=jnp.float64)
    f = df["underlying_price"].to_numpy()
    df["mark_price"] = np.round(np.asarray(g.price) / f, 8)
    df["mark_iv"] = np.round(df["vol"] * 100.0, 2) if mark_iv else np.nan
    spread = np.maximum(0.0005, 0.02 * df["mark_price"])
    df["bid_price"] = np.maximum(df["mark_price"] - spread, 0.0)
    df["ask_price"] = df["mark_price"] + spread
    df["bid_iv"] = df["ask_iv"] = np.nan
    df["open_interest"] = 0.0
    df["volume_24h"] = 0.0
    for col, val in (("delta", np.asarray(g.delta)), ("gamma", np.asarray(g.gamma)),
                     ("vega", np.asarray(g.vega) / 100.0), ("theta", np.asarray(g.theta) / 365.0)):
        df[col] = np.round(val, 8 if col == "gamma" else 5) if greeks else np.nan
    for col in ("snapshot_time_utc", "expiry_utc"):
        df[col] = df[col].dt.strftime("%Y-%m-%d %H:%M:%S")
    return df[list(CHAIN_COLUMNS)]
