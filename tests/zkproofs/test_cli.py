"""experiments.prove / experiments.verify through Hydra's compose() and argv: pinned statements, exit codes
0/1/2, real accounts (64-bit collateral, refusals in the account's units with file and line, sub-unit positions,
option legs of book accounts)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

import zkproofs
from experiments import prove as prove_cli
from experiments import verify as verify_cli

CONF = str(Path(__file__).resolve().parents[2] / "conf")
SMALL = ["scenarios.fractions=[0.0,1.0,-1.0]", "scenarios.cover=[1.0,1.0,1.0]", "buffer_usd=10",
         "context.venue=test-venue", "context.account=acct-7", "context.epoch=42"]


def _cfg(overrides=()):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose(config_name="zk/cli/prove", overrides=list(overrides))


def _write(tmp_path, text, name="acct.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


ACCT = "kind,name,amount,price,haircut\ncollateral,USDC,5000,1,0\ncollateral,BTC,0.1,60000,0.05\n" \
       "position,BTC-PERP,0.2,60000,0\n"


@pytest.fixture(scope="module")
def proved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    acc = _write(tmp, ACCT)
    m = prove_cli.prove_account(_cfg([f"account.path={acc}"] + SMALL), tmp / "out")
    return tmp, m


def test_prove_then_verify_cli(proved, capsys):
    tmp, m = proved
    bundle, statement = Path(m["bundle"]), Path(m["statement"])
    opened = json.loads(Path(m["openings"]).read_text())
    assert m["amount_scale"] == 10 and m["bits"]["collateral"] == 64  # 0.1 BTC, 0.2 BTC: 1/10 coin is exact
    assert opened["values"][:2] == [str(5000 * 10), str(1)]
    assert "values" not in bundle.read_text() and oct(Path(m["openings"]).stat().st_mode)[-3:] == "600"
    # statement.json is the canonical JSON; its SHA-256 is the digest
    raw = statement.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == m["statement_digest"]
    assert zkproofs.statement_from_json(raw).canonical_bytes() == raw
    assert verify_cli.main([str(bundle), "--statement", str(statement)]) == 0
    assert "VERIFIED" in capsys.readouterr().out
    assert verify_cli.main([str(bundle), "--statement-digest", m["statement_digest"]]) == 0
    assert verify_cli.main([str(bundle), "--statement-digest", m["statement_digest"].upper()]) == 0
    assert verify_cli.main([str(bundle), "--statement-digest", "0" * 64]) == 1
    capsys.readouterr()
    # no pinned statement: refused with exit 2 unless trusted; trusted prints digest and summary
    assert verify_cli.main([str(bundle)]) == 2
    assert "REFUSED" in capsys.readouterr().out
    assert verify_cli.main([str(bundle), "--trust-bundle-statement"]) == 0
    out = capsys.readouterr().out
    assert m["statement_digest"] in out and "scan range 0.1" in out and "buffer 10.00 USD" in out
    assert "move +0.1000" in out and "test-venue" in out
    # expired at the verifier's time
    exp = zkproofs.statement_from_json(raw).context.expiry
    assert verify_cli.main([str(bundle), "--statement", str(statement), "--now", str(exp)]) == 1
    assert "ExpiredStatement" in capsys.readouterr().out


def test_verify_exit_codes_on_hostile_files(proved, capsys):
    tmp, m = proved
    bundle, statement = Path(m["bundle"]), Path(m["statement"])
    obj = json.loads(bundle.read_text())
    text = bundle.read_text()
    # tampered public statement inside the bundle: parses, does not verify -> 1
    obj["statement"]["buffer"] = str(int(obj["statement"]["buffer"]) - 1)
    bad = _write(tmp, json.dumps(obj), "bad.json")
    assert verify_cli.main([str(bad), "--trust-bundle-statement"]) == 1
    assert verify_cli.main([str(bad), "--statement", str(statement)]) == 1
    assert "StatementMismatch" in capsys.readouterr().out
    unreadable = {"junk.json": "{not json", "inf.json": text.replace('"buffer": "', '"buffer": Infinity, "x": "', 1),
                  "deep.json": text.replace('"commitments": {', '"commitments": ' + "[" * 900 + "]" * 900 +
                                            ', "x": {', 1),
                  "float.json": text.replace('"dst_version": "1"', '"dst_version": 1.0'),
                  "curve.json": text.replace("BLS12-381-G1", "BN254"), "empty.json": ""}
    for name, t in unreadable.items():
        assert verify_cli.main([str(_write(tmp, t, name)), "--trust-bundle-statement"]) == 2, name
        assert "UNREADABLE" in capsys.readouterr().out
    assert verify_cli.main([str(tmp / "missing.json"), "--trust-bundle-statement"]) == 2
    assert verify_cli.main([str(bundle), "--statement", str(tmp / "junk.json")]) == 2
    assert verify_cli.main([str(bundle), "--statement-digest", "xyz"]) == 2


def test_statement_substitution_through_cli_and_api(tmp_path, capsys):
    """Issue 11 attack 1: an account refused at the venue's scan range 0.10 re-proves at 0.03. Verified against
    the venue's statement (file or digest; CLI or API), the bundle is rejected."""
    acc = _write(tmp_path, "kind,name,amount,price,haircut\ncollateral,USDC,5000,1,0\n"
                           "position,BTC-PERP,1,60000,0\n")
    venue_cfg = _cfg([f"account.path={acc}"] + SMALL)
    with pytest.raises(prove_cli.UnderMargined, match=r"scenario 'move -0.1000 x cover 1': shortfall 1,010.00 USD"):
        prove_cli.prove_account(venue_cfg, tmp_path / "venue")
    # the venue publishes its statement (here: built with the same config from a well-margined copy)
    rich = _write(tmp_path, "kind,name,amount,price,haircut\ncollateral,USDC,50000,1,0\n"
                            "position,BTC-PERP,1,60000,0\n", "rich.csv")
    v = prove_cli.prove_account(_cfg([f"account.path={rich}", "context.account=acct-7"] + SMALL), tmp_path / "v")
    venue_statement = Path(v["statement"])
    m = prove_cli.prove_account(_cfg([f"account.path={acc}", "scenarios.scan_range=0.03"] + SMALL),
                                tmp_path / "cheat")
    cheat = Path(m["bundle"])
    assert verify_cli.main([str(cheat), "--trust-bundle-statement"]) == 0  # a true statement about 3% ...
    capsys.readouterr()
    assert verify_cli.main([str(cheat), "--statement", str(venue_statement)]) == 1  # ... not the venue's
    out = capsys.readouterr().out
    assert "StatementMismatch" in out and "params" in out and "pnl_long" in out
    assert verify_cli.main([str(cheat), "--statement-digest", v["statement_digest"]]) == 1
    venue = zkproofs.statement_from_json(venue_statement.read_bytes())
    obj = json.loads(cheat.read_text())
    assert not zkproofs.verify_bundle(obj, expected_statement=venue)
    assert not zkproofs.verify_bundle(obj, expected_statement=venue_statement.read_bytes())
    assert not zkproofs.verify_bundle(obj, expected_statement_digest=venue.digest())
    assert not zkproofs.verify_bundle(obj)  # nothing pinned: refused
    # a milder P&L matrix [[-1]] in place of [[-10]] (API): rejected against the venue's statement
    ctx = zkproofs.Context("v", "a", 1, 2**40)
    real = zkproofs.MarginStatement([1], [[-10]], 0, 16, 16, 16, context=ctx)
    mild = zkproofs.MarginStatement([1], [[-1]], 0, 16, 16, 16, context=ctx)
    b = zkproofs.prove_margin(mild, [5], [1])
    assert zkproofs.verify_bundle(b, expected_statement=mild)
    assert not zkproofs.verify_bundle(b, expected_statement=real)
    # the prover may also prove against the venue's published statement.json
    m2 = prove_cli.prove_account(_cfg([f"account.path={rich}", f"statement={venue_statement}"] + SMALL),
                                 tmp_path / "own")
    assert verify_cli.main([m2["bundle"], "--statement", str(venue_statement)]) == 0


