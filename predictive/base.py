"""The one interface every volatility model implements (see ``PREDICTIVE_API.md``).

A model is fitted on a mapping ``asset -> feature frame`` (as built by :func:`predictive.features.build_features`)
and then produces, at every row ``t`` of each frame, a forecast of the distribution of the ``h``-day log return
``r_{t+1} + ... + r_{t+h}`` using only rows ``<= t`` and the fitted parameters.

Units: variances are in log-return^2 per ``h`` days (no annualisation, no percent); quantiles are log returns.
"""
from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import special

__all__ = [
    "DEFAULT_LEVELS",
    "InsufficientDataError",
    "VolatilityForecast",
    "VolatilityModel",
    "gaussian_quantiles",
    "mixture_quantiles",
    "validate_horizon",
    "leading_returns",
]

#: Quantile levels every forecast carries (at least 1% and 99%, as the interface requires).
DEFAULT_LEVELS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.5, 0.95, 0.975, 0.99)


class InsufficientDataError(ValueError):
    """A series is too short for a model (the message names the asset, the rows given and the rows needed)."""


def validate_horizon(horizon: object) -> int:
    """Return ``horizon`` as an ``int`` >= 1.

    Raises:
        ValueError: ``horizon`` is not an integer or is < 1 (the message names the value).
    """
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
        raise ValueError(f"horizon must be an integer number of days >= 1, got {horizon!r}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 day, got {horizon!r}")
    return int(horizon)


def _validate_levels(levels: Iterable[float]) -> tuple[float, ...]:
    out = tuple(float(q) for q in levels)
    for q in out:
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile level must lie strictly between 0 and 1, got {q!r}")
    return out


def gaussian_quantiles(variance: np.ndarray, levels: Iterable[float] = DEFAULT_LEVELS,
                       mean: np.ndarray | float = 0.0) -> dict[float, np.ndarray]:
    """Quantiles of ``N(mean, variance)`` for each level.

    Args:
        variance: array of shape ``(T,)``, float64, log-return^2.
        levels: quantile levels in (0, 1).
        mean: scalar or ``(T,)`` mean log return.

    Returns:
        ``{level: (T,) float64 array}`` of log-return quantiles.
    """
    variance = np.asarray(variance, dtype=np.float64)
    sd = np.sqrt(variance)
    return {q: np.asarray(mean + sd * special.ndtri(q), dtype=np.float64) for q in _validate_levels(levels)}


