"""Multi-asset collateral valued with haircuts, and Aave-style health in floating point, batched in JAX.

* Static haircuts by asset class from ``conf/margin/collateral.yaml`` (typical ranges, REFERENCE.md
  section 1 "Collateral haircuts": stablecoins 0-5 %, BTC/ETH 10-20 %, liquid staking tokens 15-30 %,
  long-tail 30-50 %+ or excluded).
* Dynamic VaR haircut ``h = z_a * sigma * sqrt(T / days_per_year) + c * sqrt(size / depth)``, capped at 1:
  a one-sided normal quantile of the price move over the liquidation horizon ``T`` plus a square-root
  market-impact add-on for the position size relative to market depth (REFERENCE.md; the square-root
  impact law: e.g. Almgren et al. 2005, "Direct estimation of equity market impact", Risk).
* Aave-style health factor ``HF = sum_k c_k p_k LT_k / sum_k d_k p_k``, the collateral-weighted average
  liquidation threshold, and the liquidation price of an asset (aave-v3-core ``GenericLogic.sol``
  formula, without the contract's integer rounding; the exact-integer version is
  :mod:`margin.rules.venues.aave`).

Shapes: N accounts x K assets. Balances in asset units, prices in USD per unit, haircuts and LTs as
fractions in [0, 1]. Kernels are jitted, cast to ``dtype`` (``jnp.float32`` default, ``jnp.float64``
available). Inputs are checked on host first; bad input raises :class:`VenueInputError` (a
``ValueError``) naming field, index and value.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import jax
import numpy as np
from scipy.stats import norm

jax.config.update("jax_enable_x64", True)  # shared project decision (margin/__init__.py does the same)
import jax.numpy as jnp  # noqa: E402

from margin.rules.venues._validate import (  # noqa: E402
    VenueInputError,
    as_float_array,
    check_range,
    check_shape,
)

__all__ = [
    "VenueInputError",
    "CollateralValue",
    "LiquidationPrice",
    "static_haircuts",
    "haircut_table_from_config",
    "var_haircut",
    "collateral_value",
    "margin_shortfall",
    "health_factor",
    "average_liquidation_threshold",
    "liquidation_price",
]


def haircut_table_from_config(cfg: Mapping[str, Any]) -> dict[str, float]:
    """``{asset_class: haircut}`` from ``conf/margin/collateral.yaml`` (``cfg["asset_classes"]``).

    Each entry is a mapping with key ``haircut`` (fraction in [0, 1]).

    Raises: VenueInputError for a missing key or a haircut outside [0, 1].
    """
    out = {}
    for cls, v in cfg["asset_classes"].items():
        if "haircut" not in v:
            raise VenueInputError("asset_classes", str(cls), dict(v), "missing key 'haircut'")
        h = float(v["haircut"])
        if not 0.0 <= h <= 1.0:
            raise VenueInputError(f"asset_classes.{cls}.haircut", None, h, "must be in [0, 1]")
        out[str(cls)] = h
    return out


def static_haircuts(asset_classes: Sequence[str], table: Mapping[str, float]) -> np.ndarray:
    """Haircut of each asset from its class.

    Args:
      asset_classes: length-K class names (e.g. ``"stablecoin"``, ``"btc_eth"``).
      table: ``{class: haircut}`` (fractions in [0, 1]), e.g. from :func:`haircut_table_from_config`.

    Returns: ``(K,)`` float64 NumPy array of haircuts.

    Raises: VenueInputError naming the index of an unknown asset class.
    """
    out = np.empty(len(asset_classes))
    for i, c in enumerate(asset_classes):
        if c not in table:
            raise VenueInputError("asset_classes", (i,), c, f"unknown asset class (known: {sorted(table)})")
        out[i] = table[c]
    check_range(out, "haircut table", 0.0, 1.0)
    return out


@jax.jit
def _var_kernel(z, sigma, horizon_years, coeff, size, depth):
    add_on = coeff * jnp.sqrt(size / depth)
    return jnp.minimum(z * sigma * jnp.sqrt(horizon_years) + add_on, 1.0)


def var_haircut(sigma_annual, horizon_days, *, confidence: float = 0.99, position_value=None,
                market_depth=None, liquidity_coeff=0.0, days_per_year: float = 365.0,
                dtype=jnp.float32) -> jax.Array:
    """Dynamic VaR haircut ``min(1, z_a * sigma * sqrt(T / days_per_year) + c * sqrt(size / depth))``.

    Args:
      sigma_annual: annualised volatility of log returns, ``(K,)`` or broadcastable (>= 0).
      horizon_days: liquidation horizon in days (> 0), scalar or ``(K,)``.
      confidence: one-sided level a in (0.5, 1); ``z_a = Phi^-1(a)`` (scipy ``norm.ppf``).
      position_value: optional ``(N, K)`` or ``(K,)`` absolute position size, USD (>= 0).
      market_depth: USD depth the position is liquidated into, ``(K,)`` (> 0); required with
        ``position_value``.
      liquidity_coeff: add-on coefficient ``c`` (>= 0), scalar or ``(K,)``.
      days_per_year: 365 for crypto (trades every day), 252 for exchange-traded assets.
      dtype: output dtype.

    Returns: haircut fractions in [0, 1], shape of the broadcast inputs (``(K,)`` or ``(N, K)``).

    Raises: VenueInputError for NaN / inf, negative vol / size / coefficient, non-positive horizon or
      depth, confidence outside (0.5, 1), or shapes that do not broadcast.

    Source: REFERENCE.md section 1 "Collateral haircuts" (VaR haircut plus square-root liquidity add-on).
    """
    if not isinstance(confidence, (int, float)) or not 0.5 < float(confidence) < 1.0:
        raise VenueInputError("confidence", None, confidence, "must be in (0.5, 1)")
    s = as_float_array(sigma_annual, "sigma_annual")
    check_range(s, "sigma_annual", 0.0)
    t = as_float_array(horizon_days, "horizon_days")
    check_range(t, "horizon_days", 0.0, lo_strict=True)
    dpy = as_float_array(days_per_year, "days_per_year")
    check_range(dpy, "days_per_year", 0.0, lo_strict=True)
    c = as_float_array(liquidity_coeff, "liquidity_coeff")
    check_range(c, "liquidity_coeff", 0.0)
    if position_value is None:
        size, depth = np.zeros(()), np.ones(())
    else:
        if market_depth is None:
            raise VenueInputError("market_depth", None, None, "required when position_value is given")
        size = as_float_array(position_value, "position_value")
        check_range(size, "position_value", 0.0)
        depth = as_float_array(market_depth, "market_depth")
        check_range(depth, "market_depth", 0.0, lo_strict=True)
    try:
        np.broadcast_shapes(s.shape, t.shape, c.shape, size.shape, depth.shape)
    except ValueError:
        raise VenueInputError("position_value", None, (s.shape, t.shape, size.shape, depth.shape),
                              "shapes of sigma_annual, horizon_days, position_value, market_depth do not broadcast") from None
    z = float(norm.ppf(float(confidence)))
    f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return _var_kernel(f(z), f(s), f(t / dpy), f(c), f(size), f(depth))


class CollateralValue(NamedTuple):
    """Output of :func:`collateral_value`; each ``(N,)`` of the chosen dtype, USD.

    Attributes:
      gross: sum of positive balances x price.
      haircut_value: sum of positive balances x price x (1 - haircut).
      debt: sum of |negative balances| x price.
      net: ``haircut_value - debt`` (excess collateral; negative = shortfall).
    """

    gross: jax.Array
    haircut_value: jax.Array
    debt: jax.Array
    net: jax.Array


def _balances_prices(balances, prices, allow_negative: bool, field: str = "balances"):
    b = as_float_array(balances, field, ndim=2)
    p = as_float_array(prices, "prices", ndim=1)
    check_shape(p, "prices", (b.shape[1],))
    check_range(p, "prices", 0.0, lo_strict=True)
    if not allow_negative:
        check_range(b, field, 0.0)
    return b, p


def _per_asset(x, field: str, n: int, k: int, lo: float, hi: float) -> np.ndarray:
    a = as_float_array(x, field)
    if a.shape not in ((k,), (n, k)):
        raise VenueInputError(field, None, a.shape, f"shape mismatch: expected ({k},) or ({n}, {k})")
    check_range(a, field, lo, hi)
    return a


@jax.jit
def _value_kernel(b, p, h):
    v = b * p
    gross = jnp.sum(jnp.maximum(v, 0.0), axis=1)
    hv = jnp.sum(jnp.maximum(v, 0.0) * (1.0 - h), axis=1)
    debt = jnp.sum(jnp.maximum(-v, 0.0), axis=1)
    return CollateralValue(gross, hv, debt, hv - debt)


def collateral_value(balances, prices, haircuts, *, dtype=jnp.float32) -> CollateralValue:
    """Haircut value of multi-asset balances for N accounts at once.

    Args:
      balances: ``(N, K)`` signed balances, asset units (negative = borrowed).
      prices: ``(K,)`` USD per unit (> 0).
      haircuts: ``(K,)`` or ``(N, K)`` fractions in [0, 1] (static table or :func:`var_haircut`).
      dtype: ``jnp.float32`` (default) or ``jnp.float64``.

    Returns: :class:`CollateralValue` (USD).

    Raises: VenueInputError for NaN / inf, non-positive prices, haircuts outside [0, 1], shape mismatch.
    """
    b, p = _balances_prices(balances, prices, allow_negative=True)
    h = _per_asset(haircuts, "haircuts", *b.shape, 0.0, 1.0)
    f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return _value_kernel(f(b), f(p), f(h))


def margin_shortfall(balances, prices, haircuts, requirement_usd=0.0, *, dtype=jnp.float32) -> jax.Array:
    """``max(0, requirement + debt - haircut value)`` per account, USD ``(N,)``.

    Args: as :func:`collateral_value`; ``requirement_usd``: scalar or ``(N,)`` margin requirement
      (>= 0) to be covered on top of the debt.

    Returns: ``(N,)`` shortfall (0 when fully collateralised). Non-decreasing in every haircut.
    """
    b, _ = _balances_prices(balances, prices, allow_negative=True)
    r = as_float_array(requirement_usd, "requirement_usd")
    if r.shape not in ((), (b.shape[0],)):
        raise VenueInputError("requirement_usd", None, r.shape, f"shape mismatch: expected () or ({b.shape[0]},)")
    check_range(r, "requirement_usd", 0.0)
    cv = collateral_value(balances, prices, haircuts, dtype=dtype)
    return jnp.maximum(jnp.asarray(r, dtype) - cv.net, 0.0)


@jax.jit
def _hf_kernel(c, d, p, lt):
    cv = c * p
    weighted = jnp.sum(cv * lt, axis=1)
    debt = jnp.sum(d * p, axis=1)
    total = jnp.sum(cv, axis=1)
    hf = jnp.where(debt > 0, weighted / jnp.where(debt > 0, debt, 1.0), jnp.inf)
    avg_lt = jnp.where(total > 0, weighted / jnp.where(total > 0, total, 1.0), 0.0)
    return hf, avg_lt


def _aave_inputs(collateral, debt, prices, liquidation_threshold):
    c, p = _balances_prices(collateral, prices, allow_negative=False, field="collateral")
    d = as_float_array(debt, "debt", ndim=2)
    check_shape(d, "debt", c.shape)
    check_range(d, "debt", 0.0)
    lt = _per_asset(liquidation_threshold, "liquidation_threshold", *c.shape, 0.0, 1.0)
    return c, d, p, lt


def health_factor(collateral, debt, prices, liquidation_threshold, *, dtype=jnp.float32) -> jax.Array:
    """Aave-style health factor ``sum_k c_k p_k LT_k / sum_k d_k p_k`` for N accounts (float).

    Args:
      collateral: ``(N, K)`` collateral balances, asset units (>= 0).
      debt: ``(N, K)`` debt balances, asset units (>= 0).
      prices: ``(K,)`` USD per unit (> 0).
      liquidation_threshold: ``(K,)`` or ``(N, K)`` LT fractions in [0, 1] (Aave bps / 1e4).
      dtype: ``jnp.float32`` (default) or ``jnp.float64``.

    Returns: ``(N,)`` HF (``+inf`` when there is no debt); liquidatable when < 1.

    Raises: VenueInputError (negative balances, NaN / inf, non-positive prices, LT outside [0, 1],
      shape mismatch), before the kernel runs.

    Source: aave-v3-core ``GenericLogic.calculateUserAccountData`` (HF = total collateral x average LT /
    total debt; exact-integer version in :func:`margin.rules.venues.aave.user_account_data`).
    """
    c, d, p, lt = _aave_inputs(collateral, debt, prices, liquidation_threshold)
    f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return _hf_kernel(f(c), f(d), f(p), f(lt))[0]


def average_liquidation_threshold(collateral, prices, liquidation_threshold, *,
                                  dtype=jnp.float32) -> jax.Array:
    """Collateral-value-weighted average LT, ``(N,)`` fractions (0 for accounts without collateral).

    Args: as :func:`health_factor` (no debt argument).

    Source: aave-v3-core ``GenericLogic.calculateUserAccountData`` (``avgLiquidationThreshold``).
    """
    c0, _ = _balances_prices(collateral, prices, allow_negative=False, field="collateral")
    c, _, p, lt = _aave_inputs(c0, np.zeros_like(c0), prices, liquidation_threshold)
    f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return _hf_kernel(f(c), f(np.zeros_like(c)), f(p), f(lt))[1]


class LiquidationPrice(NamedTuple):
    """Output of :func:`liquidation_price`; each ``(N,)``.

    Attributes:
      price: USD per unit of the asset at which HF = 1 (0.0 where ``direction == 0``).
      direction: +1 liquidated if the price falls below ``price``; -1 if it rises above; 0 if no
        positive price of this asset makes the account liquidatable (or it always is: see
        ``always_liquidatable``).
      always_liquidatable: True where HF < 1 at every positive price of the asset.
    """

    price: jax.Array
    direction: jax.Array
    always_liquidatable: jax.Array


@jax.jit
def _liq_kernel(c, d, p, lt, onehot):
    other = 1.0 - onehot
    num = jnp.sum(d * p * other, axis=1) - jnp.sum(c * p * lt * other, axis=1)
    den = jnp.sum((c * lt - d) * onehot, axis=1)  # HF = 1  <=>  p_k * den = num
    safe = jnp.where(den != 0, den, 1.0)
    pk = num / safe
    # den > 0: HF rises with p_k -> liquidated below pk (none if pk <= 0)
    # den < 0: HF falls with p_k -> liquidated above pk (always if pk <= 0)
    # den == 0: HF does not depend on p_k -> always if num > 0, never otherwise
    direction = jnp.where((den > 0) & (pk > 0), 1, jnp.where((den < 0) & (pk > 0), -1, 0))
    always = ((den < 0) & (pk <= 0)) | ((den == 0) & (num > 0))
    price = jnp.where(direction != 0, pk, 0.0)
    return LiquidationPrice(price, direction.astype(jnp.int32), always)


def liquidation_price(collateral, debt, prices, liquidation_threshold, asset_index: int, *,
                      dtype=jnp.float32) -> LiquidationPrice:
    """Price of asset ``asset_index`` at which the Aave-style HF equals 1, other prices fixed.

    Solves ``sum_k c_k p_k LT_k = sum_k d_k p_k`` for ``p_asset``; handles an asset that is both
    collateral and debt.

    Args: as :func:`health_factor`; ``asset_index``: int in [0, K).

    Returns: :class:`LiquidationPrice` (``(N,)`` arrays; ``price`` USD per unit).

    Raises: VenueInputError as :func:`health_factor`, or for an out-of-range ``asset_index``.

    Source: HF of aave-v3-core ``GenericLogic.sol``; REFERENCE.md section 1 "Aave v3".
    """
    c, d, p, lt = _aave_inputs(collateral, debt, prices, liquidation_threshold)
    k = c.shape[1]
    if isinstance(asset_index, bool) or not isinstance(asset_index, (int, np.integer)) \
            or not 0 <= int(asset_index) < k:
        raise VenueInputError("asset_index", None, asset_index, f"must be an int in [0, {k})")
    onehot = np.zeros(k)
    onehot[int(asset_index)] = 1.0
    f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return _liq_kernel(f(c), f(d), f(p), f(lt), f(onehot))

