"""Valuation layer: what positions are worth and how they move.

- :mod:`margin.valuation.instruments`: the ``Instruments`` struct-of-arrays (spot, linear / inverse perpetuals and
  futures, Black-76 options settled in USD or coin).
- :mod:`margin.valuation.pricing`: Black-76 prices and Greeks, implied volatility (Black 1976).
- :mod:`margin.valuation.scenarios`: scenario sets and their per-unit P&L matrices (SPAN-style, historical,
  filtered historical, correlated).
- :mod:`margin.valuation.chain`: Deribit option chains (any BTC / ETH chain; IVs backed out of mark prices).

The requirement kernels and venue rule sets (:mod:`margin.rules`) and the simulation layer
(:mod:`margin.simulation`) build on it; it imports neither.
"""
