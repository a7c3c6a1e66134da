"""Exchange-wide solvency (zkproofs.solvency, issue 12): honest runs verify and match a plain-integer reference;
every tampering the issue lists is rejected; hostile bytes raise typed errors only; the CLIs' exit codes."""
from __future__ import annotations

import copy
import json
import random
import stat

import pytest

from zkproofs import ProofError, R, StatementError, get_backend, get_generators
from zkproofs.solvency import (
    AccountWitness,
    SeededSecretSource,
    SolvencyParams,
    inline_bundle,
    prove_solvency,
    verify_bundle_dict,
    verify_inclusion,
)
from zkproofs.solvency import statement as st

# small bit sizes keep the tests fast: balances and positions < 2^16 units, every value claim < 2^32 units
PRICES = dict(assets=("USDC", "BTC"), liability_prices=(1, 600), haircut_prices=(1, 540))
PNL = ((0, 60, -60),)  # one linear instrument, scenarios 0, +10%, -10% (value units per position unit)


def make_params(F=50_000, Rv=10**7, **kw) -> SolvencyParams:
    base = dict(venue="test-venue", epoch="2024-01-01", instruments=("BTC-PERP",), pnl=PNL,
                scenarios=("0", "+10%", "-10%"), insurance_fund=F, reserves=Rv, value_scale=100,
                collateral_bits=16, position_bits=16, value_bits=32, shard_size=4, **PRICES)
    base.update(kw)
    return SolvencyParams(**base)


def make_accounts(n=7, seed=3) -> list[AccountWitness]:
    rnd = random.Random(seed)
    return [AccountWitness(f"user-{i}", (rnd.randrange(20_000), rnd.randrange(50)), (rnd.randrange(-400, 400),))
            for i in range(n)]


def reference(p: SolvencyParams, accounts) -> dict:
    """Plain-integer reference of every claim, from the raw witnesses (no commitments)."""
    E = sum(sum(pk * b for pk, b in zip(p.liability_prices, a.balances)) for a in accounts)
    surplus = [[sum(w * b for w, b in zip(p.haircut_prices, a.balances)) +
                sum(p.pnl[j][s] * q for j, q in enumerate(a.positions)) for s in range(p.S)] for a in accounts]
    deficits = [[max(0, -x) for x in row] for row in surplus]
    D = [sum(d[s] for d in deficits) for s in range(p.S)]
    return {"E": E, "D": D, "solvent": p.reserves - E >= 0, "stress_ok": all(p.insurance_fund - x >= 0 for x in D),
            "deficits": deficits}


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    p, accts = make_params(), make_accounts()
    out = tmp_path_factory.mktemp("solvency")
    s = prove_solvency(p, accts, out, executor="local", secrets_=SeededSecretSource(11))
    return p, accts, out, s, inline_bundle(s["public"])


def _reject(bundle):
    with pytest.raises(ProofError):
        verify_bundle_dict(bundle)


# ------------------------------------------------------------------------------------------------- honest runs
def test_honest_run_verifies_and_matches_plain_integer_reference(honest):
    p, accts, out, s, b = honest
    ref = reference(p, accts)
    assert ref["solvent"] and ref["stress_ok"] and any(sum(d) for d in ref["deficits"])  # some accounts in deficit
    assert s["total_equity_PRIVATE"] == ref["E"] and s["deficit_sums_PRIVATE"] == ref["D"]
    got = verify_bundle_dict(b)
    assert got["accounts"] == len(accts) and got["scenarios"] == 3 and got["reserves"] == p.reserves
    by_id = {a.account_id: a for a in accts}
    files = sorted((out / "inclusion").iterdir())
    assert len(files) == len(accts)
    for f in files:
        inc = json.loads(f.read_text())
        r = verify_inclusion(b["statement"], inc)
        a = by_id[r["account_id"]]
        assert tuple(r["balances"].values()) == a.balances and tuple(r["positions"].values()) == a.positions
        assert r["deficits"] == ref["deficits"][accts.index(a)]
        assert r["proof_bytes"] <= 5000
    # the root commitment opens to E with the sum of the equity blindings (from the private openings)
    be, g = get_backend(), get_generators()
    blind = 0
    for f in (out / "private").iterdir():
        for acc in json.loads(f.read_text())["accounts"]:
            gs = [int(x, 16) for x in acc["blindings"]]
            blind += sum(pk * gs[k] for k, pk in enumerate(p.liability_prices))
    root = be.encode(be.msm([g.B, g.B_blinding], [ref["E"], blind % R]))
    assert root.hex() == b["statement"]["root"]["commitment"]


