"""Margin policies: map each day's risk inputs to a scan range (IM fraction) per asset.

One interface (:class:`MarginPolicy`): ``policy(inputs) -> PolicyOutput`` where ``inputs`` is a
:class:`RiskInputs` holding ONLY arrays (realised log returns and model forecasts computed elsewhere), so a
policy never imports or runs model-training code. The output ``scan_range[t, a]`` is the relative price move,
from the close of day ``t``, that the initial margin of asset ``a`` must cover over the margin period of risk of
``inputs.horizon`` days. For a linear position the IM fraction of notional equals the scan range; options books
are margined by feeding the same scan range to a scenario set (SPAN-style grid, see
:func:`margin.simulation.liquidation.option_scenario_pnl`) so both go through one path. MM = ``mm_factor`` x IM.

Policies
- :class:`StaticPolicy`: venue constants (Deribit PM ``price_range`` 0.16 BTC / 0.18 ETH with MM = 0.8 x IM; dYdX v4
  liquidity-tier IMF with MM = maintenance_fraction x IMF). Source: Deribit "Portfolio Margin" support article;
  dydxprotocol/v4-chain ``liquidity_tier.go`` (see REFERENCE.md section 1).
- :class:`ReactivePolicy`: Gaussian 99% move from a volatility forecast (EWMA, RiskMetrics 1996; GARCH(1,1)),
  ``s = exp(multiplier * z * sigma_h) - 1``.
- :class:`PredictivePolicy`: the forecast 99% / 1% quantiles of the h-day log return (e.g. the regime-mixture
  predictive distribution) plus a pre-emptive add-on proportional to the forecast probability of the
  high-volatility regime.
- :class:`SmoothPredictivePolicy`: per-side, conformally calibrated forecast moves, turned into a margin path
  with a bounded daily rise and a slow release that starts rising early when a longer-horizon forecast sees
  stress coming (design and sources below).
- :class:`AntiProcyclical`: wrapper usable on any policy implementing the EMIR RTS 153/2013 Art. 28 tools
  (Commission Delegated Regulation (EU) No 153/2013, Art. 28(1)(a)-(c)): a buffer (>= 25%) released when
  requirements rise, a weight (>= 25%) on stressed observations, a floor from a long (10-year) lookback, and an
  optional cap on the daily increase (a common CCP practice, not an Art. 28 option).

Per-side output. A policy may set ``scan_down`` (the relative DOWN move its IM covers: longs lose on it) and
``scan_up`` (the UP move: shorts); ``scan_range`` is then their elementwise maximum, so a consumer that knows only
one symmetric move stays conservative. Static and reactive policies leave them unset (symmetric).

Smooth predictive policy: the trade-off (:class:`SmoothPredictivePolicy`)
------------------------------------------------------------------------
Goal: the same 99% one-sided coverage per position direction as a reactive policy (EMIR RTS 153/2013 Art. 24,
PFMI Principle 6), at no higher average margin, with gentler margin calls. Murphy, Vasios & Vause (Bank of
England, 2014 FSR article and SWP 597, 2016) measure procyclicality by the largest n-day increase and the
peak-to-trough ratio of margin; EMIR RTS 153/2013 Art. 28 asks CCPs to limit "procyclicality ... to the extent
that the soundness and financial security of the CCP is not negatively affected"; CCP practice is to raise margin
gradually and announce increases in advance (BCBS-CPMI-IOSCO, "Review of margining practices", 2022: sudden large
calls, not high levels, strained members in March 2020). So the design is an explicit constrained path:

1. **Requirement per side** ``R_t``: the model's forecast 1% (99%) quantile of the h-day log return, rescaled by
   a rolling conformal factor so each tail has 99% coverage on the recent past (:mod:`margin.simulation.calibration`), turned
   into relative moves ``R_down = 1 - exp(q_lo*)``, ``R_up = exp(q_hi*) - 1``. Coverage is a floor:
   ``m_t >= coverage_floor * R_t`` (1.0 = hard).
2. **Foresight** ``A_t``: the same calibrated quantile from a forecast of the k-day return (k > h), scaled to h
   days by sqrt(h / k) (square-root-of-time at the forecast's average daily variance over the next k days). When
   the model expects volatility to rise within k days, ``A_t > R_t`` before ``R_t`` itself moves; ``lookahead_weight``
   w scales it (0 = no foresight). Optionally a regime add-on ``R_t (1 + addon (p_high - threshold)+ / (1 -
   threshold))``. Target ``G_t = max(R_t, w A_t, add-on, min_range)``.
3. **Speed limits**: the path follows the target but rises by at most ``max_rise`` (relative) a day and falls by at
   most ``max_release`` a day (a half-life of ``log 2 / -log(1 - max_release)`` days):

       m_t = max(coverage_floor R_t, min_range, m_{t-1} (1 - max_release), min(G_t, m_{t-1} (1 + max_rise)))

   Where the floor binds, the rise limit gives way to coverage. Because foresight starts the rise days earlier, a
   step limit that would otherwise either lose coverage (soft floor) or be overridden by the floor (hard floor,
   i.e. a jump) becomes affordable; the slow release keeps margin up through the aftershocks of a stress episode
   instead of cutting and re-raising it (the see-saw that inflates peak-to-trough).

4. **Safety valves** (issue 10, after a 2021-2023 test in which the speed-limited path lost on bad debt in every
   stress window: with ``max_rise`` 2.6%/day and ``coverage_floor`` 0.74, margin lagged after the first crash day
   of an episode while a reactive GARCH margin jumped). Three knobs, chosen on validation data only:

   a. *Hard coverage floor* (``coverage_floor = 1``): the rise limit then acts only on the margin ABOVE the
      calibrated requirement (the foresight and regime add-on, the slow release), never on the requirement
      itself. This is the reading of EMIR RTS 153/2013 Art. 28 (anti-procyclicality "to the extent that the
      soundness and financial security of the CCP is not negatively affected"): smoothing may not buy less than
      the 99% requirement of Art. 24.
   b. *Ad-hoc call after a breach* (``breach_reset``, ``breach_trigger``, ``breach_move``): when the realised
      h-day move against a side ending today exceeds ``breach_trigger`` times the margin set for it, the path
      goes at once to ``max(G_t, breach_move * move)`` instead of stepping up at ``max_rise`` a day. This is what
      CCPs do between scheduled margin runs: PFMI Principle 6 (key consideration 4) asks for the authority and
      capacity to make intraday margin calls, and CME Clearing and LCH call ad-hoc / intraday margin when a
      member's losses exceed a share of its margin. The gradual, pre-announced path stays in force in ordinary
      times (Murphy, Vasios & Vause 2014: the largest n-day increase is measured over the cycle); the call
      applies only once a breach shows the model was wrong, where a gradual path would leave the exposure
      uncovered for the days the rise limit needs to catch up.
   c. *Per-side calibration levels* (``calib_level_down`` for longs, ``calib_level_up`` for shorts): crypto
      crashes are down moves, so the two tails need not share one level.

   Recursion with the call (per side; ``move_t`` the realised h-day move against the side ending at t)::

       m_t = max(F_t, m_{t-1} (1 - max_release), min(G_t, m_{t-1} (1 + max_rise)))
       if move_t > breach_trigger * m_{t-h}:  m_t = max(m_t, G_t, breach_move * move_t)

Costs of the trade-off, measured by ``experiments.tune_policy`` on a validation period: the slow release and the
early rise hold more margin than the requirement on some days; per-side calibration (no symmetric max) and a
calibration level tuned on validation pay for it. The ad-hoc call adds margin only after a breach, so it costs
little on average but raises the largest 1-day (and possibly 30-day) increase on crash days: the validation
search weighs it against the bad debt it saves.

All arrays are float64 numpy, shape ``(T, A)`` (days x assets) unless stated. Stateful recursions (buffer, cap,
speed-limited path) run as ``jax.lax.scan`` vectorised over assets; plain-loop references live in the tests.
"""
from __future__ import annotations

