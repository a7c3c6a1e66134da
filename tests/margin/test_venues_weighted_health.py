"""Weighted-health engine (Mango v4 / Drift style): worked examples, kernel vs slow reference, properties."""
from __future__ import annotations

import math
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from margin.rules.venues import weighted_health as wh
from margin.rules.venues._validate import VenueInputError
from margin.rules.venues.weighted_health import TokenWeights, health, health_reference

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "margin"


def _load_conf():
    """Compose the config group file with Hydra (as the entry points do)."""
    with initialize_config_dir(version_base=None, config_dir=str(CONF_DIR)):
        return OmegaConf.to_container(compose(config_name="weighted_health"), resolve=True)
INF = math.inf


def _w(k=2, imf=0.0, dep_start=INF, bor_start=INF):
    # token 0: USDC (1/1), others: maint 0.9/1.1, init 0.8/1.2
    one = lambda a, b: np.array([a] + [b] * (k - 1))  # noqa: E731
    return TokenWeights(one(1.0, 0.8), one(1.0, 0.9), one(1.0, 1.2), one(1.0, 1.1),
                        one(INF, dep_start), one(INF, bor_start), one(0.0, imf))


P = np.array([1.0, 150.0])  # USDC, SOL


def test_worked_example_init_and_maint():
    b = np.array([[-1_000.0, 10.0]])  # borrowed $1,000 against 10 SOL ($1,500)
    r = health(b, P, _w(), health_type="init", dtype=jnp.float64)
    assert float(r.assets[0]) == pytest.approx(0.8 * 1_500)
    assert float(r.liabilities[0]) == pytest.approx(1_000)
    assert float(r.health[0]) == pytest.approx(200.0)
    assert float(r.health_ratio[0]) == pytest.approx(20.0)  # 100 x (1200 - 1000) / 1000
    r = health(b, P, _w(), health_type="maint", dtype=jnp.float64)
    assert float(r.health[0]) == pytest.approx(0.9 * 1_500 - 1_000)
    # no liabilities: ratio +inf, not NaN
    r = health(np.array([[5.0, 1.0]]), P, _w(), dtype=jnp.float64)
    assert math.isinf(float(r.health_ratio[0])) and float(r.health[0]) == pytest.approx(5 + 120)


def test_open_orders_take_the_worse_side():
    w = _w()
    b = np.array([[1_000.0, 0.0]])
    bids, asks = np.array([[0.0, 5.0]]), np.array([[0.0, 3.0]])
    r = health(b, P, w, open_bids=bids, open_asks=asks, dtype=jnp.float64)
    # bids fill: +5 SOL at 0.8 ($600) - $750 cash = -150; asks fill: -3 SOL at 1.2 (-$540) + $450 = -90
    bid_side, ask_side = 0.8 * 750 - 750, -1.2 * 450 + 450
    assert float(r.health[0]) == pytest.approx(1_000 + min(bid_side, ask_side)) == pytest.approx(850)
    # only asks (sell 3 SOL held): worse side is the ask fill: 3 SOL at 0.8 -> $450 cash
    r = health(np.array([[0.0, 3.0]]), P, w, open_asks=asks, dtype=jnp.float64)
    assert float(r.health[0]) == pytest.approx(min(0.8 * 450, 0.0 + 450))
    # bid at $100 (below the $150 oracle): bids fill gives 0.8*750 - 500 = +100, the (empty) ask side 0
    r = health(b, P, w, open_bids=bids, bid_prices=np.array([1.0, 100.0]), dtype=jnp.float64)
    assert float(r.health[0]) == pytest.approx(1_000 + min(0.8 * 750 - 500, 0.0))


def test_mango_deposit_and_borrow_scaling():
    w = _w(dep_start=50e6, bor_start=20e6)
    b = np.array([[-1_000.0, 10.0]])
    r = health(b, P, w, total_deposits_usd=[0, 100e6], dtype=jnp.float64)
    assert float(r.assets[0]) == pytest.approx(0.8 * 0.5 * 1_500)  # weight x 50M / 100M
    r = health(b, P, w, health_type="maint", total_deposits_usd=[0, 100e6], dtype=jnp.float64)
    assert float(r.assets[0]) == pytest.approx(0.9 * 1_500)  # maintenance is not scaled
    b2 = np.array([[10_000.0, -10.0]])
    r = health(b2, P, w, total_borrows_usd=[0, 40e6], dtype=jnp.float64)
    assert float(r.liabilities[0]) == pytest.approx(1.2 * 2 * 1_500)  # weight x 40M / 20M
    # below the scale start: unchanged
    r = health(b2, P, w, total_borrows_usd=[0, 20e6], dtype=jnp.float64)
    assert float(r.liabilities[0]) == pytest.approx(1.2 * 1_500)


