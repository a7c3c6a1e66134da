"""Margin policies: map each day's risk inputs to a scan range (IM fraction) per asset.

One interface (:class:`MarginPolicy`): ``policy(inputs) -> PolicyOutput`` where ``inputs`` is a
:class:`RiskInputs` holding ONLY arrays (realised log returns and model forecasts computed elsewhere), so a
policy never imports or runs model-training code. The output ``scan_range[t, a]`` is the relative price move,
from the close of day ``t``, that the initial margin of asset ``a`` must cover over the margin period of risk of
``inputs.horizon`` days. For a linear position the IM fraction of notional equals the scan range; options books
are margined by feeding the same scan range to a scenario set (SPAN-style grid, see
:func:`margin.liquidation.option_scenario_pnl`) so both go through one path. MM = ``mm_factor`` x IM.

Policies
- :class:`StaticPolicy`: venue constants (Deribit PM ``price_range`` 0.16 BTC / 0.18 ETH with MM = 0.8 x IM; dYdX v4
  liquidity-tier IMF with MM = maintenance_fraction x IMF). Source: Deribit "Portfolio Margin" support article;
  dydxprotocol/v4-chain ``liquidity_tier.go`` (see REFERENCE.md section 1).
- :class:`ReactivePolicy`: Gaussian 99% move from a volatility forecast (EWMA, RiskMetrics 1996; GARCH(1,1)),
  ``s = exp(multiplier * z * sigma_h) - 1``.
- :class:`PredictivePolicy`: the forecast 99% / 1% quantiles of the h-day log return (e.g. the regime-mixture
  predictive distribution) plus a pre-emptive add-on proportional to the forecast probability of the
  high-volatility regime.
- :class:`AntiProcyclical`: wrapper usable on any policy implementing the EMIR RTS 153/2013 Art. 28 tools
  (Commission Delegated Regulation (EU) No 153/2013, Art. 28(1)(a)-(c)): a buffer (>= 25%) released when
  requirements rise, a weight (>= 25%) on stressed observations, a floor from a long (10-year) lookback, and an
  optional cap on the daily increase (a common CCP practice, not an Art. 28 option).

All arrays are float64 numpy, shape ``(T, A)`` (days x assets) unless stated. Stateful recursions (buffer, cap)
run as ``jax.lax.scan`` vectorised over assets; a plain-loop reference lives in the tests.
"""
from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

jax.config.update("jax_enable_x64", True)  # same switch margin/__init__ flips; float64 for the recursions

__all__ = [
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
    "historical_move_quantile",
    "make_policy",
    "move_from_quantiles",
    "stressed_move_quantile",
]


class PolicyError(ValueError):
    """Bad policy parameter or input array (names the field, index and value)."""


# --------------------------------------------------------------------------------------------------- inputs

@dataclasses.dataclass(frozen=True)
class ForecastArrays:
    """One model's forecasts of the h-day log return made at the close of each day (arrays only).

    Attributes:
        sigma: ``(T, A)`` float64, forecast standard deviation of the h-day log return (log-return units).
        q_lo: ``(T, A)`` float64, forecast 1% quantile of the h-day log return (negative).
        q_hi: ``(T, A)`` float64, forecast 99% quantile of the h-day log return (positive).
        p_high: ``(T, A)`` float64 or None, forecast probability of the high-volatility regime in [0, 1].
    """

    sigma: np.ndarray
    q_lo: np.ndarray
    q_hi: np.ndarray
    p_high: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class RiskInputs:
    """Everything a policy may look at, as arrays aligned on days.

    Attributes:
        dates: ``(T,)`` DatetimeIndex of day closes (the forecast origins).
        assets: asset names, length ``A``.
        log_returns: ``(T, A)`` realised daily log returns (row t = log(close_t / close_{t-1})), NaN before an
            asset's history starts. Rows <= t are known at t.
        horizon: margin period of risk h in days (EMIR RTS Art. 26: >= 2 business days exchange-traded;
            crypto venues liquidate intraday, so 1 is common).
        forecasts: model name -> :class:`ForecastArrays` (forecast origin t covers days t+1 .. t+h).
    """

    dates: pd.DatetimeIndex
    assets: tuple[str, ...]
    log_returns: np.ndarray
    horizon: int = 1
    forecasts: Mapping[str, ForecastArrays] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        T, A = len(self.dates), len(self.assets)
        r = np.asarray(self.log_returns)
        if r.shape != (T, A):
            raise PolicyError(f"log_returns: shape {r.shape} != (T={T}, A={A})")
        if int(self.horizon) < 1:
            raise PolicyError(f"horizon: must be >= 1, got {self.horizon!r}")
        for name, fc in self.forecasts.items():
            for field in ("sigma", "q_lo", "q_hi", "p_high"):
                arr = getattr(fc, field)
                if arr is None:
                    continue
                arr = np.asarray(arr)
                if arr.shape != (T, A):
                    raise PolicyError(f"forecasts[{name!r}].{field}: shape {arr.shape} != ({T}, {A})")


