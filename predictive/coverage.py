"""Re-export of :mod:`margin.simulation.coverage` (Kupiec POF, Christoffersen, Basel traffic light).

The coverage statistics moved to ``margin.simulation.coverage`` so that the margin backtest can use them without
importing the forecasting models (``margin`` imports neither ``predictive`` nor ``zkproofs``); this module keeps
``from predictive.coverage import kupiec_pof`` working.
"""
from margin.simulation.coverage import (  # noqa: F401
    ChristoffersenResult,
    KupiecResult,
    christoffersen,
    kupiec_acceptance_band,
    kupiec_pof,
    traffic_light,
    traffic_light_zone,
)

__all__ = [
    "KupiecResult",
    "ChristoffersenResult",
    "kupiec_pof",
    "kupiec_acceptance_band",
    "christoffersen",
    "traffic_light",
    "traffic_light_zone",
]
