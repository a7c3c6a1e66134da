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
CTX = zkproofs.Context("test-venue", "acct-1", 7, 2**40)


def _pos(c):
    """Position commitments in verify_margin's order: long parts then short parts."""
    return list(c["long"]) + list(c["short"])


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
    st = MarginStatement(prices, L, buffer, collateral_bits=32, position_bits=16, scenario_bits=64, unit="test",
                         context=CTX)
    bundle = prove_margin(st, bal, pos)
    op = bundle.openings
    return st, bundle, op, (prices, L, buffer, bal, pos)


def test_margin_proof_verifies_and_roundtrips(margin_case):
    st, bundle, op, (prices, L, buffer, bal, pos) = margin_case
    assert min(_surplus(prices, L, buffer, bal, pos)) >= 0
    c = bundle.commitments
    assert verify_margin(st, c["collateral"], _pos(c), bundle.proof)
    assert verify_margin(st, c["collateral"], _pos(c), bundle.proof.to_bytes())
    j = json.loads(json.dumps(bundle.to_json()))
    assert verify_bundle(j, expected_statement=st)
    assert bundle_from_json(j).proof == bundle.proof
    assert "values" not in json.dumps(j) and str(bal[0]) not in json.dumps(j["commitments"])
    assert list(op.values) == bal + [max(q, 0) for q in pos] + [max(-q, 0) for q in pos]
    # three proofs: position parts (16-bit, m=8), collateral (32-bit, m=2), scenarios (64-bit, m=6 -> 8)
    assert [len(p.ipp.L) for p in bundle.proof.proofs] == [7, 6, 9]


def test_prover_refuses_false_statements(margin_case):
    st, bundle, op, (prices, L, buffer, bal, pos) = margin_case
    s = _surplus(prices, L, buffer, bal, pos)
    too_much = MarginStatement(prices, L, buffer + min(s) + 1, 32, 16, 64, "test", context=CTX)
    with pytest.raises(StatementError, match="scenario"):
        prove_margin(too_much, bal, pos)
    with pytest.raises(StatementError, match="negative"):
        prove_margin(st, [-5] + bal[1:], pos)
    with pytest.raises(StatementError):
        prove_margin(st, bal, [2**16] + pos[1:])  # long part outside [0, 2^16)
    with pytest.raises(StatementError):
        prove_margin(st, bal, [-2**16] + pos[1:])  # short part outside [0, 2^16)
    with pytest.raises(StatementError):
        prove_margin(st, bal, pos[:-1])


def _tampered_statements(st):
    L = [list(r) for r in st.pnl]
    L2 = [r[:] for r in L]
    L2[1][2] += 1
    yield "price", MarginStatement((st.prices[0] + 1,) + st.prices[1:], st.pnl, st.buffer, 32, 16, 64, "test",
                                   context=CTX)
    yield "L entry", MarginStatement(st.prices, L2, st.buffer, 32, 16, 64, "test", context=CTX)
    yield "buffer", MarginStatement(st.prices, st.pnl, st.buffer + 1, 32, 16, 64, "test", context=CTX)
    yield "buffer down", MarginStatement(st.prices, st.pnl, st.buffer - 1, 32, 16, 64, "test", context=CTX)
    yield "position bits", MarginStatement(st.prices, st.pnl, st.buffer, 32, 32, 64, "test", context=CTX)
    yield "collateral bits", MarginStatement(st.prices, st.pnl, st.buffer, 64, 16, 64, "test", context=CTX)
    yield "scenario bits", MarginStatement(st.prices, st.pnl, st.buffer, 32, 16, 32, "test", context=CTX)
    yield "unit", MarginStatement(st.prices, st.pnl, st.buffer, 32, 16, 64, "other", context=CTX)
    for f, v in (("venue", "other-venue"), ("account", "acct-2"), ("epoch", 8), ("expiry", 2**40 + 1)):
        c = zkproofs.Context(**{**{"venue": CTX.venue, "account": CTX.account, "epoch": CTX.epoch,
                                   "expiry": CTX.expiry}, f: v})
        yield f"context {f}", MarginStatement(st.prices, st.pnl, st.buffer, 32, 16, 64, "test", context=c)
    Ls = [r[:] for r in L]
    Ls[0][0] += 1
    yield "short-part P&L", MarginStatement(st.prices, st.pnl, st.buffer, 32, 16, 64, "test", context=CTX,
                                            pnl_short=Ls)
    yield "scenario label", MarginStatement(st.prices, st.pnl, st.buffer, 32, 16, 64, "test", context=CTX,
                                            scenario_labels=("x",) * len(L[0]))
    yield "params", MarginStatement(st.prices, st.pnl, st.buffer, 32, 16, 64, "test", context=CTX,
                                    params={"scan_range": "0.03"})
    yield "scenario dropped", MarginStatement(st.prices, [r[:-1] for r in L], st.buffer, 32, 16, 64, "test",
                                              context=CTX)