@dataclasses.dataclass(frozen=True)
class PolicyOutput:
    """A policy's requirements.

    Attributes:
        scan_range: ``(T, A)`` float64 relative price move covered by IM (IM fraction of a linear notional).
        mm_factor: ``(A,)`` float64, MM = mm_factor x IM.
        base: ``(T, A)`` the underlying policy's scan range before anti-procyclicality tools (== scan_range
            for unwrapped policies).
        name: label used in reports.
    """

    scan_range: np.ndarray
    mm_factor: np.ndarray
    base: np.ndarray
    name: str


# --------------------------------------------------------------------------------------------------- helpers

def move_from_quantiles(q_lo: np.ndarray, q_hi: np.ndarray) -> np.ndarray:
    """Symmetric scan range (relative price move) covering both tails of an h-day log-return forecast.

    ``s = max(exp(q_hi) - 1, 1 - exp(q_lo))``: a short loses ``exp(r) - 1`` per unit notional, a long
    ``1 - exp(r)``; one scan range must cover the worse of the two one-tailed 99% losses (PFMI Principle 6).
    """
    q_lo = np.asarray(q_lo, dtype=np.float64)
    q_hi = np.asarray(q_hi, dtype=np.float64)
    return np.maximum(np.expm1(q_hi), -np.expm1(q_lo))


def _h_day_moves(log_returns: np.ndarray, horizon: int) -> np.ndarray:
    """(T, A) worst-side relative move of the h-day window ENDING at row t (NaN until h rows exist)."""
    r = pd.DataFrame(np.asarray(log_returns, dtype=np.float64))
    rh = r.rolling(horizon, min_periods=horizon).sum().to_numpy()
    return np.maximum(np.expm1(rh), -np.expm1(rh))


def historical_move_quantile(log_returns: np.ndarray, horizon: int, lookback: int, coverage: float = 0.99,
                             min_periods: int = 250) -> np.ndarray:
    """Rolling historical-simulation quantile of h-day relative moves, known at each t.

    Args:
        log_returns: ``(T, A)`` daily log returns.
        horizon: h in days (overlapping h-day windows).
        lookback: window length in days (3650 = the 10-year lookback of EMIR RTS Art. 28(1)(c)).
        coverage: quantile level.
        min_periods: NaN before this many observations.

    Returns:
        ``(T, A)`` float64.
    """
    moves = pd.DataFrame(_h_day_moves(log_returns, horizon))
    return moves.rolling(lookback, min_periods=min_periods).quantile(coverage).to_numpy()


def stressed_move_quantile(log_returns: np.ndarray, horizon: int, window: int = 250, coverage: float = 0.99,
                           lookback: int = 3650) -> np.ndarray:
    """Scan range estimated on the most stressed ``window``-day period seen in the lookback (EMIR Art. 28(1)(b)).

    For each t: the maximum, over windows ending at or before t (within ``lookback`` days), of the window's
    historical ``coverage`` quantile of h-day relative moves. Known at t (no look-ahead).

    Returns:
        ``(T, A)`` float64 (NaN until ``window`` observations).
    """
    win_q = pd.DataFrame(historical_move_quantile(log_returns, horizon, window, coverage, min_periods=window))
    return win_q.rolling(lookback, min_periods=1).max().to_numpy()


