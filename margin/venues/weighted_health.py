"""Weighted-health margin engines in the style of Mango v4 and Drift, batched over accounts in JAX.

Health of an account with token balances ``b_k`` (signed, token units) at prices ``p_k`` (USD):

    health = sum_k w_k(b_k) * b_k * p_k,   w_k = asset weight (< 1) if b_k > 0, liability weight (> 1) if < 0

with separate initial and maintenance weight sets. Health ratio = ``100 * (A - L) / L`` where
``A`` / ``L`` are the weighted assets / liabilities (``+inf`` when ``L == 0``).

Rule variants (each optional, per token):

* **Open orders** (both venues): per token market, the worse of "all bids fill" (``b_k += bids_k``,
  quote cash ``-bids_k * bid_price_k``) and "all asks fill" (``b_k -= asks_k``, cash
  ``+asks_k * ask_price_k``), compared on ``weighted token value + cash``; the cash of the chosen side
  counts unweighted. This is Drift's ``SpotPosition.get_worst_case_fill_simulation`` /
  ``OrderFillSimulation::riskier_side`` (protocol-v2 ``programs/drift/src/math/margin.rs``); Mango v4
  applies the same worst-of-two rule per Serum3/OpenBook market (``mango-v4`` ``health/cache.rs``,
  ``Serum3Info``).
* **Mango deposit / borrow scaling** (initial health only): when a bank's total deposits exceed
  ``deposit_weight_scale_start`` (USD), the initial asset weight is multiplied by
  ``scale_start / deposits``; when total borrows exceed ``borrow_weight_scale_start`` the initial
  liability weight is multiplied by ``borrows / scale_start`` (mango-v4 ``state/bank.rs``
  ``scaled_init_asset_weight`` / ``scaled_init_liab_weight``).
* **Drift size-based IMF factor** (both health types): asset weight
  ``min(w, 1.1 / (1 + imf * sqrt(|b|)))`` and liability weight ``max(w, 0.8 * w + imf * sqrt(|b|))``
  with ``|b|`` in token units (protocol-v2 ``math/margin.rs`` ``calculate_size_discount_asset_weight``,
  ``calculate_size_premium_liability_weight``; their fixed-point precisions cancel to these formulas).
* **Drift user max margin ratio** ``r`` (initial health only): asset weight ``min(w, 1 - r)``,
  liability weight ``max(w, 1 + r)`` (``apply_user_custom_margin_ratio``).

Computed in floating point (the venues use fixed point; this is a research model of their rules, not
a bit-exact replica). Prices used are single oracle prices (Mango's stable-price / Drift's TWAP
"strict" prices are not modelled).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)  # shared project decision; float64 option below
import jax.numpy as jnp  # noqa: E402

from margin.venues._validate import (  # noqa: E402
    VenueInputError,
    as_float_array,
    check_range,
    check_shape,
)

__all__ = [
    "TokenWeights",
    "HealthResult",
    "weights_from_config",
    "effective_weights",
    "health",
    "health_reference",
]


class TokenWeights(NamedTuple):
    """Per-token parameters, each a ``(K,)`` array (float).

    Attributes:
      init_asset, maint_asset: asset weights in [0, 1] (init <= maint).
      init_liab, maint_liab: liability weights >= 1 (init >= maint).
      deposit_weight_scale_start: USD; Mango initial-asset-weight scaling starts above it (inf = off).
      borrow_weight_scale_start: USD; Mango initial-liability-weight scaling (inf = off).
      imf_factor: Drift IMF factor (0 = off), per sqrt(token unit).
    """

    init_asset: Any
    maint_asset: Any
    init_liab: Any
    maint_liab: Any
    deposit_weight_scale_start: Any
    borrow_weight_scale_start: Any
    imf_factor: Any


class HealthResult(NamedTuple):
    """Output of :func:`health`: each ``(N,)`` JAX array of the chosen dtype, USD.

    Attributes:
      assets, liabilities: weighted assets and liabilities (both >= 0), USD.
      health: ``assets - liabilities``, USD.
      health_ratio: ``100 * health / liabilities`` (percent; ``+inf`` when liabilities are 0).
    """

    assets: jax.Array
    liabilities: jax.Array
    health: jax.Array
    health_ratio: jax.Array


def weights_from_config(cfg: Mapping[str, Any]) -> tuple[list[str], TokenWeights]:
    """Build ``(symbols, TokenWeights)`` from ``conf/margin/weighted_health.yaml`` (``cfg["tokens"]``).

    Missing optional keys default to off (scale starts ``inf``, ``imf_factor`` 0).

    Raises: VenueInputError naming the token when a required weight is missing.
    """
    syms, rows = [], []
    for sym, t in cfg["tokens"].items():
        try:
            rows.append((float(t["init_asset_weight"]), float(t["maint_asset_weight"]),
                         float(t["init_liab_weight"]), float(t["maint_liab_weight"]),
                         float(t.get("deposit_weight_scale_start_usd", math.inf)),
                         float(t.get("borrow_weight_scale_start_usd", math.inf)),
                         float(t.get("imf_factor", 0.0))))
        except KeyError as e:
            raise VenueInputError("tokens", str(sym), dict(t), f"missing key {e}") from None
        syms.append(str(sym))
    cols = np.array(rows, dtype=np.float64).T
    return syms, TokenWeights(*cols)


def _check_weights(w: TokenWeights, k: int) -> TokenWeights:
    out = []
    for name, v in zip(TokenWeights._fields, w):
        a = np.asarray(v, dtype=np.float64)
        if name in ("deposit_weight_scale_start", "borrow_weight_scale_start"):
            if np.isnan(a).any():
                i = tuple(int(x) for x in np.argwhere(np.isnan(a))[0])
                raise VenueInputError(f"weights.{name}", i, float(a[i]), "must not be NaN")
            check_shape(a, f"weights.{name}", (k,))
            check_range(a, f"weights.{name}", 0.0, lo_strict=True)
        else:
            a = as_float_array(a, f"weights.{name}", ndim=1)
            check_shape(a, f"weights.{name}", (k,))
        out.append(a)
    w = TokenWeights(*out)
    check_range(w.init_asset, "weights.init_asset", 0.0, 1.0)
    check_range(w.maint_asset, "weights.maint_asset", 0.0, 1.0)
    check_range(w.init_liab, "weights.init_liab", 1.0)
    check_range(w.maint_liab, "weights.maint_liab", 1.0)
    check_range(w.imf_factor, "weights.imf_factor", 0.0)
    return w


def _validate(balances, prices, weights, open_bids, open_asks, bid_prices, ask_prices, quote_index,
              total_deposits_usd, total_borrows_usd, user_margin_ratio, health_type):
    if health_type not in ("init", "maint"):
        raise VenueInputError("health_type", None, health_type, "must be 'init' or 'maint'")
    b = as_float_array(balances, "balances", ndim=2)
    n, k = b.shape
    p = as_float_array(prices, "prices", ndim=1)
    check_shape(p, "prices", (k,))
    check_range(p, "prices", 0.0, lo_strict=True)
    w = _check_weights(weights, k)
    zeros = np.zeros((n, k))
    ob = zeros if open_bids is None else as_float_array(open_bids, "open_bids", ndim=2)
    oa = zeros if open_asks is None else as_float_array(open_asks, "open_asks", ndim=2)
    check_shape(ob, "open_bids", (n, k))
    check_shape(oa, "open_asks", (n, k))
    check_range(ob, "open_bids", 0.0)
    check_range(oa, "open_asks", 0.0)
    bp = p if bid_prices is None else as_float_array(bid_prices, "bid_prices", ndim=1)
    ap = p if ask_prices is None else as_float_array(ask_prices, "ask_prices", ndim=1)
    for name, a in (("bid_prices", bp), ("ask_prices", ap)):
        check_shape(a, name, (k,))
        check_range(a, name, 0.0, lo_strict=True)
    if isinstance(quote_index, bool) or not isinstance(quote_index, (int, np.integer)) \
            or not 0 <= int(quote_index) < k:
        raise VenueInputError("quote_index", None, quote_index, f"must be an int in [0, {k})")
    for name, a in (("open_bids", ob), ("open_asks", oa)):
        bad = a[:, int(quote_index)] != 0
        if bad.any():
            i = (int(np.argmax(bad)), int(quote_index))
            raise VenueInputError(name, i, float(a[i]), "the quote token cannot have open orders")
    dep = np.zeros(k) if total_deposits_usd is None else as_float_array(total_deposits_usd, "total_deposits_usd", ndim=1)
    bor = np.zeros(k) if total_borrows_usd is None else as_float_array(total_borrows_usd, "total_borrows_usd", ndim=1)
    for name, a in (("total_deposits_usd", dep), ("total_borrows_usd", bor)):
        check_shape(a, name, (k,))
        check_range(a, name, 0.0)
    umr = np.zeros(n) if user_margin_ratio is None else as_float_array(user_margin_ratio, "user_margin_ratio", ndim=1)
    check_shape(umr, "user_margin_ratio", (n,))
    check_range(umr, "user_margin_ratio", 0.0, 1.0)
    return b, p, w, ob, oa, bp, ap, int(quote_index), dep, bor, umr


def effective_weights(weights: TokenWeights, health_type: str = "init", total_deposits_usd=None,
                      total_borrows_usd=None):
    """Asset and liability weights after Mango deposit / borrow scaling (before size and user terms).

    Args:
      weights: :class:`TokenWeights` with ``(K,)`` arrays.
      health_type: ``"init"`` or ``"maint"`` (scaling applies to ``"init"`` only).
      total_deposits_usd, total_borrows_usd: ``(K,)`` bank totals, USD (default 0: no scaling).

    Returns: ``(asset_w, liab_w)`` NumPy float64 ``(K,)``.

    Source: mango-v4 ``programs/mango-v4/src/state/bank.rs`` (``scaled_init_asset_weight``,
    ``scaled_init_liab_weight``).
    """
    k = np.asarray(weights.init_asset).shape[0]
    w = _check_weights(weights, k)
    dep = np.zeros(k) if total_deposits_usd is None else as_float_array(total_deposits_usd, "total_deposits_usd", ndim=1)
    bor = np.zeros(k) if total_borrows_usd is None else as_float_array(total_borrows_usd, "total_borrows_usd", ndim=1)
    if health_type == "maint":
        return w.maint_asset.copy(), w.maint_liab.copy()
    if health_type != "init":
        raise VenueInputError("health_type", None, health_type, "must be 'init' or 'maint'")
    with np.errstate(divide="ignore", invalid="ignore"):
        a_scale = np.where(dep > w.deposit_weight_scale_start, w.deposit_weight_scale_start / np.maximum(dep, 1e-300), 1.0)
        l_scale = np.where(bor > w.borrow_weight_scale_start, bor / w.borrow_weight_scale_start, 1.0)
    return w.init_asset * a_scale, w.init_liab * l_scale


@jax.jit
def _health_kernel(b, p, aw, lw, imf, ob, oa, bp, ap, umr, use_user):
    def weighted(x):
        s = jnp.sqrt(jnp.abs(x))
        aw_s = jnp.minimum(aw, jnp.where(imf > 0, 1.1 / (1.0 + imf * s), aw))
        lw_s = jnp.maximum(lw, jnp.where(imf > 0, 0.8 * lw + imf * s, lw))
        aw_u = jnp.where(use_user, jnp.minimum(aw_s, 1.0 - umr[:, None]), aw_s)
        lw_u = jnp.where(use_user, jnp.maximum(lw_s, 1.0 + umr[:, None]), lw_s)
        return jnp.where(x > 0, aw_u, lw_u) * x * p

    # per token: the riskier of all bids filling / all asks filling (cash leg unweighted)
    v_bid, c_bid = weighted(b + ob), -ob * bp
    v_ask, c_ask = weighted(b - oa), oa * ap
    bid_worse = (v_bid + c_bid) < (v_ask + c_ask)
    has_orders = (ob > 0) | (oa > 0)
    v = jnp.where(has_orders, jnp.where(bid_worse, v_bid, v_ask), weighted(b))
    cash = jnp.where(has_orders, jnp.where(bid_worse, c_bid, c_ask), 0.0)
    assets = jnp.sum(jnp.maximum(v, 0.0), axis=1) + jnp.maximum(cash.sum(axis=1), 0.0)
    liabs = jnp.sum(jnp.maximum(-v, 0.0), axis=1) + jnp.maximum(-cash.sum(axis=1), 0.0)
    h = assets - liabs
    ratio = jnp.where(liabs > 0, 100.0 * h / jnp.where(liabs > 0, liabs, 1.0), jnp.inf)
    return HealthResult(assets, liabs, h, ratio)


def health(balances, prices, weights: TokenWeights, *, health_type: str = "init", open_bids=None,
           open_asks=None, bid_prices=None, ask_prices=None, quote_index: int = 0,
           total_deposits_usd=None, total_borrows_usd=None, user_margin_ratio=None,
           dtype=jnp.float32) -> HealthResult:
    """Initial or maintenance health of N accounts over K tokens in one jitted kernel.

    Args:
      balances: ``(N, K)`` signed token balances, token units (deposits > 0, borrows < 0).
      prices: ``(K,)`` oracle prices, USD per token (> 0).
      weights: :class:`TokenWeights` (``(K,)`` arrays).
      health_type: ``"init"`` or ``"maint"``.
      open_bids, open_asks: optional ``(N, K)`` open order sizes, token units (>= 0); the quote token
        column must be 0.
      bid_prices, ask_prices: optional ``(K,)`` order prices, USD (default: oracle prices).
      quote_index: index of the quote token the orders settle in (its own balance is weighted normally).
      total_deposits_usd, total_borrows_usd: optional ``(K,)`` bank totals for Mango scaling, USD.
      user_margin_ratio: optional ``(N,)`` Drift user max margin ratio in [0, 1] (initial health only).
      dtype: ``jnp.float32`` (default) or ``jnp.float64``.

    Returns: :class:`HealthResult` (``(N,)`` arrays of ``dtype``, USD / percent).

    Raises: VenueInputError (a ValueError) naming field and index for NaN / inf, non-positive prices,
      negative order sizes, weights out of range, shape mismatches, bad ``health_type`` /
      ``quote_index``, raised before the kernel runs.

    Sources: see module docstring (mango-v4 ``health/cache.rs``, ``state/bank.rs``; drift protocol-v2
    ``math/margin.rs``); REFERENCE.md section 1 "Weighted-health engines".
    """
    b, p, w, ob, oa, bp, ap, _, dep, bor, umr = _validate(
        balances, prices, weights, open_bids, open_asks, bid_prices, ask_prices, quote_index,
        total_deposits_usd, total_borrows_usd, user_margin_ratio, health_type)
    aw, lw = effective_weights(w, health_type, dep, bor)
    c = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return _health_kernel(c(b), c(p), c(aw), c(lw), c(w.imf_factor), c(ob), c(oa), c(bp), c(ap),
                          c(umr), health_type == "init")


def health_reference(balances: Sequence[float], prices: Sequence[float], weights: TokenWeights, *,
                     health_type: str = "init", open_bids=None, open_asks=None, bid_prices=None,
                     ask_prices=None, quote_index: int = 0, total_deposits_usd=None,
                     total_borrows_usd=None, user_margin_ratio: float = 0.0) -> tuple[float, float]:
    """Slow, obvious one-account version of :func:`health` in Python floats (for tests).

    Args: as :func:`health` for a single account (``(K,)`` sequences).

    Returns: ``(health, health_ratio)`` in USD and percent.
    """
    k = len(prices)
    aw, lw = effective_weights(weights, health_type, total_deposits_usd, total_borrows_usd)
    imf = list(np.asarray(weights.imf_factor, dtype=float))
    ob = [0.0] * k if open_bids is None else list(open_bids)
    oa = [0.0] * k if open_asks is None else list(open_asks)
    bp = list(prices) if bid_prices is None else list(bid_prices)
    ap = list(prices) if ask_prices is None else list(ask_prices)

    def value(j: int, x: float) -> float:
        s = math.sqrt(abs(x))
        if x > 0:
            wt = aw[j] if imf[j] == 0 else min(aw[j], 1.1 / (1 + imf[j] * s))
            if health_type == "init":
                wt = min(wt, 1 - user_margin_ratio)
        else:
            wt = lw[j] if imf[j] == 0 else max(lw[j], 0.8 * lw[j] + imf[j] * s)
            if health_type == "init":
                wt = max(wt, 1 + user_margin_ratio)
        return wt * x * prices[j]

    assets = liabs = cash = 0.0
    for j in range(k):
        x = balances[j]
        if j != quote_index and (ob[j] > 0 or oa[j] > 0):
            bid = (value(j, x + ob[j]), -ob[j] * bp[j])
            ask = (value(j, x - oa[j]), oa[j] * ap[j])
            v, c = bid if sum(bid) < sum(ask) else ask
            cash += c
        else:
            v = value(j, x)
        if v > 0:
            assets += v
        else:
            liabs -= v
    if cash > 0:
        assets += cash
    else:
        liabs -= cash
    h = assets - liabs
    return h, (100.0 * h / liabs if liabs > 0 else math.inf)