def test_replay_under_another_context_refused(proved):
    """A bundle proved for one (venue, account, epoch) does not verify for another: editing the context breaks
    the transcript; pinning another account's statement is a mismatch."""
    tmp, m = proved
    obj = json.loads(Path(m["bundle"]).read_text())
    st = zkproofs.statement_from_json(obj["statement"])
    for f, v in (("account", "acct-8"), ("venue", "other"), ("epoch", "43"), ("expiry", str(2**50))):
        o = json.loads(json.dumps(obj))
        o["statement"]["context"][f] = v
        assert not zkproofs.verify_bundle(o, trust_bundle_statement=True), f
        other = zkproofs.statement_from_json(o["statement"])
        assert not zkproofs.verify_bundle(obj, expected_statement=other), f
    assert zkproofs.verify_bundle(obj, expected_statement=st)


def test_large_account_64bit_default_and_refusal_in_account_units(tmp_path):
    """Issue 11: a 500,000 USDC account failed with 32-bit collateral at 1e-4 coin; 64-bit is the default now,
    and a width that does not fit is refused before proving, in the account's units, with file and line."""
    acc = _write(tmp_path, "kind,name,amount,price,haircut\ncollateral,USDC,500000,1,0\n"
                           "position,BTC-PERP,2.5,60000,0\n")
    m = prove_cli.prove_account(_cfg([f"account.path={acc}"] + SMALL), tmp_path / "out")
    assert m["bits"]["collateral"] == 64
    assert verify_cli.main([m["bundle"], "--statement", m["statement"]]) == 0
    with pytest.raises(prove_cli.AccountFileError) as ei:
        prove_cli.prove_account(_cfg([f"account.path={acc}", "zk.bits.collateral=32", "units.amount_scale=10000"]
                                     + SMALL), tmp_path / "o2")
    msg = str(ei.value)
    assert f"{acc}: line 2: USDC 500,000.0000 exceeds the 32-bit collateral range (429,496.7295 USDC" in msg
    assert "set zk.bits.collateral=64" in msg