@jax.jit
def _buffer_scan(base: jax.Array, buffer: jax.Array, rebuild: jax.Array) -> jax.Array:
    def step(prev, b):
        prev = jnp.where(jnp.isnan(prev), (1.0 + buffer) * b, prev)
        m = jnp.maximum(b, jnp.minimum((1.0 + buffer) * b, prev * (1.0 + rebuild)))
        m = jnp.where(jnp.isnan(b), prev, m)
        return m, jnp.where(jnp.isnan(b), jnp.nan, m)

    init = jnp.full(base.shape[1:], jnp.nan, dtype=base.dtype)
    return jax.lax.scan(step, init, base)[1]


def buffer_release(base: np.ndarray, buffer: float = 0.25, rebuild: float = 0.02) -> np.ndarray:
    """Margin buffer that is used up when the base requirement rises (EMIR RTS 153/2013 Art. 28(1)(a)).

    Recursion, per asset::

        m_0 = (1 + buffer) * b_0
        m_t = max(b_t, min((1 + buffer) * b_t, m_{t-1} * (1 + rebuild)))

    In calm periods m_t = (1 + buffer) b_t (the buffer is held); when b_t jumps, m_t may rise by at most
    ``rebuild`` per day until the buffer is exhausted (m_t = b_t), i.e. the buffer is released in stress and
    rebuilt at ``rebuild`` per day afterwards. The result never falls below the base. NaN days are skipped.

    Args:
        base: ``(T, A)`` float64 base scan ranges.
        buffer: >= 0 (Art. 28 requires >= 0.25 when this tool is the one chosen).
        rebuild: maximum daily relative increase while the buffer is being used, >= 0.

    Returns:
        ``(T, A)`` float64.
    """
    if buffer < 0:
        raise PolicyError(f"buffer: must be >= 0, got {buffer!r}")
    if rebuild < 0:
        raise PolicyError(f"buffer_rebuild: must be >= 0, got {rebuild!r}")
    b = jnp.asarray(base, dtype=jnp.float64)
    return np.asarray(_buffer_scan(b, jnp.float64(buffer), jnp.float64(rebuild)))


@jax.jit
def _cap_scan(base: jax.Array, cap: jax.Array) -> jax.Array:
    def step(prev, b):
        m = jnp.where(jnp.isnan(prev), b, jnp.minimum(b, prev * (1.0 + cap)))
        m = jnp.where(jnp.isnan(b), prev, m)
        return m, jnp.where(jnp.isnan(b), jnp.nan, m)

    init = jnp.full(base.shape[1:], jnp.nan, dtype=base.dtype)
    return jax.lax.scan(step, init, base)[1]


def cap_daily_increase(base: np.ndarray, cap: float) -> np.ndarray:
    """Cap the daily relative increase: ``m_t = min(b_t, m_{t-1} * (1 + cap))``, ``m_0 = b_0``.

    Not one of the Art. 28 options; a smoothing tool some CCPs add (it lowers coverage in a fast shock, which
    the backtest exceptions then show). Decreases pass through.

    Returns:
        ``(T, A)`` float64.
    """
    if cap <= 0:
        raise PolicyError(f"cap: must be > 0, got {cap!r}")
    return np.asarray(_cap_scan(jnp.asarray(base, dtype=jnp.float64), jnp.float64(cap)))


def _per_asset(value: float | Mapping[str, float] | Sequence[float], assets: Sequence[str], field: str) -> np.ndarray:
    if isinstance(value, Mapping):
        missing = [a for a in assets if a not in value]
        if missing:
            raise PolicyError(f"{field}: no value for asset {missing[0]!r} (have {sorted(value)})")
        out = np.array([float(value[a]) for a in assets])
    elif np.ndim(value) == 0:
        out = np.full(len(assets), float(value))
    else:
        out = np.asarray(value, dtype=np.float64)
        if out.shape != (len(assets),):
            raise PolicyError(f"{field}: length {out.shape} != number of assets {len(assets)}")
    bad = np.flatnonzero(~np.isfinite(out) | (out < 0))
    if bad.size:
        raise PolicyError(f"{field}[{assets[bad[0]]}]: must be finite and >= 0, got {out[bad[0]]!r}")
    return out


