"""Liquidation engine: money conservation at every step, hand-computed cases, oracle lag, Dutch auction."""
import jax.numpy as jnp
import numpy as np
import pytest

from margin.simulation.book import Book, OptionGrid, synthetic_book
from margin.simulation.liquidation import LiquidationParams, make_oracle, prepare_market, simulate
from predictive.data import load_ohlcv


def _book(perp, leverage, reserve=None, collateral=None):
    # always 2 accounts (an empty one pads) so the hand-computed cases share one compilation
    perp = np.asarray(perp, float)
    if perp.shape[0] == 1:
        perp, leverage = np.vstack([perp, np.zeros_like(perp)]), list(leverage) + [1.0]
    n = perp.shape[0]
    return Book(assets=tuple(f"X{i}" for i in range(perp.shape[1])), perp_usd=perp,
                opt_asset=np.full(n, -1), opt_idx=np.zeros((n, 2), int), opt_count=np.zeros((n, 2)),
                leverage=np.asarray(leverage, float), reserve=np.zeros(n) if reserve is None else np.asarray(reserve),
                collateral=np.full(n, np.nan) if collateral is None else np.asarray(collateral, float),
                grid=OptionGrid())


def _run(book, prices, scan=0.1, oracle=None, **kw):
    P = np.asarray(prices, float).reshape(len(prices), -1)
    if len(P) < 5:      # pad with the first price (no-op steps) so every hand case has 5 steps
        P = np.vstack([np.repeat(P[:1], 5 - len(P), 0), P])
        oracle = None if oracle is None else np.vstack([np.repeat(oracle[:1], 5 - len(oracle), 0), oracle])
    T, A = P.shape
    params = LiquidationParams(**{"impact_k": 0.0, "reentry_days": 0, **kw})
    m = prepare_market(book, P, P if oracle is None else oracle, np.full((T, A), 1e12), np.full((T, A), 0.03),
                       np.full((T, A), 0.5), np.full((T, A), scan), params, dtype=jnp.float64)
    s0, led, fin = simulate(book, m, np.full(A, 0.8), params)
    return s0, {k: np.asarray(v) for k, v in led._asdict().items()}, fin


