"""Venue rule sets: dYdX v4, Aave v3 and weighted-health (Mango v4 / Drift style) engines.

Public API of ``margin.venues``; implementation in the modules ``dydx``, ``aave`` and
``weighted_health``. See ``margin/venues/README.md`` for each rule set and its source.
"""
from margin.venues import aave, dydx, weighted_health
from margin.venues._validate import VenueInputError
from margin.venues.aave import (
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
from margin.venues.dydx import (
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
from margin.venues.weighted_health import (
    HealthResult,
    TokenWeights,
    effective_weights,
    health,
    health_reference,
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
    "TokenWeights",
    "effective_weights",
    "health",
    "health_reference",
    "weights_from_config",
]