def test_any_public_input_changed_rejected(margin_case):
    st, bundle, _, _ = margin_case
    c = bundle.commitments
    for name, bad in _tampered_statements(st):
        assert not verify_margin(bad, c["collateral"], _pos(c), bundle.proof), name


def test_commitments_swapped_changed_identity_offsubgroup_rejected(ark, margin_case, off_subgroup):
    st, bundle, op, _ = margin_case
    col, pos = list(bundle.commitments["collateral"]), _pos(bundle.commitments)
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
    sj = j["statement"]
    hostile = [None, 3, [], {}, "{", b"\xff", {**j, "kind": "nope"}, {**j, "version": "1"}, {**j, "version": 2},
               {**j, "statement": None}, {**j, "extra": 1}, {**j, "curve": "BN254"},
               {**j, "commitments": {"collateral": [1, 2]}}, {**j, "proof": raw[:-1].hex()},
               {**j, "proof": raw.hex().upper()}, {**j, "proof": raw.hex() + "00"}, {**j, "proof": "zz"},
               {**j, "dst_version": "7"}, {**j, "dst_version": True}, {**j, "dst_version": 1},
               {**j, "statement": {**sj, "pnl_long": [["x"]]}},
               {**j, "statement": {**sj, "bits": {**sj["bits"], "scenario": "12"}}},
               {**j, "statement": {**sj, "prices": ["-3", "1"]}},
               {**j, "statement": {**sj, "prices": [1.9, "1"]}},
               {**j, "statement": {**sj, "prices": "12"}},
               {**j, "statement": {**sj, "buffer": " 0_0 "}},
               {**j, "statement": {**sj, "buffer": "\u0661"}},
               {**j, "statement": {**sj, "buffer": float("inf")}},
               {**j, "statement": {**sj, "buffer": True}},
               {**j, "statement": {**sj, "context": {**sj["context"], "epoch": "01"}}},
               {**j, "commitments": {**j["commitments"], "long": [c.upper() for c in j["commitments"]["long"]]}},
               {**j, "commitments": {**j["commitments"], "long": j["commitments"]["long"] * 2}}]
    for h in hostile:
        assert verify_bundle(h, trust_bundle_statement=True) is False
        with pytest.raises(zkproofs.ProofError):
            verify_bundle(h, raise_on_failure=True, trust_bundle_statement=True)
    c = bundle.commitments
    for bad in (raw[:-1], raw + b"\x00", raw[:5], b"PMZK\x01" + raw[5:], b""):
        assert not verify_margin(st, c["collateral"], _pos(c), bad)


def test_wraparound_refused(ark):
    """A derived claim whose coefficients could wrap mod r is refused up front; an input without its own range
    claim is refused (no input bound); a requirement committed as r - 5 cannot be proved."""
    with pytest.raises(StatementError, match="wrap"):
        prove_statement("custom", {}, [AffineClaim(64, ((0, 1),), 0, "x"),
                                       AffineClaim(64, ((0, 2**200),), 0, "big")], [1])
    with pytest.raises(StatementError, match="no range claim"):
        prove_statement("custom", {}, [AffineClaim(64, ((0, 1), (1, -1)), 0, "e-m"),
                                       AffineClaim(64, ((0, 1),), 0, "e")], [10, R - 5])
    est = zkproofs.EquityStatement(CTX, [1], [10], mm_rate_ppm=[100_000])
    with pytest.raises(StatementError):
        prove_statement("equity", {}, est.claims(), [10, 0, R - 5, 0])
    with pytest.raises(StatementError):
        prove_statement("equity", {}, est.claims(), [10, 0, -5, 0])


def _equity_statement(**kw):
    """1e-2 USD value units, 1e-4 coin amount units; BTC-PERP mark 60,000.005 USD (per amount unit 600.00005
    cents -> floor 600, ceil 601); MM rate 5%."""
    args = dict(context=CTX, prices=[100], mark_long=[600], mark_short=[601], mm_rate_ppm=[50_000],
                buffer=0, collateral_names=("USDC",), instruments=("BTC-PERP",), value_scale=100,
                amount_scale=10_000)
    args.update(kw)
    return zkproofs.EquityStatement(**args)


