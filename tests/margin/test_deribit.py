"""Deribit portfolio margin: the ETH worked example, grid structure, vol shock, add-ons, configs."""
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hydra import compose, initialize_config_dir

import margin
from margin.rules.deribit import vol_shock


def _params(repo_root, name):
    with initialize_config_dir(config_dir=str(repo_root / "conf" / "margin"), version_base=None):
        return margin.DeribitParams.from_config(compose(config_name=name))


def test_eth_short_perpetual_example(repo_root):
    p = _params(repo_root, "deribit_eth")
    assert p.price_range == 0.18 and p.extended_dampener == 200_000 and p.pnl_offset == 0.6
    q = 0.999487053
    inst = margin.Instruments.create(["inverse_perpetual"], names=["ETH-PERPETUAL"])
    sc = margin.deribit_scenarios(inst, [200.0], [0.0], p)
    assert sc.n_scenarios == 27 + 8 and sc.unit == "coin"
    res = margin.deribit_margin(np.array([[-q]]), inst, sc, [200.0], p, dtype=jnp.float64)
    assert float(res.worst_standard[0]) == pytest.approx(0.18 * q / 1.18, rel=1e-12)
    # worst case is the +18% bucket (short inverse: loses q m / (1 + m))
    std = np.asarray(sc.select("standard").pnl[0]) * -q
    assert np.argmin(std) in (24, 25, 26)
    assert float(res.maintenance_margin[0]) == pytest.approx(0.8 * float(res.initial_margin[0]), rel=1e-12)
    assert float(res.roll_shock[0]) == pytest.approx(0.005 * q)
    assert float(res.initial_margin[0]) == pytest.approx(0.18 * q / 1.18 + 0.005 * q, rel=1e-9)


def test_btc_grid_matches_api_risk_vector_shape(repo_root):
    # The API's BTC-PERPETUAL risk vector: -16% bucket = -0.0599 for q ~ 0.3145 coin: q x -0.16 / 0.84
    p = _params(repo_root, "deribit_btc")
    inst = margin.Instruments.create(["inverse_perpetual"])
    sc = margin.deribit_scenarios(inst, [60000.0], [0.0], p)
    std = np.asarray(sc.select("standard").pnl[0])
    q = 0.05991206933333334 / (0.16 / 0.84)
    np.testing.assert_allclose(q * std[[0, 3, 6, 9]], [-0.05991206933333334, -0.04289159509090909,
                                                       -0.027351162086956524, -0.013105765166666668], rtol=1e-9)
    assert q * std[15] == pytest.approx(0.012097629384615385, rel=1e-9)


def test_vol_shock_formula():
    p = margin.DeribitParams()
    up, down = vol_shock(np.array([0.8, 0.3, 0.8]), np.array([7.0, 7.0, 90.0]), p)
    s7, s90 = (30 / 7) ** 0.3, (30 / 90) ** 0.13
    np.testing.assert_allclose(up, [0.8 * (1 + 0.5 * s7), max(0.3 * (1 + 0.5 * s7), 0.5), 0.8 * (1 + 0.5 * s90)])
    np.testing.assert_allclose(down, [0.8 * (1 - 0.25 * s7), 0.3 * (1 - 0.25 * s7), 0.8 * (1 - 0.25 * s90)])


def test_extended_dampener_and_delta_shock():
    p = margin.DeribitParams(extended_dampener=1.0, delta_total_liq_shock_threshold=1_000.0)
    inst = margin.Instruments.create(["option", "inverse_perpetual"], strike=[10_000.0, 0], expiry=[0.05, 0],
                                     option_type=["C", None])
    sc = margin.deribit_scenarios(inst, [10_000.0], [0.6, 0.0], p)
    book = np.array([[-3.0, 0.0], [0.0, 0.15], [0.0, 0.3]])
    res = margin.deribit_margin(book, inst, sc, [10_000.0], p, dtype=jnp.float64)
    ext = np.asarray(sc.select("extended").pnl)
    raw = max(0.0, -(book[0] @ ext).min())
    assert float(res.worst_extended[0]) == pytest.approx(raw * min(1.0, raw / 1.0))
    assert float(res.initial_margin[0]) >= float(res.worst_extended[0])
    # delta 0.15 BTC = $1,500: shock fraction 0.1 x 0.5; 0.3 BTC = $3,000 -> full 0.1
    np.testing.assert_allclose(res.delta_shock[1:], [0.15 * 0.05, 0.3 * 0.1], rtol=1e-9)


def test_pnl_offset_across_pairs():
    p = margin.DeribitParams(pnl_offset=0.6)
    inst = margin.Instruments.create(["inverse_perpetual", "inverse_perpetual"], underlying=[0, 1])
    sc = margin.deribit_scenarios(inst, [10_000.0, 200.0], [0.0, 0.0], p)
    book = np.array([[1.0, -1.0]])  # pair gains offset each other only at 60%
    res = margin.deribit_margin(book, inst, sc, [10_000.0, 200.0], p, dtype=jnp.float64)
    std = np.asarray(sc.select("standard").pnl)
    per_pair = book[0][:, None] * std
    tot = np.minimum(per_pair, 0).sum(0) + 0.6 * np.maximum(per_pair, 0).sum(0)
    assert float(res.worst_standard[0]) == pytest.approx(max(0, -tot.min()), rel=1e-12)
    assert float(res.worst_standard[0]) > 0


def test_unknown_config_key():
    with pytest.raises(ValueError, match="price_rnge"):
        margin.DeribitParams.from_config({"price_rnge": 0.1})


_INST2 = margin.Instruments.create(["inverse_perpetual", "option", "inverse_perpetual"], underlying=[0, 0, 1],
                                   strike=[0, 10_000.0, 0], expiry=[0, 0.1, 0], option_type=[None, "P", None])


@settings(max_examples=15, deadline=None)
@given(q=st.lists(st.floats(-5, 5), min_size=3, max_size=3), offset=st.floats(0, 1), less=st.floats(0, 1),
       pr=st.floats(0.05, 0.3), widen=st.floats(0, 0.2))
def test_monotone_in_gains_haircut_and_price_range(q, offset, less, pr, widen):
    book = np.array([q])
    fwd, vols = [10_000.0, 200.0], np.array([0.0, 0.7, 0.0])
    # a smaller pnl_offset (a bigger haircut on gains) never lowers the requirement
    reqs = []
    for off in (offset, offset * less):
        p = margin.DeribitParams(price_range=pr, pnl_offset=off)
        sc = margin.deribit_scenarios(_INST2, fwd, vols, p)
        reqs.append(float(margin.deribit_margin(book, _INST2, sc, fwd, p, dtype=jnp.float64).initial_margin[0]))
    assert reqs[1] >= reqs[0] - 1e-12
    # a wider price range never lowers the worst loss of a book whose coin P&L is concave in the price
    # (long inverse perpetuals: q m / (1 + m); short coin-settled puts: the coin payoff max(K/F - 1, 0) is convex)
    book2 = np.array([[abs(q[0]), -abs(q[1]), abs(q[2])]])
    worst = []
    for r in (pr, pr + widen):
        p = margin.DeribitParams(price_range=r, pnl_offset=1.0)
        sc = margin.deribit_scenarios(_INST2, fwd, vols, p)
        worst.append(float(margin.deribit_margin(book2, _INST2, sc, fwd, p, dtype=jnp.float64).worst_standard[0]))
    assert worst[1] >= worst[0] - 1e-12
