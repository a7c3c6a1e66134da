"""Aave v3 health factor and liquidation rules in exact Solidity-style integer arithmetic.

All functions use Python ints as ``uint256`` (values must be in [0, 2**256)); each division
rounds as the contract does. Units: token amounts in the token's smallest unit (``10**decimals``
per token); prices and "base currency" values in the oracle's base currency (USD with 8 decimals
on the main markets, so $1 = ``10**8``); percentages in bps (``10_000`` = 100 %); health factor in
wad (``10**18`` = 1.0).

Rounding of each step, as checked in aave/aave-v3-core (stored copies read for this module):

* ``math/WadRayMath.sol``: ``wadMul(a, b) = (a*b + WAD/2) / WAD`` and
  ``wadDiv(a, b) = (a*WAD + b/2) / b``: both **round half up**; ``rayMul`` / ``rayDiv`` likewise with RAY.
* ``math/PercentageMath.sol``: ``percentMul(v, p) = (v*p + 5_000) / 10_000`` and
  ``percentDiv(v, p) = (v*10_000 + p/2) / p``: **half up**.
* ``logic/GenericLogic.sol`` ``calculateUserAccountData``: per reserve
  ``value = balance * price / 10**decimals`` (**floor**, ``_getUserBalanceInBaseCurrency`` /
  ``_getUserDebtInBaseCurrency``); ``avgLT = sum(value_i * LT_i) / totalCollateral`` (**floor**);
  ``HF = wadDiv(percentMul(totalCollateral, avgLT), totalDebt)`` (half up, half up); no debt gives
  ``HF = type(uint256).max``. Reserves with LT 0 or not enabled as collateral add no collateral.
* ``logic/LiquidationLogic.sol`` (v3.0 - v3.2): close factor 50 % (``DEFAULT_LIQUIDATION_CLOSE_FACTOR``)
  if ``HF > 0.95e18`` (``CLOSE_FACTOR_HF_THRESHOLD``), else 100 %; ``maxLiquidatableDebt =
  percentMul(userReserveDebt, closeFactor)``. ``_calculateAvailableCollateralToLiquidate``:
  ``baseCollateral = debtPrice*debtToCover*collUnit / (collPrice*debtUnit)`` (floor),
  ``maxCollateral = percentMul(baseCollateral, bonus)``; if it exceeds the balance, the whole balance
  is taken and ``debtNeeded = percentDiv(collPrice*balance*debtUnit / (debtPrice*collUnit), bonus)``;
  ``bonusCollateral = amount - percentDiv(amount, bonus)``; ``protocolFee = percentMul(bonusCollateral,
  protocolFeeBps)``; the liquidator receives ``amount - protocolFee``.
* aave-dao/aave-v3-origin ``LiquidationLogic.sol`` (v3.3): whole reserve debt liquidatable, unless the
  reserve's collateral *and* the reserve's debt are both ``>= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD``
  ($2,000 = ``2000e8``) and ``HF > 0.95e18``; then, if the reserve debt exceeds ``percentMul(totalDebt,
  5000)``, it is capped at ``percentMul(totalDebtBase, 5000) * debtUnit / debtPrice`` (floor). A partial
  liquidation (debt not fully repaid and collateral not fully taken) must leave both debt and
  collateral ``>= MIN_LEFTOVER_BASE`` ($1,000), else it reverts with ``MUST_NOT_LEAVE_DUST``.

Not modelled: eMode categories, isolation-mode debt ceilings, price-oracle sentinel / grace periods,
the v3.3 deficit (bad-debt burning) bookkeeping, and the explicit-rounding changes of v3.4+.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping, NamedTuple, Sequence

from margin.rules.venues._validate import VenueInputError, check_int

__all__ = [
    "WAD",
    "RAY",
    "PERCENTAGE_FACTOR",
    "UINT256_MAX",
    "HEALTH_FACTOR_LIQUIDATION_THRESHOLD",
    "CLOSE_FACTOR_HF_THRESHOLD",
    "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD",
    "MIN_LEFTOVER_BASE",
    "AaveReserve",
    "AccountData",
    "LiquidationResult",
    "LiquidationReverted",
    "reserves_from_config",
    "wad_mul",
    "wad_div",
    "ray_mul",
    "ray_div",
    "percent_mul",
    "percent_div",
    "user_account_data",
    "health_factor",
    "is_liquidatable",
    "close_factor_bps",
    "collateral_to_liquidate",
    "liquidation_call",
    "liquidation_price",
]

WAD = 10**18
HALF_WAD = WAD // 2
RAY = 10**27
HALF_RAY = RAY // 2
PERCENTAGE_FACTOR = 10_000
HALF_PERCENTAGE_FACTOR = 5_000
UINT256_MAX = 2**256 - 1
HEALTH_FACTOR_LIQUIDATION_THRESHOLD = WAD  # ValidationLogic: liquidatable iff HF < 1e18
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16  # 0.95e18
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000
MAX_LIQUIDATION_CLOSE_FACTOR = 10_000
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2_000 * 10**8  # $2,000 in 8-decimal base currency (v3.3)
MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD // 2  # $1,000 (v3.3)


class LiquidationReverted(Exception):
    """The contract would revert; ``reason`` is Aave's error name (e.g. ``"MUST_NOT_LEAVE_DUST"``)."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