def test_private_files_mode_0600_and_own_folder(honest):
    _, _, out, _, _ = honest
    assert stat.S_IMODE((out / "private").stat().st_mode) == 0o700
    for d in ("private", "inclusion"):
        for f in (out / d).iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600
    pub = (out / "public" / "PUBLIC.json").read_text()
    assert "blindings" not in pub and "salt" not in pub


def test_prover_refuses_false_statements():
    accts = make_accounts()
    ref = reference(make_params(), accts)
    with pytest.raises(StatementError, match="reserves - total equity"):
        prove_solvency(make_params(Rv=ref["E"] - 1), accts, "/tmp/unused-solv", executor="local")
    with pytest.raises(StatementError, match="insurance fund - total deficit"):
        prove_solvency(make_params(F=max(ref["D"]) - 1), accts, "/tmp/unused-solv", executor="local")
    dup = accts + [AccountWitness("user-2", (1, 1), (0,))]
    with pytest.raises(StatementError, match="duplicate account id 'user-2'"):
        prove_solvency(make_params(), dup, "/tmp/unused-solv", executor="local")
    with pytest.raises(StatementError, match="balance"):
        prove_solvency(make_params(), accts + [AccountWitness("neg", (-5, 0), (0,))], "/tmp/unused-solv",
                       executor="local")


# ---------------------------------------------------------------------------------------------- tampered bundles
def test_changed_leaf_rejected(honest):
    b = copy.deepcopy(honest[4])
    leaf = b["shards"][0]["leaves"][1]
    leaf["commitments"][0], leaf["commitments"][1] = leaf["commitments"][1], leaf["commitments"][0]
    _reject(b)


def test_swapped_leaves_rejected(honest):
    b = copy.deepcopy(honest[4])
    lv = b["shards"][0]["leaves"]
    lv[0], lv[1] = lv[1], lv[0]
    _reject(b)
    b = copy.deepcopy(honest[4])  # across shards, with the shards' order kept
    b["shards"][0]["leaves"][0], b["shards"][1]["leaves"][0] = b["shards"][1]["leaves"][0], b["shards"][0]["leaves"][0]
    _reject(b)


def test_duplicate_leaf_rejected(honest):
    b = copy.deepcopy(honest[4])
    lv = b["shards"][0]["leaves"]
    lv[1] = copy.deepcopy(lv[0])
    with pytest.raises(ProofError, match="strictly increasing"):
        verify_bundle_dict(b)


def test_node_sum_mismatch_rejected(honest):
    """A root (or a path node) whose commitment is not the sum of its children's."""
    b = copy.deepcopy(honest[4])
    be, g = get_backend(), get_generators()
    root = be.decode(bytes.fromhex(b["statement"]["root"]["commitment"]))
    b["statement"]["root"]["commitment"] = be.encode(be.add(root, g.B)).hex()  # sum + 1
    _reject(b)
    p, _, out, _, good = honest
    inc = json.loads(next((out / "inclusion").iterdir()).read_text())
    sib = be.decode(bytes.fromhex(inc["path"][1][0]))
    inc["path"][1][0] = be.encode(be.add(sib, g.B)).hex()
    with pytest.raises(ProofError):
        verify_inclusion(good["statement"], inc)


@pytest.mark.parametrize("field,delta", [("insurance_fund", 1), ("reserves", -1), ("pnl", 0), ("epoch", 0)])
def test_changed_statement_rejected(honest, field, delta):
    b = copy.deepcopy(honest[4])
    prm = b["statement"]["params"]
    if field == "pnl":
        prm["pnl"][0][2] = str(int(prm["pnl"][0][2]) + 1)  # a scenario changed
    elif field == "epoch":
        prm["epoch"] = "2024-01-02"
    else:
        prm[field] = str(int(prm[field]) + delta)
    _reject(b)
    inc = json.loads(next((honest[2] / "inclusion").iterdir()).read_text())
    with pytest.raises(ProofError):
        verify_inclusion(b["statement"], inc)


