"""Margin of a venue's whole book from Parquet shards, shard by shard in bounded memory (issue 13 item 4).

Run: ``python -m experiments.margin_book mode=generate book_dir=/tmp/book generate.n_accounts=1000000`` writes a
synthetic book; ``python -m experiments.margin_book book_dir=/tmp/book`` margins it; ``mode=bench`` generates (if
missing), runs and compares with the in-memory kernel. Config ``conf/margin_book.yaml``.

Book layout (a directory; all Parquet files are plain pyarrow tables)::

    instruments.parquet              one row per instrument:
        instrument  int32    0 .. I-1, the column of the instrument in the positions matrix
        name        string
        underlying  int32    0 .. U-1
        pnl_000 .. pnl_{S-1}  float64  per-unit scenario P&L in USD (loss negative); a block-diagonal matrix
                             (each underlying scanned on its own scenarios) is detected and run by the block kernel
    positions/part-NNNNN.parquet     one row per account and instrument held:
        account_id  int64    sorted; every row of an account lies in ONE part
        instrument  int32    0 .. I-1
        quantity    float32  signed units (duplicated (account, instrument) rows are summed)
    accounts/part-NNNNN.parquet      one row per account of the same part (same file name):
        account_id     int64    sorted, unique
        collateral_usd float64  collateral value after haircuts, USD (>= 0)
    meta.json                        n_accounts, n_instruments, n_scenarios, how the book was made

Per part: positions are scattered into a dense ``(accounts, I)`` float32 array and run through the jitted kernel
(:func:`margin.portfolio_margin_blocks` when the scenario matrix is block-structured, else
:func:`margin.portfolio_margin`): IM = worst scenario loss (CME SPAN "Risk Arrays", Deribit "Portfolio Margin"),
MM = ``mm_factor`` x IM (Deribit), health = collateral / MM (> 1 healthy; +inf where MM = 0). Only totals, counts
and fixed log-spaced histograms are kept, so memory is bounded by one part (plus one being read ahead).
Shards run on Ray when a cluster is given (``RAY_ADDRESS`` or ``ray.address=...``; ``backend=ray`` with no address
starts a local Ray with ``ray.num_cpus``) and in this process otherwise (XLA uses the local cores).
Writes ``margin_book.json`` / ``.md`` (via :mod:`experiments.bench_report`) and ``margin_book_hist.png``.
"""
from __future__ import annotations

import json
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hydra
import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import margin
from experiments.bench_report import Row, write_report
from margin.validation import MarginInputError

POSITION_SCHEMA = pa.schema([("account_id", pa.int64()), ("instrument", pa.int32()), ("quantity", pa.float32())])
ACCOUNT_SCHEMA = pa.schema([("account_id", pa.int64()), ("collateral_usd", pa.float64())])