def test_equity_covers_margin(ark, off_subgroup):
    st = _equity_statement()
    assert st.mm_per_unit == (31,)  # ceil(0.05 * 601)
    # 1 BTC long (10,000 units) bought with borrowed quote: Q = -5,500,000 cents, collateral 100 USDC
    bal, Q, pos = [10_000], -5_500_000, [10_000]
    e, m = st.equity_and_mm(bal, Q, pos)
    assert (e, m) == (10_000 * 100 - 5_500_000 + 600 * 10_000, 31 * 10_000)  # plain-integer reference
    b = prove_equity_covers_margin(st, bal, Q, pos)
    assert verify_equity_covers_margin(b, expected_statement=st)
    assert verify_equity_covers_margin(b.to_json(), expected_statement=st.to_json())
    assert b.openings.values == (10_000, Q, 10_000, 0)
    # under-margined by one cent: refused (equity - MM - buffer < 0)
    with pytest.raises(StatementError, match="equity - maintenance_margin"):
        prove_equity_covers_margin(_equity_statement(buffer=e - m + 1), bal, Q, pos)
    # the short side: liability marked up, MM on |q|
    e2, m2 = st.equity_and_mm(bal, 7_000_000, [-10_000])
    assert (e2, m2) == (1_000_000 + 7_000_000 - 601 * 10_000, 310_000)
    assert verify_equity_covers_margin(prove_equity_covers_margin(st, bal, 7_000_000, [-10_000]),
                                       expected_statement=st)
    b2 = prove_equity_covers_margin(st, [20_000], Q, pos)
    c = b.commitments
    mixed = zkproofs.Bundle("equity", st, {**c, "collateral": b2.commitments["collateral"]}, b.proof)
    assert not verify_equity_covers_margin(mixed, expected_statement=st)
    swapped = zkproofs.Bundle("equity", st, {**c, "long": c["short"], "short": c["long"]}, b.proof)
    assert not verify_equity_covers_margin(swapped, expected_statement=st)
    off = zkproofs.Bundle("equity", st, {**c, "quote": off_subgroup}, b.proof)
    assert not verify_equity_covers_margin(off, expected_statement=st)
    assert b.proof_bytes < 3 * 1024


def test_expiry_checked_against_the_given_time():
    st = _equity_statement()
    b = prove_equity_covers_margin(st, [10_000], 0, [0])
    assert verify_equity_covers_margin(b, expected_statement=st, now=CTX.expiry - 1)
    for now in (CTX.expiry, CTX.expiry + 10**6, float("nan"), float("inf"), "0", True):
        assert not verify_equity_covers_margin(b, expected_statement=st, now=now)
    with pytest.raises(zkproofs.ExpiredStatement):
        verify_equity_covers_margin(b, expected_statement=st, now=CTX.expiry, raise_on_failure=True)


def test_zero_mm_equity_attack_refused():
    """Issue 11 attack: ``prove_equity_covers_margin(100, 0)`` used to verify for any account (the MM was
    declared). The v1 call is refused, a statement with MM rate 0 does not verify against the venue's statement,
    and an under-margined account cannot be proved at the venue's rate."""
    with pytest.raises(StatementError, match="derived"):
        prove_equity_covers_margin(100, 0)
    venue = _equity_statement()
    bal, Q, pos = [0], -5_700_000, [10_000]  # equity 300,000 cents, MM 310,000 cents: under-margined
    e, m = venue.equity_and_mm(bal, Q, pos)
    assert e < m
    with pytest.raises(StatementError):
        prove_equity_covers_margin(venue, bal, Q, pos)
    zero_mm = _equity_statement(mm_rate_ppm=[0])
    forged = prove_equity_covers_margin(zero_mm, bal, Q, pos)
    assert verify_equity_covers_margin(forged, expected_statement=zero_mm)  # it is a true statement about MM 0 ...
    assert not verify_equity_covers_margin(forged, expected_statement=venue)  # ... but not the venue's
    assert not verify_equity_covers_margin(forged.to_json(), expected_statement_digest=venue.digest())
    with pytest.raises(zkproofs.StatementMismatch, match="mm_rate_ppm"):
        verify_equity_covers_margin(forged, expected_statement=venue, raise_on_failure=True)
    assert not verify_equity_covers_margin(forged)  # no pinned statement: refused