# --------------------------------------------------------------------------------------------------- policies

class MarginPolicy(abc.ABC):
    """A margin policy: ``policy(inputs) -> PolicyOutput`` (scan ranges per day and asset).

    Subclasses implement :meth:`scan_ranges`; ``mm_factor`` (scalar or per-asset mapping) gives MM / IM.
    """

    name: str = "policy"
    mm_factor: float | Mapping[str, float] = 0.8

    @abc.abstractmethod
    def scan_ranges(self, inputs: RiskInputs) -> np.ndarray:
        """``(T, A)`` float64 scan ranges (relative move covered by IM)."""

    def __call__(self, inputs: RiskInputs) -> PolicyOutput:
        s = np.asarray(self.scan_ranges(inputs), dtype=np.float64)
        mm = _per_asset(self.mm_factor, inputs.assets, "mm_factor")
        if np.any(mm > 1):
            raise PolicyError(f"mm_factor: must be <= 1 (MM <= IM), got {mm.tolist()}")
        bad = np.argwhere(s < 0)
        if bad.size:
            t, a = bad[0]
            raise PolicyError(f"{self.name}: negative scan range at day {inputs.dates[t].date()} "
                              f"asset {inputs.assets[a]}: {s[t, a]!r}")
        return PolicyOutput(scan_range=s, mm_factor=mm, base=s, name=self.name)


@dataclasses.dataclass
class StaticPolicy(MarginPolicy):
    """Constant venue parameters.

    Args:
        scan_range: per-asset mapping or scalar relative move (Deribit PM ``price_range``: BTC 0.16, ETH 0.18;
            dYdX v4 tiers' IMF: Large-Cap 0.02, Mid-Cap 0.05, Small-Cap 0.10, Long-Tail 0.20).
        mm_factor: MM / IM (Deribit ``mm_factor`` 0.8; dYdX maintenance fraction 0.6 large-cap).
        name: label.
    """

    scan_range: float | Mapping[str, float] = 0.16
    mm_factor: float | Mapping[str, float] = 0.8
    name: str = "static"

    def scan_ranges(self, inputs: RiskInputs) -> np.ndarray:
        s = _per_asset(self.scan_range, inputs.assets, "scan_range")
        return np.broadcast_to(s, (len(inputs.dates), len(inputs.assets))).copy()


@dataclasses.dataclass
class ReactivePolicy(MarginPolicy):
    """Gaussian scan range from a volatility forecast: ``s = exp(multiplier * z_c * sigma_h) - 1``.

    ``sigma_h`` is the model's forecast std of the h-day log return (EWMA: RiskMetrics 1996 sqrt(h) scaling;
    GARCH(1,1): summed h-step variances), ``z_c`` the standard-normal ``coverage`` quantile (2.326 at 99%).
    The upper tail is used because exp(z sigma) - 1 >= 1 - exp(-z sigma), so it covers both sides.

    Args:
        model: key into ``inputs.forecasts`` ("ewma", "garch", ...).
        coverage: one-tailed confidence (PFMI Principle 6: 0.99).
        multiplier: scales sigma (fat-tail correction), > 0.
        min_range: lower bound on the scan range.
    """

    model: str = "ewma"
    coverage: float = 0.99
    multiplier: float = 1.0
    min_range: float = 0.0
    mm_factor: float | Mapping[str, float] = 0.8
    name: str = "reactive"

    def scan_ranges(self, inputs: RiskInputs) -> np.ndarray:
        if not 0.5 < self.coverage < 1:
            raise PolicyError(f"coverage: must be in (0.5, 1), got {self.coverage!r}")
        if self.multiplier <= 0:
            raise PolicyError(f"multiplier: must be > 0, got {self.multiplier!r}")
        fc = _forecast(inputs, self.model, self.name)
        z = stats.norm.ppf(self.coverage)
        return np.maximum(np.expm1(self.multiplier * z * np.asarray(fc.sigma, dtype=np.float64)), self.min_range)


