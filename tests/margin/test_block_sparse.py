"""Block-sparse positions (issue 13 item 5): each block stores only the accounts that hold it; the block-sparse
kernel against the dense kernel (:func:`margin.portfolio_margin`) as reference."""
import jax.numpy as jnp
import numpy as np
import pytest

import margin


def _book(rng, n=400, sizes=((5, 7), (3, 4), (6, 7), (2, 3)), p_hold=0.5, perm=True):
    """Block-diagonal P&L (instruments and scenarios shuffled) and positions in which each account holds each
    block with probability ``p_hold``; the first rows hold nothing, all blocks, and exactly one block."""
    n_i, n_s = sum(i for i, _ in sizes), sum(s for _, s in sizes)
    lm = np.zeros((n_i, n_s))
    blk = np.zeros(n_i, int)
    i0 = s0 = 0
    for b, (i, s) in enumerate(sizes):
        lm[i0:i0 + i, s0:s0 + s] = rng.normal(0, 1, (i, s))
        blk[i0:i0 + i] = b
        i0, s0 = i0 + i, s0 + s
    if perm:
        pi = rng.permutation(n_i)
        lm, blk = lm[pi][:, rng.permutation(n_s)], blk[pi]
    held = rng.random((n, len(sizes))) < p_hold
    held[0] = False                                  # holds nothing
    held[1] = True                                   # holds every block
    held[2:2 + len(sizes)] = np.eye(len(sizes), dtype=bool)  # exactly one block each
    x = rng.normal(0, 1, (n, n_i)) * held[:, blk]
    return x, lm


def _dense(x, lm, addons=None, dt=jnp.float64):
    return np.asarray(margin.portfolio_margin(x, lm, addons, dtype=dt))


@pytest.mark.parametrize("addons", [None, 0.25, "vector"])
@pytest.mark.parametrize("p_hold", [0.0, 0.3, 1.0])
def test_block_sparse_equals_dense(addons, p_hold):
    rng = np.random.default_rng(21)
    x, lm = _book(rng, p_hold=p_hold)
    a = rng.uniform(0, 0.3, x.shape[0]) if addons == "vector" else addons
    layout = margin.detect_block_layout(lm)
    sp = margin.sparse_block_positions(x, layout, jnp.float64)
    assert sp.n_blocks == layout.n_blocks == 4 and sp.n_accounts == x.shape[0]
    got = margin.portfolio_margin_block_sparse(sp, layout.pnl_blocks(lm), a, dtype=jnp.float64)
    assert got.shape == (x.shape[0],) and got.dtype == jnp.float64
    dense = _dense(x, lm, a)
    np.testing.assert_allclose(np.asarray(got), dense, rtol=1e-13, atol=1e-13)
    assert float(got[0]) == (0.0 if a is None else float(np.broadcast_to(a, (x.shape[0],))[0]))
    # the same through the block list and float32
    sp32 = margin.sparse_block_positions_from_blocks(margin.split_positions(x, layout, jnp.float64))
    got32 = np.asarray(margin.portfolio_margin_block_sparse(sp32, layout.pnl_blocks(lm), a))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, dense, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(dense).max())))


def test_block_sparse_layout_and_stored_rows():
    rng = np.random.default_rng(22)
    x, lm = _book(rng, n=50, perm=False)
    layout = margin.detect_block_layout(lm)
    sp = margin.sparse_block_positions(x, layout)
    idx = np.asarray(sp.index)
    assert idx.shape == (50, 4) and idx.dtype == np.int32
    assert (idx[0] == -1).all() and (idx[1] >= 0).all()
    for b, i in enumerate(layout.instruments):
        acc = np.flatnonzero(idx[:, b] >= 0)
        np.testing.assert_array_equal(idx[acc, b], np.arange(acc.size))        # ascending accounts
        np.testing.assert_allclose(np.asarray(sp.rows[b]), x[acc][:, i].astype(np.float32))
        assert (x[np.flatnonzero(idx[:, b] < 0)][:, i] == 0).all()
    assert 0 < sp.stored_fraction() < 1


