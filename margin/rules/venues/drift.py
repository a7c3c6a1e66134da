"""Drift protocol-v2 cross-margin calculation, exact integer arithmetic in Python ints.

Reproduces ``calculate_margin_requirement_and_total_collateral_and_liability_info`` of
drift-labs/protocol-v2 ``programs/drift/src/math/margin.rs`` for one user (cross margin: spot
deposits / borrows with their open orders, perpetual positions with unsettled P&L, funding and open
orders), with Drift's integer precisions and rounding directions:

* Precisions (``math/constants.rs``): prices ``PRICE_PRECISION`` = 1e6 (USD per whole token / base
  unit); quote amounts ``QUOTE_PRECISION`` = 1e6 (USDC native units); perp base ``BASE_PRECISION`` =
  1e9; spot token amounts in the mint's native units (``10**decimals`` per token); spot weights
  ``SPOT_WEIGHT_PRECISION`` = ``MARGIN_PRECISION`` = 1e4; perp margin ratios ``MARGIN_PRECISION`` = 1e4;
  IMF factors ``SPOT_IMF_PRECISION`` = 1e6; scaled balances ``SPOT_BALANCE_PRECISION`` = 1e9;
  cumulative interest ``SPOT_CUMULATIVE_INTEREST_PRECISION`` = 1e10; cumulative funding rates
  ``FUNDING_RATE_PRECISION`` = ``PRICE_PRECISION * FUNDING_RATE_BUFFER`` = 1e9.
* Rounding: Rust integer ``/`` (``safe_div``) truncates towards zero; ``safe_div_floor`` floors
  (negative token values); ``safe_div_ceil`` rounds up (borrow token amounts); ``nth_root(2)`` is the
  integer square root. Results are returned as Python ints in the venue's units (quote precision).
* Sign conventions follow Drift: ``open_bids >= 0``, ``open_asks <= 0`` (base / token native units).

Sources (protocol-v2, ``programs/drift/src/``): ``math/margin.rs``
(``calculate_size_premium_liability_weight``, ``calculate_size_discount_asset_weight``,
``calculate_perp_position_value_and_pnl``,
``calculate_margin_requirement_and_total_collateral_and_liability_info``); ``state/user.rs``
(``OrderFillSimulation::riskier_side`` / ``apply_user_custom_margin_ratio``,
``SpotPosition::get_worst_case_fill_simulation`` / ``simulate_fills_both_sides``,
``PerpPosition::worst_case_liability_value``, ``margin_requirement_for_open_orders`` with
``OPEN_ORDER_MARGIN_REQUIREMENT`` = ``QUOTE_PRECISION / 100`` = $0.01 per open order);
``state/spot_market.rs`` (``get_asset_weight``, ``get_scaled_initial_asset_weight``,
``get_liability_weight``); ``state/perp_market.rs`` (``get_margin_ratio``,
``get_unrealized_asset_weight``); ``math/spot_balance.rs`` (``get_token_amount``,
``get_token_value``, ``get_strict_token_value``); ``math/position.rs``
(``calculate_base_asset_value_and_pnl_with_oracle_price``, ``calculate_perp_liability_value``);
``math/funding.rs`` (``calculate_funding_payment``); ``state/margin_calculation.rs``
(``MarginCalculation``, margin buffer); ``state/oracle.rs`` (``StrictOraclePrice``).

Also modelled: isolated perp positions (``MarginTypeConfig``), high-leverage mode margin ratios, pool
ids. Not modelled (documented interpretations in ``margin/rules/venues/README.md``): the
``unrealized_pnl_max_imbalance`` AMM pnl-pool scaling, LP shares, fuel, and oracle *validity* (given
per market as ``oracle_valid`` instead of derived from oracle confidence / staleness).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Optional, Sequence

from margin.rules.venues._validate import VenueInputError, check_int

__all__ = [
    "PRICE_PRECISION", "QUOTE_PRECISION", "BASE_PRECISION", "MARGIN_PRECISION", "SPOT_WEIGHT_PRECISION",
    "SPOT_IMF_PRECISION", "SPOT_BALANCE_PRECISION", "SPOT_CUMULATIVE_INTEREST_PRECISION",
    "OPEN_ORDER_MARGIN_REQUIREMENT", "MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN",
    "SpotMarket", "PerpMarket", "SpotPosition", "PerpPosition", "User", "MarginCalculation",
    "size_premium_liability_weight", "size_discount_asset_weight", "get_token_amount", "get_token_value",
    "get_strict_token_value", "spot_asset_weight", "spot_scaled_initial_asset_weight",
    "spot_liability_weight", "perp_margin_ratio", "perp_unrealized_asset_weight", "funding_payment",
    "base_asset_value_and_pnl", "perp_position_value_and_pnl", "spot_worst_case_fill",
    "margin_calculation", "markets_from_config", "max_withdrawable_amount", "validate_spot_margin_trading",
    "user_equity", "DriftError", "MarginTypeConfig", "IsolatedMarginCalculation",
    "validate_any_isolated_tier_requirements", "meets_place_order_margin_requirement",
    "get_proportion_u128", "hlm_initial_margin_ratio_from_size", "OrderFillSimulation",
    "apply_user_custom_margin_ratio", "perp_worst_case_liability_value",
    "margin_calculation_for_disable_high_leverage_mode",
]

PRICE_PRECISION = 10**6
QUOTE_PRECISION = 10**6
BASE_PRECISION = AMM_RESERVE_PRECISION = 10**9
MARGIN_PRECISION = SPOT_WEIGHT_PRECISION = 10**4
SPOT_IMF_PRECISION = PERCENTAGE_PRECISION = 10**6
SPOT_BALANCE_PRECISION = 10**9
SPOT_CUMULATIVE_INTEREST_PRECISION = 10**10
FUNDING_RATE_BUFFER = 10**3
AMM_TO_QUOTE_PRECISION_RATIO = AMM_RESERVE_PRECISION // QUOTE_PRECISION
PRICE_TIMES_AMM_TO_QUOTE_PRECISION_RATIO = PRICE_PRECISION * AMM_TO_QUOTE_PRECISION_RATIO
OPEN_ORDER_MARGIN_REQUIREMENT = QUOTE_PRECISION // 100
MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN = 100 * QUOTE_PRECISION
MAX_PREDICTION_MARKET_PRICE = PRICE_PRECISION
U32_MAX = 2**32 - 1

_TYPES = ("initial", "fill", "maintenance")


# ---------------------------------------------------------------------------------------------
# Rust integer semantics
# ---------------------------------------------------------------------------------------------

class DriftError(VenueInputError):
    """The venue itself returns an error (``ErrorCode``): ``code`` is its name, e.g.
    ``"InvalidPoolId"``, ``"InsufficientCollateral"``, ``"IsolatedAssetTierViolation"``,
    ``"InvalidMarginRatio"``, ``"InvalidOracle"``."""

    def __init__(self, code: str, field: str, index, value, reason: str):
        self.code = code
        super().__init__(field, index, value, f"{code}: {reason}")


def _tdiv(a: int, b: int) -> int:
    """Rust ``/`` / ``checked_div`` on integers: truncation towards zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _cdiv(a: int, b: int) -> int:
    """``safe_div_ceil`` on unsigned integers."""
    return -((-a) // b)


def _u32(x: int, what: str) -> int:
    """``.cast::<u32>()``: Drift returns an error when the value does not fit."""
    if not 0 <= x <= U32_MAX:
        raise VenueInputError(what, None, x, "does not fit in u32 (the venue returns a casting error)")
    return x


def _mtype(margin_type: str) -> str:
    if margin_type not in _TYPES:
        raise VenueInputError("margin_type", None, margin_type, f"must be one of {_TYPES}")
    return margin_type


@dataclass(frozen=True)
class MarginTypeConfig:
    """Margin type per part of the account (``state/margin_calculation.rs`` ``MarginTypeConfig``).

    Attributes:
      cross: type of the cross account (``"initial"``, ``"fill"``, ``"maintenance"``).
      isolated_default: type of isolated positions not overridden.
      overrides: ``{perp market index: type}`` for isolated positions.

    Build with :meth:`default` (``Default``), :meth:`isolated_position_override`
    (``IsolatedPositionOverride``) or :meth:`cross_margin_override` (``CrossMarginOverride``).
    """

    cross: str
    isolated_default: str
    overrides: tuple = ()

    @classmethod
    def default(cls, margin_type: str) -> "MarginTypeConfig":
        return cls(_mtype(margin_type), margin_type)

    @classmethod
    def isolated_position_override(cls, market_index: int, margin_requirement_type: str,
                                   default_isolated_margin_requirement_type: str,
                                   cross_margin_requirement_type: str) -> "MarginTypeConfig":
        return cls(_mtype(cross_margin_requirement_type), _mtype(default_isolated_margin_requirement_type),
                   ((int(market_index), _mtype(margin_requirement_type)),))

    @classmethod
    def cross_margin_override(cls, margin_requirement_type: str,
                              default_margin_requirement_type: str) -> "MarginTypeConfig":
        return cls(_mtype(margin_requirement_type), _mtype(default_margin_requirement_type))

    def get_cross_margin_requirement_type(self) -> str:
        return self.cross

    def get_isolated_margin_requirement_type(self, market_index: int) -> str:
        return dict(self.overrides).get(market_index, self.isolated_default)


# ---------------------------------------------------------------------------------------------
# Weights (math/margin.rs, state/spot_market.rs, state/perp_market.rs)
# ---------------------------------------------------------------------------------------------

def size_premium_liability_weight(size: int, imf_factor: int, liability_weight: int, precision: int,
                                  is_bounded: bool = True) -> int:
    """Size-premium liability weight / margin ratio.

    ``0.8 w + isqrt(10 size + 1) * imf / (1e5 * SPOT_IMF_PRECISION / precision)`` (integer
    division), and ``max`` with ``w`` when bounded.

    Args:
      size: position size, ``AMM_RESERVE_PRECISION`` (1e9) units (u128, >= 0).
      imf_factor: ``SPOT_IMF_PRECISION`` (1e6) units (u32).
      liability_weight: ``precision`` units (1e4 for weights and margin ratios).
      precision: ``SPOT_WEIGHT_PRECISION`` or ``MARGIN_PRECISION`` (both 1e4).
      is_bounded: return ``max(liability_weight, premium)``.

    Returns: weight in ``precision`` units (u32).

    Raises: VenueInputError when the result exceeds u32 (the venue's casting error).

    Source: protocol-v2 ``math/margin.rs`` ``calculate_size_premium_liability_weight``.
    """
    if imf_factor == 0:
        return liability_weight
    size_sqrt = math.isqrt(size * 10 + 1)
    numerator = liability_weight - liability_weight // 5
    premium = _u32(numerator + size_sqrt * imf_factor // (100_000 * SPOT_IMF_PRECISION // precision),
                   "size_premium_liability_weight")
    return max(liability_weight, premium) if is_bounded else premium


def size_discount_asset_weight(size: int, imf_factor: int, asset_weight: int) -> int:
    """Size-discounted asset weight ``min(w, 1.1e6 * 1e4 / (1e6 + isqrt(10 size + 1) * imf / 1e5))``.

    Args: ``size`` in ``AMM_RESERVE_PRECISION`` (1e9) units; ``imf_factor`` in 1e6; ``asset_weight`` in
      ``SPOT_WEIGHT_PRECISION`` (1e4).

    Returns: weight, ``SPOT_WEIGHT_PRECISION`` units.

    Source: protocol-v2 ``math/margin.rs`` ``calculate_size_discount_asset_weight``.
    """
    if imf_factor == 0:
        return asset_weight
    size_sqrt = math.isqrt(size * 10 + 1)
    imf_numerator = SPOT_IMF_PRECISION + SPOT_IMF_PRECISION // 10
    discount = _u32(imf_numerator * SPOT_WEIGHT_PRECISION
                    // (SPOT_IMF_PRECISION + size_sqrt * imf_factor // 100_000), "size_discount_asset_weight")
    return min(asset_weight, discount)


def get_token_amount(scaled_balance: int, cumulative_interest: int, decimals: int, is_borrow: bool) -> int:
    """Token amount (native units) of a scaled balance: ``balance * interest / 10**(19 - decimals)``,
    rounded down for deposits and up for borrows.

    Source: protocol-v2 ``math/spot_balance.rs`` ``get_token_amount``.
    """
    precision_decrease = 10 ** (19 - decimals)
    prod = scaled_balance * cumulative_interest
    return _cdiv(prod, precision_decrease) if is_borrow else prod // precision_decrease


def get_token_value(token_amount: int, decimals: int, price: int) -> int:
    """USD value (``QUOTE_PRECISION``) of a signed token amount: ``amount * price / 10**decimals``,
    floored when negative, truncated when positive.

    Source: protocol-v2 ``math/spot_balance.rs`` ``get_token_value``.
    """
    if token_amount == 0:
        return 0
    v = token_amount * price
    return v // 10**decimals if v < 0 else _tdiv(v, 10**decimals)


def get_strict_token_value(token_amount: int, decimals: int, price: int, twap_5min: Optional[int] = None) -> int:
    """As :func:`get_token_value` at the strict price: ``min(price, twap)`` for a positive amount,
    ``max`` for a negative one (``twap_5min=None``: the oracle price, i.e. strict mode off).

    Source: protocol-v2 ``math/spot_balance.rs`` ``get_strict_token_value``, ``state/oracle.rs``
    ``StrictOraclePrice``.
    """
    if token_amount == 0:
        return 0
    p = price if twap_5min is None else (min(price, twap_5min) if token_amount > 0 else max(price, twap_5min))
    return get_token_value(token_amount, decimals, p)


# ---------------------------------------------------------------------------------------------
# Markets and positions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpotMarket:
    """A Drift spot market (the fields the margin calculation reads). Defaults are Rust's ``Default``.

    Attributes:
      market_index: 0 is the quote market (USDC): valued unweighted, no order simulation.
      decimals: token decimals (native units per token = ``10**decimals``).
      oracle_price: ``PRICE_PRECISION`` (> 0).
      oracle_twap_5min: ``PRICE_PRECISION``; used only when the calculation is ``strict``
        (``historical_oracle_data.last_oracle_price_twap_5min``).
      initial_asset_weight, maintenance_asset_weight, initial_liability_weight,
      maintenance_liability_weight: ``SPOT_WEIGHT_PRECISION`` (1e4).
      imf_factor: ``SPOT_IMF_PRECISION`` (1e6).
      scale_initial_asset_weight_start: ``QUOTE_PRECISION``; 0 = off.
      deposit_balance, borrow_balance: market totals, scaled (``SPOT_BALANCE_PRECISION``).
      cumulative_deposit_interest, cumulative_borrow_interest: ``SPOT_CUMULATIVE_INTEREST_PRECISION``.
      oracle_valid: oracle valid for ``DriftAction::MarginCalc`` (not derived here).
      isolated_asset_tier: ``asset_tier == AssetTier::Isolated``.
    """

    market_index: int
    decimals: int
    oracle_price: int
    oracle_twap_5min: Optional[int] = None
    initial_asset_weight: int = 0
    maintenance_asset_weight: int = 0
    initial_liability_weight: int = 0
    maintenance_liability_weight: int = 0
    imf_factor: int = 0
    scale_initial_asset_weight_start: int = 0
    deposit_balance: int = 0
    borrow_balance: int = 0
    cumulative_deposit_interest: int = 0
    cumulative_borrow_interest: int = 0
    oracle_valid: bool = True
    isolated_asset_tier: bool = False
    pool_id: int = 0


@dataclass(frozen=True)
class PerpMarket:
    """A Drift perp market (fields read by the margin calculation). Defaults are Rust's ``Default``.

    Attributes:
      market_index: perp market index.
      oracle_price: ``PRICE_PRECISION`` (quote per base).
      margin_ratio_initial, margin_ratio_maintenance: ``MARGIN_PRECISION`` (1e4).
      imf_factor, unrealized_pnl_imf_factor: ``SPOT_IMF_PRECISION`` (1e6).
      unrealized_pnl_initial_asset_weight, unrealized_pnl_maintenance_asset_weight:
        ``SPOT_WEIGHT_PRECISION`` (1e4); weights of positive unrealized P&L.
      cumulative_funding_rate_long, cumulative_funding_rate_short: ``FUNDING_RATE_PRECISION`` (1e9).
      quote_spot_market_index: spot market of the quote (settle) token.
      prediction: ``contract_type == ContractType::Prediction`` (short liability at ``1 - price``).
      settlement: ``status == MarketStatus::Settlement`` (valued at ``expiry_price``, no requirement).
      expiry_price: ``PRICE_PRECISION``.
      oracle_valid: oracle valid for ``DriftAction::MarginCalc``.
      isolated_contract_tier: ``contract_tier == ContractTier::Isolated``.
      pool_id: market pool.
      high_leverage_margin_ratio_initial, high_leverage_margin_ratio_maintenance: HLM ratios,
        ``MARGIN_PRECISION`` (u16; 0 = HLM off).
    """

    market_index: int
    oracle_price: int
    margin_ratio_initial: int = 0
    margin_ratio_maintenance: int = 0
    imf_factor: int = 0
    unrealized_pnl_initial_asset_weight: int = 0
    unrealized_pnl_maintenance_asset_weight: int = 0
    unrealized_pnl_imf_factor: int = 0
    cumulative_funding_rate_long: int = 0
    cumulative_funding_rate_short: int = 0
    quote_spot_market_index: int = 0
    prediction: bool = False
    settlement: bool = False
    expiry_price: int = 0
    oracle_valid: bool = True
    isolated_contract_tier: bool = False
    pool_id: int = 0
    high_leverage_margin_ratio_initial: int = 0
    high_leverage_margin_ratio_maintenance: int = 0


@dataclass(frozen=True)
class SpotPosition:
    """A user's spot position.

    Attributes:
      market_index: spot market index.
      scaled_balance: ``SPOT_BALANCE_PRECISION`` (>= 0).
      is_borrow: balance type (``SpotBalanceType::Borrow``).
      open_bids: token native units (>= 0); open_asks: token native units (<= 0).
      open_orders: number of open orders (each costs ``OPEN_ORDER_MARGIN_REQUIREMENT``).
    """

    market_index: int
    scaled_balance: int = 0
    is_borrow: bool = False
    open_bids: int = 0
    open_asks: int = 0
    open_orders: int = 0


@dataclass(frozen=True)
class PerpPosition:
    """A user's perp position.

    Attributes:
      market_index: perp market index.
      base_asset_amount: ``BASE_PRECISION`` (signed).
      quote_asset_amount: ``QUOTE_PRECISION`` (signed; entry cost, fees, settled funding).
      last_cumulative_funding_rate: ``FUNDING_RATE_PRECISION`` (1e9).
      open_bids: base precision (>= 0); open_asks: base precision (<= 0).
      open_orders: number of open orders.
      max_margin_ratio: position custom margin ratio, ``MARGIN_PRECISION`` (u16).
      isolated: ``PositionFlag::IsolatedPosition`` (margined on its own collateral).
      isolated_position_scaled_balance: the isolated position's quote deposit, scaled
        (``SPOT_BALANCE_PRECISION``, quote market deposit interest).
    """

    market_index: int
    base_asset_amount: int = 0
    quote_asset_amount: int = 0
    last_cumulative_funding_rate: int = 0
    open_bids: int = 0
    open_asks: int = 0
    open_orders: int = 0
    max_margin_ratio: int = 0
    isolated: bool = False
    isolated_position_scaled_balance: int = 0


@dataclass(frozen=True)
class User:
    """A Drift user: spot and perp positions, ``max_margin_ratio`` (``MARGIN_PRECISION``, u32; may
    exceed 1e4, i.e. leverage below 1x), ``pool_id``, ``is_margin_trading_enabled`` and
    ``reduce_only`` (``UserStatus::ReduceOnly``)."""

    spot_positions: Sequence[SpotPosition] = field(default_factory=tuple)
    perp_positions: Sequence[PerpPosition] = field(default_factory=tuple)
    max_margin_ratio: int = 0
    pool_id: int = 0
    is_margin_trading_enabled: bool = False
    reduce_only: bool = False
    margin_mode: str = "default"  # "default", "high_leverage", "high_leverage_maintenance"

    def is_high_leverage_mode(self, margin_type: str) -> bool:
        """``User::is_high_leverage_mode``."""
        return self.margin_mode == "high_leverage" or (
            margin_type == "maintenance" and self.margin_mode == "high_leverage_maintenance")


class IsolatedMarginCalculation(NamedTuple):
    """One isolated perp position's calculation (``IsolatedMarginCalculation``), ``QUOTE_PRECISION``."""

    margin_requirement: int
    total_collateral: int
    total_collateral_buffer: int
    margin_requirement_plus_buffer: int

    @property
    def total_collateral_plus_buffer(self) -> int:
        return self.total_collateral + self.total_collateral_buffer

    @property
    def meets_margin_requirement(self) -> bool:
        return self.total_collateral >= self.margin_requirement

    @property
    def meets_margin_requirement_with_buffer(self) -> bool:
        return self.total_collateral_plus_buffer >= self.margin_requirement_plus_buffer


class MarginCalculation(NamedTuple):
    """Result of :func:`margin_calculation` (``state/margin_calculation.rs`` ``MarginCalculation``).

    Attributes:
      total_collateral: ``QUOTE_PRECISION`` (i128, may be negative).
      margin_requirement: ``QUOTE_PRECISION`` (u128).
      total_collateral_buffer: negative collateral times ``margin_buffer / MARGIN_PRECISION``.
      margin_requirement_plus_buffer: requirement plus liability value times the buffer (only
        accumulated when ``margin_buffer > 0``, as in the venue).
      num_spot_liabilities, num_perp_liabilities: liability counts.
      all_deposit_oracles_valid, all_liability_oracles_valid: oracle validity flags.
      with_spot_isolated_liability, with_perp_isolated_liability: isolated-tier liability flags.
    """

    total_collateral: int
    margin_requirement: int
    total_collateral_buffer: int
    margin_requirement_plus_buffer: int
    num_spot_liabilities: int
    num_perp_liabilities: int
    all_deposit_oracles_valid: bool
    all_liability_oracles_valid: bool
    with_spot_isolated_liability: bool
    with_perp_isolated_liability: bool
    isolated_margin_calculations: Mapping[int, IsolatedMarginCalculation] = {}

    @property
    def free_collateral(self) -> int:
        """``max(TC - MR, 0)`` (``get_cross_free_collateral``), ``QUOTE_PRECISION``."""
        return max(self.total_collateral - self.margin_requirement, 0)

    @property
    def total_collateral_plus_buffer(self) -> int:
        """``get_cross_total_collateral_plus_buffer``."""
        return self.total_collateral + self.total_collateral_buffer

    @property
    def meets_cross_margin_requirement(self) -> bool:
        """``TC >= MR`` for the cross account (``meets_cross_margin_requirement``)."""
        return self.total_collateral >= self.margin_requirement

    @property
    def meets_cross_margin_requirement_with_buffer(self) -> bool:
        return self.total_collateral_plus_buffer >= self.margin_requirement_plus_buffer

    @property
    def meets_margin_requirement(self) -> bool:
        """Cross account and every isolated position meet their requirement
        (``meets_margin_requirement``)."""
        return self.meets_cross_margin_requirement and all(
            c.meets_margin_requirement for c in self.isolated_margin_calculations.values())

    @property
    def meets_margin_requirement_with_buffer(self) -> bool:
        return self.meets_cross_margin_requirement_with_buffer and all(
            c.meets_margin_requirement_with_buffer for c in self.isolated_margin_calculations.values())

    def meets_isolated_margin_requirement(self, market_index: int) -> bool:
        """``meets_isolated_margin_requirement`` (KeyError-free: VenueInputError if absent)."""
        if market_index not in self.isolated_margin_calculations:
            raise VenueInputError("market_index", None, market_index, "no isolated calculation for this market")
        return self.isolated_margin_calculations[market_index].meets_margin_requirement

    @property
    def num_liabilities(self) -> int:
        """``get_num_of_liabilities``."""
        return self.num_spot_liabilities + self.num_perp_liabilities

    @property
    def health_ratio(self) -> float:
        """``100 (TC - MR) / MR`` in percent (``+inf`` when ``MR == 0``); the same definition as
        :func:`margin.rules.venues.weighted_health.health` (not a venue quantity)."""
        if self.margin_requirement == 0:
            return math.inf
        return 100.0 * (self.total_collateral - self.margin_requirement) / self.margin_requirement


def spot_scaled_initial_asset_weight(m: SpotMarket, oracle_price: int) -> int:
    """Initial asset weight scaled down by ``start / deposit value`` once total deposits (valued at
    ``oracle_price``) reach ``scale_initial_asset_weight_start``.

    Source: protocol-v2 ``state/spot_market.rs`` ``get_scaled_initial_asset_weight``.
    """
    if m.scale_initial_asset_weight_start == 0:
        return m.initial_asset_weight
    deposits = get_token_amount(m.deposit_balance, m.cumulative_deposit_interest, m.decimals, False)
    deposit_value = get_token_value(deposits, m.decimals, oracle_price)
    if deposit_value < m.scale_initial_asset_weight_start:
        return m.initial_asset_weight
    return _u32(m.initial_asset_weight * m.scale_initial_asset_weight_start // deposit_value,
                "scaled_initial_asset_weight")


def _size_in_amm_precision(size: int, decimals: int) -> int:
    sp = 10**decimals
    return size // (sp // AMM_RESERVE_PRECISION) if sp > AMM_RESERVE_PRECISION else size * AMM_RESERVE_PRECISION // sp


def spot_asset_weight(m: SpotMarket, size: int, oracle_price: int, margin_type: str) -> int:
    """Asset weight (1e4) of ``size`` token native units: ``min(default, size discount)``; default is
    the scaled initial weight, the maintenance weight, or their mean (``fill``, truncated).

    Source: protocol-v2 ``state/spot_market.rs`` ``get_asset_weight``.
    """
    t = _mtype(margin_type)
    if t == "initial":
        default = spot_scaled_initial_asset_weight(m, oracle_price)
    elif t == "fill":
        default = (spot_scaled_initial_asset_weight(m, oracle_price) + m.maintenance_asset_weight) // 2
    else:
        default = m.maintenance_asset_weight
    return min(size_discount_asset_weight(_size_in_amm_precision(size, m.decimals), m.imf_factor, default),
               default)


def spot_liability_weight(m: SpotMarket, size: int, margin_type: str) -> int:
    """Liability weight (1e4): ``max(default, size premium)``.

    Source: protocol-v2 ``state/spot_market.rs`` ``get_liability_weight``.
    """
    t = _mtype(margin_type)
    default = {"initial": m.initial_liability_weight, "maintenance": m.maintenance_liability_weight,
               "fill": (m.initial_liability_weight + m.maintenance_liability_weight) // 2}[t]
    prem = size_premium_liability_weight(_size_in_amm_precision(size, m.decimals), m.imf_factor, default,
                                         SPOT_WEIGHT_PRECISION, True)
    return max(prem, default)


def get_proportion_u128(value: int, numerator: int, denominator: int) -> int:
    """``value * numerator / denominator`` rounded down, except that when
    ``denominator / 2 < numerator < denominator`` it is ``value - ceil(value * (den - num) / den)``.

    Source: protocol-v2 ``math/helpers.rs`` ``get_proportion_u128``.
    """
    if numerator == denominator:
        return value
    if value >= 2**64 - 1 or numerator >= 2**64 - 1:
        return value * numerator // denominator
    if numerator > denominator // 2 and denominator > numerator:
        return value - _cdiv(value * (denominator - numerator), denominator)
    return value * numerator // denominator


def hlm_initial_margin_ratio_from_size(pre_size_adj_margin_ratio: int, size_adj_margin_ratio: int,
                                       default_margin_ratio: int) -> int:
    """High-leverage-mode initial margin ratio (``MARGIN_PRECISION``) from the ordinary-mode ratio
    before / after the (unbounded) size premium.

    Source: protocol-v2 ``math/margin.rs`` ``calc_high_leverage_mode_initial_margin_ratio_from_size``.
    """
    pre, adj = pre_size_adj_margin_ratio, size_adj_margin_ratio
    if adj < pre:
        discount = max(PERCENTAGE_PRECISION - (pre - adj) * PERCENTAGE_PRECISION // (pre // 5), 0)
        delta = max(pre - default_margin_ratio, 0) or 1
        return _u32(get_proportion_u128(delta, discount, PERCENTAGE_PRECISION), "hlm margin ratio") \
            + default_margin_ratio
    if adj == pre:
        return default_margin_ratio
    return adj


def perp_margin_ratio(m: PerpMarket, size: int, margin_type: str, high_leverage: bool = False) -> int:
    """Margin ratio (``MARGIN_PRECISION``) of a position of ``size`` base units (``BASE_PRECISION``):
    ``max(default, size premium)`` with IMF factor ``imf_factor``; 0 in settlement. In high-leverage
    mode (``high_leverage`` and the market's HLM ratios both > 0) the HLM ratios are the defaults and
    the initial / fill ratio follows :func:`hlm_initial_margin_ratio_from_size`.

    Source: protocol-v2 ``state/perp_market.rs`` ``get_margin_ratio``.
    """
    t = _mtype(margin_type)
    if m.settlement:
        return 0
    hlm = high_leverage and m.high_leverage_margin_ratio_initial > 0 and m.high_leverage_margin_ratio_maintenance > 0
    mi, mm = ((m.high_leverage_margin_ratio_initial, m.high_leverage_margin_ratio_maintenance) if hlm
              else (m.margin_ratio_initial, m.margin_ratio_maintenance))
    default = {"initial": mi, "maintenance": mm, "fill": (mi + mm) // 2}[t]
    if hlm and t != "maintenance":
        pre = m.margin_ratio_initial if t == "initial" else (m.margin_ratio_initial + m.margin_ratio_maintenance) // 2
        adj = size_premium_liability_weight(size, m.imf_factor, pre, MARGIN_PRECISION, False)
        return hlm_initial_margin_ratio_from_size(pre, adj, default)
    return max(default, size_premium_liability_weight(size, m.imf_factor, default, MARGIN_PRECISION, True))


def perp_unrealized_asset_weight(m: PerpMarket, unrealized_pnl: int, margin_type: str) -> int:
    """Weight (1e4) of a position's unrealized P&L: 1e4 when ``pnl <= 0``; for positive P&L the
    maintenance weight, or (initial / fill) the initial weight discounted by
    ``unrealized_pnl_imf_factor`` on ``pnl * AMM_TO_QUOTE_PRECISION_RATIO`` (0 when the weight is 0).
    The ``unrealized_pnl_max_imbalance`` scaling (needs the AMM's net user P&L) is not modelled.

    Source: protocol-v2 ``state/perp_market.rs`` ``get_unrealized_asset_weight``.
    """
    t = _mtype(margin_type)
    if unrealized_pnl <= 0:
        return SPOT_WEIGHT_PRECISION
    if t == "maintenance":
        return m.unrealized_pnl_maintenance_asset_weight
    w = m.unrealized_pnl_initial_asset_weight
    if w == 0:
        return 0
    return size_discount_asset_weight(abs(unrealized_pnl) * AMM_TO_QUOTE_PRECISION_RATIO,
                                      m.unrealized_pnl_imf_factor, w)


def funding_payment(cumulative_funding_rate: int, position: PerpPosition) -> int:
    """Unsettled funding of a position, ``QUOTE_PRECISION`` (longs pay when the rate rises):
    ``-sign(base) sign(delta) floor(|delta| |base| / 1e6 / 1e3)``, then ``/ 1e3`` truncated.

    Source: protocol-v2 ``math/funding.rs`` ``calculate_funding_payment``.
    """
    delta = cumulative_funding_rate - position.last_cumulative_funding_rate
    if delta == 0:
        return 0
    mag = abs(delta) * abs(position.base_asset_amount) // PRICE_PRECISION // FUNDING_RATE_BUFFER
    sign = (-1 if position.base_asset_amount > 0 else 1) * (1 if delta > 0 else -1)
    return _tdiv(mag * sign, AMM_TO_QUOTE_PRECISION_RATIO)


def base_asset_value_and_pnl(position: PerpPosition, price: int) -> tuple[int, int]:
    """``(|base * price / 1e9|, base * price / 1e9 + quote)`` (division truncated), quote precision.

    Source: protocol-v2 ``math/position.rs`` ``calculate_base_asset_value_and_pnl_with_oracle_price``.
    """
    if position.base_asset_amount == 0:
        return 0, position.quote_asset_amount
    value = _tdiv(position.base_asset_amount * max(price, 0), AMM_RESERVE_PRECISION)
    return abs(value), value + position.quote_asset_amount


def _perp_liability_value(base: int, price: int, prediction: bool) -> int:
    # math/position.rs calculate_perp_liability_value / calculate_base_asset_value_with_oracle_price
    if not prediction:
        if base == 0:
            return 0
        return abs(base) * max(price, 0) // PRICE_TIMES_AMM_TO_QUOTE_PRECISION_RATIO
    p = abs(price)
    if base < 0:
        return abs(base) * max(MAX_PREDICTION_MARKET_PRICE - p, 0) // BASE_PRECISION
    return abs(base) * p // BASE_PRECISION


def perp_worst_case_liability_value(position: PerpPosition, oracle_price: int,
                                    prediction: bool = False) -> tuple[int, int]:
    """``(base after the worse fill, its liability value)``: all bids fill (``base + open_bids``) or
    all asks fill (``base + open_asks``), whichever has the larger liability value (asks on ties);
    value ``|base| * price / 1e9`` (prediction markets: shorts at ``1 - price``), ``QUOTE_PRECISION``.

    Source: protocol-v2 ``state/user.rs`` ``PerpPosition::worst_case_liability_value``;
    ``math/position.rs`` ``calculate_perp_liability_value``.
    """
    bids = position.base_asset_amount + position.open_bids
    asks = position.base_asset_amount + position.open_asks
    lv_bids = _perp_liability_value(bids, oracle_price, prediction)
    lv_asks = _perp_liability_value(asks, oracle_price, prediction)
    return (asks, lv_asks) if lv_asks >= lv_bids else (bids, lv_bids)


def perp_position_value_and_pnl(position: PerpPosition, market: PerpMarket, margin_type: str,
                                user_custom_margin_ratio: int = 0, quote_price: int = PRICE_PRECISION,
                                quote_twap_5min: Optional[int] = None,
                                high_leverage: bool = False) -> tuple[int, int, int, int]:
    """Margin requirement and weighted P&L of one perp position.

    Worst case of "all bids fill" / "all asks fill" on the liability value at the oracle price, times
    the strict quote price (max of oracle and 5-min TWAP when strict); requirement =
    ``liability * max(custom ratio, market ratio at the worst-case size) / 1e4`` plus $0.01 per open
    order. P&L = base value at the oracle (``expiry_price`` in settlement) + quote + unsettled
    funding, weighted by :func:`perp_unrealized_asset_weight`, valued at the strict quote price
    (min for gains, max for losses), capped at $100 for initial margin.

    Args:
      position, market: :class:`PerpPosition`, :class:`PerpMarket`.
      margin_type: ``"initial"``, ``"fill"`` or ``"maintenance"``.
      user_custom_margin_ratio: ``MARGIN_PRECISION``.
      quote_price, quote_twap_5min: quote token oracle / strict TWAP, ``PRICE_PRECISION``.

    Returns: ``(margin_requirement, weighted_unrealized_pnl, worst_case_liability_value,
      base_asset_value)``, all ``QUOTE_PRECISION`` ints.

    Source: protocol-v2 ``math/margin.rs`` ``calculate_perp_position_value_and_pnl``; ``state/user.rs``
    ``PerpPosition::worst_case_liability_value``.
    """
    t = _mtype(margin_type)
    valuation_price = market.expiry_price if market.settlement else market.oracle_price
    rate = (market.cumulative_funding_rate_long if position.base_asset_amount > 0
            else market.cumulative_funding_rate_short)
    unrealized_funding = funding_payment(rate, position)
    base_value, pnl = base_asset_value_and_pnl(position, valuation_price)
    total_pnl = pnl + unrealized_funding
    worst_base, worst_lv = perp_worst_case_liability_value(position, market.oracle_price, market.prediction)
    q_max = quote_price if quote_twap_5min is None else max(quote_price, quote_twap_5min)
    q_min = quote_price if quote_twap_5min is None else min(quote_price, quote_twap_5min)
    worst_lv = worst_lv * q_max // PRICE_PRECISION
    if market.settlement:
        req = 0
    else:
        ratio = max(user_custom_margin_ratio, perp_margin_ratio(market, abs(worst_base), t, high_leverage))
        req = worst_lv * ratio // MARGIN_PRECISION
    req += position.open_orders * OPEN_ORDER_MARGIN_REQUIREMENT
    uaw = perp_unrealized_asset_weight(market, total_pnl, t)
    qp = q_min if total_pnl > 0 else (q_max if total_pnl < 0 else quote_price)
    weighted = total_pnl
    if uaw != SPOT_WEIGHT_PRECISION:
        weighted = _tdiv(weighted * uaw, SPOT_WEIGHT_PRECISION)
    if qp != PRICE_PRECISION:
        weighted = _tdiv(weighted * qp, PRICE_PRECISION)
    if t == "initial":
        weighted = min(weighted, MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN)
    return req, weighted, worst_lv, base_value


class OrderFillSimulation(NamedTuple):
    """One side of a spot order-fill simulation (``state/user.rs`` ``OrderFillSimulation``).

    Attributes: ``token_amount`` (token native units), ``orders_value``, ``token_value``,
    ``weighted_token_value``, ``free_collateral_contribution`` (``QUOTE_PRECISION``).
    """

    token_amount: int = 0
    orders_value: int = 0
    token_value: int = 0
    weighted_token_value: int = 0
    free_collateral_contribution: int = 0




def apply_user_custom_margin_ratio(sim: OrderFillSimulation, market: SpotMarket, oracle_price: int,
                                   user_custom_margin_ratio: int) -> OrderFillSimulation:
    """Re-weight a fill simulation with a custom margin ratio ``r`` (``MARGIN_PRECISION``): liabilities
    at ``max(initial liability weight, 1e4 + r)``, assets at ``min(initial asset weight, 1e4 - r)``
    (saturating at 0); ``r = 0`` leaves it unchanged.

    Source: protocol-v2 ``state/user.rs`` ``OrderFillSimulation::apply_user_custom_margin_ratio``.
    """
    r = user_custom_margin_ratio
    if r == 0:
        return sim
    w = sim.weighted_token_value
    if w < 0:
        lw = max(spot_liability_weight(market, abs(sim.token_amount), "initial"), r + SPOT_WEIGHT_PRECISION)
        w = _tdiv(sim.token_value * lw, SPOT_WEIGHT_PRECISION)
    elif w > 0:
        aw = min(spot_asset_weight(market, abs(sim.token_amount), oracle_price, "initial"),
                 max(SPOT_WEIGHT_PRECISION - r, 0))
        w = _tdiv(sim.token_value * aw, SPOT_WEIGHT_PRECISION)
    return OrderFillSimulation(sim.token_amount, sim.orders_value, sim.token_value, w, w + sim.orders_value)


def spot_worst_case_fill(position: SpotPosition, market: SpotMarket, margin_type: str,
                         user_custom_margin_ratio: int = 0, strict: bool = False) -> OrderFillSimulation:
    """Riskier of "all bids fill" / "all asks fill" for a (non-quote) spot position.

    Each side: token amount after the fill, token value after the fill at the strict price, its
    weighted value (asset / liability weight at the post-fill size), and the unweighted order cash leg
    ``orders_value`` (``-open * max(price, twap) / 10**decimals``); the side with the lower
    ``weighted + orders_value`` is kept (the ask side on ties). A custom margin ratio ``r`` then
    re-weights with ``max(initial liability weight, 1e4 + r)`` / ``min(initial asset weight, 1e4 - r)``
    (saturating at 0).

    Returns: ``(token_amount, orders_value, token_value, weighted_token_value,
      free_collateral_contribution)``, token native units and ``QUOTE_PRECISION``.

    Source: protocol-v2 ``state/user.rs`` ``SpotPosition::get_worst_case_fill_simulation``,
    ``simulate_fills_both_sides``, ``OrderFillSimulation::riskier_side``,
    ``OrderFillSimulation::apply_user_custom_margin_ratio``.
    """
    t = _mtype(margin_type)
    twap = market.oracle_twap_5min if strict else None
    price = market.oracle_price
    p_max = price if twap is None else max(price, twap)
    amount = get_token_amount(position.scaled_balance,
                              market.cumulative_borrow_interest if position.is_borrow
                              else market.cumulative_deposit_interest,
                              market.decimals, position.is_borrow)
    amount = -amount if position.is_borrow else amount
    token_value = get_strict_token_value(amount, market.decimals, price, twap)

    def weighted(a: int, v: int) -> int:
        if v > 0:
            return _tdiv(v * spot_asset_weight(market, abs(a), price, t), SPOT_WEIGHT_PRECISION)
        if v < 0:
            return _tdiv(v * spot_liability_weight(market, abs(a), t), SPOT_WEIGHT_PRECISION)
        return 0

    if position.open_bids == 0 and position.open_asks == 0:
        w = weighted(amount, token_value)
        sim = OrderFillSimulation(amount, 0, token_value, w, w)
    else:
        def side(open_orders: int) -> OrderFillSimulation:
            order_value = get_token_value(-open_orders, market.decimals, p_max)
            a = amount + open_orders
            v = token_value - order_value
            w = weighted(a, v)
            return OrderFillSimulation(a, order_value, v, w, w + order_value)
        bid, ask = side(position.open_bids), side(position.open_asks)
        sim = ask if ask.free_collateral_contribution <= bid.free_collateral_contribution else bid
    return apply_user_custom_margin_ratio(sim, market, price, user_custom_margin_ratio)


def _check_user(user: User, spot: Mapping[int, SpotMarket], perp: Mapping[int, PerpMarket]) -> None:
    check_int(user.max_margin_ratio, "user.max_margin_ratio", 0, U32_MAX)
    for i, sp in enumerate(user.spot_positions):
        if sp.market_index not in spot:
            raise VenueInputError("spot_positions.market_index", (i,), sp.market_index, "no such spot market")
        check_int(sp.scaled_balance, f"spot_positions[{i}].scaled_balance", 0)
        check_int(sp.open_bids, f"spot_positions[{i}].open_bids", 0)
        check_int(sp.open_asks, f"spot_positions[{i}].open_asks", None, 0)
        check_int(sp.open_orders, f"spot_positions[{i}].open_orders", 0, 255)
        m = spot[sp.market_index]
        check_int(m.oracle_price, f"spot market {m.market_index} oracle_price", 1)
        if m.oracle_twap_5min is not None:
            check_int(m.oracle_twap_5min, f"spot market {m.market_index} oracle_twap_5min", 1)
    for i, pp in enumerate(user.perp_positions):
        if pp.market_index not in perp:
            raise VenueInputError("perp_positions.market_index", (i,), pp.market_index, "no such perp market")
        check_int(pp.open_bids, f"perp_positions[{i}].open_bids", 0)
        check_int(pp.open_asks, f"perp_positions[{i}].open_asks", None, 0)
        check_int(pp.open_orders, f"perp_positions[{i}].open_orders", 0, 255)
        check_int(pp.max_margin_ratio, f"perp_positions[{i}].max_margin_ratio", 0, 2**16 - 1)
        check_int(pp.isolated_position_scaled_balance, f"perp_positions[{i}].isolated_position_scaled_balance", 0)
        if pp.isolated_position_scaled_balance and not pp.isolated:
            raise VenueInputError(f"perp_positions[{i}].isolated_position_scaled_balance", None,
                                  pp.isolated_position_scaled_balance, "only an isolated position has its own deposit")
        m = perp[pp.market_index]
        if m.quote_spot_market_index not in spot:
            raise VenueInputError("perp market quote_spot_market_index", (i,), m.quote_spot_market_index,
                                  "quote spot market missing")


def margin_calculation(user: User, spot_markets: Mapping[int, SpotMarket] | Sequence[SpotMarket],
                       perp_markets: Mapping[int, PerpMarket] | Sequence[PerpMarket] = (), *,
                       margin_type: "str | MarginTypeConfig" = "initial", strict: bool = False,
                       margin_buffer: int = 0, ignore_invalid_deposit_oracles: bool = False,
                       margin_ratio_override: Optional[int] = None) -> MarginCalculation:
    """Total collateral and margin requirement of one Drift user (cross account and each isolated
    perp position), exact integers.

    Spot (per market, in position order): market 0 (quote) adds its strict token value to total
    collateral (deposit) or margin requirement (borrow), unweighted. Other markets: the riskier
    order-fill simulation (:func:`spot_worst_case_fill`), each market's weighted token value and its
    own order cash leg kept separately (positive -> collateral, negative -> requirement; never netted
    across markets), plus ``OPEN_ORDER_MARGIN_REQUIREMENT`` ($0.01) per open order. Perps:
    :func:`perp_position_value_and_pnl`; requirement added to the requirement, weighted P&L to the
    collateral. Custom margin ratio: ``user.max_margin_ratio`` for initial margin only (spot and
    perp; a perp position's own ``max_margin_ratio`` too), ``max``-ed with ``margin_ratio_override``
    for every margin type; values above 1e4 (leverage below 1x) are allowed. Isolated perp positions
    (``PerpPosition.isolated``) get their own calculation: collateral = strict value of their quote
    deposit + weighted P&L, requirement as for cross, at the margin type the config gives them.
    Pools: every market must be in the user's pool (``InvalidPoolId``), except that a pool-1 user's
    quote deposit in market 0 is allowed and valued at 0.

    Args:
      user: :class:`User`.
      spot_markets, perp_markets: markets by index (mapping or sequence of markets).
      margin_type: ``"initial"``, ``"fill"``, ``"maintenance"`` (``MarginTypeConfig::Default``) or a
        :class:`MarginTypeConfig`.
      strict: use 5-min TWAPs (``StrictOraclePrice``): min for assets, max for liabilities.
      margin_buffer: ``MARGIN_PRECISION``, e.g. the liquidation buffer (``MarginContext::liquidation``).
      ignore_invalid_deposit_oracles: zero the value of deposits whose ``oracle_valid`` is False.
      margin_ratio_override: ``MARGIN_PRECISION`` (``MarginContext::margin_ratio_override``).

    Returns: :class:`MarginCalculation` (``QUOTE_PRECISION`` ints).

    Example (protocol-v2 ``math/margin/tests.rs`` ``usdc_deposit_and_5x_sol_bid``)::

        >>> usdc = SpotMarket(0, 6, 10**6, initial_asset_weight=10**4, cumulative_deposit_interest=10**10)
        >>> sol = SpotMarket(1, 9, 100 * 10**6, initial_asset_weight=8000, initial_liability_weight=12000)
        >>> u = User(spot_positions=[SpotPosition(0, 10_000 * 10**9),
        ...                          SpotPosition(1, open_orders=1, open_bids=500 * 10**9)])
        >>> r = margin_calculation(u, [usdc, sol])
        >>> r.total_collateral, r.margin_requirement
        (50000000000, 50000010000)

    Raises: VenueInputError for unknown markets, negative bids / positive asks / negative balances,
      bad ``margin_type``, values overflowing the venue's u32 weights; :class:`DriftError` for the
      venue's own errors (``InvalidPoolId``, a zero-valued borrow ``InvalidMarginRatio``, a zero
      weighted liability ``InvalidOracle``).

    Source: protocol-v2 ``math/margin.rs``
    ``calculate_margin_requirement_and_total_collateral_and_liability_info``;
    ``state/margin_calculation.rs`` ``add_cross_margin_total_collateral``,
    ``add_cross_margin_margin_requirement``, ``add_isolated_margin_calculation``.
    """
    cfg = margin_type if isinstance(margin_type, MarginTypeConfig) else MarginTypeConfig.default(margin_type)
    t = cfg.get_cross_margin_requirement_type()
    spot = spot_markets if isinstance(spot_markets, Mapping) else {m.market_index: m for m in spot_markets}
    perp = perp_markets if isinstance(perp_markets, Mapping) else {m.market_index: m for m in perp_markets}
    _check_user(user, spot, perp)
    check_int(margin_buffer, "margin_buffer", 0)
    tc = tc_buf = mr = mr_buf = 0
    n_spot = n_perp = 0
    dep_ok = liab_ok = True
    spot_iso = perp_iso = False
    isolated: dict[int, IsolatedMarginCalculation] = {}

    def add_tc(v: int) -> None:
        nonlocal tc, tc_buf
        tc += v
        if margin_buffer > 0 and v < 0:
            tc_buf += _tdiv(v * margin_buffer, MARGIN_PRECISION)

    def add_mr(req: int, liability_value: int) -> None:
        nonlocal mr, mr_buf
        mr += req
        if margin_buffer > 0:
            mr_buf += req + liability_value * margin_buffer // MARGIN_PRECISION

    spot_ratio = user.max_margin_ratio if t == "initial" else 0
    if margin_ratio_override is not None:
        spot_ratio = max(check_int(margin_ratio_override, "margin_ratio_override", 0, U32_MAX), spot_ratio)

    for sp in user.spot_positions:
        if sp.scaled_balance == 0 and sp.open_orders == 0:
            continue  # is_available
        m = spot[sp.market_index]
        twap = m.oracle_twap_5min if strict else None
        skip_token_value = False
        if not (user.pool_id == 1 and m.market_index == 0 and not (sp.is_borrow and sp.scaled_balance > 0)):
            if user.pool_id != m.pool_id:
                raise DriftError("InvalidPoolId", "spot_positions", (sp.market_index,), m.pool_id,
                                 f"user pool id ({user.pool_id}) != spot market pool id ({m.pool_id})")
        else:
            skip_token_value = True
        if m.market_index == 0:
            amount = get_token_amount(sp.scaled_balance, m.cumulative_borrow_interest if sp.is_borrow
                                      else m.cumulative_deposit_interest, m.decimals, sp.is_borrow)
            amount = -amount if sp.is_borrow else amount
            value = get_strict_token_value(amount, m.decimals, m.oracle_price, twap)
            if not sp.is_borrow:
                if (ignore_invalid_deposit_oracles and not m.oracle_valid) or skip_token_value:
                    value = 0
                add_tc(value)
                dep_ok &= m.oracle_valid
            else:
                if value == 0:
                    raise DriftError("InvalidMarginRatio", "spot_positions", (sp.market_index,), 0,
                                     "token_value=0 for a borrow")
                add_mr(abs(value), abs(value))
                n_spot += 1
                liab_ok &= m.oracle_valid
            continue
        sim = spot_worst_case_fill(sp, m, t, spot_ratio, strict)
        add_mr(sp.open_orders * OPEN_ORDER_MARGIN_REQUIREMENT, 0)
        w, v = sim.weighted_token_value, sim.token_value
        if v > 0:
            if ignore_invalid_deposit_oracles and not m.oracle_valid:
                w = 0
            add_tc(w)
            dep_ok &= m.oracle_valid
        elif v < 0:
            if w == 0:
                raise DriftError("InvalidOracle", "spot_positions", (sp.market_index,), 0,
                                 "weighted_token_value=0 for a liability")
            add_mr(abs(w), abs(v))
            n_spot += 1
            spot_iso |= m.isolated_asset_tier
            liab_ok &= m.oracle_valid
        elif sp.open_orders != 0 or sp.open_bids != 0 or sp.open_asks != 0:
            n_spot += 1
            liab_ok &= m.oracle_valid
            spot_iso |= m.isolated_asset_tier
        ov = sim.orders_value
        if ov > 0:
            if ignore_invalid_deposit_oracles and not m.oracle_valid:
                ov = 0
            add_tc(ov)
        elif ov < 0:
            add_mr(-ov, -ov)

    for pp in user.perp_positions:
        if pp.base_asset_amount == 0 and pp.quote_asset_amount == 0 and pp.open_orders == 0 \
                and pp.open_bids == 0 and pp.open_asks == 0 and pp.isolated_position_scaled_balance == 0:
            continue  # is_available (LP shares and liquidation status not modelled)
        m = perp[pp.market_index]
        if user.pool_id != m.pool_id:
            raise DriftError("InvalidPoolId", "perp_positions", (pp.market_index,), m.pool_id,
                             f"user pool id ({user.pool_id}) != perp market pool id ({m.pool_id})")
        q = spot[m.quote_spot_market_index]
        qtwap = q.oracle_twap_5min if strict else None
        pt = cfg.get_isolated_margin_requirement_type(pp.market_index) if pp.isolated else t
        ratio = max(user.max_margin_ratio, pp.max_margin_ratio) if pt == "initial" else 0
        if margin_ratio_override is not None:
            ratio = max(margin_ratio_override, ratio)
        req, wpnl, lv, _ = perp_position_value_and_pnl(pp, m, pt, ratio, q.oracle_price, qtwap,
                                                       user.is_high_leverage_mode(pt))
        if pp.isolated:
            dep = get_token_amount(pp.isolated_position_scaled_balance, q.cumulative_deposit_interest,
                                   q.decimals, False)
            itc = get_strict_token_value(dep, q.decimals, q.oracle_price, qtwap) + wpnl
            ibuf = _tdiv(wpnl * margin_buffer, MARGIN_PRECISION) if margin_buffer > 0 and wpnl < 0 else 0
            imr_buf = req + lv * margin_buffer // MARGIN_PRECISION if margin_buffer > 0 else 0
            isolated[pp.market_index] = IsolatedMarginCalculation(req, itc, ibuf, imr_buf)
        else:
            add_mr(req, lv)
            add_tc(wpnl)
        has_liab = pp.base_asset_amount != 0 or pp.quote_asset_amount < 0 or pp.open_orders != 0 \
            or pp.open_bids != 0 or pp.open_asks != 0
        if has_liab:
            n_perp += 1
            perp_iso |= m.isolated_contract_tier
        if has_liab or pt != "initial":
            liab_ok &= q.oracle_valid and m.oracle_valid
    return MarginCalculation(tc, mr, tc_buf, mr_buf, n_spot, n_perp, dep_ok, liab_ok, spot_iso, perp_iso,
                             isolated)


def margin_calculation_for_disable_high_leverage_mode(user: User, spot_markets, perp_markets=()) -> MarginCalculation:
    """Initial margin with a 1 % buffer and the user's and positions' custom margin ratios set to 0
    (the user object is not changed: it is immutable here).

    Source: protocol-v2 ``math/margin.rs`` ``get_margin_calculation_for_disable_high_leverage_mode``.
    """
    import dataclasses
    u = dataclasses.replace(user, max_margin_ratio=0, perp_positions=tuple(
        dataclasses.replace(p, max_margin_ratio=0) for p in user.perp_positions))
    return margin_calculation(u, spot_markets, perp_markets, margin_type="initial",
                              margin_buffer=MARGIN_PRECISION // 100)


def validate_any_isolated_tier_requirements(user: User, calc: MarginCalculation) -> None:
    """Isolated-tier limits: with an isolated-tier perp liability at most one perp liability, no
    margin trading, and no spot liability other than a quote borrow; with an isolated-tier spot
    liability no perp liability and a single spot liability (unless reduce-only).

    Raises: :class:`DriftError` ``IsolatedAssetTierViolation``.

    Source: protocol-v2 ``math/margin.rs`` ``validate_any_isolated_tier_requirements``.
    """
    def fail(why: str):
        raise DriftError("IsolatedAssetTierViolation", "user", None, None, why)
    if calc.with_perp_isolated_liability and not user.reduce_only:
        if calc.num_perp_liabilities > 1:
            fail("more than one perp liability with an isolated tier liability")
        if user.is_margin_trading_enabled:
            fail("isolated tier liability with margin trading enabled")
        if calc.num_spot_liabilities > 0:
            q = next((sp for sp in user.spot_positions if sp.market_index == 0), None)
            if not (calc.num_spot_liabilities == 1 and q is not None and q.is_borrow and q.scaled_balance > 0):
                fail("spot liabilities beyond usdc with an isolated tier liability")
    if calc.with_spot_isolated_liability and not user.reduce_only:
        if not (calc.num_perp_liabilities == 0 and calc.num_spot_liabilities == 1):
            fail("other liabilities with an isolated tier spot liability")


def meets_place_order_margin_requirement(user: User, spot_markets, perp_markets=(), risk_increasing: bool = True,
                                         isolated_market_index: Optional[int] = None) -> None:
    """Order-placement check (strict prices): risk-increasing orders need initial margin on the
    account placing them (the cross account, or the isolated position ``isolated_market_index``) and
    maintenance elsewhere; other orders need maintenance everywhere; then the isolated-tier limits.

    Raises: :class:`DriftError` ``InsufficientCollateral`` or ``IsolatedAssetTierViolation``.

    Source: protocol-v2 ``math/margin.rs`` ``meets_place_order_margin_requirement``.
    """
    if not risk_increasing:
        cfg = MarginTypeConfig.default("maintenance")
    elif isolated_market_index is None:
        cfg = MarginTypeConfig.cross_margin_override("initial", "maintenance")
    else:
        cfg = MarginTypeConfig.isolated_position_override(isolated_market_index, "initial", "maintenance",
                                                          "maintenance")
    calc = margin_calculation(user, spot_markets, perp_markets, margin_type=cfg, strict=True)
    if not calc.meets_margin_requirement:
        raise DriftError("InsufficientCollateral", "user", None, (calc.total_collateral, calc.margin_requirement),
                         "margin requirement not met")
    validate_any_isolated_tier_requirements(user, calc)


def markets_from_config(cfg: Mapping) -> tuple[dict[int, SpotMarket], dict[int, PerpMarket]]:
    """Build spot and perp markets from ``conf/margin/drift.yaml`` (``cfg["spot_markets"]``,
    ``cfg["perp_markets"]``: lists of keyword dicts in the venue's integer precisions).

    Raises: VenueInputError naming the market when a field is unknown or missing.
    """
    out = []
    for key, cls in (("spot_markets", SpotMarket), ("perp_markets", PerpMarket)):
        d = {}
        for i, row in enumerate(cfg.get(key, []) or []):
            try:
                mkt = cls(**dict(row))
            except TypeError as e:
                raise VenueInputError(key, (i,), dict(row), str(e)) from None
            d[mkt.market_index] = mkt
        out.append(d)
    return out[0], out[1]


def _signed_amount(sp: SpotPosition, m: SpotMarket) -> int:
    a = get_token_amount(sp.scaled_balance, m.cumulative_borrow_interest if sp.is_borrow
                         else m.cumulative_deposit_interest, m.decimals, sp.is_borrow)
    return -a if sp.is_borrow else a


def max_withdrawable_amount(market_index: int, user: User, spot_markets, perp_markets=()) -> int:
    """Largest withdrawal (token native units) of spot market ``market_index`` keeping initial margin:
    ``(free collateral - 1) * 1e4 / asset weight * PRICE_PRECISION / price``, rescaled from 6 decimals
    to the token's; the whole balance when the user has no liabilities; ``2**64 - 1`` when the asset
    weight is 0.

    Source: protocol-v2 ``math/margin.rs`` ``calculate_max_withdrawable_amount``.
    """
    spot = spot_markets if isinstance(spot_markets, Mapping) else {m.market_index: m for m in spot_markets}
    calc = margin_calculation(user, spot, perp_markets, margin_type="initial")
    m = spot[market_index]
    sp = next((p for p in user.spot_positions if p.market_index == market_index), SpotPosition(market_index))
    amount = abs(_signed_amount(sp, m))
    aw = spot_asset_weight(m, amount, m.oracle_price, "initial")
    if aw == 0:
        return 2**64 - 1
    if calc.num_spot_liabilities + calc.num_perp_liabilities == 0:
        return amount
    num, den = (10 ** (m.decimals - 6), 1) if m.decimals > 6 else (1, 10 ** (6 - m.decimals))
    return max(calc.free_collateral - 1, 0) * MARGIN_PRECISION // aw * PRICE_PRECISION // m.oracle_price * num // den


def validate_spot_margin_trading(user: User, spot_markets, perp_markets=(),
                                 is_margin_trading_enabled: bool = False) -> Optional[str]:
    """Spot margin-trading check: ``None`` when allowed, else the venue's error name.

    Without margin trading, open asks may not exceed a market's (signed) balance and the value of all
    open bids (at oracle prices) may not exceed the quote (market 0) balance
    (``"MarginTradingDisabled"``); with it, no open position in an isolated-tier perp market
    (``"IsolatedAssetTierViolation"``).

    Source: protocol-v2 ``math/margin.rs`` ``validate_spot_margin_trading``.
    """
    spot = spot_markets if isinstance(spot_markets, Mapping) else {m.market_index: m for m in spot_markets}
    perp = perp_markets if isinstance(perp_markets, Mapping) else {m.market_index: m for m in perp_markets}
    if is_margin_trading_enabled:
        for pp in user.perp_positions:
            if pp.base_asset_amount or pp.quote_asset_amount or pp.open_orders or pp.open_bids or pp.open_asks:
                if perp[pp.market_index].isolated_contract_tier:
                    return "IsolatedAssetTierViolation"
        return None
    bids_value = 0
    for sp in user.spot_positions:
        m = spot[sp.market_index]
        if sp.open_asks < 0 and _signed_amount(sp, m) + sp.open_asks < 0:
            return "MarginTradingDisabled"
        if sp.open_bids > 0:
            bids_value += get_token_value(-sp.open_bids, m.decimals, m.oracle_price)
    quote = next((p for p in user.spot_positions if p.market_index == 0), None)
    q_amount = 0 if quote is None or (quote.scaled_balance == 0 and quote.open_orders == 0) \
        else _signed_amount(quote, spot[0])
    if bids_value != 0 and q_amount + bids_value < 0:
        return "MarginTradingDisabled"
    return None


def user_equity(user: User, spot_markets, perp_markets=()) -> int:
    """Net USD value (``QUOTE_PRECISION``): spot token values at oracle prices plus each perp's
    unrealized P&L and funding times the quote price (truncated).

    Source: protocol-v2 ``math/margin.rs`` ``calculate_user_equity``.
    """
    spot = spot_markets if isinstance(spot_markets, Mapping) else {m.market_index: m for m in spot_markets}
    perp = perp_markets if isinstance(perp_markets, Mapping) else {m.market_index: m for m in perp_markets}
    _check_user(user, spot, perp)
    total = 0
    for sp in user.spot_positions:
        if sp.scaled_balance == 0 and sp.open_orders == 0:
            continue
        m = spot[sp.market_index]
        total += get_token_value(_signed_amount(sp, m), m.decimals, m.oracle_price)
    for pp in user.perp_positions:
        if not (pp.base_asset_amount or pp.quote_asset_amount or pp.open_orders or pp.open_bids or pp.open_asks):
            continue
        m = perp[pp.market_index]
        qp = spot[m.quote_spot_market_index].oracle_price
        rate = m.cumulative_funding_rate_long if pp.base_asset_amount > 0 else m.cumulative_funding_rate_short
        _, pnl = base_asset_value_and_pnl(pp, m.expiry_price if m.settlement else m.oracle_price)
        total += _tdiv((pnl + funding_payment(rate, pp)) * qp, PRICE_PRECISION)
    return total