@dataclasses.dataclass
class PredictivePolicy(MarginPolicy):
    """Scan range = forecast 99% quantile of the h-day move + pre-emptive regime add-on.

    ``s_t = move(q_lo_t, q_hi_t) * multiplier * (1 + addon * max(0, p_high_t - threshold) / (1 - threshold))``

    where ``move`` is :func:`move_from_quantiles` of the model's predictive-distribution quantiles (a
    Gaussian-mixture for the regime models, so the tails already widen with the high-vol weight) and
    ``p_high_t`` the forecast probability of the highest-volatility regime. The add-on raises margin *before*
    the volatility shows up in realised returns, which is what lets the anti-procyclicality tools smooth the
    path (the increase is spread over the days in which p_high builds up).

    Args:
        model: key into ``inputs.forecasts`` (default "regime_net").
        addon: relative add-on at p_high = 1 (0 disables).
        threshold: p_high below which no add-on applies, in [0, 1).
        multiplier: scales the quantile move, > 0.
        min_range: lower bound.
    """

    model: str = "regime_net"
    addon: float = 0.25
    threshold: float = 0.2
    multiplier: float = 1.0
    min_range: float = 0.0
    mm_factor: float | Mapping[str, float] = 0.8
    name: str = "predictive"

    def scan_ranges(self, inputs: RiskInputs) -> np.ndarray:
        if self.addon < 0:
            raise PolicyError(f"addon: must be >= 0, got {self.addon!r}")
        if not 0 <= self.threshold < 1:
            raise PolicyError(f"threshold: must be in [0, 1), got {self.threshold!r}")
        if self.multiplier <= 0:
            raise PolicyError(f"multiplier: must be > 0, got {self.multiplier!r}")
        fc = _forecast(inputs, self.model, self.name)
        s = move_from_quantiles(fc.q_lo, fc.q_hi) * self.multiplier
        if fc.p_high is not None and self.addon > 0:
            p = np.clip(np.asarray(fc.p_high, dtype=np.float64), 0.0, 1.0)
            s = s * (1.0 + self.addon * np.maximum(p - self.threshold, 0.0) / (1.0 - self.threshold))
        return np.maximum(s, self.min_range)


def _forecast(inputs: RiskInputs, model: str, who: str) -> ForecastArrays:
    if model not in inputs.forecasts:
        raise PolicyError(f"{who}: model {model!r} has no forecasts in inputs (have {sorted(inputs.forecasts)})")
    return inputs.forecasts[model]


