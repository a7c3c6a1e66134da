"""Procyclicality measures of a margin series on a fixed portfolio.

Source: Murphy, Vasios & Vause (2014), "An investigation into the procyclicality of risk-based initial margin
models", Bank of England Financial Stability Paper No. 29: peak-to-trough ratio of the margin requirement over
the cycle, and the largest increase over n days (n = 1, 5, 30), expressed relative to the margin at the start
of the n-day period (and also in absolute terms).

All functions take a 1-D float array ``margin`` of shape ``(T,)`` (USD, or IM fraction of a fixed notional)
or ``(T, A)`` (one series per column) and ignore leading NaNs. Bad input raises
:class:`margin.validation.MarginInputError` (a ``ValueError``) naming the argument, index and value.
"""
from __future__ import annotations

import numpy as np

from margin.validation import MarginInputError

__all__ = ["largest_increase", "peak_to_trough", "procyclicality_summary"]


def _as_series(margin) -> np.ndarray:
    m = np.asarray(margin, dtype=np.float64)
    if m.ndim not in (1, 2):
        raise MarginInputError("margin", "expected shape (T,) or (T, A)", value=m.shape)
    if np.any(m[np.isfinite(m)] < 0):
        i = np.argwhere(np.isfinite(m) & (m < 0))[0]
        raise MarginInputError("margin", "negative margin", index=tuple(int(x) for x in i), value=float(m[tuple(i)]))
    return m


def peak_to_trough(margin) -> np.ndarray | float:
    """Peak-to-trough ratio ``max_t m_t / min_t m_t`` (NaNs ignored; inf if the trough is 0).

    Returns:
        float for 1-D input, ``(A,)`` array for 2-D input.
    """
    m = _as_series(margin)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.nanmax(m, axis=0) / np.nanmin(m, axis=0)
    return float(out) if m.ndim == 1 else out


def largest_increase(margin, n: int, relative: bool = True) -> np.ndarray | float:
    """Largest n-day increase ``max_t (m_{t+n} - m_t) [/ m_t]`` (MVV 2014 "n-day procyclicality").

    Args:
        margin: ``(T,)`` or ``(T, A)``.
        n: window in steps (days), >= 1.
        relative: divide by m_t (a fraction, 0.5 = +50%); else absolute (units of margin).

    Returns:
        float or ``(A,)``; 0 if the margin never increases; NaN if fewer than n + 1 finite values.
    """
    if int(n) < 1:
        raise MarginInputError("n", "window must be >= 1 day", value=n)
    m = _as_series(margin)
    if m.shape[0] <= n:
        out = np.full(m.shape[1:], np.nan)
        return float(out) if m.ndim == 1 else out
    start, end = m[:-n], m[n:]
    with np.errstate(divide="ignore", invalid="ignore"):
        inc = (end - start) / start if relative else end - start
    inc = np.where(np.isfinite(inc), inc, np.nan)
    all_nan = np.all(np.isnan(inc), axis=0)
    out = np.where(all_nan, np.nan, np.maximum(np.nanmax(np.where(all_nan, 0.0, inc), axis=0), 0.0))
    return float(out) if m.ndim == 1 else out


def procyclicality_summary(margin, windows=(1, 5, 30)) -> dict[str, float | list]:
    """Dict with ``peak_to_trough`` and ``max_increase_{n}d`` (relative) / ``max_increase_{n}d_abs``."""
    out: dict[str, float | list] = {"peak_to_trough": _tolist(peak_to_trough(margin))}
    for n in windows:
        out[f"max_increase_{n}d"] = _tolist(largest_increase(margin, n, relative=True))
        out[f"max_increase_{n}d_abs"] = _tolist(largest_increase(margin, n, relative=False))
    return out


def _tolist(x):
    return x.tolist() if isinstance(x, np.ndarray) else float(x)
