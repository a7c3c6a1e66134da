"""Scenario P&L matrices against direct revaluation, and scenario-set properties."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import margin


@pytest.fixture(scope="module")
def inst():
    return margin.Instruments.create(
        ["spot", "perpetual", "future", "inverse_perpetual", "inverse_future", "option", "option", "option"],
        underlying=[0, 0, 0, 0, 0, 0, 0, 1],
        contract_size=[1, 2, 1, 1, 1, 1, 1, 10],
        strike=[0, 0, 0, 0, 0, 100, 90, 20],
        expiry=[0, 0, 0.25, 0, 0.25, 0.25, 0.5, 0.1],
        option_type=[None, None, None, None, None, "C", "P", "P"],
        settlement=["USD", "USD", "USD", "coin", "coin", "USD", "coin", "USD"],
        names=list("abcdefgh"),
    )


def test_pnl_matches_direct_revaluation(inst):
    f0 = np.array([100.0, 20.0])
    vols = np.array([0, 0, 0, 0, 0, 0.6, 0.7, 0.9])
    moves = np.array([[-0.2, 0.0, 0.1, 0.5], [0.3, -0.1, 0.0, 0.2]])
    new_vols = np.tile(vols[:, None], (1, 4)) * np.array([1.0, 1.2, 0.8, 1.0])
    new_vols[:5] = 1.0
    usd = margin.scenario_pnl(inst, f0, vols, moves, new_vols, dt=0.01, unit="usd").pnl
    coin = margin.scenario_pnl(inst, f0, vols, moves, new_vols, dt=0.01, unit="coin").pnl
    for s in range(4):
        F = f0[0] * (1 + moves[0, s])
        G = f0[1] * (1 + moves[1, s])
        m = moves[0, s]
        bs = lambda f, k, t, v, c: float(margin.black76_price(f, k, t, v, c, dtype=jnp.float64))  # noqa: E731
        exp_usd = [F - 100, 2 * (F - 100), F - 100, F - 100, F - 100,
                   bs(F, 100, 0.24, new_vols[5, s], True) - bs(100, 100, 0.25, 0.6, True),
                   bs(F, 90, 0.49, new_vols[6, s], False) - bs(100, 90, 0.5, 0.7, False),
                   10 * (bs(G, 20, 0.09, new_vols[7, s], False) - bs(20, 20, 0.1, 0.9, False))]
        np.testing.assert_allclose(usd[:, s], exp_usd, rtol=1e-10, atol=1e-10)
        # coin: spot has no coin P&L; inverse contracts pay q m / (1 + m)
        assert coin[0, s] == pytest.approx(0.0, abs=1e-12)
        assert coin[3, s] == pytest.approx(m / (1 + m), abs=1e-12)
        opt_coin = bs(F, 90, 0.49, new_vols[6, s], False) / F - bs(100, 90, 0.5, 0.7, False) / 100
        assert coin[6, s] == pytest.approx(opt_coin, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(size=st.floats(0.01, 100), move=st.floats(-0.9, 5.0), unit=st.sampled_from(["usd", "coin"]))
def test_hedged_book_has_zero_pnl(inst, size, move, unit):
    # long future + short future (and long + short inverse perpetual) on the same underlying
    lm = margin.scenario_pnl(inst, np.array([100.0, 20.0]), np.full(8, 0.5), np.array([[move], [0.0]]),
                             unit=unit).pnl
    book = np.zeros((1, 8))
    book[0, 2], book[0, 1] = size, -size / 2  # future (cs 1) vs perpetual (cs 2)
    book2 = np.zeros((1, 8))
    book2[0, 3], book2[0, 4] = size, -size
    for b in (book, book2):
        assert float(margin.portfolio_margin(b, lm, dtype=jnp.float64)[0]) == pytest.approx(0.0, abs=1e-9 * size)
        assert float((b @ np.asarray(lm))[0, 0]) == pytest.approx(0.0, abs=1e-9 * size)


def test_historical_and_filtered(inst):
    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.03, (60, 2))
    vols = np.full(8, 0.5)
    hs = margin.historical_scenarios(inst, [100.0, 20.0], vols, r, horizon=2)
    assert hs.pnl.shape == (8, 59)
    # spot P&L in USD under scenario t = 100 (exp(r_t + r_{t+1}) - 1)
    np.testing.assert_allclose(hs.pnl[0], 100 * np.expm1(r[:-1, 0] + r[1:, 0]), rtol=1e-12)
    fhs = margin.filtered_historical_scenarios(inst, [100.0, 20.0], vols, r, lam=0.94)
    s = margin.ewma_volatility(r, 0.94)
    # hand recursion for the EWMA filter
    s2 = np.mean(r[:30, 0] ** 2)
    for t in range(60):
        s2 = 0.94 * s2 + 0.06 * r[t, 0] ** 2
    assert s[-1, 0] == pytest.approx(np.sqrt(s2), rel=1e-12)
    np.testing.assert_allclose(fhs.pnl[0], 100 * np.expm1(r[:, 0] / s[:-1, 0] * s[-1, 0]), rtol=1e-10)


def test_correlated_scenarios_and_stress(inst):
    corr = np.array([[1.0, 0.3], [0.3, 1.0]])
    cs = margin.correlated_scenarios(inst, [100.0, 20.0], np.full(8, 0.5), [0.05, 0.08], corr,
                                     n_scenarios=4000, key=jax.random.key(0))
    assert cs.pnl.shape == (8, 8000)
    spot0 = np.log1p(np.asarray(cs.select("correlated").pnl[0]) / 100)
    stressed = cs.select("stressed")
    # correlation ~0.3 in the base set; the stressed set moves both underlyings together (corr 1)
    inst2 = margin.Instruments.create(["spot", "spot"], underlying=[0, 1])
    cs2 = margin.correlated_scenarios(inst2, [100.0, 20.0], np.ones(2), [0.05, 0.08], corr, n_scenarios=4000,
                                      key=jax.random.key(0))
    r = np.log1p(np.asarray(cs2.pnl) / np.array([[100.0], [20.0]]))
    assert np.corrcoef(r[:, :4000])[0, 1] == pytest.approx(0.3, abs=0.05)
    assert np.corrcoef(r[:, 4000:])[0, 1] == pytest.approx(1.0, abs=1e-9)
    assert np.std(spot0) == pytest.approx(0.05, rel=0.05)
    assert stressed.n_scenarios == 4000
    with pytest.raises(ValueError, match="corr"):
        margin.correlated_scenarios(inst2, [100.0, 20.0], np.ones(2), [0.05, 0.08], np.array([[1, 1.2], [1.2, 1]]),
                                    n_scenarios=3, key=jax.random.key(0))


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"kind": ["spot", "swap"]}, r"kind at index \(1,\)"),
        ({"kind": ["option", "option"], "strike": [100, 100], "expiry": [0.1, -0.01], "option_type": ["C", "P"]},
         r"expiry at index \(1,\)"),
        ({"kind": ["option", "option"], "strike": [100, 0], "expiry": [0.1, 0.1], "option_type": ["C", "P"]},
         r"strike at index \(1,\)"),
        ({"kind": ["spot", "spot"], "contract_size": [1, -2]}, r"contract_size at index \(1,\)"),
        ({"kind": ["spot", "inverse_perpetual"], "settlement": ["USD", "USD"]}, r"settlement at index \(1,\)"),
        ({"kind": ["option", "option"], "strike": [1, 1], "expiry": [1, 1], "option_type": ["C", "X"]},
         r"option_type at index \(1,\)"),
        ({"kind": ["spot", "spot"], "underlying": [0, 2], "n_underlyings": 2}, r"underlying at index \(1,\)"),
    ],
)
def test_instrument_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        margin.Instruments.create(**kw)


def test_scenario_input_validation(inst):
    with pytest.raises(ValueError, match=r"moves at index \(0, 1\)"):
        margin.scenario_pnl(inst, [100.0, 20.0], np.full(8, 0.5), np.array([[0.1, -1.0], [0, 0]]))
    with pytest.raises(ValueError, match=r"vols at index \(6,\)"):
        margin.scenario_pnl(inst, [100.0, 20.0], np.r_[np.full(6, 0.5), np.nan, 0.5], np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"forwards at index \(1,\)"):
        margin.scenario_pnl(inst, [100.0, -20.0], np.full(8, 0.5), np.zeros((2, 1)))
