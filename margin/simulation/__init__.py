"""margin.simulation: the venue backtest as a library (issue 9 item 10).

The simulation layer of ``margin``: account books (:mod:`margin.simulation.book`), margin policies (:mod:`margin.simulation.policies`),
the liquidation simulator (:mod:`margin.simulation.liquidation`), procyclicality measures (:mod:`margin.simulation.procyclicality`) and,
in this package, the backtest built from them:

- :mod:`margin.simulation.coverage`: Kupiec POF, Christoffersen, Basel traffic light (also used by the forecast
  evaluation in ``predictive``; ``predictive.coverage`` re-exports it);
- :mod:`margin.simulation.evaluation`: h-day losses by calendar date, exceptions per side, stress windows,
  procyclicality, targets, forecast variability;
- :mod:`margin.simulation.intraday`: hourly liquidation steps with margin set daily;
- :mod:`margin.simulation.backtest`: :func:`run_venue_backtest`, prices + forecast arrays in, metrics out;
- :mod:`margin.simulation.report`: Markdown report and plots.
- :mod:`margin.simulation.tuning`: tuning a policy on a validation period (per-side coverage, objectives,
  Pareto front, choice rule, target slack, tables; the library of ``experiments.tune_policy``).

The building blocks of the other modules are re-exported here too, so that ``from margin.simulation import ...``
covers the whole layer: :class:`Book`, :func:`synthetic_book`, :func:`load_positions`, :class:`LiquidationParams`,
:func:`prepare_market`, :func:`simulate`, :func:`make_policy`, :class:`ForecastArrays`, :class:`RiskInputs`,
:func:`largest_increase`, :func:`peak_to_trough` and the typed errors.

``margin`` imports neither ``predictive`` nor ``zkproofs``: forecasts come in as arrays
(:class:`margin.simulation.policies.ForecastArrays`).

Example::

    import pandas as pd
    from margin.simulation import run_venue_backtest, write_outputs
    from predictive import load_ohlcv

    close = pd.DataFrame({a: load_ohlcv(a)["close"] for a in ("BTC", "ETH")}).dropna()
    result = run_venue_backtest(close, [{"kind": "static", "scan_range": {"BTC": 0.16, "ETH": 0.18}}],
                                book=2_000, start="2021-01-01")
    print(result.metrics["policies"]["static"]["exceptions"])   # {"BTC": {"long": .., "short": ..}, "ETH": ..}
    write_outputs(result, "outputs/notebook_backtest")           # metrics.json, report.md, plots
"""
from margin.simulation.book import Book, BookError, OptionGrid, load_positions, synthetic_book
from margin.simulation.liquidation import (LiquidationError, LiquidationParams, make_oracle, prepare_market, simulate,
                                simulate_blocks)
from margin.simulation.policies import ForecastArrays, PolicyError, PolicyOutput, RiskInputs, make_policy
from margin.simulation.procyclicality import largest_increase, peak_to_trough, procyclicality_summary
from margin.simulation.coverage import (ChristoffersenResult, KupiecResult, christoffersen, coverage_metrics,
                                        kupiec_acceptance_band, kupiec_pof, traffic_light, traffic_light_zone,
                                        worst_zone)
from margin.simulation.evaluation import (SIDES, BacktestInputError, forecast_variability, h_day_losses,
                                          policy_metrics, select_stress_windows, side_scans, targets)
from margin.simulation.intraday import daily_ledger, hourly_schedule
from margin.simulation.backtest import (DEFAULT_CRASH_DAYS, DEFAULT_STRESS_WINDOWS, BacktestResult, MarketSettings,
                                        ewma_sigma, run_venue_backtest)
from margin.simulation.report import pareto_plot, render_report, write_outputs

__all__ = [
    "Book",
    "BookError",
    "ForecastArrays",
    "LiquidationError",
    "LiquidationParams",
    "OptionGrid",
    "PolicyError",
    "PolicyOutput",
    "RiskInputs",
    "largest_increase",
    "load_positions",
    "make_oracle",
    "make_policy",
    "peak_to_trough",
    "prepare_market",
    "procyclicality_summary",
    "simulate",
    "simulate_blocks",
    "synthetic_book",
    "BacktestInputError",
    "BacktestResult",
    "ChristoffersenResult",
    "DEFAULT_CRASH_DAYS",
    "DEFAULT_STRESS_WINDOWS",
    "KupiecResult",
    "MarketSettings",
    "SIDES",
    "christoffersen",
    "coverage_metrics",
    "daily_ledger",
    "ewma_sigma",
    "forecast_variability",
    "h_day_losses",
    "hourly_schedule",
    "kupiec_acceptance_band",
    "kupiec_pof",
    "pareto_plot",
    "policy_metrics",
    "render_report",
    "run_venue_backtest",
    "select_stress_windows",
    "side_scans",
    "targets",
    "traffic_light",
    "traffic_light_zone",
    "worst_zone",
    "write_outputs",
]
