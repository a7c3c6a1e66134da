"""Block-structured scenario sets (issue 13 item 5): the block kernel against the dense kernel as reference."""
import jax.numpy as jnp
import numpy as np
import pytest

import margin


def _block_book(rng, n=301, sizes=((5, 7), (3, 4), (6, 7)), perm=True):
    """Block-diagonal P&L (optionally with instruments and scenarios shuffled) and random positions."""
    n_i, n_s = sum(i for i, _ in sizes), sum(s for _, s in sizes)
    lm = np.zeros((n_i, n_s))
    i0 = s0 = 0
    for i, s in sizes:
        lm[i0:i0 + i, s0:s0 + s] = rng.normal(0, 1, (i, s))
        i0, s0 = i0 + i, s0 + s
    if perm:
        lm = lm[rng.permutation(n_i)][:, rng.permutation(n_s)]
    x = rng.normal(0, 1, (n, n_i)) * (rng.random((n, n_i)) < 0.6)
    return x, lm


@pytest.mark.parametrize("chunk", [None, 64])
def test_block_kernel_equals_dense(chunk):
    rng = np.random.default_rng(3)
    x, lm = _block_book(rng)
    addons = rng.uniform(0, 0.3, x.shape[0])
    layout = margin.detect_block_layout(lm)
    assert layout.n_blocks == 3
    assert layout.flop_fraction(*lm.shape) < 0.5
    dense = margin.portfolio_margin(x, lm, addons, dtype=jnp.float64, chunk_size=chunk)
    got = margin.portfolio_margin(x, lm, addons, dtype=jnp.float64, chunk_size=chunk, blocks=layout)
    np.testing.assert_allclose(got, dense, rtol=1e-13, atol=1e-13)
    auto = margin.portfolio_margin(x, lm, addons, chunk_size=chunk, blocks="auto")
    np.testing.assert_allclose(auto, np.asarray(dense), rtol=1e-5, atol=1e-5)
    direct = margin.portfolio_margin_blocks(margin.split_positions(x, layout, jnp.float64),
                                            layout.pnl_blocks(lm), addons, dtype=jnp.float64, chunk_size=chunk)
    np.testing.assert_allclose(direct, dense, rtol=1e-13, atol=1e-13)


def test_block_layout_from_underlyings_matches_detection():
    inst = margin.Instruments.create(["linear_perpetual"] * 4, underlying=[0, 1, 0, 1])
    moves = np.array([[-0.1, 0.0, 0.1, 0, 0, 0], [0, 0, 0, -0.2, 0.0, 0.2]])
    # underlying u is moved only in its own 3 scenarios
    sc = margin.scenario_pnl(inst, [100.0, 50.0], np.ones(4), moves)
    layout = margin.block_layout(np.asarray(inst.underlying), np.repeat([0, 1], 3))
    x = np.random.default_rng(0).normal(0, 1, (50, 4))
    np.testing.assert_allclose(margin.portfolio_margin(x, sc, blocks=layout, dtype=jnp.float64),
                               margin.portfolio_margin(x, sc, dtype=jnp.float64), rtol=1e-13, atol=1e-13)
    det = margin.detect_block_layout(sc)  # the 0-move scenarios are all-zero columns: in no block
    assert [list(i) for i in det.instruments] == [[0, 2], [1, 3]]


def test_block_layout_rejects_nonzero_outside_blocks():
    lm = np.array([[1.0, 0.0], [0.5, -1.0]])
    bad = margin.BlockLayout((np.array([0]), np.array([1])), (np.array([0]), np.array([1])))
    with pytest.raises(margin.MarginInputError, match=r"index \(1, 0\)"):
        margin.portfolio_margin(np.ones((2, 2)), lm, blocks=bad)
    with pytest.raises(margin.MarginInputError, match="position_blocks"):
        margin.portfolio_margin_blocks([np.ones((3, 1)), np.ones((2, 1))], [np.ones((1, 2)), np.ones((1, 2))])


def _multi_underlying_book(rng, n=40):
    """3 underlyings x (perpetual, future, 2 options), instruments interleaved across underlyings."""
    und = np.tile([0, 1, 2], 4)
    kinds = ["inverse_perpetual"] * 3 + ["inverse_future"] * 3 + ["option"] * 6
    inst = margin.Instruments.create(kinds, underlying=und, strike=[0] * 6 + [90, 110, 95, 105, 100, 120],
                                     expiry=[0, 0, 0, 0.1, 0.2, 0.3, 0.1, 0.2, 0.05, 0.1, 0.3, 0.2],
                                     settlement=["coin"] * 12, option_type=[""] * 6 + list("CPCPCP"))
    fwd = np.array([100.0, 100.0, 100.0])
    vols = np.where(inst.is_option, rng.uniform(0.4, 0.9, 12), 0.0)
    return inst, fwd, vols, rng.normal(0, 1, (n, 12))


