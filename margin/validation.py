"""Input checks for the margin kernels.

Every public entry point of :mod:`margin` validates its inputs here, on the host, BEFORE any JAX kernel runs,
and raises :class:`MarginInputError` (a ``ValueError``) naming the field, the index of the first offending
element and its value. Kernels therefore never see NaN / inf and never return a silent NaN.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "MarginInputError",
    "as_float_array",
    "check_finite",
    "check_positive",
    "check_nonnegative",
    "check_ndim",
    "check_shape",
    "check_in_range",
    "check_choice",
]


class MarginInputError(ValueError):
    """Bad input to a margin function.

    Attributes:
        field: name of the offending argument (e.g. ``"mark_prices"``).
        index: index tuple of the first offending element, or ``None`` for shape errors.
        value: the offending value (or shape).
    """

    def __init__(self, field: str, message: str, index: tuple | None = None, value=None):
        self.field = field
        self.index = index
        self.value = value
        where = f" at index {index}" if index is not None else ""
        shown = f" (value {value!r})" if value is not None else ""
        super().__init__(f"{field}{where}: {message}{shown}")


def _first(mask: np.ndarray) -> tuple[int, ...]:
    idx = np.argwhere(mask)[0]
    return tuple(int(i) for i in idx)


def as_float_array(field: str, x) -> np.ndarray:
    """Converts ``x`` to a float NumPy array (no copy when already one); raises on non-numeric input."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise MarginInputError(field, f"cannot convert to an array: {exc}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise MarginInputError(field, f"must be numeric, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def check_finite(field: str, x) -> np.ndarray:
    """Raises if any element is NaN or +/-inf; returns the array."""
    arr = as_float_array(field, x)
    ok = np.isfinite(arr)
    if not ok.all():
        i = _first(~ok)
        raise MarginInputError(field, "must be finite", i, arr[i].item())
    return arr


def check_positive(field: str, x) -> np.ndarray:
    """Raises unless every element is finite and > 0."""
    arr = check_finite(field, x)
    bad = arr <= 0
    if bad.any():
        i = _first(bad)
        raise MarginInputError(field, "must be > 0", i, arr[i].item())
    return arr


def check_nonnegative(field: str, x) -> np.ndarray:
    """Raises unless every element is finite and >= 0."""
    arr = check_finite(field, x)
    bad = arr < 0
    if bad.any():
        i = _first(bad)
        raise MarginInputError(field, "must be >= 0", i, arr[i].item())
    return arr


def check_in_range(field: str, x, lo: float, hi: float, *, lo_open=False, hi_open=False) -> np.ndarray:
    """Raises unless every element lies in the interval (lo/hi open or closed as flagged)."""
    arr = check_finite(field, x)
    bad = (arr <= lo if lo_open else arr < lo) | (arr >= hi if hi_open else arr > hi)
    if bad.any():
        i = _first(bad)
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise MarginInputError(field, f"must lie in {lb}{lo}, {hi}{rb}", i, arr[i].item())
    return arr


def check_ndim(field: str, arr: np.ndarray, ndims: Sequence[int]) -> np.ndarray:
    if arr.ndim not in tuple(ndims):
        raise MarginInputError(field, f"must have ndim in {tuple(ndims)}, got shape {arr.shape}")
    return arr


def check_shape(field: str, arr: np.ndarray, shape: Sequence[int | None]) -> np.ndarray:
    """Raises unless ``arr.shape`` matches ``shape`` (``None`` = any size on that axis)."""
    shape = tuple(shape)
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise MarginInputError(field, f"must have shape {want}, got {arr.shape}")
    return arr


def check_choice(field: str, values, allowed: Sequence) -> None:
    """Raises naming the first element of ``values`` not in ``allowed``."""
    allowed_set = set(allowed)
    for i, v in enumerate(values):
        if v not in allowed_set:
            raise MarginInputError(field, f"unknown value; allowed {sorted(map(str, allowed_set))}", (i,), v)
