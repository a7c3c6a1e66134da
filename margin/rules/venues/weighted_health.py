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
* **Drift user max margin ratio** ``r >= 0`` (initial health only; Drift allows ``r > 1``, i.e.
  leverage below 1x): asset weight ``min(w, max(1 - r, 0))``, liability weight ``max(w, 1 + r)``,
  applied after the riskier order side has been chosen with the unadjusted weights
  (``OrderFillSimulation::apply_user_custom_margin_ratio``), never to the quote token (Drift's spot
  market 0 is valued unweighted).
* **Order cash legs are kept per market**: each market's cash leg of its chosen side is added to
  assets when positive and to liabilities when negative (Drift's ``worst_case_orders_value``), never
  netted across markets, so assets, liabilities and the health ratio match the venue (health itself
  does not depend on this).
* **Drift open-order charge**: ``open_orders`` (count per account and market) adds
  ``open_order_charge`` USD each (``OPEN_ORDER_MARGIN_REQUIREMENT`` = $0.01) to liabilities.
* **Perpetuals** (``perp_*`` arguments, :class:`PerpWeights`), two models:

  - ``perp_model="mango"`` (mango-v4 ``health/cache.rs`` ``PerpInfo``): per market the unweighted
    health unsettled P&L ``uhupnl = quote + min(bids case, asks case)``, a case being
    ``(base + orders) * w(base + orders) * price - orders * price`` (bids ``+bids``, asks ``-asks``;
    ``w`` = base asset weight when long, base liability weight when short); positive ``uhupnl`` is
    multiplied by the overall (P&L) asset weight. The result is added, in settle-token units, to the
    settle token's balance and weighted with that token's weights (so perp health is capped by and
    nets against the settle token), and counts in the Serum3 reservations' balances.
  - ``perp_model="drift"`` (protocol-v2 ``math/margin.rs`` ``calculate_perp_position_value_and_pnl``):
    requirement ``max(|base + bids|, |base - asks|) * price * ratio`` plus the open-order charge, with
    ``ratio = max(r, 0.8 r + imf * sqrt(size))``, ``r = base liability weight - 1`` (Drift has one
    margin ratio per market; the base asset weights are not used) and, for initial health,
    ``max(ratio, user_margin_ratio)``; collateral ``pnl = base * price + quote`` (``quote`` including
    unsettled funding), positive P&L weighted by the P&L asset weight (initial: discounted by
    ``min(w, 1.1 / (1 + pnl_imf * sqrt(pnl)))``) and capped at $100 for initial health
    (``MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN``); the weighted P&L is added with its sign to assets
    (Drift's total collateral, which can be negative) and the requirement to liabilities.

Computed in floating point (the venues use fixed point; the exact integer replicas are
:mod:`margin.rules.venues.drift` and :mod:`margin.rules.venues.mango`, against which this kernel is tested).
Prices used are single oracle prices (Mango's stable-price / Drift's TWAP "strict" prices are not
modelled here; the exact modules have them).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)  # shared project decision; float64 option below
import jax.numpy as jnp  # noqa: E402

from margin.rules.venues._validate import (  # noqa: E402
    VenueInputError,
    as_float_array,
    check_range,
    check_shape,
)

__all__ = [
    "TokenWeights",
    "PerpWeights",
    "perp_weights_from_config",
    "DRIFT_OPEN_ORDER_CHARGE_USD",
    "DRIFT_MAX_POSITIVE_UPNL_INIT_USD",
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


DRIFT_OPEN_ORDER_CHARGE_USD = 0.01  # protocol-v2 math/constants.rs OPEN_ORDER_MARGIN_REQUIREMENT
DRIFT_MAX_POSITIVE_UPNL_INIT_USD = 100.0  # MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN


class PerpWeights(NamedTuple):
    """Per-perp-market parameters, each a ``(P,)`` array (float).

    Attributes:
      init_base_asset, maint_base_asset: Mango base asset weights in [0, 1] (long base).
      init_base_liab, maint_base_liab: Mango base liability weights >= 1 (short base); in the Drift
        model the margin ratios are ``init_base_liab - 1`` / ``maint_base_liab - 1``.
      init_pnl_asset, maint_pnl_asset: weight of positive unsettled P&L in [0, 1] (Mango
        ``init/maint_overall_asset_weight``; Drift ``unrealized_pnl_initial/maintenance_asset_weight``).
      imf_factor: Drift perp IMF factor per sqrt(base unit) (0 = off; Drift model only).
      pnl_imf_factor: Drift ``unrealized_pnl_imf_factor`` per sqrt(USD) (0 = off; Drift model only).
    """

    init_base_asset: Any
    maint_base_asset: Any
    init_base_liab: Any
    maint_base_liab: Any
    init_pnl_asset: Any
    maint_pnl_asset: Any
    imf_factor: Any
    pnl_imf_factor: Any


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


def perp_weights_from_config(cfg: Mapping[str, Any]) -> tuple[list[str], list[str], PerpWeights]:
    """Build ``(perp symbols, settle-token symbols, PerpWeights)`` from ``cfg["perps"]`` of
    ``conf/margin/weighted_health.yaml`` (missing optional keys: IMF factors 0).

    Raises: VenueInputError naming the market when a required key is missing.
    """
    syms, settle, rows = [], [], []
    for sym, t in (cfg.get("perps") or {}).items():
        try:
            rows.append((float(t["init_base_asset_weight"]), float(t["maint_base_asset_weight"]),
                         float(t["init_base_liab_weight"]), float(t["maint_base_liab_weight"]),
                         float(t["init_pnl_asset_weight"]), float(t["maint_pnl_asset_weight"]),
                         float(t.get("imf_factor", 0.0)), float(t.get("pnl_imf_factor", 0.0))))
            settle.append(str(t.get("settle_token", cfg.get("quote_token", "USDC"))))
        except KeyError as e:
            raise VenueInputError("perps", str(sym), dict(t), f"missing key {e}") from None
        syms.append(str(sym))
    cols = np.array(rows, dtype=np.float64).reshape(-1, 8).T
    return syms, settle, PerpWeights(*cols)


def _check_perp_weights(w: PerpWeights, m: int) -> PerpWeights:
    if not isinstance(w, PerpWeights):
        raise VenueInputError("perp_weights", None, type(w).__name__, "must be a PerpWeights")
    out = []
    for name, v in zip(PerpWeights._fields, w):
        a = as_float_array(v, f"perp_weights.{name}", ndim=1)
        check_shape(a, f"perp_weights.{name}", (m,))
        out.append(a)
    w = PerpWeights(*out)
    for name in ("init_base_asset", "maint_base_asset", "init_pnl_asset", "maint_pnl_asset"):
        check_range(getattr(w, name), f"perp_weights.{name}", 0.0, 1.0)
    for name in ("init_base_liab", "maint_base_liab"):
        check_range(getattr(w, name), f"perp_weights.{name}", 1.0)
    check_range(w.imf_factor, "perp_weights.imf_factor", 0.0)
    check_range(w.pnl_imf_factor, "perp_weights.pnl_imf_factor", 0.0)
    return w


def _validate_perps(shape, base, quote, bids, asks, open_orders, prices, weights, settle_index, model):
    n, k = shape
    given = [x is not None for x in (base, prices, weights)]
    if not any(given) and all(x is None for x in (quote, bids, asks, open_orders, settle_index)):
        z = np.zeros((n, 0))
        return z, z, z, z, z, np.ones(0), None, np.zeros(0, np.int64)
    if not all(given):
        names = ("perp_base", "perp_prices", "perp_weights")
        missing = [nm for nm, g in zip(names, given) if not g]
        raise VenueInputError(missing[0], None, None, "perp_base, perp_prices and perp_weights must be given together")
    if model not in ("mango", "drift"):
        raise VenueInputError("perp_model", None, model, "must be 'mango' or 'drift'")
    pb = as_float_array(base, "perp_base", ndim=2)
    if pb.shape[0] != n:
        raise VenueInputError("perp_base", None, pb.shape, f"shape mismatch: expected ({n}, P)")
    m = pb.shape[1]
    pp = as_float_array(prices, "perp_prices", ndim=1)
    check_shape(pp, "perp_prices", (m,))
    check_range(pp, "perp_prices", 0.0, lo_strict=True)
    w = _check_perp_weights(weights, m)
    out = []
    for name, v in (("perp_quote", quote), ("perp_bids", bids), ("perp_asks", asks),
                    ("perp_open_orders", open_orders)):
        a = np.zeros((n, m)) if v is None else as_float_array(v, name, ndim=2)
        check_shape(a, name, (n, m))
        if name != "perp_quote":
            check_range(a, name, 0.0)
        out.append(a)
    if settle_index is None:
        sidx = np.zeros(m, np.int64)
    else:
        sidx = np.asarray(settle_index)
        if sidx.ndim != 1 or not (np.issubdtype(sidx.dtype, np.integer) or sidx.size == 0):
            raise VenueInputError("perp_settle_index", None, sidx, "must be a 1-d integer array")
        check_shape(sidx, "perp_settle_index", (m,))
        check_range(sidx, "perp_settle_index", 0, k - 1)
        sidx = sidx.astype(np.int64)
    return pb, out[0], out[1], out[2], out[3], pp, w, sidx


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
              total_deposits_usd, total_borrows_usd, user_margin_ratio, health_type, open_orders=None,
              open_order_charge=DRIFT_OPEN_ORDER_CHARGE_USD):
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
    check_range(umr, "user_margin_ratio", 0.0)
    oc = zeros if open_orders is None else as_float_array(open_orders, "open_orders", ndim=2)
    check_shape(oc, "open_orders", (n, k))
    check_range(oc, "open_orders", 0.0)
    charge = as_float_array(open_order_charge, "open_order_charge", ndim=0)
    check_range(charge, "open_order_charge", 0.0)
    return b, p, w, ob, oa, bp, ap, int(quote_index), dep, bor, umr, oc, float(charge)


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


@partial(jax.jit, static_argnames=("is_init", "model"))
def _health_kernel(b, p, aw, lw, imf, ob, oa, bp, ap, umr, is_init, rb, rq, bidx, qidx, oc, charge,
                   pb, pq, pbid, pask, poc, pp, pwa, pwl, pwpnl, pimf, ppimf, sidx, model, not_quote):
    k = b.shape[1]

    def weights(x):
        s = jnp.sqrt(jnp.abs(x))
        aw_s = jnp.minimum(aw, jnp.where(imf > 0, 1.1 / (1.0 + imf * s), aw))
        lw_s = jnp.maximum(lw, jnp.where(imf > 0, 0.8 * lw + imf * s, lw))
        return aw_s, lw_s

    def weighted(x):
        aw_s, lw_s = weights(x)
        return jnp.where(x > 0, aw_s, lw_s) * x * p

    def weighted_user(x):  # after the side is chosen: Drift apply_user_custom_margin_ratio
        aw_s, lw_s = weights(x)
        if is_init:  # not on the quote token (Drift values market 0 unweighted)
            u = umr[:, None] * not_quote
            aw_s = jnp.where(not_quote > 0, jnp.minimum(aw_s, jnp.maximum(1.0 - u, 0.0)), aw_s)
            lw_s = jnp.maximum(lw_s, jnp.where(not_quote > 0, 1.0 + u, lw_s))
        return jnp.where(x > 0, aw_s, lw_s) * x * p

    assets_x = jnp.zeros(b.shape[0], b.dtype)
    liabs_x = jnp.sum(oc, axis=1) * charge
    if pb.shape[1] > 0:
        settle = jax.nn.one_hot(sidx, k, dtype=b.dtype)  # (P, K)
        if model == "mango":
            def case(orders):
                net = pb + orders
                return net * jnp.where(net < 0, pwl, pwa) * pp - orders * pp
            u = pq + jnp.minimum(case(pbid), case(-pask))
            hupnl = jnp.where(u > 0, pwpnl * u, u)  # USD
            b = b + (hupnl @ settle) / p  # into settle-token units
        else:
            size = jnp.maximum(jnp.abs(pb + pbid), jnp.abs(pb - pask))
            r = pwl - 1.0
            ratio = jnp.maximum(r, jnp.where(pimf > 0, 0.8 * r + pimf * jnp.sqrt(size), r))
            if is_init:
                ratio = jnp.maximum(ratio, umr[:, None])
            req = size * pp * ratio + poc * charge
            pnl = pb * pp + pq
            if is_init:
                w_pos = jnp.where(pwpnl > 0, jnp.minimum(
                    pwpnl, jnp.where(ppimf > 0, 1.1 / (1.0 + ppimf * jnp.sqrt(jnp.abs(pnl))), pwpnl)), 0.0)
            else:
                w_pos = jnp.broadcast_to(pwpnl, pnl.shape)
            wp = jnp.where(pnl > 0, w_pos * pnl, pnl)
            if is_init:
                wp = jnp.minimum(wp, DRIFT_MAX_POSITIVE_UPNL_INIT_USD)
            assets_x = assets_x + jnp.sum(wp, axis=1)  # Drift adds signed P&L to total collateral
            liabs_x = liabs_x + jnp.sum(req, axis=1)

    # per token: the riskier of all bids filling / all asks filling, chosen with the unadjusted
    # weights; each market's cash leg counts on its own (positive: asset, negative: liability)
    v_bid, c_bid = weighted(b + ob), -ob * bp
    v_ask, c_ask = weighted(b - oa), oa * ap
    bid_worse = (v_bid + c_bid) < (v_ask + c_ask)
    has_orders = (ob > 0) | (oa > 0)
    x = jnp.where(has_orders, jnp.where(bid_worse, b + ob, b - oa), b)
    v = weighted_user(x)
    cash = jnp.where(has_orders, jnp.where(bid_worse, c_bid, c_ask), 0.0)
    assets = jnp.sum(jnp.maximum(v, 0.0) + jnp.maximum(cash, 0.0), axis=1) + assets_x
    liabs = jnp.sum(jnp.maximum(-v, 0.0) + jnp.maximum(-cash, 0.0), axis=1) + liabs_x
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
           open_orders=None, open_order_charge: float = DRIFT_OPEN_ORDER_CHARGE_USD,
           perp_base=None, perp_quote=None, perp_bids=None, perp_asks=None, perp_open_orders=None,
           perp_prices=None, perp_weights: PerpWeights | None = None, perp_settle_index=None,
           perp_model: str = "mango", dtype=jnp.float32) -> HealthResult:
    """Initial or maintenance health of N accounts over K tokens and P perp markets in one jitted kernel.

    Args:
      balances: ``(N, K)`` signed token balances, token units (deposits > 0, borrows < 0).
      prices: ``(K,)`` oracle prices, USD per token (> 0).
      weights: :class:`TokenWeights` (``(K,)`` arrays).
      health_type: ``"init"`` or ``"maint"``.
      open_bids, open_asks: optional ``(N, K)`` open order sizes, token units (>= 0); the quote token
        column must be 0.
      bid_prices, ask_prices: optional ``(K,)`` order prices, USD (default: oracle prices; Drift
        values orders at the oracle price).
      quote_index: index of the quote token the orders settle in (its own balance is weighted normally).
      total_deposits_usd, total_borrows_usd: optional ``(K,)`` bank totals for Mango scaling, USD.
      user_margin_ratio: optional ``(N,)`` Drift user max margin ratio ``>= 0`` (initial health only;
        values above 1 are allowed, as in Drift: ``max_margin_ratio`` is a u32 in 1e4 units). It does
        not apply to the quote token (Drift values spot market 0 unweighted).
      reserved_base, reserved_quote: optional ``(N, M)`` funds reserved in M Mango Serum3/OpenBook
        spot markets (token units of the market's base / quote token, >= 0; not included in
        ``balances``). Each market counts at the worse of "all reserved becomes base" and "all becomes
        quote" (converted at oracle prices), added on top of the token's balance plus every market's
        reservations (mango-v4 ``health/cache.rs`` ``Serum3Info::health_contribution``), with the
        Mango-scaled weights (no Drift terms).
      market_base_index, market_quote_index: ``(M,)`` token indices of each market's base / quote.
      open_orders: optional ``(N, K)`` number of open spot orders per market (Drift), each adding
        ``open_order_charge`` USD (default $0.01, ``OPEN_ORDER_MARGIN_REQUIREMENT``) to liabilities.
      perp_base: optional ``(N, P)`` signed perp base positions, base units.
      perp_quote: ``(N, P)`` perp quote positions including unsettled funding and taker fills, USD
        (default 0); P&L = ``base * price + quote``.
      perp_bids, perp_asks: ``(N, P)`` open perp order sizes, base units (>= 0; default 0).
      perp_open_orders: ``(N, P)`` number of open perp orders (Drift charge; default 0).
      perp_prices: ``(P,)`` perp oracle prices, USD per base unit (> 0).
      perp_weights: :class:`PerpWeights` (``(P,)`` arrays).
      perp_settle_index: ``(P,)`` settle-token index of each perp (Mango model; default 0).
      perp_model: ``"mango"`` or ``"drift"`` (see the module docstring).
      dtype: ``jnp.float32`` (default, for speed) or ``jnp.float64`` (for comparisons with the
        venues' own numbers).

    Returns: :class:`HealthResult` (``(N,)`` arrays of ``dtype``, USD / percent). For the Drift model
      ``assets`` is Drift's total collateral and ``liabilities`` its margin requirement.

    Raises: VenueInputError (a ValueError) naming field and index for NaN / inf, non-positive prices,
      negative order sizes / counts, weights out of range, shape mismatches, bad ``health_type`` /
      ``quote_index`` / ``perp_model``, raised before the kernel runs.

    Sources: see module docstring (mango-v4 ``health/cache.rs``, ``state/bank.rs``; drift protocol-v2
    ``math/margin.rs``, ``state/user.rs``); REFERENCE.md section 1 "Weighted-health engines".
    """
    b, p, w, ob, oa, bp, ap, qi, dep, bor, umr, oc, charge = _validate(
        balances, prices, weights, open_bids, open_asks, bid_prices, ask_prices, quote_index,
        total_deposits_usd, total_borrows_usd, user_margin_ratio, health_type, open_orders, open_order_charge)
    rb, rq, bidx, qidx = _validate_markets(b.shape, reserved_base, reserved_quote, market_base_index,
                                           market_quote_index)
    pb, pq, pbid, pask, poc, pp, pw, sidx = _validate_perps(
        b.shape, perp_base, perp_quote, perp_bids, perp_asks, perp_open_orders, perp_prices, perp_weights,
        perp_settle_index, perp_model)
    aw, lw = effective_weights(w, health_type, dep, bor)
    init = health_type == "init"
    if pw is None:
        pwa = pwl = pwpnl = pimf = ppimf = np.ones(0)
    else:
        pwa = pw.init_base_asset if init else pw.maint_base_asset
        pwl = pw.init_base_liab if init else pw.maint_base_liab
        pwpnl = pw.init_pnl_asset if init else pw.maint_pnl_asset
        pimf, ppimf = pw.imf_factor, pw.pnl_imf_factor
    c = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return _health_kernel(c(b), c(p), c(aw), c(lw), c(w.imf_factor), c(ob), c(oa), c(bp), c(ap),
                          c(umr), init, c(rb), c(rq), jnp.asarray(bidx, jnp.int32),
                          jnp.asarray(qidx, jnp.int32), c(oc), c(charge), c(pb), c(pq), c(pbid), c(pask),
                          c(poc), c(pp), c(pwa), c(pwl), c(pwpnl), c(pimf), c(ppimf),
                          jnp.asarray(sidx, jnp.int32), perp_model, c(np.arange(b.shape[1]) != qi))