def test_span_per_underlying_blocks_equal_dense_scan():
    rng = np.random.default_rng(5)
    inst, fwd, vols, x = _multi_underlying_book(rng)
    sc = margin.span_scenarios(inst, fwd, np.where(inst.is_option, vols, 1.0), [10.0, 12.0, 8.0], [0.05] * 3)
    res = margin.span_requirement(x, inst, sc, margin.SpanParams([10.0, 12.0, 8.0], [0.05] * 3))
    und = np.asarray(inst.underlying)
    lm = np.asarray(sc.pnl)
    for u in range(3):  # dense reference: the (I, 16) matrix with the other underlyings' rows zeroed
        dense = np.asarray(margin.portfolio_margin(x, np.where((und == u)[:, None], lm, 0.0), dtype=jnp.float64))
        np.testing.assert_allclose(res.scan_risk[:, u], dense, rtol=1e-12, atol=1e-12)


def test_deribit_per_pair_blocks_equal_dense_risk_vectors():
    rng = np.random.default_rng(6)
    inst, fwd, vols, x = _multi_underlying_book(rng)
    p = margin.DeribitParams(pnl_offset=0.6)
    sc = margin.deribit_scenarios(inst, fwd * np.array([1.0, 20.0, 0.5]), np.where(inst.is_option, vols, 1.0), p)
    res = margin.deribit_margin(x, inst, sc, fwd, p)
    und = np.asarray(inst.underlying)
    std = np.asarray(sc.select("standard").pnl)
    per_pair = np.stack([x @ np.where((und == u)[:, None], std, 0.0) for u in range(3)], axis=1)  # dense, (N, U, S)
    tot = np.minimum(per_pair, 0).sum(1) + 0.6 * np.maximum(per_pair, 0).sum(1)
    np.testing.assert_allclose(res.worst_standard, np.maximum(-tot.min(axis=1), 0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk", [None, 500])
def test_block_kernel_equals_dense_on_bench_book(chunk):
    """The benchmark's book (experiments.bench_margin.realistic_block_book, 4 underlyings x 16 instruments x 16
    SPAN scenarios): block-major positions through the block kernel equal the dense kernel in float32 and float64."""
    from experiments.bench_margin import realistic_block_book

    lm, layout, und = realistic_block_book(4, 16, 0)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2001, lm.shape[0])) * (rng.random((2001, 4)) < 0.5)[:, und]
    assert layout.n_blocks == 4 and layout.flop_fraction(*lm.shape) == 0.25
    for dt, tol in ((jnp.float64, 1e-12), (jnp.float32, 1e-5)):
        dense = np.asarray(margin.portfolio_margin(x, lm, dtype=dt, chunk_size=chunk))
        got = np.asarray(margin.portfolio_margin_blocks(margin.split_positions(x, layout, dt),
                                                        layout.pnl_blocks(lm.astype(dt)), dtype=dt,
                                                        chunk_size=chunk))
        np.testing.assert_allclose(got, dense, rtol=tol, atol=tol * max(1.0, float(np.abs(dense).max())))


@pytest.mark.parametrize("chunk", [None, 64])
@pytest.mark.parametrize("addons", [None, 0.25, "vector"])
def test_block_kernel_addons_none_scalar_vector(chunk, addons):
    """No add-ons and a scalar add-on broadcast inside the block kernel: (N,) result equal to the dense kernel."""
    rng = np.random.default_rng(7)
    x, lm = _block_book(rng, n=203)
    layout = margin.detect_block_layout(lm)
    a = rng.uniform(0, 0.3, x.shape[0]) if addons == "vector" else addons
    dense = np.asarray(margin.portfolio_margin(x, lm, a, dtype=jnp.float64, chunk_size=chunk))
    got = margin.portfolio_margin_blocks(margin.split_positions(x, layout, jnp.float64), layout.pnl_blocks(lm), a,
                                         dtype=jnp.float64, chunk_size=chunk)
    assert got.shape == (x.shape[0],) and got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), dense, rtol=1e-13, atol=1e-13)