import abc
import dataclasses
import warnings
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
    "SmoothPredictivePolicy",
    "StaticPolicy",
    "buffer_release",
    "load_forecast_arrays",
    "save_forecast_arrays",
    "cap_daily_increase",
    "historical_move_quantile",
    "make_policy",
    "missing_asset_values",
    "move_from_quantiles",
    "speed_limited_path",
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


_FORECAST_FIELDS = ("sigma", "q_lo", "q_hi", "p_high")


def save_forecast_arrays(path, forecasts: Mapping[str, ForecastArrays]) -> None:
    """Save ``{model: ForecastArrays}`` to one ``.npz`` (arrays ``"<model>.<field>"``; ``p_high`` only when set),
    written to a temporary file, then renamed (a reader never sees half a file)."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{n}.{f}": getattr(fc, f) for n, fc in forecasts.items()
              for f in _FORECAST_FIELDS if getattr(fc, f) is not None}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_forecast_arrays(path) -> dict[str, ForecastArrays]:
    """Inverse of :func:`save_forecast_arrays`."""
    z = np.load(path)
    names = sorted({k.split(".")[0] for k in z.files})
    return {n: ForecastArrays(z[f"{n}.sigma"], z[f"{n}.q_lo"], z[f"{n}.q_hi"],
                              z[f"{n}.p_high"] if f"{n}.p_high" in z.files else None) for n in names}


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
        scan_down: ``(T, A)`` float64 or None, relative DOWN move covered by the IM of a LONG position (a long of
            notional N needs IM >= N x scan_down). None: symmetric, the consumer uses ``scan_range``.
        scan_up: ``(T, A)`` float64 or None, relative UP move covered by the IM of a SHORT position.
            When both are set, ``scan_range == max(scan_down, scan_up)`` elementwise (checked).

    Raises:
        PolicyError: only one of scan_down / scan_up set, a shape differs, or scan_range is not their maximum.
    """

    scan_range: np.ndarray
    mm_factor: np.ndarray
    base: np.ndarray
    name: str
    scan_down: np.ndarray | None = None
    scan_up: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.scan_down is None) != (self.scan_up is None):
            raise PolicyError(f"{self.name}: scan_down and scan_up must be set together")
        if self.scan_down is not None:
            s = np.asarray(self.scan_range)
            for field in ("scan_down", "scan_up"):
                if np.shape(getattr(self, field)) != s.shape:
                    raise PolicyError(f"{self.name}: {field} shape {np.shape(getattr(self, field))} != "
                                      f"scan_range shape {s.shape}")
            mx = np.fmax(self.scan_down, self.scan_up)
            ok = np.isclose(mx, s, rtol=1e-12, atol=0) | (np.isnan(mx) & np.isnan(s))
            if not ok.all():
                t, a = np.argwhere(~ok)[0]
                raise PolicyError(f"{self.name}: scan_range[{t}, {a}] = {s[t, a]!r} != max(scan_down, scan_up) "
                                  f"= {mx[t, a]!r}")

    def side(self, side: str) -> np.ndarray:
        """``(T, A)`` relative move covered for ``side`` ("long" -> scan_down, "short" -> scan_up)."""
        if side not in ("long", "short"):
            raise PolicyError(f"side: must be 'long' or 'short', got {side!r}")
        arr = self.scan_down if side == "long" else self.scan_up
        return self.scan_range if arr is None else arr


