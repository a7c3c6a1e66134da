"""CME SPAN: the 16 risk-array scenarios and the combined-commodity requirement, for N accounts at once.

Scenarios (CME "Risk Arrays"; McMillan, *Options as a Strategic Investment*, ch. 34): price moves of
0, +1/3, -1/3, +2/3, -2/3, +1, -1 x the price scan range (PSR), each with volatility up and down by the
volatility scan range (VSR) (scenarios 1-14, in CME order: 1 = unchanged/vol up, 2 = unchanged/vol down,
3 = +1/3 up, 4 = +1/3 down, 5 = -1/3 up, ...), then 15-16 = +/- ``extreme_multiple`` x PSR with vol unchanged,
whose P&L counts at ``extreme_cover`` (35%).

Per combined commodity (one underlying here) and account (each scanned on its own instruments only: the kernel
multiplies one ``(N, I_u) x (I_u, 16)`` block per underlying, never the zero blocks of a dense matrix):

    scan risk       = max(0, worst loss over the 16 scenarios)
    spread charge   = intra-commodity (calendar) charge = rate x spreads, spreads = min(sum of positive tier
                      deltas, sum of negative tier deltas) (CME "Inter Spreads" / intra-commodity tiers)
    risk            = max(scan risk + spread charge - inter-commodity credit, short option minimum)
    requirement     = max(0, risk - net option value)         (NOV = value of long - short options)

Units: USD (CME contracts are USD-settled); PSR in price points (USD per unit of underlying), so one contract of
``contract_size`` units moves by contract_size x PSR. Example: McMillan's S&P 500 future, multiplier $500, PSR
20 points: scan risk = $10,000, extreme move 2 x 20 points at 35% = $7,000.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from margin.valuation.instruments import Instruments, Kind
from margin.valuation.scenarios import ScenarioSet, scenario_pnl
from margin.validation import MarginInputError, check_finite, check_nonnegative, check_positive

__all__ = ["SpanParams", "SpanResult", "span_scenarios", "span_requirement", "SPAN_PRICE_FRACTIONS"]

# (price fraction of PSR, vol direction) for scenarios 1-14 in CME order
SPAN_PRICE_FRACTIONS = (0.0, 1 / 3, -1 / 3, 2 / 3, -2 / 3, 1.0, -1.0)


@dataclasses.dataclass(frozen=True)
class SpanParams:
    """SPAN risk parameters for U underlyings (combined commodities).

    Attributes:
        price_scan_range: ``(U,)`` PSR in price points (USD per unit of underlying), > 0.
        vol_scan_range: ``(U,)`` VSR in absolute annualised vol (0.04 = 4 vol points), >= 0.
        extreme_multiple: extreme move in multiples of PSR (2.0 at CME).
        extreme_cover: fraction of the extreme-move P&L that counts (0.35 at CME).
        look_ahead_days: time step of the risk array in days (options decay by this much).
        short_option_minimum: ``(U,)`` USD per short option contract.
        intra_spread_charge: ``(U,)`` USD per calendar spread (one unit long delta vs one short in another tier).
        som_basis: ``"all_short"`` (rate x all short options, REFERENCE.md) or ``"max_calls_puts"``
            (rate x max(short calls, short puts), the CME rule).
    """

    price_scan_range: Sequence[float]
    vol_scan_range: Sequence[float]
    extreme_multiple: float = 2.0
    extreme_cover: float = 0.35
    look_ahead_days: float = 0.0
    short_option_minimum: Sequence[float] | None = None
    intra_spread_charge: Sequence[float] | None = None
    som_basis: str = "all_short"

    @classmethod
    def from_config(cls, cfg, underlyings: Sequence[str]) -> "SpanParams":
        """Builds parameters from ``conf/margin/span.yaml`` (a mapping with ``products: {name: {...}}``)."""
        prods = cfg["products"]
        missing = [u for u in underlyings if u not in prods]
        if missing:
            raise MarginInputError("underlyings", f"no SPAN parameters for {missing}")
        col = lambda k, d=0.0: [float(prods[u].get(k, d)) for u in underlyings]  # noqa: E731
        return cls(
            price_scan_range=col("price_scan_range"),
            vol_scan_range=col("vol_scan_range"),
            extreme_multiple=float(cfg.get("extreme_multiple", 2.0)),
            extreme_cover=float(cfg.get("extreme_cover", 0.35)),
            look_ahead_days=float(cfg.get("look_ahead_days", 0.0)),
            short_option_minimum=col("short_option_minimum"),
            intra_spread_charge=col("intra_spread_charge"),
            som_basis=str(cfg.get("som_basis", "all_short")),
        )


def span_scenarios(
    inst: Instruments,
    forwards,
    vols,
    price_scan_range,
    vol_scan_range,
    *,
    extreme_multiple: float = 2.0,
    extreme_cover: float = 0.35,
    look_ahead_days: float = 0.0,
    min_vol: float = 1e-3,
    dtype=jnp.float64,
) -> ScenarioSet:
    """The 16 SPAN risk-array scenarios as a per-unit USD P&L matrix ``(I, 16)``.

    Args:
        inst: I instruments (USD-settled; coin-settled ones are valued in USD too).
        forwards: ``(I,)`` or ``(U,)`` current forward per instrument / underlying (USD per unit), > 0.
        vols: ``(I,)`` current implied vols (options; annualised).
        price_scan_range: ``(U,)`` PSR in price points per underlying (> 0).
        vol_scan_range: ``(U,)`` VSR in absolute vol per underlying (>= 0); vol down is floored at ``min_vol``.
        extreme_multiple, extreme_cover, look_ahead_days: see :class:`SpanParams`.

    Returns:
        :class:`ScenarioSet` (unit ``"usd"``, name ``"span"``); scenarios 15-16 already scaled by the cover.

    Raises:
        MarginInputError naming the field and index (e.g. a PSR that would push a price to <= 0).
    """
    psr = check_positive("price_scan_range", np.atleast_1d(price_scan_range))
    vsr = check_nonnegative("vol_scan_range", np.atleast_1d(vol_scan_range))
    check_positive("extreme_multiple", extreme_multiple)
    if not 0 <= extreme_cover <= 1:
        raise MarginInputError("extreme_cover", "must lie in [0, 1]", None, extreme_cover)
    und = np.asarray(inst.underlying)
    if und.max() >= psr.shape[0] or und.max() >= vsr.shape[0]:
        raise MarginInputError("price_scan_range", f"need one entry per underlying (U >= {und.max() + 1})")
    f = np.asarray(forwards, np.float64)
    f_i = f if f.shape == (inst.size,) else check_positive("forwards", f)[und]
    check_positive("forwards", f_i)
    v = np.asarray(vols, np.float64)
    opt = inst.is_option
    fr, vd, labels = [], [], []
    for j, x in enumerate(SPAN_PRICE_FRACTIONS):
        for d, tag in ((1, "up"), (-1, "down")):
            fr.append(x)
            vd.append(d)
            labels.append(f"{len(labels) + 1}: price {x:+.3g} PSR, vol {tag}")
    fr += [extreme_multiple, -extreme_multiple]
    vd += [0, 0]
    labels += [f"15: price +{extreme_multiple:g} PSR extreme", f"16: price -{extreme_multiple:g} PSR extreme"]
    fr = np.asarray(fr)
    vd = np.asarray(vd, float)
    moves = fr[None, :] * psr[und][:, None] / f_i[:, None]  # absolute PSR -> relative move per instrument
    bad = moves <= -1
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise MarginInputError("price_scan_range", "extreme down move would make the price <= 0",
                               (int(und[i]),), float(psr[und[i]]))
    new_vols = np.maximum(v[:, None] + vd[None, :] * vsr[und][:, None], min_vol)
    new_vols = np.where(opt[:, None], new_vols, 1.0)
    cover = np.r_[np.ones(14), extreme_cover, extreme_cover]
    groups = ["scan"] * 14 + ["extreme"] * 2
    return scenario_pnl(inst, f_i, np.where(opt, v, 1.0), moves, new_vols, dt=look_ahead_days / 365.0,
                        cover=cover, unit="usd", labels=labels, name="span", groups=groups, dtype=dtype)


class SpanResult(NamedTuple):
    """Per account ``(N, U)`` components and ``(N,)`` total requirement (USD)."""

    scan_risk: jax.Array
    intra_spread_charge: jax.Array
    short_option_minimum: jax.Array
    net_option_value: jax.Array
    risk: jax.Array
    requirement_by_underlying: jax.Array
    requirement: jax.Array


@jax.jit
def _span_kernel(x, xs, ls, tier_delta, short_cnt_calls, short_cnt_puts, nov_w, som_rate, spread_rate,
                 inter_credit, som_max):
    n = x.shape[0]
    # scan risk per combined commodity u from its own block only: x_u (N, I_u) @ L_u (I_u, 16); the dense
    # (I, U x 16) matrix would be mostly zeros (issue 13 item 5)
    scan = jnp.stack([jnp.maximum(-jnp.min(xu @ lu, axis=1), 0) if lu.shape[0] else jnp.zeros((n,), x.dtype)
                      for xu, lu in zip(xs, ls)], axis=1)  # (N, U)
    u = scan.shape[1]
    td = (x @ tier_delta).reshape(n, u, -1)  # (N, U, T) net delta per tier
    spreads = jnp.minimum(jnp.sum(jnp.maximum(td, 0), axis=2), jnp.sum(jnp.maximum(-td, 0), axis=2))
    spread = spread_rate * spreads
    neg = jnp.maximum(-x, 0)
    sc = neg @ short_cnt_calls  # (N, U)
    sp = neg @ short_cnt_puts
    som = som_rate * jnp.where(som_max, jnp.maximum(sc, sp), sc + sp)
    nov = x @ nov_w  # (N, U)
    risk = jnp.maximum(scan + spread - inter_credit, som)
    req_u = jnp.maximum(risk - nov, 0)
    return SpanResult(scan, spread, som, nov, risk, req_u, jnp.sum(req_u, axis=1))


def span_requirement(
    positions,
    inst: Instruments,
    scenarios: ScenarioSet,
    params: SpanParams,
    *,
    option_values=None,
    deltas=None,
    tiers=None,
    inter_credit=None,
    premium_style: bool = True,
    dtype=jnp.float64,
) -> SpanResult:
    """SPAN combined-commodity requirement for N accounts (one fused kernel).

    Args:
        positions: ``(N, I)`` signed contracts.
        inst: the I instruments of ``scenarios``.
        scenarios: from :func:`span_scenarios` (``(I, 16)`` USD P&L per contract).
        params: :class:`SpanParams` (short-option minimum and spread rates per underlying).
        option_values: ``(I,)`` USD value per contract (premium-style options count in NOV); default 0.
        deltas: ``(I,)`` delta per contract in underlying units (composite delta) for the calendar-spread charge;
            default: contract_size for futures/perpetuals/spot, 0 for options.
        tiers: ``(I,)`` int expiry tier per instrument (default: rank of the expiry within its underlying).
        inter_credit: ``(N, U)`` or ``(N,)`` inter-commodity spread credit in USD (default 0; not modelled here).
        premium_style: if False (futures-style options), NOV = 0.
        dtype: ``jnp.float64`` (default, so CME's worked examples reproduce to the cent) or ``jnp.float32``
            (faster for very large batches).

    Returns:
        :class:`SpanResult`.
    """
    x = check_finite("positions", positions)
    if x.ndim != 2 or x.shape[1] != inst.size or scenarios.pnl.shape[0] != inst.size:
        raise MarginInputError("positions", f"must have shape (N, {inst.size}) matching the instruments, "
                                            f"got {x.shape}")
    n, i_n = x.shape
    und = np.asarray(inst.underlying)
    u = int(np.max(und)) + 1
    onehot = np.eye(u)[und]  # (I, U)
    lm = np.asarray(scenarios.pnl, np.float64)
    by_u = [np.flatnonzero(und == uu) for uu in range(u)]  # each combined commodity's instruments
    kind = np.asarray(inst.kind)
    opt = kind == Kind.OPTION
    cs = np.asarray(inst.contract_size)
    d = np.where(opt, 0.0, cs) if deltas is None else check_finite("deltas", deltas)
    if tiers is None:
        exp = np.asarray(inst.expiry)
        tiers = np.zeros(i_n, int)
        for uu in range(u):
            sel = und == uu
            _, inv = np.unique(exp[sel], return_inverse=True)
            tiers[sel] = inv
    tiers = np.asarray(tiers, int)
    n_t = int(tiers.max()) + 1
    tier_delta = np.zeros((i_n, u, n_t))
    tier_delta[np.arange(i_n), und, tiers] = d
    ot = np.asarray(inst.option_type)
    calls = (opt & (ot > 0))[:, None] * onehot
    puts = (opt & (ot < 0))[:, None] * onehot
    ov = np.zeros(i_n) if option_values is None else check_finite("option_values", option_values)
    nov_w = (np.where(opt, ov, 0.0) * (1.0 if premium_style else 0.0))[:, None] * onehot
    som = np.zeros(u) if params.short_option_minimum is None else check_nonnegative(
        "short_option_minimum", params.short_option_minimum)[:u]
    spr = np.zeros(u) if params.intra_spread_charge is None else check_nonnegative(
        "intra_spread_charge", params.intra_spread_charge)[:u]
    if params.som_basis not in ("all_short", "max_calls_puts"):
        raise MarginInputError("som_basis", "must be 'all_short' or 'max_calls_puts'", None, params.som_basis)
    ic = np.zeros((n, u)) if inter_credit is None else np.broadcast_to(
        check_nonnegative("inter_credit", inter_credit).reshape(n, -1), (n, u))
    c = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    xs = [c(np.ascontiguousarray(x[:, idx])) for idx in by_u]
    ls = [c(lm[idx]) for idx in by_u]
    return _span_kernel(c(x), xs, ls, c(tier_delta.reshape(i_n, -1)), c(calls), c(puts), c(nov_w), c(som),
                        c(spr), c(ic), params.som_basis == "max_calls_puts")
