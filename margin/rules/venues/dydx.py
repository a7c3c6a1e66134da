"""dYdX v4 cross-margin rules in exact ppm integer arithmetic.

Two implementations of the same rules:

* Python-int reference functions (arbitrary precision, like Go's ``big.Int``), one account
  at a time: :func:`maintenance_margin_ppm`, :func:`adjusted_initial_margin_ppm`,
  :func:`base_to_quote_quantums`, :func:`position_margin_requirements`, :func:`account_risk`,
  :func:`is_initial_collateralized`, :func:`is_liquidatable`, :func:`fillable_price`.
* A batched JAX kernel over N accounts x M perpetual markets in int64,
  :func:`account_risk_batched`, that agrees *exactly* with the reference inside the safe
  ranges stated there (checked on host before the kernel runs; inputs outside them raise
  :class:`VenueInputError` instead of overflowing), and :func:`fillable_price_batched` in float64.

Units: fractions in ppm (1_000_000 = 100 %); quote amounts in quote quantums
(1 USDC = 1_000_000 quantums, ``QUOTE_ATOMIC_RESOLUTION = -6``); position sizes in base
quantums (1 coin = 10**-atomic_resolution base quantums); oracle price = ``price * 10**price_exponent``
USDC per coin.

Rounding, as checked in dydxprotocol/v4-chain (stored copies read for this module):

* ``protocol/x/perpetuals/types/liquidity_tier.go``:
  ``GetMaintenanceMarginPpm`` = ``BigIntMulPpm(IMF, maintenance_fraction)`` - floor;
  ``GetAdjustedInitialMarginPpm`` = IMF if ``upper_cap == 0`` or ``OI <= lower_cap``; 1e6 if
  ``OI >= upper_cap``; else ``IMF + (1e6 - IMF) * (OI - lower) / (upper - lower)`` with
  ``big.Int.Div`` (floor; all operands non-negative);
  ``GetInitialMarginQuoteQuantums`` = ``BigMulPpm(|notional|, max(adjusted IMF, custom IMF if > 0),
  roundUp=true)`` - ceiling.
* ``protocol/x/perpetuals/lib/lib.go`` ``GetMarginRequirementsInQuoteQuantums``: MMR =
  ``BigMulPpm(base IMR, maintenance_fraction, roundUp=true)`` where base IMR is computed with
  open interest 0 and no custom IMF (so the *base* IMF, rounded up): MMR uses the base IMF,
  never the OI-scaled or user IMF.
* ``protocol/lib/quantums.go`` ``BaseToQuoteQuantums``: ``quantums * price * 10**(price_exponent +
  atomic_resolution - QUOTE_ATOMIC_RESOLUTION)`` with *truncated* division (``big.Int.Quo``, towards
  zero), in both the ``big.Int`` and the later ``big.Rat`` (``multiplyByPrice``) versions.
* ``protocol/lib/big_math.go``: ``BigMulPpm(v, ppm, roundUp)`` = ``BigDivCeil`` or floor of
  ``v * ppm / 1e6``; ``BigIntMulPpm`` floors.
* ``protocol/lib/margin/risk.go``: ``IsInitialCollateralized`` = ``NC >= IMR``;
  ``IsLiquidatable`` = ``MMR > 0 and MMR > NC``.
* ``protocol/x/clob/keeper/liquidations.go`` ``GetFillablePrice``: ``(PNNV - ABR * SMMR * PMMR) / PS``
  with ``ABR = clamp(BA * (1 - TNC / TMMR), 0, 1)`` as an exact ``big.Rat`` (no rounding);
  SMMR and BA in ppm (genesis SMMR 1.5 = 1_500_000 ppm, BA 1_000_000 ppm).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import numpy as np

# Shared project decision (CONVENTIONS.md): x64 on at package import. Needed for int64 here;
# idempotent, and margin/__init__.py does the same.
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

from margin.rules.venues._validate import (  # noqa: E402
    VenueInputError,
    as_float_array,
    as_int_array,
    check_int,
    check_range,
    check_shape,
)

__all__ = [
    "ONE_MILLION",
    "QUOTE_ATOMIC_RESOLUTION",
    "INT64_SAFE_BOUND",
    "LiquidityTier",
    "Risk",
    "BatchedRisk",
    "tiers_from_config",
    "maintenance_margin_ppm",
    "adjusted_initial_margin_ppm",
    "base_to_quote_quantums",
    "position_margin_requirements",
    "account_risk",
    "is_initial_collateralized",
    "is_liquidatable",
    "fillable_price",
    "account_risk_batched",
    "fillable_price_batched",
]

ONE_MILLION = 1_000_000
QUOTE_ATOMIC_RESOLUTION = -6
#: Every intermediate of the int64 kernel is kept below this bound (half the int64 range).
INT64_SAFE_BOUND = 2**62


@dataclass(frozen=True)
class LiquidityTier:
    """One dYdX v4 liquidity tier (``LiquidityTier`` proto in v4-chain ``x/perpetuals``).

    Attributes:
      name: label, e.g. ``"Mid-Cap"``.
      initial_margin_ppm: base IMF in ppm, 0..1_000_000.
      maintenance_fraction_ppm: MMF / IMF in ppm, 0..1_000_000.
      open_interest_lower_cap: OI (quote quantums) above which the IMF starts to scale; 0 = none.
      open_interest_upper_cap: OI (quote quantums) at which the IMF reaches 100 %; 0 disables scaling.

    Raises:
      VenueInputError: the checks of ``LiquidityTier.Validate`` (IMF and maintenance fraction
        <= 1e6, lower cap <= upper cap) plus non-negativity; caps must be <= ``INT64_SAFE_BOUND``.
    """

    name: str
    initial_margin_ppm: int
    maintenance_fraction_ppm: int
    open_interest_lower_cap: int = 0
    open_interest_upper_cap: int = 0

    def __post_init__(self) -> None:
        f = f"tier {self.name!r}."
        check_int(self.initial_margin_ppm, f + "initial_margin_ppm", 0, ONE_MILLION)
        check_int(self.maintenance_fraction_ppm, f + "maintenance_fraction_ppm", 0, ONE_MILLION)
        lo = check_int(self.open_interest_lower_cap, f + "open_interest_lower_cap", 0, INT64_SAFE_BOUND)
        hi = check_int(self.open_interest_upper_cap, f + "open_interest_upper_cap", 0, INT64_SAFE_BOUND)
        if lo > hi:
            raise VenueInputError(f + "open_interest_lower_cap", None, lo,
                                  f"must be <= open_interest_upper_cap ({hi})")


def tiers_from_config(cfg: Mapping[str, Any]) -> dict[str, LiquidityTier]:
    """Build tiers from ``conf/margin/dydx_v4.yaml`` (``cfg["liquidity_tiers"]``).

    Args:
      cfg: mapping with key ``liquidity_tiers``: a list of mappings with keys ``name``,
        ``initial_margin_ppm``, ``maintenance_fraction_ppm``, ``open_interest_lower_cap``,
        ``open_interest_upper_cap`` (quote quantums).

    Returns:
      ``{name: LiquidityTier}`` in file order.

    Raises:
      VenueInputError: missing key or invalid value (names the tier).
    """
    out: dict[str, LiquidityTier] = {}
    for i, t in enumerate(cfg["liquidity_tiers"]):
        try:
            out[str(t["name"])] = LiquidityTier(
                name=str(t["name"]),
                initial_margin_ppm=int(t["initial_margin_ppm"]),
                maintenance_fraction_ppm=int(t["maintenance_fraction_ppm"]),
                open_interest_lower_cap=int(t.get("open_interest_lower_cap", 0)),
                open_interest_upper_cap=int(t.get("open_interest_upper_cap", 0)),
            )
        except KeyError as e:
            raise VenueInputError("liquidity_tiers", i, dict(t), f"missing key {e}") from None
    return out


# ----------------------------------------------------------------------------------------------
# Exact Python-int reference
# ----------------------------------------------------------------------------------------------

def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def maintenance_margin_ppm(tier: LiquidityTier) -> int:
    """MMF in ppm: ``IMF * maintenance_fraction // 1e6`` (rounded down).

    Source: v4-chain ``x/perpetuals/types/liquidity_tier.go`` ``GetMaintenanceMarginPpm``
    (``lib.BigIntMulPpm``, rounds towards negative infinity).

    Returns: int, ppm.
    """
    return tier.initial_margin_ppm * tier.maintenance_fraction_ppm // ONE_MILLION


def adjusted_initial_margin_ppm(tier: LiquidityTier, open_interest_quote_quantums: int) -> int:
    """Open-interest-scaled IMF in ppm.

    ``IMF`` if ``upper_cap == 0`` or ``OI <= lower_cap``; ``1_000_000`` if ``OI >= upper_cap``;
    else ``IMF + (1e6 - IMF) * (OI - lower) // (upper - lower)`` (integer division, floor).

    Args:
      tier: the market's liquidity tier.
      open_interest_quote_quantums: market open interest x oracle price, quote quantums (int >= 0).

    Returns: int, ppm in [IMF, 1_000_000].

    Raises:
      VenueInputError: negative or non-integer open interest.

    Source: v4-chain ``x/perpetuals/types/liquidity_tier.go`` ``GetAdjustedInitialMarginPpm``.
    """
    oi = check_int(open_interest_quote_quantums, "open_interest_quote_quantums", 0)
    lo, hi = tier.open_interest_lower_cap, tier.open_interest_upper_cap
    imf = tier.initial_margin_ppm
    if hi == 0 or oi <= lo:
        return imf
    if oi >= hi:
        return ONE_MILLION
    return imf + (ONE_MILLION - imf) * (oi - lo) // (hi - lo)


def base_to_quote_quantums(base_quantums: int, atomic_resolution: int, price: int,
                           price_exponent: int) -> int:
    """Signed notional in quote quantums of a position of ``base_quantums``.

    ``base_quantums * price * 10**(price_exponent + atomic_resolution + 6)``, a negative power
    of ten applied with truncated division (towards zero), so longs and shorts of the same size
    have notionals of equal magnitude.

    Args:
      base_quantums: signed position size (int; long > 0).
      atomic_resolution: perpetual's atomic resolution (e.g. -10 for BTC-USD).
      price: oracle price integer (>= 0), coin price = ``price * 10**price_exponent`` USDC.
      price_exponent: market price exponent (e.g. -5).

    Returns: int, quote quantums (1 USDC = 1e6).

    Source: v4-chain ``protocol/lib/quantums.go`` ``BaseToQuoteQuantums`` ("Truncated division
    (towards zero) instead of Euclidean division").
    """
    q = check_int(base_quantums, "base_quantums")
    p = check_int(price, "price", 0)
    e = check_int(price_exponent, "price_exponent") + check_int(atomic_resolution, "atomic_resolution") \
        - QUOTE_ATOMIC_RESOLUTION
    num = q * p
    if e >= 0:
        return num * 10**e
    d = 10 ** (-e)
    mag = abs(num) // d
    return mag if num >= 0 else -mag


def position_margin_requirements(notional_quote_quantums: int, tier: LiquidityTier,
                                 open_interest_quote_quantums: int = 0,
                                 user_imf_ppm: int = 0) -> tuple[int, int]:
    """Initial and maintenance margin requirement of one position.

    ``IMR = ceil(|n| * max(scaled IMF, user IMF) / 1e6)`` (user IMF only if > 0);
    ``MMR = ceil(ceil(|n| * base IMF / 1e6) * maintenance_fraction / 1e6)``: the MMR uses the
    base IMF even when the OI-scaled or user IMF is higher.

    Args:
      notional_quote_quantums: signed position notional, quote quantums.
      tier: the market's liquidity tier.
      open_interest_quote_quantums: market OI x price, quote quantums (>= 0).
      user_imf_ppm: user-chosen IMF (leverage setting), ppm in [0, 1e6]; 0 = none.

    Returns: ``(imr, mmr)`` ints, quote quantums.

    Raises: VenueInputError for non-integers or out-of-range ppm / OI.

    Source: v4-chain ``x/perpetuals/lib/lib.go`` ``GetMarginRequirementsInQuoteQuantums`` and
    ``x/perpetuals/types/liquidity_tier.go`` ``GetInitialMarginQuoteQuantums``.
    """
    n = abs(check_int(notional_quote_quantums, "notional_quote_quantums"))
    user = check_int(user_imf_ppm, "user_imf_ppm", 0, ONE_MILLION)
    scaled = adjusted_initial_margin_ppm(tier, open_interest_quote_quantums)
    imf = max(scaled, user) if user > 0 else scaled
    imr = _ceil_div(n * imf, ONE_MILLION)
    base_imr = _ceil_div(n * tier.initial_margin_ppm, ONE_MILLION)
    mmr = _ceil_div(base_imr * tier.maintenance_fraction_ppm, ONE_MILLION)
    return imr, mmr


class Risk(NamedTuple):
    """Net collateral and margin requirements of one account, quote quantums (Python ints).

    Mirrors ``margin.Risk`` in v4-chain ``protocol/lib/margin/risk.go``.
    """

    nc: int
    imr: int
    mmr: int

    def is_initial_collateralized(self) -> bool:
        return self.nc >= self.imr

    def is_liquidatable(self) -> bool:
        return self.mmr > 0 and self.nc < self.mmr


def account_risk(quote_balance: int, notionals: Sequence[int], tiers: Sequence[LiquidityTier],
                 open_interests: Sequence[int] | None = None,
                 user_imf_ppm: Sequence[int] | None = None) -> Risk:
    """Account net collateral, IMR and MMR (sums over positions).

    ``NC = quote_balance + sum(signed notional)``; IMR and MMR are sums of the per-position
    values of :func:`position_margin_requirements`.

    Args:
      quote_balance: USDC balance, quote quantums (may be negative: borrowed against positions).
      notionals: signed notionals, quote quantums, one per position (length K).
      tiers: the liquidity tier of each position's market (length K).
      open_interests: market OI x price per position, quote quantums (length K); default 0.
      user_imf_ppm: user IMF per position, ppm (length K); default 0 (none).

    Returns: :class:`Risk` (ints, quote quantums).

    Raises: VenueInputError on length mismatch or invalid values (names field and index).

    Source: v4-chain ``protocol/lib/margin/risk.go`` (``Risk.AddInPlace``) and
    ``x/subaccounts`` ``GetNetCollateralAndMarginRequirements``.
    """
    nc = check_int(quote_balance, "quote_balance")
    k = len(notionals)
    for field, seq in (("tiers", tiers), ("open_interests", open_interests),
                       ("user_imf_ppm", user_imf_ppm)):
        if seq is not None and len(seq) != k:
            raise VenueInputError(field, None, len(seq), f"length mismatch: expected {k} (len(notionals))")
    imr = mmr = 0
    for i in range(k):
        n = check_int(notionals[i], f"notionals[{i}]")
        oi = 0 if open_interests is None else open_interests[i]
        u = 0 if user_imf_ppm is None else user_imf_ppm[i]
        pi, pm = position_margin_requirements(n, tiers[i], oi, u)
        nc += n
        imr += pi
        mmr += pm
    return Risk(nc, imr, mmr)


def is_initial_collateralized(risk: Risk) -> bool:
    """``NC >= IMR``. Source: v4-chain ``protocol/lib/margin/risk.go`` ``IsInitialCollateralized``."""
    return risk.nc >= risk.imr


def is_liquidatable(risk: Risk) -> bool:
    """``MMR > 0 and NC < MMR``. Source: v4-chain ``protocol/lib/margin/risk.go`` ``IsLiquidatable``."""
    return risk.mmr > 0 and risk.nc < risk.mmr


def fillable_price(pnnv: int, pmmr: int, tnc: int, tmmr: int, position_size: int,
                   smmr_ppm: int = 1_500_000, ba_ppm: int = 1_000_000) -> Fraction:
    """Exact liquidation fillable price, quote quantums per base quantum.

    ``(PNNV - ABR * SMMR * PMMR) / PS``, ``ABR = clamp(BA * (1 - TNC / TMMR), 0, 1)``, all as exact
    rationals (Go ``big.Rat``). The result is in quote quantums per base quantum; multiply by
    ``10**(QUOTE_ATOMIC_RESOLUTION - atomic_resolution) = 10**(-6 - atomic_resolution)`` for USDC per
    coin (one coin is ``10**-atomic_resolution`` base quantums, one USDC ``10**6`` quote quantums;
    ``QuoteCurrencyAtomicResolution = -6`` in v4-chain ``protocol/lib/constants.go``). Example: BTC,
    ``atomic_resolution = -10``: USDC per BTC = result * 10**4.

    Args:
      pnnv: position net notional, quote quantums (signed; long > 0).
      pmmr: position MMR, quote quantums (>= 0).
      tnc: account net collateral, quote quantums.
      tmmr: account MMR, quote quantums (> 0: only liquidatable accounts have a fill price).
      position_size: position size, base quantums (signed, non-zero, same sign as ``pnnv``).
      smmr_ppm: spread-to-maintenance-margin ratio, ppm (genesis 1_500_000 = 1.5).
      ba_ppm: bankruptcy adjustment, ppm (genesis 1_000_000).

    Returns: ``fractions.Fraction``.

    Raises:
      VenueInputError: ``tmmr <= 0``, ``position_size == 0``, negative ``pmmr`` / ppm, or a negative
        result (Go panics with "Calculated fillable price is negative").

    Source: v4-chain ``protocol/x/clob/keeper/liquidations.go`` ``GetFillablePrice``.
    """
    pnnv = check_int(pnnv, "pnnv")
    pmmr = check_int(pmmr, "pmmr", 0)
    tnc = check_int(tnc, "tnc")
    tmmr = check_int(tmmr, "tmmr", 1)
    ps = check_int(position_size, "position_size")
    if ps == 0:
        raise VenueInputError("position_size", None, ps, "must be non-zero")
    smmr = check_int(smmr_ppm, "smmr_ppm", 0)
    ba = check_int(ba_ppm, "ba_ppm", 0)
    abr = (1 - Fraction(tnc, tmmr)) * Fraction(ba, ONE_MILLION)
    abr = min(max(abr, Fraction(0)), Fraction(1))
    spread = Fraction(pmmr * smmr, ONE_MILLION)
    price = (pnnv - abr * spread) / ps
    if price < 0:
        raise VenueInputError("fillable_price", None, float(price),
                              "negative fillable price (v4-chain panics here)")
    return price


# ----------------------------------------------------------------------------------------------
# Batched int64 JAX kernel
# ----------------------------------------------------------------------------------------------

class BatchedRisk(NamedTuple):
    """Output of :func:`account_risk_batched` (JAX arrays).

    Attributes:
      nc, imr, mmr: ``(N,)`` int64, quote quantums.
      initial_collateralized, liquidatable: ``(N,)`` bool.
      notional, position_imr, position_mmr: ``(N, M)`` int64, quote quantums (signed notional).
    """

    nc: jax.Array
    imr: jax.Array
    mmr: jax.Array
    initial_collateralized: jax.Array
    liquidatable: jax.Array
    notional: jax.Array
    position_imr: jax.Array
    position_mmr: jax.Array


_I64 = jnp.int64
_MAX_DIV_EXP = 9  # 10**9 squared fits in int64: the split products below stay exact


def _ceil_mul_ppm(n, f):
    """ceil(n * f / 1e6) for 0 <= n < 2**62, 0 <= f <= 1e6, without forming n * f."""
    q, r = n // ONE_MILLION, n % ONE_MILLION
    return q * f + (r * f + (ONE_MILLION - 1)) // ONE_MILLION


def _floor_mul_div(a, b, c, bits: int = 20):
    """floor(a * b / c) for 0 <= a < 2**bits, 0 <= b < c <= 2**62, by binary long multiplication.

    Keeps the invariant ``prefix(a) * b = q * c + r`` with ``0 <= r < c``; every intermediate is
    below 2**63.
    """
    def step(j, qr):
        q, r = qr
        i = bits - 1 - j
        q, r = 2 * q, 2 * r
        over = r >= c
        q, r = jnp.where(over, q + 1, q), jnp.where(over, r - c, r)
        bit = ((a >> i) & 1) == 1
        r = jnp.where(bit, r + b, r)
        over = r >= c
        return jnp.where(over, q + 1, q), jnp.where(over, r - c, r)

    q, _ = jax.lax.fori_loop(0, bits, step, (jnp.zeros_like(b), jnp.zeros_like(b)))
    return q


def _notional(base_q, price, e):
    """Truncated ``base_q * price * 10**e`` in int64, exact for |e| <= 9 and |result| < 2**62."""
    sign = jnp.sign(base_q)
    a = jnp.abs(base_q)
    p = price[None, :]
    e = e[None, :]
    up = 10 ** jnp.maximum(e, 0)  # multiply branch
    d = 10 ** jnp.maximum(-e, 0)  # divide branch: split a = ah*d + al, p = ph*d + pl
    ah, al = a // d, a % d
    ph, pl = p // d, p % d
    div_res = ah * ph * d + ah * pl + al * ph + (al * pl) // d
    mag = jnp.where(e >= 0, a * p * up, div_res)
    return sign * mag


@jax.jit
def _risk_kernel(quote, base_q, price, e, imf, mf, lo, hi, oi, user):
    scaled_inc = _floor_mul_div(ONE_MILLION - imf, jnp.maximum(oi - lo, 0), jnp.maximum(hi - lo, 1))
    scaled = jnp.where((hi == 0) | (oi <= lo), imf,
                       jnp.where(oi >= hi, ONE_MILLION, imf + scaled_inc))
    notional = _notional(base_q, price, e)
    n = jnp.abs(notional)
    eff = jnp.maximum(scaled[None, :], user)
    pos_imr = _ceil_mul_ppm(n, eff)
    base_imr = _ceil_mul_ppm(n, imf[None, :])
    pos_mmr = _ceil_mul_ppm(base_imr, mf[None, :])
    nc = quote + notional.sum(axis=1)
    imr = pos_imr.sum(axis=1)
    mmr = pos_mmr.sum(axis=1)
    return BatchedRisk(nc, imr, mmr, nc >= imr, (mmr > 0) & (nc < mmr), notional, pos_imr, pos_mmr)


def account_risk_batched(quote_balance, base_quantums, price, atomic_resolution, price_exponent,
                         initial_margin_ppm, maintenance_fraction_ppm, open_interest_lower_cap,
                         open_interest_upper_cap, open_interest_quote_quantums,
                         user_imf_ppm=None) -> BatchedRisk:
    """NC, IMR, MMR and the collateralisation tests for N accounts x M markets in one int64 kernel.

    Same rules and rounding as :func:`base_to_quote_quantums`, :func:`position_margin_requirements`
    and :func:`account_risk`; the result equals the Python-int reference exactly.

    Args:
      quote_balance: ``(N,)`` int, USDC balance per account, quote quantums.
      base_quantums: ``(N, M)`` int, signed position sizes, base quantums (0 = no position).
      price: ``(M,)`` int >= 0, oracle price integers.
      atomic_resolution: ``(M,)`` int, per market.
      price_exponent: ``(M,)`` int, per market.
      initial_margin_ppm, maintenance_fraction_ppm: ``(M,)`` int in [0, 1e6], each market's tier.
      open_interest_lower_cap, open_interest_upper_cap: ``(M,)`` int >= 0, quote quantums, lower <= upper.
      open_interest_quote_quantums: ``(M,)`` int >= 0, market OI x price, quote quantums.
      user_imf_ppm: optional ``(N, M)`` int in [0, 1e6]; 0 = no user IMF.

    Safe ranges (checked on host; outside them :class:`VenueInputError` is raised, never a
    silent int64 wrap): ``-9 <= price_exponent + atomic_resolution + 6 <= 9``; every
    ``|notional| <= 2**62``; per account ``|quote_balance| + sum |notional| <= 2**62``; OI and caps
    ``<= 2**62``. Example: BTC-USD (atomic resolution -10, price exponent -5) allows up to about
    $4.6e12 of notional per account.

    Returns: :class:`BatchedRisk` of JAX arrays (int64 / bool).

    Raises:
      VenueInputError: wrong shapes, non-integers, NaN / inf, out-of-range ppm, negative prices,
        caps or OI, lower > upper, or a value outside the safe ranges (names field and index).

    Source: v4-chain ``x/perpetuals/lib/lib.go``, ``x/perpetuals/types/liquidity_tier.go``,
    ``protocol/lib/margin/risk.go`` (see module docstring for the rounding of each step).
    """
    q = as_int_array(base_quantums, "base_quantums", ndim=2)
    n_acc, m = q.shape
    quote = as_int_array(quote_balance, "quote_balance", ndim=1)
    check_shape(quote, "quote_balance", (n_acc,))
    per_market = {}
    for name, val in (("price", price), ("atomic_resolution", atomic_resolution),
                      ("price_exponent", price_exponent), ("initial_margin_ppm", initial_margin_ppm),
                      ("maintenance_fraction_ppm", maintenance_fraction_ppm),
                      ("open_interest_lower_cap", open_interest_lower_cap),
                      ("open_interest_upper_cap", open_interest_upper_cap),
                      ("open_interest_quote_quantums", open_interest_quote_quantums)):
        a = as_int_array(val, name, ndim=1)
        check_shape(a, name, (m,))
        per_market[name] = a
    check_range(per_market["price"], "price", 0)
    for name in ("initial_margin_ppm", "maintenance_fraction_ppm"):
        check_range(per_market[name], name, 0, ONE_MILLION)
    for name in ("open_interest_lower_cap", "open_interest_upper_cap", "open_interest_quote_quantums"):
        check_range(per_market[name], name, 0, INT64_SAFE_BOUND)
    lo, hi = per_market["open_interest_lower_cap"], per_market["open_interest_upper_cap"]
    bad = lo > hi
    if bad.any():
        i = int(np.argmax(bad))
        raise VenueInputError("open_interest_lower_cap", (i,), int(lo[i]),
                              f"must be <= open_interest_upper_cap ({int(hi[i])})")
    e = per_market["price_exponent"] + per_market["atomic_resolution"] - QUOTE_ATOMIC_RESOLUTION
    bad = np.abs(e) > _MAX_DIV_EXP
    if bad.any():
        i = int(np.argmax(bad))
        raise VenueInputError("price_exponent", (i,), int(per_market["price_exponent"][i]),
                              f"price_exponent + atomic_resolution + 6 = {int(e[i])} is outside the "
                              f"int64 kernel's safe range [-{_MAX_DIV_EXP}, {_MAX_DIV_EXP}]; use the "
                              "Python-int reference")
    if user_imf_ppm is None:
        user = np.zeros_like(q)
    else:
        user = as_int_array(user_imf_ppm, "user_imf_ppm", ndim=2)
        check_shape(user, "user_imf_ppm", q.shape)
        check_range(user, "user_imf_ppm", 0, ONE_MILLION)
    # Overflow guards in float64: relative error ~1e-15 against a bound with 2x headroom.
    est = np.abs(q.astype(np.float64)) * per_market["price"].astype(np.float64)[None, :] \
        * np.power(10.0, e.astype(np.float64))[None, :]
    bad = est > INT64_SAFE_BOUND
    if bad.any():
        i = tuple(int(x) for x in np.argwhere(bad)[0])
        raise VenueInputError("base_quantums", i, int(q[i]),
                              f"notional ~{est[i]:.3e} quote quantums exceeds the int64 safe bound 2**62")
    tot = np.abs(quote.astype(np.float64)) + est.sum(axis=1)
    bad = tot > INT64_SAFE_BOUND
    if bad.any():
        i = int(np.argmax(bad))
        raise VenueInputError("base_quantums", (i,), float(tot[i]),
                              "account |quote_balance| + sum |notional| exceeds the int64 safe bound 2**62")
    return _risk_kernel(
        jnp.asarray(quote, _I64), jnp.asarray(q, _I64), jnp.asarray(per_market["price"], _I64),
        jnp.asarray(e, _I64), jnp.asarray(per_market["initial_margin_ppm"], _I64),
        jnp.asarray(per_market["maintenance_fraction_ppm"], _I64), jnp.asarray(lo, _I64),
        jnp.asarray(hi, _I64), jnp.asarray(per_market["open_interest_quote_quantums"], _I64),
        jnp.asarray(user, _I64))


@jax.jit
def _fill_kernel(pnnv, pmmr, tnc, tmmr, ps, smmr, ba):
    tm = jnp.where(tmmr > 0, tmmr, 1.0)
    abr = jnp.clip((1.0 - tnc / tm) * (ba / ONE_MILLION), 0.0, 1.0)
    abr = jnp.where(tmmr > 0, abr, 0.0)
    out = (pnnv - abr * (smmr / ONE_MILLION) * pmmr) / jnp.where(ps != 0, ps, 1.0)
    return jnp.where(ps != 0, out, 0.0)


def fillable_price_batched(pnnv, pmmr, tnc, tmmr, position_size, smmr_ppm=1_500_000,
                           ba_ppm=1_000_000) -> jax.Array:
    """Liquidation fillable price for many positions at once, float64.

    Same formula as :func:`fillable_price` evaluated in float64 (the venue uses exact rationals;
    relative error against the exact value is ~1e-15 times ``|PNNV| / |PNNV - ABR*SMMR*PMMR|``).

    Args:
      pnnv, pmmr: ``(N, M)`` int or float, position notional (signed) and MMR, quote quantums;
        e.g. ``BatchedRisk.notional`` and ``BatchedRisk.position_mmr``.
      tnc, tmmr: ``(N,)`` account NC and MMR, quote quantums (``BatchedRisk.nc``, ``.mmr``).
      position_size: ``(N, M)`` signed base quantums.
      smmr_ppm, ba_ppm: scalars, ppm (>= 0).

    Returns: ``(N, M)`` float64, quote quantums per base quantum (times ``10**(-6 - atomic_resolution)``
      for USDC per coin, as in :func:`fillable_price`); 0.0 where ``position_size == 0``;
      ABR taken as 0 where ``tmmr == 0`` (such accounts are never liquidatable).

    Raises: VenueInputError on shape mismatch, NaN / inf or negative ``pmmr`` / ``tmmr`` / ppm.

    Source: v4-chain ``protocol/x/clob/keeper/liquidations.go`` ``GetFillablePrice``.
    """
    ps = as_float_array(position_size, "position_size", ndim=2)
    shape = ps.shape
    a = as_float_array(pnnv, "pnnv", ndim=2)
    check_shape(a, "pnnv", shape)
    b = as_float_array(pmmr, "pmmr", ndim=2)
    check_shape(b, "pmmr", shape)
    check_range(b, "pmmr", 0)
    c = as_float_array(tnc, "tnc", ndim=1)
    check_shape(c, "tnc", shape[:1])
    d = as_float_array(tmmr, "tmmr", ndim=1)
    check_shape(d, "tmmr", shape[:1])
    check_range(d, "tmmr", 0)
    smmr = float(check_int(smmr_ppm, "smmr_ppm", 0))
    ba = float(check_int(ba_ppm, "ba_ppm", 0))
    f = jnp.float64
    return _fill_kernel(jnp.asarray(a, f), jnp.asarray(b, f), jnp.asarray(c, f)[:, None],
                        jnp.asarray(d, f)[:, None], jnp.asarray(ps, f), f(smmr), f(ba))