def _check_ledger(s0, led, rtol=1e-12):
    init = float(np.asarray(s0.cash).sum() + float(s0.fund))
    total = led["balances"] + led["fund"] + led["market"] - led["deposits"]
    np.testing.assert_allclose(total, init, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(led["bad_debt"], led["fund_paid"] + led["adl_paid"] + led["socialised"],
                               rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(led["fund"], float(s0.fund) + led["fees"] - led["fund_paid"], rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(np.cumsum(led["bad_debt_step"]), led["bad_debt"], rtol=1e-12, atol=1e-6)


def test_hand_computed_crash_bad_debt():
    # long 100 coin at 100 USD, leverage 5 -> equity 2,000; a -30% day loses 3,000 -> bad debt 1,000
    s0, led, fin = _run(_book([[10_000.0]], [5.0]), [100, 100, 70])
    assert float(s0.cash[0]) == pytest.approx(2000.0)
    assert led["bad_debt"][-1] == pytest.approx(1000.0)
    assert led["fund"][-1] == pytest.approx(1e6 - 1000.0)       # nothing left to pay a fee from
    assert led["n_liquidations"].tolist() == [0, 0, 0, 0, 1]
    assert led["liq_volume"][-1] == pytest.approx(7000.0)
    assert float(fin.cash[0]) == 0.0 and float(jnp.abs(fin.q).sum()) == 0.0
    _check_ledger(s0, led)


def test_partial_liquidation_restores_im_and_pays_fee():
    # equity 2,000 on 10,000 (leverage 5), scan 0.1 -> IM 1,000; a -12.5% day leaves 750 < MM 700? no: check
    s0, led, fin = _run(_book([[10_000.0]], [5.0]), [100, 100, 87.5], close_extra=0.0)
    # equity 2,000 - 1,250 = 750; IM = 0.1 x 8,750 = 875, MM = 700 -> not liquidated
    assert led["n_liquidations"].sum() == 0
    s0, led, fin = _run(_book([[10_000.0]], [5.0]), [100, 100, 85], close_extra=0.0, min_close=0.0)
    # equity 500, IM 850, MM 680 -> close c = 1 - 500/850; fee 0.5% of the closed notional
    c = 1 - 500 / 850
    assert led["n_liquidations"][-1] == 1
    assert led["liq_volume"][-1] == pytest.approx(c * 8500)
    assert led["fees"][-1] == pytest.approx(0.005 * c * 8500)
    assert float(fin.q[0, 0]) == pytest.approx(100 * (1 - c))
    assert led["bad_debt"][-1] == 0
    _check_ledger(s0, led)


def test_adl_when_fund_empty():
    # long loses 3,000 with 2,000 equity; the short (no leverage) gained 1,500: ADL charges 1,000 of it
    book = _book([[10_000.0], [-5_000.0]], [5.0, 1.0])
    s0, led, fin = _run(book, [100, 100, 70], insurance_fund=0.0)
    assert led["adl_paid"][-1] == pytest.approx(1000.0)
    assert led["socialised"][-1] == pytest.approx(0.0)
    assert float(fin.q[1, 0]) == pytest.approx(-50 * (1 - 1000 / 1500))
    _check_ledger(s0, led)
    # nobody profitable -> socialised to the counterparties
    s0, led, fin = _run(_book([[10_000.0]], [5.0]), [100, 100, 70], insurance_fund=0.0)
    assert led["socialised"][-1] == pytest.approx(1000.0)
    _check_ledger(s0, led)


def test_late_oracle_creates_bad_debt():
    P = np.array([100, 90, 80, 70, 60.0])[:, None]
    book = _book([[10_000.0]], [5.0])
    _, spot, _ = _run(book, P)
    _, late, _ = _run(book, P, oracle=make_oracle(P, "lagged", lag=1))
    assert spot["bad_debt"][-1] == pytest.approx(0.0, abs=1e-9)
    # liquidated one step late at the market price 70 while the oracle still says 80
    assert late["bad_debt"][-1] == pytest.approx(1000.0)


def test_oracle_kinds():
    P = np.arange(1.0, 7.0)[:, None] * np.array([1.0, 2.0])
    np.testing.assert_allclose(make_oracle(P, "lagged", lag=2)[:, 0], [1, 1, 1, 2, 3, 4])
    np.testing.assert_allclose(make_oracle(P, "twap", window=3)[:, 0], [1, 1.5, 2, 3, 4, 5])
    np.testing.assert_allclose(make_oracle(P, "deviation", deviation=0.1), P * 1.1)
    with pytest.raises(ValueError, match=r"price\[2, 0\]"):
        make_oracle(np.array([[1.0], [2.0], [np.nan]]))


@pytest.fixture(scope="module")
def crash_slice():
    btc, eth = load_ohlcv("BTC"), load_ohlcv("ETH")
    idx = btc.loc["2020-02-01":"2020-04-30"].index
    P = np.stack([btc.close.reindex(idx), eth.close.reindex(idx)], 1)
    V = np.stack([btc.volume.reindex(idx), eth.volume.reindex(idx)], 1) * 1e-4   # thin venue: visible impact
    return P, V


@pytest.mark.parametrize("kw", [{}, {"dutch_auction": True, "auction_max_discount": 0.03},
                                {"oracle": "lagged"}, {"close_factor": 0.5, "insurance_fund": 2e4}])
def test_conservation_every_step(crash_slice, kw):
    P, V = crash_slice
    kw = dict(kw)
    oracle = make_oracle(P, kw.pop("oracle", "spot"))
    book = synthetic_book(400, ("BTC", "ETH"), seed=1)
    params = LiquidationParams(reentry_days=5, **kw)
    sig = np.full(P.shape, 0.04)
    m = prepare_market(book, P, oracle, V, sig, np.full(P.shape, 0.7), np.full(P.shape, 0.08), params,
                       dtype=jnp.float64)
    s0, led, fin = simulate(book, m, np.array([0.8, 0.8]), params)
    led = {k: np.asarray(v) for k, v in led._asdict().items()}
    _check_ledger(s0, led, rtol=1e-11)
    assert led["n_liquidations"].sum() > 0 and led["bad_debt"][-1] > 0    # the crash does bite
    if "insurance_fund" in kw:
        assert led["adl_paid"][-1] + led["socialised"][-1] > 0
    if kw.get("dutch_auction"):
        assert np.any(led["impact"] > 0)


def test_bad_inputs():
    book = _book([[1000.0]], [2.0])
    P = np.array([[100.0], [0.0]])
    with pytest.raises(ValueError, match=r"price\[1, 0\]"):
        prepare_market(book, P, np.ones_like(P), np.ones_like(P), np.ones_like(P), np.ones_like(P),
                       np.ones_like(P))
    with pytest.raises(ValueError, match="close_factor"):
        LiquidationParams(close_factor=1.5)
