"""Volatility forecasting for margin: data loading, features, baseline and learned models, coverage tests.

The learned regime model is ``predictive.regime_net.RegimeNet`` (``make_model("regime_net", ...)``), imported
lazily so that the baselines do not pull in flax and optax; evaluation lives in ``predictive.evaluation``.

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
from predictive.base import (DEFAULT_LEVELS, InsufficientDataError, PerAssetModel, VolatilityForecast,  # noqa: E402
                             VolatilityModel, gaussian_quantiles, mixture_quantiles, validate_horizon)
from predictive.intraday import daily_realised_variance, load_funding, load_hourly, rv_summary  # noqa: E402
from predictive.features import build_features, forward_targets  # noqa: E402
from predictive.ewma import EWMA  # noqa: E402
from predictive.garch import GARCH11, garch_loglikelihood  # noqa: E402
from predictive.har import HARRV  # noqa: E402
from predictive.hmm import GaussianHMM, hmm_loglikelihood  # noqa: E402
from predictive.combo import ComboConfigError, ForecastCombination  # noqa: E402
from predictive.models import MODEL_NAMES, build_model, make_model, model_class  # noqa: E402

__all__ = [
    "DEFAULT_LEVELS",
    "ComboConfigError",
    "EWMA",
    "ForecastCombination",
    "GARCH11",
    "GaussianHMM",
    "HARRV",
    "InsufficientDataError",
    "MODEL_NAMES",
    "PerAssetModel",
    "VolatilityForecast",
    "VolatilityModel",
    "build_features",
    "daily_realised_variance",
    "forward_targets",
    "garch_loglikelihood",
    "gaussian_quantiles",
    "hmm_loglikelihood",
    "load_funding",
    "load_hourly",
    "build_model",
    "make_model",
    "mixture_quantiles",
    "model_class",
    "rv_summary",
    "validate_horizon",
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
