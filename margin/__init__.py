"""margin: batched JAX margin kernels (isolated, cross, portfolio; SPAN, Deribit PM, perpetuals).

Three layers, each importing only the ones before it (and never ``predictive`` or ``zkproofs``):

1. :mod:`margin.valuation`: instruments, Black-76 pricing, scenario sets, option chains;
2. :mod:`margin.rules`: requirement kernels (dense and block-structured), CME SPAN, Deribit PM, perpetuals,
   collateral and haircuts, book-scale margin from Parquet, and the venue rule sets in :mod:`margin.rules.venues`;
3. :mod:`margin.simulation`: account books, margin policies, the liquidation simulator, procyclicality and the
   venue backtest's evaluation and report.

:mod:`margin.validation` holds the shared typed error. Public API (implementation in the modules named after each
group):

- instruments: :class:`Instruments`, :class:`Kind`, :class:`Settlement`, :func:`unit_value`
- pricing: :func:`black76_price`, :func:`black76_greeks`, :class:`Greeks`, :func:`implied_vol`,
  :class:`ImpliedVolResult`
- scenarios: :class:`ScenarioSet`, :func:`scenario_pnl`, :func:`historical_scenarios`,
  :func:`filtered_historical_scenarios`, :func:`correlated_scenarios`, :func:`span_scenarios`,
  :func:`deribit_scenarios`
- requirements: :func:`portfolio_margin`, :func:`isolated_margin`, :func:`cross_margin`, :func:`portfolio_im_mm`,
  :func:`net_gross_ratio`, :func:`historical_var_es`, :func:`parametric_var_es`,
  :func:`sharded_portfolio_margin`; block-structured scenario sets: :class:`BlockLayout`, :func:`block_layout`,
  :func:`detect_block_layout`, :func:`split_positions`, :func:`portfolio_margin_blocks`; block-sparse positions
  (accounts hold few underlyings): :class:`SparseBlockPositions`, :func:`sparse_block_positions`,
  :func:`sparse_block_positions_from_blocks`, :func:`sparse_block_positions_from_rows`,
  :func:`portfolio_margin_block_sparse`
- venue rule sets: :mod:`margin.rules.span` (CME SPAN), :mod:`margin.rules.deribit` (Deribit portfolio margin),
  :func:`perpetual_margin` (linear perpetuals); dYdX v4 / Aave v3 / weighted health in :mod:`margin.rules.venues`
- real data: :func:`load_deribit_chain` (any Deribit chain, IVs backed out where ``mark_iv`` is empty),
  :func:`reprice_chain`, :func:`repricing_summary`, :func:`flag_greeks`, :func:`chain_instruments`,
  :func:`synthetic_deribit_chain`
- collateral: :func:`static_haircuts`, :func:`var_haircut`, :func:`collateral_value`, :func:`health_factor`, ...
- policies and backtesting (issue 5): :mod:`margin.simulation.policies` (static / reactive / predictive margin policies,
  EMIR Art. 28 anti-procyclicality wrapper), :mod:`margin.simulation.book` (synthetic and loaded account books),
  :mod:`margin.simulation.liquidation` (liquidation simulator), :mod:`margin.simulation.procyclicality`
- errors: :class:`MarginInputError` (a ``ValueError`` naming field, index and value)

Importing the package enables JAX float64 (``jax_enable_x64``) so that ``dtype=jnp.float64`` is available;
the batched requirement kernels (:mod:`margin.rules.requirements`, perpetuals, collateral) default to float32 for speed,
while the venue rule sets whose published examples need it (Black-76 pricing and Greeks, CME SPAN, Deribit
portfolio margin) default to float64; every kernel takes ``dtype`` and casts explicitly.
"""
import jax

jax.config.update("jax_enable_x64", True)

from margin.validation import MarginInputError  # noqa: E402
from margin.valuation.instruments import Instruments, Kind, Settlement, unit_value  # noqa: E402
from margin.valuation.pricing import (  # noqa: E402
    Greeks,
    ImpliedVolResult,
    black76_greeks,
    black76_price,
    implied_vol,
)
from margin.rules.perpetual import PerpetualMarginResult, perpetual_margin, perpetual_margin_reference  # noqa: E402
from margin.valuation.scenarios import (  # noqa: E402
    ScenarioSet,
    correlated_scenarios,
    ewma_volatility,
    filtered_historical_scenarios,
    historical_scenarios,
    scenario_pnl,
)
from margin.rules.requirements import (  # noqa: E402
    DEFAULT_CHUNK,
    CrossMarginResult,
    VarEs,
    cross_margin,
    historical_var_es,
    isolated_margin,
    net_gross_ratio,
    parametric_var_es,
    portfolio_im_mm,
    portfolio_margin,
    portfolio_margin_reference,
    sharded_portfolio_margin,
    BlockLayout,
    block_layout,
    detect_block_layout,
    split_positions,
    portfolio_margin_blocks,
    SparseBlockPositions,
    sparse_block_positions,
    sparse_block_positions_from_blocks,
    sparse_block_positions_from_rows,
    portfolio_margin_block_sparse,
    streaming_pass,
)
from margin.rules.span import SpanParams, SpanResult, span_requirement, span_scenarios  # noqa: E402
from margin.rules.deribit import (  # noqa: E402
    DeribitParams,
    DeribitResult,
    deribit_margin,
    deribit_scenarios,
)
from margin.valuation.chain import (  # noqa: E402
    chain_instruments,
    flag_greeks,
    load_deribit_chain,
    reprice_chain,
    repricing_summary,
    synthetic_deribit_chain,
)

