"""Per-side conformal recalibration of forecast tail quantiles (split / rolling conformal prediction).

A model's forecast 1% (99%) quantile ``q_t`` of the h-day log return is rescaled by a factor ``c_t`` so that
the realised h-day return falls below ``c_t * q_lo_t`` (above ``c_t * q_hi_t``) on a fraction ``1 - level`` of
days, *per side*: longs are margined on the lower tail, shorts on the upper tail (EMIR RTS 153/2013 Art. 24:
99% one-sided per position direction; PFMI Principle 6).

Method (a conformal quantile recalibration with a multiplicative non-conformity score):

* score of forecast origin ``u``: ``S_u = R_u / q_u`` with ``R_u = r_{u+1} + ... + r_{u+h}`` the realised h-day
  log return and ``q_u`` the forecast quantile of that tail (negative for the lower, positive for the upper
  tail). An exception of the rescaled quantile ``c q_u`` happens iff ``S_u > c``.
* ``c_t`` = the conformal ``level`` quantile of the scores known at the close of day ``t`` (origins
  ``u <= t - h``, because ``R_u`` is observed only at ``u + h``) within a rolling window of ``window`` origins
  (or all of them): the ``ceil((n + 1) * level)``-th smallest of ``n`` scores, which makes the next exception
  probability at most ``1 - level`` under exchangeability (Vovk, Gammerman & Shafer 2005; Papadopoulos et al.
  2002, split/inductive conformal; Romano, Patterson & Candes 2019, conformalized quantile regression; a
  rolling window for drifting series as in Gibbs & Candes 2021, adaptive conformal inference).
* The scale is a ratio, not an additive shift, so a well-shaped forecast whose tails are too narrow (or too
  wide) by a constant factor is corrected exactly, and the calibrated quantile still moves with the forecast.

Nothing here looks ahead: ``c_t`` uses realised returns up to day ``t`` only. The scores of a window that
overlaps a model's training period are in-sample for that model; a window of ``W`` days after ``train_end``
is fully out-of-sample.

Arrays are float64 numpy ``(T, A)`` (days x assets), log-return units.
"""
from __future__ import annotations

import bisect
import math

import numpy as np
import pandas as pd

__all__ = ["CalibrationError", "calibrate_quantile", "conformal_scale", "exceptions_per_side", "forward_returns"]


class CalibrationError(ValueError):
    """Bad calibration parameter or input (names the field and value)."""


def forward_returns(log_returns: np.ndarray, horizon: int) -> np.ndarray:
    """Realised h-day log return from the close of day ``t``: ``R_t = r_{t+1} + ... + r_{t+h}``.

    Args:
        log_returns: ``(T, A)`` float64 daily log returns (row t = log(close_t / close_{t-1})).
        horizon: h >= 1 days.

    Returns:
        ``(T, A)`` float64, NaN in the last ``h`` rows (and where any return in the window is NaN).
    """
    if int(horizon) < 1:
        raise CalibrationError(f"horizon: must be >= 1, got {horizon!r}")
    r = pd.DataFrame(np.asarray(log_returns, dtype=np.float64))
    return r.rolling(int(horizon), min_periods=int(horizon)).sum().shift(-int(horizon)).to_numpy()