def _u(v: Any, field: str) -> int:
    return check_int(v, field, 0, UINT256_MAX)


def _checked(v: int, op: str) -> int:
    if v > UINT256_MAX:
        raise LiquidationReverted("MATH_MULTIPLICATION_OVERFLOW", f"{op} exceeds uint256")
    return v


def wad_mul(a: int, b: int) -> int:
    """``(a*b + WAD/2) // WAD`` (half up); ints in wad. Source: aave-v3-core ``WadRayMath.wadMul``.

    Raises: VenueInputError (negative / non-int), LiquidationReverted (uint256 overflow).
    """
    a, b = _u(a, "a"), _u(b, "b")
    return _checked(a * b + HALF_WAD, "wadMul") // WAD


def wad_div(a: int, b: int) -> int:
    """``(a*WAD + b//2) // b`` (half up); ints in wad. Source: aave-v3-core ``WadRayMath.wadDiv``.

    Raises: VenueInputError if ``b == 0`` (the contract reverts) or for negative / non-int input;
      LiquidationReverted on uint256 overflow.
    """
    a, b = _u(a, "a"), _u(b, "b")
    if b == 0:
        raise VenueInputError("b", None, 0, "division by zero")
    return _checked(a * WAD + b // 2, "wadDiv") // b


def ray_mul(a: int, b: int) -> int:
    """``(a*b + RAY/2) // RAY`` (half up); ints in ray (1e27). Source: aave-v3-core ``WadRayMath.rayMul``.

    Raises: VenueInputError (negative / non-int), LiquidationReverted (uint256 overflow).
    """
    a, b = _u(a, "a"), _u(b, "b")
    return _checked(a * b + HALF_RAY, "rayMul") // RAY


def ray_div(a: int, b: int) -> int:
    """``(a*RAY + b//2) // b`` (half up); ints in ray. Source: aave-v3-core ``WadRayMath.rayDiv``.

    Raises: VenueInputError (``b == 0``, negative / non-int), LiquidationReverted (uint256 overflow).
    """
    a, b = _u(a, "a"), _u(b, "b")
    if b == 0:
        raise VenueInputError("b", None, 0, "division by zero")
    return _checked(a * RAY + b // 2, "rayDiv") // b


def percent_mul(value: int, bps: int) -> int:
    """``(value*bps + 5_000) // 10_000`` (half up); ``bps`` in basis points.

    Raises: VenueInputError (negative / non-int), LiquidationReverted (uint256 overflow).
    Source: aave-v3-core ``PercentageMath.percentMul``.
    """
    value, bps = _u(value, "value"), _u(bps, "bps")
    return _checked(value * bps + HALF_PERCENTAGE_FACTOR, "percentMul") // PERCENTAGE_FACTOR


def percent_div(value: int, bps: int) -> int:
    """``(value*10_000 + bps//2) // bps`` (half up). Source: aave-v3-core ``PercentageMath.percentDiv``.

    Raises: VenueInputError if ``bps == 0`` (the contract reverts).
    """
    value, bps = _u(value, "value"), _u(bps, "bps")
    if bps == 0:
        raise VenueInputError("bps", None, 0, "division by zero")
    return _checked(value * PERCENTAGE_FACTOR + bps // 2, "percentDiv") // bps


@dataclass(frozen=True)
class AaveReserve:
    """Risk parameters of one Aave v3 reserve (``ReserveConfiguration`` bit map fields).

    Attributes:
      symbol: token symbol.
      decimals: token decimals (0..77).
      ltv_bps: loan-to-value, bps.
      liquidation_threshold_bps: LT, bps (0 = not usable as collateral).
      liquidation_bonus_bps: e.g. 10_500 = 5 % bonus (>= 10_000 when LT > 0).
      liquidation_protocol_fee_bps: protocol share of the bonus, bps (e.g. 1_000 = 10 %).

    Raises: VenueInputError for out-of-range values (Aave: LTV <= LT <= 100 %, bonus >= 100 %,
      ``percentMul(LT, bonus) <= 10_000``, protocol fee <= 100 %; PoolConfigurator checks).
    """

    symbol: str
    decimals: int
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    liquidation_protocol_fee_bps: int = 0

    def __post_init__(self) -> None:
        f = f"reserve {self.symbol!r}."
        check_int(self.decimals, f + "decimals", 0, 77)
        lt = check_int(self.liquidation_threshold_bps, f + "liquidation_threshold_bps", 0, PERCENTAGE_FACTOR)
        check_int(self.ltv_bps, f + "ltv_bps", 0, lt)
        bonus = check_int(self.liquidation_bonus_bps, f + "liquidation_bonus_bps", 0, 65_535)
        check_int(self.liquidation_protocol_fee_bps, f + "liquidation_protocol_fee_bps", 0, PERCENTAGE_FACTOR)
        if lt > 0 and (bonus < PERCENTAGE_FACTOR or percent_mul(lt, bonus) > PERCENTAGE_FACTOR):
            raise VenueInputError(f + "liquidation_bonus_bps", None, bonus,
                                  "must be >= 10_000 and percentMul(LT, bonus) <= 10_000")


def reserves_from_config(cfg: Mapping[str, Any]) -> dict[str, AaveReserve]:
    """Build reserves from ``conf/margin/aave_v3.yaml`` (``cfg["reserves"]``: symbol -> params).

    Each entry has ``decimals``, ``ltv_bps``, ``liquidation_threshold_bps``, ``liquidation_bonus_bps``
    and optionally ``liquidation_protocol_fee_bps`` (bps).

    Returns: ``{symbol: AaveReserve}``.

    Raises: VenueInputError naming the reserve for a missing key or an invalid value.
    """
    out = {}
    for sym, r in cfg["reserves"].items():
        try:
            out[str(sym)] = AaveReserve(
                symbol=str(sym), decimals=int(r["decimals"]), ltv_bps=int(r["ltv_bps"]),
                liquidation_threshold_bps=int(r["liquidation_threshold_bps"]),
                liquidation_bonus_bps=int(r["liquidation_bonus_bps"]),
                liquidation_protocol_fee_bps=int(r.get("liquidation_protocol_fee_bps", 0)))
        except KeyError as e:
            raise VenueInputError("reserves", str(sym), dict(r), f"missing key {e}") from None
    return out


class AccountData(NamedTuple):
    """Output of :func:`user_account_data` (all ints; ``GenericLogic.calculateUserAccountData``).

    Attributes:
      total_collateral_base, total_debt_base: base currency units (8 decimals for USD).
      avg_ltv_bps, avg_liquidation_threshold_bps: collateral-weighted, bps, floored.
      health_factor: wad; ``UINT256_MAX`` when there is no debt.
      has_zero_ltv_collateral: some collateral reserve has LTV 0.
    """

    total_collateral_base: int
    total_debt_base: int
    avg_ltv_bps: int
    avg_liquidation_threshold_bps: int
    health_factor: int
    has_zero_ltv_collateral: bool


def _check_lists(collateral: Sequence[int], debt: Sequence[int], prices: Sequence[int],
                 reserves: Sequence[AaveReserve], use_as_collateral: Sequence[bool] | None):
    k = len(reserves)
    for field, seq in (("collateral_balances", collateral), ("debt_balances", debt), ("prices", prices),
                       ("use_as_collateral", use_as_collateral)):
        if seq is not None and len(seq) != k:
            raise VenueInputError(field, None, len(seq), f"length mismatch: expected {k} (len(reserves))")
    c = [_u(v, f"collateral_balances[{i}]") for i, v in enumerate(collateral)]
    d = [_u(v, f"debt_balances[{i}]") for i, v in enumerate(debt)]
    p = [_u(v, f"prices[{i}]") for i, v in enumerate(prices)]
    use = [True] * k if use_as_collateral is None else [bool(x) for x in use_as_collateral]
    return c, d, p, use


def user_account_data(collateral_balances: Sequence[int], debt_balances: Sequence[int],
                      prices: Sequence[int], reserves: Sequence[AaveReserve],
                      use_as_collateral: Sequence[bool] | None = None) -> AccountData:
    """Totals, average LTV / LT and health factor of one user, exactly as the contract.

    Args:
      collateral_balances: aToken balances per reserve, token smallest units (length K, ints >= 0).
      debt_balances: debt (variable + stable) per reserve, token smallest units (length K).
      prices: oracle prices per reserve, base currency units per whole token (8 decimals for USD).
      reserves: reserve parameters (length K).
      use_as_collateral: per-reserve collateral flag (default all True).

    Returns: :class:`AccountData`.

    A reserve with zero collateral balance counts as not used as collateral (the contract clears
    the flag when a balance reaches zero), so it cannot set ``has_zero_ltv_collateral``.

    Raises: VenueInputError on length mismatch, negative or non-integer amounts (names field, index).

    Source: aave-v3-core ``GenericLogic.sol`` ``calculateUserAccountData`` (eMode not modelled).
    """
    c, d, p, use = _check_lists(collateral_balances, debt_balances, prices, reserves, use_as_collateral)
    tot_c = tot_d = avg_ltv = avg_lt = 0
    zero_ltv = False
    for i, r in enumerate(reserves):
        unit = 10**r.decimals
        if r.liquidation_threshold_bps != 0 and use[i] and c[i] > 0:
            v = c[i] * p[i] // unit
            tot_c += v
            if r.ltv_bps != 0:
                avg_ltv += v * r.ltv_bps
            else:
                zero_ltv = True
            avg_lt += v * r.liquidation_threshold_bps
        if d[i] > 0:
            tot_d += d[i] * p[i] // unit
    avg_ltv = avg_ltv // tot_c if tot_c else 0
    avg_lt = avg_lt // tot_c if tot_c else 0
    hf = UINT256_MAX if tot_d == 0 else wad_div(percent_mul(tot_c, avg_lt), tot_d)
    return AccountData(tot_c, tot_d, avg_ltv, avg_lt, hf, zero_ltv)


def health_factor(collateral_balances: Sequence[int], debt_balances: Sequence[int],
                  prices: Sequence[int], reserves: Sequence[AaveReserve],
                  use_as_collateral: Sequence[bool] | None = None) -> int:
    """Health factor in wad (``10**18`` = 1.0); see :func:`user_account_data` (same args / errors)."""
    return user_account_data(collateral_balances, debt_balances, prices, reserves, use_as_collateral).health_factor


def is_liquidatable(hf_wad: int) -> bool:
    """``HF < 1e18``. Source: aave-v3-core ``ValidationLogic.validateLiquidationCall``."""
    return _u(hf_wad, "hf_wad") < HEALTH_FACTOR_LIQUIDATION_THRESHOLD


def close_factor_bps(hf_wad: int) -> int:
    """v3.0-v3.2 close factor, bps: 5_000 if ``HF > 0.95e18`` else 10_000 (``HF == 0.95e18`` gives 100 %).

    Source: aave-v3-core ``LiquidationLogic._calculateDebt``.
    """
    return DEFAULT_LIQUIDATION_CLOSE_FACTOR if _u(hf_wad, "hf_wad") > CLOSE_FACTOR_HF_THRESHOLD \
        else MAX_LIQUIDATION_CLOSE_FACTOR


def collateral_to_liquidate(debt_to_cover: int, collateral_price: int, collateral_decimals: int,
                            debt_price: int, debt_decimals: int, user_collateral_balance: int,
                            liquidation_bonus_bps: int, protocol_fee_bps: int = 0) -> tuple[int, int, int]:
    """Collateral seized for covering debt, with bonus and protocol fee.

    Args:
      debt_to_cover: debt repaid, debt-token smallest units.
      collateral_price, debt_price: oracle prices, base currency units per whole token (> 0).
      collateral_decimals, debt_decimals: token decimals.
      user_collateral_balance: borrower's balance of the collateral token, smallest units.
      liquidation_bonus_bps: e.g. 10_500 (5 % bonus).
      protocol_fee_bps: protocol share of the bonus collateral, bps.

    Returns: ``(collateral_to_liquidator, debt_amount_needed, protocol_fee)`` in smallest units of
      the collateral / debt / collateral token.

    Raises: VenueInputError for negative / non-integer values or zero prices.

    Source: aave-v3-core ``LiquidationLogic._calculateAvailableCollateralToLiquidate`` (identical in
    aave-v3-origin v3.3 apart from also returning the base-currency value).
    """
    debt_to_cover = _u(debt_to_cover, "debt_to_cover")
    cp = check_int(collateral_price, "collateral_price", 1, UINT256_MAX)
    dp = check_int(debt_price, "debt_price", 1, UINT256_MAX)
    cu = 10 ** check_int(collateral_decimals, "collateral_decimals", 0, 77)
    du = 10 ** check_int(debt_decimals, "debt_decimals", 0, 77)
    bal = _u(user_collateral_balance, "user_collateral_balance")
    bonus = check_int(liquidation_bonus_bps, "liquidation_bonus_bps", 1, 65_535)
    fee_bps = check_int(protocol_fee_bps, "protocol_fee_bps", 0, PERCENTAGE_FACTOR)
    base_collateral = dp * debt_to_cover * cu // (cp * du)
    max_collateral = percent_mul(base_collateral, bonus)
    if max_collateral > bal:
        amount = bal
        debt_needed = percent_div(cp * amount * du // (dp * cu), bonus)
    else:
        amount = max_collateral
        debt_needed = debt_to_cover
    fee = 0
    if fee_bps != 0:
        bonus_collateral = amount - percent_div(amount, bonus)
        fee = percent_mul(bonus_collateral, fee_bps)
    return amount - fee, debt_needed, fee


class LiquidationResult(NamedTuple):
    """Output of :func:`liquidation_call` (ints, token smallest units).

    Attributes:
      debt_repaid: debt actually repaid (debt token).
      collateral_to_liquidator: collateral sent to the liquidator (collateral token).
      protocol_fee: collateral sent to the treasury (collateral token).
      max_liquidatable_debt: the close-factor cap applied (debt token).
      health_factor: HF before the liquidation, wad.
    """

    debt_repaid: int
    collateral_to_liquidator: int
    protocol_fee: int
    max_liquidatable_debt: int
    health_factor: int


def liquidation_call(collateral_balances: Sequence[int], debt_balances: Sequence[int],
                     prices: Sequence[int], reserves: Sequence[AaveReserve], collateral_index: int,
                     debt_index: int, debt_to_cover: int, *, version: str = "3.3",
                     use_as_collateral: Sequence[bool] | None = None) -> LiquidationResult:
    """Simulate ``Pool.liquidationCall`` on one account (no state change).

    Args:
      collateral_balances, debt_balances, prices, reserves, use_as_collateral: as in
        :func:`user_account_data`.
      collateral_index, debt_index: reserve indices of the collateral seized and the debt repaid.
      debt_to_cover: debt the liquidator offers to repay (debt token units); ``UINT256_MAX`` = all.
      version: ``"3.0"`` (v3.0 - v3.2 close factor) or ``"3.3"`` (v3.3+ close factor and dust rules).

    Returns: :class:`LiquidationResult`.

    Raises:
      LiquidationReverted: ``HEALTH_FACTOR_NOT_BELOW_THRESHOLD`` (HF >= 1),
        ``COLLATERAL_CANNOT_BE_LIQUIDATED`` (no collateral / LT 0 / flag off),
        ``SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER`` (no debt in ``debt_index``),
        ``MUST_NOT_LEAVE_DUST`` (v3.3 partial liquidation leaving < $1,000 of debt or collateral).
      VenueInputError: bad arguments (names field and index).

    Source: aave-v3-core ``LiquidationLogic.executeLiquidationCall`` / ``_calculateDebt`` (v3.0);
    aave-dao/aave-v3-origin ``LiquidationLogic.executeLiquidationCall`` (v3.3).
    """
    if version not in ("3.0", "3.3"):
        raise VenueInputError("version", None, version, "must be '3.0' or '3.3'")
    c, d, p, use = _check_lists(collateral_balances, debt_balances, prices, reserves, use_as_collateral)
    k = len(reserves)
    ci = check_int(collateral_index, "collateral_index", 0, k - 1)
    di = check_int(debt_index, "debt_index", 0, k - 1)
    to_cover = _u(debt_to_cover, "debt_to_cover")
    acct = user_account_data(c, d, p, reserves, use)
    hf = acct.health_factor
    cr, dr = reserves[ci], reserves[di]
    if hf >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        raise LiquidationReverted("HEALTH_FACTOR_NOT_BELOW_THRESHOLD", f"HF = {hf} wad")
    if cr.liquidation_threshold_bps == 0 or not use[ci] or c[ci] == 0:
        raise LiquidationReverted("COLLATERAL_CANNOT_BE_LIQUIDATED")
    if d[di] == 0:
        raise LiquidationReverted("SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER")
    cu, du = 10**cr.decimals, 10**dr.decimals
    if version == "3.0":
        max_debt = percent_mul(d[di], close_factor_bps(hf))
    else:
        reserve_debt_base = d[di] * p[di] // du
        reserve_coll_base = c[ci] * p[ci] // cu
        max_debt = d[di]
        if (reserve_coll_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
                and reserve_debt_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
                and hf > CLOSE_FACTOR_HF_THRESHOLD):
            half_total = percent_mul(acct.total_debt_base, DEFAULT_LIQUIDATION_CLOSE_FACTOR)
            if reserve_debt_base > half_total:
                max_debt = half_total * du // p[di]
    actual = min(to_cover, max_debt)
    coll, actual, fee = collateral_to_liquidate(actual, p[ci], cr.decimals, p[di], dr.decimals, c[ci],
                                                cr.liquidation_bonus_bps, cr.liquidation_protocol_fee_bps)
    if version == "3.3" and actual < d[di] and coll + fee < c[ci]:
        debt_left = (d[di] - actual) * p[di] // du
        coll_left = (c[ci] - coll - fee) * p[ci] // cu
        if debt_left < MIN_LEFTOVER_BASE or coll_left < MIN_LEFTOVER_BASE:
            raise LiquidationReverted("MUST_NOT_LEAVE_DUST",
                                      f"leftover debt {debt_left}, collateral {coll_left} (base units)")
    return LiquidationResult(actual, coll, fee, max_debt, hf)


def liquidation_price(collateral_balances: Sequence[int], debt_balances: Sequence[int],
                      prices: Sequence[int], reserves: Sequence[AaveReserve], asset_index: int,
                      use_as_collateral: Sequence[bool] | None = None) -> Fraction | None:
    """Price of one collateral asset at which HF reaches 1, other prices held fixed.

    Solves ``sum_i value_i * LT_i / 1e4 = total_debt`` for the price of ``asset_index`` with exact
    rationals. The contract's roundings are not applied: with one collateral the integer HF at this
    price is 1.0 up to a base-currency unit; with several, the contract floors the weighted average
    LT to whole bps, which moves the integer HF by up to ~1 bps / LT relative. The asset must not
    also be borrowed.

    Args: as :func:`user_account_data`; ``asset_index``: the collateral whose price moves.

    Returns: ``Fraction`` price in base currency units per whole token (<= 0 means the position
      cannot be liquidated by a fall in this price alone: returned as is), or ``None`` when the
      account has no debt or the asset contributes no collateral.

    Raises: VenueInputError on bad input or if the asset is also borrowed.

    Source: HF definition of aave-v3-core ``GenericLogic.calculateUserAccountData``.
    """
    c, d, p, use = _check_lists(collateral_balances, debt_balances, prices, reserves, use_as_collateral)
    k = check_int(asset_index, "asset_index", 0, len(reserves) - 1)
    if d[k] != 0:
        raise VenueInputError("debt_balances", k, d[k], "asset whose price moves must not be borrowed")
    r = reserves[k]
    if r.liquidation_threshold_bps == 0 or not use[k] or c[k] == 0:
        return None
    debt = sum(Fraction(d[i] * p[i], 10**reserves[i].decimals) for i in range(len(reserves)))
    if debt == 0:
        return None
    others = sum(Fraction(c[i] * p[i] * reserves[i].liquidation_threshold_bps,
                          10**reserves[i].decimals * PERCENTAGE_FACTOR)
                 for i in range(len(reserves))
                 if i != k and use[i] and reserves[i].liquidation_threshold_bps != 0)
    per_unit_price = Fraction(c[k] * r.liquidation_threshold_bps, 10**r.decimals * PERCENTAGE_FACTOR)
    return (debt - others) / per_unit_price
