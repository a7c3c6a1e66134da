"""`python -m experiments.prove`: commit to an account's collateral and positions, prove that it is margined in
every scenario (zkproofs.MarginStatement), and write

* ``bundle.json``: the PUBLIC bundle (statement: haircut prices, per-unit scenario P&L matrix, buffer, bit sizes;
  commitments; proof) that anyone verifies with ``python -m experiments.verify bundle.json``;
* ``openings.PRIVATE.json``: the openings (amounts and blinding factors) - keep it private.

The account comes from ``account.path`` (CSV or Parquet: kind,name,amount,price,haircut) or a built-in example;
the scenario matrix from ``scenarios.path`` (CSV: instrument + one column per scenario, USD P&L per coin) or the
built-in SPAN-style grid for linear instruments. Fixed point: amounts in 1/amount_scale coin, values in
1/value_scale USD; haircut prices rounded down, P&L per unit floored (losses up, gains down), buffer rounded up:
every rounding is against the prover (see zkproofs/NOTES.md for the short-position caveat).
Config: conf/zk/cli/prove.yaml (+ the conf/zk backend group).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from experiments._cli import hydra_app
import numpy as np
import pandas as pd
from omegaconf import DictConfig

import zkproofs

EXAMPLE_ACCOUNT = pd.DataFrame(
    [
        ("collateral", "USDC", 250_000.0, 1.0, 0.0),
        ("collateral", "BTC", 3.5, 60_000.0, 0.05),
        ("collateral", "ETH", 40.0, 3_000.0, 0.10),
        ("position", "BTC-PERP", 12.0, 60_000.0, 0.0),
        ("position", "ETH-PERP", -150.0, 3_000.0, 0.0),
    ],
    columns=["kind", "name", "amount", "price", "haircut"],
)


class AccountFileError(ValueError):
    """Bad account or scenario file; the message names file, line and column."""


@dataclass
class Account:
    collateral: pd.DataFrame
    positions: pd.DataFrame


def book_account(index: int, n_accounts: int = 100, seed: int = 0) -> pd.DataFrame:
    """Account ``index`` of the backtest's synthetic book (``margin.book.synthetic_book``): its perpetual
    positions in coin at the last embedded daily close, and its equity (notional / leverage) as USDC collateral.
    Option legs of the book are not included (the CLI's built-in scenario grid covers linear products only)."""
    from margin.book import synthetic_book
    from predictive.data import load_ohlcv

    book = synthetic_book(max(n_accounts, index + 1), seed=seed)
    usd = book.perp_usd[index]
    rows = []
    notional = float(np.abs(usd).sum())
    coll = book.collateral[index]
    equity = float(coll) if np.isfinite(coll) else notional / float(book.leverage[index])
    rows.append(("collateral", "USDC", equity, 1.0, 0.0))
    for a, x in zip(book.assets, usd):
        if x != 0:
            px = float(load_ohlcv(a)["close"].iloc[-1])
            rows.append(("position", f"{a}-PERP", float(x) / px, px, 0.0))
    return pd.DataFrame(rows, columns=["kind", "name", "amount", "price", "haircut"])


def load_account(path: str | Path | None, book_index: int | None = None, book_seed: int = 0) -> Account:
    """Read and check an account file (CSV or Parquet), or take account ``book_index`` of the synthetic book.
    Raises :class:`AccountFileError` naming line/column."""
    if path is None and book_index is not None:
        df, name = book_account(int(book_index), seed=int(book_seed)), f"<book account {book_index}>"
    elif path is None:
        df, name = EXAMPLE_ACCOUNT.copy(), "<built-in example>"
    else:
        p = Path(path)
        try:
            df = pd.read_parquet(p) if p.suffix in (".parquet", ".pq") else pd.read_csv(p)
        except Exception as e:  # noqa: BLE001 - report any reader failure as a file error
            raise AccountFileError(f"{p}: cannot read: {e}") from None
        name = str(p)
    need = ["kind", "name", "amount", "price", "haircut"]
    miss = [c for c in need if c not in df.columns]
    if miss:
        raise AccountFileError(f"{name}: missing columns {miss}")
    for i, row in df.iterrows():
        line = i + 2  # header is line 1
        if row["kind"] not in ("collateral", "position"):
            raise AccountFileError(f"{name}: line {line}, column kind: {row['kind']!r} is not collateral|position")
        for col in ("amount", "price", "haircut"):
            v = row[col]
            if not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(float(v)):
                raise AccountFileError(f"{name}: line {line}, column {col}: {v!r} is not a finite number")
        if row["price"] <= 0:
            raise AccountFileError(f"{name}: line {line}, column price: {row['price']} must be > 0")
        if not 0 <= row["haircut"] <= 1:
            raise AccountFileError(f"{name}: line {line}, column haircut: {row['haircut']} not in [0, 1]")
        if row["kind"] == "collateral" and row["amount"] < 0:
            raise AccountFileError(f"{name}: line {line}, column amount: negative collateral {row['amount']}")
    if df["name"].duplicated().any():
        raise AccountFileError(f"{name}: duplicate names {sorted(df['name'][df['name'].duplicated()])}")
    col, pos = df[df.kind == "collateral"], df[df.kind == "position"]
    if col.empty or pos.empty:
        raise AccountFileError(f"{name}: need at least one collateral row and one position row")
    return Account(col.reset_index(drop=True), pos.reset_index(drop=True))


def scenario_matrix(acc: Account, cfg: DictConfig) -> tuple[np.ndarray, list[str]]:
    """Per-unit P&L matrix (positions x scenarios) in USD per coin, and scenario labels."""
    sc = cfg.scenarios
    if sc.path is None:
        fr = np.asarray(sc.fractions, dtype=np.float64)
        cover = np.asarray(sc.cover, dtype=np.float64)
        moves = fr * float(sc.scan_range)
        L = acc.positions["price"].to_numpy()[:, None] * (moves * cover)[None, :]
        return L, [f"move {m:+.4f} x cover {c:g}" for m, c in zip(moves, cover)]
    df = pd.read_csv(sc.path)
    if "instrument" not in df.columns:
        raise AccountFileError(f"{sc.path}: missing column 'instrument'")
    df = df.set_index("instrument")
    missing = [n for n in acc.positions["name"] if n not in df.index]
    if missing:
        raise AccountFileError(f"{sc.path}: no scenario row for instruments {missing}")
    L = df.loc[list(acc.positions["name"])].to_numpy(dtype=np.float64)
    return L, [str(c) for c in df.columns]


def build_statement(acc: Account, cfg: DictConfig) -> tuple[zkproofs.MarginStatement, list[int], list[int]]:
    """Fixed-point statement and witness (rounding against the prover)."""
    vs, asc = int(cfg.units.value_scale), int(cfg.units.amount_scale)
    # value per amount unit = (1 - haircut) * price / asc USD = that * vs value units; floor
    prices = [zkproofs.to_fixed_point((1 - h) * p * vs / asc, 1, rounding="down")
              for p, h in zip(acc.collateral["price"], acc.collateral["haircut"])]
    L_usd, labels = scenario_matrix(acc, cfg)
    L = zkproofs.pnl_to_fixed_point(L_usd * vs / asc, 1)
    buffer = zkproofs.to_fixed_point(float(cfg.buffer_usd) * vs, 1, rounding="up")
    bal = [zkproofs.to_fixed_point(a * asc, 1, rounding="down") for a in acc.collateral["amount"]]
    pos = [int(round(a * asc)) for a in acc.positions["amount"]]
    b = cfg.zk.bits
    unit = (f"value unit 1/{vs} USD; amount unit 1/{asc} coin; collateral {list(acc.collateral['name'])}; "
            f"positions {list(acc.positions['name'])}; scenarios {labels}")
    st = zkproofs.MarginStatement(prices, L, buffer, int(b.collateral), int(b.position), int(b.scenario), unit)
    return st, bal, pos


def prove_account(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Testable core: prove, write bundle and openings into ``out_dir``, return metrics."""
    acc = load_account(cfg.account.path, cfg.account.get("book_index"), cfg.account.get("book_seed", 0))
    st, bal, pos = build_statement(acc, cfg)
    t0 = time.perf_counter()
    bundle = zkproofs.prove_margin(st, bal, pos, backend=cfg.zk.backend, dst_version=int(cfg.zk.dst_version),
                                   ipa_mode=cfg.zk.ipa_mode)
    prove_ms = (time.perf_counter() - t0) * 1e3
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpath, opath = out / cfg.bundle_name, out / cfg.openings_name
    bpath.write_text(json.dumps(bundle.to_json(), indent=1))
    opath.write_text(json.dumps({**bundle.openings.to_json(),
                                 "names": list(acc.collateral["name"]) + list(acc.positions["name"])}, indent=1))
    opath.chmod(0o600)
    return {"bundle": str(bpath), "openings": str(opath), "prove_ms": prove_ms, "proof_bytes": bundle.proof_bytes,
            "instruments": st.num_positions, "collateral_assets": st.num_collateral, "scenarios": st.num_scenarios,
            "backend": cfg.zk.backend}


@hydra_app("zk/cli/prove")
def main(cfg: DictConfig) -> None:
    out_dir = cfg.out_dir
    if out_dir is None:
        from hydra.core.hydra_config import HydraConfig

        out_dir = HydraConfig.get().runtime.output_dir
    try:
        m = prove_account(cfg, out_dir)
    except (zkproofs.ProofError, AccountFileError) as e:
        print(f"cannot prove: {type(e).__name__}: {e}")
        raise SystemExit(1) from None
    print(f"proved margin sufficiency: {m['collateral_assets']} collateral assets, {m['instruments']} positions, "
          f"{m['scenarios']} scenarios, {m['proof_bytes']} proof bytes, {m['prove_ms']:.0f} ms ({m['backend']})")
    print(f"public bundle : {m['bundle']}\nPRIVATE openings (do not publish): {m['openings']}")
    print(f"verify with   : python -m experiments.verify {m['bundle']}")


if __name__ == "__main__":
    main()
