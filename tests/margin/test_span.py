"""CME SPAN: McMillan's worked example, scenario structure, monotonicity and the combined-commodity rule."""
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hydra import compose, initialize_config_dir

import margin
from margin.rules.span import SPAN_PRICE_FRACTIONS


@pytest.fixture(scope="module")
def es_future():
    return margin.Instruments.create(["future"], contract_size=[500.0], expiry=[0.25], names=["ES"])


def test_mcmillan_sp500_future(es_future):
    # long 1 S&P 500 future, PSR 20 points x $500 = $10,000: scan risk $10,000; extreme 2 x PSR at 35% = $7,000
    sc = margin.span_scenarios(es_future, [1000.0], [0.2], [20.0], [0.04])
    pnl = np.asarray(sc.pnl[0])
    assert pnl.shape == (16,)
    assert -pnl.min() == pytest.approx(10_000.0)
    assert pnl[15] == pytest.approx(-7_000.0) and pnl[14] == pytest.approx(7_000.0)
    res = margin.span_requirement(np.array([[1.0], [-2.0]]), es_future, sc, margin.SpanParams([20.0], [0.04]),
                                  dtype=jnp.float64)
    np.testing.assert_allclose(res.scan_risk[:, 0], [10_000.0, 20_000.0])
    np.testing.assert_allclose(res.requirement, [10_000.0, 20_000.0])


def test_scenario_order_and_vol_moves():
    inst = margin.Instruments.create(["option"], strike=[100.0], expiry=[0.5], option_type=["C"])
    sc = margin.span_scenarios(inst, [100.0], [0.3], [10.0], [0.05])
    bs = lambda f, v: float(margin.black76_price(f, 100.0, 0.5, v, True, dtype=jnp.float64))  # noqa: E731
    base = bs(100.0, 0.3)
    exp = []
    for x in SPAN_PRICE_FRACTIONS:
        exp += [bs(100 + 10 * x, 0.35) - base, bs(100 + 10 * x, 0.25) - base]
    exp += [0.35 * (bs(120, 0.3) - base), 0.35 * (bs(80, 0.3) - base)]
    np.testing.assert_allclose(sc.pnl[0], exp, rtol=1e-10)
    assert sc.labels[0].startswith("1:") and sc.groups[-1] == "extreme"


def test_combined_commodity_rule():
    inst = margin.Instruments.create(["future", "future", "option", "option"], contract_size=[1, 1, 1, 1],
                                     strike=[0, 0, 100, 100], expiry=[0.1, 0.35, 0.1, 0.1],
                                     option_type=[None, None, "C", "P"])
    f, v = np.array([100.0, 101.0, 100.0, 100.0]), np.array([0, 0, 0.5, 0.5])
    sc = margin.span_scenarios(inst, f, v, [8.0], [0.05])
    params = margin.SpanParams([8.0], [0.05], short_option_minimum=[3.0], intra_spread_charge=[1.5])
    values = np.asarray(margin.black76_price(100.0, 100.0, 0.1, 0.5, np.array([True, False]), dtype=jnp.float64))
    ov = np.r_[0.0, 0.0, values]
    books = np.array([
        [1.0, -1.0, 0.0, 0.0],    # calendar spread: scan ~ 0, spread charge 1.5
        [0.0, 0.0, -1.0, -1.0],   # short straddle: SOM 2 x 3, NOV negative
        [0.0, 0.0, 2.0, 0.0],     # long calls: requirement = max(0, risk - value) = 0
    ])
    res = margin.span_requirement(books, inst, sc, params, option_values=ov, dtype=jnp.float64)
    lm = np.asarray(sc.pnl)
    scan_ref = np.maximum(-(books @ lm).min(axis=1), 0)
    np.testing.assert_allclose(res.scan_risk[:, 0], scan_ref, rtol=1e-12)
    assert float(res.intra_spread_charge[0, 0]) == pytest.approx(1.5)
    assert float(res.short_option_minimum[1, 0]) == pytest.approx(6.0)
    nov = books @ ov
    risk = np.maximum(scan_ref + np.array([1.5, 0, 0]), np.array([0, 6.0, 0]))
    np.testing.assert_allclose(res.requirement, np.maximum(risk - nov, 0), rtol=1e-12)
    assert float(res.requirement[2]) == 0.0
    # CME variant: max(short calls, short puts)
    p2 = margin.SpanParams([8.0], [0.05], short_option_minimum=[3.0], som_basis="max_calls_puts")
    r2 = margin.span_requirement(books, inst, sc, p2, option_values=ov, dtype=jnp.float64)
    assert float(r2.short_option_minimum[1, 0]) == pytest.approx(3.0)


@settings(max_examples=20, deadline=None)
@given(psr=st.floats(1.0, 30.0), bump=st.floats(0.0, 10.0), q=st.floats(-5, 5), qo=st.floats(-5, 0))
def test_monotone_in_scan_range(psr, bump, q, qo):
    # Futures + short options have P&L concave in the price, so the worst loss over a symmetric grid sits at
    # its ends and can only grow with the scan range. (For convex books, e.g. long options, a wider grid can
    # step over the interior minimum, so SPAN is not monotone there in general.)
    inst = margin.Instruments.create(["future", "option"], strike=[0, 100], expiry=[0.2, 0.2],
                                     option_type=[None, "P"])
    book = np.array([[q, qo]])
    reqs = []
    for p in (psr, psr + bump):
        sc = margin.span_scenarios(inst, [100.0], [0.0, 0.4], [p], [0.05])
        reqs.append(float(margin.portfolio_margin(book, sc, dtype=jnp.float64)[0]))
    assert reqs[1] >= reqs[0] - 1e-9


def test_span_config_composes(repo_root):
    with initialize_config_dir(config_dir=str(repo_root / "conf" / "margin"), version_base=None):
        cfg = compose(config_name="span")
    p = margin.SpanParams.from_config(cfg, ["ES"])
    assert p.price_scan_range == [20.0] and p.extreme_cover == 0.35
    with pytest.raises(ValueError, match="XYZ"):
        margin.SpanParams.from_config(cfg, ["XYZ"])
