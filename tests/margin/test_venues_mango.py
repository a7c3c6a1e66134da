"""Mango v4 health in exact I80F48, against mango-v4's own health tests.

Every case and expected value is transcribed from blockworks-foundation/mango-v4
``programs/mango-v4/src/health/cache.rs`` (``mod tests``: ``test_health0``, ``test_health1`` cases 0-17,
``test_health_with_skips``), with the set-up of ``health/test.rs`` (``mock_bank_and_oracle``,
``mock_perp_market``). Tolerance: the venue's own ``health_eq`` (|health - expected| < 0.001).
"""
from __future__ import annotations

import pytest

from margin.rules.venues import mango as m
from margin.rules.venues._validate import VenueInputError

F = m.from_num
TOL = 0.001  # cache.rs health_eq


def health_eq(bits: int, expected: float) -> bool:
    return abs(bits - F(expected)) < F(TOL)


def bank(token_index, price, init_w, maint_w, change=0, *, deposits=0, borrows=0, dep_start=0, bor_start=0,
         potential_serum_tokens=0, available=True):
    """health/test.rs mock_bank_and_oracle + Bank::change_without_fee + test_health1_runner BankSettings."""
    idx = F(1_000_000)
    return m.Bank(token_index, m.bank_native_after_change(change), F(price), F(1.0 - init_w), F(1.0 + init_w),
                  F(1.0 - maint_w), F(1.0 + maint_w),
                  deposit_weight_scale_start_quote=float(dep_start) if dep_start > 0 else m.F64_MAX,
                  borrow_weight_scale_start_quote=float(bor_start) if bor_start > 0 else m.F64_MAX,
                  native_deposits=m.mul(idx, m.div(F(deposits), idx)),
                  native_borrows=m.mul(idx, m.div(F(borrows), idx)),
                  potential_serum_tokens=potential_serum_tokens, available=available)


def perp_market():
    """health/test.rs mock_perp_market(.., 5.0, 9, (0.2, 0.1), (0.05, 0.02)), settle token 0."""
    return m.PerpMarket(9, 0, F(5.0), F(1.0 - 0.2), F(1.0 + 0.2), F(1.0 - 0.1), F(1.0 + 0.1), F(1.0 - 0.05),
                        F(1.0 - 0.02), base_lot_size=10, quote_lot_size=100)


def test_health0():
    """cache.rs `test_health0` (token, Serum3 free + reserved funds, perp with taker fills and orders)."""
    banks = [bank(0, 1.0, 0.2, 0.1, 100), bank(4, 5.0, 0.5, 0.3, -10)]
    oo = m.Serum3Orders(4, 0, base_reserved=18 - 3, quote_reserved=21 - 1, base_free=3, quote_free=1)
    pos = m.PerpPosition(9, base_position_lots=3, quote_position_native=F(-310), bids_base_lots=7,
                         asks_base_lots=11, taker_base_lots=1, taker_quote_lots=2)
    hc = m.new_health_cache(m.Account(banks, [oo], [(pos, perp_market())]))
    serum1 = 1.0 + (20.0 + 15.0 * 5.0)
    perp1 = (3.0 + 7.0 + 1.0) * 10.0 * 5.0 * 0.8 + (-310.0 + 2.0 * 100.0 - 7.0 * 10.0 * 5.0)
    health1 = (100.0 + serum1 + perp1) * 0.8
    health2 = (-10.0 + 3.0) * 5.0 * 1.5
    assert health_eq(hc.health("init"), health1 + health2)


