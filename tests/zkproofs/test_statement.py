"""Margin-sufficiency statements: completeness against a plain integer reference, tampering with every public
input, wraparound, negative balances, equity-covers-margin, cross-venue, stored fixtures."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import zkproofs
from zkproofs import (
    AffineClaim,
    CrossVenueStatement,
    MarginStatement,
    R,
    StatementError,
    bundle_from_json,
    get_generators,
    pnl_to_fixed_point,
    prove_cross_venue,
    prove_equity_covers_margin,
    prove_margin,
    prove_statement,
    verify_bundle,
    verify_cross_venue,
    verify_equity_covers_margin,
    verify_margin,
)

DATA = Path(zkproofs.__file__).parent / "data"


def _account(seed=1, K=2, J=4, S=6):
    rng = np.random.default_rng(seed)
    L = rng.integers(-50_000, 50_000, size=(J, S))
    prices = [int(x) for x in rng.integers(1_000, 60_000, size=K)]
    bal = [int(x) for x in rng.integers(10_000, 100_000, size=K)]
    pos = [int(x) for x in rng.integers(-1_000, 1_000, size=J)]
    return prices, L, bal, pos


def _surplus(prices, L, buffer, bal, pos):
    """Plain-integer reference: per-scenario surplus sum_k w_k b_k + sum_j L[j, s] q_j - buffer."""
    coll = sum(w * b for w, b in zip(prices, bal))
    return [coll + sum(int(L[j][s]) * pos[j] for j in range(len(pos))) - buffer for s in range(len(L[0]))]


@pytest.fixture(scope="module")
def margin_case(ark):
    prices, L, bal, pos = _account()
    buffer = min(_surplus(prices, L, 0, bal, pos)) // 2
    st = MarginStatement(prices, L, buffer, collateral_bits=32, position_bits=16, scenario_bits=64, unit="test")
    bundle = prove_margin(st, bal, pos)
    op = bundle.openings
    return st, bundle, op, (prices, L, buffer, bal, pos)


def test_margin_proof_verifies_and_roundtrips(margin_case):
    st, bundle, op, (prices, L, buffer, bal, pos) = margin_case
    assert min(_surplus(prices, L, buffer, bal, pos)) >= 0
    c = bundle.commitments
    assert verify_margin(st, c["collateral"], c["positions"], bundle.proof)
    assert verify_margin(st, c["collateral"], c["positions"], bundle.proof.to_bytes())
    j = json.loads(json.dumps(bundle.to_json()))
    assert verify_bundle(j)
    assert bundle_from_json(j).proof == bundle.proof
    assert "values" not in json.dumps(j) and str(bal[0]) not in json.dumps(j["commitments"])
    assert list(op.values) == bal + pos
    # two proofs: inputs (16 and 32 bit groups) and scenarios; sizes follow the formula
    assert [len(p.ipp.L) for p in bundle.proof.proofs] == [6, 6, 9]


def test_prover_refuses_false_statements(margin_case):
    st, bundle, op, (prices, L, buffer, bal, pos) = margin_case
    s = _surplus(prices, L, buffer, bal, pos)
    too_much = MarginStatement(prices, L, buffer + min(s) + 1, 32, 16, 64, "test")
    with pytest.raises(StatementError, match="scenario"):
        prove_margin(too_much, bal, pos)
    with pytest.raises(StatementError, match="negative"):
        prove_margin(st, [-5] + bal[1:], pos)
    with pytest.raises(StatementError):
        prove_margin(st, bal, [2**15] + pos[1:])  # position outside [-2^15, 2^15)
    with pytest.raises(StatementError):
        prove_margin(st, bal, pos[:-1])


def _tampered_statements(st):
    L = [list(r) for r in st.pnl]
    L2 = [r[:] for r in L]
    L2[1][2] += 1
    yield "price", MarginStatement((st.prices[0] + 1,) + st.prices[1:], st.pnl, st.buffer, 32, 16, 64, "test")
    yield "L entry", MarginStatement(st.prices, L2, st.buffer, 32, 16, 64, "test")
    yield "buffer", MarginStatement(st.prices, st.pnl, st.buffer + 1, 32, 16, 64, "test")
    yield "buffer down", MarginStatement(st.prices, st.pnl, st.buffer - 1, 32, 16, 64, "test")
    yield "position bits", MarginStatement(st.prices, st.pnl, st.buffer, 32, 32, 64, "test")
    yield "collateral bits", MarginStatement(st.prices, st.pnl, st.buffer, 64, 16, 64, "test")
    yield "scenario bits", MarginStatement(st.prices, st.pnl, st.buffer, 32, 16, 32, "test")
    yield "unit", MarginStatement(st.prices, st.pnl, st.buffer, 32, 16, 64, "other")
    yield "scenario dropped", MarginStatement(st.prices, [r[:-1] for r in L], st.buffer, 32, 16, 64, "test")


def test_any_public_input_changed_rejected(margin_case):
    st, bundle, _, _ = margin_case
    c = bundle.commitments
    for name, bad in _tampered_statements(st):
        assert not verify_margin(bad, c["collateral"], c["positions"], bundle.proof), name


def test_commitments_swapped_changed_identity_offsubgroup_rejected(ark, margin_case, off_subgroup):
    st, bundle, op, _ = margin_case
    col, pos = list(bundle.commitments["collateral"]), list(bundle.commitments["positions"])
    g = get_generators(ark)
    other = ark.encode(ark.msm([g.B, g.B_blinding], [op.values[0] + 1, op.blindings[0]]))
    minus5 = ark.encode(ark.msm([g.B, g.B_blinding], [R - 5, op.blindings[0]]))
    ident = ark.encode(ark.identity())
    cases = [
        (col[::-1], pos), (col, pos[::-1]), ([pos[0]] + col[1:], [col[0]] + pos[1:]),
        ([other] + col[1:], pos), ([minus5] + col[1:], pos), ([ident] + col[1:], pos),
        ([off_subgroup] + col[1:], pos), (col, pos[:-1]), (col + [col[0]], pos), (col, pos + [pos[0]]),
        ([b"\x00"] + col[1:], pos), (["nothex"] + col[1:], pos), ([None] + col[1:], pos),
    ]
    for cc, pp in cases:
        assert not verify_margin(st, cc, pp, bundle.proof)


def test_hostile_bundles_never_raise_untyped(margin_case):
    st, bundle, _, _ = margin_case
    j = bundle.to_json()
    raw = bundle.proof.to_bytes()
    hostile = [None, 3, [], {}, {**j, "kind": "nope"}, {**j, "version": 2}, {**j, "statement": None},
               {**j, "commitments": {"collateral": [1, 2]}}, {**j, "proof": {"version": 1, "range_proofs": [{}]}},
               {**j, "proof": {"version": 1, "range_proofs": j["proof"]["range_proofs"][:1]}},
               {**j, "dst_version": 7}, {**j, "dst_version": True},
               {**j, "statement": {**j["statement"], "pnl": [["x"]]}},
               {**j, "statement": {**j["statement"], "scenario_bits": 12}},
               {**j, "statement": {**j["statement"], "prices": ["-3", "1"]}}]
    for h in hostile:
        assert verify_bundle(h) is False
        with pytest.raises(zkproofs.ProofError):
            verify_bundle(h, raise_on_failure=True)
    c = bundle.commitments
    for bad in (raw[:-1], raw + b"\x00", raw[:5], b"PMZK\x02" + raw[5:], b""):
        assert not verify_margin(st, c["collateral"], c["positions"], bad)


def test_wraparound_refused(ark):
    """A derived claim whose coefficients could wrap mod r is refused up front; an input without its own range
    claim is refused (no input bound); a requirement committed as r - 5 cannot be proved."""
    with pytest.raises(StatementError, match="wrap"):
        prove_statement("custom", {}, [AffineClaim(64, ((0, 1),), 0, "x"),
                                       AffineClaim(64, ((0, 2**200),), 0, "big")], [1])
    with pytest.raises(StatementError, match="no range claim"):
        prove_statement("custom", {}, [AffineClaim(64, ((0, 1), (1, -1)), 0, "e-m"),
                                       AffineClaim(64, ((0, 1),), 0, "e")], [10, R - 5])
    with pytest.raises(StatementError):
        prove_statement("equity", {}, zkproofs.EquityStatement().claims(), [10, R - 5])
    with pytest.raises(StatementError):
        prove_statement("equity", {}, zkproofs.EquityStatement().claims(), [10, -5])


def test_equity_covers_margin(ark, off_subgroup):
    b = prove_equity_covers_margin(1234.56, 1000.0)
    op = b.openings
    assert op.values == (123456, 100000)
    assert verify_equity_covers_margin(b) and verify_equity_covers_margin(b.to_json())
    assert b.proof_bytes == 4 + 2 + 4 + 1 + (2 * 8 + 4) * 48 + 5 * 32
    # rounding against the prover: 1000.004 of equity vs 1000.001 of margin -> 100000 vs 100001: refused
    with pytest.raises(StatementError):
        prove_equity_covers_margin(1000.004, 1000.001)
    with pytest.raises(StatementError):
        prove_equity_covers_margin(float("nan"), 1.0)
    b2 = prove_equity_covers_margin(50.0, 10.0)
    mixed = zkproofs.Bundle("equity", b.statement, {"equity": b.commitments["equity"],
                                                    "maintenance_margin": b2.commitments["maintenance_margin"]},
                            b.proof)
    assert not verify_equity_covers_margin(mixed)
    swapped = zkproofs.Bundle("equity", b.statement, {"equity": b.commitments["maintenance_margin"],
                                                      "maintenance_margin": b.commitments["equity"]}, b.proof)
    assert not verify_equity_covers_margin(swapped)
    bad_buf = zkproofs.Bundle("equity", zkproofs.EquityStatement(buffer=1), b.commitments, b.proof)
    assert not verify_equity_covers_margin(bad_buf)
    off = zkproofs.Bundle("equity", b.statement, {"equity": off_subgroup,
                                                  "maintenance_margin": b.commitments["maintenance_margin"]}, b.proof)
    assert not verify_equity_covers_margin(off)


def test_cross_venue(ark):
    rng = np.random.default_rng(5)
    La = rng.integers(-1000, 1000, size=(3, 4))
    Lb = rng.integers(-1000, 1000, size=(2, 5))
    qa, qb = [5, -7, 3], [-4, 9]
    worst = [max(0, max(-int(La[:, s] @ qa) for s in range(4))), max(0, max(-int(Lb[:, s] @ qb) for s in range(5)))]
    assert min(worst) > 0
    need = sum(worst)
    st = CrossVenueStatement((10,), (La, Lb), buffer=0, collateral_bits=32, position_bits=16, scenario_bits=32,
                             venue_names=("deribit", "cme"))
    bal_ok = [-(-need // 10)]
    b = prove_cross_venue(st, bal_ok, [qa, qb])
    op = b.openings
    assert list(op.values[-2:]) == worst
    assert verify_cross_venue(b) and verify_bundle(json.loads(json.dumps(b.to_json())))
    # collateral that covers each venue's worst loss but not their sum is refused
    bal_short = [(need - 1) // 10]
    assert 10 * bal_short[0] >= max(worst)
    with pytest.raises(StatementError):
        prove_cross_venue(st, bal_short, [qa, qb])
    Lb2 = Lb.copy()
    Lb2[0, 0] += 1
    st2 = CrossVenueStatement((10,), (La, Lb2), 0, 32, 16, 32, ("deribit", "cme"))
    assert not verify_cross_venue(zkproofs.Bundle("cross_venue", st2, b.commitments, b.proof))
    c = dict(b.commitments)
    c["worst_losses"] = c["worst_losses"][::-1]
    assert not verify_cross_venue(zkproofs.Bundle("cross_venue", st, c, b.proof))


def test_pnl_to_fixed_point_rounds_against_prover():
    pnl = np.array([[1.25, -1.25, 0.1], [-0.3, 2.0, -1e-9]])
    got = pnl_to_fixed_point(pnl, 10)
    ref = [[int(np.floor(Fraction(x) * 10)) for x in row] for row in pnl.tolist()]
    assert got.tolist() == ref == [[12, -13, 1], [-3, 20, -1]]
    with pytest.raises(StatementError):
        pnl_to_fixed_point(np.array([[np.nan]]), 10)
    with pytest.raises(StatementError):
        MarginStatement([1], np.array([[0.5]]))  # floats must be converted explicitly
    with pytest.raises(StatementError):
        MarginStatement([-1], [[1]])


@pytest.mark.parametrize("path", sorted(DATA.glob("*_v1.json")), ids=lambda p: p.name)
def test_stored_fixtures_keep_verifying(path):
    """Proofs stored by earlier versions must keep verifying; a tampered copy must not."""
    obj = json.loads(path.read_text())
    assert verify_bundle(obj)
    st = obj["statement"]
    key = "buffer"
    tampered = {**obj, "statement": {**st, key: str(int(st[key]) + 1)}}
    assert not verify_bundle(tampered)


def test_fixtures_exist():
    assert len(list(DATA.glob("*_v1.json"))) >= 3


@pytest.mark.slow
def test_statement_cross_backend(pyecc):
    """Equity proof made with arkworks verifies with py_ecc (slow: N = 256 generators on py_ecc)."""
    b = prove_equity_covers_margin(20.0, 10.0, bits=8, scale=1)
    assert verify_equity_covers_margin(b.to_json(), backend="pyecc")
    b2 = prove_equity_covers_margin(20.0, 10.0, bits=8, scale=1, backend="pyecc")
    assert verify_equity_covers_margin(b2.to_json(), backend="arkworks")


def test_openings_never_serialised():
    b = prove_equity_covers_margin(77.0, 10.0)
    assert b.openings is not None and b.openings.values == (7700, 1000)
    text = json.dumps(b.to_json())
    assert f"{b.openings.blindings[0]:064x}" not in text and "values" not in text and "openings" not in text
    assert "Openings" not in repr(b) and str(b.openings.blindings[0]) not in repr(b) and b.public().openings is None
    assert b.to_bytes() == b.proof.to_bytes()


def test_direct_verifier_calls_with_hostile_arguments_are_typed(margin_case):
    st, bundle, _, _ = margin_case
    c = bundle.commitments
    flat = list(c["collateral"]) + list(c["positions"])
    for kwargs in ({"dst_version": 9}, {"dst_version": "1"}, {"backend": "nope"}):
        assert zkproofs.verify_statement("margin", st.to_json(), st.claims(), flat, bundle.proof, **kwargs) is False
        with pytest.raises(zkproofs.ProofError):
            zkproofs.verify_statement("margin", st.to_json(), st.claims(), flat, bundle.proof,
                                      raise_on_failure=True, **kwargs)
    assert zkproofs.verify_statement("margin", st.to_json(), st.claims(), flat, b"\x00" * 10) is False
    assert zkproofs.verify_statement("margin", st.to_json(), st.claims(), flat, 12345) is False


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as hst  # noqa: E402


@settings(max_examples=12, deadline=None)
@given(seed=hst.integers(0, 2**32 - 1), buffer=hst.integers(0, 5_000))
def test_prover_succeeds_exactly_when_the_integer_reference_holds(seed, buffer):
    """Random small accounts: a proof exists (and verifies) iff every scenario surplus computed with plain Python
    integers lies in [0, 2^32); otherwise the prover refuses with StatementError."""
    rng = np.random.default_rng(seed)
    K, J, S = 1 + seed % 2, 1 + seed % 3, 1 + seed % 4
    L = rng.integers(-300, 300, size=(J, S))
    prices = [int(x) for x in rng.integers(0, 50, size=K)]
    bal = [int(x) for x in rng.integers(0, 200, size=K)]
    pos = [int(x) for x in rng.integers(-20, 20, size=J)]
    st = MarginStatement(prices, L, buffer, collateral_bits=16, position_bits=8, scenario_bits=32)
    ok_ref = all(0 <= v < 2**32 for v in _surplus(prices, L, buffer, bal, pos))
    try:
        b = prove_margin(st, bal, pos)
    except StatementError:
        assert not ok_ref
        return
    assert ok_ref
    assert verify_bundle(b.to_json())


def test_verification_is_one_msm(margin_case):
    """The whole margin statement (all range proofs, all derived commitments) is checked with ONE multi-scalar
    multiplication; batch verification of many range proofs too."""
    from zkproofs.group import ArkworksBackend

    st, bundle, _, _ = margin_case
    calls = []

    class Counting(ArkworksBackend):
        def _msm(self, points, scalars):
            calls.append(len(points))
            return super()._msm(points, scalars)

    be = Counting()
    c = bundle.commitments
    assert verify_margin(st, c["collateral"], c["positions"], bundle.proof, backend=be)
    # generators for this backend instance are derived by hash-to-curve (no MSM); exactly one MSM remains
    assert len(calls) == 1 and calls[0] > 2 * 64 * 8