# ----------------------------------------------------------------------------- generate
def generate_book(book_dir, n_accounts: int, accounts_per_shard: int = 1_000_000, n_underlyings: int = 1,
                  instruments_per_underlying: int = 16, positions_per_account: float = 4.0,
                  collateral_multiple: float = 1.5, seed: int = 0, progress: bool = True) -> dict:
    """Writes a synthetic book (layout in the module docstring) and returns its ``meta``.

    Instruments: per underlying 1 perpetual, 3 futures and options, scanned on the 16 CME SPAN scenarios
    (``experiments.bench_margin.realistic_block_book``). Each account holds k distinct instruments, k uniform in
    1 .. 2 x ``positions_per_account`` - 1 (mean ``positions_per_account``), quantities N(0, 1) x 10 units;
    collateral_usd = ``collateral_multiple`` x 0.4 x lognormal(0, 0.5) x sum_i |q_i| max_s |L_is| (a size-scaled
    draw: with the defaults the median health is about 1.6 and a third of the accounts are below MM, so the
    health distribution has both tails). Parts hold ``accounts_per_shard`` consecutive account ids.
    """
    from experiments.bench_margin import realistic_block_book

    out = Path(book_dir)
    (out / "positions").mkdir(parents=True, exist_ok=True)
    (out / "accounts").mkdir(parents=True, exist_ok=True)
    lm, _, und = realistic_block_book(n_underlyings, instruments_per_underlying, seed)
    n_i, n_s = lm.shape
    cols = {"instrument": pa.array(np.arange(n_i, dtype=np.int32)),
            "name": pa.array([f"U{u}-I{i}" for i, u in enumerate(und)]),
            "underlying": pa.array(und.astype(np.int32))}
    cols.update({f"pnl_{s:03d}": pa.array(lm[:, s]) for s in range(n_s)})
    pq.write_table(pa.table(cols), out / "instruments.parquet")
    rng = np.random.default_rng(seed)
    kmax = max(1, min(n_i, int(round(2 * positions_per_account - 1))))
    scale = np.abs(lm).max(axis=1)  # USD per unit at the worst scenario, a rough size for the collateral
    n_parts = -(-n_accounts // accounts_per_shard)
    for p in tqdm(range(n_parts), desc="generate", disable=not progress):
        a0 = p * accounts_per_shard
        n = min(accounts_per_shard, n_accounts - a0)
        k = rng.integers(1, kmax + 1, n)
        # k distinct instruments per account: the first k of a random permutation of the instruments
        order = np.argsort(rng.random((n, n_i), dtype=np.float32), axis=1)[:, :kmax].astype(np.int32)
        keep = np.arange(kmax)[None, :] < k[:, None]
        acc = np.repeat(np.arange(a0, a0 + n, dtype=np.int64), k)
        inst = order[keep]
        qty = (rng.standard_normal(acc.size) * 10).astype(np.float32)
        name = f"part-{p:05d}.parquet"
        # plain encoding, no compression: decoding is the pipeline's bottleneck, disk is not (16 bytes per row)
        pq.write_table(pa.table([acc, inst, qty], schema=POSITION_SCHEMA), out / "positions" / name,
                       row_group_size=1 << 22, compression="none", use_dictionary=False)
        size = np.bincount(acc - a0, weights=np.abs(qty) * scale[inst], minlength=n)
        coll = collateral_multiple * size * rng.lognormal(0, 0.5, n) * 0.4
        pq.write_table(pa.table([np.arange(a0, a0 + n, dtype=np.int64), coll], schema=ACCOUNT_SCHEMA),
                       out / "accounts" / name)
    meta = {"n_accounts": int(n_accounts), "n_instruments": int(n_i), "n_scenarios": int(n_s), "n_parts": n_parts,
            "generator": {"seed": seed, "n_underlyings": n_underlyings,
                          "instruments_per_underlying": instruments_per_underlying,
                          "positions_per_account": positions_per_account, "accounts_per_shard": accounts_per_shard}}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


# ----------------------------------------------------------------------------- read and check
def load_instruments(book_dir) -> tuple[np.ndarray, np.ndarray]:
    """``(pnl (I, S) float64, underlying (I,))`` from ``instruments.parquet``; checks the instrument column is
    0 .. I-1 in order and the P&L finite (MarginInputError naming file, row, column and value)."""
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
    parts = sorted(p.name for p in (Path(book_dir) / "positions").glob("part-*.parquet"))
    if not parts:
        raise MarginInputError(str(Path(book_dir) / "positions"), "no part-*.parquet files")
    return parts


def read_part(book_dir, name: str, n_instruments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reads one part: ``(local account row (R,), instrument (R,), quantity (R,), collateral (n,))``.

    Raises:
        MarginInputError naming file, row, column and value: missing columns, an account of the positions that
        is not in the accounts file of the same part, instruments outside 0 .. I-1, NaN / inf quantities,
        negative or NaN collateral, unsorted or duplicated account ids.
    """
    ppath = Path(book_dir) / "positions" / name
    apath = Path(book_dir) / "accounts" / name
    if not apath.exists():
        raise MarginInputError(str(apath), f"missing: every positions part needs its accounts part ({name})")
    try:
        pt = pq.read_table(ppath, columns=["account_id", "instrument", "quantity"], use_threads=False)
        at = pq.read_table(apath, columns=["account_id", "collateral_usd"], use_threads=False)
    except (KeyError, pa.ArrowInvalid) as exc:
        raise MarginInputError(str(ppath), f"cannot read the columns of the book schema: {exc}") from exc
    acc = pt["account_id"].to_numpy()
    inst = pt["instrument"].to_numpy()
    qty = pt["quantity"].to_numpy()
    ids = at["account_id"].to_numpy()
    coll = at["collateral_usd"].to_numpy()

    def fail(path, col, mask, msg, values):
        r = int(np.argmax(mask))
        raise MarginInputError(f"{path}: row {r}, column {col}", msg, None, values[r].item())

    if ids.size > 1 and not (np.diff(ids) > 0).all():
        fail(apath, "account_id", np.r_[False, np.diff(ids) <= 0], "must be sorted and unique", ids)
    bad = ~np.isfinite(coll) | (coll < 0)
    if bad.any():
        fail(apath, "collateral_usd", bad, "must be finite and >= 0", coll)
    bad = (inst < 0) | (inst >= n_instruments)
    if bad.any():
        fail(ppath, "instrument", bad, f"must lie in 0 .. {n_instruments - 1}", inst)
    bad = ~np.isfinite(qty)
    if bad.any():
        fail(ppath, "quantity", bad, "must be finite", qty)
    if ids.size and ids[-1] - ids[0] + 1 == ids.size:  # contiguous ids: no search needed
        local = acc - ids[0]
        bad = (local < 0) | (local >= ids.size)
    else:
        local = np.searchsorted(ids, acc)
        bad = (local >= ids.size) | (ids[np.minimum(local, ids.size - 1)] != acc)
    if bad.any():
        fail(ppath, "account_id", bad, f"account not in {apath.name} of accounts/ (one part per account)", acc)
    return local, inst, qty, coll


# ----------------------------------------------------------------------------- margin one part
class Histograms:
    """Fixed log-spaced histograms (bins ``edges``; below-range and zero counted apart) that add up across parts."""

    def __init__(self, lo=1e-2, hi=1e10, per_decade=20, h_lo=1e-3, h_hi=1e3):
        self.edges = np.logspace(np.log10(lo), np.log10(hi), int(round(np.log10(hi / lo) * per_decade)) + 1)
        self.h_edges = np.logspace(np.log10(h_lo), np.log10(h_hi), int(round(np.log10(h_hi / h_lo) * per_decade)) + 1)


PAD_ROWS = 1 << 16


def padded_rows(n: int) -> int:
    """Parts are padded with zero accounts to a multiple of 65,536 rows so that all parts of a book share one or
    two compiled kernels (zero rows have zero margin and are dropped)."""
    return max(PAD_ROWS, -(-n // PAD_ROWS) * PAD_ROWS)


_BUFFERS: dict = {}


def _buffer(slot: int, size: int) -> np.ndarray:
    """A zeroed float32 buffer reused across parts (fresh pages cost a page fault each on every part). Safe
    because each part's kernel result is read back before the next part is scattered."""
    buf = _BUFFERS.get((slot, size))
    if buf is None:
        # 64-byte aligned: jax.device_put then aliases the buffer instead of copying it (XLA:CPU zero-copy)
        raw = np.zeros(size + 16, np.float32)
        off = (-raw.ctypes.data % 64) // 4
        buf = _BUFFERS[(slot, size)] = raw[off:off + size]
    else:
        buf.fill(0)
    return buf


def dense_positions(local, inst, qty, n: int, n_i: int, layout=None) -> list:
    """Scatters one part's rows into dense float32 positions ``(padded_rows(n), I)`` (one array per block of
    ``layout``, block-major, else one array). A duplicated (account, instrument) row overwrites the earlier one
    (checking for duplicates would cost a sort per part; the generator never writes them)."""
    rows = padded_rows(n)
    if layout is None:
        x = _buffer(0, rows * n_i)
        if rows * n_i < 2 ** 31:  # int32 flat index, computed in place (fewer and smaller temporaries)
            flat = local.astype(np.int32)
            flat *= n_i
            flat += inst
        else:
            flat = local * n_i + inst
        x[flat] = qty
        return [x.reshape(rows, n_i)]
    out = []
    col = np.empty(n_i, np.int64)
    blk = np.empty(n_i, np.int64)
    for b, idx in enumerate(layout.instruments):
        col[idx] = np.arange(len(idx))
        blk[idx] = b
    which = blk[inst]
    for b, idx in enumerate(layout.instruments):
        sel = which == b
        x = _buffer(b, rows * len(idx))
        x[local[sel] * len(idx) + col[inst[sel]]] = qty[sel]
        out.append(x.reshape(rows, len(idx)))
    return out


def _kernel(xs, lm, layout, dtype):
    xs = [jax.device_put(x) for x in xs]  # zero-copy for the aligned part buffers
    if layout is not None:
        return margin.portfolio_margin_blocks(xs, layout.pnl_blocks(lm), dtype=dtype, validate=False)
    return margin.portfolio_margin(xs[0], lm, dtype=dtype, validate=False)


def _log_hist(v, edges):
    """Counts of ``v`` in the log-uniform bins ``edges`` (one bincount; faster than np.histogram's search)."""
    lo, step = np.log10(edges[0]), np.log10(edges[1] / edges[0])
    v = v[(v >= edges[0]) & (v < edges[-1])].astype(np.float32)  # float32 log: bins are 12% wide
    j = np.minimum(((np.log10(v) - np.float32(lo)) / np.float32(step)).astype(np.int32), len(edges) - 2)
    return np.bincount(np.maximum(j, 0), minlength=len(edges) - 1)


def margin_part(local, inst, qty, coll, lm, layout, mm_factor: float, edges, h_edges, dtype=jnp.float32) -> dict:
    """IM / MM / health of one part: totals, counts and histogram counts (a dict of NumPy scalars and arrays)."""
    n, n_i = coll.size, lm.shape[0]
    t0 = time.perf_counter()
    xs = dense_positions(local, inst, qty, n, n_i, layout)
    t1 = time.perf_counter()
    im = np.asarray(_kernel(xs, lm, layout, dtype), np.float64)[:n]
    t2 = time.perf_counter()
    mm = mm_factor * im
    with np.errstate(divide="ignore", invalid="ignore"):
        health = np.where(mm > 0, coll / np.where(mm > 0, mm, 1), np.inf)
    fin = np.isfinite(health)
    out = {
        "n_accounts": n, "n_positions": int(local.size),
        "sum_im": float(im.sum()), "sum_mm": float(mm.sum()), "sum_collateral": float(coll.sum()),
        "max_im": float(im.max(initial=0)), "n_zero_margin": int((im == 0).sum()),
        "n_below_mm": int((health < 1).sum()), "n_below_im": int((coll < im).sum()),
        "shortfall_mm": float(np.maximum(mm - coll, 0).sum()),
        "hist_im": _log_hist(im, edges), "hist_mm": _log_hist(mm, edges),
        "hist_health": _log_hist(health[fin], h_edges),
        "n_health_below": int((health[fin] < h_edges[0]).sum()), "n_health_above": int((health[fin] >= h_edges[-1]).sum()),
        "n_im_above": int((im >= edges[-1]).sum()),
    }
    out.update(t_scatter=t1 - t0, t_kernel=t2 - t1, t_aggregate=time.perf_counter() - t2)
    return out


def _combine(total: dict | None, part: dict) -> dict:
    if total is None:
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in part.items()}
    for k, v in part.items():
        total[k] = max(total[k], v) if k.startswith("max_") else total[k] + v
    return total


def _run_part(book_dir, name, lm, layout, mm_factor, edges, h_edges, dtype):
    return margin_part(*read_part(book_dir, name, lm.shape[0]), lm, layout, mm_factor, edges, h_edges, dtype)


def _ray_address(cfg) -> str | None:
    return cfg.ray.address or os.environ.get("RAY_ADDRESS") or None


def run_book(book_dir, *, mm_factor=0.8, blocks="auto", backend="auto", ray_cfg=None, hist=None, dtype="float32",
             prefetch=True, progress=True) -> dict:
    """Margins every part of the book; returns the combined totals, counts and histograms plus timings.

    Args:
        backend: ``"local"`` (this process, one part at a time, the next part read ahead on a thread),
            ``"ray"`` (one Ray task per part, at most 2 x cluster CPUs in flight) or ``"auto"`` (Ray when
            ``ray_cfg.address`` or ``RAY_ADDRESS`` is set).
        blocks: ``"auto"`` (block kernel when the scenario matrix is block-structured) or ``"dense"``.
    """
    t0 = time.perf_counter()
    ray_cfg = ray_cfg or OmegaConf.create({"address": None, "num_cpus": None})
    hist = hist or {}
    h = Histograms(**hist)
    lm, _ = load_instruments(book_dir)
    layout = margin.detect_block_layout(lm) if blocks == "auto" else None
    if layout is not None and layout.n_blocks < 2:
        layout = None
    parts = list_parts(book_dir)
    dt = jnp.dtype(dtype)
    use_ray = backend == "ray" or (backend == "auto" and _ray_address(OmegaConf.create({"ray": ray_cfg})) is not None)
    tc = time.perf_counter()
    meta_path = Path(book_dir) / "meta.json"
    if meta_path.exists() and not use_ray:  # compile the kernels for the part shapes before the clock of the parts starts
        meta = json.loads(meta_path.read_text())
        per = meta.get("generator", {}).get("accounts_per_shard", meta["n_accounts"])
        for n in {min(per, meta["n_accounts"]), meta["n_accounts"] % per or per}:
            e = np.zeros(0, np.int64)
            jax.block_until_ready(_kernel(dense_positions(e, e, np.zeros(0, np.float32), n, lm.shape[0], layout),
                                          lm, layout, dt))
    compile_s = time.perf_counter() - tc
    total = None
    if use_ray:
        import ray

        addr = ray_cfg.address or os.environ.get("RAY_ADDRESS")
        tr0 = time.perf_counter()
        if not ray.is_initialized():
            renv = ray_cfg.get("runtime_env")
            ray.init(address=addr, num_cpus=None if addr else ray_cfg.num_cpus, include_dashboard=False,
                     log_to_driver=False,
                     runtime_env=OmegaConf.to_container(renv) if isinstance(renv, DictConfig) else renv)
        compile_s += time.perf_counter() - tr0  # Ray start-up is set-up, like compilation
        task = ray.remote(num_cpus=1)(_run_part)
        lm_ref = ray.put(lm)
        width = max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))
        pending, queue = [], list(parts)
        with tqdm(total=len(parts), desc="parts (ray)", disable=not progress) as bar:
            while queue or pending:
                while queue and len(pending) < width:
                    pending.append(task.remote(str(book_dir), queue.pop(0), lm_ref, layout, mm_factor, h.edges,
                                               h.h_edges, dt))
                done, pending = ray.wait(pending, num_returns=1)
                total = _combine(total, ray.get(done[0]))
                bar.update(1)
    else:
        pool = ThreadPoolExecutor(1) if prefetch else None
        nxt = pool.submit(read_part, book_dir, parts[0], lm.shape[0]) if pool else None
        t_read = 0.0
        for j, name in enumerate(tqdm(parts, desc="parts", disable=not progress)):
            tr = time.perf_counter()
            data = nxt.result() if pool else read_part(book_dir, name, lm.shape[0])
            t_read += time.perf_counter() - tr
            if pool and j + 1 < len(parts):
                nxt = pool.submit(read_part, book_dir, parts[j + 1], lm.shape[0])
            total = _combine(total, margin_part(*data, lm, layout, mm_factor, h.edges, h.h_edges, dt))
            del data
        if pool:
            pool.shutdown()
        total["t_read_wait"] = t_read
    total["compile_s"] = compile_s
    total["seconds"] = time.perf_counter() - t0 - compile_s
    total["accounts_per_s"] = total["n_accounts"] / total["seconds"]
    total["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    total.update({"backend": "ray" if use_ray else "local", "n_parts": len(parts), "n_instruments": lm.shape[0],
                  "n_scenarios": lm.shape[1], "n_blocks": layout.n_blocks if layout else 1,
                  "edges": h.edges, "h_edges": h.h_edges, "mm_factor": mm_factor})
    return total


