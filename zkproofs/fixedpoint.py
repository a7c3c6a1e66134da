"""From real amounts (USD, coin) to an exactly conservative fixed-point :class:`~zkproofs.MarginStatement`.

Units: value unit = 1/value_scale USD; amount unit = 1/amount_scale coin. Every input float is taken at its
exact binary value (``fractions.Fraction(x)``) and every rounding is against the prover:

* collateral balance b_k = floor(amount_k * amount_scale)                  (what the prover has: down)
* haircut price w_k = floor(price_k * (1 - haircut_k) * value_scale / amount_scale)          (down)
* long-part P&L L[j, s] = floor(pnl_usd[j, s] * value_scale / amount_scale); short-part Lshort = ceil(...)
* buffer = ceil(buffer_usd * value_scale)                                                  (up)
* a position that is not a whole number of amount units is refused (``sub_unit="refuse"``), or rounded to the
  nearest unit with ``ceil(|rounding| * max_s |pnl_usd[j, s]| * value_scale)`` added to the buffer and a
  warning (``sub_unit="round"``) - the buffer then reveals an upper bound on that rounding.

Hence, for integer inputs that satisfy every claim, the real-valued surplus
``sum_k amount_k price_k (1 - h_k) + sum_j pnl_usd[j, s] q_j - buffer_usd`` is >= 0 in every scenario s
(property-tested in ``tests/zkproofs/test_rounding.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

from .errors import StatementError
from .statement import Context, MarginStatement

__all__ = ["FixedPointMargin", "margin_from_usd", "exact"]


def exact(x: Any, field: str) -> Fraction:
    """The exact rational value of a finite int / float / Decimal / Fraction (no rounding)."""
    if isinstance(x, bool):
        raise StatementError(f"{field}: a boolean is not an amount")
    try:
        f = Fraction(x)
    except (TypeError, ValueError, OverflowError):
        raise StatementError(f"{field}: {x!r} is not a finite number") from None
    return f


@dataclass(frozen=True)
class FixedPointMargin:
    """A fixed-point margin statement with its integer witness.

    statement: the :class:`MarginStatement`; balances: K ints (amount units); positions: J signed ints (amount
    units); warnings: human-readable notes on rounding done against the prover; rounding_usd: the buffer add-on
    (USD) caused by sub-unit positions."""

    statement: MarginStatement
    balances: tuple[int, ...]
    positions: tuple[int, ...]
    warnings: tuple[str, ...]
    rounding_usd: float


def margin_from_usd(
    context: Context,
    collateral: Sequence[tuple[str, Any, Any, Any]],
    positions: Sequence[tuple[str, Any]],
    pnl_usd: Sequence[Sequence[Any]],
    scenario_labels: Sequence[str],
    *,
    buffer_usd: Any = 0,
    value_scale: int = 10**6,
    amount_scale: int = 10**4,
    collateral_bits: int = 64,
    position_bits: int = 32,
    scenario_bits: int = 64,
    sub_unit: str = "refuse",
    params: dict | None = None,
    unit: str = "",
) -> FixedPointMargin:
    """Build the statement and witness from real amounts.

    collateral: K tuples (name, amount in coin >= 0, price in USD per coin > 0, haircut in [0, 1]);
    positions: J tuples (instrument, signed amount in coin); pnl_usd: J x S real P&L in USD per coin of position
    in each scenario (gains > 0); scenario_labels: S labels; buffer_usd >= 0.
    Raises :class:`StatementError` on a bad value or a sub-unit position with ``sub_unit="refuse"``."""
    vs, asc = int(value_scale), int(amount_scale)
    if vs <= 0 or asc <= 0:
        raise StatementError("value_scale and amount_scale must be positive")
    if sub_unit not in ("refuse", "round"):
        raise StatementError(f"sub_unit must be 'refuse' or 'round', got {sub_unit!r}")
    names, bal, prices = [], [], []
    for k, (name, amount, price, haircut) in enumerate(collateral):
        a, p, h = exact(amount, f"{name} amount"), exact(price, f"{name} price"), exact(haircut, f"{name} haircut")
        if a < 0 or p < 0 or not 0 <= h <= 1:
            raise StatementError(f"collateral {name}: amount {float(a)} and price {float(p)} must be >= 0, haircut "
                                 f"{float(h)} in [0, 1]")
        names.append(str(name))
        bal.append(math.floor(a * asc))
        prices.append(math.floor(p * (1 - h) * vs / asc))
    J = len(positions)
    if len(pnl_usd) != J:
        raise StatementError(f"pnl_usd has {len(pnl_usd)} rows for {J} positions")
    L = [[exact(x, f"pnl[{j}, {s}]") for s, x in enumerate(row)] for j, row in enumerate(pnl_usd)]
    Lf = [[math.floor(x * vs / asc) for x in row] for row in L]
    Lc = [[math.ceil(x * vs / asc) for x in row] for row in L]
    buffer = exact(buffer_usd, "buffer_usd")
    if buffer < 0:
        raise StatementError(f"buffer_usd = {float(buffer)} must be >= 0")
    add_on = Fraction(0)
    q_units, instruments, warnings = [], [], []
    for j, (name, amount) in enumerate(positions):
        q = exact(amount, f"{name} amount") * asc
        instruments.append(str(name))
        if q.denominator == 1:
            q_units.append(int(q))
            continue
        if sub_unit == "refuse":
            raise StatementError(f"position {name} = {float(amount)!r} coin is not a whole number of amount units "
                                 f"(1/{asc} coin); set a finer amount scale or round against the prover")
        qi = round(q)
        worst = max((abs(x) for x in L[j]), default=Fraction(0))
        extra = abs(q - qi) / asc * worst  # USD
        add_on += extra
        q_units.append(int(qi))
        warnings.append(f"position {name} = {float(amount)!r} coin rounded to {qi}/{asc} coin; buffer raised by "
                        f"{float(extra):.6g} USD so the rounding cannot favour the prover")
    buf_int = math.ceil((buffer + add_on) * vs)
    st = MarginStatement(prices, Lf, buf_int, collateral_bits, position_bits, scenario_bits, unit, pnl_short=Lc,
                         context=context, collateral_names=tuple(names), instruments=tuple(instruments),
                         scenario_labels=tuple(str(x) for x in scenario_labels), value_scale=vs, amount_scale=asc,
                         params=params or {})
    return FixedPointMargin(st, tuple(bal), tuple(q_units), tuple(warnings), float(add_on))
