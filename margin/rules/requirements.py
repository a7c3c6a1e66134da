"""Margin requirements for N accounts at once: isolated, cross, portfolio (scenario), IM/MM, VaR/ES.

Every requirement is one fused jitted kernel over all accounts (no Python loop over accounts):

    portfolio(x) = max(0, max_s -(x @ L)[s]) + add-on          x: (I,) positions, L: (I, S) per-unit P&L

or, for a block-structured scenario set (each underlying scanned on its own scenarios, so L is block-diagonal
after grouping; see :class:`BlockLayout`), the same worst loss from the non-zero blocks only:

    portfolio(x) = max(0, max_b max_{s in S_b} -(x[:, I_b] @ L[I_b, S_b])[s]) + add-on

and, when accounts hold only some of the blocks (:class:`SparseBlockPositions`: per block only the rows of the
accounts holding it, plus an (N, B) row index), the same maximum over the held blocks only
(:func:`portfolio_margin_block_sparse`: one dot + min per block over its stored rows, then a gather per account).

computed in chunks of at most ``chunk_size`` accounts (automatic by default) so the ``(chunk, S)`` intermediate
and device memory stay bounded for 10^6+ accounts. Positions are cast
to ``dtype`` (float32 default, float64 available). :func:`sharded_portfolio_margin` runs the same kernel with
accounts split over devices (``jax.sharding.Mesh`` + ``jax.shard_map``).

Losses are positive numbers; P&L gains are positive. Sources: CME SPAN "Risk Arrays" (worst scenario loss),
Deribit "Portfolio Margin" (IM = worst loss + add-ons, MM = mm_factor x IM); historical VaR/ES as in
Jorion, *Value at Risk* (3rd ed.), ch. 10; expected shortfall Acerbi & Tasche (2002); delta-normal VaR
RiskMetrics (1996).
"""
from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from margin.validation import MarginInputError, as_float_array, check_finite, check_nonnegative

__all__ = [
    "DEFAULT_CHUNK",
    "portfolio_margin",
    "portfolio_margin_reference",
    "portfolio_im_mm",
    "isolated_margin",
    "cross_margin",
    "CrossMarginResult",
    "net_gross_ratio",
    "historical_var_es",
    "parametric_var_es",
    "VarEs",
    "sharded_portfolio_margin",
    "streaming_pass",
    "BlockLayout",
    "block_layout",
    "detect_block_layout",
    "split_positions",
    "portfolio_margin_blocks",
    "SparseBlockPositions",
    "sparse_block_positions",
    "sparse_block_positions_from_blocks",
    "sparse_block_positions_from_rows",
    "portfolio_margin_block_sparse",
]

# Automatic chunking bound: at most this many (account x scenario) P&L elements live at once (2^25 float32 =
# 128 MiB): 10^6 accounts x 32 scenarios run as one fused call, 10^7 accounts in 10 blocks of one jitted
# fori_loop. Measured on 2 CPU cores: blocking into cache-sized chunks (lax.map / fori_loop over 1-16k rows) was
# 1.3-4x SLOWER than one fused matmul + min (XLA:CPU loop bodies run smaller GEMMs), and host-side chunking
# (slicing + device_put per chunk) was ~10x slower (fresh-page copies), so chunks are large and only bound memory.
# Why (jax 0.10.2, XLA:CPU, 2 cores, issue 13 item 5): the dot + min over scenarios + clip + add-on compile to ONE
# YNNPACK custom fusion (``__ynn_fusion`` in the optimized HLO), so the (N, S) P&L is never written; the dense
# kernel ran at 0.76-0.95 of the 4096^2 sgemm rate of the same rounds (sgemm 350-410 GFLOP/s), and the block
# kernel's B dots fuse the same way. The dense gap is the memory stream, not the fusion: the same kernel called
# 61 times on one cache-resident 16,384-row chunk ran at 388 GFLOP/s (0.98 of sgemm), while 10^6 rows stream
# 256 MB of positions from DRAM (one streaming pass alone takes 8-9 ms of the ~25 ms). Measured on the
# 1,000,000 x 4 x 16 x 16 book and rejected: a batched einsum 'nbi,bis->nbs' / 'bni,bis->bns' (not fused: 37x /
# 11x slower than the block kernel), scenario-major 'ni,is->sn' (22x), pairing blocks into 32 x 32
# block-diagonal dots (6x), row slices inside the kernel (they break the fusion: 5-7x, also unrolled static
# chunks), fori_loop / lax.map over 8k-128k-row chunks, with or without copying each chunk into its own buffer
# (block 1.3-2.5x, dense 1.0-2.7x slower), per-executable XLA options (ynn/xnn fusion types, fast min/max,
# 512-bit vectors: within +-3%, noise).
# Block-sparse positions (issue 13 item 5, same machine, load 2.4-5): the fused (n, 16) @ (16, 16) dot + min
# runs at ~70 GFLOP/s under load, linear in n (0.125M-2M rows), i.e. the narrow block dots are limited by the
# dot itself rather than by DRAM (a plain streaming pass over the same bytes is 2-4x faster); so the
# block-sparse kernel's dot time is the block kernel's times the stored fraction, plus ~2 ms per 10^6 accounts for
# the gather-combine (4 gathers + min + clip, one parallel loop fusion). Rejected: one (N, B) gather from the
# concatenated per-row worst values (1.5-2x slower than one gather per block: the concatenate is a copy), a
# +inf sentinel row appended per block (a copy per block, 2x slower than a select on index < 0), and k adjacent
# rows per dot against kron(I_k, L_b) (a free reshape, k = 2, 4, 8: 4-7x slower, YNN picks a slow path).
# Dense kernel vs sgemm (timeboxed, 20 min): positions in 2 MiB transparent huge pages (mmap + MADV_HUGEPAGE,
# passed to JAX zero-copy by DLPack), the "NT" dot_general against L^T, max of x @ (-L), Precision.HIGHEST: all
# within noise of the dense kernel (1-3%); sgemm / dense stayed 1.1-1.27 in the quieter rounds.
MAX_CHUNK_ELEMENTS = 1 << 25
DEFAULT_CHUNK = None


