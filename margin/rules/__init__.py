"""Requirements and venue rule sets: from positions and scenario P&L to IM, MM and health.

- :mod:`margin.rules.requirements`: jitted portfolio / isolated / cross margin kernels, dense,
  block-structured and block-sparse (accounts holding few underlyings), batched over millions of accounts;
  VaR / ES.
- :mod:`margin.rules.span` (CME SPAN), :mod:`margin.rules.deribit` (Deribit portfolio margin),
  :mod:`margin.rules.perpetual` (perpetual IM / MM / liquidation price), :mod:`margin.rules.collateral`
  (haircuts, health factor).
- :mod:`margin.rules.book_margin`: a whole venue book from Parquet parts in bounded memory (local or Ray).
- :mod:`margin.rules.venues`: exact venue arithmetic (dYdX v4, Aave v3, Drift, Mango v4) and the batched
  weighted-health kernel.

Builds on :mod:`margin.valuation`; the simulation layer (:mod:`margin.simulation`) builds on it.
"""
