"""Aave v3: health factor in wad, close factors v3.0 / v3.3, seized collateral, liquidation price.

Expected values are computed here by hand from the Solidity formulas (GenericLogic.sol,
LiquidationLogic.sol, WadRayMath.sol, PercentageMath.sol) with Python ints.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from margin.rules.venues import aave
from margin.rules.venues.aave import (
    UINT256_MAX,
    WAD,
    AaveReserve,
    LiquidationReverted,
    close_factor_bps,
    collateral_to_liquidate,
    health_factor,
    liquidation_call,
    liquidation_price,
    percent_div,
    percent_mul,
    user_account_data,
    wad_div,
)
from margin.rules.venues._validate import VenueInputError

USD = 10**8  # base currency: USD with 8 decimals
ETH = 10**18
USDC = 10**6
CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "margin"


def _load_conf():
    """Compose the config group file with Hydra (as the entry points do)."""
    with initialize_config_dir(version_base=None, config_dir=str(CONF_DIR)):
        return OmegaConf.to_container(compose(config_name="aave_v3"), resolve=True)

WETH_R = AaveReserve("WETH", 18, 8000, 8250, 10500, 1000)
USDC_R = AaveReserve("USDC", 6, 7500, 7800, 10450, 1000)
RES = [WETH_R, USDC_R]


def test_math_rounds_half_up():
    assert percent_mul(1, 5_000) == 1  # 0.5 -> 1 (half up)
    assert percent_mul(1, 4_999) == 0
    assert percent_div(1, 20_000) == 1  # 0.5 -> 1
    assert wad_div(1, 2 * WAD) == 1  # 0.5 wei -> 1
    assert wad_div(1, 2 * WAD + 1) == 0
    assert aave.wad_mul(WAD // 2, 1) == 1
    assert aave.ray_mul(aave.RAY // 2, 1) == 1 and aave.ray_div(1, 2 * aave.RAY) == 1


def test_health_factor_exactly_one_at_boundary():
    # 1 ETH at $2,000, LT 82.5 %, debt 1,650 USDC: percentMul(2000e8, 8250) = 1650e8 = debt -> HF 1e18
    c, d, p = [ETH, 0], [0, 1_650 * USDC], [2_000 * USD, 1 * USD]
    acct = user_account_data(c, d, p, RES)
    assert acct.total_collateral_base == 2_000 * USD and acct.total_debt_base == 1_650 * USD
    assert acct.avg_liquidation_threshold_bps == 8250 and acct.avg_ltv_bps == 8000
    assert acct.health_factor == WAD
    assert not aave.is_liquidatable(acct.health_factor)  # liquidatable only when HF < 1
    # one more micro-USDC of debt: HF = 1650e8 * 1e18 / 165000000100 (half up) < 1e18
    hf = health_factor(c, [0, 1_650 * USDC + 1], p, RES)
    assert hf == (1_650 * USD * WAD + 165_000_000_100 // 2) // 165_000_000_100 < WAD
    assert aave.is_liquidatable(hf)
    # liquidation price of the ETH collateral is exactly $2,000
    assert liquidation_price(c, d, p, RES, 0) == 2_000 * USD
    # no debt: HF = uint256 max; no liquidation price
    assert health_factor(c, [0, 0], p, RES) == UINT256_MAX
    assert liquidation_price(c, [0, 0], p, RES, 0) is None


def test_weighted_average_lt_floors():
    # $1,000 WETH (LT 82.5 %) + $1,000.01 USDC (LT 78 %): avgLT = floor(sum(v*LT)/sum(v))
    c = [ETH // 2, 1_000_010_000]
    p = [2_000 * USD, 1 * USD]
    v = [1_000 * USD, 1_000_010_000 * USD // USDC]
    acct = user_account_data(c, [0, 10 * USDC], p, RES)
    assert acct.avg_liquidation_threshold_bps == (v[0] * 8250 + v[1] * 7800) // (v[0] + v[1]) == 8024
    hf = wad_div(percent_mul(v[0] + v[1], 8024), 10 * USD)
    assert acct.health_factor == hf
    # collateral disabled or LT 0 contributes nothing
    assert user_account_data(c, [0, 10 * USDC], p, RES, [False, True]).total_collateral_base == v[1]


def test_close_factor_switch_at_095():
    assert close_factor_bps(95 * 10**16) == 10_000  # HF == 0.95 exactly -> 100 %
    assert close_factor_bps(95 * 10**16 + 1) == 5_000
    assert close_factor_bps(0) == 10_000


def test_seized_collateral_with_bonus_and_protocol_fee():
    # repay 1,000 USDC against ETH at $2,000, bonus 5 %, protocol fee 10 % of the bonus
    base = 1 * USD * 1_000 * USDC * ETH // (2_000 * USD * USDC)
    assert base == ETH // 2
    gross = percent_mul(base, 10_500)  # 0.525 ETH
    bonus = gross - percent_div(gross, 10_500)  # 0.025 ETH
    fee = percent_mul(bonus, 1_000)  # 0.0025 ETH
    got = collateral_to_liquidate(1_000 * USDC, 2_000 * USD, 18, 1 * USD, 6, 10 * ETH, 10_500, 1_000)
    assert got == (gross - fee, 1_000 * USDC, fee) == (5225 * 10**14, 1_000 * USDC, 25 * 10**14)
    # not enough collateral: take the whole balance, debt needed = percentDiv(value, bonus)
    got = collateral_to_liquidate(1_000 * USDC, 2_000 * USD, 18, 1 * USD, 6, 3 * 10**17, 10_500, 0)
    assert got == (3 * 10**17, percent_div(600 * USDC, 10_500), 0)
    assert got[1] == (600 * USDC * 10_000 + 5_250) // 10_500 == 571_428_571


def _position(hf_target_debt_usd: int):
    # 10 ETH at $2,000 (LT 82.5 %): $16,500 of LT-weighted collateral
    return [10 * ETH, 0], [0, hf_target_debt_usd * USDC], [2_000 * USD, 1 * USD]


def test_liquidation_call_v30_close_factor():
    c, d, p = _position(17_000)  # HF = 16500/17000 = 0.9706 > 0.95 -> 50 %
    r = liquidation_call(c, d, p, RES, 0, 1, UINT256_MAX, version="3.0")
    assert r.max_liquidatable_debt == percent_mul(17_000 * USDC, 5_000) == r.debt_repaid
    c, d, p = _position(18_000)  # HF 0.9167 <= 0.95 -> 100 %
    r = liquidation_call(c, d, p, RES, 0, 1, UINT256_MAX, version="3.0")
    assert r.max_liquidatable_debt == 18_000 * USDC
    with pytest.raises(LiquidationReverted) as ei:
        liquidation_call(*_position(16_500), RES, 0, 1, 1, version="3.0")  # HF == 1
    assert ei.value.reason == "HEALTH_FACTOR_NOT_BELOW_THRESHOLD"


def test_liquidation_call_v33_rules():
    c, d, p = _position(17_000)
    # HF > 0.95 and both legs >= $2,000: reserve debt is the whole debt > 50 % -> capped at 50 % of total
    r = liquidation_call(c, d, p, RES, 0, 1, UINT256_MAX, version="3.3")
    assert r.max_liquidatable_debt == percent_mul(17_000 * USD, 5_000) * USDC // USD == 8_500 * USDC
    # small position (debt < $2,000): 100 % even though HF > 0.95
    c2, d2, p2 = [ETH, 0], [0, 1_700 * USDC], [2_000 * USD, 1 * USD]
    r = liquidation_call(c2, d2, p2, RES, 0, 1, UINT256_MAX, version="3.3")
    assert r.max_liquidatable_debt == 1_700 * USDC == r.debt_repaid
    # collateral < $2,000 with debt above: also 100 %
    c3, d3, p3 = [9 * 10**17, 0], [0, 1_520 * USDC], [2_000 * USD, 1 * USD]
    assert liquidation_call(c3, d3, p3, RES, 0, 1, 1, version="3.3").max_liquidatable_debt == 1_520 * USDC


def test_v33_dust_rule():
    c, d, p = _position(17_000)
    # HF 0.97: cap 8,500; repaying 8,400 leaves $8,600 debt and 5.59 ETH: allowed
    r = liquidation_call(c, d, p, RES, 0, 1, 8_400 * USDC, version="3.3")
    assert r.debt_repaid == 8_400 * USDC
    # HF <= 0.95 (100 % close factor): leaving $999.999999 of debt reverts, leaving exactly $1,000 passes,
    # repaying everything passes
    c, d, p = _position(18_000)
    with pytest.raises(LiquidationReverted) as ei:
        liquidation_call(c, d, p, RES, 0, 1, 17_000 * USDC + 1, version="3.3")
    assert ei.value.reason == "MUST_NOT_LEAVE_DUST"
    assert liquidation_call(c, d, p, RES, 0, 1, 17_000 * USDC, version="3.3").debt_repaid == 17_000 * USDC
    full = liquidation_call(c, d, p, RES, 0, 1, UINT256_MAX, version="3.3")
    assert full.debt_repaid == 18_000 * USDC
    # v3.0 has no dust rule
    assert liquidation_call(c, d, p, RES, 0, 1, 17_000 * USDC + 1, version="3.0").debt_repaid == 17_000 * USDC + 1


def test_v33_dust_rule_on_collateral_side():
    # debt $5,000 USDC vs 2.95 ETH at $2,000 (LT 82.5 % -> $4,867.5, HF 0.9735 > 0.95; both legs > $2,000)
    c, d, p = [295 * 10**16, 0], [0, 5_000 * USDC], [2_000 * USD, 1 * USD]
    # cap = 50 % = 2,500 USDC: seizes 1.3125 ETH incl. bonus -> 1.6375 ETH ($3,275) left: ok
    r = liquidation_call(c, d, p, RES, 0, 1, UINT256_MAX, version="3.3")
    assert r.debt_repaid == 2_500 * USDC
    assert r.collateral_to_liquidator + r.protocol_fee == percent_mul(125 * 10**16, 10_500)
    # with 2.0 ETH collateral ($4,000, HF 0.66): repaying 3,300 USDC seizes 1.7325 ETH, leaving $535: dust
    c = [2 * ETH, 0]
    with pytest.raises(LiquidationReverted, match="MUST_NOT_LEAVE_DUST"):
        liquidation_call(c, d, p, RES, 0, 1, 3_300 * USDC, version="3.3")


def test_liquidation_price_multi_collateral():
    # 1 ETH (LT 82.5 %) + 1,000 USDC (LT 78 %) as collateral, 2,000 DAI debt: the moving asset is not borrowed
    dai = AaveReserve("DAI", 18, 6300, 7700, 10500, 1000)
    res = [WETH_R, USDC_R, dai]
    c, d, p = [ETH, 1_000 * USDC, 0], [0, 0, 2_000 * 10**18], [2_000 * USD, 1 * USD, 1 * USD]
    price = liquidation_price(c, d, p, res, 0)
    # 1 ETH * P * 0.825 + 1,000 * 0.78 = 2,000  ->  P = 1,220 / 0.825 (base units)
    assert price == Fraction(1_220 * USD * 10_000, 8_250)
    # the contract floors the average LT to whole bps, so its integer HF crosses 1 within ~1 bps of price
    lo = price.numerator // price.denominator
    assert health_factor(c, d, [lo * 9_999 // 10_000, p[1], p[2]], res) < WAD
    assert health_factor(c, d, [lo * 10_001 // 10_000, p[1], p[2]], res) >= WAD
    with pytest.raises(VenueInputError, match="must not be borrowed"):
        liquidation_price(c, d, p, res, 2)


@settings(max_examples=60, deadline=None)
@given(coll=st.integers(1, 10**24), debt=st.integers(1, 10**14), price=st.integers(1, 10**13),
       lt=st.integers(1, 9_500))
def test_health_factor_matches_formula_and_monotone(coll, debt, price, lt):
    r = [AaveReserve("C", 18, 0, lt, 10_000, 0), AaveReserve("D", 6, 0, 0, 10_000, 0)]
    c, d, p = [coll, 0], [0, debt], [price, USD]
    hf = health_factor(c, d, p, r)
    tc = coll * price // ETH
    td = debt * USD // USDC
    assert hf == (((tc * lt + 5_000) // 10_000) * WAD + td // 2) // td
    # exact rational HF differs from the integer HF by rounding only
    exact = Fraction(coll * price * lt, ETH * 10_000) / Fraction(td)
    assert abs(Fraction(hf, WAD) - exact) <= Fraction(1, td) + Fraction(1, WAD) + Fraction(10_000, 10_000 * td)
    # more debt never raises HF
    assert health_factor(c, [0, debt + 1], p, r) <= hf


def test_config_reserves_load():
    res = aave.reserves_from_config(_load_conf())
    assert res["WETH"].liquidation_bonus_bps == 10_500 and res["WETH"].liquidation_protocol_fee_bps == 1_000
    assert all(r.ltv_bps <= r.liquidation_threshold_bps for r in res.values())


@pytest.mark.parametrize("call,match", [
    (lambda: user_account_data([-1, 0], [0, 0], [1, 1], RES), r"collateral_balances\[0\].*>= 0"),
    (lambda: user_account_data([1, 0], [0, 0], [1], RES), r"prices.*length mismatch"),
    (lambda: user_account_data([1, 0], [0, 0.5], [1, 1], RES), r"debt_balances\[1\].*integer"),
    (lambda: user_account_data([1, 0], [0, 0], [float("nan"), 1], RES), r"prices\[0\].*integer"),
    (lambda: AaveReserve("X", 18, 9000, 8000, 10500), r"ltv_bps"),
    (lambda: AaveReserve("X", 18, 8000, 9800, 10500), r"liquidation_bonus_bps"),
    (lambda: liquidation_call([1, 0], [0, 1], [1, 1], RES, 0, 1, 1, version="2"), r"version"),
    (lambda: liquidation_call([1, 0], [0, 1], [1, 1], RES, 5, 1, 1), r"collateral_index"),
])
def test_bad_input(call, match):
    with pytest.raises(VenueInputError, match=match):
        call()