def test_inclusion_for_another_account_rejected(honest):
    _, _, out, _, b = honest
    files = sorted((out / "inclusion").iterdir())
    inc, other = json.loads(files[0].read_text()), json.loads(files[1].read_text())
    forged = dict(inc, account_id=other["account_id"])  # claim someone else's leaf
    with pytest.raises(ProofError):
        verify_inclusion(b["statement"], forged)
    forged = dict(inc, balances=[str(int(inc["balances"][0]) + 1)] + inc["balances"][1:])
    with pytest.raises(ProofError):
        verify_inclusion(b["statement"], forged)


# --------------------------------------------------------------------------------- a cheating prover (wraparound)
@pytest.fixture
def cheat(monkeypatch):
    """A prover that commits negative values as r - x and 'proves' claims it cannot (values reduced mod 2^n):
    what a venue would need to hide a negative balance, a negative node or an uncovered deficit."""
    monkeypatch.setattr(AccountWitness, "check", lambda self, p: None)

    def wrapped(claims, values, blindings):
        return [((sum(a * values[i] for i, a in c.terms) + c.const) % (1 << c.bits),
                 sum(a * blindings[i] for i, a in c.terms) % R) for c in claims]

    monkeypatch.setattr(st, "claim_values", wrapped)
    return monkeypatch


