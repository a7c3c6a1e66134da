"""Scenario sets: per-unit P&L matrices L (instruments x scenarios).

A portfolio's scenario P&L is ``positions @ L`` (``(N, I) @ (I, S) -> (N, S)``) and its scenario-based margin is
the worst loss, ``max(0, max_s -(positions @ L)[:, s])`` (see :mod:`margin.rules.requirements`). Every generator here
returns a :class:`ScenarioSet`:

- :func:`scenario_pnl` - the generic engine: revalue each instrument at given forward moves and vols.
- :func:`span_scenarios` - CME SPAN's 16 risk-array scenarios (:mod:`margin.rules.span`).
- :func:`deribit_scenarios` - Deribit portfolio-margin grid + extended table (:mod:`margin.rules.deribit`).
- :func:`historical_scenarios` / :func:`filtered_historical_scenarios` - moves from a log-return history
  (filtered historical simulation, Barone-Adesi, Giannopoulos & Vosper 1999, with an EWMA(0.94) filter,
  RiskMetrics 1996).
- :func:`correlated_scenarios` - multi-underlying moves drawn from a correlation matrix, plus the same draws with
  correlations pushed to 1 (correlation stress).
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from margin.valuation.instruments import Instruments, unit_value
from margin.validation import (
    MarginInputError,
    check_finite,
    check_nonnegative,
    check_positive,
)

__all__ = [
    "ScenarioSet",
    "scenario_pnl",
    "historical_scenarios",
    "filtered_historical_scenarios",
    "correlated_scenarios",
    "ewma_volatility",
]


@partial(jax.tree_util.register_dataclass, data_fields=["pnl"], meta_fields=["labels", "unit", "name", "groups"])
@dataclasses.dataclass(frozen=True, eq=False)
class ScenarioSet:
    """Per-unit scenario P&L of I instruments under S scenarios.

    Attributes:
        pnl: ``(I, S)`` float, P&L of one unit (``contract_size`` coins) of each instrument in each scenario,
            in ``unit`` (gains > 0). Scenario weights (e.g. SPAN's 35% cover of extreme moves) are already
            applied, so the worst loss of positions x is ``max_s -(x @ pnl)[s]``.
        labels: S scenario labels.
        unit: settlement unit of ``pnl``: ``"usd"`` or ``"coin"``.
        name: generator name (``"span"``, ``"deribit"``, ``"historical"``, ...).
        groups: S group tags (e.g. ``"standard"`` / ``"extended"`` for Deribit, ``"extreme"`` for SPAN 15-16).
    """

    pnl: jax.Array
    labels: tuple = ()
    unit: str = "usd"
    name: str = ""
    groups: tuple = ()

    @property
    def n_instruments(self) -> int:
        return int(self.pnl.shape[0])

    @property
    def n_scenarios(self) -> int:
        return int(self.pnl.shape[1])

    def select(self, group: str) -> "ScenarioSet":
        """The scenarios whose group tag is ``group``."""
        idx = np.asarray([i for i, g in enumerate(self.groups) if g == group], int)
        return ScenarioSet(self.pnl[:, idx], tuple(self.labels[i] for i in idx), self.unit, self.name,
                           tuple(self.groups[i] for i in idx))

    @staticmethod
    def concat(parts: Sequence["ScenarioSet"], name: str | None = None) -> "ScenarioSet":
        """Scenarios of several sets (same instruments, same unit) side by side."""
        units = {p.unit for p in parts}
        if len(units) != 1:
            raise MarginInputError("parts", f"all scenario sets must share one unit, got {sorted(units)}")
        return ScenarioSet(
            jnp.concatenate([p.pnl for p in parts], axis=1),
            tuple(lbl for p in parts for lbl in p.labels),
            units.pop(),
            name if name is not None else "+".join(p.name for p in parts),
            tuple(g for p in parts for g in p.groups),
        )

    def scenario_pnl(self, positions) -> jax.Array:
        """``(N, S)`` P&L of the position matrix ``(N, I)``."""
        return jnp.asarray(positions, self.pnl.dtype) @ self.pnl


@partial(jax.jit, static_argnames=("unit",))
def _pnl_kernel(inst, f0, vol0, f1, vol1, dt, cover, unit):
    base = unit_value(inst, f0, f0[:, None], vol0[:, None], 0.0, unit=unit)
    new = unit_value(inst, f0, f1, vol1, dt, unit=unit)
    return (new - base) * cover[None, :]


def _bucket(n: int, minimum: int) -> int:
    return max(minimum, 1 << (int(n) - 1).bit_length())


def _pnl_padded(inst, f0, v0, f1, v1, dt, cover, unit, dtype):
    """Runs the jitted revaluation on shapes padded up to powers of two (pads: spot rows / zero-move columns),
    so that scenario sets of similar size share one compiled kernel; returns the ``(I, S)`` block."""
    n, s = f1.shape
    pn, ps = _bucket(n, 8) - n, _bucket(s, 16) - s
    if pn or ps:
        fields = ("kind", "underlying", "contract_size", "strike", "expiry", "settlement", "option_type")
        fill = {"kind": 0, "contract_size": 1.0}
        inst = Instruments(*(np.concatenate([np.asarray(getattr(inst, f)),
                                             np.full(pn, fill.get(f, 0), np.asarray(getattr(inst, f)).dtype)])
                             for f in fields), names=())
        f0 = np.r_[f0, np.ones(pn)]
        v0 = np.r_[v0, np.ones(pn)]
        f1 = np.pad(np.vstack([f1, np.ones((pn, s))]), ((0, 0), (0, ps)), mode="edge")
        v1 = np.pad(np.vstack([v1, np.ones((pn, s))]), ((0, 0), (0, ps)), mode="edge")
        cover = np.r_[cover, np.zeros(ps)]
    out = _pnl_kernel(inst, jnp.asarray(f0, dtype), jnp.asarray(v0, dtype), jnp.asarray(f1, dtype),
                      jnp.asarray(v1, dtype), jnp.asarray(dt, dtype), jnp.asarray(cover, dtype), unit)
    return out[:n, :s]


def _per_instrument(field: str, x, inst: Instruments, n_scen: int | None = None) -> np.ndarray:
    """Accepts (U, ...) per-underlying or (I, ...) per-instrument arrays and returns (I, ...)."""
    arr = np.asarray(x, np.float64)
    n = inst.size
    und = np.asarray(inst.underlying)
    if arr.ndim >= 1 and arr.shape[0] == n:
        return arr
    n_und = int(und.max()) + 1
    if arr.ndim >= 1 and arr.shape[0] >= n_und:
        return arr[und]
    raise MarginInputError(field, f"first axis must be I={n} (per instrument) or U>={n_und} (per underlying), "
                                  f"got shape {arr.shape}")


def scenario_pnl(
    inst: Instruments,
    forwards,
    vols,
    moves,
    new_vols=None,
    *,
    dt: float = 0.0,
    cover=None,
    unit: str = "usd",
    labels: Sequence[str] | None = None,
    name: str = "custom",
    groups: Sequence[str] | None = None,
    dtype=jnp.float64,
) -> ScenarioSet:
    """Revalue each instrument under S scenarios and return the per-unit P&L matrix.

    Args:
        inst: I instruments.
        forwards: ``(I,)`` per-instrument or ``(U,)`` per-underlying reference forward, USD per coin (> 0).
        vols: ``(I,)`` current annualised implied vol per instrument (> 0; ignored for non-options).
        moves: ``(I, S)`` or ``(U, S)`` relative forward moves m (F1 = F0 (1 + m), m > -1).
        new_vols: ``(I, S)`` scenario vols (> 0); default: unchanged.
        dt: years elapsed in the scenario (>= 0; options past expiry pay intrinsic).
        cover: ``(S,)`` weights applied to each scenario's P&L (default 1).
        unit: ``"usd"`` or ``"coin"``.
        dtype: computation dtype of the returned matrix (float64 default).

    Returns:
        :class:`ScenarioSet` with ``pnl`` of shape ``(I, S)``.

    Raises:
        MarginInputError (ValueError) naming the field and index for NaN/inf, non-positive forwards/vols,
        moves <= -1 or shape mismatches.
    """
    if unit not in ("usd", "coin"):
        raise MarginInputError("unit", "must be 'usd' or 'coin'", None, unit)
    f0 = _per_instrument("forwards", check_positive("forwards", forwards), inst)
    v0 = np.asarray(vols, np.float64)
    if v0.shape != (inst.size,):
        raise MarginInputError("vols", f"must have shape ({inst.size},), got {v0.shape}")
    opt = inst.is_option
    check_positive("vols", np.where(opt, v0, 1.0))
    v0 = np.where(opt, v0, 1.0)
    m = check_finite("moves", moves)
    if m.ndim != 2:
        raise MarginInputError("moves", f"must have shape (I or U, S), got {np.shape(moves)}")
    bad = m <= -1
    if bad.any():
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        raise MarginInputError("moves", "relative move must be > -1 (price stays positive)", i, float(m[i]))
    m = _per_instrument("moves", m, inst)
    s = m.shape[1]
    if new_vols is None:
        v1 = np.broadcast_to(v0[:, None], m.shape)
    else:
        v1 = np.asarray(new_vols, np.float64)
        if v1.shape != m.shape:
            raise MarginInputError("new_vols", f"must have shape {m.shape}, got {v1.shape}")
        check_positive("new_vols", np.where(opt[:, None], v1, 1.0))
        v1 = np.where(opt[:, None], v1, 1.0)
    check_nonnegative("dt", dt)
    c = np.ones(s) if cover is None else check_nonnegative("cover", cover)
    if c.shape != (s,):
        raise MarginInputError("cover", f"must have shape ({s},), got {c.shape}")
    pnl = _pnl_padded(inst, f0, v0, f0[:, None] * (1 + m), v1, dt, c, unit, dtype)
    lbl = tuple(labels) if labels is not None else tuple(f"s{j}" for j in range(s))
    grp = tuple(groups) if groups is not None else ("standard",) * s
    if len(lbl) != s or len(grp) != s:
        raise MarginInputError("labels", f"labels and groups need {s} entries")
    return ScenarioSet(pnl, lbl, unit, name, grp)


def _check_returns(returns, n_und: int) -> np.ndarray:
    r = check_finite("returns", returns)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2 or r.shape[1] < n_und:
        raise MarginInputError("returns", f"must have shape (T, U>={n_und}), got {np.shape(returns)}")
    if r.shape[0] < 2:
        raise MarginInputError("returns", f"need at least 2 observations, got {r.shape[0]}")
    return r


def historical_scenarios(
    inst: Instruments,
    forwards,
    vols,
    returns,
    *,
    horizon: int = 1,
    unit: str = "usd",
    dtype=jnp.float64,
) -> ScenarioSet:
    """Historical-simulation scenarios: each (overlapping) ``horizon``-day log return of the history is one
    scenario move ``m = exp(r) - 1`` of the underlying, vols unchanged.

    Args:
        inst, forwards, vols: as in :func:`scenario_pnl`.
        returns: ``(T,)`` or ``(T, U)`` daily log returns per underlying (column u = underlying index u).
        horizon: days per scenario (overlapping sums of ``horizon`` daily returns), >= 1.

    Returns:
        :class:`ScenarioSet` with ``T - horizon + 1`` scenarios.
    """
    n_und = int(np.max(inst.underlying)) + 1
    r = _check_returns(returns, n_und)
    if horizon < 1 or horizon > r.shape[0]:
        raise MarginInputError("horizon", f"must lie in [1, {r.shape[0]}]", None, horizon)
    c = np.cumsum(np.vstack([np.zeros((1, r.shape[1])), r]), axis=0)
    rh = c[horizon:] - c[:-horizon]  # (T-h+1, U)
    moves = np.expm1(rh).T
    return scenario_pnl(inst, forwards, vols, moves, unit=unit, name="historical", dtype=dtype,
                        labels=[f"hist{t}" for t in range(moves.shape[1])])


def ewma_volatility(returns, lam: float = 0.94) -> np.ndarray:
    """EWMA volatility filter (RiskMetrics 1996): s2_t = lam s2_{t-1} + (1 - lam) r2_{t-1}.

    Args:
        returns: ``(T, U)`` log returns.
        lam: decay in (0, 1).

    Returns:
        ``(T + 1, U)`` volatilities: row t is the forecast for return t made with returns before t
        (row 0 = sample std of the first min(T, 30) returns); row T is the forecast for the next day.
    """
    if not 0 < lam < 1:
        raise MarginInputError("lam", "must lie in (0, 1)", None, lam)
    r = np.asarray(returns, np.float64)
    s2 = np.empty((r.shape[0] + 1, r.shape[1]))
    s2[0] = np.mean(r[: min(len(r), 30)] ** 2, axis=0)
    for t in range(r.shape[0]):
        s2[t + 1] = lam * s2[t] + (1 - lam) * r[t] ** 2
    return np.sqrt(np.maximum(s2, 1e-300))


def filtered_historical_scenarios(
    inst: Instruments,
    forwards,
    vols,
    returns,
    *,
    lam: float = 0.94,
    unit: str = "usd",
    dtype=jnp.float64,
) -> ScenarioSet:
    """Filtered historical simulation: standardise each past return by its EWMA vol and rescale it to today's
    EWMA vol, r*_t = r_t x sigma_{T+1} / sigma_t (Barone-Adesi, Giannopoulos & Vosper, 1999; Hull & White, 1998).

    Args: as :func:`historical_scenarios`; ``lam`` is the EWMA decay (0.94, RiskMetrics daily).
    """
    n_und = int(np.max(inst.underlying)) + 1
    r = _check_returns(returns, n_und)
    s = ewma_volatility(r, lam)
    rstar = r / s[:-1] * s[-1][None, :]
    moves = np.expm1(rstar).T
    return scenario_pnl(inst, forwards, vols, moves, unit=unit, name="filtered_historical", dtype=dtype,
                        labels=[f"fhs{t}" for t in range(moves.shape[1])])


def _psd_sqrt(corr: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(corr)
    return v * np.sqrt(np.clip(w, 0, None))


def correlated_scenarios(
    inst: Instruments,
    forwards,
    vols,
    sigmas,
    corr,
    *,
    n_scenarios: int,
    key: jax.Array,
    stress_weight: float = 1.0,
    unit: str = "usd",
    dtype=jnp.float64,
) -> ScenarioSet:
    """Multi-underlying scenarios with correlation stress.

    Draws z ~ N(0, I_U) (S x U), sets log moves r = (z A^T) x sigma with A A^T = corr, and returns the S
    correlated scenarios followed by the same draws under the stressed correlation
    (1 - w) corr + w 11^T (w = ``stress_weight``; w = 1 pushes all correlations to 1, so every underlying moves
    by z_common x sigma_u). Moves are ``exp(r) - 1``; vols unchanged.

    Args:
        inst, forwards, vols: as in :func:`scenario_pnl`.
        sigmas: ``(U,)`` standard deviation of each underlying's log return over the horizon (> 0).
        corr: ``(U, U)`` correlation matrix (symmetric, unit diagonal, positive semi-definite).
        n_scenarios: S draws (the set has 2 S columns: ``corr*`` then ``stress*``).
        key: ``jax.random`` key (explicit randomness).
        stress_weight: w in [0, 1].

    Raises:
        MarginInputError naming the field: non-symmetric / non-unit-diagonal / not PSD corr, bad sigmas.
    """
    sig = check_positive("sigmas", sigmas)
    u = sig.shape[0]
    c = check_finite("corr", corr)
    if c.shape != (u, u):
        raise MarginInputError("corr", f"must have shape ({u}, {u}), got {c.shape}")
    asym = np.abs(c - c.T) > 1e-12
    if asym.any():
        i = tuple(int(j) for j in np.argwhere(asym)[0])
        raise MarginInputError("corr", "must be symmetric", i, float(c[i]))
    diag = np.abs(np.diag(c) - 1) > 1e-12
    if diag.any():
        i = int(np.argmax(diag))
        raise MarginInputError("corr", "diagonal must be 1", (i, i), float(c[i, i]))
    if np.linalg.eigvalsh(c).min() < -1e-10:
        raise MarginInputError("corr", "must be positive semi-definite")
    if not 0 <= stress_weight <= 1:
        raise MarginInputError("stress_weight", "must lie in [0, 1]", None, stress_weight)
    if int(np.max(inst.underlying)) >= u:
        raise MarginInputError("inst.underlying", f"must be < U={u}")
    z = np.asarray(jax.random.normal(key, (n_scenarios, u), jnp.float64))
    base = z @ _psd_sqrt(c).T * sig
    stressed_c = (1 - stress_weight) * c + stress_weight * np.ones((u, u))
    stressed = z @ _psd_sqrt(stressed_c).T * sig
    moves = np.expm1(np.vstack([base, stressed])).T  # (U, 2S)
    labels = [f"corr{j}" for j in range(n_scenarios)] + [f"stress{j}" for j in range(n_scenarios)]
    groups = ["correlated"] * n_scenarios + ["stressed"] * n_scenarios
    return scenario_pnl(inst, forwards, vols, moves, unit=unit, name="correlated", dtype=dtype,
                        labels=labels, groups=groups)
