"""Mango v4 health (``HealthCache``) in exact I80F48 fixed point, in Python ints.

Reproduces blockworks-foundation/mango-v4 ``programs/mango-v4/src/health/cache.rs`` for one account:
token positions, Serum3 / OpenBook reserved funds, and perp positions settled into their settle
token (``PerpInfo``), for the ``init``, ``maint`` and ``liquidation_end`` health types.

I80F48 arithmetic (signed 128-bit, 48 fractional bits; the ``fixed`` crate 1.11 used by mango-v4,
``src/arith.rs``): a value is its raw integer ``bits`` (value = bits / 2**48). Multiplication is the
full product shifted right by 48 (rounds towards -inf; mango-v4 ``i80f48.rs``
``test_i80f48_mul_rounding``); division is ``(a << 48) / b`` truncated towards zero; ``from_num(f64)``
and ``to_num::<f64>()`` round to nearest, ties to even; results outside i128 raise
:class:`VenueInputError` (the venue panics / returns an overflow error). The health code's f64 steps
(deposit / borrow weight scaling, ``checked_div_f64_precision``) are done in Python floats, which are
IEEE-754 doubles, so they match bit for bit.

Units: token amounts in native units (e.g. 1e6 per USDC); prices "native/native" (health-reference
native units per native token), as on chain; health in health-reference native units. Weights are
dimensionless I80F48.

Sources (mango-v4 ``programs/mango-v4/src/``): ``health/cache.rs`` (``Prices``, ``TokenInfo``,
``Serum3Info`` incl. ``all_reserved_as_base`` / ``all_reserved_as_quote`` / ``health_contribution``,
``PerpInfo::new`` / ``health_unsettled_pnl`` / ``unweighted_health_unsettled_pnl``,
``HealthCache::health`` / ``health_ratio`` / ``health_assets_and_liabs`` /
``compute_serum3_reservations`` / ``effective_token_balances``, ``new_health_cache_impl``);
``state/bank.rs`` (``scaled_init_asset_weight``, ``scaled_init_liab_weight``, ``deposit_internal`` /
``withdraw_internal`` indexing); ``state/mango_account_components.rs`` (``TokenPosition::native``,
``PerpPosition::unsettled_funding``); ``i80f48.rs`` (``checked_div_f64_precision``).

Not modelled: the time-shifted maintenance weights (``maint_weight_shift_*``), the stable-price
model's evolution (the stable price is an input), banks skipped for missing accounts or bad oracles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple, Optional, Sequence

from margin.rules.venues._validate import VenueInputError

__all__ = [
    "FRAC_BITS", "ONE", "from_num", "to_f64", "mul", "div", "Bank", "Serum3Orders", "PerpMarket",
    "PerpPosition", "Account", "HealthCache", "new_health_cache", "bank_native_after_change",
    "spot_amount_taken_for_health_zero",
]

FRAC_BITS = 48
ONE = 1 << FRAC_BITS
_MIN, _MAX = -(1 << 127), (1 << 127) - 1
F64_MAX = 1.7976931348623157e308  # f64::MAX, the "scaling off" sentinel of a bank
HEALTH_TYPES = ("init", "maint", "liquidation_end")


def _chk(bits: int, what: str = "I80F48") -> int:
    if not _MIN <= bits <= _MAX:
        raise VenueInputError(what, None, bits, "overflows I80F48 (the venue panics)")
    return bits


def from_num(x) -> int:
    """``I80F48::from_num`` of an int, float (round to nearest, ties to even) or Fraction: raw bits."""
    if isinstance(x, bool):
        raise VenueInputError("I80F48", None, x, "booleans are not numbers")
    if isinstance(x, int):
        return _chk(x << FRAC_BITS)
    if isinstance(x, float) and not math.isfinite(x):
        raise VenueInputError("I80F48", None, x, "must be finite")
    try:
        return _chk(round(Fraction(x) * ONE))
    except (TypeError, ValueError) as e:
        raise VenueInputError("I80F48", None, x, f"not a number ({e})") from None


def to_f64(bits: int) -> float:
    """``to_num::<f64>()``: nearest double (Python int true division is correctly rounded)."""
    return bits / ONE


def mul(a: int, b: int) -> int:
    """I80F48 ``a * b``: ``(a * b) >> 48`` (floor)."""
    return _chk((a * b) >> FRAC_BITS)


def div(a: int, b: int) -> int:
    """I80F48 ``a / b``: ``(a << 48) / b`` truncated towards zero."""
    if b == 0:
        raise VenueInputError("I80F48 division", None, 0, "division by zero")
    n = a << FRAC_BITS
    q = abs(n) // abs(b)
    return _chk(q if (n >= 0) == (b > 0) else -q)


def _div_f64(a: int, b: int) -> int:
    # i80f48.rs checked_div_f64_precision: to f64, divide, back with from_num
    return from_num(to_f64(a) / to_f64(b))


def bank_native_after_change(native_change: int, deposit_index=1_000_000, borrow_index=1_000_000) -> int:
    """Native balance (raw I80F48) of a fresh token position after ``Bank::change_without_fee`` by
    ``native_change`` native units: deposits ``indexed = native / index`` rounded up by ``DELTA`` when
    ``indexed * index < native``; borrows ``indexed = -(native / borrow_index)``; the native value is
    ``indexed * index``. (Indices default to the 1e6 of mango-v4's ``mock_bank_and_oracle``.)

    Source: mango-v4 ``state/bank.rs`` ``deposit_internal`` / ``withdraw_internal``;
    ``state/mango_account_components.rs`` ``TokenPosition::native``.
    """
    di, bi = from_num(deposit_index), from_num(borrow_index)
    amt = from_num(int(native_change))
    if amt >= 0:
        indexed = div(amt, di)
        if mul(indexed, di) < amt:
            indexed += 1
        return mul(indexed, di) if indexed > 0 else mul(indexed, bi)
    indexed = -div(-amt, bi)
    return mul(indexed, bi) if indexed <= 0 else mul(indexed, di)


def spot_amount_taken_for_health_zero(health: int, starting_spot: int, asset_weighted_price: int,
                                      liab_weighted_price: int) -> int:
    """How much of a token can be taken before health reaches zero (0 if health <= 0), raw I80F48.

    Source: mango-v4 ``health/cache.rs`` ``spot_amount_taken_for_health_zero``.
    """
    if health <= 0:
        return 0
    taken = 0
    if starting_spot > 0:
        if asset_weighted_price > 0:
            asset_max = div(health, asset_weighted_price)
            if asset_max <= starting_spot:
                return asset_max
        taken = starting_spot
        health -= mul(starting_spot, asset_weighted_price)
    if health > 0:
        if liab_weighted_price <= 0:
            raise VenueInputError("liab_weighted_price", None, liab_weighted_price, "must be > 0")
        taken += div(health, liab_weighted_price)
    return taken


@dataclass(frozen=True)
class Bank:
    """A token bank with the account's position in it (raw I80F48 ints unless noted).

    Attributes:
      token_index: token index.
      balance: the account's native balance (``TokenPosition::native``), raw I80F48; free Serum3
        funds are added by :func:`new_health_cache`.
      oracle_price, stable_price: native/native, raw I80F48 (stable defaults to the oracle price).
      init_asset_weight, init_liab_weight, maint_asset_weight, maint_liab_weight: raw I80F48.
      deposit_weight_scale_start_quote, borrow_weight_scale_start_quote: f64 (``F64_MAX`` = off).
      native_deposits, native_borrows: bank totals, raw I80F48 (``indexed * index``).
      potential_serum_tokens: u64 native tokens that open orders could add to deposits.
      available: False when the bank / its oracle is not supplied (see ``allow_skipping_banks`` of
        :func:`new_health_cache`).
    """

    token_index: int
    balance: int
    oracle_price: int
    init_asset_weight: int
    init_liab_weight: int
    maint_asset_weight: int
    maint_liab_weight: int
    stable_price: Optional[int] = None
    deposit_weight_scale_start_quote: float = F64_MAX
    borrow_weight_scale_start_quote: float = F64_MAX
    native_deposits: int = 0
    native_borrows: int = 0
    potential_serum_tokens: int = 0
    available: bool = True


@dataclass(frozen=True)
class Serum3Orders:
    """Funds on one Serum3 / OpenBook open-orders account (native token units, ints).

    Attributes:
      base_token_index, quote_token_index: the market's tokens.
      base_free, quote_free: free (settleable) funds, added to the token balances.
      base_reserved, quote_reserved: funds locked in orders (``native_*_total - native_*_free``).
      lowest_placed_ask: quote per base of the lowest ask placed (f64; 0 = unknown).
      highest_placed_bid_inv: base per quote, inverse of the highest bid (f64; 0 = unknown).
    """

    base_token_index: int
    quote_token_index: int
    base_reserved: int = 0
    quote_reserved: int = 0
    base_free: int = 0
    quote_free: int = 0
    lowest_placed_ask: float = 0.0
    highest_placed_bid_inv: float = 0.0


@dataclass(frozen=True)
class PerpMarket:
    """Perp market parameters (raw I80F48 unless noted).

    Attributes:
      perp_market_index, settle_token_index: indices.
      oracle_price, stable_price: base price, settle-token native per base native.
      init_base_asset_weight, init_base_liab_weight, maint_base_asset_weight, maint_base_liab_weight:
        weights of the base position.
      init_overall_asset_weight, maint_overall_asset_weight: weights of positive unsettled P&L.
      base_lot_size, quote_lot_size: native units per lot (ints).
      long_funding, short_funding: cumulative funding per base lot, settle-token native.
    """

    perp_market_index: int
    settle_token_index: int
    oracle_price: int
    init_base_asset_weight: int
    init_base_liab_weight: int
    maint_base_asset_weight: int
    maint_base_liab_weight: int
    init_overall_asset_weight: int
    maint_overall_asset_weight: int
    base_lot_size: int
    quote_lot_size: int
    stable_price: Optional[int] = None
    long_funding: int = 0
    short_funding: int = 0


@dataclass(frozen=True)
class PerpPosition:
    """A perp position: lots are ints, ``quote_position_native`` and settled funding raw I80F48.

    Attributes:
      market_index: perp market index.
      base_position_lots: signed base lots.
      quote_position_native: settle-token native (raw I80F48).
      bids_base_lots, asks_base_lots: open order sizes (>= 0).
      taker_base_lots, taker_quote_lots: unprocessed taker fills.
      long_settled_funding, short_settled_funding: raw I80F48.
    """

    market_index: int
    base_position_lots: int = 0
    quote_position_native: int = 0
    bids_base_lots: int = 0
    asks_base_lots: int = 0
    taker_base_lots: int = 0
    taker_quote_lots: int = 0
    long_settled_funding: int = 0
    short_settled_funding: int = 0


@dataclass(frozen=True)
class Account:
    """A Mango account: banks (with the account's balances), Serum3 orders, perp positions."""

    banks: Sequence[Bank]
    serum3: Sequence[Serum3Orders] = field(default_factory=tuple)
    perps: Sequence[tuple[PerpPosition, PerpMarket]] = field(default_factory=tuple)


class _Prices(NamedTuple):
    oracle: int
    stable: int

    def liab(self, ht: str) -> int:
        return max(self.oracle, self.stable) if ht == "init" else self.oracle

    def asset(self, ht: str) -> int:
        return min(self.oracle, self.stable) if ht == "init" else self.oracle


class _Token(NamedTuple):
    token_index: int
    maint_asset_weight: int
    init_asset_weight: int
    init_scaled_asset_weight: int
    maint_liab_weight: int
    init_liab_weight: int
    init_scaled_liab_weight: int
    prices: _Prices
    balance_spot: int

    def asset_weight(self, ht: str) -> int:
        return {"init": self.init_scaled_asset_weight, "liquidation_end": self.init_asset_weight,
                "maint": self.maint_asset_weight}[ht]

    def liab_weight(self, ht: str) -> int:
        return {"init": self.init_scaled_liab_weight, "liquidation_end": self.init_liab_weight,
                "maint": self.maint_liab_weight}[ht]

    def asset_weighted_price(self, ht: str) -> int:
        return mul(self.asset_weight(ht), self.prices.asset(ht))

    def liab_weighted_price(self, ht: str) -> int:
        return mul(self.liab_weight(ht), self.prices.liab(ht))

    def health_contribution(self, ht: str, balance: int) -> int:
        wp = self.liab_weighted_price(ht) if balance < 0 else self.asset_weighted_price(ht)
        return mul(balance, wp)


class _Serum(NamedTuple):
    reserved_base: int
    reserved_quote: int
    reserved_base_as_quote_lowest_ask: int
    reserved_quote_as_base_highest_bid: int
    base_info_index: int
    quote_info_index: int

    def all_reserved_as_base(self, ht: str, quote: _Token, base: _Token) -> int:
        as_base_oracle = _div_f64(mul(self.reserved_quote, quote.prices.asset(ht)), base.prices.liab(ht))
        if self.reserved_quote_as_base_highest_bid != 0:
            return self.reserved_base + min(as_base_oracle, self.reserved_quote_as_base_highest_bid)
        return self.reserved_base + as_base_oracle

    def all_reserved_as_quote(self, ht: str, quote: _Token, base: _Token) -> int:
        as_quote_oracle = _div_f64(mul(self.reserved_base, base.prices.asset(ht)), quote.prices.liab(ht))
        if self.reserved_base_as_quote_lowest_ask != 0:
            return self.reserved_quote + min(as_quote_oracle, self.reserved_base_as_quote_lowest_ask)
        return self.reserved_quote + as_quote_oracle


class _Perp(NamedTuple):
    settle_token_index: int
    maint_base_asset_weight: int
    init_base_asset_weight: int
    maint_base_liab_weight: int
    init_base_liab_weight: int
    maint_overall_asset_weight: int
    init_overall_asset_weight: int
    base_lot_size: int
    base_lots: int
    bids_base_lots: int
    asks_base_lots: int
    quote: int
    base_prices: _Prices

    def unweighted_health_unsettled_pnl(self, ht: str) -> int:
        def case(orders_lots: int, order_price: int) -> int:
            net = from_num((self.base_lots + orders_lots) * self.base_lot_size)
            if net < 0:
                w = self.maint_base_liab_weight if ht == "maint" else self.init_base_liab_weight
                price = self.base_prices.liab(ht)
            else:
                w = self.maint_base_asset_weight if ht == "maint" else self.init_base_asset_weight
                price = self.base_prices.asset(ht)
            base_health = mul(mul(net, w), price)
            order_quote = mul(-from_num(orders_lots * self.base_lot_size), order_price)
            return base_health + order_quote

        bids = case(self.bids_base_lots, self.base_prices.liab(ht))
        asks = case(-self.asks_base_lots, self.base_prices.asset(ht))
        return self.quote + min(bids, asks)

    def health_unsettled_pnl(self, ht: str) -> int:
        u = self.unweighted_health_unsettled_pnl(ht)
        if u > 0:
            w = self.maint_overall_asset_weight if ht == "maint" else self.init_overall_asset_weight
            return mul(w, u)
        return u


def _check_ht(ht: str) -> str:
    if ht not in HEALTH_TYPES:
        raise VenueInputError("health_type", None, ht, f"must be one of {HEALTH_TYPES}")
    return ht


def _scaled_init_asset_weight(b: Bank, price: int) -> int:
    # state/bank.rs scaled_init_asset_weight (f64 arithmetic as on chain)
    if b.deposit_weight_scale_start_quote == F64_MAX:
        return b.init_asset_weight
    all_deposits = to_f64(b.native_deposits) + float(b.potential_serum_tokens)
    deposits_quote = all_deposits * to_f64(price)
    if deposits_quote <= b.deposit_weight_scale_start_quote:
        return b.init_asset_weight
    return mul(b.init_asset_weight, from_num(b.deposit_weight_scale_start_quote / deposits_quote))


def _scaled_init_liab_weight(b: Bank, price: int) -> int:
    # state/bank.rs scaled_init_liab_weight
    if b.borrow_weight_scale_start_quote == F64_MAX:
        return b.init_liab_weight
    borrows_quote = to_f64(b.native_borrows) * to_f64(price)
    if borrows_quote <= b.borrow_weight_scale_start_quote:
        return b.init_liab_weight
    if b.borrow_weight_scale_start_quote == 0.0:
        return _MAX
    return mul(b.init_liab_weight, from_num(borrows_quote / b.borrow_weight_scale_start_quote))


class HealthCache:
    """Mango v4 ``HealthCache`` for one account (build with :func:`new_health_cache`).

    All results are raw I80F48 ints (divide by :data:`ONE`, or use :func:`to_f64`), in
    health-reference native units.
    """

    def __init__(self, tokens: list[_Token], serum: list[_Serum], perps: list[_Perp]):
        self.token_infos, self.serum3_infos, self.perp_infos = tokens, serum, perps

    def _token_pos(self, token_index: int) -> int:
        for i, t in enumerate(self.token_infos):
            if t.token_index == token_index:
                return i
        raise VenueInputError("token_index", None, token_index,
                              "no bank for this token (MangoError::TokenPositionDoesNotExist)")

    def effective_token_balances(self, health_type: str, ignore_negative_perp: bool = False) -> list[int]:
        """Spot balance plus every settle-token perp's hupnl, per token (``effective_token_balances``;
        ``ignore_negative_perp`` drops negative perp contributions, as ``perp_max_settle`` does)."""
        ht = _check_ht(health_type)
        bal = [0] * len(self.token_infos)
        for p in self.perp_infos:
            h = p.health_unsettled_pnl(ht)
            if not ignore_negative_perp or h > 0:
                bal[self._token_pos(p.settle_token_index)] += h
        return [b + t.balance_spot for b, t in zip(bal, self.token_infos)]

    def _health_sum(self, ht: str, bal: list[int]) -> int:
        h = sum(t.health_contribution(ht, b) for t, b in zip(self.token_infos, bal))
        max_res, res = self.compute_serum3_reservations(ht)
        for s, r in zip(self.serum3_infos, res):
            h += self._serum_contribution(ht, s, bal, max_res, r)
        return _chk(h)

    def perp_max_settle(self, settle_token_index: int) -> int:
        """Largest amount of the settle token that negative perp P&L may take from the spot balance,
        raw I80F48: maintenance "perp settle health" (negative perp contributions ignored) turned into
        a token amount by :func:`spot_amount_taken_for_health_zero` (``perp_max_settle``)."""
        bal = self.effective_token_balances("maint", ignore_negative_perp=True)
        health = self._health_sum("maint", bal)
        i = self._token_pos(settle_token_index)
        t = self.token_infos[i]
        return spot_amount_taken_for_health_zero(health, bal[i], t.asset_weighted_price("maint"),
                                                 t.liab_weighted_price("maint"))

    def assets_and_liabs(self) -> tuple[int, int]:
        """Unweighted ``(assets, liabs)`` at oracle prices, raw I80F48 (``assets_and_liabs``): token
        balances, Serum3 reserved funds, perp quote and base values (perp values use
        ``token_infos[settle_token_index]``, the token info at that position, as the venue does)."""
        a = l_ = 0
        for t in self.token_infos:
            v = mul(t.balance_spot, t.prices.oracle)
            if t.balance_spot < 0:
                l_ -= v
            else:
                a += v
        for s in self.serum3_infos:
            a += mul(s.reserved_base, self.token_infos[s.base_info_index].prices.oracle)
            a += mul(s.reserved_quote, self.token_infos[s.quote_info_index].prices.oracle)
        for p in self.perp_infos:
            qp = self.token_infos[p.settle_token_index].prices.oracle
            qv = mul(p.quote, qp)
            if p.quote < 0:
                l_ -= qv
            else:
                a += qv
            bv = mul(mul(from_num(p.base_lots * p.base_lot_size), p.base_prices.oracle), qp)
            if bv < 0:
                l_ -= bv
            else:
                a += bv
        return _chk(a), _chk(l_)

    def leverage(self) -> int:
        """``liabs / max(assets - liabs, 0.001)``, raw I80F48 (``leverage``)."""
        a, l_ = self.assets_and_liabs()
        return div(l_, max(a - l_, from_num(0.001)))

    def compute_serum3_reservations(self, health_type: str) -> tuple[list[int], list[tuple[int, int]]]:
        """``(token_max_reserved, [(all_reserved_as_base, all_reserved_as_quote)] per market)``."""
        ht = _check_ht(health_type)
        max_res = [0] * len(self.token_infos)
        out = []
        for s in self.serum3_infos:
            q, b = self.token_infos[s.quote_info_index], self.token_infos[s.base_info_index]
            ab, aq = s.all_reserved_as_base(ht, q, b), s.all_reserved_as_quote(ht, q, b)
            max_res[s.base_info_index] += ab
            max_res[s.quote_info_index] += aq
            out.append((ab, aq))
        return max_res, out

    def _serum_contribution(self, ht: str, s: _Serum, balances, max_res, reserved) -> int:
        ab, aq = reserved
        if ab == 0 or aq == 0:
            return 0

        def effect(ti: int, market_reserved: int) -> int:
            t = self.token_infos[ti]
            max_balance = balances[ti] + max_res[ti]
            if max_balance >= market_reserved:
                asset_part, liab_part = market_reserved, 0
            elif max_balance < 0:
                asset_part, liab_part = 0, market_reserved
            else:
                asset_part, liab_part = max_balance, market_reserved - max_balance
            return mul(mul(asset_part, t.asset_weight(ht)), t.prices.asset(ht)) \
                + mul(mul(liab_part, t.liab_weight(ht)), t.prices.liab(ht))

        return min(effect(s.base_info_index, ab), effect(s.quote_info_index, aq))

    def health(self, health_type: str = "init") -> int:
        """Health, raw I80F48 (``HealthCache::health``): token contributions of the effective balances
        plus each Serum3 market's reserved-funds contribution."""
        ht = _check_ht(health_type)
        return self._health_sum(ht, self.effective_token_balances(ht))

    def health_assets_and_liabs(self, health_type: str = "init", stable_assets: bool = False) -> tuple[int, int]:
        """``(assets, liabs)`` raw I80F48 with assets or liabilities held stable
        (``health_assets_and_liabs``)."""
        ht = _check_ht(health_type)
        ta = tl = 0
        for t in self.token_infos:
            ab = lb = 0
            for v in [t.balance_spot] + [p.health_unsettled_pnl(ht) for p in self.perp_infos
                                         if p.settle_token_index == t.token_index]:
                if v > 0:
                    ab += v
                else:
                    lb += -v
            if stable_assets:
                awp = t.asset_weighted_price(ht)
                assets = mul(ab, awp)
                ta += assets
                tl += mul(lb, awp) if ab >= lb else assets + mul(lb - ab, t.liab_weighted_price(ht))
            else:
                lwp = t.liab_weighted_price(ht)
                liabs = mul(lb, lwp)
                tl += liabs
                ta += liabs + mul(ab - lb, t.asset_weighted_price(ht)) if ab >= lb else mul(ab, lwp)
        bal = self.effective_token_balances(ht)
        max_res, res = self.compute_serum3_reservations(ht)
        for s, r in zip(self.serum3_infos, res):
            c = self._serum_contribution(ht, s, bal, max_res, r)
            if c > 0:
                ta += c
            else:
                tl += -c
        return _chk(ta), _chk(tl)

    def health_ratio(self, health_type: str = "init") -> int:
        """``100 (assets - liabs) / liabs`` with liabilities held stable, raw I80F48 (saturating);
        ``I80F48::MAX`` when there are no liabilities (``health_ratio``)."""
        a, l_ = self.health_assets_and_liabs(health_type, False)
        if l_ > 0:
            n = mul(from_num(100), a - l_) << FRAC_BITS
            q = abs(n) // l_
            q = q if n >= 0 else -q
            return max(_MIN, min(_MAX, q))
        return _MAX

    def perp_hupnl(self, health_type: str = "init") -> list[int]:
        """Per perp position: weighted unsettled P&L (``health_unsettled_pnl``), raw I80F48."""
        ht = _check_ht(health_type)
        return [p.health_unsettled_pnl(ht) for p in self.perp_infos]


def new_health_cache(account: Account, allow_skipping_banks: bool = False) -> HealthCache:
    """Build the health cache of an account (``new_health_cache_impl``): token infos with scaled
    initial weights (at the pessimistic init liability price), free Serum3 funds added to the token
    balances, Serum3 infos (reserved funds, extreme-order-price conversions), perp infos (base lots
    including taker lots; quote minus unsettled funding plus taker quote).

    With ``allow_skipping_banks`` (``new_health_cache_skipping_missing_banks_and_bad_oracles``),
    banks marked ``available=False`` are left out when the account's balance in them is >= 0, and
    Serum3 markets missing a bank are skipped (their free funds too).

    Example (mango-v4 ``health/client.rs`` ``test_health_stable_price_token``, first account)::

        >>> b = Bank(0, from_num(100), from_num(1.0), from_num(0.8), from_num(1.2), from_num(0.9),
        ...          from_num(1.1), stable_price=from_num(0.5))
        >>> hc = new_health_cache(Account([b]))
        >>> round(to_f64(hc.health("init")), 6), round(to_f64(hc.health("maint")), 6)
        (40.0, 90.0)

    Raises: VenueInputError when a Serum3 market or perp settle token has no bank, an unavailable
      bank cannot be skipped (negative balance, or skipping not allowed), or on overflow.
    """
    tokens, index = [], {}
    for i, b in enumerate(account.banks):
        if not b.available:
            if allow_skipping_banks and b.balance >= 0:
                continue
            raise VenueInputError("banks", (i,), b.token_index, "bank unavailable and cannot be skipped "
                                  "(negative balance or skipping not allowed: MangoError::InvalidBank)")
        stable = b.oracle_price if b.stable_price is None else b.stable_price
        prices = _Prices(b.oracle_price, stable)
        lp = prices.liab("init")
        index[b.token_index] = len(tokens)
        tokens.append(_Token(b.token_index, b.maint_asset_weight, b.init_asset_weight,
                             _scaled_init_asset_weight(b, lp), b.maint_liab_weight, b.init_liab_weight,
                             _scaled_init_liab_weight(b, lp), prices, b.balance))
    serum = []
    for i, s in enumerate(account.serum3):
        if s.base_token_index not in index or s.quote_token_index not in index:
            if allow_skipping_banks:
                continue
            raise VenueInputError("serum3", (i,), (s.base_token_index, s.quote_token_index),
                                  "missing bank for the market's base or quote token (MangoError::InvalidBank)")
        for name in ("base_reserved", "quote_reserved", "base_free", "quote_free"):
            if getattr(s, name) < 0:
                raise VenueInputError(f"serum3.{name}", (i,), getattr(s, name), "must be >= 0 (u64)")
        bi, qi = index[s.base_token_index], index[s.quote_token_index]
        tokens[bi] = tokens[bi]._replace(balance_spot=tokens[bi].balance_spot + from_num(int(s.base_free)))
        tokens[qi] = tokens[qi]._replace(balance_spot=tokens[qi].balance_spot + from_num(int(s.quote_free)))
        rb, rq = from_num(int(s.base_reserved)), from_num(int(s.quote_reserved))
        serum.append(_Serum(rb, rq, mul(rb, from_num(float(s.lowest_placed_ask))),
                            mul(rq, from_num(float(s.highest_placed_bid_inv))), bi, qi))
    perps = []
    for i, (p, m) in enumerate(account.perps):
        if m.settle_token_index not in index:
            raise VenueInputError("perps", (i,), m.settle_token_index, "missing bank for the settle token")
        if p.bids_base_lots < 0 or p.asks_base_lots < 0:
            raise VenueInputError("perps", (i,), (p.bids_base_lots, p.asks_base_lots), "order lots must be >= 0")
        if p.base_position_lots > 0:
            funding = mul(m.long_funding - p.long_settled_funding, from_num(p.base_position_lots))
        elif p.base_position_lots < 0:
            funding = mul(m.short_funding - p.short_settled_funding, from_num(p.base_position_lots))
        else:
            funding = 0
        quote = p.quote_position_native - funding + from_num(p.taker_quote_lots * m.quote_lot_size)
        stable = m.oracle_price if m.stable_price is None else m.stable_price
        perps.append(_Perp(m.settle_token_index, m.maint_base_asset_weight, m.init_base_asset_weight,
                           m.maint_base_liab_weight, m.init_base_liab_weight, m.maint_overall_asset_weight,
                           m.init_overall_asset_weight, m.base_lot_size, p.base_position_lots + p.taker_base_lots,
                           p.bids_base_lots, p.asks_base_lots, quote, _Prices(m.oracle_price, stable)))
    return HealthCache(tokens, serum, perps)