BL = 10.0 * 5.0  # base_lots_to_quote
_B = dict  # BankSettings
HEALTH1 = [  # (token1, token2, token3, oo_1_2, oo_1_3, perp1, bank_settings, extra, expected)
    (100, -10, 0, (20, 15), (0, 0), (3, -131, 7, 11), None, None,
     0.8 * (100.0 + (20.0 + 15.0 * 5.0) + (3.0 + 7.0) * BL * 0.8 + (-131.0 - 7.0 * BL)) - 10.0 * 5.0 * 1.5),
    (-100, 10, 0, (20, 15), (0, 0), (-10, -131, 7, 11), None, None,
     1.2 * (-100.0 + (-10.0 - 11.0) * BL * 1.2 + (-131.0 + 11.0 * BL)) + (10.0 * 5.0 + (20.0 + 15.0 * 5.0)) * 0.5),
    (0, 0, 0, (0, 0), (0, 0), (-1, 100, 0, 0), None, None, 0.8 * 0.95 * (100.0 - 1.2 * 1.0 * BL)),
    (0, 0, 0, (0, 0), (0, 0), (1, -100, 0, 0), None, None, 1.2 * (-100.0 + 0.8 * 1.0 * BL)),
    (0, 0, 0, (0, 0), (0, 0), (10, 100, 0, 0), None, None, 0.8 * 0.95 * (100.0 + 0.8 * 10.0 * BL)),
    (0, 0, 0, (0, 0), (0, 0), (30, -100, 0, 0), None, None, 0.8 * 0.95 * (-100.0 + 0.8 * 30.0 * BL)),
    (-100, -10, -10, (1, 1), (1, 1), (0, 0, 0, 0), None, None,
     -100.0 * 1.2 - 10.0 * 5.0 * 1.5 - 10.0 * 10.0 * 1.5 + (1.0 + 5.0) * 1.2 + (1.0 + 10.0) * 1.2),
    (-14, -10, -10, (1, 1), (1, 1), (0, 0, 0, 0), None, None,
     -14.0 * 1.2 - 10.0 * 5.0 * 1.5 - 10.0 * 10.0 * 1.5 + 3.0 * 1.2 + 3.0 * 0.8 + 8.0 * 1.2 + 3.0 * 0.8),
    (-100, -100, -1, (0, 0), (10, 1), (0, 0, 0, 0), None, None,
     -100.0 * 1.2 - 100.0 * 5.0 * 1.5 - 10.0 * 1.5 + 10.0 * 1.5 + 10.0 * 0.5),
    (-100, -100, -1, (100, 0), (10, 1), (0, 0, 0, 0), None, None,
     -100.0 * 1.2 - 100.0 * 5.0 * 1.5 - 10.0 * 1.5 + 80.0 * 1.2 + 20.0 * 0.8 + 20.0 * 0.8),
    (100, 100, 100, (0, 0), (0, 0), (0, 0, 0, 0),
     [_B(deposits=100, dep_start=1000), _B(deposits=1500, dep_start=1000 * 5), _B(deposits=10000, dep_start=1000 * 10)],
     None, 0.8 * 100.0 + 0.5 * 100.0 * 5.0 * (5000.0 / (1500.0 * 5.0))
     + 0.5 * 100.0 * 10.0 * (10000.0 / (10000.0 * 10.0))),
    (-100, -100, -100, (0, 0), (0, 0), (0, 0, 0, 0),
     [_B(borrows=100, bor_start=1000), _B(borrows=1500, bor_start=1000 * 5), _B(borrows=10000, bor_start=1000 * 10)],
     None, -1.2 * 100.0 - 1.5 * 100.0 * 5.0 * (1500.0 * 5.0 / 5000.0)
     - 1.5 * 100.0 * 10.0 * (10000.0 * 10.0 / 10000.0)),
    (-100, 0, 0, (0, 0), (0, 0), (1, 100, 0, 0), None, None, 0.8 * (-100.0 + 0.95 * (100.0 + 0.8 * 1.0 * BL))),
    (100, 0, 0, (0, 0), (0, 0), (-1, -100, 0, 0), None, None, 1.2 * (100.0 - 100.0 - 1.2 * 1.0 * BL)),
    (-100, -10, 0, (1, 1), (11, 1), (0, 0, 0, 0), None, (3.0, 1.0 / 12.0),
     -100.0 * 1.2 - 10.0 * 5.0 * 1.5 + (1.0 + 3.0) * 1.2 + (11.0 / 12.0 + 1.0) * 10.0 * 0.5),
    (-100, -10, 0, (1, 1), (11, 1), (0, 0, 0, 0), None, (6.0, 1.0 / 9.0),
     -100.0 * 1.2 - 10.0 * 5.0 * 1.5 + (1.0 + 5.0) * 1.2 + (11.0 / 10.0 + 1.0) * 10.0 * 0.5),
    (100, 100, 100, (0, 100), (0, 100), (0, 0, 0, 0), None, None,
     100.0 * 0.8 + 100.0 * 5.0 * 0.5 + 100.0 * 10.0 * 0.5 + 100.0 * 5.0 * 0.5 + 100.0 * 10.0 * 0.5),
    (100, 100, 100, (0, 100), (0, 100), (0, 0, 0, 0),
     [_B(), _B(deposits=100, dep_start=100 * 5, potential_serum_tokens=100),
      _B(deposits=600, dep_start=500 * 10, potential_serum_tokens=100)], None,
     100.0 * 0.8 + 100.0 * 5.0 * 0.5 * (100.0 / 200.0) + 100.0 * 10.0 * 0.5 * (500.0 / 700.0)
     + 100.0 * 5.0 * 0.5 * (100.0 / 200.0) + 100.0 * 10.0 * 0.5 * (500.0 / 700.0)),
]


