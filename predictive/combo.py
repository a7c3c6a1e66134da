"""Forecast combination of volatility models with trailing-QLIKE weights (``make_model("combo", ...)``).

Model. ``M`` member models (default RegimeNet ``regime_net_l10_fast``, GARCH(1,1), HAR-RV; any registered model)
each forecast the variance ``v_{i,t}`` of the ``h``-day log return at origin ``t``. The combination is geometric (in log variance)::

    ln v_t = sum_i w_{i,t} ln v_{i,t},    sum_i w_{i,t} = 1,  w_{i,t} >= floor.

Weights use ONLY data known at ``t``. The h-day forecast from origin ``s`` is scored when its target is realised,
i.e. at ``s + h``, with QLIKE against the realised-variance proxy ``RV_{s,h} = rv_{s+1} + ... + rv_{s+h}``
(Patton 2011, the loss that ranks variance forecasts consistently under a noisy proxy)::

    l_{i,s} = RV_{s,h} / v_{i,s} - ln(RV_{s,h} / v_{i,s}) - 1,

and the weight at ``t`` uses the mean loss over the ``window`` origins ``s = t-h-window+1 .. t-h`` (finite losses
only; ``Lbar_{i,t}``). Two schemes (Timmermann 2006, "Forecast combinations", Handbook of Economic Forecasting,
sec. 7; Bates & Granger 1969 for inverse-loss weights):

* ``inverse`` (default): ``u_i = Lbar_i ** -power`` (``power = 1``: Bates-Granger inverse-loss weights; losses
  that differ by a few per cent give nearly equal weights, which is the robust choice of the "combination
  puzzle" literature);
* ``exp``: ``u_i = exp(-eta * window * (Lbar_i - min_j Lbar_j))`` (exponentially weighted average forecaster on the
  window's summed loss; ``eta`` per unit of summed QLIKE).

then ``w = floor + (1 - M * floor) * u / sum(u)``. Until every available member has ``min_periods`` scored losses in
the window (and at rows where a member's forecast is missing), the available members get equal weights. Members
with no forecast at a row (NaN, e.g. RegimeNet's lookback) are left out of that row and the rest renormalised.

Caveat: ``forecast`` runs the members over the whole history given, so origins inside the members' fitting
sample are scored on in-sample forecasts (which flatters a flexible model such as RegimeNet); with
``window = 250`` the weights are entirely out of sample from ``window + h`` days after the fit end.

Quantiles (``VolatilityForecast.quantiles``, hence ``ForecastArrays.q_lo / q_hi``): the combined sigma times the
empirical quantiles of the STANDARDISED h-day returns ``z_s = (r_{s+1} + ... + r_{s+h}) / sqrt(v_s)`` over the
FIT sample (every asset pooled, origins whose target lies inside the fit sample), fitted once per horizon (lazily
from the stored fit frames for a horizon not asked at fit time). Filtered historical simulation in the sense of
Barone-Adesi, Giannopoulos & Vosper (1999); fat tails of the h-day return are kept without a parametric choice.
With fewer than ``min_z`` standardised returns the quantiles are Gaussian.

Regime probabilities (``ForecastArrays.p_high``): those of the first member that has them (RegimeNet), passed
through unchanged (combining a probability with models that have none has no meaning); if no member has regime
probabilities the combination has none (``p_high = None``: a policy's regime add-on is then off).

Seeds and horizons: ``seed`` reaches every member whose constructor takes one; ``horizon`` / ``horizons`` are
added to each member's own ``horizons`` list (RegimeNet trains a head for each; HAR fits each).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from predictive.base import DEFAULT_LEVELS, VolatilityForecast, VolatilityModel, gaussian_quantiles, validate_horizon
from predictive.evaluation import qlike_loss

__all__ = ["ComboConfigError", "ForecastCombination", "combination_weights",
           "trailing_qlike"]


class ComboConfigError(ValueError):
    """A bad setting of :class:`ForecastCombination` (the message names the key and the value)."""


_SCHEMES = ("inverse", "exp")


def trailing_qlike(variances: np.ndarray, proxy: np.ndarray, horizon: int) -> np.ndarray:
    """QLIKE of each member's forecast from each origin, placed at the origin (NaN where unknown).

    Args:
        variances: ``(T, M)`` float64 member forecasts (log-return^2 per h days), NaN where a member has none.
        proxy: ``(T,)`` float64 realised ``RV_{s,h}`` aligned at origin ``s`` (NaN in the last ``h`` rows).
        horizon: ``h`` (days); kept for the signature (the caller shifts by ``h``).

    Returns:
        ``(T, M)`` float64 losses ``l_{s,i}``; NaN where the forecast or the proxy is missing or not positive.
    """
    validate_horizon(horizon)
    v = np.asarray(variances, np.float64)
    p = np.asarray(proxy, np.float64)[:, None]
    ok = np.isfinite(v) & (v > 0) & np.isfinite(p) & (p > 0)
    return np.where(ok, qlike_loss(np.where(ok, p, 1.0), np.where(ok, v, 1.0)), np.nan)


def _raw_weights(lbar: np.ndarray, scheme: str, power: float, eta: float, window: int) -> np.ndarray:
    if scheme == "inverse":
        return np.maximum(lbar, 1e-12) ** (-power)
    return np.exp(-eta * window * (lbar - np.min(lbar)))


def combination_weights(losses: np.ndarray, available: np.ndarray, horizon: int, *, window: int = 250,
                        scheme: str = "inverse", power: float = 1.0, eta: float = 0.05, floor: float = 0.05,
                        min_periods: int = 60) -> np.ndarray:
    """Combination weights at every origin ``t`` from losses known at ``t`` (vectorised; see the module docstring).

    Args:
        losses: ``(T, M)`` float64 QLIKE of the forecast from origin ``s`` (:func:`trailing_qlike`), NaN if unknown.
        available: ``(T, M)`` bool, member ``i`` has a forecast at origin ``t``.
        horizon: ``h`` (days): the loss of origin ``s`` is known from ``t = s + h``.
        window, scheme, power, eta, floor, min_periods: see :class:`ForecastCombination`.

    Returns:
        ``(T, M)`` float64 weights, each row summing to 1 over the available members (0 elsewhere); a row with no
        available member is all NaN.
    """
    h = validate_horizon(horizon)
    L = np.asarray(losses, np.float64)
    T, M = L.shape
    fin = np.isfinite(L)
    c_sum = np.vstack([np.zeros((1, M)), np.cumsum(np.where(fin, L, 0.0), axis=0)])
    c_cnt = np.vstack([np.zeros((1, M)), np.cumsum(fin, axis=0)])
    t = np.arange(T)
    hi = np.clip(t - h + 1, 0, T)                 # exclusive end: origins s <= t - h
    lo = np.clip(t - h - window + 1, 0, T)
    cnt = c_cnt[hi] - c_cnt[lo]
    lbar = (c_sum[hi] - c_sum[lo]) / np.maximum(cnt, 1)
    av = np.asarray(available, bool)
    W = np.full((T, M), np.nan)
    for k in range(T):
        a = av[k]
        m = int(a.sum())
        if m == 0:
            continue
        w = np.zeros(M)
        if m == 1:
            w[a] = 1.0
        elif np.all(cnt[k, a] >= min_periods):
            u = _raw_weights(lbar[k, a], scheme, power, eta, window)
            fl = min(floor, 1.0 / m)
            w[a] = fl + (1.0 - m * fl) * u / u.sum()
        else:
            w[a] = 1.0 / m
        W[k] = w
    return W


def _member_entry(entry) -> dict:
    """A member config: a conf/model file name (``"garch"``), ``{config: <file>, **overrides}`` or a full
    ``{name: <registered model>, **constructor args}``."""
    from predictive.training import model_config

    if hasattr(entry, "items") and type(entry).__name__ == "DictConfig":
        from omegaconf import OmegaConf
        entry = OmegaConf.to_container(entry, resolve=True)
    if isinstance(entry, str):
        return model_config(entry)
    if isinstance(entry, Mapping):
        e = dict(entry)
        if "config" in e:
            return model_config(str(e.pop("config")), e)
        if "name" in e:
            return e
    raise ComboConfigError(f"combo: a member must be a conf/model name, {{config: ...}} or {{name: ...}}; "
                           f"got {entry!r}")


class ForecastCombination(VolatilityModel):
    """Trailing-QLIKE-weighted geometric combination of member volatility models (module docstring).

    Args:
        members: member configs (conf/model file names, ``{config: file, **overrides}`` or ``{name: ..., ...}``);
            at least 2; ``combo`` itself is not allowed as a member.
        horizon: the app's ``h`` (days); added to every member's horizons.
        horizons: further horizons the members are trained for (RegimeNet heads, HAR fits).
        seed: passed to every member that takes a seed (None: the members' own).
        progress: passed to members that take it.
        window: trailing window of scored origins (days, >= 1).
        scheme: ``inverse`` or ``exp``.
        power: exponent of the inverse-loss weights (> 0).
        eta: learning rate of the exponential weights (> 0, per unit of summed QLIKE).
        floor: minimum weight of an available member, in [0, 1 / M).
        min_periods: scored losses each member needs in the window before the weights leave equal weighting.
        min_z: fewest standardised fit-sample returns for empirical quantiles (else Gaussian).
        levels: quantile levels (must include 0.01 and 0.99).

    Attributes after fit: ``members_`` (list of fitted models), ``member_names_``, ``z_quantiles_`` ({h: {level:
    float}}), ``last_weights_`` ({asset: (T, M) weights of the last forecast call}).

    Raises:
        ComboConfigError: a bad setting (names it).
    """

    name = "combo"
    default_horizons = (1, 5)

    def __init__(self, members: Sequence = ("regime_net_l10_fast", "garch", "har"), *, horizon: int = 1,
                 horizons: Iterable[int] = (1, 5), seed: int | None = 0, progress=None, window: int = 250,
                 scheme: str = "inverse", power: float = 1.0, eta: float = 0.05, floor: float = 0.05,
                 min_periods: int = 60, min_z: int = 250, levels=DEFAULT_LEVELS):
        if isinstance(members, (str, bytes)) or not isinstance(members, Iterable):
            raise ComboConfigError(f"combo: members must be a list of member configs, got {members!r}")
        members = list(members)
        if len(members) < 2:
            raise ComboConfigError(f"combo: members needs at least 2 models, got {len(members)}: {members!r}")
        try:
            self.horizon = validate_horizon(horizon)
            self.horizons = tuple(sorted({validate_horizon(h) for h in (horizons or ())} | {self.horizon}))
        except ValueError as exc:
            raise ComboConfigError(f"combo: {exc}") from None
        if scheme not in _SCHEMES:
            raise ComboConfigError(f"combo: scheme must be one of {list(_SCHEMES)}, got {scheme!r}")
        for key, val, ok in (("window", window, isinstance(window, (int, np.integer)) and window >= 1),
                             ("power", power, np.isfinite(power) and power > 0),
                             ("eta", eta, np.isfinite(eta) and eta > 0),
                             ("floor", floor, 0.0 <= floor < 1.0 / len(members)),
                             ("min_periods", min_periods, isinstance(min_periods, (int, np.integer))
                              and 1 <= min_periods <= window),
                             ("min_z", min_z, isinstance(min_z, (int, np.integer)) and min_z >= 1)):
            if not ok:
                raise ComboConfigError(f"combo: invalid {key}={val!r} (floor must lie in [0, 1/M) with M = "
                                       f"{len(members)} members; min_periods in [1, window])")
        self.member_configs = [_member_entry(m) for m in members]
        for mc in self.member_configs:
            if mc.get("name") == "combo":
                raise ComboConfigError("combo: a combination cannot be its own member")
        self.seed = None if seed is None else int(seed)
        self.progress = progress
        self.window, self.scheme, self.power, self.eta = int(window), scheme, float(power), float(eta)
        self.floor, self.min_periods, self.min_z = float(floor), int(min_periods), int(min_z)
        self.levels = tuple(float(q) for q in levels)
        if 0.01 not in self.levels or 0.99 not in self.levels:
            raise ComboConfigError(f"combo: levels must include 0.01 and 0.99, got {list(self.levels)}")
        self.members_: list[VolatilityModel] = []
        self.member_names_: list[str] = []
        self.z_quantiles_: dict[int, dict[float, float]] = {}
        self.last_weights_: dict[str, np.ndarray] = {}
        self._fit_features: dict[str, pd.DataFrame] = {}
        self.min_history = 1

    # ------------------------------------------------------------------------------------------------- fit
    def _build_members(self) -> list[VolatilityModel]:
        from predictive.models import make_model, model_class
        from predictive.training import model_kwargs

        out = []
        for mc in self.member_configs:
            cfg = dict(mc)
            mname = cfg.pop("name")
            cls = model_class(mname)
            kw = model_kwargs(mname, cfg, seed=self.seed if self.seed is not None else int(cfg.get("seed", 0)),
                              horizon=self.horizon, progress=bool(self.progress is True),
                              user_keys=set() if self.seed is not None else {"seed"})
            import inspect
            params = inspect.signature(cls.__init__).parameters
            if "horizons" in cfg or "horizons" in params:
                base = kw.get("horizons", cfg.get("horizons", ())) or ()
                kw["horizons"] = sorted({int(x) for x in base} | set(self.horizons))
            out.append(make_model(mname, **kw))
        return out

    def fit(self, features: Mapping[str, pd.DataFrame]) -> "ForecastCombination":
        """Fit every member on all rows given; fit the standardised-return quantiles for ``self.horizons``.

        Raises:
            InsufficientDataError: from a member, or too few rows for any scored loss.
        """
        self._check_mapping(features)
        members = self._build_members()
        for m in members:
            m.fit(features)
        self.members_ = members
        self.member_names_ = [mc["name"] for mc in self.member_configs]
        self._fit_features = {a: f.copy() for a, f in features.items()}
        self.z_quantiles_ = {}
        for h in self.horizons:
            self._z_quantiles(h)
        return self

    def _z_quantiles(self, h: int) -> dict[float, float] | None:
        """Empirical quantiles of z = h-day return / combined sigma on the fit sample (pooled over assets)."""
        if h in self.z_quantiles_:
            return self.z_quantiles_[h]
        from predictive.features import forward_targets

        zs = []
        for asset, (var, _w, _p) in self._combine(self._fit_features, h).items():
            y = forward_targets(self._fit_features[asset], h)["ret_h"].to_numpy(np.float64)
            ok = np.isfinite(y) & np.isfinite(var) & (var > 0)
            zs.append(y[ok] / np.sqrt(var[ok]))
        z = np.concatenate(zs) if zs else np.zeros(0)
        self.z_quantiles_[h] = ({q: float(np.quantile(z, q)) for q in self.levels} if z.size >= self.min_z else None)
        return self.z_quantiles_[h]

    # ------------------------------------------------------------------------------------------------- forecast
    def _combine(self, features: Mapping[str, pd.DataFrame], h: int):
        """{asset: (combined variance (T,), weights (T, M), regime_probs or None)} at horizon ``h``."""
        from predictive.features import forward_targets

        if not self.members_:
            raise RuntimeError("combo: call fit() before forecast()")
        fcs = [m.forecast(features, h) for m in self.members_]
        out = {}
        for asset, frame in features.items():
            T = len(frame)
            V = np.full((T, len(fcs)), np.nan)
            probs = None
            for i, fc in enumerate(fcs):
                f = fc[asset]
                V[:, i] = pd.Series(np.asarray(f.variance, np.float64), f.index).reindex(frame.index).to_numpy()
                if probs is None and f.regime_probs is not None:
                    probs = pd.DataFrame(np.asarray(f.regime_probs), f.index).reindex(frame.index).to_numpy()
            avail = np.isfinite(V) & (V > 0)
            proxy = forward_targets(frame, h)["rv_h"].to_numpy(np.float64)
            L = trailing_qlike(V, proxy, h)
            W = combination_weights(L, avail, h, window=self.window, scheme=self.scheme, power=self.power,
                                    eta=self.eta, floor=self.floor, min_periods=self.min_periods)
            logv = np.where(avail, np.log(np.where(avail, V, 1.0)), 0.0)
            var = np.exp(np.sum(np.where(avail, W, 0.0) * logv, axis=1))
            var[~avail.any(axis=1)] = np.nan
            out[asset] = (var, W, probs)
        return out

    def forecast(self, features: Mapping[str, pd.DataFrame], horizon: int) -> dict[str, VolatilityForecast]:
        """Combined forecast of the ``horizon``-day log return at every row (rows ``<= t`` only).

        Returns ``{asset: VolatilityForecast}``: ``variance`` ``(T,)`` float64 (log-return^2 per h days; NaN where no
        member has a forecast), quantiles ``sigma * z_q`` (module docstring), ``regime_probs`` of the first member
        that has them. ``last_weights_[asset]`` holds the ``(T, M)`` weights.

        Raises:
            RuntimeError: before fit. ValueError: bad horizon (or one a member cannot forecast).
        """
        h = validate_horizon(horizon)
        self._check_mapping(features)
        zq = self._z_quantiles(h)
        res, self.last_weights_ = {}, {}
        for asset, (var, W, probs) in self._combine(features, h).items():
            if zq is None:
                q = gaussian_quantiles(var, self.levels)
            else:
                sd = np.sqrt(var)
                q = {lev: sd * zq[lev] for lev in self.levels}
            self.last_weights_[asset] = W
            res[asset] = VolatilityForecast(features[asset].index, h, var, q, probs)
        return res

