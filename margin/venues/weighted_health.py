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
  ``OrderFillSimulation::riskier_side`` (protocol-v2 ``programs/drift/src/math/margin.rs``).
* **Mango Serum3 / OpenBook reserved funds** (optional ``reserved_base`` / ``reserved_quote`` per spot
  market): each market counts at the worse of "all reserved funds end up as base" and "all end up as
  quote" (converted at oracle prices), each valued as if added last to the token's balance plus all
  markets' reservations (mango-v4 ``health/cache.rs`` ``Serum3Info::health_contribution``); this
  reproduces the published ``test_health1`` cases of mango-v4 ``state/health.rs``.
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


def _validate_markets(shape, reserved_base, reserved_quote, base_index, quote_index):
    n, k = shape
    given = [x is not None for x in (reserved_base, reserved_quote, base_index, quote_index)]
    if not any(given):
        z = np.zeros((n, 0))
        return z, z, np.zeros(0, np.int64), np.zeros(0, np.int64)
    if not all(given):
        names = ("reserved_base", "reserved_quote", "market_base_index", "market_quote_index")
        missing = [nm for nm, g in zip(names, given) if not g]
        raise VenueInputError(missing[0], None, None, "reserved_base, reserved_quote, market_base_index and "
                              "market_quote_index must be given together")
    idx = []
    for name, v in (("market_base_index", base_index), ("market_quote_index", quote_index)):
        a = np.asarray(v)
        if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
            raise VenueInputError(name, None, a, "must be a 1-d integer array")
        check_range(a, name, 0, k - 1)
        idx.append(a.astype(np.int64))
    m = idx[0].shape[0]
    check_shape(idx[1], "market_quote_index", (m,))
    same = idx[0] == idx[1]
    if same.any():
        i = int(np.argmax(same))
        raise VenueInputError("market_quote_index", (i,), int(idx[1][i]), "must differ from market_base_index")
    out = []
    for name, v in (("reserved_base", reserved_base), ("reserved_quote", reserved_quote)):
        a = as_float_array(v, name, ndim=2)
        check_shape(a, name, (n, m))
        check_range(a, name, 0.0)
        out.append(a)
    return out[0], out[1], idx[0], idx[1]


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
def _health_kernel(b, p, aw, lw, imf, ob, oa, bp, ap, umr, use_user, rb, rq, bidx, qidx):
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
    assets = assets + _serum3_contribution(b, p, aw, lw, rb, rq, bidx, qidx)
    h = assets - liabs
    ratio = jnp.where(liabs > 0, 100.0 * h / jnp.where(liabs > 0, liabs, 1.0), jnp.inf)
    return HealthResult(assets, liabs, h, ratio)


def _serum3_contribution(b, p, aw, lw, rb, rq, bidx, qidx):
    """Mango v4 ``Serum3Info::health_contribution`` summed over markets, ``(N,)`` (>= 0)."""
    k = b.shape[1]
    pb, pq = p[bidx], p[qidx]
    as_base = rb + rq * pq / pb
    as_quote = rq + rb * pb / pq
    boh = jax.nn.one_hot(bidx, k, dtype=b.dtype)  # (M, K)
    qoh = jax.nn.one_hot(qidx, k, dtype=b.dtype)
    max_bal = b + as_base @ boh + as_quote @ qoh  # balance plus every market's reservations

    def effect(mb, res, w_a, w_l, px):
        # reserved funds added last: the part above zero counts as asset, the rest repays liabilities
        asset = jnp.where(mb >= res, res, jnp.where(mb < 0, 0.0, mb))
        return asset * w_a * px + (res - asset) * w_l * px

    e_base = effect(max_bal[:, bidx], as_base, aw[bidx], lw[bidx], pb)
    e_quote = effect(max_bal[:, qidx], as_quote, aw[qidx], lw[qidx], pq)
    return jnp.sum(jnp.minimum(e_base, e_quote), axis=1)


def health(balances, prices, weights: TokenWeights, *, health_type: str = "init", open_bids=None,
           open_asks=None, bid_prices=None, ask_prices=None, quote_index: int = 0,
           total_deposits_usd=None, total_borrows_usd=None, user_margin_ratio=None,
           reserved_base=None, reserved_quote=None, market_base_index=None, market_quote_index=None,
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
      reserved_base, reserved_quote: optional ``(N, M)`` funds reserved in M Mango Serum3/OpenBook
        spot markets (token units of the market's base / quote token, >= 0; not included in
        ``balances``). Each market counts at the worse of "all reserved becomes base" and "all becomes
        quote" (converted at oracle prices), added on top of the token's balance plus every market's
        reservations (mango-v4 ``health/cache.rs`` ``Serum3Info::health_contribution``), with the
        Mango-scaled weights (no Drift terms).
      market_base_index, market_quote_index: ``(M,)`` token indices of each market's base / quote.
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
    rb, rq, bidx, qidx = _validate_markets(b.shape, reserved_base, reserved_quote, market_base_index,
                                           market_quote_index)
    aw, lw = effective_weights(w, health_type, dep, bor)
    c = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return _health_kernel(c(b), c(p), c(aw), c(lw), c(w.imf_factor), c(ob), c(oa), c(bp), c(ap),
                          c(umr), health_type == "init", c(rb), c(rq), jnp.asarray(bidx, jnp.int32),
                          jnp.asarray(qidx, jnp.int32))


def health_reference(balances: Sequence[float], prices: Sequence[float], weights: TokenWeights, *,
                     health_type: str = "init", open_bids=None, open_asks=None, bid_prices=None,
                     ask_prices=None, quote_index: int = 0, total_deposits_usd=None,
                     total_borrows_usd=None, user_margin_ratio: float = 0.0, reserved_base=(),
                     reserved_quote=(), market_base_index=(), market_quote_index=()) -> tuple[float, float]:
    """Slow, obvious one-account version of :func:`health` in Python floats (for tests).

    Args: as :func:`health` for a single account: ``(K,)`` sequences for balances and orders,
      ``(M,)`` sequences for ``reserved_base`` / ``reserved_quote`` / market indices, a float
      ``user_margin_ratio``.

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
    # Mango Serum3 reservations, market by market (mango-v4 Serum3Info::health_contribution)
    markets = list(zip(reserved_base, reserved_quote, market_base_index, market_quote_index))
    as_b = [rb + rq * prices[qi] / prices[bi] for rb, rq, bi, qi in markets]
    as_q = [rq + rb * prices[bi] / prices[qi] for rb, rq, bi, qi in markets]
    max_bal = list(balances)
    for (_, _, bi, qi), xb, xq in zip(markets, as_b, as_q):
        max_bal[bi] += xb
        max_bal[qi] += xq

    def effect(tok: int, res: float) -> float:
        mb = max_bal[tok]
        asset = res if mb >= res else (0.0 if mb < 0 else mb)
        return (asset * aw[tok] + (res - asset) * lw[tok]) * prices[tok]

    for (_, _, bi, qi), xb, xq in zip(markets, as_b, as_q):
        assets += min(effect(bi, xb), effect(qi, xq))
    h = assets - liabs
    return h, (100.0 * h / liabs if liabs > 0 else math.inf)