def in_memory_rate(book_dir, n_accounts: int, *, blocks="auto", repeats=3, dtype="float32") -> dict:
    """Throughput of the jitted kernel alone on ``n_accounts`` dense positions already in memory (the first parts
    of the book): the reference the Parquet pipeline is judged against."""
    lm, _ = load_instruments(book_dir)
    layout = margin.detect_block_layout(lm) if blocks == "auto" else None
    layout = layout if layout is not None and layout.n_blocks > 1 else None
    xs_parts, got = [], 0
    for name in list_parts(book_dir):
        local, inst, qty, coll = read_part(book_dir, name, lm.shape[0])
        n = coll.size
        xs_parts.append(dense_positions(local, inst, qty, n, lm.shape[0])[0][:n])
        got += n
        if got >= n_accounts:
            break
    x_np = np.concatenate(xs_parts)[:n_accounts]
    del xs_parts
    if layout is not None:
        xs = margin.split_positions(x_np, layout)
        ls = layout.pnl_blocks(lm.astype(np.float32))
        fn = lambda: margin.portfolio_margin_blocks(xs, ls, validate=False)  # noqa: E731
    else:
        x = jnp.asarray(x_np)
        fn = lambda: margin.portfolio_margin(x, lm, dtype=jnp.dtype(dtype), validate=False)  # noqa: E731
    jax.block_until_ready(fn())
    best = min(_timed(fn) for _ in range(repeats))
    return {"in_memory_accounts": int(x_np.shape[0]), "in_memory_s": best,
            "in_memory_accounts_per_s": x_np.shape[0] / best}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- report
