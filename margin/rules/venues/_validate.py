"""Input checks shared by the venue rule sets and ``margin.rules.collateral``.

Every check runs on host (NumPy / Python ints) before any JAX kernel is traced, and
raises :class:`VenueInputError` naming the field, the first offending index and its value.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from margin.validation import MarginInputError

__all__ = ["VenueInputError"]


class VenueInputError(MarginInputError):
    """Bad input to a venue or collateral function (a ``MarginInputError``, hence a ``ValueError``).

    Attributes:
      field: name of the argument (e.g. ``"prices"``).
      index: index of the first offending element (tuple for arrays, ``None`` for scalars).
      value: the offending value.
    """

    def __init__(self, field: str, index: Any, value: Any, reason: str):
        self.field, self.index, self.value, self.reason = field, index, value, reason
        where = "" if index is None else f" at index {index}"
        ValueError.__init__(self, f"{field}{where}: {reason} (got {value!r})")


def _idx(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def as_float_array(x: Any, field: str, *, ndim: int | None = None) -> np.ndarray:
    """Convert to a float64 NumPy array, rejecting NaN / inf and wrong rank."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise VenueInputError(field, None, x, f"not convertible to a float array ({e})") from None
    if ndim is not None and a.ndim != ndim:
        raise VenueInputError(field, None, a.shape, f"expected a {ndim}-d array")
    bad = ~np.isfinite(a)
    if bad.any():
        i = _idx(bad)
        raise VenueInputError(field, i, float(a[i]), "must be finite (NaN / inf not allowed)")
    return a


def as_int_array(x: Any, field: str, *, ndim: int | None = None) -> np.ndarray:
    """Convert to an int64 NumPy array; floats must be integral and fit in int64."""
    a0 = np.asarray(x)
    if a0.dtype == object:
        flat = a0.ravel()
        for k, v in enumerate(flat):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise VenueInputError(field, np.unravel_index(k, a0.shape), v, "must be an integer")
            if not -(2**63) <= int(v) < 2**63:
                raise VenueInputError(field, np.unravel_index(k, a0.shape), int(v), "does not fit in int64")
        a = a0.astype(np.int64)
    elif np.issubdtype(a0.dtype, np.integer):
        if a0.dtype == np.uint64 and (a0 >= 2**63).any():
            i = _idx(a0 >= 2**63)
            raise VenueInputError(field, i, int(a0[i]), "does not fit in int64")
        a = a0.astype(np.int64)
    elif np.issubdtype(a0.dtype, np.floating):
        bad = ~np.isfinite(a0)
        if bad.any():
            i = _idx(bad)
            raise VenueInputError(field, i, float(a0[i]), "must be finite (NaN / inf not allowed)")
        bad = a0 != np.round(a0)
        if bad.any():
            i = _idx(bad)
            raise VenueInputError(field, i, float(a0[i]), "must be an integer value")
        bad = np.abs(a0) >= 2.0**63
        if bad.any():
            i = _idx(bad)
            raise VenueInputError(field, i, float(a0[i]), "does not fit in int64")
        a = a0.astype(np.int64)
    elif a0.dtype == np.bool_:
        raise VenueInputError(field, None, a0.dtype, "must be integers, not booleans")
    else:
        raise VenueInputError(field, None, a0.dtype, "must be an integer array")
    if ndim is not None and a.ndim != ndim:
        raise VenueInputError(field, None, a.shape, f"expected a {ndim}-d array")
    return a


def check_range(a: np.ndarray, field: str, lo: float | None = None, hi: float | None = None,
                *, lo_strict: bool = False, hi_strict: bool = False) -> None:
    """Raise if any element is outside [lo, hi] (or the open side when strict)."""
    if lo is not None:
        bad = a <= lo if lo_strict else a < lo
        if np.any(bad):
            i = _idx(np.atleast_1d(bad)) if a.ndim else None
            v = a[i] if i is not None else a
            rel = ">" if lo_strict else ">="
            raise VenueInputError(field, i, v.item(), f"must be {rel} {lo}")
    if hi is not None:
        bad = a >= hi if hi_strict else a > hi
        if np.any(bad):
            i = _idx(np.atleast_1d(bad)) if a.ndim else None
            v = a[i] if i is not None else a
            rel = "<" if hi_strict else "<="
            raise VenueInputError(field, i, v.item(), f"must be {rel} {hi}")


def check_shape(a: np.ndarray, field: str, shape: tuple[int, ...]) -> None:
    if a.shape != tuple(shape):
        raise VenueInputError(field, None, a.shape, f"shape mismatch: expected {tuple(shape)}")


def check_int(v: Any, field: str, lo: int | None = None, hi: int | None = None) -> int:
    """Validate one Python/NumPy integer scalar (bools rejected)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise VenueInputError(field, None, v, "must be an integer")
    v = int(v)
    if lo is not None and v < lo:
        raise VenueInputError(field, None, v, f"must be >= {lo}")
    if hi is not None and v > hi:
        raise VenueInputError(field, None, v, f"must be <= {hi}")
    return v