@pytest.mark.parametrize("case", range(len(HEALTH1)))
def test_health1(case):
    """cache.rs `test_health1` case ``case`` (cases 0-17: perps with orders, weighted positive perp
    P&L, Serum3 reservations, deposit / borrow weight scaling, max bid / min ask, potential serum
    tokens)."""
    t1, t2, t3, oo12, oo13, perp1, settings, extra, expected = HEALTH1[case]
    settings = settings or [{}, {}, {}]
    banks = [bank(0, 1.0, 0.2, 0.1, t1, **settings[0]), bank(4, 5.0, 0.5, 0.3, t2, **settings[1]),
             bank(5, 10.0, 0.5, 0.3, t3, **settings[2])]
    ask, bid_inv = extra or (0.0, 0.0)
    serum = [m.Serum3Orders(4, 0, base_reserved=oo12[1], quote_reserved=oo12[0], lowest_placed_ask=ask),
             m.Serum3Orders(5, 0, base_reserved=oo13[1], quote_reserved=oo13[0], highest_placed_bid_inv=bid_inv)]
    pos = m.PerpPosition(9, base_position_lots=perp1[0], quote_position_native=F(perp1[1]),
                         bids_base_lots=perp1[2], asks_base_lots=perp1[3])
    hc = m.new_health_cache(m.Account(banks, serum, [(pos, perp_market())]))
    assert health_eq(hc.health("init"), expected)
    a, l_ = hc.health_assets_and_liabs("init")
    assert a - l_ == hc.health("init") or abs((a - l_) - hc.health("init")) < F(TOL)


def test_health_with_skips():
    """cache.rs `test_health_with_skips` (both retriever kinds give the same cache): skipping banks
    with non-negative balances, and the error for a negative one."""
    def banks(avail):
        return [bank(0, 1.0, 0.2, 0.1, 100, available=avail[0]), bank(4, 5.0, 0.5, 0.3, 10, available=avail[1]),
                bank(5, 10.0, 0.5, 0.3, -10, available=avail[2])]
    oo = [m.Serum3Orders(4, 0, base_reserved=1, quote_reserved=5)]

    def health(avail):
        acc = m.Account([b for b in banks(avail)], oo)
        return m.new_health_cache(acc, allow_skipping_banks=True).health("init")
    assert health_eq(health((1, 1, 1)), 0.8 * 100.0 + 0.5 * 5.0 * (10.0 + 2.0) - 1.5 * 10.0 * 10.0)
    assert health_eq(health((0, 1, 1)), 0.5 * 5.0 * 10.0 - 1.5 * 10.0 * 10.0)
    assert health_eq(health((1, 0, 1)), 0.8 * 100.0 - 1.5 * 10.0 * 10.0)
    assert health_eq(health((0, 0, 1)), -1.5 * 10.0 * 10.0)
    with pytest.raises(VenueInputError, match="cannot be skipped"):
        health((1, 1, 0))


def test_i80f48_rounding():
    """mango-v4 ``i80f48.rs`` `test_i80f48_mul_rounding` (multiplication rounds to -inf) and
    cache.rs `test_precision` (1/2^48 representable, 1/2^49 not)."""
    price, x = F(0.04), 96590783907000000
    assert m.to_f64(m.mul(x, price)) == pytest.approx(13.726375969298193, abs=1e-15)
    assert m.mul(-x, price) == -m.mul(x, price) - 1
    assert m.div(F(1), F(2**48)) != 0 and m.div(F(1), F(2**49)) == 0


def test_health_perp_funding():
    """client.rs `test_health_perp_funding` (unsettled funding 10 lots x (10.1 - 10.0) reduces the quote)."""
    pm = m.PerpMarket(**{**perp_market().__dict__, "oracle_price": F(1.0), "long_funding": F(10.1)})
    pos = m.PerpPosition(9, base_position_lots=10, quote_position_native=F(-110), long_settled_funding=F(10.0))
    hc = m.new_health_cache(m.Account([bank(0, 1.0, 0.2, 0.1, 100)], [], [(pos, pm)]))
    assert health_eq(hc.health("init"), 0.8 * (100.0 + 0.8 * 100.0 - 110.0 - 1.0))


