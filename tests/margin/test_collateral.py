"""Collateral haircuts and Aave-style float health: worked examples, exact-integer Aave cross-check,
monotonicity properties and bad input."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy.stats import norm

from margin.rules import collateral as col
from margin.rules.venues import aave
from margin.rules.venues._validate import VenueInputError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "margin"


def _load_conf():
    """Compose the config group file with Hydra (as the entry points do)."""
    with initialize_config_dir(version_base=None, config_dir=str(CONF_DIR)):
        return OmegaConf.to_container(compose(config_name="collateral"), resolve=True)


@pytest.fixture(scope="module")
def cfg():
    return _load_conf()


def test_static_table_inside_reference_ranges(cfg):
    table = col.haircut_table_from_config(cfg)
    for cls, v in cfg["asset_classes"].items():
        lo, hi = v["range"]
        assert lo <= table[cls] <= hi
    # REFERENCE.md ranges
    assert cfg["asset_classes"]["stablecoin"]["range"] == [0.0, 0.05]
    assert cfg["asset_classes"]["btc_eth"]["range"] == [0.10, 0.20]
    assert cfg["asset_classes"]["liquid_staking"]["range"] == [0.15, 0.30]
    h = col.static_haircuts([cfg["assets"][a] for a in ("USDC", "BTC", "stETH", "SOL")], table)
    assert h.tolist() == [0.02, 0.15, 0.25, 0.40]
    with pytest.raises(VenueInputError, match=r"asset_classes at index \(1,\).*unknown asset class") as ei:
        col.static_haircuts(["stablecoin", "meme"], table)
    assert ei.value.value == "meme"


def test_var_haircut_worked_example():
    # z_0.99 * 80 % * sqrt(2 / 365) + 0.1 * sqrt(4M / 100M)
    z = norm.ppf(0.99)
    assert z == pytest.approx(2.3263478740408408, rel=1e-12)
    want = z * 0.8 * np.sqrt(2 / 365) + 0.1 * np.sqrt(0.04)
    got = col.var_haircut([0.8], 2.0, confidence=0.99, position_value=[4e6], market_depth=[1e8],
                          liquidity_coeff=0.1, dtype=jnp.float64)
    assert float(got[0]) == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx(0.1577, abs=1e-4)
    # capped at 100 %
    assert float(col.var_haircut([5.0], 30.0, dtype=jnp.float64)[0]) == 1.0
    # per-account sizes broadcast to (N, K) and float32 by default
    h = col.var_haircut([0.5, 0.8], 1.0, position_value=np.ones((3, 2)) * 1e6, market_depth=[1e7, 1e8],
                        liquidity_coeff=0.1)
    assert h.shape == (3, 2) and h.dtype == jnp.float32


def test_collateral_value_by_hand():
    b = np.array([[1.0, 10_000.0, -2_000.0], [0.0, 0.0, 0.0]])  # 1 BTC, 10k USDC, borrowed 2,000 USDT
    p = np.array([60_000.0, 1.0, 1.0])
    h = np.array([0.15, 0.02, 0.02])
    v = col.collateral_value(b, p, h, dtype=jnp.float64)
    assert float(v.gross[0]) == pytest.approx(70_000)
    assert float(v.haircut_value[0]) == pytest.approx(60_000 * 0.85 + 10_000 * 0.98)
    assert float(v.debt[0]) == pytest.approx(2_000)
    assert float(v.net[0]) == pytest.approx(51_000 + 9_800 - 2_000)
    assert float(v.net[1]) == 0.0
    s = col.margin_shortfall(b, p, h, requirement_usd=[60_000.0, 0.0], dtype=jnp.float64)
    assert float(s[0]) == pytest.approx(60_000 - 58_800) and float(s[1]) == 0.0


def test_health_factor_and_liquidation_price_by_hand():
    # 1 ETH at $2,000 with LT 82.5 %, debt 1,650 USDC: HF exactly 1, liquidation price $2,000
    c = np.array([[1.0, 0.0]])
    d = np.array([[0.0, 1_650.0]])
    p = np.array([2_000.0, 1.0])
    lt = np.array([0.825, 0.78])
    assert float(col.health_factor(c, d, p, lt, dtype=jnp.float64)[0]) == pytest.approx(1.0, rel=1e-15)
    lp = col.liquidation_price(c, d, p, lt, 0, dtype=jnp.float64)
    assert float(lp.price[0]) == pytest.approx(2_000.0) and int(lp.direction[0]) == 1
    # the borrowed asset: liquidated if USDC rises above 2,000 * 0.825 / 1,650 = 1.0
    lp = col.liquidation_price(c, d, p, lt, 1, dtype=jnp.float64)
    assert float(lp.price[0]) == pytest.approx(1.0) and int(lp.direction[0]) == -1
    # no debt: HF inf (not NaN); no collateral: average LT 0
    assert np.isinf(float(col.health_factor(c, np.zeros_like(d), p, lt)[0]))
    assert float(col.average_liquidation_threshold(np.zeros((1, 2)), p, lt)[0]) == 0.0
    # average LT by hand: $2,000 at 82.5 % + $1,000 at 78 %
    avg = col.average_liquidation_threshold(np.array([[1.0, 1_000.0]]), p, lt, dtype=jnp.float64)
    assert float(avg[0]) == pytest.approx((2_000 * 0.825 + 1_000 * 0.78) / 3_000)


def test_liquidation_price_edge_cases():
    p = np.array([2_000.0, 1.0])
    lt = np.array([0.8, 0.9])
    # debt fully covered by the other collateral: no positive ETH price liquidates
    lp = col.liquidation_price([[1.0, 10_000.0]], [[0.0, 1_000.0]], p, lt, 0, dtype=jnp.float64)
    assert int(lp.direction[0]) == 0 and not bool(lp.always_liquidatable[0]) and float(lp.price[0]) == 0.0
    # only ETH debt, no collateral: liquidatable at any price
    lp = col.liquidation_price([[0.0, 0.0]], [[1.0, 0.0]], p, lt, 0, dtype=jnp.float64)
    assert bool(lp.always_liquidatable[0])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_float_hf_matches_exact_aave_integers(seed):
    rng = np.random.default_rng(seed)
    n, k = 8, 3
    dec = [18, 8, 6]
    lt_bps = rng.integers(5_000, 9_000, k)
    res = [aave.AaveReserve(f"T{j}", dec[j], 0, int(lt_bps[j]), 10_500) for j in range(k)]
    price_int = rng.integers(10**8, 10**12, k)  # $1 .. $10,000, 8 decimals
    coll_units = rng.integers(0, 10**6, (n, k)) * (rng.random((n, k)) < 0.7)
    debt_units = rng.integers(0, 10**6, (n, k)) * (rng.random((n, k)) < 0.5)
    single = np.zeros((n, k), bool)
    single[:, 0] = True
    coll_units[:4] *= single[:4]  # first half: one collateral asset (no average-LT flooring)
    debt_units[:4, 0] = 0
    scale = np.array([10 ** (d - 3) for d in dec], dtype=object)  # up to 1,000 tokens; Python ints
    c_int = coll_units.astype(object) * scale
    d_int = debt_units.astype(object) * scale
    unit = 10.0 ** np.array(dec)
    hf = np.asarray(col.health_factor(coll_units / 1e3, debt_units / 1e3, price_int / 1e8, lt_bps / 1e4,
                                      dtype=jnp.float64))
    assert np.allclose(c_int.astype(float) / unit, coll_units / 1e3)
    for i in range(n):
        exact = aave.health_factor([int(x) for x in c_int[i]], [int(x) for x in d_int[i]],
                                   [int(x) for x in price_int], res)
        if exact == aave.UINT256_MAX:
            assert np.isinf(hf[i])
            continue
        got = Fraction(float(hf[i])).limit_denominator(10**18)
        # one collateral: integer HF = float HF up to the contract's floors (values >= $1 in 8-dec units);
        # several: the average LT is floored to whole bps (relative error <= 1 bps / LT)
        tol = 1e-8 if i < 4 else 1.0 / 5_000
        assert abs(float(got) - exact / 1e18) <= tol * max(1.0, exact / 1e18)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bump=st.floats(0.0, 0.5))
def test_requirements_monotone_in_haircut(seed, bump):
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 10, (16, 4))
    p = rng.uniform(0.5, 100, 4)
    h = rng.uniform(0, 0.5, 4)
    req = rng.uniform(0, 100, 16)
    s1 = np.asarray(col.margin_shortfall(b, p, h, req, dtype=jnp.float64))
    s2 = np.asarray(col.margin_shortfall(b, p, np.minimum(h + bump, 1.0), req, dtype=jnp.float64))
    assert np.all(s2 >= s1 - 1e-9)
    v1 = np.asarray(col.collateral_value(b, p, h, dtype=jnp.float64).haircut_value)
    v2 = np.asarray(col.collateral_value(b, p, np.minimum(h + bump, 1.0), dtype=jnp.float64).haircut_value)
    assert np.all(v2 <= v1 + 1e-9)
    # VaR haircut grows with vol, horizon and size
    s = rng.uniform(0.1, 1.0, 4)
    base = np.asarray(col.var_haircut(s, 2.0, position_value=[1e6] * 4, market_depth=[1e8] * 4,
                                      liquidity_coeff=0.1, dtype=jnp.float64))
    more = np.asarray(col.var_haircut(s + bump, 2.0 + bump, position_value=[1e6 * (1 + bump)] * 4,
                                      market_depth=[1e8] * 4, liquidity_coeff=0.1, dtype=jnp.float64))
    assert np.all(more >= base - 1e-15)


@pytest.mark.parametrize("call,match", [
    (lambda: col.collateral_value([[1.0, 2.0]], [1.0, np.nan], [0.1, 0.1]), r"prices at index \(1,\).*finite"),
    (lambda: col.collateral_value([[1.0, 2.0]], [1.0, -3.0], [0.1, 0.1]), r"prices at index \(1,\).*> 0"),
    (lambda: col.collateral_value([[1.0, 2.0]], [1.0, 1.0], [0.1, 1.2]), r"haircuts at index \(1,\).*<= 1"),
    (lambda: col.collateral_value([[1.0, 2.0]], [1.0, 1.0, 1.0], [0.1, 0.1]), r"prices.*shape mismatch"),
    (lambda: col.collateral_value([[1.0, 2.0]], [1.0, 1.0], [[0.1, 0.1]] * 3), r"haircuts.*shape mismatch"),
    (lambda: col.health_factor([[1.0, -2.0]], [[0.0, 0.0]], [1.0, 1.0], [0.8, 0.8]),
     r"collateral at index \(0, 1\).*>= 0"),
    (lambda: col.health_factor([[1.0, 2.0]], [[0.0, -1.0]], [1.0, 1.0], [0.8, 0.8]), r"debt at index \(0, 1\)"),
    (lambda: col.health_factor([[1.0, 2.0]], [[0.0]], [1.0, 1.0], [0.8, 0.8]), r"debt.*shape mismatch"),
    (lambda: col.liquidation_price([[1.0, 2.0]], [[0.0, 1.0]], [1.0, 1.0], [0.8, 0.8], 2), r"asset_index"),
    (lambda: col.var_haircut([0.5, -0.1], 2.0), r"sigma_annual at index \(1,\).*>= 0"),
    (lambda: col.var_haircut([0.5], 0.0), r"horizon_days.*> 0"),
    (lambda: col.var_haircut([0.5], 2.0, confidence=1.0), r"confidence"),
    (lambda: col.var_haircut([0.5, 0.5], 2.0, position_value=[1.0, 1.0, 1.0], market_depth=[1.0, 1.0]),
     r"do not broadcast"),
    (lambda: col.var_haircut([0.5], 2.0, position_value=[1.0]), r"market_depth.*required"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match) as ei:
        call()
    assert isinstance(ei.value, VenueInputError)


def test_bad_input_stops_before_any_kernel(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("kernel ran on bad input")

    for name in ("_value_kernel", "_hf_kernel", "_liq_kernel", "_var_kernel"):
        monkeypatch.setattr(col, name, boom)
    with pytest.raises(VenueInputError, match=r"balances at index \(0, 0\)"):
        col.collateral_value([[np.nan, 1.0]], [1.0, 1.0], [0.0, 0.0])
    with pytest.raises(VenueInputError, match=r"collateral at index \(1, 0\)"):
        col.health_factor([[1.0, 1.0], [-1.0, 1.0]], np.zeros((2, 2)), [1.0, 1.0], [0.8, 0.8])
    with pytest.raises(VenueInputError, match=r"liquidation_threshold.*shape mismatch"):
        col.liquidation_price([[1.0, 1.0]], [[0.0, 1.0]], [1.0, 1.0], [0.8, 0.8, 0.8], 0)
    with pytest.raises(VenueInputError, match=r"market_depth at index \(0,\)"):
        col.var_haircut([0.5], 1.0, position_value=[1.0], market_depth=[0.0])