def test_drift_imf_factor_and_user_margin_ratio():
    b = np.array([[0.0, 10_000.0], [0.0, -10_000.0]])  # sqrt(10,000) = 100
    r = health(b, P, _w(imf=0.001), dtype=jnp.float64)
    assert float(r.assets[0]) == pytest.approx(0.8 * 1.5e6)  # 1.1 / 1.1 = 1.0 > 0.8: no discount
    assert float(r.liabilities[1]) == pytest.approx(max(1.2, 0.96 + 0.1) * 1.5e6)
    r = health(b, P, _w(imf=0.01), dtype=jnp.float64)
    assert float(r.assets[0]) == pytest.approx(1.1 / 2.0 * 1.5e6)
    assert float(r.liabilities[1]) == pytest.approx((0.8 * 1.2 + 1.0) * 1.5e6)
    r = health(np.array([[0.0, 10.0]]), P, _w(), user_margin_ratio=[0.5], dtype=jnp.float64)
    assert float(r.assets[0]) == pytest.approx(0.5 * 1_500)
    r = health(np.array([[0.0, 10.0]]), P, _w(), user_margin_ratio=[0.5], health_type="maint", dtype=jnp.float64)
    assert float(r.assets[0]) == pytest.approx(0.9 * 1_500)


# Published cases of mango-v4 programs/mango-v4/src/state/health.rs test_health1 (token and Serum3
# parts; the perp terms of cases 0 and 1 are left out): token1 = quote at $1 with init weights 0.8 / 1.2,
# token2 at $5 and token3 at $10 with 0.5 / 1.5; markets (base token2, quote token1) and (token3, token1)
# with reserved (quote "pc", base "coin") funds.
MANGO_W = TokenWeights(np.array([0.8, 0.5, 0.5]), np.array([0.9, 0.7, 0.7]), np.array([1.2, 1.5, 1.5]),
                       np.array([1.1, 1.3, 1.3]), np.full(3, INF), np.full(3, INF), np.zeros(3))
MANGO_P = np.array([1.0, 5.0, 10.0])


@pytest.mark.parametrize("tokens,oo12,oo13,expected", [
    ((100, -10, 0), (20, 15), (0, 0), (100.0 + (20.0 + 15.0 * 5.0)) * 0.8 - 10.0 * 5.0 * 1.5),
    ((-100, 10, 0), (20, 15), (0, 0), -100.0 * 1.2 + (10.0 * 5.0 + (20.0 + 15.0 * 5.0)) * 0.5),
    ((-100, -10, -10), (1, 1), (1, 1),
     -100.0 * 1.2 - 10.0 * 5.0 * 1.5 - 10.0 * 10.0 * 1.5 + (1.0 + 5.0) * 1.2 + (1.0 + 10.0) * 1.2),
    ((-14, -10, -10), (1, 1), (1, 1),
     -14.0 * 1.2 - 10.0 * 5.0 * 1.5 - 10.0 * 10.0 * 1.5 + 3.0 * 1.2 + 3.0 * 0.8 + 8.0 * 1.2 + 3.0 * 0.8),
    ((-100, -100, -1), (0, 0), (10, 1), -100.0 * 1.2 - 100.0 * 5.0 * 1.5 - 10.0 * 1.5 + 10.0 * 1.5 + 10.0 * 0.5),
    ((-100, -100, -1), (100, 0), (10, 1),
     -100.0 * 1.2 - 100.0 * 5.0 * 1.5 - 10.0 * 1.5 + 80.0 * 1.2 + 20.0 * 0.8 + 20.0 * 0.8),
])
def test_mango_v4_serum3_reserved_funds_published_cases(tokens, oo12, oo13, expected):
    kw = dict(reserved_quote=np.array([[oo12[0], oo13[0]]], float), reserved_base=np.array([[oo12[1], oo13[1]]], float),
              market_base_index=np.array([1, 2]), market_quote_index=np.array([0, 0]))
    r = health(np.array([tokens], float), MANGO_P, MANGO_W, dtype=jnp.float64, **kw)
    assert float(r.health[0]) == pytest.approx(expected, abs=1e-9)
    ref, *_ = health_reference(list(map(float, tokens)), MANGO_P, MANGO_W, reserved_base=kw["reserved_base"][0],
                              reserved_quote=kw["reserved_quote"][0], market_base_index=[1, 2],
                              market_quote_index=[0, 0])
    assert ref == pytest.approx(expected, abs=1e-9)


N, K = 16, 4


@pytest.fixture(scope="module")
def rand_weights():
    return TokenWeights(np.array([1.0, 0.8, 0.7, 0.0]), np.array([1.0, 0.9, 0.85, 0.5]),
                        np.array([1.0, 1.2, 1.3, 1.5]), np.array([1.0, 1.1, 1.15, 1.25]),
                        np.array([INF, 5e4, 1e5, 1e3]), np.array([INF, 2e4, INF, 1e3]),
                        np.array([0.0, 0.0, 0.002, 0.01]))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), htype=st.sampled_from(["init", "maint"]))