def test_negative_account_via_wraparound_rejected(cheat, tmp_path):
    accts = make_accounts() + [AccountWitness("whale-short", (R - 5_000, 0), (0,))]  # committed as r - 5000
    p = make_params()
    s = prove_solvency(p, [AccountWitness(a.account_id, tuple(x if x < R // 2 else x - R for x in a.balances),
                                          a.positions) for a in accts], tmp_path, executor="local")
    _reject(inline_bundle(s["public"]))


def test_negative_node_via_wraparound_rejected(cheat, tmp_path):
    """Liabilities moved out of a subtree: a leaf with a large negative balance so that its node sums wrap."""
    accts = make_accounts(8) + [AccountWitness("hider", (-30_000, 0), (0,))]
    s = prove_solvency(make_params(Rv=1), accts, tmp_path, executor="local")
    _reject(inline_bundle(s["public"]))


def test_uncovered_deficit_rejected(cheat, tmp_path):
    accts = make_accounts()
    ref = reference(make_params(), accts)
    s = prove_solvency(make_params(F=max(ref["D"]) // 2), accts, tmp_path, executor="local")
    _reject(inline_bundle(s["public"]))
    # an account whose committed deficit is too small (surplus + d < 0): hidden by a zero deficit
    cheat.setattr(AccountWitness, "deficits", lambda self, p: [0] * p.D)
    s = prove_solvency(make_params(), accts, tmp_path / "b", executor="local")
    _reject(inline_bundle(s["public"]))


# ---------------------------------------------------------------------------------------- Frozen Heart (root)
def test_transcript_omitting_root_admits_forged_reserves_proof_ours_refuses(frozen_heart_forgery):
    """R - E >= 0 proved for a root commitment E chosen AFTER the challenges: a verifier whose transcript omits the
    root accepts an insolvent root (E = R + huge); ours absorbs the root first and rejects."""
    be, gens = get_backend(), get_generators()
    p = make_params(value_bits=8, Rv=100)
    header = {"params": p.to_json(), "n_leaves": 1, "root": {"commitment": "", "hash": "00" * 32}}
    weak = lambda: st.base_transcript(header, b"top", 0, absorb_root=False)  # noqa: E731
    proof, v_f, g_f = frozen_heart_forgery(be, gens, weak(), 8)
    # claim "reserves - E" with V = R B - E: E := R B - V opens to R - v_f (far above R: insolvent)
    E = be.msm([gens.B, gens.B_blinding], [(p.reserves - v_f) % R, (-g_f) % R])
    assert not 0 <= v_f < 256  # R - E = v_f mod r: far outside [0, 2^8), E exceeds the reserves
    claims = [st.Claim(8, ((0, -1),), p.reserves, "reserves - total equity")]
    st.check_all(be, st.claim_terms(be, weak(), claims, [E], [proof]))  # the weakened verifier accepts
    header["root"]["commitment"] = be.encode(E).hex()
    with pytest.raises(ProofError):
        st.check_all(be, st.claim_terms(be, st.base_transcript(header, b"top", 0), claims, [E], [proof]))


# ------------------------------------------------------------------------------------------------ hostile bytes
def test_hostile_bundles_raise_typed_errors_only(honest):
    good = honest[4]
    rnd = random.Random(5)
    junk = [None, 1, "x", [], {"a": 1}, -1, 10**400, 1.5, "00" * 48, "zz", [None] * 3, True]

    def paths(o, pre=()):
        if isinstance(o, dict):
            for k, v in o.items():
                yield from paths(v, pre + (k,))
        elif isinstance(o, list):
            for i, v in enumerate(o[:3]):
                yield from paths(v, pre + (i,))
        yield pre

    all_paths = [q for q in paths(good) if q]
    for _ in range(60):
        b = copy.deepcopy(good)
        q = rnd.choice(all_paths)
        o = b
        for k in q[:-1]:
            o = o[k]
        o[q[-1]] = rnd.choice(junk)
        with pytest.raises(ProofError):
            verify_bundle_dict(b)
    for bad in (None, [], {"format": "predictive-margin/solvency-bundle"}, "x"):
        with pytest.raises(ProofError):
            verify_bundle_dict(bad)
    inc = json.loads(next((honest[2] / "inclusion").iterdir()).read_text())
    for k in inc:
        for j in junk[:6]:
            if (k == "warning" and j == "x") or inc[k] == j:
                continue  # free text, or the honest value
            with pytest.raises(ProofError):
                verify_inclusion(good["statement"], dict(inc, **{k: j}))


def test_params_refuse_wraparound_and_bad_values():
    with pytest.raises(StatementError, match="2\\^128"):  # coefficient bound: with 64-bit inputs no claim can
        make_params(liability_prices=(1, 2**128), haircut_prices=(1, 1))  # reach 2^250 (checked in _check_wrap)
    big = make_params(liability_prices=(1, 2**128 - 1), haircut_prices=(1, 1), collateral_bits=64, value_bits=64)
    assert big.liability_prices[1] == 2**128 - 1
    with pytest.raises(StatementError):
        make_params(shard_size=3)
    with pytest.raises(StatementError):
        make_params(value_bits=48)
    with pytest.raises(StatementError):
        make_params(haircut_prices=(2, 540))  # haircut price above the liability price


# ----------------------------------------------------------------------------------------------------- the CLI
def test_verify_cli_exit_codes(honest, tmp_path, capsys):
    from experiments.verify_solvency import main

    _, _, out, _, _ = honest
    pub = out / "public" / "PUBLIC.json"
    inc = next((out / "inclusion").iterdir())
    assert main([str(pub), "--account", str(inc)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("VERIFIED") and "epoch 2024-01-01" in lines[0] and "accounts 7" in lines[1]
    assert main([str(tmp_path / "missing.json")]) == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert main([str(tmp_path / "bad.json")]) == 2
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    assert main([str(tmp_path / "other.json")]) == 2
    # a tampered copy: one shard's leaf changed (digest mismatch), then F changed
    d = tmp_path / "pub"
    (d / "shards").mkdir(parents=True)
    for f in (out / "public" / "shards").iterdir():
        (d / "shards" / f.name).write_text(f.read_text())
    bundle = json.loads(pub.read_text())
    bundle["statement"]["params"]["insurance_fund"] = str(int(bundle["statement"]["params"]["insurance_fund"]) + 1)
    (d / "PUBLIC.json").write_text(json.dumps(bundle))
    assert main([str(d / "PUBLIC.json")]) == 1
    shard = d / "shards" / "shard-000000.json"
    s = json.loads(shard.read_text())
    s["leaves"][0]["uid"] = "00" * 32
    shard.write_text(json.dumps(s))
    assert main([str(pub.parent / "PUBLIC.json")]) == 0
    (d / "PUBLIC.json").write_text(pub.read_text())
    assert main([str(d / "PUBLIC.json")]) == 1
    other = json.loads(inc.read_text())
    other["account_id"] = "someone-else"
    (tmp_path / "inc.json").write_text(json.dumps(other))
    assert main([str(pub), "--account", str(tmp_path / "inc.json")]) == 1
    out_text = capsys.readouterr().out
    assert "Traceback" not in out_text


def test_parquet_input(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from zkproofs.solvency.inputs import SolvencyInputError, read_accounts_parquet

    p = make_params()
    rows = {"account": ["a", "a", "b", "a"], "kind": ["collateral", "position", "collateral", "collateral"],
            "name": ["USDC", "BTC-PERP", "BTC", "BTC"], "amount": [150.25, -0.5, 0.001, 0.01]}
    pq.write_table(pa.table(rows), tmp_path / "acc.parquet")
    accts = read_accounts_parquet(tmp_path / "acc.parquet", make_params(amount_scales=(100, 100_000),
                                                                         position_scales=(100,)))
    assert [(a.account_id, a.balances, a.positions) for a in accts] == [("a", (15025, 1000), (-50,)),
                                                                        ("b", (0, 100), (0,))]
    bad = dict(rows, kind=["collateral", "position", "loan", "collateral"])
    pq.write_table(pa.table(bad), tmp_path / "bad.parquet")
    with pytest.raises(SolvencyInputError, match=r"bad.parquet: row 2, column kind: 'loan'"):
        read_accounts_parquet(tmp_path / "bad.parquet", p)
    dup = {k: v + [v[0]] for k, v in rows.items()}
    pq.write_table(pa.table(dup), tmp_path / "dup.parquet")
    with pytest.raises(SolvencyInputError, match="row 4: account 'a' has a second collateral row for 'USDC'"):
        read_accounts_parquet(tmp_path / "dup.parquet", p)
    with pytest.raises(SolvencyInputError, match="cannot read"):
        read_accounts_parquet(tmp_path / "missing.parquet", p)


# ------------------------------------------------------------------------------------------ experiments.solvency
def test_solvency_app_user_errors_are_typed(tmp_path):
    from experiments.solvency import prove_book_solvency
    from zkproofs.solvency.inputs import SolvencyInputError

    with pytest.raises(SolvencyInputError, match="input.parquet"):
        prove_book_solvency(tmp_path, 2, executor="local", **{"input.source": "parquet"})
    with pytest.raises(SolvencyInputError, match="input.source='csv'"):
        prove_book_solvency(tmp_path, 2, executor="local", **{"input.source": "csv"})
    with pytest.raises(SolvencyInputError, match="market.assets.USDC"):
        prove_book_solvency(tmp_path, 2, executor="local", **{"market.assets.USDC.haircut": 1.5})
    with pytest.raises(SolvencyInputError, match=r"missing.parquet: cannot read"):
        prove_book_solvency(tmp_path, 2, executor="local",
                            **{"input.source": "parquet", "input.parquet": str(tmp_path / "missing.parquet")})


@pytest.mark.slow
def test_prove_book_solvency_for_make_run(tmp_path):
    from experiments.solvency import prove_book_solvency

    m = prove_book_solvency(tmp_path, 6, executor="local", **{"shard_size": 4})
    assert m["verified"] and m["accounts"] == 6 and m["scenarios"] == 9 and m["shards"] == 2
    assert m["inclusion_proof_bytes_max"] <= 5000
    assert len(list((tmp_path / "inclusion").iterdir())) == 6
    assert not [k for k in m if "PRIVATE" in k]


@pytest.mark.parametrize("n,shard_size", [(1, 4), (5, 1), (5, 8)])
def test_tree_shapes_verify(tmp_path, n, shard_size):
    """One leaf (empty path), one leaf per shard, one partial shard: bundle and every inclusion file verify."""
    s = prove_solvency(make_params(shard_size=shard_size), make_accounts(n), tmp_path, executor="local")
    b = inline_bundle(s["public"])
    assert verify_bundle_dict(b)["accounts"] == n
    for f in (tmp_path / "inclusion").iterdir():
        verify_inclusion(b["statement"], json.loads(f.read_text()))
