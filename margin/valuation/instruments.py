"""Instruments as a struct-of-arrays pytree, and their per-unit valuation under a market move.

Kinds (``Kind``): spot, linear perpetual, linear dated future, inverse (coin-settled) perpetual, inverse dated
future, European option (Black-76 on the forward, settled in USD or in coin).

Units. One *unit* of an instrument is ``contract_size`` coins of its underlying:
- spot / linear: USD value change of one unit = contract_size x (F1 - F0).
- inverse: contract_size is the coin amount at the reference price F0 (USD face = contract_size x F0), so the
  coin P&L of one unit at relative move m = F1/F0 - 1 is contract_size x m / (1 + m) (Deribit; REFERENCE.md 1).
- option: contract_size coins of underlying per contract; USD value = contract_size x Black76(F, K, T, vol);
  coin-settled options (Deribit) are worth that USD value / F coins.
Any value can be expressed in USD or in coin at the scenario price (coin = USD / F1).
"""
from __future__ import annotations

import dataclasses
from enum import IntEnum
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from margin.valuation.pricing import _price_core
from margin.validation import MarginInputError, check_finite, check_positive

__all__ = ["Kind", "Settlement", "Instruments", "unit_value"]


class Kind(IntEnum):
    SPOT = 0
    LINEAR_PERPETUAL = 1
    LINEAR_FUTURE = 2
    INVERSE_PERPETUAL = 3
    INVERSE_FUTURE = 4
    OPTION = 5


class Settlement(IntEnum):
    USD = 0
    COIN = 1