def test_health_stable_price_token():
    """client.rs `test_health_stable_price_token` (stable price 0.5 vs oracle 1.0: init health values
    assets at the lower and liabilities at the higher of the two; maint at the oracle)."""
    def b(change):
        return m.Bank(**{**bank(0, 1.0, 0.2, 0.1, change).__dict__, "stable_price": F(0.5)})
    pm = m.PerpMarket(**{**perp_market().__dict__, "oracle_price": F(1.0), "stable_price": F(0.5)})
    acc1 = m.new_health_cache(m.Account([b(100)]))
    acc2 = m.new_health_cache(m.Account([b(-100)]))
    acc3 = m.new_health_cache(m.Account([b(0)], [], [(m.PerpPosition(9, 10, F(-100)), pm)]))
    assert health_eq(acc1.health("init"), 0.8 * 0.5 * 100.0)
    assert health_eq(acc1.health("maint"), 0.9 * 1.0 * 100.0)
    assert health_eq(acc2.health("init"), -1.2 * 1.0 * 100.0)
    assert health_eq(acc2.health("maint"), -1.1 * 1.0 * 100.0)
    assert health_eq(acc3.health("init"), 1.2 * (0.8 * 0.5 * 10.0 * 10.0 - 100.0))
    assert health_eq(acc3.health("maint"), 1.1 * (0.9 * 1.0 * 10.0 * 10.0 - 100.0))


def _tok(idx, x, price, balance=0):
    """client.rs tests `default_token_info(x, price)` as a bank with weights 1 -/+ x."""
    return m.Bank(idx, F(balance), F(price), F(1.0 - x), F(1.0 + x), F(1.0 - x), F(1.0 + x))


def _leverage_eq(hc, b):  # client.rs leverage_eq
    return abs(hc.leverage() - F(b)) < F(0.001)


def test_leverage():
    """client.rs `test_leverage` (only deposits; deposits and borrows; perp trade; open orders)."""
    hc = m.new_health_cache(m.Account([_tok(0, 0.0, 1.0, 1), _tok(1, 0.2, 2.0)]))
    assert _leverage_eq(hc, 0.0)
    hc = m.new_health_cache(m.Account([_tok(0, 0.0, 1.0, -9), _tok(1, 0.2, 2.0, 5)]))
    assert _leverage_eq(hc, 9.0)
    # default_perp_info(0.1, 1.1), base_lot_size 3, base_lots -3, quote 9.9, settle token 0
    pm = m.PerpMarket(0, 0, F(1.1), F(0.9), F(1.1), F(0.9), F(1.1), F(0.6), F(0.6), base_lot_size=3, quote_lot_size=1)
    hc = m.new_health_cache(m.Account([_tok(0, 0.0, 1.0, 1), _tok(1, 0.2, 2.0)], [],
                                      [(m.PerpPosition(0, base_position_lots=-3, quote_position_native=F(9.9)), pm)]))
    assert _leverage_eq(hc, 9.9)
    oo = m.Serum3Orders(1, 0, base_reserved=1, quote_reserved=0, lowest_placed_ask=1.0)
    hc = m.new_health_cache(m.Account([_tok(0, 0.0, 1.0, 1), _tok(1, 0.2, 2.0, -1)], [oo]))
    assert _leverage_eq(hc, 2.0)


@pytest.mark.parametrize("spot", [100, 10, -5])
def test_perp_max_settle_brings_settle_health_to_zero(spot):
    """Property of ``perp_max_settle`` (cache.rs): taking the returned amount from the settle token's
    spot balance leaves maintenance "perp settle health" (negative perp P&L ignored) at zero."""
    banks = [bank(0, 1.0, 0.2, 0.1, spot), bank(4, 5.0, 0.5, 0.3, 10)]
    pos = m.PerpPosition(9, base_position_lots=-1, quote_position_native=F(-100))
    hc = m.new_health_cache(m.Account(banks, [], [(pos, perp_market())]))
    x = hc.perp_max_settle(0)
    assert x >= 0
    b0 = banks[0]
    after = m.new_health_cache(m.Account([m.Bank(**{**b0.__dict__, "balance": b0.balance - x}), banks[1]], [],
                                         [(pos, perp_market())]))
    settle_health = after._health_sum("maint", after.effective_token_balances("maint", ignore_negative_perp=True))
    assert abs(settle_health) <= 16  # a few I80F48 DELTAs (division truncation)