# --------------------------------------------------------------------------------------------------- helpers

def move_from_quantiles(q_lo: np.ndarray, q_hi: np.ndarray) -> np.ndarray:
    """Symmetric scan range (relative price move) covering both tails of an h-day log-return forecast.

    ``s = max(exp(q_hi) - 1, 1 - exp(q_lo))``: a short loses ``exp(r) - 1`` per unit notional, a long
    ``1 - exp(r)``; one scan range must cover the worse of the two one-tailed 99% losses (PFMI Principle 6).
    """
    q_lo = np.asarray(q_lo, dtype=np.float64)
    q_hi = np.asarray(q_hi, dtype=np.float64)
    return np.maximum(np.expm1(q_hi), -np.expm1(q_lo))


def _h_day_log_returns(log_returns: np.ndarray, horizon: int) -> np.ndarray:
    """(T, A) float64 log return of the h-day window ENDING at row t, known at t's close (NaN until h rows exist)."""
    r = pd.DataFrame(np.asarray(log_returns, dtype=np.float64))
    return r.rolling(horizon, min_periods=horizon).sum().to_numpy()


def _h_day_moves(log_returns: np.ndarray, horizon: int) -> np.ndarray:
    """(T, A) worst-side relative move of the h-day window ENDING at row t (NaN until h rows exist)."""
    rh = _h_day_log_returns(log_returns, horizon)
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


