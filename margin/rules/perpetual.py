"""Cross-margined linear perpetuals for N accounts x M markets in one jitted kernel.

The rules are the common "fraction of notional" model used by centralised venues (Binance USD-M, Bybit,
dYdX v3/v4 in floating point, FTX): per position notional = |q| x mark, IM = sum_m notional x IMF_m,
MM = sum_m notional x MMF_m, account equity (cross margin) = collateral + sum_m q x (mark - entry), and an
account is liquidatable when equity < MM (and MM > 0), as in dYdX v4 ``protocol/lib/margin/risk.go``
(``IsLiquidatable``: MMR > 0 and net collateral < MMR). The margin ratio is equity / total notional (the
dYdX / FTX "account margin fraction"), +inf for an account without positions.
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from margin.validation import (
    MarginInputError,
    check_finite,
    check_in_range,
    check_positive,
)

__all__ = ["PerpetualMarginResult", "perpetual_margin", "perpetual_margin_reference"]


@partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "notional",
        "unrealised_pnl",
        "initial_margin",
        "maintenance_margin",
        "equity",
        "margin_ratio",
        "liquidatable",
    ],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True, eq=False)
class PerpetualMarginResult:
    """Result of :func:`perpetual_margin` (a JAX pytree).

    Attributes:
        notional: ``(N, M)`` USD, |position| x mark price per account and market.
        unrealised_pnl: ``(N,)`` USD, sum_m q x (mark - entry).
        initial_margin: ``(N,)`` USD, sum_m notional x im_fraction.
        maintenance_margin: ``(N,)`` USD, sum_m notional x mm_fraction.
        equity: ``(N,)`` USD, collateral + unrealised_pnl (cross margin).
        margin_ratio: ``(N,)`` equity / total notional (dimensionless); +inf when total notional is 0.
        liquidatable: ``(N,)`` bool, maintenance_margin > 0 and equity < maintenance_margin.
    """

    notional: jax.Array
    unrealised_pnl: jax.Array
    initial_margin: jax.Array
    maintenance_margin: jax.Array
    equity: jax.Array
    margin_ratio: jax.Array
    liquidatable: jax.Array


@jax.jit
def _perp_kernel(q, entry, mark, collateral, imf, mmf) -> PerpetualMarginResult:
    notional = jnp.abs(q) * mark
    upnl = jnp.sum(q * (mark - entry), axis=1)
    im = notional @ imf
    mm = notional @ mmf
    equity = collateral + upnl
    total = jnp.sum(notional, axis=1)
    safe = jnp.where(total > 0, total, 1)
    ratio = jnp.where(total > 0, equity / safe, jnp.inf)
    liq = (mm > 0) & (equity < mm)
    return PerpetualMarginResult(notional, upnl, im, mm, equity, ratio.astype(q.dtype), liq)


def _prices(field: str, x, n: int, m: int) -> np.ndarray:
    arr = check_positive(field, x)
    if arr.shape == (m,):
        return arr
    if arr.shape == (n, m):
        return arr
    raise MarginInputError(field, f"must have shape ({m},) or ({n}, {m}), got {arr.shape}")


def perpetual_margin(
    positions,
    entry_prices,
    mark_prices,
    collateral,
    im_fraction,
    mm_fraction,
    *,
    dtype=jnp.float32,
) -> PerpetualMarginResult:
    """Cross-margin requirements for linear (USD-settled) perpetuals, N accounts x M markets at once.

    Args:
        positions: ``(N, M)`` signed position sizes in coin (long > 0, short < 0).
        entry_prices: ``(M,)`` or ``(N, M)`` USD per coin, > 0.
        mark_prices: ``(M,)`` or ``(N, M)`` USD per coin, > 0.
        collateral: ``(N,)`` USD deposited collateral (may be negative after losses; must be finite).
        im_fraction: ``(M,)`` initial-margin fraction of notional, in (0, 1].
        mm_fraction: ``(M,)`` maintenance-margin fraction of notional, in (0, 1], <= im_fraction.
        dtype: computation dtype (``jnp.float32`` default, ``jnp.float64`` available).

    Returns:
        :class:`PerpetualMarginResult` (arrays of ``dtype``; ``liquidatable`` bool).

    Raises:
        MarginInputError (ValueError): non-finite or wrongly shaped input, non-positive prices, fractions
            outside (0, 1] or mm_fraction > im_fraction, naming field and index. Raised before the kernel runs.

    Source: linear-perpetual cross-margin rules (Binance USD-M futures "Margin Ratio", dYdX v4
    ``risk.go`` liquidatable test); see REFERENCE.md section 1.
    """
    q = check_finite("positions", positions)
    if q.ndim != 2:
        raise MarginInputError("positions", f"must have shape (N, M), got {q.shape}")
    n, m = q.shape
    entry = _prices("entry_prices", entry_prices, n, m)
    mark = _prices("mark_prices", mark_prices, n, m)
    coll = check_finite("collateral", collateral)
    if coll.shape != (n,):
        raise MarginInputError("collateral", f"must have shape ({n},), got {coll.shape}")
    imf = check_in_range("im_fraction", im_fraction, 0.0, 1.0, lo_open=True)
    mmf = check_in_range("mm_fraction", mm_fraction, 0.0, 1.0, lo_open=True)
    for name, f in (("im_fraction", imf), ("mm_fraction", mmf)):
        if f.shape != (m,):
            raise MarginInputError(name, f"must have shape ({m},), got {f.shape}")
    bad = mmf > imf
    if bad.any():
        i = int(np.argmax(bad))
        raise MarginInputError("mm_fraction", f"must be <= im_fraction ({imf[i]})", (i,), float(mmf[i]))
    c = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return _perp_kernel(c(q), c(entry), c(mark), c(coll), c(imf), c(mmf))


def perpetual_margin_reference(positions, entry_prices, mark_prices, collateral, im_fraction, mm_fraction):
    """Plain-Python loop reference for :func:`perpetual_margin` (float64, for tests)."""
    q = np.asarray(positions, float)
    n, m = q.shape
    entry = np.broadcast_to(np.asarray(entry_prices, float), (n, m))
    mark = np.broadcast_to(np.asarray(mark_prices, float), (n, m))
    out = {k: [] for k in ("notional", "unrealised_pnl", "initial_margin", "maintenance_margin", "equity",
                           "margin_ratio", "liquidatable")}
    for a in range(n):
        notional, upnl, im, mm = [], 0.0, 0.0, 0.0
        for j in range(m):
            x = abs(q[a, j]) * mark[a, j]
            notional.append(x)
            upnl += q[a, j] * (mark[a, j] - entry[a, j])
            im += x * im_fraction[j]
            mm += x * mm_fraction[j]
        eq = collateral[a] + upnl
        tot = sum(notional)
        out["notional"].append(notional)
        out["unrealised_pnl"].append(upnl)
        out["initial_margin"].append(im)
        out["maintenance_margin"].append(mm)
        out["equity"].append(eq)
        out["margin_ratio"].append(eq / tot if tot > 0 else float("inf"))
        out["liquidatable"].append(mm > 0 and eq < mm)
    return {k: np.asarray(v) for k, v in out.items()}