def test_bad_account_file_named_on_the_right_line(tmp_path):
    """The wrong-line bug: `abc` on line 3 was reported on line 2 with another value."""
    acc = _write(tmp_path, "kind,name,amount,price,haircut\ncollateral,USDC,100,1,0\nposition,X,abc,5,0\n")
    with pytest.raises(prove_cli.AccountFileError, match=r"line 3, column amount: 'abc' is not a finite number"):
        prove_cli.load_account(acc)
    acc = _write(tmp_path, "kind,name,amount,price,haircut\ncollateral,USDC,100,1,0\n\nposition,X,1,-5,0\n")
    with pytest.raises(prove_cli.AccountFileError, match="line 4, column price"):
        prove_cli.load_account(acc)
    acc = _write(tmp_path, "kind,name,amount,price,haircut\ncollateral,USDC,1e400,1,0\nposition,X,1,5,0\n")
    with pytest.raises(prove_cli.AccountFileError, match="line 2"):
        prove_cli.prove_account(_cfg([f"account.path={acc}"] + SMALL), tmp_path / "o")


def test_sub_unit_positions_refused_or_rounded_against_the_prover(tmp_path):
    """0.00001 BTC used to be committed as 0. The amount unit is now chosen from the account (1e-5 here); with
    a coarser cap it is refused, or rounded with the rounding added to the buffer and a warning."""
    acc = _write(tmp_path, "kind,name,amount,price,haircut\ncollateral,USDC,1000,1,0\n"
                           "position,BTC-PERP,0.00001,60000,0\n")
    m = prove_cli.prove_account(_cfg([f"account.path={acc}"] + SMALL), tmp_path / "a")
    assert m["amount_scale"] == 100_000 and json.loads(Path(m["openings"]).read_text())["values"][1] == "1"
    cap = [f"account.path={acc}", "units.max_amount_scale=10000"] + SMALL
    with pytest.raises(prove_cli.AccountFileError, match=r"line 3, column amount: position BTC-PERP = 1e-05 is "
                                                         r"finer than the amount unit 1/10000 coin"):
        prove_cli.prove_account(_cfg(cap), tmp_path / "b")
    r = prove_cli.prove_account(_cfg(cap + ["positions.sub_unit=round"]), tmp_path / "c")
    assert r["warnings"] and "rounded" in r["warnings"][0]
    st = zkproofs.statement_from_json(Path(r["statement"]).read_bytes())
    # buffer = 10 USD + |0.00001 - 0| coin x worst per-coin P&L (60,000 x 10% = 6,000 USD) = 10.06 USD
    assert st.value_scale == 10**8 and st.buffer == 10.06 * st.value_scale


