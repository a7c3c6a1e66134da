"""Exactly conservative rounding (issue 11 item 3): whenever a margin proof verifies, the real-valued surplus is
>= 0 in every scenario - for random real P&L matrices, prices, haircuts, balances and positions of both signs,
including accounts placed within a cent of the boundary."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import zkproofs
from zkproofs import Context, StatementError, margin_from_usd, prove_margin, verify_bundle

CTX = Context("round-venue", "acct", 1, 2**40)
_real = st.floats(min_value=-5_000, max_value=5_000, allow_nan=False, allow_infinity=False)


def _real_surpluses(coll, pos, pnl, buffer_usd):
    """Plain-rational reference: sum_k amount_k price_k (1 - h_k) + sum_j pnl[j][s] q_j - buffer, per scenario."""
    c = sum(Fraction(a) * Fraction(p) * (1 - Fraction(h)) for _, a, p, h in coll)
    return [c + sum(Fraction(pnl[j][s]) * Fraction(q) for j, (_, q) in enumerate(pos)) - Fraction(buffer_usd)
            for s in range(len(pnl[0]))]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), J=st.integers(1, 3), S=st.integers(1, 4), vs=st.sampled_from([1, 10, 100, 10**6]),
       asc=st.sampled_from([1, 10, 10**4]), delta=st.floats(-0.02, 0.02), sub_unit=st.sampled_from(["refuse", "round"]))
def test_verifies_implies_real_surplus_nonnegative(data, J, S, vs, asc, delta, sub_unit):
    pnl = [[data.draw(_real) for _ in range(S)] for _ in range(J)]
    # positions: whole amount units of both signs, or (sub_unit=round) arbitrary reals
    if sub_unit == "round":
        pos = [(f"I{j}", data.draw(st.floats(-50, 50))) for j in range(J)]
    else:
        pos = [(f"I{j}", data.draw(st.integers(-50 * asc, 50 * asc)) / asc) for j in range(J)]
    btc = ("BTC", data.draw(st.floats(0, 3)), data.draw(st.floats(1, 70_000)), data.draw(st.floats(0, 0.5)))
    buffer_usd = data.draw(st.floats(0, 100))
    # USDC collateral placed within `delta` USD of the real boundary (the interesting case for rounding)
    need = -min(_real_surpluses([btc], pos, pnl, buffer_usd))
    usdc = float(max(Fraction(0), need + Fraction(delta)))
    coll = [("USDC", usdc, 1.0, 0.0), btc]
    try:
        fp = margin_from_usd(CTX, coll, pos, pnl, [f"s{s}" for s in range(S)], buffer_usd=buffer_usd,
                             value_scale=vs, amount_scale=asc, sub_unit=sub_unit)
    except StatementError:
        assume(False)
    stt = fp.statement
    assert all(a <= b <= a + 1 for ra, rb in zip(stt.pnl, stt.pnl_short) for a, b in zip(ra, rb))
    sur_int = stt.surpluses(fp.balances, fp.positions)
    real = _real_surpluses(coll, pos, pnl, buffer_usd)
    # the integer claim is a lower bound of the real surplus in every scenario (exact rationals)
    for s in range(S):
        assert Fraction(sur_int[s], vs) <= real[s]
    proves = all(0 <= x < 2**64 for x in sur_int) and max(fp.balances) < 2**64
    if proves:
        b = prove_margin(stt, fp.balances, fp.positions)
        assert verify_bundle(b.to_json(), expected_statement=stt)
        assert min(real) >= 0
    else:
        with pytest.raises(StatementError):
            prove_margin(stt, fp.balances, fp.positions)


def test_short_rounding_account_refused():
    """Issue 11 attack 2: pnl_to_fixed_point([[1.9]], 1) floored to 1 made an account short 1,000 with collateral
    1,000 verify although its real surplus is -900. With a ceiled short-part matrix it cannot be proved, and the
    floor-only statement is not the venue's."""
    pnl = [[1.9]]
    fp = margin_from_usd(CTX, [("USDC", 1000, 1, 0)], [("X", -1000)], pnl, ["up"], value_scale=1, amount_scale=1)
    assert fp.statement.pnl == ((1,),) and fp.statement.pnl_short == ((2,),)
    assert fp.statement.surpluses(fp.balances, fp.positions) == [1000 - 2 * 1000]
    assert round(float(_real_surpluses([("USDC", 1000, 1, 0)], [("X", -1000)], pnl, 0)[0]), 6) == -900
    with pytest.raises(StatementError, match="scenario up"):
        prove_margin(fp.statement, fp.balances, fp.positions)
    # the v1 construction (one floored matrix for both signs) proves the false claim - only against itself
    floor_only = zkproofs.MarginStatement([1], zkproofs.pnl_to_fixed_point([[1.9]], 1), 0, 64, 32, 64,
                                          context=CTX, scenario_labels=("up",), value_scale=1, amount_scale=1)
    forged = prove_margin(floor_only, [1000], [-1000])
    assert verify_bundle(forged, expected_statement=floor_only)
    assert not verify_bundle(forged, expected_statement=fp.statement)
    # pnl_to_fixed_point is exact (no float rounding across an integer): 0.1 * 30 = 3.0000000000000004 in floats
    assert zkproofs.pnl_to_fixed_point([[0.1]], 30).tolist() == [[3]]
    assert zkproofs.pnl_to_fixed_point([[0.1]], 30, rounding="up").tolist() == [[4]]
