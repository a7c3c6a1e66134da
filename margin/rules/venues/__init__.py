"""Venue rule sets: dYdX v4, Aave v3, Drift v2, Mango v4 and the weighted-health (Mango v4 / Drift
style) batched engine.

Public API of ``margin.rules.venues``; implementation in the modules ``dydx``, ``aave``, ``drift`` (exact
integers), ``mango`` (exact I80F48) and ``weighted_health`` (batched JAX float kernel). The Drift and
Mango names are reached through their modules (``venues.drift.margin_calculation``,
``venues.mango.new_health_cache``). See ``margin/rules/venues/README.md`` for each rule set and its source.
"""
from margin.rules.venues import aave, drift, dydx, mango, weighted_health
from margin.rules.venues._validate import VenueInputError
from margin.rules.venues.aave import (
    AaveReserve,
    AccountData,
    LiquidationReverted,
    LiquidationResult,
    close_factor_bps,
    collateral_to_liquidate,
    liquidation_call,
    liquidation_price,
    percent_div,
    percent_mul,
    reserves_from_config,
    user_account_data,
    wad_div,
    wad_mul,
)
from margin.rules.venues.dydx import (
    BatchedRisk,
    LiquidityTier,
    Risk,
    account_risk,
    account_risk_batched,
    adjusted_initial_margin_ppm,
    base_to_quote_quantums,
    fillable_price,
    fillable_price_batched,
    is_initial_collateralized,
    is_liquidatable,
    maintenance_margin_ppm,
    position_margin_requirements,
    tiers_from_config,
)
from margin.rules.venues.weighted_health import (
    HealthResult,
    PerpWeights,
    TokenWeights,
    effective_weights,
    health,
    health_reference,
    perp_weights_from_config,
    weights_from_config,
)

__all__ = [
    "VenueInputError",
    "dydx",
    # dYdX v4
    "BatchedRisk",
    "LiquidityTier",
    "Risk",
    "account_risk",
    "account_risk_batched",
    "adjusted_initial_margin_ppm",
    "base_to_quote_quantums",
    "fillable_price",
    "fillable_price_batched",
    "is_initial_collateralized",
    "is_liquidatable",
    "maintenance_margin_ppm",
    "position_margin_requirements",
    "tiers_from_config",
    # Aave v3 (health_factor / is_liquidatable are reached as aave.health_factor, aave.is_liquidatable)
    "aave",
    "AaveReserve",
    "AccountData",
    "LiquidationReverted",
    "LiquidationResult",
    "close_factor_bps",
    "collateral_to_liquidate",
    "liquidation_call",
    "liquidation_price",
    "percent_div",
    "percent_mul",
    "reserves_from_config",
    "user_account_data",
    "wad_div",
    "wad_mul",
    # weighted health (Mango v4 / Drift style)
    "weighted_health",
    "HealthResult",
    "PerpWeights",
    "TokenWeights",
    "effective_weights",
    "health",
    "health_reference",
    "perp_weights_from_config",
    "weights_from_config",
    # Drift protocol-v2 (exact integers) and Mango v4 (exact I80F48)
    "drift",
    "mango",
]
