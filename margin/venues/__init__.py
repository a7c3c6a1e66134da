"""Venue rule sets: dYdX v4, Aave v3 and weighted-health (Mango v4 / Drift style) engines.

Public API of ``margin.venues``; implementation in the modules ``dydx``, ``aave`` and
``weighted_health``. See ``margin/venues/README.md`` for each rule set and its source.
"""
from margin.venues._validate import VenueInputError
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

__all__ = [
    "VenueInputError",
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
]