# Venue rule sets and collateral (dYdX v4, Aave v3, weighted health; haircuts and health factor).
from margin.rules import venues  # noqa: E402
from margin.rules.collateral import (  # noqa: E402
    CollateralValue,
    LiquidationPrice,
    VenueInputError,
    average_liquidation_threshold,
    collateral_value,
    haircut_table_from_config,
    health_factor,
    liquidation_price,
    margin_shortfall,
    static_haircuts,
    var_haircut,
)

from margin.simulation.policies import (  # noqa: E402
    AntiProcyclical,
    ForecastArrays,
    MarginPolicy,
    PolicyError,
    PolicyOutput,
    PredictivePolicy,
    ReactivePolicy,
    RiskInputs,
    StaticPolicy,
    buffer_release,
    cap_daily_increase,
    make_policy,
)
from margin.simulation.book import Book, BookError, OptionGrid, load_positions, synthetic_book  # noqa: E402
from margin.simulation.liquidation import (  # noqa: E402
    Ledger,
    LiquidationError,
    LiquidationParams,
    make_oracle,
    prepare_market,
    simulate,
)
from margin.simulation.procyclicality import largest_increase, peak_to_trough, procyclicality_summary  # noqa: E402

__all__ = [
    "MarginInputError",
    "Instruments",
    "Kind",
    "Settlement",
    "unit_value",
    "Greeks",
    "ImpliedVolResult",
    "black76_greeks",
    "black76_price",
    "implied_vol",
    "PerpetualMarginResult",
    "perpetual_margin",
    "perpetual_margin_reference",
    "ScenarioSet",
    "correlated_scenarios",
    "ewma_volatility",
    "filtered_historical_scenarios",
    "historical_scenarios",
    "scenario_pnl",
    "DEFAULT_CHUNK",
    "CrossMarginResult",
    "VarEs",
    "cross_margin",
    "historical_var_es",
    "isolated_margin",
    "net_gross_ratio",
    "parametric_var_es",
    "portfolio_im_mm",
    "portfolio_margin",
    "portfolio_margin_reference",
    "sharded_portfolio_margin",
    "BlockLayout",
    "block_layout",
    "detect_block_layout",
    "split_positions",
    "portfolio_margin_blocks",
    "SparseBlockPositions",
    "sparse_block_positions",
    "sparse_block_positions_from_blocks",
    "sparse_block_positions_from_rows",
    "portfolio_margin_block_sparse",
    "streaming_pass",
    "SpanParams",
    "SpanResult",
    "span_requirement",
    "span_scenarios",
    "DeribitParams",
    "DeribitResult",
    "deribit_margin",
    "deribit_scenarios",
    "chain_instruments",
    "flag_greeks",
    "synthetic_deribit_chain",
    "load_deribit_chain",
    "reprice_chain",
    "repricing_summary",
    "venues",
    "CollateralValue",
    "LiquidationPrice",
    "VenueInputError",
    "average_liquidation_threshold",
    "collateral_value",
    "haircut_table_from_config",
    "health_factor",
    "liquidation_price",
    "margin_shortfall",
    "static_haircuts",
    "var_haircut",
    "AntiProcyclical",
    "ForecastArrays",
    "MarginPolicy",
    "PolicyError",
    "PolicyOutput",
    "PredictivePolicy",
    "ReactivePolicy",
    "RiskInputs",
    "StaticPolicy",
    "buffer_release",
    "cap_daily_increase",
    "make_policy",
    "Book",
    "BookError",
    "OptionGrid",
    "load_positions",
    "synthetic_book",
    "Ledger",
    "LiquidationError",
    "LiquidationParams",
    "make_oracle",
    "prepare_market",
    "simulate",
    "largest_increase",
    "peak_to_trough",
    "procyclicality_summary",
]