@dataclasses.dataclass
class AntiProcyclical(MarginPolicy):
    """Anti-procyclicality tools of EMIR RTS 153/2013 Art. 28 applied to any policy's scan ranges.

    Applied in this order (each optional):
      1. stressed weight (Art. 28(1)(b)): ``s = (1 - w) s_base + w s_stress``, s_stress =
         :func:`stressed_move_quantile` (the most stressed 250-day window seen so far), w >= 0.25 to comply;
      2. floor (Art. 28(1)(c)): ``s = max(s, floor)``, floor = :func:`historical_move_quantile` over a
         ``floor_lookback``-day (10-year or all available) window;
      3. buffer (Art. 28(1)(a)): :func:`buffer_release` with ``buffer`` >= 0.25 to comply;
      4. cap on the daily increase: :func:`cap_daily_increase` (applied last, so it may undercut the floor).

    Where the historical quantities are NaN (not enough history) they are ignored on that day.

    Args:
        inner: the wrapped policy.
        buffer, buffer_rebuild, stress_weight, stress_window, floor, floor_lookback, floor_min_periods,
        cap, coverage: see above. ``coverage`` is the level of the historical quantiles.
    """

    inner: MarginPolicy = dataclasses.field(default_factory=StaticPolicy)
    buffer: float = 0.0
    buffer_rebuild: float = 0.02
    stress_weight: float = 0.0
    stress_window: int = 250
    floor: bool = False
    floor_lookback: int = 3650
    floor_min_periods: int = 250
    cap: float | None = None
    coverage: float = 0.99
    name: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.stress_weight <= 1:
            raise PolicyError(f"stress_weight: must be in [0, 1], got {self.stress_weight!r}")
        if self.buffer < 0:
            raise PolicyError(f"buffer: must be >= 0, got {self.buffer!r}")
        if self.cap is not None and self.cap <= 0:
            raise PolicyError(f"cap: must be > 0 or None, got {self.cap!r}")
        if not self.name:
            self.name = self.inner.name + self.suffix()
        self.mm_factor = self.inner.mm_factor

    def suffix(self) -> str:
        parts = []
        if self.stress_weight > 0:
            parts.append(f"sw{self.stress_weight:g}")
        if self.floor:
            parts.append("floor")
        if self.buffer > 0:
            parts.append(f"buf{self.buffer:g}")
        if self.cap is not None:
            parts.append(f"cap{self.cap:g}")
        return ("+" + "+".join(parts)) if parts else ""

    def scan_ranges(self, inputs: RiskInputs) -> np.ndarray:
        return self(inputs).scan_range

    def __call__(self, inputs: RiskInputs) -> PolicyOutput:
        base_out = self.inner(inputs)
        s = base_out.scan_range.copy()
        r = np.asarray(inputs.log_returns, dtype=np.float64)
        if self.stress_weight > 0:
            st = stressed_move_quantile(r, inputs.horizon, self.stress_window, self.coverage, self.floor_lookback)
            s = np.where(np.isnan(st), s, (1 - self.stress_weight) * s + self.stress_weight * st)
        if self.floor:
            fl = historical_move_quantile(r, inputs.horizon, self.floor_lookback, self.coverage,
                                          self.floor_min_periods)
            s = np.where(np.isnan(fl), s, np.maximum(s, fl))
        if self.buffer > 0:
            s = buffer_release(s, self.buffer, self.buffer_rebuild)
        if self.cap is not None:
            s = cap_daily_increase(s, self.cap)
        return PolicyOutput(scan_range=s, mm_factor=base_out.mm_factor, base=base_out.scan_range, name=self.name)


# --------------------------------------------------------------------------------------------------- config

_KINDS = {"static": StaticPolicy, "reactive": ReactivePolicy, "predictive": PredictivePolicy}
_APC_KEYS = ("buffer", "buffer_rebuild", "stress_weight", "stress_window", "floor", "floor_lookback",
             "floor_min_periods", "cap")


def make_policy(cfg: Mapping) -> MarginPolicy:
    """Build a policy from a config mapping (``conf/policy/*.yaml``).

    Keys: ``kind`` (static | reactive | predictive), ``name``, the kind's parameters, and the optional
    anti-procyclicality keys ``buffer``, ``buffer_rebuild``, ``stress_weight``, ``stress_window``, ``floor``,
    ``floor_lookback``, ``floor_min_periods``, ``cap``; when any of them is active the policy is wrapped in
    :class:`AntiProcyclical`.

    Raises:
        PolicyError: unknown kind or parameter.
    """
    cfg = dict(cfg)
    kind = cfg.pop("kind", None)
    if kind not in _KINDS:
        raise PolicyError(f"policy.kind: must be one of {sorted(_KINDS)}, got {kind!r}")
    apc = {k: cfg.pop(k) for k in _APC_KEYS if k in cfg}
    cls = _KINDS[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(cfg) - fields)
    if unknown:
        raise PolicyError(f"policy ({kind}): unknown parameter {unknown[0]!r} (allowed {sorted(fields)})")
    for key in ("scan_range", "mm_factor"):
        if key in cfg and isinstance(cfg[key], Mapping):
            cfg[key] = {str(k): float(v) for k, v in cfg[key].items()}
    policy = cls(**cfg)
    active = (float(apc.get("buffer", 0) or 0) > 0 or float(apc.get("stress_weight", 0) or 0) > 0
              or bool(apc.get("floor", False)) or apc.get("cap") is not None)
    if active:
        kw = {k: v for k, v in apc.items() if v is not None or k == "cap"}
        policy = AntiProcyclical(inner=policy, **kw)
    return policy
