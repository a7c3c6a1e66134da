"""Margin of a venue's whole book from Parquet parts, part by part in bounded memory (issue 13 item 4).

Book layout (a directory; all Parquet files are plain pyarrow tables)::

    instruments.parquet              one row per instrument:
        instrument  int32    0 .. I-1, the column of the instrument in the positions matrix
        name        string
        underlying  int32    0 .. U-1
        pnl_000 .. pnl_{S-1}  float64  per-unit scenario P&L in USD (loss negative)
    positions/part-NNNNN.parquet     one row per account and instrument held:
        account_id  int64    sorted (the kernel needs only the rows of each chunk of accounts to be contiguous;
                             a row out of place is named); every row of an account lies in ONE part;
                             duplicated (account, instrument) rows are summed
        instrument  int32    0 .. I-1
        quantity    float32  signed units
    accounts/part-NNNNN.parquet      one row per account of the same part (same file name):
        account_id     int64    sorted, unique (accounts without positions have zero margin)
        collateral_usd float64  collateral value after haircuts, USD (>= 0)
    meta.json                        n_accounts, n_instruments, n_scenarios, how the book was made

Requirement (CME SPAN "Risk Arrays", Deribit "Portfolio Margin"): per account ``a`` the scenario P&L
``P[a, s] = sum_rows(a) quantity x pnl[instrument, s]`` (USD), IM = ``max(0, -min_s P[a, s])`` (the worst scenario
loss), MM = ``mm_factor`` x IM (Deribit), health = collateral / MM (> 1 healthy; +inf where MM = 0). This equals
:func:`margin.portfolio_margin` on the dense ``(accounts, I)`` position matrix (tested).

How a part is margined (:class:`PartMargin`, :func:`margin_part`): the columns are read memory-mapped
(:func:`read_part`; one Arrow chunk per row group). On the host (:func:`prepare_part`, on a reader thread) the rows
are checked with a few vectorised passes and placed into a reused, aligned ``(n_pad, I)`` float32 position grid
(``n_pad`` a multiple of ``ACCOUNT_QUANTUM``, so all parts of a book share one or two compiled shapes): rows sorted
by account with distinct instruments, the usual export, go in with one indexed store (about 1 ns a row); anything
else (duplicated rows, instruments out of order) is summed with ``np.bincount``. One jitted function
(:func:`part_kernel`) then scans the grid in cache-sized chunks: the ``(chunk, I) @ (I, S)`` P&L (per block when
the matrix is block-diagonal), its minimum, IM / MM / health, totals, counts and fixed log-spaced histograms, and
only those small results leave it. Why the grid is built on the host: a kernel that scatter-added the rows itself
took about 41 ms a part of 4e6 rows (XLA:CPU scatter, ~7 ns a row), this one about 12 ms; NumPy's indexed store
(~1 ns a row) runs on the reader thread, beside the kernel. A bad row is named by :func:`locate_error`
(:class:`~margin.validation.MarginInputError`: file, row, column, value). :func:`margin_book` runs all parts:
locally with the next ``readers`` parts read and placed on threads while the current one is margined (memory:
about 1 + ``readers`` grids), or as Ray tasks over parts.

Example (a notebook)::

    from margin.rules import book_margin as bm
    res = bm.margin_book("/tmp/book")            # a book written by bm.generate_book or a venue export
    res["sum_im"], res["n_below_mm"], res["hist_health"]
"""
from __future__ import annotations

import functools
import json
import os
import resource
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from margin.rules.requirements import detect_block_layout
from margin.validation import MarginInputError

POSITION_SCHEMA = pa.schema([("account_id", pa.int64()), ("instrument", pa.int32()), ("quantity", pa.float32())])
ACCOUNT_SCHEMA = pa.schema([("account_id", pa.int64()), ("collateral_usd", pa.float64())])
ACCOUNT_QUANTUM = 1 << 16  # position grids are padded to a multiple of this many accounts (few compiled shapes)
ERROR_KEYS = ("n_bad_rows", "n_bad_collateral")  # counted by the kernel: accounts with a non-finite quantity / bad
                                                 # collateral (the part is then refused, the row named on the host)


