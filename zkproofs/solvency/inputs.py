"""Inputs of the solvency prover: the public market data in fixed point, and accounts from a Parquet file.

Parquet schema (one row per account and asset or instrument; rows of one account need not be adjacent):

======== ======= ==========================================================================================
column   type    meaning
======== ======= ==========================================================================================
account  string  account id (any non-empty text; hashed with a per-account salt in the tree)
kind     string  ``collateral`` or ``position``
name     string  a collateral asset of ``market.assets`` or an instrument of ``market.instruments``
amount   double  coins: collateral >= 0; positions signed (short < 0)
======== ======= ==========================================================================================

An account with no row for an asset or instrument holds zero of it; a repeated (account, kind, name) row is an
error. Fixed point (rounding against the prover): collateral floor(amount x amount_scale), positions rounded to the
nearest position unit, liability prices up, haircut prices down, P&L per unit floored, F and R down.
Errors: :class:`SolvencyInputError` (a :class:`~zkproofs.errors.StatementError`) naming file, row, column, value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from ..errors import StatementError
from .statement import AccountWitness, SolvencyParams

__all__ = ["SolvencyInputError", "Market", "build_params", "read_accounts_parquet", "to_witness", "span_grid"]


class SolvencyInputError(StatementError):
    """Bad input file or market parameter; the message names file, row, column and value (or the config key)."""


def _frac(x: float, what: str) -> Fraction:
    from decimal import Decimal

    try:
        x = float(x)
    except (TypeError, ValueError):
        raise SolvencyInputError(f"{what}: {x!r} is not a number") from None
    if not math.isfinite(x):
        raise SolvencyInputError(f"{what}: {x!r} is not finite")
    return Fraction(Decimal(repr(x)))


def span_grid(scan_range: float, fractions: Sequence[float], cover: Sequence[float]) -> tuple[list[float], list[str]]:
    """CME SPAN-style price moves for linear instruments: move_s = fraction_s x scan_range x cover_s (fraction of
    the price); labels. Same grid as ``conf/zk/cli/prove.yaml`` (9 scenarios: 0, +-1/3, +-2/3, +-1, +-2 x 35%)."""
    if len(fractions) != len(cover) or not fractions:
        raise SolvencyInputError("scenarios.fractions and scenarios.cover must be non-empty and of equal length")
    moves = [float(f) * float(scan_range) * float(c) for f, c in zip(fractions, cover)]
    return moves, [f"move {f * scan_range:+.4f} x cover {c:g}" for f, c in zip(fractions, cover)]


@dataclass
class Market:
    """Public market data in USD: collateral ``assets`` {name: (price, haircut, amount_scale)}, ``instruments``
    {name: (price of the underlying, position_scale)} (linear: P&L per coin = price x move), scenario ``moves``
    (fraction of price) and ``labels``; insurance fund and reserves in USD."""

    assets: dict
    instruments: dict
    moves: list
    labels: list
    insurance_fund_usd: float
    reserves_usd: float
    value_scale: int = 1_000_000


def build_params(m: Market, *, venue: str, epoch: str, collateral_bits: int = 64, position_bits: int = 32,
                 value_bits: int = 64, deficit_mode: str = "per_scenario", shard_size: int = 64,
                 pnl_usd: Sequence[Sequence[float]] | None = None) -> SolvencyParams:
    """Fixed-point :class:`SolvencyParams` from USD market data (rounding against the prover). ``pnl_usd``
    overrides the linear P&L (instruments x scenarios, USD per coin)."""
    vs = int(m.value_scale)
    names_a = list(m.assets)
    lp, hp, asc = [], [], []
    for a in names_a:
        price, haircut, scale = m.assets[a]
        pr = _frac(price, f"market.assets.{a}.price")
        h = _frac(haircut, f"market.assets.{a}.haircut")
        if pr <= 0 or not 0 <= h <= 1 or int(scale) <= 0:
            raise SolvencyInputError(f"market.assets.{a}: need price > 0, haircut in [0, 1], amount_scale > 0; got "
                                     f"{price}, {haircut}, {scale}")
        lp.append(math.ceil(pr * vs / int(scale)))
        hp.append(math.floor((1 - h) * pr * vs / int(scale)))
        asc.append(int(scale))
    names_i = list(m.instruments)
    rows, psc = [], []
    for j, ins in enumerate(names_i):
        price, scale = m.instruments[ins]
        pr = _frac(price, f"market.instruments.{ins}.price")
        if pr <= 0 or int(scale) <= 0:
            raise SolvencyInputError(f"market.instruments.{ins}: need price > 0 and position_scale > 0")
        psc.append(int(scale))
        if pnl_usd is None:
            rows.append([math.floor(pr * _frac(mv, "scenario move") * vs / int(scale)) for mv in m.moves])
        else:
            rows.append([math.floor(_frac(x, f"pnl[{ins}]") * vs / int(scale)) for x in pnl_usd[j]])
    F = math.floor(_frac(m.insurance_fund_usd, "insurance_fund_usd") * vs)
    Rv = math.floor(_frac(m.reserves_usd, "reserves_usd") * vs)
    if F < 0 or Rv < 0:
        raise SolvencyInputError(f"insurance_fund_usd and reserves_usd must be >= 0, got {m.insurance_fund_usd}, "
                                 f"{m.reserves_usd}")
    return SolvencyParams(venue, str(epoch), tuple(names_a), tuple(lp), tuple(hp), tuple(names_i),
                          tuple(tuple(r) for r in rows), tuple(m.labels), F, Rv, vs, tuple(asc), tuple(psc),
                          collateral_bits, position_bits, value_bits, deficit_mode, shard_size)


def to_witness(p: SolvencyParams, account_id: str, collateral: dict, positions: dict, where: str = "") -> AccountWitness:
    """Coins to fixed point for one account (``collateral``/``positions``: name -> coins)."""
    bal = []
    for k, a in enumerate(p.assets):
        x = _frac(collateral.get(a, 0.0), f"{where}account {account_id}, collateral {a}")
        if x < 0:
            raise SolvencyInputError(f"{where}account {account_id}: negative collateral {a} = {float(x)}")
        bal.append(math.floor(x * p.amount_scales[k]))
    pos = [round(_frac(positions.get(ins, 0.0), f"{where}account {account_id}, position {ins}") *
                 p.position_scales[j]) for j, ins in enumerate(p.instruments)]
    w = AccountWitness(str(account_id), tuple(bal), tuple(int(q) for q in pos))
    w.check(p)
    return w


def read_accounts_parquet(path: str | Path, p: SolvencyParams, *, batch_rows: int = 65536) -> list[AccountWitness]:
    """Read the Parquet file (schema in the module docstring) in record batches and return the accounts in
    first-appearance order. Raises :class:`SolvencyInputError` naming file, row, column and value."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        f = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - any reader failure is the user's file
        raise SolvencyInputError(f"{path}: cannot read as Parquet: {e}") from None
    need = ["account", "kind", "name", "amount"]
    missing = [c for c in need if c not in f.schema_arrow.names]
    if missing:
        raise SolvencyInputError(f"{path}: missing columns {missing} (need {need})")
    assets, instruments = set(p.assets), set(p.instruments)
    accts: dict[str, tuple[dict, dict]] = {}
    row = 0
    for batch in f.iter_batches(batch_size=batch_rows, columns=need):
        cols = [batch.column(c).to_pylist() for c in need]
        for acc, kind, name, amount in zip(*cols):
            where = f"{path}: row {row}"
            row += 1
            if not isinstance(acc, str) or not acc:
                raise SolvencyInputError(f"{where}, column account: {acc!r} is not a non-empty string")
            if kind not in ("collateral", "position"):
                raise SolvencyInputError(f"{where}, column kind: {kind!r} is not collateral|position")
            universe = assets if kind == "collateral" else instruments
            if name not in universe:
                raise SolvencyInputError(f"{where}, column name: {name!r} is not one of the statement's "
                                         f"{'assets' if kind == 'collateral' else 'instruments'} {sorted(universe)}")
            if amount is None or not isinstance(amount, (int, float)) or not math.isfinite(float(amount)):
                raise SolvencyInputError(f"{where}, column amount: {amount!r} is not a finite number")
            if kind == "collateral" and amount < 0:
                raise SolvencyInputError(f"{where}, column amount: negative collateral {amount}")
            c, q = accts.setdefault(acc, ({}, {}))
            d = c if kind == "collateral" else q
            if name in d:
                raise SolvencyInputError(f"{where}: account {acc!r} has a second {kind} row for {name!r}")
            d[name] = float(amount)
    if not accts:
        raise SolvencyInputError(f"{path}: no rows")
    return [to_witness(p, a, c, q, f"{path}: ") for a, (c, q) in accts.items()]
