"""Liquidation simulator: a venue's accounts, margin checks, liquidations, insurance fund and ADL over time.

The whole path is one ``jax.lax.scan`` over steps (days by default; hourly steps with ``steps_per_day=24``, see
:mod:`margin.simulation.intraday`) and vectorised over N
accounts. Money is conserved: every transfer has two sides in the per-step :class:`Ledger` and a test checks
``balances + insurance_fund + counterparties - net_deposits == initial`` at every step, together with
``bad_debt = paid_by_fund + paid_by_adl + socialised`` and ``fund = fund_0 + fees - paid_by_fund``.

Order of events in step t (all prices are closes of step t):

1. **Settlement** at the oracle price O_t: perpetual variation margin ``q (O_t - O_{t-1})`` moves between the
   account and the counterparties (the rest of the market, one ledger account); expiring option series pay their
   intrinsic value and are re-opened at the same moneyness (premium paid at the model price).
2. **Re-entry**: accounts fully liquidated ``reentry_days`` ago re-open their original book with fresh outside
   money (keeps the population stable over multi-year runs; 0 disables).
3. **Requirements**: per asset, the worst loss over a SPAN-style grid (price moves of 0, +-1/3, +-2/3, +-1 x the
   policy's scan range with volatility up / down, and +-2 x scan range counted at 35%; CME SPAN risk arrays) of
   the account's perpetual plus option legs; IM = sum over assets; MM = sum of mm_factor_a x loss_a. With
   per-side margin the down scenarios use the policy's ``scan_down`` and the up scenarios its ``scan_up``
   (longs are margined on the lower tail, shorts on the upper tail).
4. **Liquidation** when equity < MM: close a fraction ``c = clip(1 - E / IM + close_extra, min_close,
   close_factor)`` of every position (``c = 1`` when E <= full_liquidation_ratio x MM), so the remainder is back
   at IM. Fills: perpetuals at the MARKET price P_t (not the oracle) minus slippage ``impact_a = impact_k x
   sigma_a x sqrt(V_a / ADV_a)`` (square-root impact law: Almgren, Thum, Hauptmann & Li 2005; Bouchaud et al.
   2018), V_a = the step's total liquidated notional of asset a, sigma_a the daily vol. Options close at model
   value minus the same impact on their delta notional. Optional Dutch auction: the discount grows in steps of
   ``auction_step``; keepers take the lot at the first discount covering impact + ``keeper_margin``; if that
   exceeds ``auction_max_discount`` the auction fails and the position stays open until the next step (the
   zero-bid failure mode of MakerDAO's 12 March 2020 auctions). A liquidation fee ``fee_rate`` x closed notional,
   paid from the remaining equity, goes to the insurance fund.
5. **Bad debt**: a fully closed account with negative balance is made whole by the insurance fund; what the fund
   cannot pay is charged to accounts with a profit on the step (auto-deleveraging, pro rata to profit, their
   positions reduced by the same fraction: stylised version of BitMEX / Binance ADL); anything left is socialised
   to the counterparties.
6. **Collateral management** (behaviour): an account below IM tops up from its outside reserve towards
   ``target = max(notional / leverage, (1 + cushion) x IM)``; an account above ``withdraw_mult x target``
   withdraws the excess.

The engine sees prices only through the oracle series given to :func:`prepare_market` (see :func:`make_oracle`:
spot, lagged, TWAP, or with a deviation), so bad debt from a late oracle in a flash crash is measurable against
the same run with a spot oracle.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from margin.simulation.book import Book
from margin.valuation.pricing import black76_greeks

jax.config.update("jax_enable_x64", True)

__all__ = [
    "LiquidationParams",
    "Ledger",
    "MarketPath",
    "SimState",
    "SPAN_GRID",
    "initial_state",
    "make_oracle",
    "option_scenario_pnl",
    "prepare_market",
    "simulate",
    "simulate_blocks",
]

# CME SPAN risk-array scenarios: (price move in scan ranges, vol move sign, cover fraction). Source: CME SPAN
# "Risk Arrays" documentation; McMillan, Options as a Strategic Investment, ch. 34.
SPAN_GRID = np.array(
    [(0, 1, 1), (0, -1, 1), (1 / 3, 1, 1), (1 / 3, -1, 1), (-1 / 3, 1, 1), (-1 / 3, -1, 1),
     (2 / 3, 1, 1), (2 / 3, -1, 1), (-2 / 3, 1, 1), (-2 / 3, -1, 1), (1, 1, 1), (1, -1, 1),
     (-1, 1, 1), (-1, -1, 1), (2, 0, 0.35), (-2, 0, 0.35)], dtype=np.float64)


class LiquidationError(ValueError):
    """Bad simulator input (names the field, index and value)."""


@dataclasses.dataclass(frozen=True)
class LiquidationParams:
    """Venue and behaviour parameters (``conf/book/*.yaml`` ``liquidation:`` block).

    Attributes:
        close_factor: maximum fraction of a position closed per step in a partial liquidation (1 = no cap;
            Aave v3.0-3.2 uses 0.5).
        close_extra: extra fraction closed beyond the one that restores IM exactly.
        min_close: minimum fraction closed once liquidation starts.
        full_liquidation_ratio: close everything when equity <= this x MM.
        fee_rate: liquidation fee to the insurance fund, fraction of closed notional (e.g. 0.005).
        impact_k: square-root impact coefficient (order 1; Almgren et al. 2005).
        max_impact: cap on the impact fraction.
        dutch_auction: fill through a Dutch auction instead of a market order.
        auction_step, auction_max_discount, keeper_margin: Dutch-auction discount grid, its cap and keepers' profit.
        insurance_fund: initial fund, USD.
        reentry_days: re-open fully liquidated accounts after this many steps (0 = never).
        cushion: accounts top up to (1 + cushion) x IM.
        withdraw_mult: accounts withdraw above this multiple of their target equity.
        initial_cushion: initial equity at least (1 + initial_cushion) x IM.
    """

    close_factor: float = 1.0
    close_extra: float = 0.05
    min_close: float = 0.1
    full_liquidation_ratio: float = 0.5
    fee_rate: float = 0.005
    impact_k: float = 1.0
    max_impact: float = 0.5
    dutch_auction: bool = False
    auction_step: float = 0.005
    auction_max_discount: float = 0.1
    keeper_margin: float = 0.002
    insurance_fund: float = 1e6
    reentry_days: int = 7
    cushion: float = 0.05
    withdraw_mult: float = 2.0
    initial_cushion: float = 0.2

    def __post_init__(self) -> None:
        for f, lo, hi in (("close_factor", 0.0, 1.0), ("min_close", 0.0, 1.0), ("full_liquidation_ratio", 0.0, 1.0),
                          ("fee_rate", 0.0, 1.0), ("max_impact", 0.0, 1.0), ("auction_max_discount", 0.0, 1.0)):
            v = getattr(self, f)
            if not lo <= v <= hi:
                raise LiquidationError(f"liquidation.{f}: must be in [{lo}, {hi}], got {v!r}")
        if self.close_factor <= 0:
            raise LiquidationError(f"liquidation.close_factor: must be > 0, got {self.close_factor!r}")
        for f in ("close_extra", "impact_k", "insurance_fund", "cushion", "initial_cushion", "keeper_margin"):
            if getattr(self, f) < 0:
                raise LiquidationError(f"liquidation.{f}: must be >= 0, got {getattr(self, f)!r}")
        if self.auction_step <= 0:
            raise LiquidationError(f"liquidation.auction_step: must be > 0, got {self.auction_step!r}")
        if self.withdraw_mult < 1:
            raise LiquidationError(f"liquidation.withdraw_mult: must be >= 1, got {self.withdraw_mult!r}")
        if int(self.reentry_days) < 0:
            raise LiquidationError(f"liquidation.reentry_days: must be >= 0, got {self.reentry_days!r}")


class MarketPath(NamedTuple):
    """Per-step market inputs (leading axis T). Units: USD per coin for prices, USD per coin for option values.

    oracle, oracle_prev, price: ``(T, A)``; perp_move: ``(T, A, S)`` relative P&L per USD notional in each
    scenario (cover applied); opt_value, opt_delta, opt_roll, opt_daypnl: ``(T, I)``; opt_pnl: ``(T, I, S)``
    per coin; impact_coef: ``(T, A)`` = impact_k x sigma_daily / sqrt(ADV) so that impact = coef x sqrt(V).
    """

    oracle: jax.Array
    oracle_prev: jax.Array
    price: jax.Array
    perp_move: jax.Array
    opt_value: jax.Array
    opt_delta: jax.Array
    opt_roll: jax.Array
    opt_daypnl: jax.Array
    opt_pnl: jax.Array
    impact_coef: jax.Array


class SimState(NamedTuple):
    """Carry of the scan. Per account ``(N,)``/``(N, A)``/``(N, 2)``; scalars are USD totals."""

    cash: jax.Array       # (N,) USD balance (option value excluded)
    q: jax.Array          # (N, A) perpetual size, coin (signed)
    n: jax.Array          # (N,) option position size (leg 1), coin (signed)
    reserve: jax.Array    # (N,) outside cash for margin calls, USD
    dead: jax.Array       # (N,) int32: -1 open, else steps since fully liquidated
    fund: jax.Array       # () insurance fund, USD
    market: jax.Array     # () counterparties' cumulative P&L, USD
    deposits: jax.Array   # () net outside deposits into accounts, USD
    fees: jax.Array       # () cumulative liquidation fees (to the fund)
    bad_debt: jax.Array   # () cumulative bad debt
    fund_paid: jax.Array  # () cumulative bad debt paid by the fund
    adl_paid: jax.Array   # () cumulative bad debt paid by ADL
    socialised: jax.Array  # () cumulative bad debt socialised to counterparties


class Ledger(NamedTuple):
    """Per-step outputs, each ``(T,)`` (``impact``: ``(T, A)``)."""

    balances: jax.Array
    fund: jax.Array
    market: jax.Array
    deposits: jax.Array
    fees: jax.Array
    bad_debt: jax.Array
    fund_paid: jax.Array
    adl_paid: jax.Array
    socialised: jax.Array
    bad_debt_step: jax.Array
    n_liquidations: jax.Array
    liq_volume: jax.Array
    n_adl: jax.Array
    im: jax.Array
    mm: jax.Array
    notional: jax.Array
    equity: jax.Array
    n_open: jax.Array
    impact: jax.Array


# --------------------------------------------------------------------------------------------------- oracle

def make_oracle(price: np.ndarray, kind: str = "spot", *, lag: int = 1, window: int = 3,
                deviation: float | np.ndarray = 0.0) -> np.ndarray:
    """Oracle price series seen by the engine.

    Args:
        price: ``(T, A)`` market prices, USD > 0.
        kind: ``"spot"`` (O = P), ``"lagged"`` (O_t = P_{t-lag}), ``"twap"`` (mean of the last ``window``
            prices), ``"deviation"`` (O = P x (1 + deviation), deviation scalar or ``(T, A)``).
        lag, window: see kind (>= 1); the first rows use the first price.

    Returns:
        ``(T, A)`` float64.
    """
    p = np.asarray(price, dtype=np.float64)
    if p.ndim != 2:
        raise LiquidationError(f"price: expected (T, A), got shape {p.shape}")
    bad = np.argwhere(~np.isfinite(p) | (p <= 0))
    if bad.size:
        t, a = bad[0]
        raise LiquidationError(f"price[{t}, {a}]: must be finite and > 0, got {p[t, a]!r}")
    if kind == "spot":
        return p.copy()
    if kind == "lagged":
        if int(lag) < 1:
            raise LiquidationError(f"oracle.lag: must be >= 1, got {lag!r}")
        idx = np.maximum(np.arange(len(p)) - int(lag), 0)
        return p[idx]
    if kind == "twap":
        if int(window) < 1:
            raise LiquidationError(f"oracle.window: must be >= 1, got {window!r}")
        c = np.cumsum(np.vstack([np.zeros((1, p.shape[1])), p]), axis=0)
        t = np.arange(1, len(p) + 1)
        lo = np.maximum(t - int(window), 0)
        return (c[t] - c[lo]) / (t - lo)[:, None]
    if kind == "deviation":
        d = np.broadcast_to(np.asarray(deviation, dtype=np.float64), p.shape)
        if np.any(d <= -1):
            raise LiquidationError("oracle.deviation: must be > -1")
        return p * (1.0 + d)
    raise LiquidationError(f"oracle.kind: must be spot|lagged|twap|deviation, got {kind!r}")


# --------------------------------------------------------------------------------------------------- options

def _series_strikes(oracle: np.ndarray, tenors, moneyness, steps_per_day: int = 1):
    """Per step: strike (T, A, J, K), years to expiry (T, J), roll flag (T, J), previous strike (T, A, J, K).

    ``tenors`` are in days; with ``steps_per_day`` > 1 (hourly steps: 24) a series rolls every
    ``tenor x steps_per_day`` steps and its time to expiry counts steps of 1 / (365 x steps_per_day) years.
    """
    T = oracle.shape[0]
    t = np.arange(T)
    spd = int(steps_per_day)
    D = np.asarray(tenors)[None, :] * spd
    last_roll = (t[:, None] // D) * D                   # (T, J)
    roll = (t[:, None] % D == 0)
    tau = (D - (t[:, None] - last_roll)) / (365.0 * spd)
    m = np.asarray(moneyness)
    s_roll = oracle[last_roll]                          # (T, J, A)
    strike = np.transpose(s_roll, (0, 2, 1))[..., None] * m     # (T, A, J, K)
    prev_roll = np.maximum(last_roll - D, 0)
    prev_strike = np.transpose(oracle[prev_roll], (0, 2, 1))[..., None] * m
    return strike, tau, roll, prev_strike


def option_scenario_pnl(spot, strike, tau, iv, scan_range, vol_scan: float = 0.25, *, scan_down=None):
    """Per-coin option value, delta and SPAN-grid P&L for the option grid.

    Args:
        spot: ``(T, A)`` USD. strike: ``(T, A, J, K)`` USD. tau: ``(T, J)`` years (> 0). iv: ``(T, A)``
        annualised. scan_range: ``(T, A)`` relative move (the up move when ``scan_down`` is given).
        vol_scan: relative vol shift of the SPAN grid.
        scan_down: optional ``(T, A)`` relative down move: the grid's negative price scenarios move by
            ``mult x scan_down``, the positive ones by ``mult x scan_range`` (per-side margin); None = symmetric.

    Returns:
        value ``(T, I)``, delta ``(T, I)``, pnl ``(T, I, S)`` with I = A*J*K*2 in :class:`margin.simulation.book.OptionGrid`
        order (call then put), Black-76 via :func:`margin.valuation.pricing.black76_greeks` (forward = spot, r = 0).
        Day by day this equals :func:`margin.rules.span.span_scenarios` with PSR = scan_range x spot and
        VSR = vol_scan x iv (tests/backtest/test_span_consistency.py); it is computed here for all days at once.
    """
    T, A, J, K = strike.shape
    f = spot[:, :, None, None, None]
    k = strike[..., None]
    t = tau[:, None, :, None, None]
    v = iv[:, :, None, None, None]
    is_call = np.array([True, False])
    g = black76_greeks(np.broadcast_to(f, (T, A, J, K, 2)), np.broadcast_to(k, (T, A, J, K, 2)),
                       np.broadcast_to(t, (T, A, J, K, 2)), np.broadcast_to(v, (T, A, J, K, 2)), is_call,
                       dtype=jnp.float64)
    value = np.asarray(g.price).reshape(T, -1)
    delta = np.asarray(g.delta).reshape(T, -1)
    mult, vsgn, cover = SPAN_GRID.T
    move = np.maximum(_grid_moves(scan_range, scan_range if scan_down is None else scan_down), -0.95)  # (T, A, S)
    f1 = spot[:, :, None] * (1 + move)
    v1 = iv[:, :, None] * (1 + vol_scan * vsgn)
    S = len(mult)
    sh = (T, A, J, K, 2, S)
    p1 = black76_greeks(np.broadcast_to(f1[:, :, None, None, None, :], sh),
                        np.broadcast_to(k[..., None], sh), np.broadcast_to(t[..., None], sh),
                        np.broadcast_to(v1[:, :, None, None, None, :], sh),
                        np.broadcast_to(is_call[:, None], sh), dtype=jnp.float64).price
    pnl = (np.asarray(p1) - np.asarray(g.price)[..., None]) * cover
    return value, delta, pnl.reshape(T, -1, S)


def _grid_moves(scan_up: np.ndarray, scan_down: np.ndarray) -> np.ndarray:
    """``(T, A, S)`` relative price move of every SPAN-grid scenario: ``mult x scan_up`` for up moves,
    ``mult x scan_down`` for down moves (mult < 0), 0 for the unchanged-price scenarios."""
    mult = SPAN_GRID[:, 0]
    up = np.asarray(scan_up, np.float64)[:, :, None]
    down = np.asarray(scan_down, np.float64)[:, :, None]
    return np.where(mult > 0, mult * up, mult * down)


def prepare_market(book: Book, price: np.ndarray, oracle: np.ndarray, volume_usd: np.ndarray,
                   sigma_daily: np.ndarray, iv: np.ndarray, scan_range: np.ndarray,
                   params: LiquidationParams = LiquidationParams(), *, vol_scan: float = 0.25,
                   dtype=jnp.float32, scan_down: np.ndarray | None = None, scan_up: np.ndarray | None = None,
                   steps_per_day: int = 1, rows: tuple[int, int] | None = None) -> MarketPath:
    """Precompute every per-step input of :func:`simulate` (vectorised over steps; no Python loop over time).

    Args:
        book: the account book (for the option grid).
        price: ``(T, A)`` market prices (fills), USD.
        oracle: ``(T, A)`` oracle prices (marks, margin checks, option strikes), USD.
        volume_usd: ``(T, A)`` traded volume per step (ADV for the impact law), USD > 0.
        sigma_daily: ``(T, A)`` per-step volatility of log returns used by the impact law.
        iv: ``(T, A)`` annualised implied-volatility proxy for option values (> 0).
        scan_range: ``(T, A)`` the policy's scan ranges (relative moves).
        params: :class:`LiquidationParams`.
        vol_scan: SPAN volatility scan range, relative.
        dtype: dtype of the returned arrays (float32 default; float64 for exact ledger tests).
        scan_down, scan_up: optional ``(T, A)`` per-side scan ranges (relative down / up move covered, e.g.
            :class:`margin.simulation.policies.PolicyOutput` ``scan_down`` / ``scan_up``): the grid's down scenarios move
            prices by ``mult x scan_down``, its up scenarios by ``mult x scan_up``. Each defaults to
            ``scan_range`` (symmetric grid).
        steps_per_day: steps per day (1 daily, 24 hourly); option series roll every ``tenor x steps_per_day``
            steps and their time to expiry is counted in steps of ``1 / (365 x steps_per_day)`` years.
            ``sigma_daily`` and ``volume_usd`` are then per step (see :mod:`margin.simulation.intraday`).
        rows: optional ``(start, stop)``: return only steps ``start .. stop - 1`` (the option series and the
            previous oracle still follow the whole path), for :func:`simulate_blocks`.

    Raises:
        LiquidationError naming field and index for shape mismatch, NaN/inf, non-positive prices or vols.
    """
    T, A = np.shape(price)
    if int(steps_per_day) < 1:
        raise LiquidationError(f"steps_per_day: must be >= 1, got {steps_per_day!r}")
    arrays = {"price": price, "oracle": oracle, "volume_usd": volume_usd, "sigma_daily": sigma_daily, "iv": iv,
              "scan_range": scan_range,
              "scan_down": scan_range if scan_down is None else scan_down,
              "scan_up": scan_range if scan_up is None else scan_up}
    out = {}
    for name, x in arrays.items():
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (T, A):
            raise LiquidationError(f"{name}: shape {x.shape} != (T={T}, A={A})")
        is_scan = name.startswith("scan_")
        bad = np.argwhere(~np.isfinite(x) | ((x <= 0) if not is_scan else (x < 0)))
        if bad.size:
            t, a = bad[0]
            raise LiquidationError(f"{name}[{t}, {a}]: must be finite and {'>= 0' if is_scan else '> 0'}"
                                   f", got {x[t, a]!r}")
        out[name] = x
    if A != len(book.assets):
        raise LiquidationError(f"price: {A} assets but the book has {len(book.assets)}")
    o = out["oracle"]
    grid = book.grid
    strike, tau, roll, prev_strike = _series_strikes(o, grid.tenors, grid.moneyness, steps_per_day)
    lo, hi = (0, T) if rows is None else (int(rows[0]), int(rows[1]))
    if not 0 <= lo < hi <= T:
        raise LiquidationError(f"rows: need 0 <= start < stop <= T={T}, got {rows!r}")
    r0 = max(lo - 1, 0)                     # one row before the block for the option day P&L
    sl = slice(r0, hi)
    value, delta, pnl = option_scenario_pnl(o[sl], strike[sl], tau[sl], out["iv"][sl], out["scan_up"][sl], vol_scan,
                                            scan_down=out["scan_down"][sl])
    # expiring series pay intrinsic at the old strike; the account re-opens at the new strike's value
    n = hi - r0
    is_call = np.array([1.0, 0.0])
    ko = prev_strike[sl][..., None]
    fo = o[sl][:, :, None, None, None]
    intrinsic = is_call * np.maximum(fo - ko, 0) + (1 - is_call) * np.maximum(ko - fo, 0)   # (n, A, J, K, 2)
    roll_b = np.broadcast_to(roll[sl][:, None, :, None, None], intrinsic.shape).reshape(n, -1)
    roll_b = roll_b & (np.arange(r0, hi) > 0)[:, None]
    roll_cash = np.where(roll_b, intrinsic.reshape(n, -1) - value, 0.0)
    daypnl = np.zeros_like(value)
    daypnl[1:] = value[1:] + roll_cash[1:] - value[:-1]
    cover = SPAN_GRID[:, 2]
    perp_move = _grid_moves(out["scan_up"], out["scan_down"]) * cover
    coef = params.impact_k * out["sigma_daily"] / np.sqrt(out["volume_usd"])
    o_prev = np.vstack([o[:1], o[:-1]])
    k = lo - r0                             # drop the extra leading row
    c = partial(jnp.asarray, dtype=dtype)
    b = slice(lo, hi)
    return MarketPath(c(o[b]), c(o_prev[b]), c(out["price"][b]), c(perp_move[b]), c(value[k:]), c(delta[k:]),
                      c(roll_cash[k:]), c(daypnl[k:]), c(pnl[k:]), c(coef[b]))


def simulate_blocks(book: Book, make_block, n_steps: int, mm_factor, params: LiquidationParams = LiquidationParams(),
                    *, block: int = 2160, progress: bool = False, desc: str = "liquidation scan"
                    ) -> tuple[SimState, Ledger, SimState]:
    """:func:`simulate` over a long path whose market is built block by block (bounded memory).

    Args:
        book, mm_factor, params: as :func:`simulate`.
        make_block: ``(start, stop) -> MarketPath`` for steps ``start .. stop - 1``, e.g.
            ``lambda r: prepare_market(..., rows=r)``.
        n_steps: total steps T.
        block: steps per block (2,160 = 90 days of hours).
        progress: tqdm bar over the steps on stderr.

    Returns:
        As :func:`simulate`; the same result as one :func:`simulate` over the whole market.
    """
    from tqdm.auto import tqdm

    if int(block) < 1 or int(n_steps) < 1:
        raise LiquidationError(f"block and n_steps: must be >= 1, got {block!r}, {n_steps!r}")
    first = make_block((0, min(int(block), int(n_steps))))
    state0, st = initial_state(book, first, np.asarray(mm_factor, np.float64), params)
    dyn = _dyn(params, first.oracle.dtype)
    state, parts = state0, []
    with tqdm(total=int(n_steps), desc=desc, unit="step", disable=not progress, leave=False) as bar:
        for i in range(0, int(n_steps), int(block)):
            part = first if i == 0 else make_block((i, min(i + int(block), int(n_steps))))
            state, led = _run(bool(params.dutch_auction), st, dyn, state, part)
            parts.append(led)
            bar.update(int(part.oracle.shape[0]))
            del part
    ledger = jax.tree.map(lambda *xs: jnp.concatenate(xs, 0), *parts)
    return state0, ledger, state


# --------------------------------------------------------------------------------------------------- kernels

def _requirements(q, n, G, onehot, oracle, perp_move, mm):
    """Per-asset worst SPAN-grid loss of perpetual + option position; IM and MM ``(N,)``."""
    S = perp_move.shape[-1]
    scen = q[:, :, None] * (oracle[:, None] * perp_move)[None]            # (N, A, S)
    scen = scen + onehot[:, :, None] * (n[:, None] * G[:, :S])[:, None, :]
    loss = jnp.maximum(-scen.min(axis=2), 0.0)                              # (N, A)
    return loss.sum(1), loss @ mm


def _notional(q, n, G, onehot, price):
    """(N, A) USD notional: |perpetual| + |delta| of the option legs."""
    return jnp.abs(q) * price[None, :] + onehot * (jnp.abs(n) * G[:, -1])[:, None] * price[None, :]


def _option_types(book: Book):
    """Collapse each account's two option legs into a position type u (legs i1, i2, leg-2 ratio w2) and a size.

    Returns (type per account (N,), i1 (U,), i2 (U,), w2 (U,), leg-1 size in USD (N,)). Accounts without options
    get type 0 and size 0.
    """
    c1, c2 = book.opt_count[:, 0], book.opt_count[:, 1]
    has = (book.opt_asset >= 0) & ((c1 != 0) | (c2 != 0))
    lead = np.where(c1 != 0, 0, 1)
    rows = np.arange(book.n_accounts)
    size = np.where(has, book.opt_count[rows, lead], 0.0)
    i1 = book.opt_idx[rows, lead]
    i2 = book.opt_idx[rows, 1 - lead]
    w2 = np.where(size != 0, book.opt_count[rows, 1 - lead] / np.where(size != 0, size, 1.0), 0.0)
    key = np.stack([np.where(has, i1, 0), np.where(has, i2, 0), np.round(np.where(has, w2, 0.0), 12)], 1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int32), uniq[:, 0].astype(np.int32), uniq[:, 1].astype(np.int32), uniq[:, 2], size


class _Static(NamedTuple):
    opt_type: jax.Array   # (N,) int32 option position type
    i1: jax.Array         # (U,) int32 leg-1 instrument
    i2: jax.Array         # (U,) int32 leg-2 instrument
    w2: jax.Array         # (U,) leg-2 size per unit of leg 1
    onehot: jax.Array     # (N, A) asset of the option position
    leverage: jax.Array   # (N,)
    q_usd: jax.Array      # (N, A) signed USD notional of the original book (re-entry size)
    n_usd: jax.Array      # (N,) option leg-1 size in USD (coin x spot) of the original book
    mm: jax.Array         # (A,)


def _type_table(st: _Static, m: MarketPath):
    """(U, S + 4) per-type columns: scenario P&L (S), value, roll cash, day P&L, |delta| (per unit of leg 1)."""
    cols = jnp.concatenate([m.opt_pnl, m.opt_value[:, None], m.opt_roll[:, None], m.opt_daypnl[:, None]], 1)
    lin = cols[st.i1] + st.w2[:, None] * cols[st.i2]
    absd = jnp.abs(m.opt_delta[st.i1]) + jnp.abs(st.w2) * jnp.abs(m.opt_delta[st.i2])
    return jnp.concatenate([lin, absd[:, None]], 1)


def initial_state(book: Book, market: MarketPath, mm_factor: np.ndarray,
                  params: LiquidationParams = LiquidationParams()) -> tuple[SimState, _Static]:
    """Open the book at step 0: coin sizes from USD notionals at the first oracle price, equity from leverage.

    Initial equity = collateral if given, else ``max(notional / leverage, (1 + initial_cushion) x IM_0)``;
    the balance pays for bought options (cash = equity - option value). Reserve = reserve x equity.
    """
    dtype = market.oracle.dtype
    o0 = np.asarray(market.oracle[0], np.float64)
    mm = np.asarray(mm_factor, np.float64)
    if mm.shape != (len(book.assets),):
        raise LiquidationError(f"mm_factor: shape {mm.shape} != ({len(book.assets)},)")
    n_inst = int(market.opt_value.shape[1])
    bad = np.argwhere((book.opt_idx < 0) | (book.opt_idx >= n_inst))
    if bad.size:
        i, leg = bad[0]
        raise LiquidationError(f"book.opt_idx[{i}, {leg}]: instrument {book.opt_idx[i, leg]} outside 0..{n_inst - 1}")
    typ, i1, i2, w2, size_usd = _option_types(book)
    has = book.opt_asset >= 0
    onehot = np.zeros((book.n_accounts, len(book.assets)))
    onehot[np.flatnonzero(has), book.opt_asset[has]] = 1.0
    c = partial(jnp.asarray, dtype=dtype)
    st = _Static(jnp.asarray(typ), jnp.asarray(i1), jnp.asarray(i2), c(w2), c(onehot), c(book.leverage),
                 c(book.perp_usd), c(size_usd), c(mm))
    m0 = jax.tree.map(lambda x: x[0], market)
    G = _type_table(st, m0)[st.opt_type]
    q0 = c(book.perp_usd / o0[None, :])
    n0 = c(size_usd / np.where(has, o0[np.where(has, book.opt_asset, 0)], 1.0))
    S = market.perp_move.shape[-1]
    im, _ = _requirements(q0, n0, G, st.onehot, m0.oracle, m0.perp_move, st.mm)
    val = n0 * G[:, S]
    notional = _notional(q0, n0, G, st.onehot, m0.oracle).sum(1)
    eq = jnp.maximum(notional / st.leverage, (1 + params.initial_cushion) * im)
    coll = c(np.nan_to_num(book.collateral, nan=-1.0))
    eq = jnp.where(coll > 0, coll, eq)
    z = jnp.zeros((), dtype)
    state = SimState(cash=eq - val, q=q0, n=n0, reserve=c(book.reserve) * eq,
                     dead=jnp.full(book.n_accounts, -1, jnp.int32), fund=c(params.insurance_fund), market=z,
                     deposits=z, fees=z, bad_debt=z, fund_paid=z, adl_paid=z, socialised=z)
    return state, st


class _Dyn(NamedTuple):
    """Numeric parameters passed as traced scalars so one compilation serves every parameter value."""

    close_factor: jax.Array
    close_extra: jax.Array
    min_close: jax.Array
    full_liquidation_ratio: jax.Array
    fee_rate: jax.Array
    max_impact: jax.Array
    auction_step: jax.Array
    auction_max_discount: jax.Array
    keeper_margin: jax.Array
    reentry_days: jax.Array
    cushion: jax.Array
    withdraw_mult: jax.Array


def _dyn(params: LiquidationParams, dtype) -> _Dyn:
    return _Dyn(*(jnp.asarray(getattr(params, f), jnp.int32 if f == "reentry_days" else dtype)
                  for f in _Dyn._fields))


def _step(dutch_auction: bool, st: _Static, params: _Dyn, s: SimState, m: MarketPath):
    dtype = s.cash.dtype
    one = jnp.ones((), dtype)
    S = m.perp_move.shape[-1]
    G = _type_table(st, m)[st.opt_type]                                      # (N, S + 4), the only big gather
    # 1. settlement at the oracle
    perp_pnl = s.q * (m.oracle - m.oracle_prev)[None, :]                     # (N, A)
    settle = perp_pnl.sum(1) + s.n * G[:, S + 1]
    cash = s.cash + settle
    market = s.market - settle.sum()
    day_pnl = perp_pnl.sum(1) + s.n * G[:, S + 2]
    # 2. re-entry of accounts liquidated reentry_days ago, at the original USD sizes
    dead = jnp.where(s.dead >= 0, s.dead + 1, s.dead)
    reenter = (dead >= params.reentry_days) & (params.reentry_days > 0)
    q = jnp.where(reenter[:, None], st.q_usd / m.oracle[None, :], s.q)
    n = jnp.where(reenter, st.n_usd / (st.onehot @ m.oracle + 1 - st.onehot.sum(1)), s.n)
    dead = jnp.where(reenter, -1, dead)
    # 3. requirements
    im, mm = _requirements(q, n, G, st.onehot, m.oracle, m.perp_move, st.mm)
    val = n * G[:, S]
    eq = cash + val
    open_ = (jnp.abs(q).sum(1) + jnp.abs(n)) > 0
    # 4. liquidation
    liq = open_ & (eq < mm) & ~reenter
    frac = jnp.clip(1 - eq / jnp.maximum(im, 1e-30) + params.close_extra, params.min_close, params.close_factor)
    c = jnp.where(eq <= params.full_liquidation_ratio * mm, one, frac)
    c = jnp.where(liq, c, 0.0)
    closed = c[:, None] * _notional(q, n, G, st.onehot, m.price)            # (N, A) USD
    impact = jnp.minimum(m.impact_coef * jnp.sqrt(closed.sum(0)), params.max_impact)
    if dutch_auction:
        cost = impact + params.keeper_margin
        disc = jnp.ceil(cost / params.auction_step - 1e-9) * params.auction_step
        filled_a = disc <= params.auction_max_discount
        impact = jnp.where(filled_a, disc, impact)
        ok = ((closed > 0) & ~filled_a[None, :]).sum(1) == 0
        c = jnp.where(ok, c, 0.0)
        liq = liq & ok
        closed = closed * ok[:, None]
    close_cash = (c[:, None] * q * (m.price - m.oracle)[None, :]).sum(1) - (closed * impact[None, :]).sum(1) \
        + c * val
    cash = cash + close_cash
    market = market - close_cash.sum()
    q = q * (1 - c)[:, None]
    n = n * (1 - c)
    fee = jnp.minimum(params.fee_rate * closed.sum(1), jnp.maximum(cash + val * (1 - c), 0.0))
    fee = jnp.where(liq, fee, 0.0)
    cash = cash - fee
    fund = s.fund + fee.sum()
    # 5. bad debt -> insurance fund -> ADL -> socialised
    flat = (jnp.abs(q).sum(1) + jnp.abs(n)) == 0
    bankrupt = flat & (cash < 0)
    total_d = jnp.where(bankrupt, -cash, 0.0).sum()
    fund_pay = jnp.minimum(fund, total_d)
    fund = fund - fund_pay
    uncovered = total_d - fund_pay
    profit = jnp.where(open_ & ~liq & ~reenter, jnp.maximum(day_pnl, 0.0), 0.0)
    pool = profit.sum()
    ratio = jnp.where(pool > 0, jnp.minimum(uncovered / jnp.where(pool > 0, pool, 1.0), 1.0), 0.0)
    charge = ratio * profit
    adl = charge.sum()
    cash = jnp.where(bankrupt, 0.0, cash) - charge
    socialised = uncovered - adl
    market = market - socialised
    deleverage = jnp.where(profit > 0, 1 - ratio, 1.0)
    q = q * deleverage[:, None]
    n = n * deleverage
    # 6. collateral management
    scale = (1 - c) * deleverage
    im_after = im * scale
    val_after = n * G[:, S]
    eq_after = cash + val_after
    notional = _notional(q, n, G, st.onehot, m.oracle).sum(1)
    target = jnp.maximum(notional / st.leverage, (1 + params.cushion) * im_after)
    still_open = ~flat
    need = jnp.maximum(target - eq_after, 0.0)
    topup = jnp.where(still_open & ~liq & ~reenter & (eq_after < im_after), jnp.minimum(s.reserve, need), 0.0)
    fresh = jnp.where(reenter, need, 0.0)                                   # re-entry: new outside money
    wd = jnp.where(still_open & ~liq & (eq_after > params.withdraw_mult * target),
                   jnp.clip(eq_after - target, 0.0, jnp.maximum(cash, 0.0)), 0.0)
    flow = topup + fresh - wd
    cash = cash + flow
    reserve = s.reserve - topup + wd
    deposits = s.deposits + flow.sum()
    dead = jnp.where(flat & (dead < 0), 0, dead)
    new = SimState(cash=cash, q=q, n=n, reserve=reserve, dead=dead, fund=fund, market=market, deposits=deposits,
                   fees=s.fees + fee.sum(), bad_debt=s.bad_debt + total_d, fund_paid=s.fund_paid + fund_pay,
                   adl_paid=s.adl_paid + adl, socialised=s.socialised + socialised)
    led = Ledger(balances=cash.sum(), fund=fund, market=market, deposits=deposits, fees=new.fees,
                 bad_debt=new.bad_debt, fund_paid=new.fund_paid, adl_paid=new.adl_paid, socialised=new.socialised,
                 bad_debt_step=total_d, n_liquidations=liq.sum(), liq_volume=closed.sum(),
                 n_adl=(charge > 0).sum(), im=im_after.sum(), mm=(mm * scale).sum(), notional=notional.sum(),
                 equity=(cash + val_after).sum(), n_open=still_open.sum(), impact=impact)
    return new, led


@partial(jax.jit, static_argnums=(0,))
def _run(dutch_auction: bool, st: _Static, params: _Dyn, state: SimState, market: MarketPath):
    return jax.lax.scan(partial(_step, dutch_auction, st, params), state, market)


def simulate(book: Book, market: MarketPath, mm_factor, params: LiquidationParams = LiquidationParams(), *,
             block: int | None = None, progress: bool = False, desc: str = "liquidation scan"
             ) -> tuple[SimState, Ledger, SimState]:
    """Run the liquidation engine over all steps of ``market``.

    Args:
        book: N accounts.
        market: from :func:`prepare_market` (its dtype is the computation dtype).
        mm_factor: ``(A,)`` MM / IM per asset.
        params: :class:`LiquidationParams` (``reentry_days`` counts steps).
        block: run the scan in blocks of this many steps, carrying the state (same result; bounds the memory of
            one compiled call and lets ``progress`` show a bar); None = one call over all steps.
        progress: tqdm bar over the blocks on stderr.
        desc: the bar's label.

    Returns:
        (initial state, per-step :class:`Ledger` with leading axis T, final state).
    """
    state0, st = initial_state(book, market, np.asarray(mm_factor, np.float64), params)
    dyn = _dyn(params, market.oracle.dtype)
    T = int(market.oracle.shape[0])
    if block is None or int(block) >= T:
        final, ledger = _run(bool(params.dutch_auction), st, dyn, state0, market)
        return state0, ledger, final
    if int(block) < 1:
        raise LiquidationError(f"block: must be >= 1, got {block!r}")
    from tqdm.auto import tqdm

    state, parts = state0, []
    with tqdm(total=T, desc=desc, unit="step", disable=not progress, leave=False) as bar:
        for i in range(0, T, int(block)):
            part = jax.tree.map(lambda x: x[i:i + int(block)], market)
            state, led = _run(bool(params.dutch_auction), st, dyn, state, part)
            parts.append(led)
            bar.update(int(part.oracle.shape[0]))
    ledger = jax.tree.map(lambda *xs: jnp.concatenate(xs, 0), *parts)
    return state0, ledger, state