def test_book_account_with_option_legs(tmp_path):
    """Account 1 of the synthetic book holds an option spread: both legs are proved with their scenario P&L
    (Black-76 revaluation from the margin package, checked here against a plain Black-76 reference)."""
    from margin import black76_price

    acc = prove_cli.load_account(None, book_index=1)
    legs = [r for r in acc.positions if r.kind == "option"]
    assert len(legs) == 2 and legs[0].amount == -legs[1].amount
    cfg = _cfg(["account.book_index=1", "positions.sub_unit=round", "units.max_amount_scale=10000"] + SMALL)
    L, labels, params = prove_cli.scenario_matrix(acc, cfg)
    for j, r in enumerate(acc.positions):
        if r.kind != "option":
            continue
        o, F = r.option, float(r.price)
        ref = [float(black76_price(F * (1 + mv), o["strike"], o["expiry_days"] / 365, 0.6, o["option_type"] == "C",
                                   dtype=np.float64))
               - float(black76_price(F, o["strike"], o["expiry_days"] / 365, 0.6, o["option_type"] == "C",
                                     dtype=np.float64)) for mv in (0.0, 0.1, -0.1)]
        np.testing.assert_allclose(L[j], ref, rtol=1e-9, atol=1e-6)
    m = prove_cli.prove_account(cfg, tmp_path / "book")
    assert m["option_legs"] == 2 and verify_cli.main([m["bundle"], "--statement", m["statement"]]) == 0


def test_parquet_account(tmp_path):
    import pandas as pd

    df = pd.DataFrame([("collateral", "USDC", 1000.0, 1.0, 0.0), ("position", "ETH-PERP", -0.5, 3000.0, 0.0)],
                      columns=["kind", "name", "amount", "price", "haircut"])
    df.to_parquet(tmp_path / "a.parquet")
    acc = prove_cli.load_account(tmp_path / "a.parquet")
    assert [float(r.amount) for r in acc.positions] == [-0.5] and [r.name for r in acc.collateral] == ["USDC"]


def test_entry_points_one_line_and_exit_status(tmp_path):
    """Through the real entry points: an under-margined account is ONE line naming the scenario and the shortfall
    in USD, exit 2; verify's exit statuses are 0 / 1 / 2."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    acc = _write(tmp_path, "kind,name,amount,price,haircut\ncollateral,USDC,100,1,0\nposition,BTC-PERP,1,60000,0\n")
    r = subprocess.run([sys.executable, "-m", "experiments.prove", f"account.path={acc}", f"out_dir={tmp_path}/o"]
                       + SMALL, capture_output=True, text=True, env=env, timeout=300)
    lines = [x for x in (r.stdout + r.stderr).splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stdout + r.stderr
    assert f"{acc}: under-margined in scenario 'move -0.1000 x cover 1': shortfall 5,910.00 USD" in lines[0]
    junk = _write(tmp_path, '{"format": Infinity}', "junk.json")
    r = subprocess.run([sys.executable, "-m", "experiments.verify", str(junk), "--trust-bundle-statement"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "UNREADABLE" in r.stdout


def test_position_width_refused_in_account_units(tmp_path):
    acc = _write(tmp_path, "kind,name,amount,price,haircut\ncollateral,USDC,1e12,1,0\n"
                           "position,BTC-PERP,500000,0.01,0\n")
    with pytest.raises(prove_cli.AccountFileError, match=r"line 3: position BTC-PERP 500,000.0000 exceeds the "
                                                         r"32-bit position range \(429,496.7295 coin at 1/10000 coin"):
        prove_cli.prove_account(_cfg([f"account.path={acc}", "zk.bits.position=32", "units.amount_scale=10000"]
                                     + SMALL), tmp_path / "o")