def _hist_quantile(counts, edges, below: int, q: float) -> float:
    """Quantile from histogram counts (upper bin edge; resolution one bin: 10^(1/bins_per_decade))."""
    c = np.cumsum(np.r_[below, counts])
    if c[-1] == 0:
        return float("nan")
    j = int(np.searchsorted(c, q * c[-1]))
    return float(edges[min(j, len(edges) - 1)])


def summary_rows(res: dict, targets: dict | None = None) -> list:
    n = res["n_accounts"]
    e, he = res["edges"], res["h_edges"]
    nz = n - res["n_zero_margin"]
    q = lambda key, qq: _hist_quantile(res[key], e, 0, qq)  # noqa: E731
    hq = lambda qq: _hist_quantile(res["hist_health"], he, res["n_health_below"], qq)  # noqa: E731
    rows = [
        Row("accounts / positions / parts", f"{n:,} / {res['n_positions']:,} / {res['n_parts']}",
            note=f"{res['n_instruments']} instruments x {res['n_scenarios']} scenarios, {res['n_blocks']} block(s), "
                 f"backend {res['backend']}"),
        Row("total IM", res["sum_im"], "USD", note=f"max {res['max_im']:,.0f} USD"),
        Row("total MM", res["sum_mm"], "USD", note=f"mm_factor {res['mm_factor']}"),
        Row("total collateral", res["sum_collateral"], "USD"),
        Row("accounts below MM (health < 1)", res["n_below_mm"], "accounts",
            note=f"{res['n_below_mm'] / max(n, 1):.2%}; total MM shortfall {res['shortfall_mm']:,.0f} USD"),
        Row("accounts below IM", res["n_below_im"], "accounts", note=f"{res['n_below_im'] / max(n, 1):.2%}"),
        Row("IM quantiles p50 / p90 / p99 (accounts with IM > 0)",
            f"{q('hist_im', .5):,.4g} / {q('hist_im', .9):,.4g} / {q('hist_im', .99):,.4g}", "USD",
            note=f"{nz:,} accounts; histogram bins, resolution one bin"),
        Row("MM quantiles p50 / p90 / p99", f"{q('hist_mm', .5):,.4g} / {q('hist_mm', .9):,.4g} / "
                                            f"{q('hist_mm', .99):,.4g}", "USD"),
        Row("health quantiles p1 / p10 / p50", f"{hq(.01):.4g} / {hq(.1):.4g} / {hq(.5):.4g}", "",
            note="health = collateral / MM"),
        Row("wall time, read + margin all parts", res["seconds"], "s",
            note=f"set-up before the parts (kernel compile; Ray start-up): {res.get('compile_s', 0):.2f} s, not "
                 "included" + ("; Ray workers compile inside the timed part" if res["backend"] == "ray" else "")),
        Row("throughput from Parquet", res["accounts_per_s"], "accounts/s",
            note="stage seconds: " + ", ".join(f"{k[2:]} {res[k]:.2f}" for k in
                                               ("t_read_wait", "t_scatter", "t_kernel", "t_aggregate") if k in res)
            + (" (read overlaps the other stages on a thread; read_wait is the time spent waiting for it)"
               if "t_read_wait" in res else "")),
    ]
    mem_t = (targets or {}).get("peak_rss_gb")
    rows.append(Row("peak memory of this process (max RSS)", res["peak_rss_gb"], "GB",
                    f"< {mem_t} GB" if mem_t else "", (res["peak_rss_gb"] < mem_t) if mem_t else None,
                    "Ray workers not included" if res["backend"] == "ray" else ""))
    if "in_memory_accounts_per_s" in res:
        frac = res["accounts_per_s"] / res["in_memory_accounts_per_s"]
        ft = (targets or {}).get("fraction_of_in_memory")
        rows += [
            Row(f"in-memory kernel alone, {res['in_memory_accounts']:,} accounts", res["in_memory_accounts_per_s"],
                "accounts/s", note=f"{res['in_memory_s'] * 1e3:.1f} ms; positions already dense in memory"),
            Row("Parquet pipeline / in-memory kernel throughput", frac, "x", f">= {ft}" if ft else "",
                (frac >= ft) if ft else None),
        ]
    return rows


