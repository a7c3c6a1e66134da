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