def _per_asset(value: float | Mapping[str, float] | Sequence[float], assets: Sequence[str], field: str,
               default: float | None = None) -> np.ndarray:
    if isinstance(value, Mapping):
        missing = [a for a in assets if a not in value]
        if missing and default is None:
            raise PolicyError(f"{field}: no value for asset {missing[0]!r} (have {sorted(value)}; set "
                              f"policy.{field}.{missing[0]} or a default tier)")
        out = np.array([float(value[a]) if a in value else float(default) for a in assets])
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

    def scan_sides(self, inputs: RiskInputs) -> tuple[np.ndarray, np.ndarray] | None:
        """``(scan_down, scan_up)``, each ``(T, A)`` float64, or None for a symmetric policy (the default)."""
        return None

    def mm_factors(self, assets: Sequence[str]) -> np.ndarray:
        """``(A,)`` float64 MM / IM per asset."""
        mm = _per_asset(self.mm_factor, assets, "mm_factor", getattr(self, "default_mm_factor", None))
        if np.any(mm > 1):
            raise PolicyError(f"mm_factor: must be <= 1 (MM <= IM), got {mm.tolist()}")
        return mm

    def __call__(self, inputs: RiskInputs) -> PolicyOutput:
        sides = self.scan_sides(inputs)
        if sides is None:
            s = np.asarray(self.scan_ranges(inputs), dtype=np.float64)
            down = up = None
        else:
            down, up = (np.asarray(x, dtype=np.float64) for x in sides)
            s = np.fmax(down, up)
        mm = self.mm_factors(inputs.assets)
        for label, arr in (("scan range", s), ("scan_down", down), ("scan_up", up)):
            bad = np.argwhere(arr < 0) if arr is not None else np.empty((0, 2))
            if bad.size:
                t, a = bad[0]
                raise PolicyError(f"{self.name}: negative {label} at day {inputs.dates[t].date()} "
                                  f"asset {inputs.assets[a]}: {arr[t, a]!r}")
        return PolicyOutput(scan_range=s, mm_factor=mm, base=s, name=self.name, scan_down=down, scan_up=up)


@dataclasses.dataclass
class StaticPolicy(MarginPolicy):
    """Constant venue parameters.

    Args:
        scan_range: per-asset mapping or scalar relative move (Deribit PM ``price_range``: BTC 0.16, ETH 0.18;
            dYdX v4 tiers' IMF: Large-Cap 0.02, Mid-Cap 0.05, Small-Cap 0.10, Long-Tail 0.20).
        mm_factor: MM / IM (Deribit ``mm_factor`` 0.8; dYdX maintenance fraction 0.6 large-cap, 0.5 small-cap
            and long-tail), scalar or per-asset mapping.
        default_scan_range: the DEFAULT tier for an asset missing from a ``scan_range`` mapping (e.g. SOL);
            None: such an asset raises :class:`PolicyError` (see :func:`missing_asset_values`).
        default_mm_factor: the same for ``mm_factor`` mappings.
        name: label.

    Raises:
        PolicyError: ``scan_range: no value for asset 'SOL' ...`` when an asset has neither a value nor a default.
    """

    scan_range: float | Mapping[str, float] = 0.16
    mm_factor: float | Mapping[str, float] = 0.8
    default_scan_range: float | None = None
    default_mm_factor: float | None = None
    name: str = "static"

    def scan_ranges(self, inputs: RiskInputs) -> np.ndarray:
        s = _per_asset(self.scan_range, inputs.assets, "scan_range", self.default_scan_range)
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

    def scan_sides(self, inputs: RiskInputs) -> tuple[np.ndarray, np.ndarray]:
        """Down move ``1 - exp(q_lo)`` (longs) and up move ``exp(q_hi) - 1`` (shorts), each with the add-on."""
        if self.addon < 0:
            raise PolicyError(f"addon: must be >= 0, got {self.addon!r}")
        if not 0 <= self.threshold < 1:
            raise PolicyError(f"threshold: must be in [0, 1), got {self.threshold!r}")
        if self.multiplier <= 0:
            raise PolicyError(f"multiplier: must be > 0, got {self.multiplier!r}")
        fc = _forecast(inputs, self.model, self.name)
        factor = self.multiplier * _regime_factor(fc, self.addon, self.threshold)
        down = -np.expm1(np.asarray(fc.q_lo, dtype=np.float64)) * factor
        up = np.expm1(np.asarray(fc.q_hi, dtype=np.float64)) * factor
        return np.maximum(down, self.min_range), np.maximum(up, self.min_range)

    def scan_ranges(self, inputs: RiskInputs) -> np.ndarray:
        down, up = self.scan_sides(inputs)
        return np.fmax(down, up)