_KIND_NAMES = {
    "spot": Kind.SPOT,
    "linear_perpetual": Kind.LINEAR_PERPETUAL,
    "perpetual": Kind.LINEAR_PERPETUAL,
    "linear_future": Kind.LINEAR_FUTURE,
    "future": Kind.LINEAR_FUTURE,
    "inverse_perpetual": Kind.INVERSE_PERPETUAL,
    "inverse_future": Kind.INVERSE_FUTURE,
    "option": Kind.OPTION,
}
_OPT_NAMES = {"C": 1, "call": 1, "P": -1, "put": -1, None: 0, "": 0, 1: 1, -1: -1, 0: 0}
_SETTLE_NAMES = {"USD": Settlement.USD, "usd": Settlement.USD, "COIN": Settlement.COIN, "coin": Settlement.COIN}


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["kind", "underlying", "contract_size", "strike", "expiry", "settlement", "option_type"],
    meta_fields=["names"],
)
@dataclasses.dataclass(frozen=True, eq=False)
class Instruments:
    """A set of I instruments as a struct of arrays (a JAX pytree; ``names`` is static metadata).

    Attributes:
        kind: ``(I,)`` int32, :class:`Kind` codes.
        underlying: ``(I,)`` int32, index into the per-underlying arrays (spot, vols, moves).
        contract_size: ``(I,)`` float64, coins of underlying per unit (> 0).
        strike: ``(I,)`` float64, USD per coin for options; 0 otherwise.
        expiry: ``(I,)`` float64, years to expiry (> 0) for options and dated futures; 0 for spot/perpetuals.
        settlement: ``(I,)`` int32, :class:`Settlement` (USD 0, coin 1); inverse kinds are coin-settled.
        option_type: ``(I,)`` int32, +1 call, -1 put, 0 not an option.
        names: tuple of I labels.

    Build with :meth:`Instruments.create`, which validates everything.
    """

    kind: jax.Array
    underlying: jax.Array
    contract_size: jax.Array
    strike: jax.Array
    expiry: jax.Array
    settlement: jax.Array
    option_type: jax.Array
    names: tuple = ()

    @property
    def size(self) -> int:
        return int(np.shape(self.kind)[0])

    def __len__(self) -> int:
        return self.size

    @classmethod
    def create(
        cls,
        kind: Sequence,
        underlying: Sequence[int] | None = None,
        contract_size=None,
        strike=None,
        expiry=None,
        settlement: Sequence | None = None,
        option_type: Sequence | None = None,
        names: Sequence[str] | None = None,
        *,
        n_underlyings: int | None = None,
    ) -> "Instruments":
        """Validated constructor.

        Args:
            kind: I kind names (``"spot"``, ``"linear_perpetual"``/``"perpetual"``, ``"linear_future"``/
                ``"future"``, ``"inverse_perpetual"``, ``"inverse_future"``, ``"option"``) or :class:`Kind` codes.
            underlying: I non-negative ints (default all 0); must be < n_underlyings when that is given.
            contract_size: I coins per unit, > 0 (default 1).
            strike: I strikes (USD per coin), > 0 for options (ignored otherwise; default 0).
            expiry: I years to expiry, > 0 for options and dated futures (an expiry in the past raises).
            settlement: I of ``"USD"``/``"coin"`` (default: coin for inverse kinds, USD otherwise). Inverse kinds
                must be coin-settled; spot and linear kinds USD-settled.
            option_type: I of ``"C"``/``"call"``/``"P"``/``"put"`` for options (None/"" otherwise).
            names: I labels (default ``"inst{i}"``).

        Raises:
            MarginInputError (ValueError) naming the field and the instrument index.
        """
        kinds = []
        for i, k in enumerate(kind):
            if isinstance(k, str):
                if k not in _KIND_NAMES:
                    raise MarginInputError("kind", f"unknown instrument kind; allowed {sorted(_KIND_NAMES)}", (i,), k)
                kinds.append(int(_KIND_NAMES[k]))
            else:
                try:
                    kinds.append(int(Kind(int(k))))
                except ValueError:
                    raise MarginInputError("kind", "unknown instrument kind code", (i,), k) from None
        kinds = np.asarray(kinds, np.int32)
        n = kinds.shape[0]
        if n == 0:
            raise MarginInputError("kind", "need at least one instrument")

        def arr(field, x, default):
            if x is None:
                return np.full(n, default, np.float64)
            a = check_finite(field, np.asarray(x, np.float64))
            if a.shape != (n,):
                raise MarginInputError(field, f"must have shape ({n},) like kind, got {a.shape}")
            return a

        und = np.zeros(n, np.int64) if underlying is None else np.asarray(underlying)
        if und.shape != (n,):
            raise MarginInputError("underlying", f"must have shape ({n},) like kind, got {und.shape}")
        if not np.issubdtype(und.dtype, np.integer):
            raise MarginInputError("underlying", f"must be integers, got dtype {und.dtype}")
        if (und < 0).any():
            i = int(np.argmax(und < 0))
            raise MarginInputError("underlying", "must be >= 0", (i,), int(und[i]))
        if n_underlyings is not None and (und >= n_underlyings).any():
            i = int(np.argmax(und >= n_underlyings))
            raise MarginInputError("underlying", f"must be < n_underlyings={n_underlyings}", (i,), int(und[i]))
        cs = arr("contract_size", contract_size, 1.0)
        check_positive("contract_size", cs)
        k_ = arr("strike", strike, 0.0)
        t_ = arr("expiry", expiry, 0.0)
        is_opt = kinds == Kind.OPTION
        dated = is_opt | (kinds == Kind.LINEAR_FUTURE) | (kinds == Kind.INVERSE_FUTURE)
        bad = is_opt & ~(k_ > 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise MarginInputError("strike", "options need a strike > 0", (i,), float(k_[i]))
        bad = dated & ~(t_ > 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise MarginInputError("expiry", "must be > 0 years (expiry in the past?) for options and futures",
                                   (i,), float(t_[i]))
        k_ = np.where(is_opt, k_, 0.0)
        t_ = np.where(dated, t_, 0.0)

        inverse = (kinds == Kind.INVERSE_PERPETUAL) | (kinds == Kind.INVERSE_FUTURE)
        if settlement is None:
            st = np.where(inverse, int(Settlement.COIN), int(Settlement.USD)).astype(np.int32)
        else:
            st = []
            for i, s in enumerate(settlement):
                if isinstance(s, str):
                    if s not in _SETTLE_NAMES:
                        raise MarginInputError("settlement", "unknown settlement currency; allowed USD, coin", (i,), s)
                    st.append(int(_SETTLE_NAMES[s]))
                elif s in (0, 1):
                    st.append(int(s))
                else:
                    raise MarginInputError("settlement", "unknown settlement code", (i,), s)
            st = np.asarray(st, np.int32)
            if st.shape != (n,):
                raise MarginInputError("settlement", f"must have shape ({n},) like kind, got {st.shape}")
            bad = (inverse & (st != Settlement.COIN)) | (~inverse & ~is_opt & (st != Settlement.USD))
            if bad.any():
                i = int(np.argmax(bad))
                raise MarginInputError("settlement", "inverse kinds settle in coin; spot/linear kinds in USD",
                                       (i,), settlement[i])
        if option_type is None:
            ot = np.zeros(n, np.int32)
        else:
            ot = []
            for i, o in enumerate(option_type):
                if o not in _OPT_NAMES:
                    raise MarginInputError("option_type", "unknown option type; allowed C, P, call, put", (i,), o)
                ot.append(_OPT_NAMES[o])
            ot = np.asarray(ot, np.int32)
            if ot.shape != (n,):
                raise MarginInputError("option_type", f"must have shape ({n},) like kind, got {ot.shape}")
        bad = is_opt & (ot == 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise MarginInputError("option_type", "options need C or P", (i,), option_type[i] if option_type else None)
        ot = np.where(is_opt, ot, 0).astype(np.int32)
        nm = tuple(names) if names is not None else tuple(f"inst{i}" for i in range(n))
        if len(nm) != n:
            raise MarginInputError("names", f"must have {n} entries, got {len(nm)}")
        return cls(
            kind=kinds,
            underlying=und.astype(np.int32),
            contract_size=cs,
            strike=k_,
            expiry=t_,
            settlement=st,
            option_type=ot,
            names=nm,
        )

    def take(self, idx) -> "Instruments":
        """The sub-set of instruments at integer indices ``idx``."""
        idx = np.asarray(idx)
        return Instruments(
            *(np.asarray(getattr(self, f))[idx] for f in
              ("kind", "underlying", "contract_size", "strike", "expiry", "settlement", "option_type")),
            names=tuple(self.names[i] for i in idx),
        )

    @staticmethod
    def concat(parts: Sequence["Instruments"]) -> "Instruments":
        fields = ("kind", "underlying", "contract_size", "strike", "expiry", "settlement", "option_type")
        return Instruments(
            *(np.concatenate([np.asarray(getattr(p, f)) for p in parts]) for f in fields),
            names=tuple(n for p in parts for n in p.names),
        )

    @property
    def is_option(self) -> np.ndarray:
        return np.asarray(self.kind) == Kind.OPTION


def unit_value(inst: Instruments, f0, f, vol, dt=0.0, *, unit: str = "usd"):
    """Value of one unit of each instrument when its underlying's forward moves from ``f0`` to ``f``.

    Args:
        inst: I instruments.
        f0: ``(I,)`` reference forward per instrument (USD per coin), the price at which linear / inverse
            contracts are marked (value 0).
        f: ``(I, ...)`` scenario forward per instrument (USD per coin); trailing axes are scenarios.
        vol: ``(I, ...)`` scenario annualised vol per instrument (used by options only).
        dt: time elapsed in years (options' remaining expiry = expiry - dt; at or past expiry: intrinsic).
        unit: ``"usd"`` or ``"coin"`` (coin = USD value / f).

    Returns:
        ``(I, ...)`` value per unit in ``unit``. P&L = unit_value(f1) - unit_value(f0).

    Source: Black (1976); inverse-contract P&L q m/(1+m) from the Deribit "Inverse futures" documentation.
    """
    kind = jnp.asarray(inst.kind)
    extra = jnp.ndim(f) - 1
    ex = lambda x: jnp.reshape(x, jnp.shape(x) + (1,) * extra)  # noqa: E731
    kind = ex(kind)
    cs = ex(jnp.asarray(inst.contract_size, f.dtype))
    f0 = ex(jnp.asarray(f0, f.dtype))
    k = ex(jnp.asarray(inst.strike, f.dtype))
    t = ex(jnp.asarray(inst.expiry, f.dtype)) - dt
    is_call = ex(jnp.asarray(inst.option_type)) > 0
    is_opt = kind == Kind.OPTION
    spot_usd = cs * f
    lin_usd = cs * (f - f0)  # linear and inverse have the same USD value at the scenario price (coin x F1)
    alive = t > 0
    t_safe = jnp.where(alive & is_opt, t, 1.0)
    k_safe = jnp.where(is_opt, k, 1.0)
    v_safe = jnp.where(is_opt, vol, 1.0)
    bs = _price_core(f, k_safe, t_safe, v_safe, is_call, jnp.zeros((), f.dtype))
    intrinsic = jnp.where(is_call, jnp.maximum(f - k_safe, 0), jnp.maximum(k_safe - f, 0))
    opt_usd = cs * jnp.where(alive, bs, intrinsic)
    usd = jnp.where(kind == Kind.SPOT, spot_usd, jnp.where(is_opt, opt_usd, lin_usd))
    if unit == "usd":
        return usd
    if unit == "coin":
        return usd / f
    raise MarginInputError("unit", "must be 'usd' or 'coin'", None, unit)
