"""Account books for the liquidation simulator: a seeded synthetic venue population and a positions-file loader.

A :class:`Book` holds N accounts over A assets as arrays:

- perpetuals: signed USD notional per asset at inception (converted to coin at the first simulated price);
- at most one option spread per account (two legs, one asset) on a grid of rolling option series: ``J`` tenors
  (days) x ``K`` moneyness points (strike / spot at the series' roll) x call/put. The grid and the sampling weights
  are shaped like the Deribit BTC chain of 2020-05-14 (``margin/data/DERIBIT_BTC_options_2020-05-14.csv``): the
  probability of a (tenor, moneyness) cell is the chain's open interest nearest to it. Spreads are vertical,
  one grid step wide: bull call spreads (long K_k call, short K_{k+1} call) and bear put spreads (long K_k put,
  short K_{k-1} put), bought or sold;
- behaviour: target leverage (notional / equity), a reserve of outside cash (multiple of initial equity) used to
  answer margin calls, optional explicit collateral (user files).

Instrument index of option (asset a, tenor j, moneyness k, type c in {0 call, 1 put}):
``((a * J + j) * K + k) * 2 + c`` (see :meth:`OptionGrid.index`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Book", "BookError", "OptionGrid", "chain_weights", "load_positions", "synthetic_book"]

CHAIN_PATH = Path(__file__).resolve().parents[1] / "data" / "DERIBIT_BTC_options_2020-05-14.csv"


class BookError(ValueError):
    """Invalid book parameter or positions file (names file, line, column and value)."""


@dataclasses.dataclass(frozen=True)
class OptionGrid:
    """Rolling option series: ``tenors`` (days, each series re-struck every tenor days) x ``moneyness``."""

    tenors: tuple[int, ...] = (7, 30, 90)
    moneyness: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5)

    def __post_init__(self) -> None:
        if not self.tenors or any(int(d) < 1 for d in self.tenors):
            raise BookError(f"option tenors: need positive day counts, got {self.tenors!r}")
        m = np.asarray(self.moneyness, dtype=np.float64)
        if m.size < 2 or np.any(m <= 0) or np.any(np.diff(m) <= 0):
            raise BookError(f"option moneyness: need >= 2 increasing positive values, got {self.moneyness!r}")

    @property
    def J(self) -> int:
        return len(self.tenors)

    @property
    def K(self) -> int:
        return len(self.moneyness)

    def n_instruments(self, n_assets: int) -> int:
        return n_assets * self.J * self.K * 2

    def index(self, asset, tenor, money, is_put):
        """Instrument index (vectorised over numpy int arrays)."""
        return ((np.asarray(asset) * self.J + np.asarray(tenor)) * self.K + np.asarray(money)) * 2 + np.asarray(is_put)

    def decode(self, idx):
        """Inverse of :meth:`index`: (asset, tenor, moneyness, is_put) arrays."""
        idx = np.asarray(idx)
        c = idx % 2
        k = (idx // 2) % self.K
        j = (idx // (2 * self.K)) % self.J
        a = idx // (2 * self.K * self.J)
        return a, j, k, c


@dataclasses.dataclass(frozen=True)
class Book:
    """N accounts over ``assets``.

    Attributes:
        assets: A asset names.
        perp_usd: ``(N, A)`` float64 signed perpetual notional at inception, USD (> 0 long).
        opt_asset: ``(N,)`` int64 asset index of the option spread, -1 for none.
        opt_idx: ``(N, 2)`` int64 instrument indices of the two legs (0 where no spread).
        opt_count: ``(N, 2)`` float64 signed leg sizes in coin (0 where no spread).
        leverage: ``(N,)`` float64 target notional / equity (> 0).
        reserve: ``(N,)`` float64 outside cash available for margin calls, as a multiple of initial equity (>= 0).
        collateral: ``(N,)`` float64 initial collateral in USD, NaN = derive from leverage and the policy's IM.
        grid: the :class:`OptionGrid`.
    """

    assets: tuple[str, ...]
    perp_usd: np.ndarray
    opt_asset: np.ndarray
    opt_idx: np.ndarray
    opt_count: np.ndarray
    leverage: np.ndarray
    reserve: np.ndarray
    collateral: np.ndarray
    grid: OptionGrid = OptionGrid()

    @property
    def n_accounts(self) -> int:
        return int(self.perp_usd.shape[0])

    def subset(self, n: int) -> "Book":
        """The first n accounts."""
        return dataclasses.replace(self, **{f: getattr(self, f)[:n] for f in
                                            ("perp_usd", "opt_asset", "opt_idx", "opt_count", "leverage",
                                             "reserve", "collateral")})

    def summary(self) -> dict:
        long_ = (self.perp_usd > 0).sum()
        short = (self.perp_usd < 0).sum()
        return {"accounts": self.n_accounts, "assets": list(self.assets),
                "perp_notional_usd": float(np.abs(self.perp_usd).sum()),
                "long_positions": int(long_), "short_positions": int(short),
                "option_accounts": int((self.opt_asset >= 0).sum()),
                "median_leverage": float(np.median(self.leverage))}


def chain_weights(grid: OptionGrid, path: str | Path = CHAIN_PATH) -> np.ndarray:
    """``(J, K)`` probabilities of (tenor, moneyness) cells from a Deribit chain's open interest.

    Each option of the chain is assigned to the nearest tenor (in log days) and nearest moneyness (in log
    strike / underlying); cells with no open interest get a small floor so every cell stays possible.
    """
    df = pd.read_csv(path)
    for col in ("strike", "underlying_price", "open_interest", "expiry_utc", "snapshot_time_utc"):
        if col not in df.columns:
            raise BookError(f"{path}: missing column {col!r}")
    tau = (pd.to_datetime(df["expiry_utc"]) - pd.to_datetime(df["snapshot_time_utc"])).dt.total_seconds() / 86400
    tau = np.maximum(tau.to_numpy(), 0.5)
    m = df["strike"].to_numpy(np.float64) / df["underlying_price"].to_numpy(np.float64)
    j = np.abs(np.log(tau)[:, None] - np.log(np.asarray(grid.tenors, np.float64))[None]).argmin(1)
    k = np.abs(np.log(m)[:, None] - np.log(np.asarray(grid.moneyness))[None]).argmin(1)
    w = np.zeros((grid.J, grid.K))
    np.add.at(w, (j, k), np.nan_to_num(df["open_interest"].to_numpy(np.float64)))
    w = w / w.sum() + 1e-3
    return w / w.sum()


def _lognormal(rng, spec: Mapping, n: int, field: str) -> np.ndarray:
    try:
        median, sigma = float(spec["median"]), float(spec["sigma"])
    except (KeyError, TypeError) as exc:
        raise BookError(f"book.{field}: need median and sigma, got {spec!r}") from exc
    if median <= 0 or sigma < 0:
        raise BookError(f"book.{field}: median must be > 0 and sigma >= 0, got {spec!r}")
    x = median * np.exp(sigma * rng.standard_normal(n))
    lo, hi = float(spec.get("min", 0.0)), float(spec.get("max", np.inf))
    return np.clip(x, lo, hi)


def synthetic_book(n_accounts: int = 10_000, assets: Sequence[str] = ("BTC", "ETH"), *, seed: int = 0,
                   asset_weights: Sequence[float] | None = None, multi_asset_prob: float = 0.3,
                   long_prob: float = 0.55, notional: Mapping | None = None, leverage: Mapping | None = None,
                   reserve: Mapping | None = None, option_prob: float = 0.25, option_notional_ratio: float = 0.5,
                   short_spread_prob: float = 0.5, tenors: Sequence[int] = (7, 30, 90),
                   moneyness: Sequence[float] = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5),
                   chain_path: str | Path | None = CHAIN_PATH) -> Book:
    """Seeded synthetic account population (``conf/book/*.yaml``).

    Args:
        n_accounts: N >= 1.
        assets: asset names.
        seed: numpy Generator seed (the same seed gives the same book).
        asset_weights: probability of each asset being an account's main asset (default uniform).
        multi_asset_prob: probability the account also holds a perpetual in a second asset.
        long_prob: probability a perpetual position is long.
        notional: lognormal spec ``{median, sigma, min, max}`` of the USD notional per account.
        leverage: lognormal spec of the target leverage (notional / equity); crypto venues show a heavy right
            tail (median ~5x, tail to 50-100x).
        reserve: lognormal spec of outside cash for margin calls (multiple of initial equity); ``zero_prob``
            gives the share of accounts with no reserve at all.
        option_prob: probability the account holds an option spread.
        option_notional_ratio: spread size (coin x spot) relative to the perpetual notional.
        short_spread_prob: probability the spread is sold (credit spread) rather than bought.
        tenors, moneyness: the :class:`OptionGrid`.
        chain_path: Deribit chain used for the (tenor, moneyness) weights; None = uniform.

    Returns:
        :class:`Book`.
    """
    if int(n_accounts) < 1:
        raise BookError(f"book.n_accounts: must be >= 1, got {n_accounts!r}")
    assets = tuple(str(a) for a in assets)
    A = len(assets)
    if A < 1:
        raise BookError("book.assets: need at least one asset")
    for field, p in (("multi_asset_prob", multi_asset_prob), ("long_prob", long_prob), ("option_prob", option_prob),
                     ("short_spread_prob", short_spread_prob)):
        if not 0 <= float(p) <= 1:
            raise BookError(f"book.{field}: must be in [0, 1], got {p!r}")
    w = np.full(A, 1.0 / A) if asset_weights is None else np.asarray(asset_weights, np.float64)
    if w.shape != (A,) or np.any(w < 0) or w.sum() <= 0:
        raise BookError(f"book.asset_weights: need {A} non-negative weights, got {asset_weights!r}")
    w = w / w.sum()
    grid = OptionGrid(tuple(int(d) for d in tenors), tuple(float(m) for m in moneyness))
    n = int(n_accounts)
    rng = np.random.default_rng(seed)
    notional = notional or {"median": 20_000.0, "sigma": 1.2, "min": 100.0, "max": 5e7}
    leverage = leverage or {"median": 5.0, "sigma": 0.8, "min": 1.0, "max": 100.0}
    reserve = reserve or {"median": 0.5, "sigma": 1.0, "max": 10.0, "zero_prob": 0.3}

    size = _lognormal(rng, notional, n, "notional")
    main = rng.choice(A, size=n, p=w)
    perp = np.zeros((n, A))
    side = np.where(rng.random(n) < long_prob, 1.0, -1.0)
    perp[np.arange(n), main] = side * size
    if A > 1:
        second = (main + 1 + rng.integers(0, A - 1, size=n)) % A
        has2 = rng.random(n) < multi_asset_prob
        side2 = np.where(rng.random(n) < long_prob, 1.0, -1.0)
        frac = rng.uniform(0.2, 1.0, size=n)
        perp[has2, second[has2]] = side2[has2] * size[has2] * frac[has2]
    lev = _lognormal(rng, leverage, n, "leverage")
    res = _lognormal(rng, reserve, n, "reserve")
    res = np.where(rng.random(n) < float(reserve.get("zero_prob", 0.0)), 0.0, res)

    # Option spreads: one per holder, on the main asset; cell drawn from the chain's open interest.
    has_opt = rng.random(n) < option_prob
    cells = chain_weights(grid, chain_path) if chain_path is not None else np.full((grid.J, grid.K), 1 / (grid.J * grid.K))
    flat = rng.choice(grid.J * grid.K, size=n, p=cells.ravel())
    j, k = flat // grid.K, flat % grid.K
    is_put = (rng.random(n) < 0.5).astype(np.int64)
    # bull call: long k, short k+1 ; bear put: long k, short k-1 (keep the short leg on the grid)
    k = np.where(is_put == 0, np.minimum(k, grid.K - 2), np.maximum(k, 1))
    k2 = np.where(is_put == 0, k + 1, k - 1)
    count = option_notional_ratio * size  # USD; converted to coin at the first price by the simulator
    sell = np.where(rng.random(n) < short_spread_prob, -1.0, 1.0)
    opt_idx = np.stack([grid.index(main, j, k, is_put), grid.index(main, j, k2, is_put)], axis=1)
    opt_cnt = np.stack([sell * count, -sell * count], axis=1)
    opt_idx = np.where(has_opt[:, None], opt_idx, 0).astype(np.int64)
    opt_cnt = np.where(has_opt[:, None], opt_cnt, 0.0)
    return Book(assets=assets, perp_usd=perp, opt_asset=np.where(has_opt, main, -1).astype(np.int64),
                opt_idx=opt_idx, opt_count=opt_cnt, leverage=lev, reserve=res,
                collateral=np.full(n, np.nan), grid=grid)


# --------------------------------------------------------------------------------------------------- loader

_REQUIRED = ("account", "asset", "kind", "notional_usd")
_KINDS = ("perpetual", "call", "put")


def _fail(path, line, column, value, why) -> BookError:
    return BookError(f"{path}: line {line}, column {column!r}: {why} (value {value!r})")


def load_positions(path: str | Path, assets: Sequence[str] | None = None, grid: OptionGrid = OptionGrid(),
                   default_leverage: float = 5.0, default_reserve: float = 0.0) -> Book:
    """Load a user's positions file (CSV or Parquet) into a :class:`Book`, validating every row.

    Columns (one row per position; ``line`` in errors is the CSV line number, header = line 1):
        account (str/int), asset (str), kind (``perpetual`` | ``call`` | ``put``), notional_usd (signed float:
        USD notional at inception, > 0 long; for options coin count x spot),
        moneyness (options: strike / spot, must be a point of ``grid.moneyness``), tenor_days (options: one of
        ``grid.tenors``), optional collateral_usd (per account, > 0; same on all its rows), leverage, reserve.

    Each account may hold at most one perpetual per asset and at most two option legs, on one asset.

    Raises:
        BookError: unreadable file, missing column, unknown asset/kind, non-finite or out-of-range value,
            option leg off the grid, too many legs -- naming file, line, column and value.
    """
    path = Path(path)
    if not path.exists():
        raise BookError(f"{path}: file not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype={"account": str, "asset": str, "kind": str})
    except Exception as exc:  # pragma: no cover - message passthrough
        raise BookError(f"{path}: cannot read positions file: {exc}") from exc
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise BookError(f"{path}: missing column {missing[0]!r} (required {list(_REQUIRED)})")
    if df.empty:
        raise BookError(f"{path}: no positions")
    assets = tuple(assets) if assets is not None else tuple(sorted(df["asset"].astype(str).unique()))
    a_of = {a: i for i, a in enumerate(assets)}
    accounts: dict[str, dict] = {}
    money = np.asarray(grid.moneyness)
    for row_no, row in enumerate(df.itertuples(index=False)):
        line = row_no + 2
        rec = row._asdict()
        acct = str(rec["account"])
        if acct in ("", "nan", "None"):
            raise _fail(path, line, "account", rec["account"], "empty account id")
        asset = str(rec["asset"])
        if asset not in a_of:
            raise _fail(path, line, "asset", asset, f"unknown asset (known {list(assets)})")
        kind = str(rec["kind"]).strip().lower()
        if kind not in _KINDS:
            raise _fail(path, line, "kind", rec["kind"], f"unknown kind (allowed {list(_KINDS)})")
        try:
            notional = float(rec["notional_usd"])
        except (TypeError, ValueError):
            raise _fail(path, line, "notional_usd", rec["notional_usd"], "not a number") from None
        if not np.isfinite(notional) or notional == 0:
            raise _fail(path, line, "notional_usd", rec["notional_usd"], "must be finite and non-zero")
        acc = accounts.setdefault(acct, {"perp": np.zeros(len(assets)), "legs": [], "collateral": np.nan,
                                         "leverage": default_leverage, "reserve": default_reserve})
        for col, lo in (("collateral_usd", 0.0), ("leverage", 0.0), ("reserve", -1e-300)):
            if col in rec and rec[col] is not None and not (isinstance(rec[col], float) and np.isnan(rec[col])):
                try:
                    v = float(rec[col])
                except (TypeError, ValueError):
                    raise _fail(path, line, col, rec[col], "not a number") from None
                if not np.isfinite(v) or v <= lo:
                    raise _fail(path, line, col, rec[col], "must be finite and positive" if lo == 0 else
                                "must be finite and >= 0")
                key = {"collateral_usd": "collateral"}.get(col, col)
                acc[key] = v
        if kind == "perpetual":
            if acc["perp"][a_of[asset]] != 0:
                raise _fail(path, line, "asset", asset, f"second perpetual row for account {acct!r}")
            acc["perp"][a_of[asset]] = notional
            continue
        for col in ("moneyness", "tenor_days"):
            if col not in rec:
                raise BookError(f"{path}: line {line}: option rows need column {col!r}")
        try:
            m, tenor = float(rec["moneyness"]), float(rec["tenor_days"])
        except (TypeError, ValueError):
            raise _fail(path, line, "moneyness/tenor_days", (rec["moneyness"], rec["tenor_days"]),
                        "not a number") from None
        kk = np.flatnonzero(np.isclose(money, m, rtol=1e-6, atol=1e-9))
        if not np.isfinite(m) or kk.size == 0:
            raise _fail(path, line, "moneyness", rec["moneyness"], f"not on the option grid {list(grid.moneyness)}")
        if tenor not in grid.tenors:
            raise _fail(path, line, "tenor_days", rec["tenor_days"], f"not one of the series {list(grid.tenors)}")
        if len(acc["legs"]) == 2:
            raise _fail(path, line, "kind", rec["kind"], f"account {acct!r} has more than two option legs")
        if acc["legs"] and acc["legs"][0][0] != a_of[asset]:
            raise _fail(path, line, "asset", asset, f"account {acct!r}: option legs on two assets")
        acc["legs"].append((a_of[asset], grid.tenors.index(int(tenor)), int(kk[0]), int(kind == "put"), notional))
    n = len(accounts)
    perp = np.zeros((n, len(assets)))
    opt_asset = np.full(n, -1, np.int64)
    opt_idx = np.zeros((n, 2), np.int64)
    opt_cnt = np.zeros((n, 2))
    lev, res, coll = np.empty(n), np.empty(n), np.empty(n)
    for i, acc in enumerate(accounts.values()):
        perp[i] = acc["perp"]
        for leg, (a, j, k, c, q) in enumerate(acc["legs"]):
            opt_asset[i] = a
            opt_idx[i, leg] = grid.index(a, j, k, c)
            opt_cnt[i, leg] = q
        lev[i], res[i], coll[i] = acc["leverage"], acc["reserve"], acc["collateral"]
    return Book(assets=assets, perp_usd=perp, opt_asset=opt_asset, opt_idx=opt_idx, opt_count=opt_cnt,
                leverage=lev, reserve=res, collateral=coll, grid=grid)