def test_block_sparse_from_rows_and_empty_blocks():
    """A block nobody holds (N_b = 0) and an account holding nothing: 0 (+ add-on)."""
    lm = [np.array([[1.0, -2.0], [0.5, 0.5]]), np.array([[3.0, -1.0, 2.0]])]
    sp = margin.sparse_block_positions_from_rows(4, [[1, 3], []], [np.array([[1.0, 2.0], [-1.0, 0.0]]),
                                                                  np.zeros((0, 1))], jnp.float64)
    got = np.asarray(margin.portfolio_margin_block_sparse(sp, lm, 0.5, dtype=jnp.float64))
    x = np.zeros((4, 3))
    x[1, :2], x[3, :2] = [1.0, 2.0], [-1.0, 0.0]
    dense_lm = np.zeros((3, 5))
    dense_lm[:2, :2], dense_lm[2:, 2:] = lm
    np.testing.assert_allclose(got, _dense(x, dense_lm, 0.5), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(got[[0, 2]], [0.5, 0.5])


def test_block_sparse_on_bench_book():
    """The benchmark's book (4 underlyings x 16 instruments x 16 SPAN scenarios) in float32 and float64."""
    from experiments.bench_margin import realistic_block_book

    lm, layout, und = realistic_block_book(4, 16, 0)
    rng = np.random.default_rng(23)
    x = rng.standard_normal((3001, lm.shape[0])) * (rng.random((3001, 4)) < 0.5)[:, und]
    for dt, tol in ((jnp.float64, 1e-12), (jnp.float32, 1e-5)):
        dense = _dense(x, lm, dt=dt)
        got = np.asarray(margin.portfolio_margin_block_sparse(margin.sparse_block_positions(x, layout, dt),
                                                              layout.pnl_blocks(lm.astype(dt)), dtype=dt))
        np.testing.assert_allclose(got, dense, rtol=tol, atol=tol * max(1.0, float(np.abs(dense).max())))


def test_block_sparse_errors():
    rng = np.random.default_rng(24)
    x, lm = _book(rng, n=30)
    layout = margin.detect_block_layout(lm)
    ls = layout.pnl_blocks(lm)
    sp = margin.sparse_block_positions(x, layout, jnp.float64)
    err = margin.MarginInputError
    with pytest.raises(err, match="^positions"):
        margin.portfolio_margin_block_sparse(x, ls)
    with pytest.raises(err, match="^pnl_blocks"):
        margin.portfolio_margin_block_sparse(sp, ls[:3])
    with pytest.raises(err, match=r"^pnl_blocks\[1\]"):
        margin.portfolio_margin_block_sparse(sp, [ls[0], ls[1][:-1], ls[2], ls[3]])
    rows = list(sp.rows)
    rows[2] = np.asarray(rows[2]).copy()
    rows[2][0, 1] = np.nan
    with pytest.raises(err, match=r"^rows\[2\] at index \(0, 1\)"):
        margin.portfolio_margin_block_sparse(sp._replace(rows=tuple(rows)), ls)
    bad_l = [np.array(b) for b in ls]
    bad_l[0][0, 0] = np.inf
    with pytest.raises(err, match=r"^pnl_blocks\[0\]"):
        margin.portfolio_margin_block_sparse(sp, bad_l)
    idx = np.asarray(sp.index).copy()
    k = int(np.flatnonzero(idx[:, 3] >= 0)[-1])
    idx[k, 3] = sp.rows[3].shape[0]  # one past the end
    with pytest.raises(err, match=r"^index at index \(%d, 3\): row index out of range" % k):
        margin.portfolio_margin_block_sparse(sp._replace(index=idx), ls)
    idx = np.asarray(sp.index).copy()
    idx[idx[:, 0] >= 0, 0] = 0  # every holder points at row 0: not one-to-one
    with pytest.raises(err, match="^index.*block 0"):
        margin.portfolio_margin_block_sparse(sp._replace(index=idx), ls)
    with pytest.raises(err, match=r"^index: must have shape"):
        margin.portfolio_margin_block_sparse(sp._replace(index=np.asarray(sp.index)[:, :2]), ls)
    with pytest.raises(err, match="^addons"):
        margin.portfolio_margin_block_sparse(sp, ls, -np.ones(30))
    with pytest.raises(err, match="^addons"):
        margin.portfolio_margin_block_sparse(sp, ls, np.ones(29))
    with pytest.raises(err, match=r"^accounts\[0\].*out of range"):
        margin.sparse_block_positions_from_rows(3, [[0, 3]], [np.ones((2, 1))])
    with pytest.raises(err, match=r"^accounts\[0\].*ascending"):
        margin.sparse_block_positions_from_rows(3, [[1, 1]], [np.ones((2, 1))])
    with pytest.raises(err, match=r"^rows\[0\]"):
        margin.sparse_block_positions_from_rows(3, [[0, 1]], [np.ones((3, 1))])
    with pytest.raises(err, match=r"^position_blocks\[1\]"):
        margin.sparse_block_positions_from_blocks([np.ones((3, 1)), np.ones((2, 1))])


def test_block_sparse_index_error_names_account():
    sp = margin.sparse_block_positions_from_rows(5, [[0, 2, 4]], [np.ones((3, 2))], jnp.float64)
    idx = np.asarray(sp.index).copy()
    idx[[2, 4], 0] = [2, 1]  # rows of accounts 2 and 4 swapped: accounts no longer ascending
    with pytest.raises(margin.MarginInputError, match=r"^index at index \(2, 0\).*block 0") as e:
        margin.portfolio_margin_block_sparse(sp._replace(index=idx), [np.ones((2, 3))], dtype=jnp.float64)
    assert e.value.field == "index" and e.value.value == 2
    idx = np.asarray(sp.index).copy()
    idx[4, 0] = -1  # row 2 not referenced
    with pytest.raises(margin.MarginInputError, match="got 2 entries"):
        margin.portfolio_margin_block_sparse(sp._replace(index=idx), [np.ones((2, 3))], dtype=jnp.float64)
