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
Config: conf/zk/cli/prove.yaml (+ the conf/zk backend group). The account reading, scenario matrix and statement
building live in :mod:`zkproofs.account` (re-exported here); this module adds the synthetic-book account and the app.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

from experiments._cli import hydra_app
import numpy as np
import pandas as pd
from omegaconf import DictConfig

import zkproofs
from zkproofs.account import (  # noqa: F401  (re-exported: experiments.prove.<name> is the library's object)
    EXAMPLE_ACCOUNT, Account, AccountFileError, Row, UnderMargined, _COLUMNS, _OPTION_COLUMNS, build_statement,
    check_margined, choose_amount_scale, make_context, read_account, scenario_matrix, venue_witness)

_venue_witness = venue_witness


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

def load_account(path: str | Path | None, book_index: int | None = None, book_seed: int = 0) -> Account:
    """Read and check an account file (CSV or Parquet), or take account ``book_index`` of the synthetic book
    (:func:`book_account`), or the built-in example (:func:`zkproofs.account.read_account`). Amounts are kept
    exact. Raises :class:`AccountFileError` naming file, line, column and value."""
    if path is None and book_index is not None:
        return read_account(frame=book_account(int(book_index), seed=int(book_seed)),
                            name=f"<book account {book_index}>")
    return read_account(path)


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
        bal, pos = venue_witness(st, acc, str(cfg.positions.sub_unit))
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
