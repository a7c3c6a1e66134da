"""Drift protocol-v2 margin calculation in exact integers, against Drift's own unit tests.

Every expected number below is copied from drift-labs/protocol-v2
``programs/drift/src/math/margin/tests.rs`` (module and test name in each test's docstring); the market
and position set-ups are transcribed from the same tests (prices from ``get_pyth_price(100, 6)`` =
100 * 1e6 etc.).
"""
from __future__ import annotations

import pytest

from margin.rules.venues import drift as d
from margin.rules.venues._validate import VenueInputError
from margin.rules.venues.drift import PerpMarket, PerpPosition, SpotMarket, SpotPosition, User, margin_calculation

P6 = d.PRICE_PRECISION
W = d.SPOT_WEIGHT_PRECISION
MP = d.MARGIN_PRECISION
SB = d.SPOT_BALANCE_PRECISION
CI = d.SPOT_CUMULATIVE_INTEREST_PRECISION
BASE = d.BASE_PRECISION
Q = d.QUOTE_PRECISION


def usdc(**kw):
    args = dict(market_index=0, decimals=6, oracle_price=P6, oracle_twap_5min=P6, cumulative_deposit_interest=CI,
                initial_asset_weight=W, maintenance_asset_weight=W, deposit_balance=10000 * SB)
    args.update(kw)
    return SpotMarket(**args)