def _regime_factor(fc: "ForecastArrays", addon: float, threshold: float) -> np.ndarray | float:
    """``1 + addon * (p_high - threshold)+ / (1 - threshold)`` (1.0 without regime probabilities or add-on)."""
    if fc.p_high is None or addon <= 0:
        return 1.0
    p = np.clip(np.asarray(fc.p_high, dtype=np.float64), 0.0, 1.0)
    return 1.0 + addon * np.maximum(p - threshold, 0.0) / (1.0 - threshold)


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
        if base_out.scan_down is None:
            s = self._tools(base_out.scan_range.copy(), inputs)
            down = up = None
        else:  # the tools act on each side's requirement; scan_range stays their maximum
            down = self._tools(base_out.scan_down.copy(), inputs)
            up = self._tools(base_out.scan_up.copy(), inputs)
            s = np.fmax(down, up)
        return PolicyOutput(scan_range=s, mm_factor=base_out.mm_factor, base=base_out.scan_range, name=self.name,
                            scan_down=down, scan_up=up)

    def _tools(self, s: np.ndarray, inputs: RiskInputs) -> np.ndarray:
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
        return s


# --------------------------------------------------------------------------------------------------- smooth

@jax.jit
def _speed_scan(floor: jax.Array, target: jax.Array, moves: jax.Array, reset: jax.Array, hist0: jax.Array,
                      rise: jax.Array, release: jax.Array, trigger: jax.Array) -> jax.Array:
    # hist0: (h, ...) NaN history of the last h outputs; hist[0] is the margin set h rows earlier. NaN moves never
    # breach, so all-NaN moves give the plain speed-limited path
    def step(carry, x):
        prev, hist = carry
        fl, tg, mv, rs = x
        m = jnp.maximum(jnp.maximum(fl, prev * (1.0 - release)), jnp.minimum(tg, prev * (1.0 + rise)))
        m = jnp.where(jnp.isnan(prev), jnp.maximum(tg, fl), m)
        breach = mv > trigger * hist[0]                 # False where either is NaN
        m = jnp.where(breach, jnp.fmax(m, rs), m)
        skip = jnp.isnan(tg) | jnp.isnan(fl)
        m = jnp.where(skip, prev, m)
        out = jnp.where(skip, jnp.nan, m)
        hist = jnp.concatenate([hist[1:], out[None]], axis=0)
        return (m, hist), out

    init = jnp.full(target.shape[1:], jnp.nan, dtype=target.dtype)
    return jax.lax.scan(step, (init, hist0), (floor, target, moves, reset))[1]