def test_kernel_matches_slow_reference(rand_weights, seed, htype):
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 100, (N, K)) * (rng.random((N, K)) < 0.8)
    p = np.array([1.0, *rng.uniform(0.5, 500, K - 1)])
    ob = np.abs(rng.normal(0, 50, (N, K))) * (rng.random((N, K)) < 0.4)
    oa = np.abs(rng.normal(0, 50, (N, K))) * (rng.random((N, K)) < 0.4)
    ob[:, 0] = oa[:, 0] = 0
    bp, ap = p * rng.uniform(0.9, 1.0, K), p * rng.uniform(1.0, 1.1, K)
    dep, bor = rng.uniform(0, 2e5, K), rng.uniform(0, 5e4, K)
    umr = rng.uniform(0, 0.3, N)
    bidx, qidx = np.array([1, 2, 3]), np.array([0, 0, 1])
    rb = np.abs(rng.normal(0, 20, (N, 3))) * (rng.random((N, 3)) < 0.5)
    rq = np.abs(rng.normal(0, 200, (N, 3))) * (rng.random((N, 3)) < 0.5)
    kw = dict(health_type=htype, open_bids=ob, open_asks=oa, bid_prices=bp, ask_prices=ap,
              total_deposits_usd=dep, total_borrows_usd=bor)
    mk = dict(reserved_base=rb, reserved_quote=rq, market_base_index=bidx, market_quote_index=qidx)
    r64 = health(b, p, rand_weights, user_margin_ratio=umr, dtype=jnp.float64, **kw, **mk)
    r32 = health(b, p, rand_weights, user_margin_ratio=umr, **kw, **mk)
    assert r32.health.dtype == jnp.float32 and r64.health.dtype == jnp.float64
    for i in range(N):
        h, ratio, *_ = health_reference(b[i], p, rand_weights, open_bids=ob[i], open_asks=oa[i], bid_prices=bp,
                                    ask_prices=ap, total_deposits_usd=dep, total_borrows_usd=bor,
                                    health_type=htype, user_margin_ratio=float(umr[i]), reserved_base=rb[i],
                                    reserved_quote=rq[i], market_base_index=bidx, market_quote_index=qidx)
        assert float(r64.health[i]) == pytest.approx(h, rel=1e-12, abs=1e-9)
        assert float(r32.health[i]) == pytest.approx(h, rel=1e-4, abs=1e-2)
        if math.isinf(ratio):
            assert math.isinf(float(r64.health_ratio[i]))
        else:
            assert float(r64.health_ratio[i]) == pytest.approx(ratio, rel=1e-10, abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), bump=st.floats(0.0, 2.0), htype=st.sampled_from(["init", "maint"]))
def test_health_decreasing_in_liability_weight_increasing_in_asset_weight(rand_weights, seed, bump, htype):
    rng = np.random.default_rng(seed)
    b = rng.normal(0, 100, (N, K))
    p = np.array([1.0, *rng.uniform(0.5, 500, K - 1)])
    ob = np.abs(rng.normal(0, 30, (N, K)))
    ob[:, 0] = 0
    base = health(b, p, rand_weights, health_type=htype, open_bids=ob, dtype=jnp.float64).health
    heavier = rand_weights._replace(init_liab=rand_weights.init_liab + bump,
                                    maint_liab=rand_weights.maint_liab + bump)
    h2 = health(b, p, heavier, health_type=htype, open_bids=ob, dtype=jnp.float64).health
    assert np.all(np.asarray(h2) <= np.asarray(base) + 1e-9)
    lighter = rand_weights._replace(init_asset=rand_weights.init_asset * (1 - bump / 2),
                                    maint_asset=rand_weights.maint_asset * (1 - bump / 2))
    h3 = health(b, p, lighter, health_type=htype, open_bids=ob, dtype=jnp.float64).health
    assert np.all(np.asarray(h3) <= np.asarray(base) + 1e-9)


def test_config_loads():
    syms, w = wh.weights_from_config(_load_conf())
    assert syms[0] == "USDC" and len(syms) == len(w.init_asset)
    assert np.all(w.init_asset <= w.maint_asset) and np.all(w.init_liab >= w.maint_liab)
    r = health(np.zeros((1, len(syms))), np.ones(len(syms)), w)
    assert float(r.health[0]) == 0.0
    psyms, settle, pw = wh.perp_weights_from_config(_load_conf())
    assert psyms and all(s in syms for s in settle) and len(pw.init_base_liab) == len(psyms)
    assert np.all(pw.init_base_asset <= pw.maint_base_asset) and np.all(pw.init_base_liab >= pw.maint_base_liab)


