"""Volatility forecasting for margin: data loading, features, baseline and learned models, coverage tests.

Public API; implementation lives in the modules of this package.
"""
import jax

# Forecasting models need float64 (likelihood parity with arch / hmmlearn to 1e-6); margin kernels choose
# their own dtype explicitly, so enabling x64 only makes float64 available.
jax.config.update("jax_enable_x64", True)

from predictive.coverage import (ChristoffersenResult, KupiecResult, christoffersen,  # noqa: E402
                                 kupiec_acceptance_band, kupiec_pof, traffic_light, traffic_light_zone)
from predictive.data import (EMBEDDED_ASSETS, DataValidationError, embedded_path, load_ohlcv,  # noqa: E402
                             validate_ohlcv)

__all__ = [
    "EMBEDDED_ASSETS",
    "ChristoffersenResult",
    "DataValidationError",
    "KupiecResult",
    "christoffersen",
    "embedded_path",
    "kupiec_acceptance_band",
    "kupiec_pof",
    "load_ohlcv",
    "traffic_light",
    "traffic_light_zone",
    "validate_ohlcv",
]
