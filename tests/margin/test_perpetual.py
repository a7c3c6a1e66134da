"""perpetual_margin against the plain-Python reference, and its input checks."""
import jax.numpy as jnp
import numpy as np
import pytest

import margin


def _random_book(rng, n=37, m=5):
    q = rng.normal(0, 2, (n, m)) * (rng.random((n, m)) < 0.7)
    q[0] = 0.0  # an account without positions
    entry = rng.uniform(50, 150, m)
    mark = entry * np.exp(rng.normal(0, 0.2, m))
    coll = rng.uniform(-20, 400, n)
    imf = rng.uniform(0.02, 0.2, m)
    mmf = imf * rng.uniform(0.3, 0.9, m)
    return q, entry, mark, coll, imf, mmf


@pytest.mark.parametrize("dtype,tol", [(jnp.float64, 1e-10), (jnp.float32, 2e-5)])
def test_matches_reference(dtype, tol):
    args = _random_book(np.random.default_rng(0))
    res = margin.perpetual_margin(*args, dtype=dtype)
    ref = margin.perpetual_margin_reference(*args)
    for f in ("notional", "unrealised_pnl", "initial_margin", "maintenance_margin", "equity"):
        got = np.asarray(getattr(res, f), float)
        np.testing.assert_allclose(got, ref[f], rtol=tol, atol=tol * 100, err_msg=f)
    assert np.isinf(res.margin_ratio[0]) and np.isinf(ref["margin_ratio"][0])
    np.testing.assert_allclose(np.asarray(res.margin_ratio[1:], float), ref["margin_ratio"][1:], rtol=tol * 10)
    # liquidatable may differ only where equity is within rounding of MM
    close = np.abs(ref["equity"] - ref["maintenance_margin"]) < 1e-3
    assert np.array_equal(np.asarray(res.liquidatable)[~close], ref["liquidatable"][~close])
    assert res.equity.dtype == dtype
    assert ref["liquidatable"].any() and not ref["liquidatable"].all()


def test_per_account_prices_and_hand_example():
    # long 2 BTC @ 100 marked at 90, short 1 ETH @ 10 marked at 12, collateral 30
    q = np.array([[2.0, -1.0]])
    res = margin.perpetual_margin(q, np.array([[100.0, 10.0]]), np.array([[90.0, 12.0]]), np.array([30.0]),
                                  np.array([0.1, 0.2]), np.array([0.05, 0.1]), dtype=jnp.float64)
    assert float(res.unrealised_pnl[0]) == pytest.approx(-20 - 2)
    assert float(res.equity[0]) == pytest.approx(8.0)
    assert float(res.initial_margin[0]) == pytest.approx(180 * 0.1 + 12 * 0.2)
    assert float(res.maintenance_margin[0]) == pytest.approx(180 * 0.05 + 12 * 0.1)
    assert float(res.margin_ratio[0]) == pytest.approx(8 / 192)
    assert bool(res.liquidatable[0])


@pytest.mark.parametrize(
    "kw,field,index",
    [
        ({"mark_prices": np.array([100.0, np.nan])}, "mark_prices", "(1,)"),
        ({"entry_prices": np.array([100.0, -1.0])}, "entry_prices", "(1,)"),
        ({"positions": np.array([[1.0, 0.0], [np.inf, 1.0]])}, "positions", "(1, 0)"),
        ({"mm_fraction": np.array([0.05, 0.5])}, "mm_fraction", "(1,)"),
        ({"im_fraction": np.array([0.1, 0.0])}, "im_fraction", "(1,)"),
        ({"collateral": np.array([1.0, 2.0, 3.0])}, "collateral", None),
        ({"mark_prices": np.array([100.0, 1.0, 2.0])}, "mark_prices", None),
    ],
)
def test_bad_input_names_field_and_index(kw, field, index):
    args = dict(positions=np.ones((2, 2)), entry_prices=np.array([100.0, 10.0]), mark_prices=np.array([90.0, 12.0]),
                collateral=np.array([30.0, 1.0]), im_fraction=np.array([0.1, 0.2]), mm_fraction=np.array([0.05, 0.1]))
    args.update(kw)
    with pytest.raises(ValueError, match=field) as e:
        margin.perpetual_margin(**args)
    if index:
        assert index in str(e.value)
