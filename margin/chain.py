"""The embedded Deribit BTC option chain (2020-05-14 snapshot): loading, repricing from mark IVs, instruments.

Deribit conventions (checked against the chain itself, see ``tests/margin/test_chain.py``):
- option prices (mark, bid, ask) are in BTC: USD Black-76 price / F, with F the option's synthetic forward
  (``underlying_price``) and zero rate;
- ``mark_iv`` in percent; expiry 08:00 UTC; T = (expiry - snapshot time) / 365 days;
- ``delta`` = Black-76 forward delta N(d1) (no premium adjustment); ``gamma`` per USD of F;
  ``vega`` USD per 1 vol point (Black vega / 100); ``theta`` USD per calendar day (Black theta / 365).
Source: Deribit API ``public/get_book_summary_by_currency`` / ``ticker`` field documentation; data from
schepal/deribit_data_collector sample (see ``/work/shared/data/SOURCES.md``).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd

from margin.instruments import Instruments
from margin.pricing import black76_greeks, implied_vol
from margin.validation import MarginInputError

__all__ = ["load_deribit_chain", "reprice_chain", "repricing_summary", "chain_instruments", "CHAIN_COLUMNS"]

CHAIN_COLUMNS = (
    "snapshot_time_utc", "underlying", "instrument_name", "expiry_utc", "strike", "option_type",
    "underlying_index", "underlying_price", "index_price", "mark_price", "mark_iv", "bid_price", "ask_price",
    "bid_iv", "ask_iv", "open_interest", "volume_24h", "delta", "gamma", "vega", "theta",
)
_POSITIVE = ("strike", "underlying_price", "index_price", "mark_iv")
_NONNEG = ("mark_price",)


def load_deribit_chain(path: str | Path | None = None) -> pd.DataFrame:
    """Loads a Deribit option-chain CSV (default: the embedded BTC 2020-05-14 snapshot).

    Adds ``T`` (years to expiry, float64) and ``is_call`` (bool).

    Raises:
        MarginInputError (ValueError) naming file, line (1-based, header = line 1), column and value for missing
        columns, unparsable times, non-positive strikes / prices / IVs, negative mark prices, option types other
        than C / P, or an expiry at or before the snapshot time.
    """
    if path is None:
        path = resources.files("margin") / "data" / "DERIBIT_BTC_options_2020-05-14.csv"
    name = str(path)
    df = pd.read_csv(path)
    missing = [c for c in CHAIN_COLUMNS if c not in df.columns]
    if missing:
        raise MarginInputError(f"{name}: columns", f"missing {missing}")

    def fail(col, i, msg):
        raise MarginInputError(f"{name}: line {i + 2}, column {col}", msg, None, df[col].iloc[i])

    for col in ("snapshot_time_utc", "expiry_utc"):
        parsed = pd.to_datetime(df[col], errors="coerce")
        if parsed.isna().any():
            fail(col, int(np.argmax(parsed.isna().to_numpy())), "unparsable timestamp")
        df[col] = parsed
    for col in _POSITIVE + _NONNEG:
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(v) | ((v <= 0) if col in _POSITIVE else (v < 0))
        if bad.any():
            fail(col, int(np.argmax(bad)), "must be finite and " + ("> 0" if col in _POSITIVE else ">= 0"))
        df[col] = v
    bad = ~df["option_type"].isin(["C", "P"]).to_numpy()
    if bad.any():
        fail("option_type", int(np.argmax(bad)), "must be C or P")
    t = (df["expiry_utc"] - df["snapshot_time_utc"]).dt.total_seconds().to_numpy() / (365.0 * 86400.0)
    if (t <= 0).any():
        fail("expiry_utc", int(np.argmax(t <= 0)), "expiry at or before the snapshot time")
    df["T"] = t
    df["is_call"] = (df["option_type"] == "C").to_numpy()
    return df


def reprice_chain(df: pd.DataFrame, *, dtype=jnp.float64) -> pd.DataFrame:
    """Reprices every option from its mark IV and compares with Deribit's mark price and Greeks.

    Returns:
        A copy of ``df`` with columns ``model_price`` (BTC), ``model_delta``, ``model_gamma`` (per USD),
        ``model_vega`` (USD per vol point), ``model_theta`` (USD per day), the errors ``err_price`` (BTC),
        ``err_delta``, ``err_gamma``, ``err_vega``, ``err_theta`` (model - Deribit), and ``iv_from_mark``
        (percent, implied from the mark price; NaN-free, ``iv_converged`` flags where it fits).
    """
    f = df["underlying_price"].to_numpy()
    k = df["strike"].to_numpy()
    t = df["T"].to_numpy()
    v = df["mark_iv"].to_numpy() / 100.0
    c = df["is_call"].to_numpy()
    g = black76_greeks(f, k, t, v, c, dtype=dtype)
    out = df.copy()
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