# ----------------------------------------------------------------------------- validation helpers
def _check_fast_finite(field: str, x) -> None:
    """Finite check in one streaming pass; the (slow) index search only runs when something is wrong."""
    if isinstance(x, jax.Array):
        if not bool(_all_finite(x)):
            check_finite(field, np.asarray(x))
    else:
        check_finite(field, x)


@jax.jit
def _all_finite(x):
    return jnp.all(jnp.isfinite(x))


def _prep(positions, pnl, addons, dtype, validate):
    if hasattr(pnl, "pnl"):  # a ScenarioSet
        pnl = pnl.pnl
    if validate:
        if not isinstance(positions, jax.Array):
            positions = as_float_array("positions", positions)
        _check_fast_finite("positions", positions)
        _check_fast_finite("pnl", pnl)
    if np.ndim(positions) != 2:
        raise MarginInputError("positions", f"must have shape (N, I), got {np.shape(positions)}")
    if np.ndim(pnl) != 2:
        raise MarginInputError("pnl", f"must have shape (I, S), got {np.shape(pnl)}")
    n, i = np.shape(positions)
    if np.shape(pnl)[0] != i:
        raise MarginInputError("pnl", f"must have shape ({i}, S) to match positions (N, {i}), got {np.shape(pnl)}")
    x = jnp.asarray(positions, dtype)
    lmat = jnp.asarray(pnl, dtype)
    if addons is None:
        a = jnp.zeros((n,), dtype)
    else:
        a_np = check_nonnegative("addons", addons) if validate else np.asarray(addons)
        if np.shape(a_np) not in ((n,), ()):
            raise MarginInputError("addons", f"must have shape ({n},) or (), got {np.shape(a_np)}")
        a = jnp.broadcast_to(jnp.asarray(a_np, dtype), (n,))
    return x, lmat, a