# ----------------------------------------------------------------------------- generate
def generate_book(book_dir, n_accounts: int, pnl, underlying=None, *, accounts_per_shard: int = 1_000_000,
                  positions_per_account: float = 4.0, collateral_multiple: float = 1.5, seed: int = 0,
                  meta_extra: dict | None = None, progress=None) -> dict:
    """Writes a synthetic book (layout in the module docstring) and returns its ``meta``.

    Args:
        pnl: ``(I, S)`` float64 per-unit scenario P&L, USD (e.g. ``experiments.bench_margin.realistic_block_book``).
        underlying: ``(I,)`` underlying index per instrument (default all 0).
        positions_per_account: each account holds k distinct instruments, k uniform in 1 .. 2 x this - 1;
            quantities N(0, 1) x 10 units. Rows are sorted by (account, instrument).
        collateral_multiple: collateral_usd = this x 0.4 x lognormal(0, 0.5) x sum_i |q_i| max_s |L_is| (a
            size-scaled draw: with the defaults the median health is about 1.6 and a third of the accounts are
            below MM, so the health distribution has both tails).
        progress: ``None`` or a callable wrapping the part range (e.g. ``tqdm``).

    Positions parts are written uncompressed with the account ids delta-encoded (sorted ids cost about one bit
    per row) and plain instruments and quantities: decoding, not disk, bounds the pipeline.
    """
    lm = np.asarray(pnl, np.float64)
    n_i, n_s = lm.shape
    und = np.zeros(n_i, np.int32) if underlying is None else np.asarray(underlying, np.int32)
    out = Path(book_dir)
    (out / "positions").mkdir(parents=True, exist_ok=True)
    (out / "accounts").mkdir(parents=True, exist_ok=True)
    cols = {"instrument": pa.array(np.arange(n_i, dtype=np.int32)),
            "name": pa.array([f"U{u}-I{i}" for i, u in enumerate(und)]), "underlying": pa.array(und)}
    cols.update({f"pnl_{s:03d}": pa.array(lm[:, s]) for s in range(n_s)})
    pq.write_table(pa.table(cols), out / "instruments.parquet")
    rng = np.random.default_rng(seed)
    kmax = max(1, min(n_i, int(round(2 * positions_per_account - 1))))
    scale = np.abs(lm).max(axis=1)  # USD per unit at the worst scenario, a rough size for the collateral
    n_parts = -(-n_accounts // accounts_per_shard)
    for p in (progress or iter)(range(n_parts)):
        a0 = p * accounts_per_shard
        n = min(accounts_per_shard, n_accounts - a0)
        k = rng.integers(1, kmax + 1, n)
        # k distinct instruments per account: the first k of a random permutation, sorted
        order = np.argsort(rng.random((n, n_i), dtype=np.float32), axis=1)[:, :kmax].astype(np.int32)
        keep = np.arange(kmax)[None, :] < k[:, None]
        order = np.where(keep, order, n_i)
        order.sort(axis=1)
        acc = np.repeat(np.arange(a0, a0 + n, dtype=np.int64), k)
        inst = order[np.arange(kmax)[None, :] < k[:, None]]
        qty = (rng.standard_normal(acc.size) * 10).astype(np.float32)
        name = f"part-{p:05d}.parquet"
        pq.write_table(pa.table([acc, inst, qty], schema=POSITION_SCHEMA), out / "positions" / name,
                       row_group_size=1 << 22, compression="none", use_dictionary=False,
                       column_encoding={"account_id": "DELTA_BINARY_PACKED", "instrument": "PLAIN",
                                        "quantity": "PLAIN"})
        size = np.bincount(acc - a0, weights=np.abs(qty) * scale[inst], minlength=n)
        coll = collateral_multiple * size * rng.lognormal(0, 0.5, n) * 0.4
        pq.write_table(pa.table([np.arange(a0, a0 + n, dtype=np.int64), coll], schema=ACCOUNT_SCHEMA),
                       out / "accounts" / name, compression="none", use_dictionary=False,
                       column_encoding={"account_id": "DELTA_BINARY_PACKED", "collateral_usd": "PLAIN"})
    meta = {"n_accounts": int(n_accounts), "n_instruments": int(n_i), "n_scenarios": int(n_s), "n_parts": n_parts,
            "generator": {"seed": seed, "positions_per_account": positions_per_account,
                          "accounts_per_shard": accounts_per_shard, **(meta_extra or {})}}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


# ----------------------------------------------------------------------------- read and check
def load_instruments(book_dir) -> tuple[np.ndarray, np.ndarray]:
    """``(pnl (I, S) float64 USD per unit, underlying (I,) int)`` from ``instruments.parquet``; checks the
    instrument column is 0 .. I-1 in order and the P&L finite (MarginInputError naming file, row, column, value)."""
    path = Path(book_dir) / "instruments.parquet"
    if not path.exists():
        raise MarginInputError(str(path), "missing: not a book directory (run mode=generate first?)")
    t = pq.read_table(path)
    for col in ("instrument", "underlying"):
        if col not in t.column_names:
            raise MarginInputError(f"{path}: columns", f"missing {col!r}")
    inst = t["instrument"].to_numpy()
    bad = inst != np.arange(len(inst))
    if bad.any():
        r = int(np.argmax(bad))
        raise MarginInputError(f"{path}: row {r}, column instrument", "must be 0 .. I-1 in order", None, int(inst[r]))
    pcols = sorted(c for c in t.column_names if c.startswith("pnl_"))
    if not pcols:
        raise MarginInputError(f"{path}: columns", "no pnl_* scenario columns")
    lm = np.column_stack([t[c].to_numpy().astype(np.float64) for c in pcols])
    bad = ~np.isfinite(lm)
    if bad.any():
        r, c = (int(j) for j in np.argwhere(bad)[0])
        raise MarginInputError(f"{path}: row {r}, column {pcols[c]}", "must be finite", None, float(lm[r, c]))
    return lm, t["underlying"].to_numpy()


def list_parts(book_dir) -> list[str]:
    """Names of the positions parts (``part-*.parquet``), sorted."""
    parts = sorted(p.name for p in (Path(book_dir) / "positions").glob("part-*.parquet"))
    if not parts:
        raise MarginInputError(str(Path(book_dir) / "positions"), "no part-*.parquet files")
    return parts


def _columns(path: Path, columns: list[str]) -> list[np.ndarray]:
    """Columns of one Parquet file as NumPy arrays (memory-mapped read; zero-copy when one row group)."""
    try:
        t = pq.ParquetFile(path, memory_map=True).read(columns=columns, use_threads=True)
    except (KeyError, pa.ArrowInvalid, OSError) as exc:
        raise MarginInputError(str(path), f"cannot read the columns {columns} of the book schema: {exc}") from exc
    out = []
    for c in columns:
        col = t[c]
        if col.null_count:
            r = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
            raise MarginInputError(f"{path}: row {r}, column {c}", "must not be null")
        out.append(col.chunk(0).to_numpy() if col.num_chunks == 1 else col.to_numpy())
    return out


def read_part(book_dir, name: str) -> dict:
    """Reads one part: ``{"account_id" (R,) int, "instrument" (R,) int32, "quantity" (R,) float32, "ids" (n,)
    int64, "collateral" (n,) float64 USD, "paths"}`` (no copies beyond Arrow's decode). Raises MarginInputError
    when a file or column is missing or the account ids of the accounts file are not sorted and unique; the row
    checks run in :func:`prepare_part`."""
    ppath = Path(book_dir) / "positions" / name
    apath = Path(book_dir) / "accounts" / name
    if not apath.exists():
        raise MarginInputError(str(apath), f"missing: every positions part needs its accounts part ({name})")
    acc, inst, qty = _columns(ppath, ["account_id", "instrument", "quantity"])
    ids, coll = _columns(apath, ["account_id", "collateral_usd"])
    if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
        bad = np.r_[False, ids[1:] <= ids[:-1]]
        r = int(np.argmax(bad))
        raise MarginInputError(f"{apath}: row {r}, column account_id", "must be sorted and unique", None,
                               ids[r].item())
    return {"account_id": acc, "instrument": inst.astype(np.int32, copy=False),
            "quantity": qty.astype(np.float32, copy=False), "ids": ids.astype(np.int64, copy=False),
            "collateral": coll.astype(np.float64, copy=False), "paths": (ppath, apath)}


def locate_error(part: dict, n_instruments: int) -> None:
    """Raises the MarginInputError (file, row, column, value) for the first bad row of a part (host-side, run
    only when a host check failed)."""
    ppath, apath = part["paths"]
    acc, inst, qty, ids, coll = (part[k] for k in ("account_id", "instrument", "quantity", "ids", "collateral"))

    def fail(path, col, mask, msg, values):
        r = int(np.argmax(mask))
        raise MarginInputError(f"{path}: row {r}, column {col}", msg, None, values[r].item())

    bad = ~np.isfinite(coll) | (coll < 0)
    if bad.any():
        fail(apath, "collateral_usd", bad, "must be finite and >= 0", coll)
    bad = (inst < 0) | (inst >= n_instruments)
    if bad.any():
        fail(ppath, "instrument", bad, f"must lie in 0 .. {n_instruments - 1}", inst)
    bad = ~np.isfinite(qty)
    if bad.any():
        fail(ppath, "quantity", bad, "must be finite", qty)
    pos = np.searchsorted(ids, acc)
    bad = (pos >= ids.size) | (ids[np.minimum(pos, ids.size - 1)] != acc)
    if bad.any():
        fail(ppath, "account_id", bad, f"account not in {apath.name} of accounts/ (one part per account)", acc)
    bad = np.r_[False, acc[1:] < acc[:-1]]
    if bad.any():
        fail(ppath, "account_id", bad, "rows must be sorted by account_id", acc)
    raise MarginInputError(str(ppath), "a fast check failed but no bad row was found (bug)")


def dense_positions(part: dict, n_instruments: int, dtype=np.float32) -> np.ndarray:
    """The dense ``(n, I)`` position matrix (units, ``dtype``) of one part read by :func:`read_part`, duplicated
    rows summed: the input of the in-memory kernel :func:`margin.portfolio_margin` (benchmarks), built as the
    pipeline builds its padded grid (:func:`prepare_part`). Raises MarginInputError naming the first bad row."""
    n = part["ids"].size
    flat, distinct = _flat_index(part, n_instruments, np.empty(part["account_id"].size, np.int64))
    if flat is None:
        locate_error(part, n_instruments)
    x = np.empty(n * n_instruments, dtype)
    _fill_grid(x, flat, distinct, part["quantity"], n * n_instruments)
    return x.reshape(n, n_instruments)


# ----------------------------------------------------------------------------- the kernel
class Histograms:
    """Fixed log-spaced bins for IM / MM (USD, ``lo`` .. ``hi``) and health (``h_lo`` .. ``h_hi``), ``per_decade``
    bins per decade; counts add up across parts (values below / above the range are counted apart)."""

    def __init__(self, lo=1e-2, hi=1e10, per_decade=20, h_lo=1e-3, h_hi=1e3):
        self.edges = np.logspace(np.log10(lo), np.log10(hi), int(round(np.log10(hi / lo) * per_decade)) + 1)
        self.h_edges = np.logspace(np.log10(h_lo), np.log10(h_hi), int(round(np.log10(h_hi / h_lo) * per_decade)) + 1)


@functools.partial(jax.jit, static_argnames=("chunk", "blocks", "edges", "h_edges", "per_account"))
def part_kernel(x, coll, n, pnl, mm_factor, *, chunk: int, blocks, edges: tuple, h_edges: tuple,
                per_account: bool = False):
    """Margin of one part from its dense positions: scenario P&L, IM / MM / health and their aggregates, fused.

    Args:
        x: ``(C x chunk, I)`` float32 (or the kernel dtype) units per local account and instrument; rows ``>= n``
            are padding (ignored).
        coll: ``(C x chunk,)`` float64 collateral, USD, of local accounts 0 .. n-1 (then zero padding).
        n: number of accounts of the part.
        pnl: ``(I, S)`` per-unit P&L (kernel dtype, USD), or with ``blocks`` a tuple of ``(I_b, S_b)`` blocks.
        chunk: accounts per step of the scan (static): the ``(chunk, S)`` P&L of a step stays in cache.
        blocks: ``None`` or a tuple of per-block instrument index tuples (static).
        edges / h_edges: static tuples of the histogram bin edges (USD; health).

    Returns:
        dict of float64 sums (USD), int64 counts and int64 histogram counts; ``n_bad_rows`` / ``n_bad_collateral``
        count accounts with a non-finite quantity / collateral that is not finite and >= 0 (non-zero: the part is
        invalid); with ``per_account`` also ``im`` ``(C x chunk,)``.
    """
    e, he = np.asarray(edges), np.asarray(h_edges)
    n_chunks = x.shape[0] // chunk
    n_instr = x.shape[1]
    ar_a = jnp.arange(chunk)
    nb, hb = len(e) - 1, len(he) - 1
    # histogram slots: IM 0 zero, 1 below edges[0], 2 + j bin j, nb + 2 at or above edges[-1]; health from
    # off_h: 0 below, 1 + j, hb + 1 above; the last slot takes masked accounts and is dropped
    off_h = nb + 3
    n_hist = off_h + hb + 2
    mm64 = jnp.asarray(mm_factor, jnp.float64)
    mm32 = jnp.asarray(mm_factor, jnp.float32)
    lo, step = np.float32(np.log10(e[0])), np.float32(np.log10(e[1] / e[0]))
    h_lo, h_step = np.float32(np.log10(he[0])), np.float32(np.log10(he[1] / he[0]))

    def body(carry, c):
        a0 = c * chunk
        xc = jax.lax.dynamic_slice(x, (a0, 0), (chunk, n_instr))
        if blocks is None:
            worst = jnp.min(xc @ pnl, axis=1)
        else:
            worst = functools.reduce(jnp.minimum, [jnp.min(xc[:, list(b)] @ lb, axis=1)
                                                   for b, lb in zip(blocks, pnl)])
        valid = a0 + ar_a < n
        im_c = jnp.where(valid, jnp.maximum(-worst, 0), 0)          # kernel dtype
        cc = jax.lax.dynamic_slice(coll, (a0,), (chunk,))           # float64 USD, zero past n (host)
        bad_cc = valid & (~(cc >= 0) | (cc == jnp.inf))              # NaN, negative or infinite collateral
        # histogram slots from float32 logs (bins are 12% wide; -1 / past the last bin = below / above); kept to
        # simple float32 arithmetic because XLA:CPU vectorises it (float64 divides here tripled the kernel time)
        im32, cc32 = im_c.astype(jnp.float32), cc.astype(jnp.float32)
        j_im = jnp.clip(jnp.floor((jnp.log10(im32) - lo) / step), -1, nb).astype(jnp.int32) + 2
        j_im = jnp.where(im32 == 0, 0, j_im)
        l_h = jnp.log10(cc32) - jnp.log10(mm32 * im32)
        j_h = jnp.clip(jnp.floor((l_h - h_lo) / h_step), -1, hb).astype(jnp.int32) + (off_h + 1)
        j_h = jnp.where(im32 > 0, j_h, n_hist)
        idx = jnp.concatenate([jnp.where(valid, j_im, n_hist), jnp.where(valid, j_h, n_hist)])
        hist = carry["hist"] + jnp.zeros(n_hist + 1, jnp.int32).at[idx].add(1, mode="promise_in_bounds")
        im = im_c.astype(jnp.float64)
        mm = mm64 * im
        new = {
            "sum_im": carry["sum_im"] + im.sum(), "sum_collateral": carry["sum_collateral"] + cc.sum(),
            "shortfall_mm": carry["shortfall_mm"] + jnp.maximum(mm - cc, 0).sum(),
            "max_im": jnp.maximum(carry["max_im"], im.max()),
            "n_below_mm": carry["n_below_mm"] + (valid & (cc < mm)).sum(dtype=jnp.int64),
            "n_below_im": carry["n_below_im"] + (valid & (cc < im)).sum(dtype=jnp.int64),
            "n_bad_rows": carry["n_bad_rows"] + (valid & ~jnp.isfinite(im_c)).sum(dtype=jnp.int64),
            "n_bad_collateral": carry["n_bad_collateral"] + bad_cc.sum(dtype=jnp.int64),
            "hist": hist,
        }
        return new, (im_c if per_account else None)

    init = {k: jnp.zeros((), jnp.float64) for k in ("sum_im", "sum_collateral", "shortfall_mm", "max_im")}
    init.update({k: jnp.zeros((), jnp.int64) for k in ("n_below_mm", "n_below_im") + ERROR_KEYS})
    init["hist"] = jnp.zeros(n_hist + 1, jnp.int32)
    total, ims = jax.lax.scan(body, init, jnp.arange(n_chunks))
    h = total.pop("hist")[:n_hist].astype(jnp.int64)
    total.update(sum_mm=mm64 * total["sum_im"], n_zero_margin=h[0], hist_im=h[2:nb + 2], n_im_above=h[nb + 2],
                 n_health_below=h[off_h], hist_health=h[off_h + 1:off_h + hb + 1],
                 n_health_above=h[off_h + hb + 1])
    if per_account:
        total["im"] = ims.reshape(-1)
    return total


# ----------------------------------------------------------------------------- margin one part
_BUFFERS: dict = {}


def _buffer(key, size: int, dtype) -> np.ndarray:
    """A reused, 64-byte aligned buffer of ``size`` entries (``jax.device_put`` aliases it: XLA:CPU zero-copy),
    touched once when made (fresh pages cost a page fault each)."""
    dtype = np.dtype(dtype)
    buf = _BUFFERS.get((key, dtype))
    if buf is None or buf.size < size:  # one buffer per key, the largest part's size: memory bounded by one part
        _BUFFERS.pop((key, dtype), None)
        raw = np.empty(size * dtype.itemsize + 64, np.uint8)
        raw.fill(0)
        off = -raw.ctypes.data % 64
        buf = _BUFFERS[(key, dtype)] = raw[off:off + size * dtype.itemsize].view(dtype)
    return buf[:size]


def padded_accounts(n_accounts: int, n_instruments: int) -> int:
    """Accounts of the padded position grid of a part: a multiple of the kernel chunk and of ``ACCOUNT_QUANTUM``
    (all parts of a book share one or two compiled shapes)."""
    q = max(chunk_accounts(n_instruments), ACCOUNT_QUANTUM)
    return max(1, -(-n_accounts // q)) * q


def chunk_accounts(n_instruments: int) -> int:
    """Accounts per kernel chunk: the ``(chunk, I)`` slice of positions is about 1 MB (stays in cache)."""
    return int(max(256, min(16384, 2 ** int(np.floor(np.log2(2 ** 18 / max(n_instruments, 1)))))))


def _flat_index(part: dict, n_instruments: int, scratch: np.ndarray) -> tuple[np.ndarray | None, bool]:
    """``(flat, distinct)``: ``local x I + instrument`` per row (int64, written into ``scratch``) and whether it is
    strictly increasing (rows in order, no duplicated pair); ``flat`` is None when a row is out of place (an
    instrument outside 0 .. I-1, an account not in the part, rows not sorted by account): the caller then names
    it with :func:`locate_error`."""
    acc, ids, inst = part["account_id"], part["ids"], part["instrument"]
    n = ids.size
    if acc.size == 0:
        return scratch[:0], True
    if n == 0 or not (inst.view(np.uint32) < n_instruments).all():  # unsigned: one compare for 0 <= i < I
        return None, False
    flat = scratch[:acc.size]
    contiguous = ids[-1] - ids[0] + 1 == n  # sorted, unique ids without holes: local = id - first id
    if contiguous:
        np.subtract(acc, ids[0], out=flat)
    else:
        np.copyto(flat, np.searchsorted(ids, acc))
        if not (ids[np.minimum(flat, n - 1)] == acc).all():
            return None, False
    np.multiply(flat, n_instruments, out=flat)
    np.add(flat, inst, out=flat)
    distinct = bool((flat[1:] > flat[:-1]).all())  # implies rows sorted by account
    if not (distinct or (acc[1:] >= acc[:-1]).all()):
        return None, False
    if flat[0] < 0 or flat[-1] >= n * n_instruments:  # sorted: the first and last rows bound them all
        return None, False
    return flat, distinct


def _fill_grid(out: np.ndarray, flat: np.ndarray, distinct: bool, qty: np.ndarray, n_cells: int) -> None:
    """Writes the quantities into the flat grid ``out`` at ``flat`` (:func:`_flat_index`), zeros elsewhere: one
    indexed store when the (account, instrument) pairs are distinct and in order, else ``np.bincount`` (float64
    sums of duplicated rows); cells from ``n_cells`` on (padding) are zero."""
    if distinct:
        out.fill(0)
        out[flat] = qty
    else:
        out[:n_cells] = np.bincount(flat, weights=qty, minlength=n_cells)
        out[n_cells:] = 0


def prepare_part(part: dict, n_instruments: int, slot: int = 0) -> tuple:
    """Host side of a part (on a reader thread): checks the rows and builds the dense ``(n_pad, I)`` float32
    position grid in a reused, aligned buffer of ``slot`` (duplicated rows summed); returns ``(args, static)``
    for :func:`part_kernel`. Rows sorted by account with distinct, sorted instruments (the usual export) are
    placed with one indexed store; other rows are summed with ``np.bincount``. Raises MarginInputError naming the
    first bad row (file, row, column, value); non-finite quantities and bad collateral are counted by the kernel
    (they cost a pass here) and named by :class:`PartMargin`."""
    acc, ids, qty, coll = part["account_id"], part["ids"], part["quantity"], part["collateral"]
    n, n_i = ids.size, n_instruments
    flat, distinct = _flat_index(part, n_i, _buffer(("flat", slot), acc.size, np.int64))
    if flat is None:
        locate_error(part, n_i)
    n_pad = padded_accounts(n, n_i)
    x = _buffer(("x", slot), n_pad * n_i, np.float32)
    _fill_grid(x, flat, distinct, qty, n * n_i)
    c = _buffer(("coll", slot), n_pad, np.float64)
    c[:n] = coll
    c[n:] = 0
    return (x.reshape(n_pad, n_i), c, n), {"chunk": chunk_accounts(n_i)}


class PartMargin:
    """Margins parts of one book: holds the P&L matrix in the kernel dtype, the block layout and the bins."""

    def __init__(self, pnl, *, mm_factor: float = 0.8, blocks="auto", dtype="float32", hist: dict | None = None):
        lm = np.asarray(pnl, np.float64)
        self.n_instruments, self.n_scenarios = lm.shape
        self.dtype = jnp.dtype(dtype)
        layout = detect_block_layout(lm) if blocks == "auto" else blocks if blocks not in (None, "dense") else None
        self.layout = layout if layout is not None and layout.n_blocks > 1 else None
        if self.layout is None:
            self.blocks, self.pnl = None, jnp.asarray(lm, self.dtype)
        else:
            self.blocks = tuple(tuple(int(i) for i in b) for b in self.layout.instruments)
            self.pnl = tuple(jnp.asarray(b, self.dtype) for b in self.layout.pnl_blocks(lm))
        self.mm_factor = float(mm_factor)
        h = Histograms(**(hist or {}))
        self.edges, self.h_edges = h.edges, h.h_edges
        self._compiled: dict = {}
        self.compile_s = 0.0

    def __call__(self, part: dict, per_account: bool = False, prepared: tuple | None = None) -> dict:
        """Summary of one part (NumPy scalars and arrays, see :func:`part_kernel`) plus ``n_accounts``,
        ``n_positions`` and stage seconds ``t_prepare`` / ``t_kernel``. Raises MarginInputError naming the first
        bad row (:func:`prepare_part`)."""
        t0 = time.perf_counter()
        args, static = prepared if prepared is not None else prepare_part(part, self.n_instruments)
        if self.dtype != np.float32:
            args = (args[0].astype(self.dtype),) + args[1:]
        t1 = time.perf_counter()
        kw = dict(static, blocks=self.blocks, edges=tuple(self.edges), h_edges=tuple(self.h_edges),
                  per_account=per_account)
        full = args + (self.pnl, self.mm_factor)
        key = tuple((np.shape(a), np.result_type(a)) for a in args[:2]) + tuple(sorted(static.items())) + (per_account,)
        fn = self._compiled.get(key)
        if fn is None:  # compile ahead of time, timed apart (set-up, like the kernel compile of the in-memory run)
            tc = time.perf_counter()
            fn = self._compiled[key] = part_kernel.lower(*full, **kw).compile()
            t1 = time.perf_counter()
            self.compile_s += t1 - tc
            t0 += t1 - tc
        res = jax.device_get(fn(*full))
        t2 = time.perf_counter()
        if any(int(res[k]) for k in ERROR_KEYS):
            locate_error(part, self.n_instruments)
        out = {k: (np.asarray(v) if np.ndim(v) else v.item()) for k, v in res.items() if k not in ERROR_KEYS}
        out["hist_mm"] = out["hist_im"].copy()  # over mm_edges = mm_factor x edges (MM = mm_factor x IM)
        if per_account:
            out["im"] = np.asarray(res["im"])[:part["ids"].size]
        out.update(n_accounts=int(part["ids"].size), n_positions=int(part["account_id"].size),
                   t_prepare=t1 - t0, t_kernel=t2 - t1)
        return out


def combine(total: dict | None, part: dict) -> dict:
    """Adds the summary of a part to the running total (``max_*`` take the maximum)."""
    if total is None:
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in part.items()}
    for k, v in part.items():
        if k == "im":
            total[k] = np.concatenate([total[k], v])
        else:
            total[k] = max(total[k], v) if k.startswith("max_") else total[k] + v
    return total


def margin_part(book_dir, name: str, pnl, **kw) -> dict:
    """Reads and margins one part (a Ray task body); ``kw`` as :class:`PartMargin`."""
    return PartMargin(pnl, **kw)(read_part(book_dir, name))


# ----------------------------------------------------------------------------- the whole book
def margin_book(book_dir, *, mm_factor: float = 0.8, blocks="auto", dtype="float32", hist: dict | None = None,
                backend: str = "auto", ray_address: str | None = None, ray_num_cpus: int | None = None,
                ray_runtime_env: dict | None = None, prefetch: bool = True, readers: int = 2, warmup: bool = True,
                per_account: bool = False, progress=None) -> dict:
    """Margins every part of the book; returns the combined totals, counts and histograms plus timings.

    Args:
        mm_factor: MM = mm_factor x IM (Deribit).
        blocks: ``"auto"`` (per-block products when the P&L matrix is block-diagonal), ``"dense"`` or a
            :class:`~margin.rules.requirements.BlockLayout`.
        dtype: kernel dtype of quantities and P&L (``float32`` default; sums are float64).
        hist: :class:`Histograms` keyword arguments.
        backend: ``"local"`` (this process; with ``prefetch`` the next ``readers`` parts are read on as many
            threads while the current one is margined),
            ``"ray"`` (one Ray task per part, at most 2 x cluster CPUs in flight) or ``"auto"`` (Ray when
            ``ray_address`` or ``RAY_ADDRESS`` is set). ``ray_num_cpus``: a local Ray's CPUs when no address.
        warmup: local backend: in the set-up, read the first 1 + ``readers`` parts (as many as the loop holds)
            and margin the first, discarded (the Arrow memory pool and the part buffers are touched and the kernel
            compiled before the clock of the parts starts; on this VM first-touch page faults cost 0.1 - 0.6 s
            per part-sized allocation). Its time is reported in ``compile_s`` (set-up), not in ``seconds``.
        per_account: also return ``im`` ``(n_accounts,)`` (float, USD; for tests and small books only).
        progress: ``None`` or a callable wrapping the part list (e.g. ``functools.partial(tqdm, desc="parts")``).

    Returns:
        dict: ``n_accounts``, ``n_positions``, ``sum_im`` / ``sum_mm`` / ``sum_collateral`` / ``shortfall_mm``
        (USD), ``max_im``, counts ``n_zero_margin``, ``n_below_mm``, ``n_below_im``, ``n_health_below`` /
        ``_above``, ``n_im_above``, histograms ``hist_im`` over ``edges`` (USD), ``hist_mm`` over ``mm_edges`` =
        ``mm_factor`` x ``edges`` (the same counts: MM = mm_factor x IM) and ``hist_health`` over ``h_edges``,
        ``seconds`` (all parts, compile excluded), ``compile_s``, ``accounts_per_s``,
        ``peak_rss_gb``, stage seconds (local backend) ``t_read_wait`` (waiting for the reader thread),
        ``t_read_prepare`` (reader thread: read and fill the padded buffers, overlapping the kernel), ``t_prepare``
        (host work on the main thread) and ``t_kernel``.
    """
    t0 = time.perf_counter()
    lm, _ = load_instruments(book_dir)
    parts = list_parts(book_dir)
    kw = dict(mm_factor=mm_factor, blocks=blocks, dtype=dtype, hist=hist)
    pm = PartMargin(lm, **kw)
    wrap = progress or (lambda x: x)
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    use_ray = backend == "ray" or (backend == "auto" and address is not None)
    if backend not in ("auto", "local", "ray"):
        raise MarginInputError("backend", "must be auto, local or ray", None, backend)
    setup_s = 0.0
    total = None
    depth = max(1, int(readers)) if prefetch and not use_ray else 0
    pool = ThreadPoolExecutor(depth) if depth else None
    n_i = lm.shape[0]

    def load(name, slot):  # on a reader thread: read, then fill the padded buffers of ``slot``
        tl = time.perf_counter()
        part = read_part(book_dir, name)
        return part, prepare_part(part, n_i, slot), time.perf_counter() - tl

    if not use_ray:  # set-up: the part buffers, sized from the Parquet footers, made before the clock of the parts
        ts = time.perf_counter()
        for name in parts:
            try:
                rows = pq.ParquetFile(Path(book_dir) / "positions" / name).metadata.num_rows
                accs = pq.ParquetFile(Path(book_dir) / "accounts" / name).metadata.num_rows
            except (OSError, pa.ArrowInvalid):
                continue  # reported with file, row and column when the part is read
            n_pad = padded_accounts(accs, n_i)
            for slot in range(max(1, int(readers)) + 1 if prefetch else 1):
                _buffer(("flat", slot), rows, np.int64)
                _buffer(("x", slot), n_pad * n_i, np.float32)
                _buffer(("coll", slot), n_pad, np.float64)
        if warmup:  # discarded: the parts the loop holds in flight are read (on the reader threads, whose
            # allocator heaps the loop reuses) and the first is margined, so Arrow's memory pool, the buffers and
            # the kernel are warm before the clock starts
            c0 = pm.compile_s
            k_held = range(min(len(parts), depth + 1))
            try:
                held = ([f.result() for f in [pool.submit(load, parts[k], k) for k in k_held]] if pool
                        else [load(parts[0], 0)])
                pm(held[0][0], prepared=held[0][1])
                del held
            except BaseException:
                if pool:
                    pool.shutdown(cancel_futures=True)
                raise
            ts += pm.compile_s - c0  # compile is counted in pm.compile_s
        setup_s = time.perf_counter() - ts
    if use_ray:
        import ray

        tr0 = time.perf_counter()
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else ray_num_cpus, include_dashboard=False,
                     log_to_driver=False, runtime_env=ray_runtime_env)
        setup_s = time.perf_counter() - tr0  # Ray start-up is set-up, like compilation
        task = ray.remote(num_cpus=1)(margin_part)
        lm_ref = ray.put(lm)
        width = max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))
        pending, queue = [], list(parts)
        for _ in wrap(range(len(parts))):
            while queue and len(pending) < width:
                pending.append(task.remote(str(book_dir), queue.pop(0), lm_ref, **kw))
            done, pending = ray.wait(pending, num_returns=1)
            total = combine(total, ray.get(done[0]))
    else:
        # part k uses buffer slot k % (depth + 1): the parts in flight (one margined, ``depth`` read) never share
        futures = deque(pool.submit(load, parts[k], k % (depth + 1)) for k in range(min(depth, len(parts))))
        t_read = t_reader = 0.0
        try:
            for j in wrap(range(len(parts))):
                tr = time.perf_counter()
                data, prep, t_load = futures.popleft().result() if pool else load(parts[j], 0)
                t_reader += t_load
                t_read += time.perf_counter() - tr
                if pool and j + depth < len(parts):
                    futures.append(pool.submit(load, parts[j + depth], (j + depth) % (depth + 1)))
                total = combine(total, pm(data, per_account=per_account, prepared=prep))
                del data
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
        total["t_read_wait"] = t_read
        total["t_read_prepare"] = t_reader  # on the reader threads, overlapping the kernel
    compile_s = pm.compile_s + setup_s
    total["compile_s"] = compile_s
    total["seconds"] = time.perf_counter() - t0 - compile_s
    total["accounts_per_s"] = total["n_accounts"] / total["seconds"]
    total["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    total.update({"backend": "ray" if use_ray else "local", "n_parts": len(parts), "n_instruments": lm.shape[0],
                  "n_scenarios": lm.shape[1], "n_blocks": pm.layout.n_blocks if pm.layout else 1,
                  "edges": pm.edges, "mm_edges": mm_factor * pm.edges, "h_edges": pm.h_edges,
                  "mm_factor": float(mm_factor)})
    return total


def hist_quantile(counts, edges, below: int, q: float) -> float:
    """Quantile from histogram counts (upper bin edge; resolution one bin: 10^(1/bins_per_decade))."""
    c = np.cumsum(np.r_[below, counts])
    if c[-1] == 0:
        return float("nan")
    j = int(np.searchsorted(c, q * c[-1]))
    return float(edges[min(j, len(edges) - 1)])
