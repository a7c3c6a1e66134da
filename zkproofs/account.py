"""Margin-statement building for one account (library side of ``python -m experiments.prove``).

* reading an account (CSV or Parquet: ``kind,name,amount,price,haircut`` + for option legs
  ``strike,expiry_days,option_type,vol``) with EXACT amounts (``Fraction`` of the decimal text) and true line numbers
  (:func:`read_account`, :class:`Account`, :class:`Row`); errors are :class:`AccountFileError` naming file, line,
  column and value;
* the scenario matrix (:func:`scenario_matrix`: SPAN-style grid with Black-76 option revaluation by
  ``margin.scenario_pnl``, or a CSV of USD P&L per coin), the fixed-point statement and witness
  (:func:`build_statement`, rounding against the prover), the refusal of an under-margined account
  (:func:`check_margined`, :class:`UnderMargined`) and the witness for a venue's own statement (:func:`venue_witness`).

``cfg`` is the prove config (``conf/zk/cli/prove.yaml`` + a ``conf/zk`` backend: keys ``scenarios.*``, ``units.*``,
``positions.sub_unit``, ``zk.bits.*``, ``context.*``, ``buffer_usd``); any attribute-access mapping (OmegaConf)
works. Imports ``margin`` (option revaluation) but never ``predictive``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import StatementError
from .fixedpoint import FixedPointMargin, margin_from_usd
from .statement import Context, MarginStatement

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
_COLUMNS = ["kind", "name", "amount", "price", "haircut"]
_OPTION_COLUMNS = ["strike", "expiry_days", "option_type", "vol"]


class AccountFileError(ValueError):
    """Bad account or scenario file, or an account that cannot be proved as configured; the message names the
    file, line, column and value (or the config key to change)."""


class UnderMargined(AccountFileError):
    """The account does not cover the statement in some scenario (message: scenario label, shortfall in USD)."""


@dataclass
class Row:
    """One account row with exact amounts (``Fraction`` of the decimal text in the file) and its line."""

    kind: str
    name: str
    amount: Fraction
    price: Fraction
    haircut: Fraction
    line: str
    option: dict = field(default_factory=dict)  # strike, expiry_days, option_type, vol, asset (option legs)


@dataclass
class Account:
    source: str
    collateral: list[Row]
    positions: list[Row]

    @property
    def rows(self) -> list[Row]:
        return self.collateral + self.positions

def _exact(v, name: str, line: str, col: str) -> Fraction:
    """Exact value of a cell: decimal text as written (``Decimal``), floats at their shortest repr."""
    if isinstance(v, (bool, np.bool_)):
        raise AccountFileError(f"{name}: {line}, column {col}: {v!r} is not a number")
    if isinstance(v, (int, np.integer)):
        return Fraction(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            raise AccountFileError(f"{name}: {line}, column {col}: {v!r} is not a finite number")
        return Fraction(Decimal(repr(float(v))))
    t = str(v).strip()
    try:
        d = Decimal(t)
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite() or not t.isascii():
        raise AccountFileError(f"{name}: {line}, column {col}: {str(v)[:40]!r} is not a finite number")
    return Fraction(d)


def _records(path: Path) -> tuple[list[tuple[str, dict]], list[str]]:
    """((line label, {column: cell}) per data row, column names); CSV lines are counted as in the file (header =
    line 1)."""
    if path.suffix in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - report any reader failure as a file error
            raise AccountFileError(f"{path}: cannot read: {e}") from None
        return [(f"row {i + 1}", rec) for i, rec in enumerate(df.to_dict("records"))], list(df.columns)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rd = csv.reader(f)
            header = next(rd, None)
            if header is None:
                raise AccountFileError(f"{path}: empty file")
            header = [h.strip() for h in header]
            out = []
            for cells in rd:
                if not any(c.strip() for c in cells):
                    continue
                line = f"line {rd.line_num}"
                if len(cells) != len(header):
                    raise AccountFileError(f"{path}: {line}: {len(cells)} cells, header has {len(header)}")
                out.append((line, dict(zip(header, cells))))
    except UnicodeDecodeError as e:
        raise AccountFileError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise AccountFileError(f"{path}: cannot read: {e.strerror or e}") from None
    except csv.Error as e:
        raise AccountFileError(f"{path}: not CSV: {e}") from None
    return out, header

def read_account(path: str | Path | None = None, *, frame: pd.DataFrame | None = None,
                 name: str | None = None) -> Account:
    """Read and check an account file (CSV or Parquet at ``path``), or the rows of ``frame`` (labelled ``name``), or
    the built-in :data:`EXAMPLE_ACCOUNT` when both are None. Amounts are kept exact. Raises
    :class:`AccountFileError` naming file, line, column and value."""
    if path is None and frame is not None:
        df = frame
        recs, cols = [(f"row {i + 1}", r) for i, r in enumerate(df.to_dict("records"))], list(df.columns)
    elif path is None:
        df, name = EXAMPLE_ACCOUNT.copy(), "<built-in example>"
        recs, cols = [(f"row {i + 1}", r) for i, r in enumerate(df.to_dict("records"))], list(df.columns)
    else:
        p = Path(path)
        recs, cols = _records(p)
        name = str(p)
    miss = [c for c in _COLUMNS if c not in cols]
    if miss:
        raise AccountFileError(f"{name}: missing columns {miss}")
    coll, pos, seen = [], [], {}
    for line, rec in recs:
        kind = str(rec["kind"]).strip()
        if kind not in ("collateral", "position", "option"):
            raise AccountFileError(f"{name}: {line}, column kind: {rec['kind']!r} is not collateral|position|option")
        nm = str(rec["name"]).strip()
        if not nm:
            raise AccountFileError(f"{name}: {line}, column name: empty")
        if nm in seen:
            raise AccountFileError(f"{name}: {line}, column name: {nm!r} duplicates {seen[nm]}")
        seen[nm] = line
        amount, price = _exact(rec["amount"], name, line, "amount"), _exact(rec["price"], name, line, "price")
        hc = rec["haircut"]
        haircut = Fraction(0) if kind == "option" and (hc is None or (isinstance(hc, float) and math.isnan(hc))) \
            else _exact(hc, name, line, "haircut")
        if price <= 0:
            raise AccountFileError(f"{name}: {line}, column price: {rec['price']} must be > 0")
        if not 0 <= haircut <= 1:
            raise AccountFileError(f"{name}: {line}, column haircut: {rec['haircut']} not in [0, 1]")
        if kind == "collateral" and amount < 0:
            raise AccountFileError(f"{name}: {line}, column amount: negative collateral {rec['amount']}")
        row = Row(kind, nm, amount, price, haircut, line)
        if kind == "option":
            for c in ("strike", "expiry_days", "option_type"):
                if c not in rec or rec[c] is None or rec[c] == "":
                    raise AccountFileError(f"{name}: {line}: option rows need column {c!r}")
            typ = str(rec["option_type"]).strip().upper()[:1]
            if typ not in ("C", "P"):
                raise AccountFileError(f"{name}: {line}, column option_type: {rec['option_type']!r} is not C|P")
            vol = rec.get("vol")
            row.option = {"strike": float(_exact(rec["strike"], name, line, "strike")),
                          "expiry_days": float(_exact(rec["expiry_days"], name, line, "expiry_days")),
                          "option_type": typ,
                          "vol": None if vol is None or vol == "" or (isinstance(vol, float) and math.isnan(vol))
                          else float(_exact(vol, name, line, "vol"))}
            if row.option["strike"] <= 0 or row.option["expiry_days"] <= 0:
                raise AccountFileError(f"{name}: {line}: option strike and expiry_days must be > 0")
        (coll if kind == "collateral" else pos).append(row)
    if not coll or not pos:
        raise AccountFileError(f"{name}: need at least one collateral row and one position row")
    return Account(name, coll, pos)


def scenario_matrix(acc: Account, cfg) -> tuple[np.ndarray, list[str], dict]:
    """Per-unit P&L matrix (positions x scenarios) in USD per coin, scenario labels, and the scenario set's
    parameters (strings, absorbed in the statement)."""
    sc = cfg.scenarios
    if sc.path is None:
        fr = np.asarray(sc.fractions, dtype=np.float64)
        cover = np.asarray(sc.cover, dtype=np.float64)
        if fr.shape != cover.shape or fr.size == 0:
            raise AccountFileError(f"config scenarios.fractions and scenarios.cover need the same non-zero length, "
                                   f"got {fr.size} and {cover.size}")
        moves = fr * float(sc.scan_range)
        L = np.zeros((len(acc.positions), fr.size))
        opts = []
        for j, r in enumerate(acc.positions):
            if r.kind == "option":
                opts.append(j)
            else:
                L[j] = float(r.price) * moves * cover
        if opts:
            L[opts] = _option_pnl([acc.positions[j] for j in opts], moves, cover, cfg)
        labels = [f"move {m:+.4f} x cover {c:g}" for m, c in zip(moves, cover)]
        params = {"scenario_set": "span-style price grid", "scan_range": repr(float(sc.scan_range)),
                  "fractions": json.dumps([float(x) for x in fr]), "cover": json.dumps([float(x) for x in cover])}
        if opts:
            params["option_vol_default"] = repr(float(sc.option_vol))
            params["option_model"] = "Black-76 (margin.scenario_pnl), vol unchanged"
        return L, labels, params
    path = Path(sc.path)
    try:
        df = pd.read_csv(path)
    except Exception as e:  # noqa: BLE001
        raise AccountFileError(f"{path}: cannot read: {e}") from None
    if "instrument" not in df.columns:
        raise AccountFileError(f"{path}: missing column 'instrument'")
    df = df.set_index("instrument")
    names = [r.name for r in acc.positions]
    missing = [n for n in names if n not in df.index]
    if missing:
        raise AccountFileError(f"{path}: no scenario row for instruments {missing}")
    try:
        L = df.loc[names].to_numpy(dtype=np.float64)
    except ValueError as e:
        raise AccountFileError(f"{path}: non-numeric P&L: {e}") from None
    if not np.isfinite(L).all():
        j, s = np.argwhere(~np.isfinite(L))[0]
        raise AccountFileError(f"{path}: instrument {names[j]}, column {df.columns[s]}: not a finite number")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return L, [str(c) for c in df.columns], {"scenario_set": f"file {path.name}", "file_sha256": digest}


def _option_pnl(rows: list[Row], moves: np.ndarray, cover: np.ndarray, cfg) -> np.ndarray:
    """Per-coin USD P&L of option legs under the price moves (vol unchanged), from ``margin.scenario_pnl``."""
    import margin

    inst = margin.Instruments.create(["option"] * len(rows), strike=[r.option["strike"] for r in rows],
                                     expiry=[r.option["expiry_days"] / 365.0 for r in rows],
                                     option_type=[r.option["option_type"] for r in rows],
                                     underlying=list(range(len(rows))), n_underlyings=len(rows),
                                     names=[r.name for r in rows])
    vols = np.array([r.option["vol"] or float(cfg.scenarios.option_vol) for r in rows])
    fwd = np.array([float(r.price) for r in rows])
    S = len(moves)
    ss = margin.scenario_pnl(inst, fwd, vols, np.tile(moves, (len(rows), 1)), cover=cover,
                             labels=[str(i) for i in range(S)])
    return np.asarray(ss.pnl, dtype=np.float64)


def choose_amount_scale(acc: Account, cfg) -> tuple[int, list[str]]:
    """The configured ``units.amount_scale``, or the smallest power of ten (>= 1, <= ``units.max_amount_scale``)
    that represents every amount of the account exactly."""
    if cfg.units.amount_scale is not None:
        return int(cfg.units.amount_scale), []
    cap = int(cfg.units.max_amount_scale)
    asc = 1
    for r in acc.rows:
        while (r.amount * asc).denominator != 1 and asc < cap:
            asc *= 10
    return asc, []


def _coin(units: int, asc: int) -> str:
    """``units`` amount units as a coin amount with thousands separators (exact, no float)."""
    v = Decimal(units) / Decimal(asc)
    digits = max(0, len(str(asc)) - 1)
    return f"{v:,.{digits}f}" if abs(units) < 10**40 else f"{v:.6e}"


def build_statement(acc: Account, cfg) -> FixedPointMargin:
    """Fixed-point statement and witness (rounding against the prover); refuses, before any proving and with the
    account's own units, file and line, amounts that do not fit their bit widths and under-margined accounts."""
    asc, _ = choose_amount_scale(acc, cfg)
    vs = int(cfg.units.value_scale) if cfg.units.value_scale not in (None, "auto") else max(10**6, asc * 10**4)
    L_usd, labels, params = scenario_matrix(acc, cfg)
    b = cfg.zk.bits
    # collateral: fits the configured width?
    nb = int(b.collateral)
    for r in acc.collateral:
        units = math.floor(r.amount * asc)
        if units >= 1 << nb:
            raise AccountFileError(
                f"{acc.source}: {r.line}: {r.name} {_coin(units, asc)} exceeds the {nb}-bit collateral range "
                f"({_coin((1 << nb) - 1, asc)} {r.name} at 1/{asc} {r.name} per unit); set "
                + ("zk.bits.collateral=64 or " if nb < 64 else "") + "a coarser units.amount_scale")
    # positions: finer than the amount unit?
    sub = str(cfg.positions.sub_unit)
    for r in acc.positions:
        if (r.amount * asc).denominator != 1 and sub == "refuse":
            raise AccountFileError(
                f"{acc.source}: {r.line}, column amount: position {r.name} = {float(r.amount)!r} is finer than the "
                f"amount unit 1/{asc} coin; set units.amount_scale (or units.max_amount_scale) finer, or "
                f"positions.sub_unit=round to round it against the prover")
    max_pos = max(abs(round(r.amount * asc)) for r in acc.positions)
    # auto: 32 bits, or 64 if a position needs it (the width is public: smaller widths would leak magnitudes)
    np_ = (32 if max_pos < 1 << 32 else 64) if b.position in (None, "auto") else int(b.position)
    if max_pos >= 1 << np_:
        big = max(acc.positions, key=lambda r: abs(r.amount))
        raise AccountFileError(
            f"{acc.source}: {big.line}: position {big.name} {_coin(round(big.amount * asc), asc)} exceeds the "
            f"{np_}-bit position range ({_coin((1 << np_) - 1, asc)} coin at 1/{asc} coin per unit); set "
            + ("zk.bits.position=64 or " if np_ < 64 else "") + "a coarser units.amount_scale")
    ctx = make_context(acc, cfg)
    try:
        fp = margin_from_usd(
            ctx, [(r.name, r.amount, r.price, r.haircut) for r in acc.collateral],
            [(r.name, r.amount) for r in acc.positions], L_usd.tolist(), labels,
            buffer_usd=Decimal(str(cfg.buffer_usd)),
            value_scale=vs, amount_scale=asc, collateral_bits=nb, position_bits=np_,
            scenario_bits=int(b.scenario), sub_unit=sub, params=params,
            unit=f"value unit 1/{vs} USD; amount unit 1/{asc} coin")
    except StatementError as e:
        raise AccountFileError(f"{acc.source}: {e}") from None
    for w in fp.warnings:
        warnings.warn(f"{acc.source}: {w}", stacklevel=2)
    return fp