def health_reference(balances: Sequence[float], prices: Sequence[float], weights: TokenWeights, *,
                     health_type: str = "init", open_bids=None, open_asks=None, bid_prices=None,
                     ask_prices=None, quote_index: int = 0, total_deposits_usd=None,
                     total_borrows_usd=None, user_margin_ratio: float = 0.0, reserved_base=(),
                     reserved_quote=(), market_base_index=(), market_quote_index=(), open_orders=None,
                     open_order_charge: float = DRIFT_OPEN_ORDER_CHARGE_USD, perp_base=(), perp_quote=None,
                     perp_bids=None, perp_asks=None, perp_open_orders=None, perp_prices=(),
                     perp_weights: PerpWeights | None = None, perp_settle_index=None,
                     perp_model: str = "mango") -> tuple[float, float, float, float]:
    """Slow, obvious one-account version of :func:`health` in Python floats (for tests).

    Args: as :func:`health` for a single account: ``(K,)`` sequences for balances, orders and order
      counts, ``(M,)`` sequences for ``reserved_base`` / ``reserved_quote`` / market indices, ``(P,)``
      sequences for the perp arguments, a float ``user_margin_ratio``.

    Returns: ``(health, health_ratio, assets, liabilities)`` in USD, percent, USD, USD.
    """
    k, m = len(prices), len(perp_base)
    init = health_type == "init"
    aw, lw = effective_weights(weights, health_type, total_deposits_usd, total_borrows_usd)
    imf = list(np.asarray(weights.imf_factor, dtype=float))
    ob = [0.0] * k if open_bids is None else list(open_bids)
    oa = [0.0] * k if open_asks is None else list(open_asks)
    oc = [0.0] * k if open_orders is None else list(open_orders)
    bp = list(prices) if bid_prices is None else list(bid_prices)
    ap = list(prices) if ask_prices is None else list(ask_prices)
    zeros = [0.0] * m
    pq = zeros if perp_quote is None else list(perp_quote)
    pbid = zeros if perp_bids is None else list(perp_bids)
    pask = zeros if perp_asks is None else list(perp_asks)
    poc = zeros if perp_open_orders is None else list(perp_open_orders)
    sidx = [0] * m if perp_settle_index is None else list(perp_settle_index)
    bal = [float(x) for x in balances]
    assets = 0.0
    liabs = sum(oc) * open_order_charge
    for j in range(m):
        pw = {f: float(np.asarray(getattr(perp_weights, f))[j]) for f in PerpWeights._fields}
        wa = pw["init_base_asset"] if init else pw["maint_base_asset"]
        wl = pw["init_base_liab"] if init else pw["maint_base_liab"]
        wpnl = pw["init_pnl_asset"] if init else pw["maint_pnl_asset"]
        px, base = perp_prices[j], perp_base[j]
        if perp_model == "mango":  # health/cache.rs PerpInfo::unweighted_health_unsettled_pnl
            cases = []
            for orders in (pbid[j], -pask[j]):
                net = base + orders
                cases.append(net * (wl if net < 0 else wa) * px - orders * px)
            u = pq[j] + min(cases)
            hupnl = wpnl * u if u > 0 else u
            bal[sidx[j]] += hupnl / prices[sidx[j]]
        else:  # math/margin.rs calculate_perp_position_value_and_pnl
            size = max(abs(base + pbid[j]), abs(base - pask[j]))
            r = wl - 1.0
            ratio = r if pw["imf_factor"] == 0 else max(r, 0.8 * r + pw["imf_factor"] * math.sqrt(size))
            if init:
                ratio = max(ratio, user_margin_ratio)
            liabs += size * px * ratio + poc[j] * open_order_charge
            pnl = base * px + pq[j]
            if pnl > 0:
                if init:
                    wpos = 0.0 if wpnl == 0 else (wpnl if pw["pnl_imf_factor"] == 0 else
                                                   min(wpnl, 1.1 / (1 + pw["pnl_imf_factor"] * math.sqrt(pnl))))
                    pnl = min(wpos * pnl, DRIFT_MAX_POSITIVE_UPNL_INIT_USD)
                else:
                    pnl = wpnl * pnl
            assets += pnl  # signed: Drift's add_cross_margin_total_collateral(weighted_pnl)

    def weight(j: int, x: float, user: bool) -> float:
        s = math.sqrt(abs(x))
        if x > 0:
            wt = aw[j] if imf[j] == 0 else min(aw[j], 1.1 / (1 + imf[j] * s))
            if user and init and j != quote_index:
                wt = min(wt, max(1 - user_margin_ratio, 0.0))
        else:
            wt = lw[j] if imf[j] == 0 else max(lw[j], 0.8 * lw[j] + imf[j] * s)
            if user and init and j != quote_index:
                wt = max(wt, 1 + user_margin_ratio)
        return wt * x * prices[j]

    for j in range(k):
        x = bal[j]
        if j != quote_index and (ob[j] > 0 or oa[j] > 0):
            bid = (x + ob[j], -ob[j] * bp[j])
            ask = (x - oa[j], oa[j] * ap[j])
            (x, c) = bid if weight(j, bid[0], False) + bid[1] < weight(j, ask[0], False) + ask[1] else ask
            if c > 0:
                assets += c
            else:
                liabs -= c
        v = weight(j, x, True)
        if v > 0:
            assets += v
        else:
            liabs -= v
    # Mango Serum3 reservations, market by market (mango-v4 Serum3Info::health_contribution)
    markets = list(zip(reserved_base, reserved_quote, market_base_index, market_quote_index))
    as_b = [rb + rq * prices[qi] / prices[bi] for rb, rq, bi, qi in markets]
    as_q = [rq + rb * prices[bi] / prices[qi] for rb, rq, bi, qi in markets]
    max_bal = list(bal)
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
    return h, (100.0 * h / liabs if liabs > 0 else math.inf), assets, liabs