def sol(**kw):
    args = dict(market_index=1, decimals=9, oracle_price=100 * P6, cumulative_deposit_interest=CI,
                cumulative_borrow_interest=CI, initial_asset_weight=8 * W // 10,
                maintenance_asset_weight=9 * W // 10, initial_liability_weight=12 * W // 10,
                maintenance_liability_weight=11 * W // 10)
    args.update(kw)
    return SpotMarket(**args)


SOL_PERP = PerpMarket(market_index=0, oracle_price=100 * P6, margin_ratio_initial=1000, margin_ratio_maintenance=500)


# --- module `test` -------------------------------------------------------------------------------

def test_spot_market_asset_weight():
    """tests.rs `test::spot_market_asset_weight`."""
    m = SpotMarket(1, 6, Q, initial_asset_weight=9000, initial_liability_weight=11000)
    size, price = 1000 * Q, Q
    assert d.spot_asset_weight(m, size, price, "initial") == 9000
    assert d.spot_liability_weight(m, size, "initial") == 11000
    m = SpotMarket(1, 6, Q, initial_asset_weight=9000, initial_liability_weight=11000, imf_factor=10)
    assert d.spot_asset_weight(m, size, price, "initial") == 9000
    assert d.spot_liability_weight(m, size, "initial") == 11000
    assert d.spot_asset_weight(m, size * 1_000_000, price, "initial") == 8357
    m = SpotMarket(1, 6, Q, initial_asset_weight=9000, initial_liability_weight=11000, imf_factor=10000)
    assert d.spot_asset_weight(m, size, price, "initial") == 8357
    assert d.spot_liability_weight(m, size, "initial") == 11962
    m = SpotMarket(1, 6, Q, initial_asset_weight=9000, initial_liability_weight=11000,
                   imf_factor=d.SPOT_IMF_PRECISION // 10)
    assert d.spot_asset_weight(m, size, price, "initial") == 2642
    assert d.spot_liability_weight(m, size, "initial") == 40422
    assert d.spot_liability_weight(m, size, "maintenance") == 31622
    m2 = SpotMarket(1, 6, Q, initial_asset_weight=1500, maintenance_asset_weight=7500,
                    initial_liability_weight=15000, maintenance_liability_weight=12500)
    size, price = 100000 * Q, Q // 2
    assert [d.spot_asset_weight(m2, size, price, t) for t in ("initial", "fill", "maintenance")] == [1500, 4500, 7500]
    m2 = SpotMarket(1, 6, Q, initial_asset_weight=1500, maintenance_asset_weight=7500,
                    initial_liability_weight=15000, maintenance_liability_weight=12500,
                    imf_factor=d.SPOT_IMF_PRECISION // 10)
    assert [d.spot_asset_weight(m2, size, price, t) for t in ("initial", "fill", "maintenance")] == [337] * 3


@pytest.mark.parametrize("deposit_balance,expected", [(1, 9000), (20000, 9000), (40000, 4500), (60000, 3000)])
def test_spot_market_scale_initial_asset_weight(deposit_balance, expected):
    """tests.rs `test::spot_market_scale_initial_asset_weight`."""
    m = SpotMarket(1, 9, 25 * P6, initial_asset_weight=9000, initial_liability_weight=11000,
                   scale_initial_asset_weight_start=500_000 * Q, cumulative_deposit_interest=CI,
                   deposit_balance=deposit_balance * SB)
    assert d.spot_scaled_initial_asset_weight(m, 25 * P6) == expected


def test_calculate_user_equity_value_tests():
    """tests.rs `test::calculate_user_equity_value_tests` (perp IMF margin ratio, unrealized-P&L IMF
    weight, $100 initial-margin cap on positive P&L)."""
    market = PerpMarket(0, 22050 * P6, margin_ratio_initial=1000, margin_ratio_maintenance=500, imf_factor=1000,
                        unrealized_pnl_initial_asset_weight=10000, unrealized_pnl_maintenance_asset_weight=10000,
                        unrealized_pnl_imf_factor=1000)
    pos = PerpPosition(0, base_asset_amount=-(12295081967 // 2), quote_asset_amount=153688524588)
    assert d.perp_unrealized_asset_weight(market, 22699050905, "initial") == 9559
    pmr, upnl, _, _ = d.perp_position_value_and_pnl(pos, market, "initial")
    assert upnl == 100000000
    assert pmr == 13555327867
    market2 = PerpMarket(**{**market.__dict__, "oracle_price": 21050 * P6})
    _, pnl = d.base_asset_value_and_pnl(pos, market2.oracle_price)
    assert pnl == 24282786896
    assert [d.perp_unrealized_asset_weight(market2, pnl * k, "initial") for k in (1, 10, 100, 1000, 10000, 800000)] \
        == [9516, 7368, 4299, 1855, 663, 78]
    assert pnl * 800000 == 19426229516800000
    pmr2, upnl2, _, _ = d.perp_position_value_and_pnl(pos, market2, "initial")
    assert d.perp_unrealized_asset_weight(market2, upnl2, "initial") == 10000
    assert upnl2 == 100000000 == upnl
    assert pmr2 == 12940573769
    assert pmr - pmr2 == 614754098


# --- module `calculate_margin_requirement_and_total_collateral` -----------------------------------

@pytest.mark.parametrize("name,usdc_kw,sol_kw,pos1,mr,tc", [
    ("usdc_deposit_and_5x_sol_bid", {}, {}, dict(open_orders=1, open_bids=500 * 10**9),
     50000010000, 50000000000),
    ("usdc_deposit_and_5x_sol_ask", {}, {}, dict(open_orders=1, open_asks=-500 * 10**9),
     60000010000, 60000000000),
    ("sol_deposit_and_5x_sol_ask", dict(initial_liability_weight=W, maintenance_liability_weight=W),
     dict(deposit_balance=10000 * SB), dict(scaled_balance=500 * SB, open_orders=1, open_asks=-3000 * 10**9),
     300000010000, 300000000000),
])
def test_spot_open_orders(name, usdc_kw, sol_kw, pos1, mr, tc):
    """tests.rs `calculate_margin_requirement_and_total_collateral::{usdc_deposit_and_5x_sol_bid,
    usdc_deposit_and_5x_sol_ask, sol_deposit_and_5x_sol_ask}`: worst-case fill per market and the
    $0.01 open-order charge (``OPEN_ORDER_MARGIN_REQUIREMENT``)."""
    usdc_bal = 0 if name.startswith("sol_") else 10000 * SB
    user = User(spot_positions=[SpotPosition(0, usdc_bal), SpotPosition(1, **pos1)])
    r = margin_calculation(user, [usdc(**usdc_kw), sol(**sol_kw)], margin_type="initial")
    assert (r.margin_requirement, r.total_collateral) == (mr, tc)


def _custom_user(max_margin_ratio=0, perp_ratio=0):
    return User(spot_positions=[SpotPosition(0, 100 * SB), SpotPosition(1, 100 * SB, is_borrow=True)],
                perp_positions=[PerpPosition(0, base_asset_amount=100 * BASE, max_margin_ratio=perp_ratio)],
                max_margin_ratio=max_margin_ratio)


def test_user_custom_margin_ratio():
    """tests.rs `calculate_margin_requirement_and_total_collateral::user_custom_margin_ratio` (ratios
    above 1x are allowed: 2 * MARGIN_PRECISION gives 3x spot liability weight)."""
    mk = [usdc(), sol()]
    assert margin_calculation(_custom_user(2 * MP), mk, [SOL_PERP]).margin_requirement == 50000000000
    assert margin_calculation(_custom_user(MP), mk, [SOL_PERP]).margin_requirement == 30000000000
    assert margin_calculation(_custom_user(MP // 2), mk, [SOL_PERP]).margin_requirement == 20000000000
    r = margin_calculation(_custom_user(10 * MP), mk, [SOL_PERP], margin_type="maintenance")
    assert r.margin_requirement == 11500000000
    u = User(spot_positions=[SpotPosition(1, 100 * SB)], max_margin_ratio=MP // 2)
    assert margin_calculation(u, mk, [SOL_PERP]).total_collateral == 5000000000


def test_margin_ratio_override():
    """tests.rs `calculate_margin_requirement_and_total_collateral::margin_ratio_override` (the override
    applies to maintenance too)."""
    mk, u = [usdc(), sol()], _custom_user()
    for ov, exp in ((2 * MP, 50000000000), (MP, 30000000000), (MP // 2, 20000000000)):
        assert margin_calculation(u, mk, [SOL_PERP], margin_ratio_override=ov).margin_requirement == exp
    r = margin_calculation(u, mk, [SOL_PERP], margin_type="maintenance", margin_ratio_override=10 * MP)
    assert r.margin_requirement == 210000000000
    u2 = User(spot_positions=[SpotPosition(1, 100 * SB)])
    assert margin_calculation(u2, mk, [SOL_PERP], margin_ratio_override=MP // 2).total_collateral == 5000000000


def test_user_perp_positions_custom_margin_ratio():
    """tests.rs `calculate_margin_requirement_and_total_collateral::user_perp_positions_custom_margin_ratio`."""
    mk = [usdc(), sol()]
    u = User(spot_positions=[SpotPosition(0, 100 * SB)],
             perp_positions=[PerpPosition(0, base_asset_amount=100 * BASE, max_margin_ratio=2 * MP)])
    assert margin_calculation(u, mk, [SOL_PERP]).margin_requirement == 20000000000
    u = User(spot_positions=u.spot_positions, perp_positions=u.perp_positions, max_margin_ratio=4 * MP)
    assert margin_calculation(u, mk, [SOL_PERP]).margin_requirement == 40000000000


def test_user_and_position_max_margin_ratio_initial_vs_maintenance():
    """tests.rs `calculate_margin_requirement_and_total_collateral::
    user_and_position_max_margin_ratio_initial_vs_maintenance`."""
    mk = [usdc(), sol()]

    def user(user_r, pos_r):
        return User(spot_positions=[SpotPosition(0, 100 * SB)], max_margin_ratio=user_r,
                    perp_positions=[PerpPosition(0, base_asset_amount=100 * BASE, max_margin_ratio=pos_r)])
    base = margin_calculation(user(0, 0), mk, [SOL_PERP], margin_type="maintenance").margin_requirement
    assert base == 500000000
    for ur, pr in ((4 * MP, 2 * MP), (MP // 2, 4 * MP)):
        assert margin_calculation(user(ur, pr), mk, [SOL_PERP], margin_type="maintenance").margin_requirement == base
        assert margin_calculation(user(ur, pr), mk, [SOL_PERP]).margin_requirement == 40000000000


def test_user_dust_deposit_and_borrow():
    """tests.rs `calculate_margin_requirement_and_total_collateral::{user_dust_deposit,
    user_dust_borrow}` (token amounts, collateral and requirement; oracle validity is an input here)."""
    m = sol(cumulative_deposit_interest=CI // 99)
    assert d.get_token_amount(1040, m.cumulative_deposit_interest, 9, False) == 10
    r = margin_calculation(User(spot_positions=[SpotPosition(1, 1040)], max_margin_ratio=2 * MP), [usdc(), m])
    assert (r.total_collateral, r.margin_requirement) == (0, 0)
    assert d.get_token_amount(1, CI, 9, True) == 1
    for price in (100 * P6, P6 // 10000):  # second case: "< 1 penny"
        u = User(spot_positions=[SpotPosition(1, 1, is_borrow=True)], max_margin_ratio=2 * MP)
        r = margin_calculation(u, [usdc(), sol(oracle_price=price, oracle_valid=False)])
        assert (r.total_collateral, r.margin_requirement) == (0, 3)
        assert r.all_deposit_oracles_valid and not r.all_liability_oracles_valid


def test_strict_maintenance():
    """tests.rs `calculate_margin_requirement_and_total_collateral::strict_maintenance` (5-min TWAPs:
    USDC 0.9, SOL 110)."""
    u = User(spot_positions=[SpotPosition(0, 10000 * SB), SpotPosition(1, 100 * SB, is_borrow=True)])
    r = margin_calculation(u, [usdc(oracle_twap_5min=P6 * 9 // 10), sol(oracle_twap_5min=110 * P6)],
                           margin_type="maintenance", strict=True)
    assert (r.total_collateral, r.margin_requirement) == (9000000000, 12100000000)


@pytest.mark.parametrize("name,positions,dep_ok,liab_ok", [
    ("invalid_oracle_for_deposit", [SpotPosition(0, 100 * SB, is_borrow=True), SpotPosition(1, 100 * SB)], False, True),
    ("invalid_oracle_for_bid", [SpotPosition(1, 0, open_orders=1, open_bids=100 * BASE)], False, True),
    ("invalid_oracle_for_ask", [SpotPosition(1, 0, open_orders=1, open_asks=-100 * BASE)], True, False),
])
def test_invalid_oracles(name, positions, dep_ok, liab_ok):
    """tests.rs `calculate_margin_requirement_and_total_collateral::{invalid_oracle_for_deposit,
    invalid_oracle_for_bid, invalid_oracle_for_ask}` with ``ignore_invalid_deposit_oracles``; the SOL
    oracle is given as invalid (the venue derives this from its oracle map)."""
    mk = [usdc(cumulative_borrow_interest=CI), sol(oracle_valid=False)]
    r = margin_calculation(User(spot_positions=positions, max_margin_ratio=2 * MP), mk,
                           ignore_invalid_deposit_oracles=True)
    assert (r.all_deposit_oracles_valid, r.all_liability_oracles_valid) == (dep_ok, liab_ok)
    assert r.total_collateral == 0
    assert r.margin_requirement != 0


# --- module `calculate_margin_requirement_and_total_collateral_and_liability_info` -----------------

def test_no_perp_position_but_trigger_order():
    """tests.rs `..._and_liability_info::no_perp_position_but_trigger_order`."""
    u = User(spot_positions=[SpotPosition(0, 100 * SB)], perp_positions=[PerpPosition(0, open_orders=1)])
    r = margin_calculation(u, [usdc(), sol()], [SOL_PERP])
    assert r.margin_requirement == Q // 100
    assert r.num_spot_liabilities + r.num_perp_liabilities == 1
    assert not r.with_perp_isolated_liability and not r.with_spot_isolated_liability


def test_isolated_contract_tier_count_and_check():
    """tests.rs `..._and_liability_info::isolated_contract_tier_count_and_check` (order_step_size
    10_000_000 = 0.01 SOL long)."""
    iso = PerpMarket(**{**SOL_PERP.__dict__, "isolated_contract_tier": True})
    u = User(spot_positions=[SpotPosition(0, 100 * SB)], perp_positions=[PerpPosition(0, open_orders=1)])
    r = margin_calculation(u, [usdc(), sol()], [iso])
    assert r.margin_requirement == Q // 100
    assert r.num_spot_liabilities + r.num_perp_liabilities == 1
    assert not r.with_spot_isolated_liability and r.with_perp_isolated_liability
    u = User(spot_positions=[SpotPosition(0, 100 * SB)],
             perp_positions=[PerpPosition(0, base_asset_amount=10_000_000, open_orders=1)])
    r = margin_calculation(u, [usdc(), sol()], [iso])
    assert r.margin_requirement == 110000
    assert r.num_spot_liabilities + r.num_perp_liabilities == 1 and r.with_perp_isolated_liability


def test_no_spot_position_but_trigger_order():
    """tests.rs `..._and_liability_info::no_spot_position_but_trigger_order`."""
    u = User(spot_positions=[SpotPosition(0, 100 * SB), SpotPosition(1, 0, open_orders=1)])
    r = margin_calculation(u, [usdc(), sol()], [SOL_PERP])
    assert r.margin_requirement == Q // 100
    assert r.num_spot_liabilities + r.num_perp_liabilities == 1


@pytest.mark.parametrize("twap,tc", [(P6, 990000), (95 * P6 // 100, 950000), (101 * P6 // 100, 990000)])
def test_usdc_less_than_1_with_deposit(twap, tc):
    """tests.rs `..._and_liability_info::usdc_less_than_1_with_deposit` (USDC oracle $0.99, strict;
    first case: ``HistoricalOracleData::default_quote_oracle()``, TWAP $1)."""
    u = User(spot_positions=[SpotPosition(0, SB)])
    r = margin_calculation(u, [usdc(oracle_price=99 * 10000, oracle_twap_5min=twap)], strict=True)
    assert (r.margin_requirement, r.total_collateral) == (0, tc)


@pytest.mark.parametrize("twap,mr", [(P6, 1010000), (102 * P6 // 100, 1020000), (99 * P6 // 100, 1010000)])
def test_usdc_more_than_1_with_borrow(twap, mr):
    """tests.rs `..._and_liability_info::usdc_more_than_1_with_borrow` (USDC oracle $1.01, strict)."""
    u = User(spot_positions=[SpotPosition(0, SB, is_borrow=True)])
    m = usdc(oracle_price=101 * 10000, oracle_twap_5min=twap, borrow_balance=1000 * SB, cumulative_borrow_interest=CI)
    r = margin_calculation(u, [m], strict=True)
    assert (r.margin_requirement, r.total_collateral) == (mr, 0)


@pytest.mark.parametrize("twap,mr,tc", [(101 * P6 // 100, 10100000, 10100000), (105 * P6 // 100, 10500000, 10100000),
                                        (95 * P6 // 100, 10100000, 9500000)])
def test_usdc_not_1_with_perp_position(twap, mr, tc):
    """tests.rs `..._and_liability_info::usdc_not_1_with_perp_position` (USDC $1.01, 1 SOL-PERP long,
    strict: the perp liability is valued at the max of quote oracle and TWAP)."""
    u = User(spot_positions=[SpotPosition(0, 10 * SB)], perp_positions=[PerpPosition(0, base_asset_amount=BASE)])
    r = margin_calculation(u, [usdc(oracle_price=101 * 10000, oracle_twap_5min=twap), sol()], [SOL_PERP], strict=True)
    assert (r.margin_requirement, r.total_collateral) == (mr, tc)


def test_negative_perp_pnl_liquidation_buffer():
    """tests.rs `..._and_liability_info::negative_perp_pnl_liquidation_buffer` (``MarginContext::
    liquidation(MARGIN_PRECISION / 100)``: maintenance with a 1 % buffer)."""
    u = User(spot_positions=[SpotPosition(0, 100 * SB)], perp_positions=[PerpPosition(0, quote_asset_amount=-100 * Q)])
    r = margin_calculation(u, [usdc(), sol()], [SOL_PERP], margin_type="maintenance", margin_buffer=MP // 100)
    assert r.total_collateral == 0
    assert r.total_collateral_plus_buffer == -Q


@pytest.mark.parametrize("kw,match", [
    (dict(spot_positions=[SpotPosition(5, SB)]), r"no such spot market"),
    (dict(spot_positions=[SpotPosition(1, SB, open_bids=-1)]), r"open_bids.*>= 0"),
    (dict(spot_positions=[SpotPosition(1, SB, open_asks=1)]), r"open_asks.*<= 0"),
    (dict(perp_positions=[PerpPosition(3, BASE)]), r"no such perp market"),
    (dict(max_margin_ratio=-1), r"max_margin_ratio"),
])
def test_bad_input(kw, match):
    with pytest.raises(VenueInputError, match=match):
        margin_calculation(User(**kw), [usdc(), sol()], [SOL_PERP])
    with pytest.raises(VenueInputError, match="margin_type"):
        margin_calculation(User(), [usdc()], margin_type="init")


# --- modules `calculate_max_withdrawable_amount`, `validate_spot_margin_trading`,
# `calculate_user_equity`, `calculate_perp_position_value_and_pnl_prediction_market` ---------------

@pytest.mark.parametrize("name,positions,index,expected", [
    ("usdc_withdraw", [SpotPosition(0, 10000 * SB), SpotPosition(1, 0, open_orders=1, open_bids=100 * 10**9)], 0,
     10000000000),
    ("sol_withdraw", [SpotPosition(0, 10000 * SB, is_borrow=True), SpotPosition(1, 200 * SB)], 1, 74999999000),
    ("sol_dust_withdraw", [SpotPosition(0, 1, is_borrow=True), SpotPosition(1, 8008)], 1, 7000),
])
def test_calculate_max_withdrawable_amount(name, positions, index, expected):
    """tests.rs `calculate_max_withdrawable_amount::{usdc_withdraw, sol_withdraw, sol_dust_withdraw}`."""
    liab = {} if name == "usdc_withdraw" else dict(initial_liability_weight=W, maintenance_liability_weight=W)
    mk = [usdc(cumulative_borrow_interest=CI, **liab), sol()]
    assert d.max_withdrawable_amount(index, User(spot_positions=positions), mk) == expected


@pytest.mark.parametrize("name,usdc_pos,sol_pos,expected", [
    ("sol_ask_larger_than_deposit", SpotPosition(0, 10000 * SB), SpotPosition(1, SB, open_asks=-100 * 10**9),
     "MarginTradingDisabled"),
    ("sol_ask_smaller_than_deposit", SpotPosition(0, 10000 * SB), SpotPosition(1, 2 * SB, open_asks=-10**9), None),
    ("sol_ask_with_borrow", SpotPosition(0, 10000 * SB), SpotPosition(1, 2 * SB, is_borrow=True, open_asks=-10**9),
     "MarginTradingDisabled"),
    ("sol_bids_value_larger_than_usdc_deposit", SpotPosition(0, 100 * SB), SpotPosition(1, 2 * SB, open_bids=2 * 10**9),
     "MarginTradingDisabled"),
    ("sol_bids_value_smaller_than_usdc_deposit", SpotPosition(0, 1000 * SB),
     SpotPosition(1, 2 * SB, open_bids=2 * 10**9), None),
    ("sol_bids_with_usdc_borrow", SpotPosition(0, 100 * SB, is_borrow=True),
     SpotPosition(1, 2 * SB, open_bids=2 * 10**9), "MarginTradingDisabled"),
])
def test_validate_spot_margin_trading(name, usdc_pos, sol_pos, expected):
    """tests.rs `validate_spot_margin_trading::*` (the six spot cases)."""
    u = User(spot_positions=[usdc_pos, sol_pos])
    assert d.validate_spot_margin_trading(u, [usdc(cumulative_borrow_interest=CI), sol()]) == expected


def test_attempt_enable_margin_trading_with_isolated_perp():
    """tests.rs `validate_spot_margin_trading::attempt_enable_margin_trading_with_isolated_perp`."""
    iso = PerpMarket(**{**SOL_PERP.__dict__, "isolated_contract_tier": True})
    u = User(spot_positions=[SpotPosition(0, 100 * SB), SpotPosition(1, 2 * SB, open_bids=2 * 10**9)],
             perp_positions=[PerpPosition(0, BASE, -150 * Q, open_orders=1, open_bids=BASE)])
    assert d.validate_spot_margin_trading(u, [usdc(), sol()], [iso], is_margin_trading_enabled=True) \
        == "IsolatedAssetTierViolation"


@pytest.mark.parametrize("name,positions,perps,expected", [
    ("usdc_deposit_positive_perp_pnl", [SpotPosition(0, 10 * SB)], [PerpPosition(0, BASE, -90 * Q)], 20000000),
    ("usdc_deposit_negative_perp_pnl", [SpotPosition(0, 10 * SB)], [PerpPosition(0, BASE, -105 * Q)], 5000000),
    ("usdc_deposit_sol_borrow", [SpotPosition(0, 10000 * SB), SpotPosition(1, 90 * SB, is_borrow=True)], [],
     1000000000),
])
def test_calculate_user_equity(name, positions, perps, expected):
    """tests.rs `calculate_user_equity::*` (SOL 5-min TWAP 110 is ignored: equity uses oracle prices)."""
    pm = PerpMarket(0, 100 * P6, margin_ratio_initial=2000, margin_ratio_maintenance=1000)
    u = User(spot_positions=positions, perp_positions=perps)
    assert d.user_equity(u, [usdc(), sol(oracle_twap_5min=110 * P6)], [pm]) == expected


@pytest.mark.parametrize("name,price,base,quote", [
    ("long", P6 // 4, -BASE, Q * 3 // 4),
    ("short", P6 * 3 // 4, BASE, -Q // 4),
])
def test_prediction_market(name, price, base, quote):
    """tests.rs `calculate_perp_position_value_and_pnl_prediction_market::{long, short}`."""
    m = PerpMarket(0, price, margin_ratio_initial=10_000, margin_ratio_maintenance=9_999, prediction=True,
                   unrealized_pnl_maintenance_asset_weight=W, unrealized_pnl_initial_asset_weight=0)
    pos = PerpPosition(0, base_asset_amount=base, quote_asset_amount=quote)
    req, upnl, _, _ = d.perp_position_value_and_pnl(pos, m, "initial")
    assert (req, upnl) == (Q * 3 // 4, 0)
    req, upnl, _, _ = d.perp_position_value_and_pnl(pos, m, "maintenance")
    assert (req, upnl) == (749925, 500000)


def test_config_loads():
    """conf/margin/drift.yaml builds markets (composed with Hydra, as the entry points do)."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    conf_dir = Path(__file__).resolve().parents[2] / "conf" / "margin"
    with initialize_config_dir(version_base=None, config_dir=str(conf_dir)):
        cfg = OmegaConf.to_container(compose(config_name="drift"), resolve=True)
    spot, perp = d.markets_from_config(cfg)
    assert sorted(spot) == [0, 1] and sorted(perp) == [0]
    r = margin_calculation(User(spot_positions=[SpotPosition(0, 100 * SB)]), spot, perp)
    assert (r.total_collateral, r.margin_requirement) == (100 * Q, 0)
    with pytest.raises(VenueInputError, match="spot_markets"):
        d.markets_from_config({"spot_markets": [{"market_index": 0, "bogus": 1}]})


# --- modules `pools`, `isolated_position`, `margin_type_config`,
# `meets_place_order_margin_requirement_with_isolated`, `fill_perp_order_margin_requirement_with_isolated`

def test_pools():
    """tests.rs `pools::spot` and `pools::perp_market_invalid_pool_id` (``ErrorCode::InvalidPoolId``)."""
    with pytest.raises(d.DriftError, match="InvalidPoolId") as e:
        margin_calculation(User(spot_positions=[SpotPosition(0, 10000 * SB)]), [usdc(pool_id=1)])
    assert e.value.code == "InvalidPoolId"
    pm = PerpMarket(**{**SOL_PERP.__dict__, "pool_id": 1})
    with pytest.raises(d.DriftError, match="InvalidPoolId"):
        margin_calculation(User(perp_positions=[PerpPosition(0, 100 * BASE)]), [usdc(), sol()], [pm])


def test_isolated_position_margin_requirement():
    """tests.rs `isolated_position::isolated_position_margin_requirement` (without and with a 10 %
    margin buffer)."""
    u = User(spot_positions=[SpotPosition(0, 20000 * SB), SpotPosition(1, 100 * SB, is_borrow=True)],
             perp_positions=[PerpPosition(0, 100 * BASE, -11000 * Q, isolated=True,
                                          isolated_position_scaled_balance=100 * SB)])
    r = margin_calculation(u, [usdc(), sol()], [SOL_PERP])
    iso = r.isolated_margin_calculations[0]
    assert (r.margin_requirement, r.total_collateral) == (12000000000, 20000000000)
    assert (iso.margin_requirement, iso.total_collateral) == (1000000000, -900000000)
    assert not r.meets_margin_requirement and r.meets_cross_margin_requirement
    assert not iso.meets_margin_requirement and not r.meets_isolated_margin_requirement(0)
    r = margin_calculation(u, [usdc(), sol()], [SOL_PERP], margin_buffer=1000)
    iso = r.isolated_margin_calculations[0]
    assert (r.margin_requirement_plus_buffer, r.total_collateral_plus_buffer) == (13000000000, 20000000000)
    assert (iso.margin_requirement_plus_buffer, iso.total_collateral_plus_buffer) == (2000000000, -1000000000)


def test_margin_type_config():
    """tests.rs `margin_type_config::*` (default, isolated-position override, cross-margin override,
    and the three scenarios)."""
    mtc = d.MarginTypeConfig
    for t in ("initial", "maintenance", "fill"):
        c = mtc.default(t)
        assert c.get_cross_margin_requirement_type() == t
        assert all(c.get_isolated_margin_requirement_type(i) == t for i in (0, 1, 99))
    c = mtc.isolated_position_override(5, "initial", "maintenance", "initial")
    assert c.get_cross_margin_requirement_type() == "initial" and c.get_isolated_margin_requirement_type(5) == "initial"
    assert all(c.get_isolated_margin_requirement_type(i) == "maintenance" for i in (0, 1, 4, 6, 99))
    c = mtc.cross_margin_override("initial", "maintenance")
    assert c.get_cross_margin_requirement_type() == "initial"
    assert all(c.get_isolated_margin_requirement_type(i) == "maintenance" for i in (0, 1, 2, 5, 99))
    c = mtc.isolated_position_override(0, "initial", "maintenance", "initial")  # scenario_increase_isolated
    assert [c.get_isolated_margin_requirement_type(i) for i in (0, 1, 2)] == ["initial", "maintenance", "maintenance"]


ETH_PERP = PerpMarket(market_index=2, oracle_price=1000 * P6, margin_ratio_initial=1000, margin_ratio_maintenance=500)


def _iso(market, base, quote, iso_usdc, **kw):
    return PerpPosition(market, base * BASE, quote * Q, isolated=iso_usdc is not None,
                        isolated_position_scaled_balance=(iso_usdc or 0) * SB, **kw)


PLACE_ORDER = [  # (name, cross USDC, perp positions, risk_increasing, isolated_market_index, passes)
    ("cross_order_passes_when_isolated_fails_initial_but_passes_maintenance", 1000, [_iso(0, 10, -1000, 70)],
     True, None, True),
    ("cross_order_passes_when_cross_passes_initial_no_other_isolated", 1000, [], True, None, True),
    ("cross_order_fails_when_other_isolated_fails_maintenance", 1000, [_iso(0, 10, -1000, 40)], True, None, False),
    ("cross_order_fails_when_cross_only_passes_maintenance", 70, [_iso(0, 10, -1000, None)], True, None, False),
    ("cross_order_fails_when_cross_fails_maintenance", 40, [_iso(0, 10, -1000, None)], True, None, False),
    ("cross_order_not_risk_increasing_passes_when_all_pass_maintenance", 70, [_iso(0, 10, -1000, None)],
     False, None, True),
    ("cross_order_not_risk_increasing_fails_when_other_isolated_fails_maintenance", 1000, [_iso(0, 10, -1000, 40)],
     False, None, False),
    ("cross_order_not_risk_increasing_fails_when_cross_fails_maintenance", 40, [_iso(0, 10, -1000, None)], False, None,
     False),
    ("isolated_order_passes_when_other_isolated_fails_initial_but_passes_maintenance", 1000,
     [_iso(0, 10, -1000, 70), _iso(2, 1, -1000, 200)], True, 2, True),
    ("isolated_order_fails_when_cross_account_fails_initial_margin", 80,  # the venue asserts is_ok()
     [_iso(0, 10, -1000, None), _iso(2, 1, -1000, 200)], True, 2, True),
    ("isolated_order_fails_when_isolated_deposit_would_make_cross_fail_initial_margin", 110,
     [_iso(0, 10, -1000, None), _iso(2, 1, -1000, 110, open_orders=1, open_bids=BASE // 2)], True, 2, False),
    ("isolated_order_passes_when_cross_has_plenty_of_collateral", 1000, [_iso(2, 1, -1000, 150)], True, 2, True),
    ("isolated_order_fails_when_other_isolated_fails_maintenance_margin", 1000,
     [_iso(0, 10, -1000, 40), _iso(2, 1, -1000, 200)], True, 2, False),
    ("isolated_order_passes_when_cross_only_passes_maintenance", 70, [_iso(2, 1, -1000, 150)], True, 2, True),
    ("isolated_order_fails_when_current_isolated_only_passes_maintenance", 1000, [_iso(2, 1, -1000, 70)],
     True, 2, False),
    ("isolated_order_fails_when_current_isolated_fails_maintenance", 1000, [_iso(2, 1, -1000, 40)], True, 2, False),
    ("isolated_order_not_risk_increasing_passes_when_all_pass_maintenance", 70,
     [_iso(0, 10, -1000, None), _iso(2, 1, -1000, 70)], False, 2, True),
    ("isolated_order_not_risk_increasing_fails_when_other_isolated_fails_maintenance", 1000,
     [_iso(0, 10, -1000, 40), _iso(2, 1, -1000, 200)], False, 2, False),
]


@pytest.mark.parametrize("name,cross,perps,risk_increasing,iso_index,passes", PLACE_ORDER,
                         ids=[c[0] for c in PLACE_ORDER])
def test_meets_place_order_margin_requirement_with_isolated(name, cross, perps, risk_increasing, iso_index, passes):
    """tests.rs `meets_place_order_margin_requirement_with_isolated::<name>` (SOL-PERP $100, ETH-PERP
    $1000, 10 % / 5 %; strict prices)."""
    u = User(spot_positions=[SpotPosition(0, cross * SB)], perp_positions=perps)
    if passes:
        d.meets_place_order_margin_requirement(u, [usdc()], [SOL_PERP, ETH_PERP], risk_increasing, iso_index)
    else:
        with pytest.raises(d.DriftError, match="InsufficientCollateral"):
            d.meets_place_order_margin_requirement(u, [usdc()], [SOL_PERP, ETH_PERP], risk_increasing, iso_index)


_FILL_ISO = d.MarginTypeConfig.isolated_position_override(0, "fill", "maintenance", "maintenance")
_MAINT_ISO = d.MarginTypeConfig.isolated_position_override(0, "maintenance", "maintenance", "maintenance")
_FILL_CROSS = d.MarginTypeConfig.cross_margin_override("fill", "maintenance")
_MAINT_CROSS = d.MarginTypeConfig.cross_margin_override("maintenance", "maintenance")
FILL = [  # (name, cross USDC, perps, config, meets)
    ("isolated_fill_increasing_passes_when_current_isolated_passes_fill_others_maintenance", 70,
     [_iso(0, 1, -100, 150)], _FILL_ISO, True),
    ("isolated_fill_increasing_fails_when_current_isolated_only_passes_maintenance", 1000, [_iso(0, 1, -100, 7)],
     _FILL_ISO, False),
    ("isolated_fill_increasing_fails_when_current_isolated_fails_maintenance", 1000, [_iso(0, 10, -1000, 40)],
     _FILL_ISO, False),
    ("isolated_fill_increasing_fails_when_cross_fails_maintenance", 40,
     [_iso(0, 1, -100, 150), _iso(2, 1, -1000, None)], _FILL_ISO, False),
    ("isolated_fill_increasing_fails_when_other_isolated_fails_maintenance", 70,
     [_iso(0, 1, -100, 150), _iso(2, 1, -1000, 40)], _FILL_ISO, False),
    ("isolated_fill_decreasing_passes_when_all_pass_maintenance", 70, [_iso(0, 10, -1000, 70)], _MAINT_ISO, True),
    ("isolated_fill_decreasing_fails_when_current_isolated_fails_maintenance", 1000, [_iso(0, 10, -1000, 40)],
     _MAINT_ISO, False),
    ("isolated_fill_decreasing_fails_when_other_isolated_fails_maintenance", 70,
     [_iso(0, 10, -1000, 70), _iso(2, 1, -1000, 40)], _MAINT_ISO, False),
    ("cross_fill_increasing_passes_when_cross_passes_fill_isolated_maintenance", 150, [_iso(0, 1, -100, None)],
     _FILL_CROSS, True),
    ("cross_fill_increasing_fails_when_cross_only_passes_maintenance", 70, [_iso(0, 10, -1000, None)],
     _FILL_CROSS, False),
    ("cross_fill_increasing_fails_when_cross_fails_maintenance", 40, [_iso(0, 10, -1000, None)], _FILL_CROSS, False),
    ("cross_fill_increasing_fails_when_other_isolated_fails_maintenance", 150,
     [_iso(0, 1, -100, None), _iso(2, 1, -1000, 40)], _FILL_CROSS, False),
    ("cross_fill_decreasing_passes_when_all_pass_maintenance", 70, [_iso(0, 10, -1000, None)], _MAINT_CROSS, True),
    ("cross_fill_decreasing_fails_when_cross_fails_maintenance", 40, [_iso(0, 10, -1000, None)], _MAINT_CROSS, False),
    ("cross_fill_decreasing_fails_when_other_isolated_fails_maintenance", 70,
     [_iso(0, 10, -1000, None), _iso(2, 1, -1000, 40)], _MAINT_CROSS, False),
]


@pytest.mark.parametrize("name,cross,perps,config,meets", FILL, ids=[c[0] for c in FILL])
def test_fill_perp_order_margin_requirement_with_isolated(name, cross, perps, config, meets):
    """tests.rs `fill_perp_order_margin_requirement_with_isolated::<name>` (``MarginTypeConfig``
    overrides; fuel deltas do not affect margin)."""
    u = User(spot_positions=[SpotPosition(0, cross * SB)], perp_positions=perps)
    r = margin_calculation(u, [usdc()], [SOL_PERP, ETH_PERP], margin_type=config)
    assert r.meets_margin_requirement is meets


# --- high-leverage mode: protocol-v2 state/perp_market/tests.rs `get_margin_ratio::*` and
# math/margin/tests.rs `get_margin_calculation_for_disable_high_leverage_mode::check_user_not_changed`

def test_get_margin_ratio_test():
    """state/perp_market/tests.rs `get_margin_ratio::test`."""
    m = PerpMarket(0, P6, margin_ratio_initial=MP // 10, margin_ratio_maintenance=MP // 20)
    assert [d.perp_margin_ratio(m, BASE, t) for t in ("initial", "maintenance", "fill")] == \
        [MP // 10, MP // 20, (MP // 10 + MP // 20) // 2]
    m = PerpMarket(0, P6, margin_ratio_initial=MP // 10, margin_ratio_maintenance=MP // 20,
                   high_leverage_margin_ratio_initial=MP // 50, high_leverage_margin_ratio_maintenance=MP // 100)
    assert d.perp_margin_ratio(m, BASE, "initial", True) == MP // 50
    assert d.perp_margin_ratio(m, BASE, "maintenance", True) == MP // 100
    assert d.perp_margin_ratio(m, BASE, "fill", True) == (MP // 50 + MP // 100) // 2


def test_get_margin_ratio_new_hlm_imf_size_loop():
    """state/perp_market/tests.rs `get_margin_ratio::new_hlm_imf_size_loop`."""
    m = PerpMarket(0, P6, margin_ratio_initial=MP // 20, margin_ratio_maintenance=MP // 33,
                   high_leverage_margin_ratio_initial=MP // 100, high_leverage_margin_ratio_maintenance=MP // 151,
                   imf_factor=50)
    cnt = 0
    for i in range(1, 1000):
        hlm = d.perp_margin_ratio(m, BASE * i * 1000, "initial", True)
        normal = d.perp_margin_ratio(m, BASE * i * 1000, "initial", False)
        if normal != m.margin_ratio_initial:
            assert hlm == normal
            cnt += 1
    assert cnt == 959_196 // 1_000


def test_get_margin_ratio_new_hlm_imf_size():
    """state/perp_market/tests.rs `get_margin_ratio::new_hlm_imf_size`."""
    m = PerpMarket(0, P6, margin_ratio_initial=MP // 10, margin_ratio_maintenance=MP // 20,
                   high_leverage_margin_ratio_initial=MP // 100, high_leverage_margin_ratio_maintenance=MP // 200,
                   imf_factor=50)
    assert d.perp_margin_ratio(m, BASE * 1000000, "initial", False) == 1300
    assert d.perp_margin_ratio(m, BASE // 10, "initial", True) == m.high_leverage_margin_ratio_initial
    assert d.perp_margin_ratio(m, BASE, "initial", True) == m.high_leverage_margin_ratio_initial
    assert d.perp_margin_ratio(m, BASE * 10, "initial", True) == 104
    assert d.perp_margin_ratio(m, BASE * 3000, "initial", True) == 221
    assert d.perp_margin_ratio(m, BASE * 3000, "maintenance", True) == 67
    assert d.perp_margin_ratio(m, BASE * 300000, "maintenance", True) == 313


def test_get_margin_calculation_for_disable_high_leverage_mode_check_user_not_changed():
    """math/margin/tests.rs `get_margin_calculation_for_disable_high_leverage_mode::check_user_not_changed`."""
    u = User(spot_positions=[SpotPosition(0, 20000 * SB), SpotPosition(1, 100 * SB, is_borrow=True)],
             perp_positions=[PerpPosition(0, max_margin_ratio=2 * MP), PerpPosition(1, max_margin_ratio=5 * MP)],
             max_margin_ratio=2 * MP)
    before = User(**u.__dict__)
    sol_perp1 = PerpMarket(**{**SOL_PERP.__dict__, "market_index": 1})
    d.margin_calculation_for_disable_high_leverage_mode(u, [usdc(), sol()], [SOL_PERP, sol_perp1])
    assert u == before


def test_nroot():
    """tests.rs `test::test_nroot` (``nth_root(2)`` of 0 is 0; the premium uses ``isqrt(10 size + 1)``)."""
    import math
    assert math.isqrt(0) == 0
    assert d.size_premium_liability_weight(0, 1, 10000, MP) == 10000


# --- protocol-v2 state/user/tests.rs: `get_worst_case_fill_simulation::*`, `apply_user_custom_margin_ratio::test`,
# `worst_case_liability_value::{prediction, perp}` ------------------------------------------------------

T = 10**9  # one SOL in native units (decimals 9)
FILL_SIM = [  # (test, is_borrow, scaled_balance, open_bids, open_asks, twap_5min,
    #           (token_amount, orders_value, token_value, weighted_token_value, free_collateral_contribution))
    ("no_token_open_bid", False, 0, 1 * T, 0, None,
     (1 * T, -100 * Q, 100 * Q, 80 * Q, -20 * Q)),
    ("no_token_open_bid", False, 0, 1 * T, 0, 110 * P6,
     (1 * T, -110 * Q, 110 * Q, 88 * Q, -22 * Q)),
    ("no_token_open_bid", False, 0, 1 * T, 0, 90 * P6,
     (1 * T, -100 * Q, 100 * Q, 80 * Q, -20 * Q)),
    ("no_token_open_ask", False, 0, 0, -1 * T, None,
     (-1 * T, 100 * Q, -100 * Q, -120 * Q, -20 * Q)),
    ("no_token_open_ask", False, 0, 0, -1 * T, 110 * P6,
     (-1 * T, 110 * Q, -110 * Q, -132 * Q, -22 * Q)),
    ("no_token_open_ask", False, 0, 0, -1 * T, 90 * P6,
     (-1 * T, 100 * Q, -100 * Q, -120 * Q, -20 * Q)),
    ("deposit_and_open_ask", False, 2 * T, 0, -1 * T, None,
     (2 * T, 0, 200 * Q, 160 * Q, 160 * Q)),
    ("deposit_and_open_ask", False, 2 * T, 0, -1 * T, 110 * P6,
     (2 * T, 0, 200 * Q, 160 * Q, 160 * Q)),
    ("deposit_and_open_ask", False, 2 * T, 0, -1 * T, 90 * P6,
     (2 * T, 0, 180 * Q, 144 * Q, 144 * Q)),
    ("deposit_and_open_ask_flips_to_borrow", False, 1 * T, 0, -2 * T, None,
     (-1 * T, 200 * Q, -100 * Q, -120 * Q, 80 * Q)),
    ("deposit_and_open_ask_flips_to_borrow", False, 1 * T, 0, -2 * T, 110 * P6,
     (-1 * T, 220 * Q, -120 * Q, -144 * Q, 76 * Q)),
    ("deposit_and_open_ask_flips_to_borrow", False, 1 * T, 0, -2 * T, 90 * P6,
     (-1 * T, 200 * Q, -110 * Q, -132 * Q, 68 * Q)),
    ("deposit_and_open_bid", False, 2 * T, 1 * T, 0, None,
     (3 * T, -100 * Q, 300 * Q, 240 * Q, 140 * Q)),
    ("deposit_and_open_bid", False, 2 * T, 1 * T, 0, 110 * P6,
     (3 * T, -110 * Q, 310 * Q, 248 * Q, 138 * Q)),
    ("deposit_and_open_bid", False, 2 * T, 1 * T, 0, 90 * P6,
     (3 * T, -100 * Q, 280 * Q, 224 * Q, 124 * Q)),
    ("borrow_and_open_bid", True, 2 * T, 1 * T, 0, None,
     (-2 * T, 0, -200 * Q, -240 * Q, -240 * Q)),
    ("borrow_and_open_bid", True, 2 * T, 1 * T, 0, 110 * P6,
     (-2 * T, 0, -220 * Q, -264 * Q, -264 * Q)),
    ("borrow_and_open_bid", True, 2 * T, 1 * T, 0, 90 * P6,
     (-2 * T, 0, -200 * Q, -240 * Q, -240 * Q)),
    ("borrow_and_open_bid_flips_to_deposit", True, 2 * T, 5 * T, 0, None,
     (3 * T, -500 * Q, 300 * Q, 240 * Q, -260 * Q)),
    ("borrow_and_open_bid_flips_to_deposit", True, 2 * T, 5 * T, 0, 110 * P6,
     (3 * T, -550 * Q, 330 * Q, 264 * Q, -286 * Q)),
    ("borrow_and_open_bid_flips_to_deposit", True, 2 * T, 5 * T, 0, 90 * P6,
     (3 * T, -500 * Q, 300 * Q, 240 * Q, -260 * Q)),
    ("borrow_and_open_ask", True, 2 * T, 0, -1 * T, None,
     (-3 * T, 100 * Q, -300 * Q, -360 * Q, -260 * Q)),
    ("borrow_and_open_ask", True, 2 * T, 0, -1 * T, 110 * P6,
     (-3 * T, 110 * Q, -330 * Q, -396 * Q, -286 * Q)),
    ("borrow_and_open_ask", True, 2 * T, 0, -1 * T, 90 * P6,
     (-3 * T, 100 * Q, -300 * Q, -360 * Q, -260 * Q)),
]


@pytest.mark.parametrize("name,is_borrow,balance,bids,asks,twap,expected", FILL_SIM,
                         ids=[f"{c[0]}-twap{c[5]}" for c in FILL_SIM])
def test_get_worst_case_fill_simulation(name, is_borrow, balance, bids, asks, twap, expected):
    """state/user/tests.rs `get_worst_case_fill_simulation::<name>` (``SpotMarket::default_base_market``,
    oracle $100; strict TWAP none / $110 / $90; initial margin)."""
    m = SpotMarket(1, 9, 100 * P6, oracle_twap_5min=twap, cumulative_deposit_interest=CI, cumulative_borrow_interest=CI,
                   initial_liability_weight=12000, maintenance_liability_weight=11000, initial_asset_weight=8000,
                   maintenance_asset_weight=9000)
    pos = SpotPosition(1, balance, is_borrow=is_borrow, open_orders=1, open_bids=bids, open_asks=asks)
    assert tuple(d.spot_worst_case_fill(pos, m, "initial", strict=twap is not None)) == expected


def test_apply_user_custom_margin_ratio():
    """state/user/tests.rs `apply_user_custom_margin_ratio::test` (2x custom ratio on a deposit, a
    borrow, a bid and an ask simulation; 0 leaves it unchanged)."""
    sol = SpotMarket(1, 9, 100 * P6, cumulative_deposit_interest=CI, cumulative_borrow_interest=CI,
                     initial_liability_weight=12000, maintenance_liability_weight=11000, initial_asset_weight=8000,
                     maintenance_asset_weight=9000)
    S = d.OrderFillSimulation
    cases = [(S(token_value=100 * Q, weighted_token_value=80 * Q, free_collateral_contribution=80 * Q),
              S(token_value=100 * Q, weighted_token_value=50 * Q, free_collateral_contribution=50 * Q)),
             (S(token_value=-100 * Q, weighted_token_value=-120 * Q, free_collateral_contribution=-120 * Q),
              S(token_value=-100 * Q, weighted_token_value=-150 * Q, free_collateral_contribution=-150 * Q)),
             (S(token_value=100 * Q, weighted_token_value=80 * Q, orders_value=-100 * Q,
                free_collateral_contribution=-20 * Q),
              S(token_value=100 * Q, weighted_token_value=50 * Q, orders_value=-100 * Q,
                free_collateral_contribution=-50 * Q)),
             (S(token_value=-100 * Q, weighted_token_value=-120 * Q, orders_value=100 * Q,
                free_collateral_contribution=-20 * Q),
              S(token_value=-100 * Q, weighted_token_value=-150 * Q, orders_value=100 * Q,
                free_collateral_contribution=-50 * Q))]
    for before, expected in cases:
        assert d.apply_user_custom_margin_ratio(before, sol, 100 * P6, MP // 2) == expected
    same = cases[3][0]
    assert d.apply_user_custom_margin_ratio(same, sol, 100 * P6, 0) == same


@pytest.mark.parametrize("prediction,base,bids,asks,price,expected", [
    (True, 0, BASE, -BASE, P6 * 3 // 4, (BASE, P6 * 3 // 4)),
    (True, 0, BASE, -BASE, P6 // 4, (-BASE, P6 * 3 // 4)),
    (True, 98 * BASE, 0, -99 * BASE, P6 // 100, (-BASE, P6 * 99 // 100)),
    (True, -98 * BASE, 99 * BASE, 0, P6 * 99 // 100, (BASE, P6 * 99 // 100)),
    (False, 0, BASE, -BASE, 100 * P6, (-BASE, 100 * Q)),
    (False, 0, 2 * BASE, -BASE, 100 * P6, (2 * BASE, 200 * Q)),
    (False, 98 * BASE, 0, -99 * BASE, 100 * P6, (98 * BASE, 98 * 100 * Q)),
    (False, -98 * BASE, 99 * BASE, 0, 100 * P6, (-98 * BASE, 98 * 100 * Q)),
])
def test_worst_case_liability_value(prediction, base, bids, asks, price, expected):
    """state/user/tests.rs `worst_case_liability_value::{prediction, perp}`."""
    pos = PerpPosition(0, base, open_bids=bids, open_asks=asks)
    assert d.perp_worst_case_liability_value(pos, price, prediction) == expected


def test_bad_isolated_input():
    with pytest.raises(VenueInputError, match="isolated_position_scaled_balance"):
        margin_calculation(User(perp_positions=[PerpPosition(0, BASE, isolated_position_scaled_balance=-1)]),
                           [usdc()], [SOL_PERP])
    with pytest.raises(VenueInputError, match="only an isolated position"):
        margin_calculation(User(perp_positions=[PerpPosition(0, BASE, isolated_position_scaled_balance=SB)]),
                           [usdc()], [SOL_PERP])