@pytest.mark.parametrize("kwargs,match", [
    (dict(prices=np.array([1.0, np.nan])), r"prices at index \(1,\).*finite"),
    (dict(prices=np.array([1.0, 0.0])), r"prices at index \(1,\).*> 0"),
    (dict(prices=np.array([1.0, 2.0, 3.0])), r"prices.*shape mismatch"),
    (dict(open_bids=np.array([[0.0, -1.0]])), r"open_bids at index \(0, 1\).*>= 0"),
    (dict(open_bids=np.array([[1.0, 0.0]])), r"quote token"),
    (dict(open_asks=np.zeros((2, 2))), r"open_asks.*shape mismatch"),
    (dict(health_type="initial"), r"health_type"),
    (dict(balances=np.array([[1.0, np.inf]])), r"balances at index \(0, 1\)"),
    (dict(weights=_w()._replace(init_liab=np.array([1.0, 0.9]))), r"weights.init_liab at index \(1,\)"),
    (dict(user_margin_ratio=np.array([-0.5])), r"user_margin_ratio at index \(0,\)"),
    (dict(reserved_base=np.zeros((1, 1))), r"must be given together"),
    (dict(reserved_base=np.array([[-1.0]]), reserved_quote=np.zeros((1, 1)), market_base_index=np.array([1]),
          market_quote_index=np.array([0])), r"reserved_base at index \(0, 0\)"),
    (dict(reserved_base=np.zeros((1, 1)), reserved_quote=np.zeros((1, 1)), market_base_index=np.array([1]),
          market_quote_index=np.array([1])), r"market_quote_index at index \(0,\).*differ"),
    (dict(reserved_base=np.zeros((1, 1)), reserved_quote=np.zeros((1, 1)), market_base_index=np.array([5]),
          market_quote_index=np.array([0])), r"market_base_index at index \(0,\)"),
])
def test_bad_input_raises_before_kernel(kwargs, match, monkeypatch):
    monkeypatch.setattr(wh, "_health_kernel", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    args = dict(balances=np.array([[1.0, 2.0]]), prices=P, weights=_w())
    args.update(kwargs)
    b, p, w = args.pop("balances"), args.pop("prices"), args.pop("weights")
    with pytest.raises(VenueInputError, match=match):
        health(b, p, w, **args)


# --- perps, per-market order cash, Drift open-order charge: venue vectors through the float kernel ---

PW = wh.PerpWeights


def _mango_perp_weights():
    # mango-v4 health/test.rs mock_perp_market(.., (0.2, 0.1), (0.05, 0.02))
    one = lambda v: np.array([v])  # noqa: E731
    return PW(one(0.8), one(0.9), one(1.2), one(1.1), one(0.95), one(0.98), one(0.0), one(0.0))


BL = 10.0 * 5.0  # cache.rs test_health1: base_lots_to_quote
MANGO_HEALTH1_PERP = {  # case: (token1, token2, token3, oo_1_2, oo_1_3, perp1, expected), cache.rs test_health1
    0: (100, -10, 0, (20, 15), (0, 0), (3, -131, 7, 11),
        0.8 * (100.0 + (20.0 + 15.0 * 5.0) + (3.0 + 7.0) * BL * 0.8 + (-131.0 - 7.0 * BL)) - 10.0 * 5.0 * 1.5),
    1: (-100, 10, 0, (20, 15), (0, 0), (-10, -131, 7, 11),
        1.2 * (-100.0 + (-10.0 - 11.0) * BL * 1.2 + (-131.0 + 11.0 * BL)) + (10.0 * 5.0 + (20.0 + 15.0 * 5.0)) * 0.5),
    2: (0, 0, 0, (0, 0), (0, 0), (-1, 100, 0, 0), 0.8 * 0.95 * (100.0 - 1.2 * 1.0 * BL)),
    3: (0, 0, 0, (0, 0), (0, 0), (1, -100, 0, 0), 1.2 * (-100.0 + 0.8 * 1.0 * BL)),
    4: (0, 0, 0, (0, 0), (0, 0), (10, 100, 0, 0), 0.8 * 0.95 * (100.0 + 0.8 * 10.0 * BL)),
    5: (0, 0, 0, (0, 0), (0, 0), (30, -100, 0, 0), 0.8 * 0.95 * (-100.0 + 0.8 * 30.0 * BL)),
    12: (-100, 0, 0, (0, 0), (0, 0), (1, 100, 0, 0), 0.8 * (-100.0 + 0.95 * (100.0 + 0.8 * 1.0 * BL))),
    13: (100, 0, 0, (0, 0), (0, 0), (-1, -100, 0, 0), 1.2 * (100.0 - 100.0 - 1.2 * 1.0 * BL)),
}


@pytest.mark.parametrize("case", sorted(MANGO_HEALTH1_PERP))
def test_mango_v4_test_health1_perp_cases_float_kernel(case):
    """mango-v4 ``health/cache.rs`` `test_health1`, the cases with perp positions, through the float
    kernel (``perp_model="mango"``, float64); tolerance the venue's ``health_eq`` (0.001). Perp base
    in base native units (lots x base_lot_size 10), quote in settle-token (token 1, $1) native units."""
    t1, t2, t3, oo12, oo13, perp1, expected = MANGO_HEALTH1_PERP[case]
    r = health(np.array([[t1, t2, t3]], float), MANGO_P, MANGO_W._replace(init_asset=np.array([0.8, 0.5, 0.5]),
               init_liab=np.array([1.2, 1.5, 1.5])), dtype=jnp.float64,
               reserved_quote=np.array([[oo12[0], oo13[0]]], float),
               reserved_base=np.array([[oo12[1], oo13[1]]], float),
               market_base_index=np.array([1, 2]), market_quote_index=np.array([0, 0]),
               perp_base=np.array([[perp1[0] * 10.0]]), perp_quote=np.array([[float(perp1[1])]]),
               perp_bids=np.array([[perp1[2] * 10.0]]), perp_asks=np.array([[perp1[3] * 10.0]]),
               perp_prices=np.array([5.0]), perp_weights=_mango_perp_weights(), perp_settle_index=np.array([0]))
    assert abs(float(r.health[0]) - expected) < 1e-3


DRIFT_W = TokenWeights(np.array([1.0, 0.8]), np.array([1.0, 0.9]), np.array([1.0, 1.2]), np.array([1.0, 1.1]),
                       np.full(2, INF), np.full(2, INF), np.zeros(2))


@pytest.mark.parametrize("name,bal,bids,asks,tc,mr", [
    ("usdc_deposit_and_5x_sol_bid", [10_000.0, 0.0], 500.0, 0.0, 50000.0, 50000.01),
    ("usdc_deposit_and_5x_sol_ask", [10_000.0, 0.0], 0.0, 500.0, 60000.0, 60000.01),
    ("sol_deposit_and_5x_sol_ask", [0.0, 500.0], 0.0, 3000.0, 300000.0, 300000.01),
])
def test_drift_open_order_vectors_float_kernel(name, bal, bids, asks, tc, mr):
    """drift protocol-v2 ``math/margin/tests.rs`` `calculate_margin_requirement_and_total_collateral::`
    ``name``: total collateral and margin requirement including the $0.01 open-order charge (one open
    order), through the float kernel (float64; the exact integers are in ``test_venues_drift.py``)."""
    r = health(np.array([bal]), np.array([1.0, 100.0]), DRIFT_W, dtype=jnp.float64,
               open_bids=np.array([[0.0, bids]]), open_asks=np.array([[0.0, asks]]), open_orders=np.array([[0, 1]]))
    assert float(r.assets[0]) == pytest.approx(tc, abs=1e-6)
    assert float(r.liabilities[0]) == pytest.approx(mr, abs=1e-6)


@pytest.mark.parametrize("umr,mr", [(2.0, 50000.0), (1.0, 30000.0), (0.5, 20000.0)])
def test_drift_user_custom_margin_ratio_float_kernel(umr, mr):
    """drift ``math/margin/tests.rs`` `calculate_margin_requirement_and_total_collateral::
    user_custom_margin_ratio` (USDC 100, SOL borrow 100, SOL-PERP long 100, ratios 0.1 / 0.05): margin
    ratios above 1 (leverage below 1x) are allowed; ``perp_model="drift"``, float64."""
    pw = PW(np.array([0.9]), np.array([0.95]), np.array([1.1]), np.array([1.05]), np.zeros(1), np.zeros(1),
            np.zeros(1), np.zeros(1))
    r = health(np.array([[100.0, -100.0]]), np.array([1.0, 100.0]), DRIFT_W, dtype=jnp.float64,
               user_margin_ratio=np.array([umr]), perp_base=np.array([[100.0]]), perp_prices=np.array([100.0]),
               perp_weights=pw, perp_model="drift")
    assert float(r.liabilities[0]) == pytest.approx(mr, abs=1e-6)
    if umr == 2.0:  # maintenance is unaffected: 100 * 100 * .05 + 100 * $100 * 1.1
        r = health(np.array([[100.0, -100.0]]), np.array([1.0, 100.0]), DRIFT_W, dtype=jnp.float64,
                   health_type="maint", user_margin_ratio=np.array([10.0]), perp_base=np.array([[100.0]]),
                   perp_prices=np.array([100.0]), perp_weights=pw, perp_model="drift")
        assert float(r.liabilities[0]) == pytest.approx(11500.0, abs=1e-6)


def test_order_cash_kept_per_market():
    """Two markets, a bid in one and an ask in the other: each market's cash leg counts on its own
    side of the balance sheet (Drift ``worst_case_orders_value`` per spot market), so assets and
    liabilities equal the exact Drift calculation of the same account."""
    from margin.rules.venues import drift as d
    w = TokenWeights(np.array([1.0, 0.8, 0.8]), np.array([1.0, 0.9, 0.9]), np.array([1.0, 1.2, 1.2]),
                     np.array([1.0, 1.1, 1.1]), np.full(3, INF), np.full(3, INF), np.zeros(3))
    r = health(np.array([[1000.0, 0.0, 0.0]]), np.array([1.0, 100.0, 50.0]), w, dtype=jnp.float64,
               open_bids=np.array([[0.0, 10.0, 0.0]]), open_asks=np.array([[0.0, 0.0, 20.0]]),
               open_orders=np.array([[0, 1, 1]]))
    sp = lambda i, px: d.SpotMarket(  # noqa: E731
        i, 9, px * 10**6, initial_asset_weight=8000, maintenance_asset_weight=9000, initial_liability_weight=12000,
        maintenance_liability_weight=11000, cumulative_deposit_interest=10**10, cumulative_borrow_interest=10**10)
    usdc = d.SpotMarket(0, 6, 10**6, cumulative_deposit_interest=10**10)
    u = d.User(spot_positions=[d.SpotPosition(0, 1000 * 10**9),
                               d.SpotPosition(1, 0, open_orders=1, open_bids=10 * 10**9),
                               d.SpotPosition(2, 0, open_orders=1, open_asks=-20 * 10**9)])
    ex = d.margin_calculation(u, [usdc, sp(1, 100), sp(2, 50)])
    assert float(r.assets[0]) == pytest.approx(ex.total_collateral / 1e6, abs=1e-6)
    assert float(r.liabilities[0]) == pytest.approx(ex.margin_requirement / 1e6, abs=1e-6)
    assert float(r.health_ratio[0]) == pytest.approx(ex.health_ratio, rel=1e-9)


@pytest.mark.parametrize("model,htype", [("mango", "init"), ("drift", "init"), ("drift", "maint")])
def test_perp_kernel_matches_slow_reference(rand_weights, model, htype):
    rng = np.random.default_rng(7)
    n, p_ = 8, 3
    b = rng.normal(0, 100, (n, K))
    p = np.array([1.0, *rng.uniform(0.5, 500, K - 1)])
    ob = np.abs(rng.normal(0, 30, (n, K))) * (rng.random((n, K)) < 0.5)
    ob[:, 0] = 0
    oc = rng.integers(0, 3, (n, K)).astype(float)
    pb, pq = rng.normal(0, 10, (n, p_)), rng.normal(0, 500, (n, p_))
    pbid, pask = np.abs(rng.normal(0, 5, (n, p_))), np.abs(rng.normal(0, 5, (n, p_)))
    poc = rng.integers(0, 3, (n, p_)).astype(float)
    pp = rng.uniform(10, 1000, p_)
    pw = PW(np.array([0.8, 0.9, 0.5]), np.array([0.9, 0.95, 0.7]), np.array([1.2, 1.1, 1.5]),
            np.array([1.1, 1.05, 1.3]),
            np.array([0.95, 0.0, 0.5]), np.array([0.98, 1.0, 0.8]), np.array([0.0, 0.001, 0.01]),
            np.array([0.0, 0.001, 0.0]))
    sidx = np.array([0, 0, 1])
    umr = rng.uniform(0, 2, n)
    kw = dict(health_type=htype, perp_settle_index=sidx, perp_model=model)
    r = health(b, p, rand_weights, open_bids=ob, open_orders=oc, user_margin_ratio=umr, perp_base=pb, perp_quote=pq,
               perp_bids=pbid, perp_asks=pask, perp_open_orders=poc, perp_prices=pp, perp_weights=pw,
               dtype=jnp.float64, **kw)
    for i in range(n):
        h, _, a, l_ = health_reference(b[i], p, rand_weights, open_bids=ob[i], open_orders=oc[i],
                                       user_margin_ratio=float(umr[i]), perp_base=pb[i], perp_quote=pq[i],
                                       perp_bids=pbid[i], perp_asks=pask[i], perp_open_orders=poc[i], perp_prices=pp,
                                       perp_weights=pw, **kw)
        assert float(r.health[i]) == pytest.approx(h, rel=1e-12, abs=1e-9)
        assert float(r.assets[i]) == pytest.approx(a, rel=1e-12, abs=1e-9)
        assert float(r.liabilities[i]) == pytest.approx(l_, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("kwargs,match", [
    (dict(perp_base=np.zeros((1, 1))), r"must be given together"),
    (dict(perp_base=np.zeros((1, 1)), perp_prices=np.array([0.0]), perp_weights=None), r"perp_weights"),
    (dict(open_orders=np.array([[0.0, -1.0]])), r"open_orders at index \(0, 1\)"),
    (dict(perp_model="dydx", perp_base=np.zeros((1, 1)), perp_prices=np.ones(1),
          perp_weights=PW(*[np.ones(1)] * 8)), r"perp_model"),
    (dict(perp_base=np.zeros((1, 1)), perp_prices=np.ones(1), perp_weights=PW(*[np.ones(1)] * 8),
          perp_bids=np.array([[-1.0]])), r"perp_bids at index \(0, 0\)"),
    (dict(perp_base=np.zeros((1, 1)), perp_prices=np.ones(1), perp_weights=PW(*[np.ones(1)] * 8),
          perp_settle_index=np.array([4])), r"perp_settle_index"),
])
def test_perp_bad_input_raises_before_kernel(kwargs, match, monkeypatch):
    monkeypatch.setattr(wh, "_health_kernel", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    with pytest.raises(VenueInputError, match=match):
        health(np.array([[1.0, 2.0]]), P, _w(), **kwargs)


@pytest.mark.parametrize("htype", ["init", "maint"])
def test_drift_model_matches_exact_drift_module(htype):
    """Random cross-margin accounts (USDC, two spot tokens with orders and open-order counts, two perps
    with orders, user margin ratio up to 2x) through the float kernel (``perp_model="drift"``, float64)
    and the exact integer replica :func:`margin.rules.venues.drift.margin_calculation`: total collateral and
    margin requirement agree to integer-rounding level (1e-4 USD)."""
    from margin.rules.venues import drift as d
    rng = np.random.default_rng(11)
    prices = [1.0, 100.0, 25.0]
    spot = [d.SpotMarket(0, 6, 10**6, initial_asset_weight=10000, maintenance_asset_weight=10000,
                         initial_liability_weight=10000, maintenance_liability_weight=10000,
                         cumulative_deposit_interest=10**10, cumulative_borrow_interest=10**10)]
    for i, (px, wa, wl) in enumerate(((100, 8000, 12000), (25, 7000, 13000)), start=1):
        spot.append(d.SpotMarket(i, 9, px * 10**6, initial_asset_weight=wa, maintenance_asset_weight=(wa + 10000) // 2,
                                 initial_liability_weight=wl, maintenance_liability_weight=(wl + 10000) // 2,
                                 cumulative_deposit_interest=10**10, cumulative_borrow_interest=10**10))
    perp_px = [100, 2000]
    perps = [d.PerpMarket(j, px * 10**6, margin_ratio_initial=r0, margin_ratio_maintenance=r0 // 2,
                          unrealized_pnl_initial_asset_weight=8000, unrealized_pnl_maintenance_asset_weight=10000)
             for j, (px, r0) in enumerate(zip(perp_px, (1000, 500)))]
    col = lambda f: np.array([getattr(m, f) / 1e4 for m in spot])  # noqa: E731
    w = TokenWeights(col("initial_asset_weight"), col("maintenance_asset_weight"), col("initial_liability_weight"),
                     col("maintenance_liability_weight"), np.full(3, INF), np.full(3, INF), np.zeros(3))
    ratio = lambda f: np.array([getattr(m, f) / 1e4 for m in perps])  # noqa: E731
    pw = PW(np.array([0.9, 0.95]), np.array([0.95, 0.975]), 1.0 + ratio("margin_ratio_initial"),
            1.0 + ratio("margin_ratio_maintenance"), np.array([0.8, 0.8]), np.array([1.0, 1.0]), np.zeros(2),
            np.zeros(2))
    n = 12
    bal, ob, oa, oc = np.zeros((n, 3)), np.zeros((n, 3)), np.zeros((n, 3)), np.zeros((n, 3))
    pb, pq, pbid, pask, poc = (np.zeros((n, 2)) for _ in range(5))
    umr = np.zeros(n)
    users = []
    for i in range(n):
        sps = [d.SpotPosition(0, int(rng.integers(0, 50_000)) * 10**9)]
        bal[i, 0] = sps[0].scaled_balance / 1e9
        for k in (1, 2):
            amt = int(rng.integers(-200, 200)) * 10**9
            bids = int(rng.integers(0, 100)) * 10**9 * int(rng.random() < 0.5)
            asks = int(rng.integers(0, 100)) * 10**9 * int(rng.random() < 0.5)
            cnt = int(rng.integers(0, 3))
            sps.append(d.SpotPosition(k, abs(amt), is_borrow=amt < 0, open_bids=bids, open_asks=-asks, open_orders=cnt))
            bal[i, k], ob[i, k], oa[i, k], oc[i, k] = amt / 1e9, bids / 1e9, asks / 1e9, cnt
        pps = []
        for j in range(2):
            base = int(rng.integers(-50, 50)) * 10**8
            quote = int(rng.integers(-5_000_000, 5_000_000)) * 10**4
            bids, asks = int(rng.integers(0, 20)) * 10**8, int(rng.integers(0, 20)) * 10**8
            cnt = int(rng.integers(0, 3))
            pps.append(d.PerpPosition(j, base, quote, open_bids=bids, open_asks=-asks, open_orders=cnt))
            pb[i, j], pq[i, j], pbid[i, j], pask[i, j], poc[i, j] = base / 1e9, quote / 1e6, bids / 1e9, asks / 1e9, cnt
        umr[i] = int(rng.integers(0, 3)) * 5000 * int(rng.random() < 0.5) / 1e4
        users.append(d.User(spot_positions=sps, perp_positions=pps, max_margin_ratio=int(round(umr[i] * 1e4))))
    r = health(bal, np.array(prices), w, health_type=htype, dtype=jnp.float64, open_bids=ob, open_asks=oa,
               open_orders=oc, user_margin_ratio=umr, perp_base=pb, perp_quote=pq, perp_bids=pbid, perp_asks=pask,
               perp_open_orders=poc, perp_prices=np.array(perp_px, float), perp_weights=pw, perp_model="drift")
    for i, u in enumerate(users):
        ex = d.margin_calculation(u, spot, perps, margin_type="initial" if htype == "init" else "maintenance")
        assert float(r.assets[i]) == pytest.approx(ex.total_collateral / 1e6, abs=1e-4)
        assert float(r.liabilities[i]) == pytest.approx(ex.margin_requirement / 1e6, abs=1e-4)


@pytest.mark.parametrize("htype", ["init", "maint"])
def test_mango_model_matches_exact_mango_module(htype):
    """Random accounts (three tokens, two Serum3 markets with reserved funds, two perps with orders
    settling in token 0) through the float kernel (``perp_model="mango"``, float64) and the exact
    I80F48 replica :mod:`margin.rules.venues.mango`: health agrees to 1e-6 relative."""
    from margin.rules.venues import mango as mg
    rng = np.random.default_rng(5)
    prices = np.array([1.0, 5.0, 40.0])
    wts = [(0.2, 0.1), (0.4, 0.2), (0.5, 0.3)]  # (init, maint) offsets from 1
    w = TokenWeights(np.array([1 - a for a, _ in wts]), np.array([1 - b for _, b in wts]),
                     np.array([1 + a for a, _ in wts]), np.array([1 + b for _, b in wts]),
                     np.full(3, INF), np.full(3, INF), np.zeros(3))
    ppx, lot = np.array([5.0, 40.0]), [10, 1]
    pw = PW(np.array([0.8, 0.7]), np.array([0.9, 0.85]), np.array([1.2, 1.3]), np.array([1.1, 1.15]),
            np.array([0.95, 0.9]), np.array([0.98, 0.95]), np.zeros(2), np.zeros(2))
    pmk = [mg.PerpMarket(j, 0, mg.from_num(float(ppx[j])), mg.from_num(float(pw.init_base_asset[j])),
                         mg.from_num(float(pw.init_base_liab[j])), mg.from_num(float(pw.maint_base_asset[j])),
                         mg.from_num(float(pw.maint_base_liab[j])), mg.from_num(float(pw.init_pnl_asset[j])),
                         mg.from_num(float(pw.maint_pnl_asset[j])), base_lot_size=lot[j], quote_lot_size=1)
           for j in range(2)]
    n = 10
    bal = rng.integers(-300, 300, (n, 3)).astype(float)
    rb, rq = rng.integers(0, 50, (n, 2)).astype(float), rng.integers(0, 200, (n, 2)).astype(float)
    lots, quote = rng.integers(-20, 20, (n, 2)), rng.integers(-2000, 2000, (n, 2)).astype(float)
    bids, asks = rng.integers(0, 10, (n, 2)), rng.integers(0, 10, (n, 2))
    lotv = np.array(lot, float)
    r = health(bal, prices, w, health_type=htype, dtype=jnp.float64, reserved_base=rb, reserved_quote=rq,
               market_base_index=np.array([1, 2]), market_quote_index=np.array([0, 0]),
               perp_base=lots * lotv, perp_quote=quote, perp_bids=bids * lotv, perp_asks=asks * lotv,
               perp_prices=ppx, perp_weights=pw, perp_settle_index=np.array([0, 0]), perp_model="mango")
    for i in range(n):
        banks = [mg.Bank(k, mg.from_num(int(bal[i, k])), mg.from_num(float(prices[k])), mg.from_num(1 - wts[k][0]),
                         mg.from_num(1 + wts[k][0]), mg.from_num(1 - wts[k][1]), mg.from_num(1 + wts[k][1]))
                 for k in range(3)]
        serum = [mg.Serum3Orders(k + 1, 0, base_reserved=int(rb[i, k]), quote_reserved=int(rq[i, k])) for k in range(2)]
        perps = [(mg.PerpPosition(j, int(lots[i, j]), mg.from_num(int(quote[i, j])), int(bids[i, j]), int(asks[i, j])),
                  pmk[j]) for j in range(2)]
        exact = mg.to_f64(mg.new_health_cache(mg.Account(banks, serum, perps)).health(htype))
        assert float(r.health[i]) == pytest.approx(exact, rel=1e-6, abs=1e-6)