def conformal_scale(log_returns: np.ndarray, q: np.ndarray, horizon: int, level: float = 0.99,
                    window: int | None = 500, min_periods: int = 250, fallback: float = 1.0) -> np.ndarray:
    """Rolling conformal scale ``c_t`` of one tail's forecast quantile (see the module docstring).

    Args:
        log_returns: ``(T, A)`` float64 daily log returns.
        q: ``(T, A)`` float64 forecast quantile of the h-day log return at origin ``t`` for ONE tail (lower tail:
            negative values, e.g. the 1% quantile; upper tail: positive, e.g. the 99% quantile). Entries with
            ``|q| < 1e-12`` or NaN give no score.
        horizon: h in days (the forecast's horizon).
        level: one-tailed coverage in (0.5, 1), e.g. 0.99.
        window: number of most recent scored origins used (None: all known so far, expanding).
        min_periods: fewer known scores than this gives ``fallback``.
        fallback: scale used before ``min_periods`` scores exist (1.0 = the model's own quantile).

    Returns:
        ``(T, A)`` float64 scale >= 0; the calibrated quantile is ``c_t * q_t``.

    Raises:
        CalibrationError: a parameter out of range or shapes that differ.
    """
    if not 0.5 < float(level) < 1:
        raise CalibrationError(f"level: must be in (0.5, 1), got {level!r}")
    if window is not None and int(window) < 2:
        raise CalibrationError(f"window: must be >= 2 or None, got {window!r}")
    if int(min_periods) < 1:
        raise CalibrationError(f"min_periods: must be >= 1, got {min_periods!r}")
    r = np.asarray(log_returns, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if r.shape != q.shape:
        raise CalibrationError(f"q: shape {q.shape} != log_returns shape {r.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(np.abs(q) > 1e-12, forward_returns(r, horizon) / q, np.nan)
    s = pd.DataFrame(score)
    if window is None:
        # expanding: the level is corrected per day below via the count of scores
        n = s.expanding().count().to_numpy()
        qs = _expanding_conformal(score, level)
    else:
        # the k-th smallest of a full window of w scores, k = ceil((w + 1) level), is pandas' order statistic at
        # position (k - 1) / (w - 1); while fewer than w scores exist the same relative position is used
        w = int(window)
        k = min(w, math.ceil((w + 1) * float(level)))
        qs = s.rolling(w, min_periods=int(min_periods)).quantile((k - 1) / (w - 1), interpolation="nearest").to_numpy()
        n = s.rolling(w, min_periods=1).count().to_numpy()
    qs = np.where(n >= int(min_periods), qs, np.nan)
    # origin u's score is known at the close of u + h: shift by h so row t uses origins <= t - h
    c = pd.DataFrame(qs).shift(int(horizon)).to_numpy()
    c = np.where(np.isfinite(c), c, float(fallback))
    return np.maximum(c, 0.0)


def _expanding_conformal(score: np.ndarray, level: float) -> np.ndarray:
    """Expanding-window conformal quantile per column: ceil((n + 1) level)-th smallest of the n scores so far."""
    T, A = score.shape
    out = np.full((T, A), np.nan)
    for a in range(A):
        seen: list[float] = []
        for t in range(T):
            x = score[t, a]
            if np.isfinite(x):
                bisect.insort(seen, float(x))
            n = len(seen)
            if n:
                k = min(n, math.ceil((n + 1) * level))
                out[t, a] = seen[k - 1]
    return out


def calibrate_quantile(log_returns: np.ndarray, q: np.ndarray, horizon: int, **kw) -> np.ndarray:
    """``conformal_scale(...) * q``: the recalibrated forecast quantile (``(T, A)`` float64, log-return units).

    Keyword arguments go to :func:`conformal_scale`.
    """
    return conformal_scale(log_returns, q, horizon, **kw) * np.asarray(q, dtype=np.float64)


def exceptions_per_side(scan_down: np.ndarray, scan_up: np.ndarray, log_returns: np.ndarray,
                        horizon: int) -> dict[str, np.ndarray]:
    """Backtest exceptions of a long and a short position per asset, each judged against its own side's margin.

    Long (margin covers a DOWN move ``scan_down``): exception at origin t iff ``R_t < log(1 - scan_down_t)``;
    short (covers an UP move ``scan_up``): iff ``R_t > log(1 + scan_up_t)``, with ``R_t`` the realised h-day log
    return from the close of t (:func:`forward_returns`). Same definition as a loss above the IM fraction:
    ``1 - exp(R) > scan_down`` and ``exp(R) - 1 > scan_up``.

    Args:
        scan_down, scan_up: ``(T, A)`` float64 relative moves covered (IM fraction of a long / short notional).
        log_returns: ``(T, A)`` float64 daily log returns.
        horizon: h in days.

    Returns:
        ``{"long": e, "short": e}``, each ``(T, A)`` float64: 1.0 exception, 0.0 none, NaN where R_t or the
        margin is unknown.
    """
    R = forward_returns(log_returns, horizon)
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for side, hit in (("long", R < np.log1p(-np.minimum(scan_down, 1.0))), ("short", R > np.log1p(scan_up))):
            m = np.isfinite(R) & np.isfinite(scan_down if side == "long" else scan_up)
            out[side] = np.where(m, hit.astype(np.float64), np.nan)
    return out