def mixture_quantiles(weights: np.ndarray, sigmas: np.ndarray, levels: Iterable[float] = DEFAULT_LEVELS,
                      means: np.ndarray | None = None, *, tol: float = 1e-12,
                      max_iter: int = 200) -> dict[float, np.ndarray]:
    """Quantiles of the Gaussian mixture ``sum_k w_k N(mu_k, sigma_k^2)``, row by row, by bisection on its CDF.

    Args:
        weights: array of shape ``(T, K)``, non-negative, rows summing to 1 (renormalised here).
        sigmas: array of shape ``(T, K)``, standard deviations (log-return units), > 0.
        levels: quantile levels in (0, 1).
        means: optional ``(T, K)`` component means (default 0).
        tol: absolute tolerance on the quantile (log-return units).
        max_iter: bisection steps (each halves the bracket; 200 is far more than float64 needs).

    Returns:
        ``{level: (T,) float64 array}``. The bracket is ``[min_k(mu_k - 40 sigma_k), max_k(mu_k + 40 sigma_k)]``,
        which contains every quantile in (1e-300, 1 - 1e-16).

    Raises:
        ValueError: shapes differ, negative weights, a row of zero weight, non-positive or non-finite sigmas.
    """
    w = np.asarray(weights, dtype=np.float64)
    s = np.asarray(sigmas, dtype=np.float64)
    if w.ndim != 2 or w.shape != s.shape:
        raise ValueError(f"weights and sigmas must both have shape (T, K); got {w.shape} and {s.shape}")
    mu = np.zeros_like(w) if means is None else np.asarray(means, dtype=np.float64)
    if mu.shape != w.shape:
        raise ValueError(f"means must have shape {w.shape}, got {mu.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        i, k = np.argwhere(~np.isfinite(w) | (w < 0))[0]
        raise ValueError(f"mixture weights must be finite and >= 0; weights[{i}, {k}] = {w[i, k]!r}")
    total = w.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        i = int(np.flatnonzero(total[:, 0] <= 0)[0])
        raise ValueError(f"mixture weights in row {i} sum to {float(total[i, 0])!r}; need a positive sum")
    w = w / total
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        i, k = np.argwhere(~np.isfinite(s) | (s <= 0))[0]
        raise ValueError(f"mixture sigmas must be finite and > 0; sigmas[{i}, {k}] = {s[i, k]!r}")
    lo0 = np.min(mu - 40.0 * s, axis=1)
    hi0 = np.max(mu + 40.0 * s, axis=1)

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.sum(w * special.ndtr((x[:, None] - mu) / s), axis=1)

    out: dict[float, np.ndarray] = {}
    for q in _validate_levels(levels):
        lo, hi = lo0.copy(), hi0.copy()
        for _ in range(max_iter):
            mid = 0.5 * (lo + hi)
            below = cdf(mid) < q
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
            if np.all(hi - lo <= tol):
                break
        out[q] = 0.5 * (lo + hi)
    return out


@dataclasses.dataclass(frozen=True)
class VolatilityForecast:
    """Forecasts of the ``horizon``-day log return at each origin ``t`` in ``index``.

    Attributes:
        index: forecast origins ``t`` (``DatetimeIndex`` of length ``T``); the forecast uses rows ``<= t`` only.
        horizon: ``h`` in days (>= 1).
        variance: ``(T,)`` float64, forecast variance of ``r_{t+1} + ... + r_{t+h}`` (log-return^2).
        quantiles: ``{level: (T,) float64}`` quantiles of the ``h``-day log return; holds at least 0.01 and 0.99.
        regime_probs: optional ``(T, K)`` regime probabilities (rows sum to 1), e.g. filtered ``P(s_t | F_t)``.
    """

    index: pd.DatetimeIndex
    horizon: int
    variance: np.ndarray
    quantiles: dict[float, np.ndarray]
    regime_probs: np.ndarray | None = None

    def __post_init__(self) -> None:
        validate_horizon(self.horizon)
        n = len(self.index)
        if self.variance.shape != (n,):
            raise ValueError(f"variance must have shape ({n},), got {self.variance.shape}")
        for level in (0.01, 0.99):
            if level not in self.quantiles:
                raise ValueError(f"quantiles must include level {level}; got levels {sorted(self.quantiles)}")
        for level, values in self.quantiles.items():
            if np.shape(values) != (n,):
                raise ValueError(f"quantile {level} must have shape ({n},), got {np.shape(values)}")
        if self.regime_probs is not None and (self.regime_probs.ndim != 2 or self.regime_probs.shape[0] != n):
            raise ValueError(f"regime_probs must have shape ({n}, K), got {self.regime_probs.shape}")

    def sigma_annualised(self) -> np.ndarray:
        """Annualised volatility ``sqrt(variance * 365 / horizon)`` (24/7 market: 365 days a year), shape ``(T,)``."""
        return np.sqrt(self.variance * 365.0 / self.horizon)

    def to_frame(self) -> pd.DataFrame:
        """The forecast as a DataFrame: ``variance``, ``sigma_ann`` and ``q{level}`` columns, indexed by origin."""
        data = {"variance": self.variance, "sigma_ann": self.sigma_annualised()}
        for level in sorted(self.quantiles):
            data[f"q{level:g}"] = self.quantiles[level]
        if self.regime_probs is not None:
            for k in range(self.regime_probs.shape[1]):
                data[f"p_regime{k}"] = self.regime_probs[:, k]
        return pd.DataFrame(data, index=self.index)


def leading_returns(frame: pd.DataFrame, column: str = "log_return", *, asset: str = "?") -> tuple[np.ndarray, int]:
    """The finite returns of ``frame[column]`` and the number of leading NaN rows before them.

    A leading block of NaN (the first row of a daily frame has no previous close) is allowed; a NaN or infinite
    value after the first finite one is an error (never a silent NaN).

    Returns:
        ``(r, n_lead)``: ``r`` float64 of shape ``(T - n_lead,)``.

    Raises:
        KeyError: the column is missing.
        ValueError: a non-finite value after the first finite one (names asset, row date and value).
    """
    if column not in frame.columns:
        raise KeyError(f"asset {asset!r}: feature frame has no column {column!r}; columns are {list(frame.columns)}")
    x = frame[column].to_numpy(dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return x[:0], len(x)
    n_lead = int(np.argmax(finite))
    bad = np.flatnonzero(~finite[n_lead:])
    if bad.size:
        i = n_lead + int(bad[0])
        raise ValueError(f"asset {asset!r}: {column} at row {i} ({frame.index[i]}) is {x[i]!r}; only a leading "
                         "block of NaN is allowed")
    return x[n_lead:], n_lead


class VolatilityModel(abc.ABC):
    """Base class of all volatility models.

    Subclasses set ``name`` and ``min_history`` and implement :meth:`fit` and :meth:`forecast`.

    ``fit(features)`` fits on ALL rows given (the caller slices to before its cutoff) and returns ``self``;
    per-asset models keep one parameter set per asset key, pooled models share parameters.
    ``forecast(features, horizon)`` returns a :class:`VolatilityForecast` per asset with a forecast at EVERY row
    ``t`` that uses only rows ``<= t`` and the fitted parameters (no refitting).
    """

    name: str = "base"
    min_history: int = 1

    @abc.abstractmethod
    def fit(self, features: Mapping[str, pd.DataFrame]) -> "VolatilityModel":
        """Fit on every row of every frame; returns ``self``. Raises :class:`InsufficientDataError` if too short."""

    @abc.abstractmethod
    def forecast(self, features: Mapping[str, pd.DataFrame], horizon: int) -> dict[str, VolatilityForecast]:
        """Forecast the ``horizon``-day log return at every row of each frame (rows ``<= t`` only)."""

    # helpers shared by subclasses -------------------------------------------------------------------------
    def _check_history(self, asset: str, n_rows: int) -> None:
        if n_rows < self.min_history:
            raise InsufficientDataError(
                f"{self.name}: asset {asset!r} has {n_rows} usable rows, needs at least {self.min_history}")

    @staticmethod
    def _check_mapping(features: Mapping[str, pd.DataFrame]) -> None:
        if not isinstance(features, Mapping) or len(features) == 0:
            raise ValueError(f"features must be a non-empty mapping asset -> DataFrame, got {type(features).__name__}")
        for asset, frame in features.items():
            if not isinstance(frame, pd.DataFrame):
                raise ValueError(f"features[{asset!r}] must be a DataFrame, got {type(frame).__name__}")

    def _params_for(self, params: Mapping[str, object], asset: str) -> object:
        if not params:
            raise RuntimeError(f"{self.name}: call fit() before forecast()")
        if asset not in params:
            raise KeyError(f"{self.name}: fitted on assets {sorted(params)}, no parameters for asset {asset!r}")
        return params[asset]


class PerAssetModel(VolatilityModel):
    """A model with one fitted parameter set per asset: :meth:`forecast` validates its arguments once and calls
    :meth:`_forecast_asset` for each asset with that asset's parameters.

    Subclasses implement :meth:`fit` (storing ``{asset: params}`` in the attribute named by ``_fitted_attr``) and
    :meth:`_forecast_asset`.

    Raises (from :meth:`forecast`): ``ValueError`` for a bad horizon or mapping, ``RuntimeError`` before fit,
    ``KeyError`` for an asset the model was not fitted on.
    """

    _fitted_attr: str = "params_"

    def forecast(self, features: Mapping[str, pd.DataFrame], horizon: int) -> dict[str, VolatilityForecast]:
        h = validate_horizon(horizon)
        self._check_mapping(features)
        fitted = getattr(self, self._fitted_attr)
        return {asset: self._forecast_asset(asset, frame, self._params_for(fitted, asset), h)
                for asset, frame in features.items()}

    @abc.abstractmethod
    def _forecast_asset(self, asset: str, frame: pd.DataFrame, params, horizon: int) -> VolatilityForecast:
        """The forecast for one asset's frame with its fitted ``params`` (``horizon`` already validated)."""