def speed_limited_path(target: np.ndarray, floor: np.ndarray, max_rise: float, max_release: float, *,
                       moves: np.ndarray | None = None, reset: np.ndarray | None = None, trigger: float = 1.0,
                       horizon: int = 1) -> np.ndarray:
    """Margin path that follows a target with bounded daily rise and release, never below a floor; optionally an
    ad-hoc call (a jump past the rise limit) after a breach.

    Recursion per column (plain-loop references are in ``tests/backtest/test_policies*.py``)::

        m_0 = max(G_0, F_0)
        m_t = max(F_t, m_{t-1} (1 - max_release), min(G_t, m_{t-1} (1 + max_rise)))
        if moves is given and moves_t > trigger * m_{t-h}:          (a breach: the h-day move ending at t
            m_t = max(m_t, J_t)                                       used up `trigger` of the margin set for it)

    ``F`` (the coverage floor) wins over the rise limit; the release limit only ever adds margin; on a breach day
    the reset level ``J`` (NaN: none) wins over the rise limit too, as a CCP's intraday / ad-hoc margin call after a
    backtest breach does (design: the module docstring). Rows where ``G`` or ``F`` is NaN are skipped (NaN out,
    state carried, the skipped row counts as one of the h rows of the breach test with a NaN margin: no breach).
    Without ``moves`` the path is exactly the plain speed-limited path. Sources: module docstring (gradual,
    pre-announced increases; Murphy, Vasios & Vause 2014; EMIR RTS 153/2013 Art. 28; ad-hoc calls: PFMI Principle 6
    key consideration 4, the authority to make intraday margin calls, as CME Clearing and LCH do after a breach).

    Args:
        target: ``(T, ...)`` float64 target ``G`` (relative moves).
        floor: same shape, floor ``F`` (<= target where both are set, but not required).
        max_rise: maximum relative daily increase, > 0 (0.05 = +5%/day).
        max_release: maximum relative daily decrease in [0, 1) (0.02 = -2%/day, half-life ~34 days).
        moves: same shape, the realised relative move AGAINST the side over the h days ending at row t (>= 0 is a
            loss for that side; NaN: unknown), or None (no breach test).
        reset: same shape, ``J`` the level the path jumps to at once on a breach day (needed with ``moves``).
        trigger: share of the margin a move must exceed to count as a breach, > 0 (1.0 = a backtest exception).
        horizon: h, rows between the margin and the end of the move it covers (>= 1).

    Returns:
        float64 array of the same shape.

    Raises:
        PolicyError: parameters out of range or shapes that differ.
    """
    if not max_rise > 0:
        raise PolicyError(f"max_rise: must be > 0, got {max_rise!r}")
    if not 0 <= max_release < 1:
        raise PolicyError(f"max_release: must be in [0, 1), got {max_release!r}")
    g = np.asarray(target, dtype=np.float64)
    f = np.asarray(floor, dtype=np.float64)
    if g.shape != f.shape:
        raise PolicyError(f"floor: shape {f.shape} != target shape {g.shape}")
    if moves is None:  # no breach test: NaN moves never trigger the call
        moves, reset, trigger, horizon = np.full(g.shape, np.nan), np.full(g.shape, np.nan), 1.0, 1
    if not trigger > 0:
        raise PolicyError(f"breach_trigger: must be > 0, got {trigger!r}")
    if int(horizon) < 1:
        raise PolicyError(f"horizon: must be >= 1, got {horizon!r}")
    mv = np.asarray(moves, dtype=np.float64)
    if reset is None:
        raise PolicyError("reset: required with moves (the level of the ad-hoc call)")
    j = np.asarray(reset, dtype=np.float64)
    for name, x in (("moves", mv), ("reset", j)):
        if x.shape != g.shape:
            raise PolicyError(f"{name}: shape {x.shape} != target shape {g.shape}")
    hist0 = jnp.full((int(horizon),) + g.shape[1:], jnp.nan, dtype=jnp.float64)
    return np.asarray(_speed_scan(jnp.asarray(f), jnp.asarray(g), jnp.asarray(mv), jnp.asarray(j), hist0,
                                        jnp.float64(max_rise), jnp.float64(max_release), jnp.float64(trigger)))


