"""`python -m experiments.prove`: commit to an account's collateral and positions, prove that it is margined in
every scenario of the venue's statement (zkproofs.MarginStatement, format v2), and write

* ``statement.json``: the venue's PUBLIC statement as canonical JSON (context: venue, account, epoch, expiry;
  haircut prices; instruments; scenario labels and P&L matrices; buffer; bit sizes; units; the scenario set's
  parameters such as the scan range). Its SHA-256 is what a venue publishes; or pass the venue's own file with
  ``statement=PATH`` and the account is proved against that one;
* ``bundle.json``: the PUBLIC bundle (statement, commitments, proof); anyone verifies it with
  ``python -m experiments.verify bundle.json --statement statement.json`` (or ``--statement-digest HEX``);
* ``openings.PRIVATE.json``: the openings (amounts and blinding factors) - keep it private (mode 0600).

The account comes from ``account.path`` (CSV or Parquet: kind,name,amount,price,haircut), account
``account.book_index`` of the backtest's synthetic book (perpetuals AND option legs), or a built-in example; the
scenario matrix from ``scenarios.path`` (CSV: instrument + one column per scenario, USD P&L per coin) or the
built-in SPAN-style grid (linear instruments: price x move x cover; options: Black-76 revaluation by
``margin.scenario_pnl``). Fixed point (``zkproofs.margin_from_usd``): value unit 1/value_scale USD; the amount
unit is chosen from the account (the coarsest power of ten that represents every amount exactly, at most
``units.max_amount_scale``) unless ``units.amount_scale`` is set; every rounding is against the prover (prices
and balances down, long-part P&L floored, short-part P&L ceiled, buffer up); a position finer than the amount
unit is refused (``positions.sub_unit=refuse``) or rounded with the rounding added to the buffer and a warning
(``round``). Before any proving: amounts that do not fit their bit width are refused in the account's own units
with file and line, and an under-margined account is refused with the scenario's label and the shortfall in USD.
Config: conf/zk/cli/prove.yaml (+ the conf/zk backend group).
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


def book_account(index: int, n_accounts: int = 100, seed: int = 0) -> pd.DataFrame:
    """Account ``index`` of the backtest's synthetic book (``margin.simulation.book.synthetic_book``): its perpetual
    positions in coin at the last embedded daily close, its option legs (coin count at that close; strike =
    moneyness x close, expiry = the series tenor), and its equity (notional / leverage) as USDC collateral."""
    from margin.simulation.book import synthetic_book
    from predictive.data import load_ohlcv

    book = synthetic_book(max(n_accounts, index + 1), seed=seed)
    usd = book.perp_usd[index]
    px = {a: float(load_ohlcv(a)["close"].iloc[-1]) for a in book.assets}
    rows = []
    notional = float(np.abs(usd).sum())
    coll = book.collateral[index]
    equity = float(coll) if np.isfinite(coll) else notional / float(book.leverage[index])
    rows.append(("collateral", "USDC", equity, 1.0, 0.0) + (None,) * 4)
    for a, x in zip(book.assets, usd):
        if x != 0:
            rows.append(("position", f"{a}-PERP", float(x) / px[a], px[a], 0.0) + (None,) * 4)
    if book.opt_asset[index] >= 0:
        g = book.grid
        for idx, cnt in zip(book.opt_idx[index], book.opt_count[index]):
            ai, j, k, put = (int(v) for v in g.decode(idx))
            a = book.assets[ai]
            strike = g.moneyness[k] * px[a]
            typ = "P" if put else "C"
            rows.append(("option", f"{a}-{g.tenors[j]}D-{strike:.0f}-{typ}", float(cnt) / px[a], px[a], 0.0,
                         strike, float(g.tenors[j]), typ, None))
    return pd.DataFrame(rows, columns=_COLUMNS + _OPTION_COLUMNS)


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


def _records(path: Path) -> list[tuple[str, dict]]:
    """(line label, {column: cell}) per data row; CSV lines are counted as in the file (header = line 1)."""
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


def load_account(path: str | Path | None, book_index: int | None = None, book_seed: int = 0) -> Account:
    """Read and check an account file (CSV or Parquet), or take account ``book_index`` of the synthetic book.
    Amounts are kept exact. Raises :class:`AccountFileError` naming file, line, column and value."""
    if path is None and book_index is not None:
        df, name = book_account(int(book_index), seed=int(book_seed)), f"<book account {book_index}>"
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


def scenario_matrix(acc: Account, cfg: DictConfig) -> tuple[np.ndarray, list[str], dict]:
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


def _option_pnl(rows: list[Row], moves: np.ndarray, cover: np.ndarray, cfg: DictConfig) -> np.ndarray:
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


def choose_amount_scale(acc: Account, cfg: DictConfig) -> tuple[int, list[str]]:
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


def build_statement(acc: Account, cfg: DictConfig) -> zkproofs.FixedPointMargin:
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
        fp = zkproofs.margin_from_usd(
            ctx, [(r.name, r.amount, r.price, r.haircut) for r in acc.collateral],
            [(r.name, r.amount) for r in acc.positions], L_usd.tolist(), labels,
            buffer_usd=Decimal(str(cfg.buffer_usd)),
            value_scale=vs, amount_scale=asc, collateral_bits=nb, position_bits=np_,
            scenario_bits=int(b.scenario), sub_unit=sub, params=params,
            unit=f"value unit 1/{vs} USD; amount unit 1/{asc} coin")
    except zkproofs.StatementError as e:
        raise AccountFileError(f"{acc.source}: {e}") from None
    for w in fp.warnings:
        warnings.warn(f"{acc.source}: {w}", stacklevel=2)
    return fp


def make_context(acc: Account, cfg: DictConfig) -> zkproofs.Context:
    """Context from ``context.*``: venue, account (default: SHA-256 of the account source), epoch (default the
    current UTC day number), expiry = now + ``context.ttl_seconds``."""
    c = cfg.context
    now = int(time.time())
    account = c.account if c.account is not None else zkproofs.Context.hash_account(acc.source)
    epoch = int(c.epoch) if c.epoch is not None else now // 86_400
    return zkproofs.Context(str(c.venue), str(account), epoch, now + int(c.ttl_seconds))


def check_margined(st: zkproofs.MarginStatement, balances, positions) -> None:
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


def _venue_witness(venue: zkproofs.MarginStatement, acc: Account, sub_unit: str) -> tuple[list[int], list[int]]:
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


def prove_account(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Testable core: build (or read) the statement, refuse what cannot be proved, prove, write statement.json,
    bundle.json and openings.PRIVATE.json into ``out_dir``; return metrics. Raises :class:`AccountFileError`
    (bad file, does not fit, under-margined) or :class:`zkproofs.ProofError` (a bad venue statement)."""
    acc = load_account(cfg.account.path, cfg.account.get("book_index"), cfg.account.get("book_seed", 0))
    warns: list[str] = []
    if cfg.get("statement") is not None:
        try:
            raw = Path(cfg.statement).read_bytes()
        except OSError as e:
            raise AccountFileError(f"{cfg.statement}: cannot read: {e.strerror or e}") from None
        st = zkproofs.statement_from_json(raw)
        if not isinstance(st, zkproofs.MarginStatement):
            raise AccountFileError(f"{cfg.statement}: not a margin statement")
        bal, pos = _venue_witness(st, acc, str(cfg.positions.sub_unit))
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fp = build_statement(acc, cfg)
        warns = [str(w.message) for w in caught]
        st, bal, pos = fp.statement, list(fp.balances), list(fp.positions)
    try:
        check_margined(st, bal, pos)
    except UnderMargined as e:
        raise type(e)(f"{acc.source}: {e}") from None
    t0 = time.perf_counter()  # generators are derived once per process (hash-to-curve): timed apart
    from zkproofs.rangeproof import padded_m

    claims = st.claims()
    zkproofs.get_generators(cfg.zk.backend, int(cfg.zk.dst_version)).G(
        max(b * padded_m(sum(1 for c in claims if c.bits == b)) for b in {c.bits for c in claims}))
    setup_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    bundle = zkproofs.prove_margin(st, bal, pos, backend=cfg.zk.backend, dst_version=int(cfg.zk.dst_version),
                                   ipa_mode=cfg.zk.ipa_mode, workers=int(cfg.zk.get("workers", 1)))
    prove_ms = (time.perf_counter() - t0) * 1e3
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpath, opath, spath = out / cfg.bundle_name, out / cfg.openings_name, out / cfg.statement_name
    spath.write_bytes(st.canonical_bytes())
    bpath.write_text(json.dumps(bundle.to_json(), indent=1))
    opath.touch(mode=0o600)
    opath.chmod(0o600)
    opath.write_text(json.dumps({**bundle.openings.to_json(), "names": list(st.collateral_names) + [
        f"{n} (long)" for n in st.instruments] + [f"{n} (short)" for n in st.instruments]}, indent=1))
    return {"bundle": str(bpath), "openings": str(opath), "statement": str(spath), "statement_digest": st.digest(),
            "prove_ms": prove_ms, "generator_setup_ms": setup_ms, "proof_bytes": bundle.proof_bytes,
            "instruments": st.num_positions,
            "collateral_assets": st.num_collateral, "scenarios": st.num_scenarios, "backend": cfg.zk.backend,
            "amount_scale": st.amount_scale, "value_scale": st.value_scale,
            "bits": {"collateral": st.collateral_bits, "position": st.position_bits, "scenario": st.scenario_bits},
            "min_surplus_usd": min(st.surpluses(bal, pos)) / st.value_scale, "warnings": warns,
            "summary": st.summary(), "option_legs": sum(1 for r in acc.positions if r.kind == "option")}


@hydra_app("zk/cli/prove")
def main(cfg: DictConfig) -> None:
    out_dir = cfg.out_dir
    if out_dir is None:
        from hydra.core.hydra_config import HydraConfig

        out_dir = HydraConfig.get().runtime.output_dir
    m = prove_account(cfg, out_dir)  # a user's mistake (ProofError, AccountFileError): one line, exit 2 (hydra_app)
    for w in m["warnings"]:
        print(f"warning: {w}")
    print(f"proved margin sufficiency: {m['collateral_assets']} collateral assets, {m['instruments']} positions "
          f"({m['option_legs']} option legs), {m['scenarios']} scenarios, worst-scenario surplus "
          f"{m['min_surplus_usd']:,.2f} USD, {m['proof_bytes']} proof bytes, {m['prove_ms']:.0f} ms ({m['backend']})")
    print(m["summary"])
    print(f"public statement: {m['statement']} (SHA-256 {m['statement_digest']})")
    print(f"public bundle   : {m['bundle']}\nPRIVATE openings (do not publish): {m['openings']}")
    print(f"verify with     : python -m experiments.verify {m['bundle']} --statement {m['statement']}")


if __name__ == "__main__":
    main()