def make_context(acc: Account, cfg) -> Context:
    """Context from ``context.*``: venue, account (default: SHA-256 of the account source), epoch (default the
    current UTC day number), expiry = now + ``context.ttl_seconds``."""
    c = cfg.context
    now = int(time.time())
    account = c.account if c.account is not None else Context.hash_account(acc.source)
    epoch = int(c.epoch) if c.epoch is not None else now // 86_400
    return Context(str(c.venue), str(account), epoch, now + int(c.ttl_seconds))


def check_margined(st: MarginStatement, balances, positions) -> None:
    """Refuse an under-margined account (worst scenario's label and shortfall in USD), or a surplus above the
    scenario bit width, before any proving."""
    sur = st.surpluses(balances, positions)
    worst = min(range(len(sur)), key=lambda s: sur[s])
    if sur[worst] < 0:
        raise UnderMargined(f"under-margined in scenario {st.scenario_labels[worst]!r}: shortfall "
                            f"{-sur[worst] / st.value_scale:,.2f} USD (buffer {st.buffer / st.value_scale:,.2f} USD "
                            f"included; {sum(1 for x in sur if x < 0)} of {len(sur)} scenarios short)")
    top = max(range(len(sur)), key=lambda s: sur[s])
    if sur[top] >= 1 << st.scenario_bits:
        raise AccountFileError(f"surplus {sur[top] / st.value_scale:,.2f} USD in scenario "
                               f"{st.scenario_labels[top]!r} exceeds 2^{st.scenario_bits} value units; set a coarser "
                               f"units.value_scale")


def venue_witness(venue: MarginStatement, acc: Account, sub_unit: str) -> tuple[list[int], list[int]]:
    """The account's balances and positions in the venue statement's units, matched by name."""
    asc = venue.amount_scale
    by = {r.name: r for r in acc.rows}
    missing = [n for n in list(venue.collateral_names) + list(venue.instruments) if n not in by]
    extra = [r.name for r in acc.rows if r.name not in set(venue.collateral_names) | set(venue.instruments)]
    if missing or extra:
        raise AccountFileError(f"{acc.source}: the venue statement lists {missing} that the account lacks and the "
                               f"account has {extra} that the statement does not price")
    bal = [math.floor(by[n].amount * asc) for n in venue.collateral_names]
    pos = []
    for n in venue.instruments:
        q = by[n].amount * asc
        if q.denominator != 1:
            raise AccountFileError(f"{acc.source}: {by[n].line}: position {n} = {float(by[n].amount)!r} is finer than "
                                   f"the venue statement's amount unit 1/{asc} coin")
        pos.append(int(q))
    return bal, pos