def _chunk(n: int, n_scen: int, chunk_size: int | None) -> int:
    c = max(1, MAX_CHUNK_ELEMENTS // max(n_scen, 1)) if chunk_size is None else int(chunk_size)
    if c < 1:
        raise MarginInputError("chunk_size", "must be >= 1", None, chunk_size)
    return max(1, min(c, n))


def _rows_chunked(row_fn, x, chunk: int):
    """Applies ``row_fn: (c, I) -> tuple of (c,) arrays`` to row blocks of ``chunk`` accounts inside one jitted
    program (``lax.fori_loop`` + ``dynamic_slice``; the remainder block is a static slice), writing into
    preallocated ``(N,)`` outputs, so the ``(chunk, S)`` intermediate is the only scenario-sized buffer."""
    n = x.shape[0]
    if chunk >= n:
        return row_fn(x)
    nb, rem = divmod(n, chunk)
    probe = jax.eval_shape(row_fn, jax.ShapeDtypeStruct((chunk, x.shape[1]), x.dtype))
    init = tuple(jnp.zeros((n,), p.dtype) for p in probe)

    def body(b, outs):
        xc = jax.lax.dynamic_slice_in_dim(x, b * chunk, chunk, 0)
        res = row_fn(xc)
        return tuple(jax.lax.dynamic_update_slice_in_dim(o, r, b * chunk, 0) for o, r in zip(outs, res))

    outs = jax.lax.fori_loop(0, nb, body, init)
    if rem:
        tail = row_fn(x[nb * chunk:])
        outs = tuple(o.at[nb * chunk:].set(t) for o, t in zip(outs, tail))
    return outs


# ----------------------------------------------------------------------------- portfolio margin
def _worst_loss_rows(x, lmat):
    # x: (c, I) -> (c,) worst loss clipped at 0
    return jnp.maximum(-jnp.min(x @ lmat, axis=-1), 0)


@jax.jit
def _portfolio_kernel(x, addons, lmat):
    # one fused kernel: (N, I) @ (I, S) -> min over S -> clip -> + add-on
    return _worst_loss_rows(x, lmat) + addons


@partial(jax.jit, static_argnames=("chunk",))
def _portfolio_chunked(x, addons, lmat, chunk):
    (worst,) = _rows_chunked(lambda xc: (_worst_loss_rows(xc, lmat),), x, chunk)
    return worst + addons


def portfolio_margin(positions, pnl, addons=None, *, chunk_size=None, dtype=jnp.float32, validate=True,
                     blocks=None):
    """Scenario-based portfolio margin of N accounts: worst scenario loss (>= 0) plus add-ons.

    Args:
        positions: ``(N, I)`` signed positions in units of each instrument (NumPy or JAX array).
        pnl: ``(I, S)`` per-unit scenario P&L (or a :class:`~margin.valuation.scenarios.ScenarioSet`), settlement unit.
        addons: ``(N,)`` or scalar non-negative add-ons in the same unit (e.g. short-option minimum, roll and
            delta shocks), default 0.
        chunk_size: accounts per kernel call (default: automatic, at most ``MAX_CHUNK_ELEMENTS / S``); bounds
            the ``(chunk, S)`` intermediate so memory stays bounded for 10^6+ accounts (one jitted loop over
            blocks; no Python loop).
        dtype: ``jnp.float32`` (default) or ``jnp.float64``.
        validate: run the host-side input checks (one extra streaming pass over ``positions``).
        blocks: ``None`` (dense kernel), a :class:`BlockLayout` or ``"auto"`` (:func:`detect_block_layout`):
            only the non-zero (instrument block x scenario block) sub-matrices of ``pnl`` are multiplied
            (:func:`portfolio_margin_blocks`); equal to the dense result. The positions are first copied into
            block-major arrays (:func:`split_positions`); callers that read positions per block should call
            :func:`portfolio_margin_blocks` directly and skip that copy (on XLA:CPU the copy costs more than the
            arithmetic it saves: ``experiments.bench_margin`` measures both paths).

    Returns:
        ``(N,)`` requirement in the unit of ``pnl`` (positive = margin needed), ``dtype``.

    Raises:
        MarginInputError (ValueError) naming field and index: NaN/inf, shape mismatch, negative add-ons, a
        non-zero ``pnl`` entry outside the given block layout.
    """
    x, lmat, a = _prep(positions, pnl, addons, dtype, validate)
    if blocks is not None:
        lm_np = np.asarray(lmat)
        layout = detect_block_layout(lm_np) if isinstance(blocks, str) and blocks == "auto" else blocks
        if not isinstance(layout, BlockLayout):
            raise MarginInputError("blocks", "must be None, 'auto' or a BlockLayout", None, blocks)
        if validate:
            _check_layout(layout, lm_np)
        return portfolio_margin_blocks(split_positions(x, layout, dtype), layout.pnl_blocks(lm_np), a,
                                       chunk_size=chunk_size, dtype=dtype, validate=False)
    chunk = _chunk(x.shape[0], lmat.shape[1], chunk_size)
    if chunk >= x.shape[0]:
        return _portfolio_kernel(x, a, lmat)
    return _portfolio_chunked(x, a, lmat, chunk)


def portfolio_margin_reference(positions, pnl, addons=None) -> np.ndarray:
    """Per-account Python loop reference (float64) for :func:`portfolio_margin`."""
    pos = np.asarray(positions, float)
    lm = np.asarray(getattr(pnl, "pnl", pnl), float)
    out = np.empty(pos.shape[0])
    for k in range(pos.shape[0]):
        worst = 0.0
        for s in range(lm.shape[1]):
            p = 0.0
            for i in range(lm.shape[0]):
                p += pos[k, i] * lm[i, s]
            worst = max(worst, -p)
        out[k] = worst + (0.0 if addons is None else float(np.broadcast_to(addons, out.shape)[k]))
    return out


def portfolio_im_mm(positions, pnl, addons=None, *, mm_factor: float = 0.8, chunk_size=None, dtype=jnp.float32,
                    blocks=None):
    """Initial and maintenance margin of a scenario model: IM = worst loss + add-ons, MM = mm_factor x IM
    (Deribit portfolio margin, ``mm_factor`` 0.8 in ``private/pme/simulate``). ``blocks`` as in
    :func:`portfolio_margin`.

    Returns:
        ``(im, mm)``, each ``(N,)`` in the unit of ``pnl``.
    """
    if not 0 < mm_factor <= 1:
        raise MarginInputError("mm_factor", "must lie in (0, 1]", None, mm_factor)
    im = portfolio_margin(positions, pnl, addons, chunk_size=chunk_size, dtype=dtype, blocks=blocks)
    return im, im * jnp.asarray(mm_factor, dtype)


# ----------------------------------------------------------------------------- block-structured scenario sets
class BlockLayout(NamedTuple):
    """Block structure of an ``(I, S)`` per-unit P&L matrix: block b couples the instruments ``instruments[b]``
    with the scenarios ``scenarios[b]`` only, and every entry outside the blocks is zero.

    This is the shape of real scenario sets: CME SPAN scans each combined commodity on its own 16 scenarios
    (CME "Risk Arrays"), Deribit portfolio margin scans each currency's book separately (Deribit "Portfolio
    Margin"). With U underlyings of equal size the dense matmul does U times the arithmetic it needs.

    Attributes:
        instruments: per block an int64 array ``(I_b,)`` of instrument (row) indices; blocks are disjoint.
        scenarios: per block an int64 array ``(S_b,)`` of scenario (column) indices; disjoint.
    """

    instruments: tuple
    scenarios: tuple

    @property
    def n_blocks(self) -> int:
        return len(self.instruments)

    def pnl_blocks(self, pnl) -> tuple:
        """The ``(I_b, S_b)`` sub-matrices of ``pnl`` (NumPy, same dtype)."""
        lm = np.asarray(getattr(pnl, "pnl", pnl))
        return tuple(np.ascontiguousarray(lm[np.ix_(i, s)]) for i, s in zip(self.instruments, self.scenarios))

    def flop_fraction(self, n_instruments: int, n_scenarios: int) -> float:
        """Arithmetic of the block kernel as a fraction of the dense ``I x S`` kernel."""
        work = sum(len(i) * len(s) for i, s in zip(self.instruments, self.scenarios))
        return work / max(1, n_instruments * n_scenarios)


def block_layout(instrument_underlying, scenario_underlying) -> BlockLayout:
    """Layout from labels: instrument i and scenario s share a block when they have the same underlying label.

    Args:
        instrument_underlying: ``(I,)`` underlying label per instrument (e.g. ``Instruments.underlying``).
        scenario_underlying: ``(S,)`` underlying label per scenario (the underlying that scenario scans).

    Returns:
        :class:`BlockLayout` with one block per label present in both (in sorted label order).
    """
    iu = np.asarray(instrument_underlying)
    su = np.asarray(scenario_underlying)
    if iu.ndim != 1 or su.ndim != 1:
        raise MarginInputError("block_layout", f"labels must be 1-D, got shapes {iu.shape} and {su.shape}")
    labels = [u for u in np.unique(iu) if (su == u).any()]
    return BlockLayout(tuple(np.flatnonzero(iu == u) for u in labels),
                       tuple(np.flatnonzero(su == u) for u in labels))


def detect_block_layout(pnl, atol: float = 0.0) -> BlockLayout:
    """Finds the finest block layout of ``pnl`` from its non-zero pattern (|L| > ``atol``): the connected
    components of the bipartite instrument-scenario graph (``scipy.sparse.csgraph.connected_components``).
    All-zero rows and columns belong to no block (they cannot change the worst loss).

    Args:
        pnl: ``(I, S)`` per-unit P&L or a :class:`~margin.valuation.scenarios.ScenarioSet`.

    Returns:
        :class:`BlockLayout` (one block when the matrix is dense).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    lm = np.asarray(getattr(pnl, "pnl", pnl))
    if lm.ndim != 2:
        raise MarginInputError("pnl", f"must have shape (I, S), got {lm.shape}")
    n_i, n_s = lm.shape
    r, c = np.nonzero(np.abs(lm) > atol)
    graph = coo_matrix((np.ones(r.size), (r, n_i + c)), shape=(n_i + n_s, n_i + n_s))
    _, comp = connected_components(graph, directed=False)
    used_i = np.zeros(n_i, bool)
    used_i[r] = True
    used_s = np.zeros(n_s, bool)
    used_s[c] = True
    ci, cs = comp[:n_i], comp[n_i:]
    labels = np.unique(ci[used_i])
    return BlockLayout(tuple(np.flatnonzero((ci == k) & used_i) for k in labels),
                       tuple(np.flatnonzero((cs == k) & used_s) for k in labels))


def _check_layout(layout: BlockLayout, lm: np.ndarray) -> None:
    n_i, n_s = lm.shape
    inside = np.zeros(lm.shape, bool)
    seen_i = np.zeros(n_i, int)
    seen_s = np.zeros(n_s, int)
    for i, s in zip(layout.instruments, layout.scenarios):
        i, s = np.asarray(i), np.asarray(s)
        if (i.size and (i.min() < 0 or i.max() >= n_i)) or (s.size and (s.min() < 0 or s.max() >= n_s)):
            raise MarginInputError("blocks", f"index out of range for pnl of shape {lm.shape}")
        inside[np.ix_(i, s)] = True
        seen_i[i] += 1
        seen_s[s] += 1
    if (seen_i > 1).any() or (seen_s > 1).any():
        which = ("instrument", int(np.argmax(seen_i > 1))) if (seen_i > 1).any() else \
            ("scenario", int(np.argmax(seen_s > 1)))
        raise MarginInputError("blocks", f"{which[0]} {which[1]} belongs to more than one block")
    bad = ~inside & (lm != 0)
    if bad.any():
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        raise MarginInputError("pnl", "non-zero entry outside the block layout", i, float(lm[i]))


def split_positions(positions, layout: BlockLayout, dtype=jnp.float32) -> tuple:
    """Copies ``(N, I)`` positions into block-major contiguous arrays ``(N, I_b)``, one per block (the layout
    the block kernel reads at full speed; column slices inside the kernel are strided and 3x slower)."""
    idx = [np.asarray(i, np.int64) for i in layout.instruments]
    # contiguous index runs become slices (a plain copy; a gather is ~10x slower on XLA:CPU)
    sel = tuple(("slice", int(i[0]), int(i[-1]) + 1) if i.size and np.array_equal(i, np.arange(i[0], i[-1] + 1))
                else ("take",) + tuple(int(j) for j in i) for i in idx)
    if isinstance(positions, jax.Array):
        return _split_jit(positions, sel, dtype)
    x = np.asarray(positions)
    return tuple(jnp.asarray(np.ascontiguousarray(x[:, s[1]:s[2]] if s[0] == "slice" else x[:, list(s[1:])]),
                             dtype) for s in sel)


@partial(jax.jit, static_argnames=("sel", "dtype"))
def _split_jit(x, sel, dtype):
    out = [x[:, s[1]:s[2]] if s[0] == "slice" else jnp.take(x, jnp.asarray(s[1:]), axis=1) for s in sel]
    return tuple(o.astype(dtype) for o in out)


def _block_worst_rows(xs, ls):
    # xs: per block (c, I_b); ls: per block (I_b, S_b) -> (c,) worst loss over all blocks' scenarios, clipped at 0
    worst = None
    for xb, lb in zip(xs, ls):
        m = jnp.min(xb @ lb, axis=1)
        worst = m if worst is None else jnp.minimum(worst, m)
    return jnp.maximum(-worst, 0)


@jax.jit
def _block_kernel(xs, addons, ls):
    return _block_worst_rows(xs, ls) + addons


@partial(jax.jit, static_argnames=("chunk",))
def _block_chunked(xs, addons, ls, chunk):
    n = xs[0].shape[0]
    nb, rem = divmod(n, chunk)

    def body(b, out):
        xc = [jax.lax.dynamic_slice_in_dim(xb, b * chunk, chunk, 0) for xb in xs]
        return jax.lax.dynamic_update_slice_in_dim(out, _block_worst_rows(xc, ls), b * chunk, 0)

    out = jax.lax.fori_loop(0, nb, body, jnp.zeros((n,), addons.dtype))
    if rem:
        out = out.at[nb * chunk:].set(_block_worst_rows([xb[nb * chunk:] for xb in xs], ls))
    return out + addons


def _block_addons(addons, n: int, dtype, validate: bool) -> jax.Array:
    """Add-ons of the block kernels: ``()`` zero for None, else the checked scalar or ``(n,)`` array in ``dtype``
    (no add-ons / a scalar stay shape () and broadcast inside the kernel: no (N,) buffer per call)."""
    if addons is None:
        return jnp.zeros((), dtype)
    a_np = check_nonnegative("addons", addons) if validate and not isinstance(addons, jax.Array) else addons
    if np.shape(a_np) not in ((n,), ()):
        raise MarginInputError("addons", f"must have shape ({n},) or (), got {np.shape(a_np)}")
    return jnp.asarray(a_np, dtype)


def portfolio_margin_blocks(position_blocks, pnl_blocks, addons=None, *, chunk_size=None, dtype=jnp.float32,
                            validate=True):
    """Portfolio margin from a block-structured scenario set, multiplying only the non-zero blocks.

    worst = max(0, max_b max_{s in S_b} -(x_b @ L_b)[s]), equal to :func:`portfolio_margin` on the dense matrix
    that holds the blocks and zeros elsewhere (that dense kernel is the reference in the tests).

    Args:
        position_blocks: sequence of B arrays ``(N, I_b)``: each block's positions (e.g. one underlying's
            instruments), block-major so each matmul reads contiguous memory.
        pnl_blocks: sequence of B arrays ``(I_b, S_b)``: each block's per-unit scenario P&L.
        addons, chunk_size, dtype, validate: as in :func:`portfolio_margin` (the chunk bound uses max S_b).

    Returns:
        ``(N,)`` requirement in the unit of the P&L, ``dtype``.

    Raises:
        MarginInputError naming the block and field: shape mismatches, NaN/inf, negative add-ons.
    """
    xs, ls = list(position_blocks), list(pnl_blocks)
    if len(xs) != len(ls) or not xs:
        raise MarginInputError("position_blocks", f"need one positions block per P&L block (>= 1), got "
                                                  f"{len(xs)} and {len(ls)}")
    n = np.shape(xs[0])[0] if np.ndim(xs[0]) == 2 else -1
    for b, (xb, lb) in enumerate(zip(xs, ls)):
        if np.ndim(xb) != 2 or np.shape(xb)[0] != n:
            raise MarginInputError(f"position_blocks[{b}]", f"must have shape ({n}, I_b), got {np.shape(xb)}")
        if np.ndim(lb) != 2 or np.shape(lb)[0] != np.shape(xb)[1]:
            raise MarginInputError(f"pnl_blocks[{b}]", f"must have shape ({np.shape(xb)[1]}, S_b), got "
                                                       f"{np.shape(lb)}")
        if validate:
            _check_fast_finite(f"position_blocks[{b}]", xb)
            _check_fast_finite(f"pnl_blocks[{b}]", lb)
    xs = [jnp.asarray(xb, dtype) for xb in xs]
    ls = [jnp.asarray(lb, dtype) for lb in ls]
    a = _block_addons(addons, n, dtype, validate)
    chunk = _chunk(n, max(int(np.shape(lb)[1]) for lb in ls), chunk_size)
    if chunk >= n:
        return _block_kernel(xs, a, ls)
    return _block_chunked(xs, a, ls, chunk)


# ----------------------------------------------------------------------------- block-sparse positions
class SparseBlockPositions(NamedTuple):
    """Block-sparse positions: each block b stores only the accounts that hold it.

    Real books are sparse in underlyings as well as in scenarios: an account trades a few of the venue's
    underlyings (CME SPAN combined commodities, Deribit currencies), so most of its per-block position rows are
    zero. The block kernel (:func:`portfolio_margin_blocks`) still reads them; this layout does not.

    Attributes:
        rows: per block b an array ``(N_b, I_b)`` (float32 / float64; units of each instrument) holding the
            positions in block b's instruments of the ``N_b`` accounts that hold block b, in ascending account
            order (row r of block b belongs to the r-th such account).
        index: ``(N, B)`` int32: ``index[k, b]`` is the row of account k in ``rows[b]``, or -1 when account k
            does not hold block b. Each block's non-negative entries, read in account order, are
            ``0, 1, ..., N_b - 1`` (one row per holding account; checked by :func:`portfolio_margin_block_sparse`).
    """

    rows: tuple
    index: object

    @property
    def n_accounts(self) -> int:
        return int(np.shape(self.index)[0])

    @property
    def n_blocks(self) -> int:
        return len(self.rows)

    def stored_fraction(self) -> float:
        """Stored position entries as a fraction of the block-major (``N x sum I_b``) arrays."""
        full = self.n_accounts * sum(int(np.shape(r)[1]) for r in self.rows)
        return sum(int(np.size(r)) for r in self.rows) / max(1, full)

    def nbytes(self) -> int:
        """Bytes of the stored rows and the index (what the kernel reads besides the P&L blocks)."""
        return sum(int(np.size(r)) * np.dtype(r.dtype).itemsize for r in self.rows) + int(np.size(self.index)) * 4


def sparse_block_positions_from_rows(n_accounts: int, accounts, rows, dtype=jnp.float32) -> SparseBlockPositions:
    """Block-sparse positions from per-block account ids and rows (e.g. one underlying's rows of a venue book).

    Args:
        n_accounts: N, the number of accounts (ids ``0 .. N-1``).
        accounts: per block b an int array ``(N_b,)`` of the distinct account ids holding block b, ascending.
        rows: per block b an array ``(N_b, I_b)`` of those accounts' positions in block b's instruments.
        dtype: float dtype of the stored rows.

    Returns:
        :class:`SparseBlockPositions` (rows on device as ``dtype``, index ``(N, B)`` int32 on device).

    Raises:
        MarginInputError naming ``accounts[b]`` / ``rows[b]``: shapes, ids out of range, not strictly ascending.
    """
    accounts, rows = list(accounts), list(rows)
    n = int(n_accounts)
    if n < 0 or n >= 2 ** 31:
        raise MarginInputError("n_accounts", "must lie in [0, 2^31)", None, n_accounts)
    if len(accounts) != len(rows) or not rows:
        raise MarginInputError("accounts", f"need one account-id array per rows block (>= 1), got {len(accounts)} "
                                           f"and {len(rows)}")
    index = np.full((n, len(rows)), -1, np.int32)
    out = []
    for b, (acc, r) in enumerate(zip(accounts, rows)):
        acc = np.asarray(acc)
        if acc.size == 0:
            acc = acc.astype(np.int64)  # e.g. [] (no account holds block b)
        if acc.ndim != 1 or not np.issubdtype(acc.dtype, np.integer):
            raise MarginInputError(f"accounts[{b}]", f"must be a 1-D integer array, got {acc.dtype} {acc.shape}")
        if np.ndim(r) != 2 or np.shape(r)[0] != acc.size:
            raise MarginInputError(f"rows[{b}]", f"must have shape ({acc.size}, I_b), got {np.shape(r)}")
        if acc.size:
            if acc.min() < 0 or acc.max() >= n:
                j = int(np.argmax((acc < 0) | (acc >= n)))
                raise MarginInputError(f"accounts[{b}]", f"account id out of range [0, {n})", (j,), int(acc[j]))
            if acc.size > 1 and not (np.diff(acc) > 0).all():
                j = int(np.argmax(np.diff(acc) <= 0)) + 1
                raise MarginInputError(f"accounts[{b}]", "account ids must be strictly ascending", (j,), int(acc[j]))
        index[acc, b] = np.arange(acc.size, dtype=np.int32)
        out.append(jnp.asarray(r, dtype))
    return SparseBlockPositions(tuple(out), jnp.asarray(index))


def sparse_block_positions(positions, layout: BlockLayout, dtype=jnp.float32) -> SparseBlockPositions:
    """Block-sparse positions from dense ``(N, I)`` positions: account k holds block b when any of its positions
    in ``layout.instruments[b]`` is non-zero.

    Args:
        positions: ``(N, I)`` signed positions (NumPy or JAX; copied to the host once).
        layout: the :class:`BlockLayout` of the P&L matrix.
        dtype: float dtype of the stored rows.

    Returns:
        :class:`SparseBlockPositions`.
    """
    x = np.asarray(positions)
    if x.ndim != 2:
        raise MarginInputError("positions", f"must have shape (N, I), got {x.shape}")
    idx = [np.asarray(i, np.int64) for i in layout.instruments]
    for i in idx:
        if i.size and (i.min() < 0 or i.max() >= x.shape[1]):
            raise MarginInputError("blocks", f"instrument index out of range for positions of shape {x.shape}")
    return sparse_block_positions_from_blocks([x[:, i] for i in idx], dtype)


def sparse_block_positions_from_blocks(position_blocks, dtype=jnp.float32) -> SparseBlockPositions:
    """Block-sparse positions from block-major ``(N, I_b)`` arrays (e.g. :func:`split_positions`): the rows of
    each block that are not all zero are kept.

    Args:
        position_blocks: sequence of B arrays ``(N, I_b)`` (NumPy or JAX; copied to the host once).
        dtype: float dtype of the stored rows.

    Returns:
        :class:`SparseBlockPositions`.
    """
    xs = [np.asarray(xb) for xb in position_blocks]
    if not xs:
        raise MarginInputError("position_blocks", "need at least one block")
    n = xs[0].shape[0] if xs[0].ndim == 2 else -1
    for b, xb in enumerate(xs):
        if xb.ndim != 2 or xb.shape[0] != n:
            raise MarginInputError(f"position_blocks[{b}]", f"must have shape ({n}, I_b), got {xb.shape}")
    accounts = [np.flatnonzero((xb != 0).any(axis=1)) for xb in xs]
    return sparse_block_positions_from_rows(n, accounts, [xb[a] for xb, a in zip(xs, accounts)], dtype)


def _check_sparse_index(index: np.ndarray, sizes: list) -> None:
    n_b = np.asarray(sizes)
    bad = (index < -1) | (index >= n_b[None, :])
    if bad.any():
        k, b = (int(j) for j in np.argwhere(bad)[0])
        raise MarginInputError("index", f"row index out of range [-1, {sizes[b]}) of rows[{b}]", (k, b),
                               int(index[k, b]))
    for b, size in enumerate(sizes):
        accounts = np.flatnonzero(index[:, b] >= 0)
        held = index[accounts, b]
        m = min(held.size, size)
        wrong = np.flatnonzero(held[:m] != np.arange(m))
        if wrong.size or held.size != size:
            at = (int(accounts[wrong[0]]), b) if wrong.size else None
            raise MarginInputError("index", f"block {b}: the non-negative entries in account order must be "
                                            f"0 .. {size - 1} (one row per holding account, ascending accounts); "
                                            f"got {held.size} entries", at,
                                   None if at is None else int(index[at]))


def _sparse_worst_rows(rows, index, ls):
    # rows: per block (N_b, I_b); index (N, B) int32, -1 = not held; ls: per block (I_b, S_b) -> (N,) clipped
    worst = None
    for b, (rb, lb) in enumerate(zip(rows, ls)):
        if rb.shape[0] == 0:  # no account holds block b (static shape): nothing to gather
            continue
        m = jnp.min(rb @ lb, axis=1)  # (N_b,) one fused dot + min per block, as in the block kernel
        i = index[:, b]
        # gather (not scatter): each account reads its row's worst P&L; a block it does not hold cannot lower
        # the min below 0 in the dense kernel (its P&L there is 0), so it contributes +inf before the clip
        g = jnp.where(i < 0, jnp.inf, m.at[jnp.maximum(i, 0)].get(mode="promise_in_bounds"))
        worst = g if worst is None else jnp.minimum(worst, g)
    if worst is None:
        return jnp.zeros((index.shape[0],), ls[0].dtype)
    return jnp.maximum(-worst, 0)


@jax.jit
def _block_sparse_kernel(rows, index, addons, ls):
    return _sparse_worst_rows(rows, index, ls) + addons


def portfolio_margin_block_sparse(positions: SparseBlockPositions, pnl_blocks, addons=None, *, dtype=jnp.float32,
                                  validate=True):
    """Portfolio margin from block-sparse positions: one matmul + min per block over the accounts that hold it.

    worst_k = max(0, max_{b held by k} max_{s in S_b} -(x_{k,b} @ L_b)[s]), equal to :func:`portfolio_margin` on
    the dense ``(N, I)`` positions (zeros in the blocks an account does not hold) and the dense P&L matrix that
    holds the blocks and zeros elsewhere (the reference in the tests). The worst loss over each block's own
    scenarios is CME SPAN's scan risk per combined commodity (CME "Risk Arrays") and Deribit portfolio margin's
    worst loss per currency (Deribit "Portfolio Margin"); IM = worst loss + add-ons.

    Per block the kernel computes ``min_s (rows[b] @ L_b)`` for the ``N_b`` stored rows (one fused dot + min on
    XLA:CPU) and each account then gathers its row's value through ``index[:, b]`` (max of the losses over the
    blocks; no scatter: an XLA:CPU scatter costs ~7 ns per update, the gather fuses with the combine). It reads
    ``sum_b N_b I_b`` position entries plus the ``(N, B)`` index instead of the ``N sum_b I_b`` entries of the
    block kernel. The ``(N_b, S_b)`` P&L is not written when the dot and the min fuse (float32); no chunking:
    bound memory by passing shards of accounts.

    Args:
        positions: :class:`SparseBlockPositions` (:func:`sparse_block_positions`,
            :func:`sparse_block_positions_from_blocks` or :func:`sparse_block_positions_from_rows`).
        pnl_blocks: sequence of B arrays ``(I_b, S_b)``: each block's per-unit scenario P&L in the settlement
            unit (e.g. :meth:`BlockLayout.pnl_blocks`).
        addons: ``None``, a scalar or ``(N,)`` non-negative add-ons in the unit of the P&L.
        dtype: ``jnp.float32`` (default) or ``jnp.float64``.
        validate: check rows and P&L for NaN/inf, the index for range and one-to-one mapping, add-ons >= 0.

    Returns:
        ``(N,)`` requirement in the unit of the P&L (positive = margin needed), ``dtype``.

    Raises:
        MarginInputError naming the field: ``positions`` / ``rows[b]`` / ``pnl_blocks[b]`` / ``index`` /
        ``addons`` for bad shapes, indices out of range or not one-to-one, NaN/inf, negative add-ons.
    """
    if not isinstance(positions, SparseBlockPositions):
        raise MarginInputError("positions", "must be a SparseBlockPositions (see sparse_block_positions)", None,
                               type(positions).__name__)
    rows, ls, index = list(positions.rows), list(pnl_blocks), positions.index
    if len(rows) != len(ls) or not rows:
        raise MarginInputError("pnl_blocks", f"need one P&L block per rows block (>= 1), got {len(ls)} and "
                                             f"{len(rows)}")
    if np.ndim(index) != 2 or np.shape(index)[1] != len(rows):
        raise MarginInputError("index", f"must have shape (N, {len(rows)}), got {np.shape(index)}")
    if not np.issubdtype(np.dtype(index.dtype), np.integer):
        raise MarginInputError("index", f"must be an integer array, got {index.dtype}")
    n = int(np.shape(index)[0])
    for b, (rb, lb) in enumerate(zip(rows, ls)):
        if np.ndim(rb) != 2:
            raise MarginInputError(f"rows[{b}]", f"must have shape (N_b, I_b), got {np.shape(rb)}")
        if np.ndim(lb) != 2 or np.shape(lb)[0] != np.shape(rb)[1]:
            raise MarginInputError(f"pnl_blocks[{b}]", f"must have shape ({np.shape(rb)[1]}, S_b), got "
                                                       f"{np.shape(lb)}")
        if validate:
            _check_fast_finite(f"rows[{b}]", rb)
            _check_fast_finite(f"pnl_blocks[{b}]", lb)
    if validate:
        _check_sparse_index(np.asarray(index), [int(np.shape(rb)[0]) for rb in rows])
    a = _block_addons(addons, n, dtype, validate)
    rows = tuple(jnp.asarray(rb, dtype) for rb in rows)
    ls = tuple(jnp.asarray(lb, dtype) for lb in ls)
    return _block_sparse_kernel(rows, jnp.asarray(index, jnp.int32), a, ls)


# ----------------------------------------------------------------------------- isolated / cross
def _unit_worst(lmat):
    """Worst loss per unit long (I,) and per unit short (I,), each >= 0."""
    long_worst = jnp.maximum(-jnp.min(lmat, axis=1), 0)
    short_worst = jnp.maximum(jnp.max(lmat, axis=1), 0)
    return long_worst, short_worst


@jax.jit
def _isolated_kernel(x, lmat):
    lw, sw = _unit_worst(lmat)
    return jnp.maximum(x, 0) @ lw + jnp.maximum(-x, 0) @ sw


@jax.jit
def _isolated_positions_kernel(x, lmat):
    lw, sw = _unit_worst(lmat)
    return jnp.maximum(x, 0) * lw + jnp.maximum(-x, 0) * sw


def isolated_margin(positions, pnl, *, per_position: bool = False, dtype=jnp.float32, validate=True):
    """Isolated margin: each position margined alone against the same scenarios.

    isolated(x)_i = max(0, max_s -x_i L[i, s]) = x_i+ worst_long_i + x_i- worst_short_i; the account figure is
    the sum over positions (the "gross" requirement).

    Args:
        per_position: return the ``(N, I)`` per-position requirements instead of the ``(N,)`` sums.
        Others as :func:`portfolio_margin` (no add-ons).

    Returns:
        ``(N,)`` (or ``(N, I)``) in the unit of ``pnl``.
    """
    x, lmat, _ = _prep(positions, pnl, None, dtype, validate)
    return _isolated_positions_kernel(x, lmat) if per_position else _isolated_kernel(x, lmat)


class CrossMarginResult(NamedTuple):
    """requirement: (N,) sum of per-position requirements; equity: (N,) collateral + unrealised P&L;
    excess: (N,) equity - requirement; sufficient: (N,) bool, equity >= requirement."""

    requirement: jax.Array
    equity: jax.Array
    excess: jax.Array
    sufficient: jax.Array


@jax.jit
def _cross_kernel(x, lmat, coll, upnl):
    req = _isolated_kernel(x, lmat)
    eq = coll + upnl
    return CrossMarginResult(req, eq, eq - req, eq >= req)


def cross_margin(positions, pnl, collateral, unrealised_pnl=None, *, dtype=jnp.float32):
    """Cross margin: positions' (isolated) requirements summed against one shared collateral pool.

    Args:
        positions: ``(N, I)``; pnl: ``(I, S)`` or ScenarioSet.
        collateral: ``(N,)`` collateral value in the unit of ``pnl``.
        unrealised_pnl: ``(N,)`` unrealised P&L in the same unit (default 0).

    Returns:
        :class:`CrossMarginResult`.
    """
    x, lmat, _ = _prep(positions, pnl, None, dtype, True)
    n = x.shape[0]
    coll = check_finite("collateral", collateral)
    if coll.shape != (n,):
        raise MarginInputError("collateral", f"must have shape ({n},), got {coll.shape}")
    up = np.zeros(n) if unrealised_pnl is None else check_finite("unrealised_pnl", unrealised_pnl)
    if up.shape != (n,):
        raise MarginInputError("unrealised_pnl", f"must have shape ({n},), got {up.shape}")
    return _cross_kernel(x, lmat, jnp.asarray(coll, dtype), jnp.asarray(up, dtype))


@partial(jax.jit, static_argnames=("chunk",))
def _ratio_kernel(x, lmat, chunk):
    (port,) = _rows_chunked(lambda xc: (_worst_loss_rows(xc, lmat),), x, chunk)
    gross = _isolated_kernel(x, lmat)
    return jnp.where(gross > 0, port / jnp.where(gross > 0, gross, 1), 1)


def net_gross_ratio(positions, pnl, *, chunk_size=None, dtype=jnp.float32):
    """Portfolio margin / sum of isolated margins per account (``(N,)``, in [0, 1] for scenario models;
    1 where the gross requirement is 0). 1 - ratio is the saving of portfolio margining."""
    x, lmat, _ = _prep(positions, pnl, None, dtype, True)
    return _ratio_kernel(x, lmat, _chunk(x.shape[0], lmat.shape[1], chunk_size))


# ----------------------------------------------------------------------------- VaR / ES
class VarEs(NamedTuple):
    """var, es: ``(N,)`` value-at-risk and expected shortfall (losses positive) at the given confidence."""

    var: jax.Array
    es: jax.Array


def _tail_k(n_scen: int, confidence: float) -> int:
    return max(1, math.ceil(round((1 - confidence) * n_scen, 9)))


@partial(jax.jit, static_argnames=("k", "chunk"))
def _hist_kernel(x, lmat, k, chunk):
    def rows(xc):
        top, _ = jax.lax.top_k(-(xc @ lmat), k)
        return top[:, k - 1], jnp.mean(top, axis=1)

    return VarEs(*_rows_chunked(rows, x, chunk))


def historical_var_es(positions, pnl, confidence: float = 0.99, *, chunk_size=None, dtype=jnp.float32) -> VarEs:
    """Historical-simulation VaR and ES per account from scenario P&L (e.g. :func:`historical_scenarios`).

    With losses l_s = -(x @ L)[s] sorted descending and k = ceil((1 - confidence) S):
    VaR = l_(k) (the empirical (1 - confidence)-quantile of P&L, ``numpy.quantile(..., method="inverted_cdf")``,
    negated) and ES = mean of the k largest losses.

    Returns:
        :class:`VarEs` of ``(N,)`` arrays in the unit of ``pnl`` (may be negative if every scenario gains).
    """
    if not 0 < confidence < 1:
        raise MarginInputError("confidence", "must lie in (0, 1)", None, confidence)
    x, lmat, _ = _prep(positions, pnl, None, dtype, True)
    k = _tail_k(lmat.shape[1], confidence)
    return _hist_kernel(x, lmat, k, _chunk(x.shape[0], lmat.shape[1], chunk_size))


@jax.jit
def _param_kernel(x, mu, cov, z):
    m = x @ mu
    sd = jnp.sqrt(jnp.maximum(jnp.sum((x @ cov) * x, axis=1), 0))
    pdf = jnp.exp(-0.5 * z * z) / jnp.sqrt(2 * jnp.pi)
    var = z * sd - m
    es = sd * pdf / (1 - jax.scipy.special.ndtr(z)) - m
    return VarEs(var, es)


def parametric_var_es(positions, pnl, confidence: float = 0.99, *, dtype=jnp.float32) -> VarEs:
    """Parametric (normal) VaR and ES per account: account P&L ~ N(x mu, x C x^T) with mu, C the mean and
    covariance of the per-unit scenario P&L columns (delta-normal / variance-covariance method, RiskMetrics 1996).

    VaR = z sd - mean,  ES = sd phi(z) / (1 - confidence) - mean,  z = Phi^{-1}(confidence).

    Returns:
        :class:`VarEs` of ``(N,)`` arrays in the unit of ``pnl``.
    """
    if not 0 < confidence < 1:
        raise MarginInputError("confidence", "must lie in (0, 1)", None, confidence)
    x, lmat, _ = _prep(positions, pnl, None, dtype, True)
    lm = np.asarray(lmat, np.float64)
    mu = lm.mean(axis=1)
    cov = np.cov(lm, ddof=1) if lm.shape[1] > 1 else np.zeros((lm.shape[0], lm.shape[0]))
    cov = np.atleast_2d(cov)
    z = float(ndtri(confidence))
    return _param_kernel(x, jnp.asarray(mu, dtype), jnp.asarray(cov, dtype), jnp.asarray(z, dtype))


# ----------------------------------------------------------------------------- sharding and the streaming bound
def sharded_portfolio_margin(positions, pnl, addons=None, *, mesh: Mesh | None = None, dtype=jnp.float32):
    """:func:`portfolio_margin` with accounts split over devices (``jax.shard_map`` on a 1-D mesh ``"accounts"``).

    Args:
        mesh: a 1-D :class:`jax.sharding.Mesh` with axis name ``"accounts"`` (default: all devices).
        Other arguments as :func:`portfolio_margin`. N is padded with zero rows to a multiple of the device count
        (zero rows have zero loss) and trimmed afterwards.

    Returns:
        ``(N,)`` requirement, equal to the single-device result.
    """
    x, lmat, a = _prep(positions, pnl, addons, dtype, True)
    if mesh is None:
        mesh = Mesh(np.asarray(jax.devices()), ("accounts",))
    nd = mesh.devices.size
    n = x.shape[0]
    pad = (-n) % nd
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), dtype)])
        a = jnp.concatenate([a, jnp.zeros((pad,), dtype)])
    x = jax.device_put(x, NamedSharding(mesh, P("accounts", None)))
    a = jax.device_put(a, NamedSharding(mesh, P("accounts")))
    lmat = jax.device_put(lmat, NamedSharding(mesh, P()))
    fn = _sharded_fn(mesh)
    return fn(x, a, lmat)[:n]


_SHARDED_CACHE: dict = {}


def _sharded_fn(mesh):
    key = mesh  # Mesh is hashable; keying by id() could alias a collected mesh
    if key not in _SHARDED_CACHE:
        _SHARDED_CACHE[key] = jax.jit(jax.shard_map(
            _portfolio_kernel, mesh=mesh, in_specs=(P("accounts", None), P("accounts"), P()),
            out_specs=P("accounts")))
    return _SHARDED_CACHE[key]


@jax.jit
def streaming_pass(x):
    """One read of ``x`` reduced per row (max |x|): the memory-bandwidth floor for a kernel that must read every
    position once (used by ``experiments/bench_margin.py``)."""
    return jnp.max(jnp.abs(x), axis=1)
