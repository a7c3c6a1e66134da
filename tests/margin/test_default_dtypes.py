"""Issue 13 item 2: venue rule sets default to float64 where the venue's published example needs it; the batched
requirement kernels keep float32 as their default."""
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from scipy.stats import norm

import margin


def _eth_params(repo_root):
    with initialize_config_dir(config_dir=str(repo_root / "conf" / "margin"), version_base=None):
        return margin.DeribitParams.from_config(compose(config_name="deribit_eth"))


def test_deribit_eth_example_within_venue_tolerance_with_defaults(repo_root):
    # Deribit "Portfolio Margin" ETH example: short 0.999487053 ETH-PERPETUAL at 18% price range, roll shock 0.5%.
    # Deribit states quantities to 1e-9 coin; the default dtype must reproduce the example to that precision.
    p = _eth_params(repo_root)
    q = 0.999487053
    inst = margin.Instruments.create(["inverse_perpetual"], names=["ETH-PERPETUAL"])
    sc = margin.deribit_scenarios(inst, [200.0], [0.0], p)
    res = margin.deribit_margin(np.array([[-q]]), inst, sc, [200.0], p)  # default dtype
    expected_im = p.price_range * q / (1 + p.price_range) + p.min_annualised_move * q
    assert res.initial_margin.dtype == jnp.float64
    assert abs(float(res.initial_margin[0]) - expected_im) < 1e-9
    assert abs(float(res.maintenance_margin[0]) - p.mm_factor * expected_im) < 1e-9


def test_black76_default_deltas_match_scipy_at_small_deltas():
    f, t, v = 9_000.0, 7 / 365, 0.8
    k = f * np.exp(np.linspace(0.2, 0.6, 9))  # deep OTM calls: deltas 1e-2 .. 1e-7
    g = margin.black76_greeks(f, k, t, v, True)  # default dtype
    sq = v * np.sqrt(t)
    ref = norm.cdf((np.log(f / k) + 0.5 * sq * sq) / sq)
    assert g.delta.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(g.delta), ref, rtol=1e-10)
    assert margin.black76_price(f, k, t, v, True).dtype == jnp.float64


def test_span_default_dtype_is_float64():
    inst = margin.Instruments.create(["linear_future"], contract_size=[500.0], expiry=[0.25])
    sc = margin.span_scenarios(inst, [4000.0], [0.0], [20.0], [0.0])
    res = margin.span_requirement(np.array([[1.0]]), inst, sc, margin.SpanParams([20.0], [0.0]))
    assert res.requirement.dtype == jnp.float64
    assert float(res.requirement[0]) == pytest.approx(10_000.0, abs=1e-9)


def test_batched_kernels_keep_float32_default():
    x = np.ones((3, 2))
    lm = np.array([[1.0, -2.0], [0.5, -1.0]])
    assert margin.portfolio_margin(x, lm).dtype == jnp.float32
    assert margin.portfolio_margin(x, lm, dtype=jnp.float64).dtype == jnp.float64