@dataclasses.dataclass
class SmoothPredictivePolicy(MarginPolicy):
    """Per-side calibrated forecast requirement, followed by a speed-limited path that rises early.

    See the module docstring ("Smooth predictive policy: the trade-off") for the design and its sources.

    Per side (down: longs, from ``q_lo``; up: shorts, from ``q_hi``):

    * ``R_t`` = move of the conformally calibrated h-day quantile of ``model``
      (:func:`margin.simulation.calibration.calibrate_quantile`, level ``calib_level``, rolling ``calib_window``);
    * ``A_t`` = move of the calibrated k-day quantile of ``lookahead_model`` (k = ``lookahead_horizon``) times
      ``sqrt(h / k)`` in log space; ``regime`` = ``R_t (1 + addon (p_high - threshold)+ / (1 - threshold))``;
    * target ``G_t = max(R_t, lookahead_weight A_t, regime, min_range)``, floor ``F_t = max(coverage_floor R_t,
      min_range)``, path :func:`speed_limited_path` (``max_rise``, ``max_release``);
    * with ``breach_reset``: an ad-hoc call. When the realised h-day move against the side ending at t exceeds
      ``breach_trigger`` times the margin set for it (``m_{t-h}``), the path goes at once to
      ``J_t = max(G_t, breach_move * move_t)`` (the rise limit does not apply that day).

    Args:
        model: key into ``inputs.forecasts`` of the h-day forecast (q_lo / q_hi of the h-day log return).
        lookahead_model: key of a forecast of the k-day log return (None: no foresight).
        lookahead_horizon: k in days (> inputs.horizon when ``lookahead_model`` is set).
        lookahead_weight: w >= 0.
        calib_level: one-tailed level of the conformal recalibration in (0.5, 1).
        calib_level_down, calib_level_up: per-side levels (None: ``calib_level``); crypto crashes are down moves,
            so the longs' side may need a higher level than the shorts'.
        calib_window: rolling window of scored days (None: expanding).
        calib_min_periods: scores needed before calibrating (before: scale 1).
        max_rise: relative daily rise limit (> 0).
        max_release: relative daily release limit in [0, 1).
        coverage_floor: share of ``R_t`` the path may never go below, in [0, 1] (1 = coverage is hard: the
            speed limit then acts only on the margin above the requirement).
        addon, threshold: regime add-on (0 disables).
        min_range: lower bound of each side's move.
        breach_reset: ad-hoc call after a breach (False: the plain speed-limited path, the previous behaviour).
        breach_trigger: share of the margin a realised move must exceed to trigger the call, in (0, 1]
            (1 = a backtest exception; < 1 = a call when the move has used up that share of the margin).
        breach_move: the call goes to at least this multiple of the triggering move, >= 0 (0: to ``G_t``).
        mm_factor: MM / IM.
    """

    model: str = "regime_net"
    lookahead_model: str | None = None
    lookahead_horizon: int = 5
    lookahead_weight: float = 1.0
    calib_level: float = 0.99
    calib_level_down: float | None = None
    calib_level_up: float | None = None
    calib_window: int | None = 500
    calib_min_periods: int = 250
    max_rise: float = 0.05
    max_release: float = 0.02
    coverage_floor: float = 1.0
    addon: float = 0.0
    threshold: float = 0.2
    min_range: float = 0.0
    breach_reset: bool = False
    breach_trigger: float = 1.0
    breach_move: float = 0.0
    mm_factor: float | Mapping[str, float] = 0.8
    name: str = "predictive_smooth"

    def _check(self, inputs: RiskInputs) -> None:
        if self.lookahead_weight < 0:
            raise PolicyError(f"lookahead_weight: must be >= 0, got {self.lookahead_weight!r}")
        if int(self.lookahead_horizon) < 1:
            raise PolicyError(f"lookahead_horizon: must be >= 1, got {self.lookahead_horizon!r}")
        if not 0 <= self.coverage_floor <= 1:
            raise PolicyError(f"coverage_floor: must be in [0, 1], got {self.coverage_floor!r}")
        if self.addon < 0:
            raise PolicyError(f"addon: must be >= 0, got {self.addon!r}")
        if not 0 <= self.threshold < 1:
            raise PolicyError(f"threshold: must be in [0, 1), got {self.threshold!r}")
        if self.min_range < 0:
            raise PolicyError(f"min_range: must be >= 0, got {self.min_range!r}")
        for key in ("calib_level", "calib_level_down", "calib_level_up"):
            v = getattr(self, key)
            if v is not None and not 0.5 < v < 1:
                raise PolicyError(f"{key}: must be in (0.5, 1), got {v!r}")
        if not 0 < self.breach_trigger <= 1:
            raise PolicyError(f"breach_trigger: must be in (0, 1], got {self.breach_trigger!r}")
        if self.breach_move < 0:
            raise PolicyError(f"breach_move: must be >= 0, got {self.breach_move!r}")

    def _level(self, side: str) -> float:
        v = getattr(self, f"calib_level_{side}")
        return float(self.calib_level if v is None else v)

    def requirements(self, inputs: RiskInputs) -> dict[str, np.ndarray]:
        """The inputs of the path: ``{"R_down", "R_up", "A_down", "A_up", "G_down", "G_up"}``, each ``(T, A)``."""
        from margin.simulation.calibration import CalibrationError, calibrate_quantile

        self._check(inputs)
        r = np.asarray(inputs.log_returns, dtype=np.float64)
        kw = dict(window=None if self.calib_window is None else int(self.calib_window),
                  min_periods=int(self.calib_min_periods))
        lo, hi = dict(kw, level=self._level("down")), dict(kw, level=self._level("up"))
        fc = _forecast(inputs, self.model, self.name)
        try:
            q_lo = calibrate_quantile(r, fc.q_lo, inputs.horizon, **lo)
            q_hi = calibrate_quantile(r, fc.q_hi, inputs.horizon, **hi)
            out = {"R_down": -np.expm1(q_lo), "R_up": np.expm1(q_hi)}
            foresight = self.lookahead_model is not None and self.lookahead_weight > 0
            if foresight and int(self.lookahead_horizon) <= int(inputs.horizon):
                # the h-day requirement already looks k days ahead: a k-day forecast adds nothing
                warnings.warn(f"{self.name}: lookahead_horizon {self.lookahead_horizon} <= horizon {inputs.horizon}; "
                              "running without foresight", stacklevel=2)
                foresight = False
            if foresight:
                fk = _forecast(inputs, self.lookahead_model, self.name)
                k = int(self.lookahead_horizon)
                scale = np.sqrt(inputs.horizon / k)
                out["A_down"] = -np.expm1(scale * calibrate_quantile(r, fk.q_lo, k, **lo)) * self.lookahead_weight
                out["A_up"] = np.expm1(scale * calibrate_quantile(r, fk.q_hi, k, **hi)) * self.lookahead_weight
            else:
                out["A_down"] = out["A_up"] = np.zeros_like(q_lo)
        except CalibrationError as e:
            raise PolicyError(f"{self.name}: {e}") from e
        reg = _regime_factor(fc, self.addon, self.threshold)
        for side in ("down", "up"):
            R = out[f"R_{side}"]
            out[f"G_{side}"] = np.maximum(np.maximum(np.fmax(R, out[f"A_{side}"]), R * reg), self.min_range)
        return out

    def scan_sides(self, inputs: RiskInputs) -> tuple[np.ndarray, np.ndarray]:
        req = self.requirements(inputs)
        h = int(inputs.horizon)
        if self.breach_reset:
            rh = _h_day_log_returns(inputs.log_returns, h)
            moves = {"down": -np.expm1(rh), "up": np.expm1(rh)}
        sides = []
        for side in ("down", "up"):
            floor = np.maximum(self.coverage_floor * req[f"R_{side}"], self.min_range)
            if not self.breach_reset:
                sides.append(speed_limited_path(req[f"G_{side}"], floor, self.max_rise, self.max_release))
                continue
            mv = moves[side]
            reset = np.fmax(req[f"G_{side}"], self.breach_move * mv)
            sides.append(speed_limited_path(req[f"G_{side}"], floor, self.max_rise, self.max_release, moves=mv,
                                            reset=reset, trigger=self.breach_trigger, horizon=h))
        return sides[0], sides[1]

    def scan_ranges(self, inputs: RiskInputs) -> np.ndarray:
        down, up = self.scan_sides(inputs)
        return np.fmax(down, up)