def plot(res: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    e, he = res["edges"], res["h_edges"]
    ax[0].stairs(res["hist_im"], e, label="IM")
    ax[0].stairs(res["hist_mm"], e, label="MM")
    ax[0].set(xscale="log", xlabel="USD per account", ylabel="accounts", title="IM and MM (accounts with margin)")
    nz = np.flatnonzero(np.asarray(res["hist_im"]) + np.asarray(res["hist_mm"]))
    if nz.size:  # show the populated bins only
        ax[0].set_xlim(e[max(nz[0] - 2, 0)], e[min(nz[-1] + 3, len(e) - 1)])
    ax[0].legend()
    ax[1].stairs(res["hist_health"], he, color="C2")
    ax[1].axvline(1.0, color="k", lw=0.8, ls="--")
    ax[1].set(xscale="log", xlabel="health = collateral / MM", ylabel="accounts",
              title=f"health ({res['n_below_mm']:,} accounts below 1)")
    fig.suptitle(f"margin_book: {res['n_accounts']:,} accounts")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(res: dict, out_dir, targets=None, echo=True) -> None:
    raw = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}
    write_report("margin_book", summary_rows(res, targets), out_dir,
                 context={"book_dir": str(res.get("book_dir")), "backend": res["backend"],
                          "jax_backend": jax.default_backend()}, extra=raw, echo=echo)
    plot(res, Path(out_dir) / "margin_book_hist.png")