def test_cross_venue(ark):
    rng = np.random.default_rng(5)
    La = rng.integers(-1000, 1000, size=(3, 4))
    Lb = rng.integers(-1000, 1000, size=(2, 5))
    qa, qb = [5, -7, 3], [-4, 9]
    worst = [max(0, max(-int(La[:, s] @ qa) for s in range(4))), max(0, max(-int(Lb[:, s] @ qb) for s in range(5)))]
    assert min(worst) > 0
    need = sum(worst)
    st = CrossVenueStatement((10,), (La, Lb), buffer=0, collateral_bits=32, position_bits=16, scenario_bits=32,
                             venue_names=("deribit", "cme"), context=CTX)
    bal_ok = [-(-need // 10)]
    b = prove_cross_venue(st, bal_ok, [qa, qb])
    op = b.openings
    assert list(op.values[-2:]) == worst
    assert verify_cross_venue(b, expected_statement=st)
    assert verify_bundle(json.loads(json.dumps(b.to_json())), expected_statement=st)
    # collateral that covers each venue's worst loss but not their sum is refused
    bal_short = [(need - 1) // 10]
    assert 10 * bal_short[0] >= max(worst)
    with pytest.raises(StatementError):
        prove_cross_venue(st, bal_short, [qa, qb])
    Lb2 = Lb.copy()
    Lb2[0, 0] += 1
    st2 = CrossVenueStatement((10,), (La, Lb2), 0, 32, 16, 32, ("deribit", "cme"), context=CTX)
    assert not verify_cross_venue(zkproofs.Bundle("cross_venue", st2, b.commitments, b.proof),
                                  trust_bundle_statement=True)
    c = dict(b.commitments)
    c["worst_losses"] = c["worst_losses"][::-1]
    assert not verify_cross_venue(zkproofs.Bundle("cross_venue", st, c, b.proof), expected_statement=st)


def test_pnl_to_fixed_point_rounds_against_prover():
    pnl = np.array([[1.25, -1.25, 0.1], [-0.3, 2.0, -1e-9]])
    got = pnl_to_fixed_point(pnl, 10)
    ref = [[int(np.floor(Fraction(x) * 10)) for x in row] for row in pnl.tolist()]
    assert got.tolist() == ref == [[12, -13, 1], [-3, 20, -1]]
    with pytest.raises(StatementError):
        pnl_to_fixed_point(np.array([[np.nan]]), 10)
    with pytest.raises(StatementError):
        MarginStatement([1], np.array([[0.5]]), context=CTX)  # floats must be converted explicitly
    with pytest.raises(StatementError):
        MarginStatement([-1], [[1]], context=CTX)


@pytest.mark.parametrize("path", sorted(DATA.glob("*_v2.json")), ids=lambda p: p.name)
def test_stored_fixtures_keep_verifying(path):
    """Proofs stored by earlier versions of the v2 format must keep verifying; a tampered copy must not."""
    obj = json.loads(path.read_text())
    st = zkproofs.statement_from_json(obj["statement"])
    assert verify_bundle(obj, expected_statement=st)
    sj = obj["statement"]
    tampered = {**obj, "statement": {**sj, "buffer": str(int(sj["buffer"]) + 1)}}
    assert not verify_bundle(tampered, trust_bundle_statement=True)
    assert not verify_bundle(tampered, expected_statement=st)


def test_fixtures_exist():
    assert len(list(DATA.glob("*_v2.json"))) >= 3


@pytest.mark.slow
def test_statement_cross_backend(pyecc):
    """Equity proof made with arkworks verifies with py_ecc and back (slow: py_ecc)."""
    st = _equity_statement(collateral_bits=8, quote_bits=8, position_bits=8, surplus_bits=8, mark_long=[1],
                           mark_short=[1], mm_rate_ppm=[500_000])
    b = prove_equity_covers_margin(st, [2], 0, [1])
    assert verify_equity_covers_margin(b.to_json(), backend="pyecc", expected_statement=st)
    b2 = prove_equity_covers_margin(st, [2], 0, [1], backend="pyecc")
    assert verify_equity_covers_margin(b2.to_json(), backend="arkworks", expected_statement=st)


def test_openings_never_serialised():
    st = _equity_statement()
    b = prove_equity_covers_margin(st, [7700], 0, [0])
    assert b.openings is not None and b.openings.values == (7700, 0, 0, 0)
    text = json.dumps(b.to_json())
    assert f"{b.openings.blindings[0]:064x}" not in text and "values" not in text and "openings" not in text
    assert "Openings" not in repr(b) and str(b.openings.blindings[0]) not in repr(b) and b.public().openings is None


def test_direct_verifier_calls_with_hostile_arguments_are_typed(margin_case):
    st, bundle, _, _ = margin_case
    c = bundle.commitments
    flat = list(c["collateral"]) + list(_pos(c))
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
    st = MarginStatement(prices, L, buffer, collateral_bits=16, position_bits=8, scenario_bits=32, context=CTX)
    ok_ref = all(0 <= v < 2**32 for v in _surplus(prices, L, buffer, bal, pos)) and \
        all(abs(q) < 2**8 for q in pos)
    try:
        b = prove_margin(st, bal, pos)
    except StatementError:
        assert not ok_ref
        return
    assert ok_ref
    assert verify_bundle(b.to_json(), expected_statement=st)


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
    assert verify_margin(st, c["collateral"], _pos(c), bundle.proof, backend=be)
    # generators for this backend instance are derived by hash-to-curve (no MSM); exactly one MSM remains
    assert len(calls) == 1 and calls[0] > 2 * 64 * 8