def missing_asset_values(policy: MarginPolicy, assets: Sequence[str]) -> list[str]:
    """Per-asset constants a policy lacks for ``assets`` (empty: the policy can run).

    Returns one message per missing value, e.g. ``"static_deribit: scan_range: no value for asset 'SOL'"``, so a
    caller can leave the policy out with ONE warning line instead of failing the run (issue 9).
    """
    inner = getattr(policy, "inner", policy)
    out = []
    for field, default in (("scan_range", getattr(inner, "default_scan_range", None)),
                           ("mm_factor", getattr(inner, "default_mm_factor", None))):
        value = getattr(inner, field, None)
        if isinstance(value, Mapping) and default is None:
            out += [f"{policy.name}: {field}: no value for asset {a!r}" for a in assets if a not in value]
    return out


# --------------------------------------------------------------------------------------------------- config

_KINDS = {"static": StaticPolicy, "reactive": ReactivePolicy, "predictive": PredictivePolicy,
          "predictive_smooth": SmoothPredictivePolicy}
_APC_KEYS = ("buffer", "buffer_rebuild", "stress_weight", "stress_window", "floor", "floor_lookback",
             "floor_min_periods", "cap")


def make_policy(cfg: Mapping) -> MarginPolicy:
    """Build a policy from a config mapping (``conf/policy/*.yaml``).

    Keys: ``kind`` (static | reactive | predictive | predictive_smooth), ``name``, the kind's parameters, and the
    optional anti-procyclicality keys ``buffer``, ``buffer_rebuild``, ``stress_weight``, ``stress_window``,
    ``floor``, ``floor_lookback``, ``floor_min_periods``, ``cap``; when any of them is active the policy is wrapped in
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