# ----------------------------------------------------------------------------- entry point
def run(cfg: DictConfig, out_dir) -> dict:
    """``mode``: ``generate`` (write a synthetic book), ``run`` (margin the book), ``bench`` (generate if
    missing, run, and compare with the in-memory kernel against ``targets``)."""
    book = Path(cfg.book_dir)
    g = cfg.generate
    if cfg.mode not in ("generate", "run", "bench"):
        raise MarginInputError("mode", "must be generate, run or bench", None, cfg.mode)
    if cfg.mode == "generate" or (cfg.mode == "bench" and not (book / "meta.json").exists()):
        meta = generate_book(book, g.n_accounts, g.accounts_per_shard, g.n_underlyings, g.instruments_per_underlying,
                             g.positions_per_account, g.collateral_multiple, g.seed, progress=cfg.progress)
        if cfg.mode == "generate":
            return {"meta": meta}
    res = run_book(book, mm_factor=cfg.mm_factor, blocks=cfg.blocks, backend=cfg.backend, ray_cfg=cfg.ray,
                   hist=OmegaConf.to_container(cfg.histogram), dtype=cfg.dtype, prefetch=cfg.prefetch,
                   progress=cfg.progress)
    res["book_dir"] = str(book)
    targets = None
    if cfg.mode == "bench":
        res.update(in_memory_rate(book, cfg.bench.in_memory_accounts, blocks=cfg.blocks, repeats=cfg.bench.repeats,
                                  dtype=cfg.dtype))
        res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        targets = OmegaConf.to_container(cfg.targets)
    report(res, out_dir, targets)
    return res


@hydra.main(version_base=None, config_path=str(Path(__file__).resolve().parents[1] / "conf"),
            config_name="margin_book")
def main(cfg: DictConfig) -> dict:
    from hydra.core.hydra_config import HydraConfig

    return run(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
