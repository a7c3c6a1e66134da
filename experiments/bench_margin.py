"""Benchmark of the margin kernels (issue 3 item 10). Prints a table; run `python -m experiments.bench_margin`.

Measures, in one run and on the same data:
- portfolio margin of N accounts x I instruments x S scenarios (fused jitted matmul + min + add-on, float32),
  against (a) vectorised NumPy, (b) a per-account Python loop (timed on a sample, extrapolated) and
  (c) one streaming pass over the same positions array (a jitted per-row reduction: the memory-bandwidth floor);
- the same kernel with host-side chunking over a larger host (NumPy) array;
- Black-76 price + delta, gamma, vega, theta for M options (JAX float32 / float64) against NumPy + SciPy;
- a block-structured book (issue 13 item 5): U underlyings x I_u instruments (perpetual, futures, options) x
  16 CME SPAN scenarios per underlying, so the (U I_u, U 16) P&L matrix is block-diagonal: the dense kernel
  against the block kernel (:func:`margin.portfolio_margin_blocks`, block-major positions; and from an (N, I)
  array including the copy into blocks) and the block-sparse kernel (:func:`margin.portfolio_margin_block_sparse`:
  each block stores only the rows of the accounts holding it), beside the rate of a large square float32 matmul (sgemm) in JAX
  measured in the same run, so every figure is read against the machine's limit.

Timings are the best of ``repeats`` runs after a warm-up (compilation excluded; reported separately). The figures
and their targets go through :mod:`experiments.bench_report` (``bench_margin.json`` / ``.md`` in the run dir).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from experiments._cli import hydra_app
import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import DictConfig
from scipy.special import ndtr as sp_ndtr

import margin
from experiments.bench_report import Row, write_report
from margin.rules.requirements import _portfolio_kernel


def _best(fn, repeats: int) -> float:
    """Best wall time (s) of ``repeats`` calls after one warm-up; blocks on JAX results."""
    jax.block_until_ready(fn())
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return min(ts)


def _best_interleaved(fns: dict, repeats: int) -> dict:
    """Best wall time (s) of each callable in ``fns`` over ``repeats`` rounds after one warm-up call of each; every
    round calls each callable once in turn (blocking on JAX results), so load that drifts during the run (a shared
    machine) hits every figure alike instead of whichever phase it happened to fall on."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            ts[k].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in ts.items()}


def _numpy_greeks(f, k, t, v, c):
    sq = v * np.sqrt(t)
    d1 = (np.log(f / k) + 0.5 * sq * sq) / sq
    d2 = d1 - sq
    nd1 = sp_ndtr(d1)
    pdf = np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi)
    price = np.where(c, f * nd1 - k * sp_ndtr(d2), k * sp_ndtr(-d2) - f * sp_ndtr(-d1))
    delta = np.where(c, nd1, nd1 - 1)
    gamma = pdf / (f * sq)
    vega = f * pdf * np.sqrt(t)
    theta = -f * pdf * v / (2 * np.sqrt(t))
    return price, delta, gamma, vega, theta


def bench(n_accounts=1_000_000, n_instruments=64, n_scenarios=32, n_options=1_000_000, loop_sample=2000,
          chunk_size=65_536, repeats=5, seed=0, blocks=None) -> dict:
    """Runs the benchmark and returns the figures (seconds, ratios) as a dict; ``blocks`` (a mapping with
    ``enabled`` and the arguments of :func:`bench_blocks`) adds the dense-vs-block-vs-sgemm figures."""
    rng = np.random.default_rng(seed)
    x_np = (rng.standard_normal((n_accounts, n_instruments)) * (rng.random((n_accounts, n_instruments)) < 0.5)
            ).astype(np.float32)
    lm_np = rng.standard_normal((n_instruments, n_scenarios)).astype(np.float32)
    x = jnp.asarray(x_np)
    lm = jnp.asarray(lm_np)
    zeros = jnp.zeros((n_accounts,), jnp.float32)
    out = {"n_accounts": n_accounts, "n_instruments": n_instruments, "n_scenarios": n_scenarios,
           "devices": len(jax.devices()), "backend": jax.default_backend()}

    t0 = time.perf_counter()
    jax.block_until_ready(_portfolio_kernel(x, zeros, lm))
    out["compile_s"] = time.perf_counter() - t0
    out["fused_s"] = _best(lambda: _portfolio_kernel(x, zeros, lm), repeats)
    out["api_s"] = _best(lambda: margin.portfolio_margin(x, lm, validate=False), repeats)
    out["api_validated_s"] = _best(lambda: margin.portfolio_margin(x, lm), repeats)
    out["stream_s"] = _best(lambda: margin.streaming_pass(x), repeats)
    out["numpy_s"] = _best(lambda: np.maximum(-(x_np @ lm_np).min(axis=1), 0), max(2, repeats // 2))

    idx = rng.choice(n_accounts, loop_sample, replace=False)

    def loop():
        res = np.empty(loop_sample, np.float32)
        for j, a in enumerate(idx):
            res[j] = max(0.0, -float((x_np[a] @ lm_np).min()))
        return res

    out["loop_s"] = _best(loop, 2) * n_accounts / loop_sample
    py_sample = max(1, loop_sample // 20)
    t0 = time.perf_counter()
    margin.portfolio_margin_reference(x_np[idx[:py_sample]], lm_np)
    out["pyloop_s"] = (time.perf_counter() - t0) * n_accounts / py_sample
    ref = np.maximum(-(x_np[idx] @ lm_np).min(axis=1), 0)
    got = np.asarray(_portfolio_kernel(x, zeros, lm))[idx]
    out["max_abs_diff_vs_numpy"] = float(np.max(np.abs(got - ref)))
    out["max_abs_diff_vs_loop"] = float(np.max(np.abs(got - loop())))
    del x

    # the same accounts through the chunked path (one jitted fori_loop over blocks of chunk_size accounts)
    if chunk_size and chunk_size < n_accounts:
        x = jnp.asarray(x_np)
        out["chunked_s"] = _best(lambda: margin.portfolio_margin(x, lm, chunk_size=chunk_size, validate=False),
                                 repeats)
        out["chunk_size"] = chunk_size
        out["chunked_ok"] = bool(np.allclose(np.asarray(margin.portfolio_margin(x, lm, chunk_size=chunk_size)),
                                             np.asarray(_portfolio_kernel(x, zeros, lm)), rtol=1e-6, atol=1e-6))
        del x

    # Greeks for n_options options
    f = rng.uniform(5_000, 15_000, n_options)
    k = f * np.exp(rng.normal(0, 0.3, n_options))
    t = rng.uniform(1 / 365, 1.0, n_options)
    v = rng.uniform(0.3, 1.5, n_options)
    c = rng.random(n_options) < 0.5
    for name, dt in (("f32", np.float32), ("f64", np.float64)):
        fj, kj, tj, vj = (jnp.asarray(a, dt) for a in (f, k, t, v))
        cj = jnp.asarray(c)
        out[f"greeks_jax_{name}_s"] = _best(
            lambda: margin.black76_greeks(fj, kj, tj, vj, cj, dtype=dt, validate=False), repeats)
        fn, kn, tn, vn = (a.astype(dt) for a in (f, k, t, v))
        out[f"greeks_numpy_{name}_s"] = _best(lambda: _numpy_greeks(fn, kn, tn, vn, c), max(2, repeats // 2))
    g = margin.black76_greeks(f, k, t, v, c, dtype=jnp.float64)
    ref = _numpy_greeks(f, k, t, v, c)
    out["greeks_max_rel_diff_f64"] = float(max(np.max(np.abs(np.asarray(a) - b) / (1 + np.abs(b)))
                                               for a, b in zip(g, ref)))
    out["n_options"] = n_options
    blk = dict(blocks or {})
    if blk.pop("enabled", False):
        out.update(bench_blocks(**{"repeats": repeats, "seed": seed, **blk}))
    return out


def realistic_block_book(n_underlyings=4, per_underlying=16, seed=0):
    """A book of ``n_underlyings`` x ``per_underlying`` instruments (per underlying: 1 perpetual, 3 futures and
    options on 3 expiries), scanned per underlying on the 16 CME SPAN scenarios (PSR 10% of the forward, VSR 4
    vol points, extremes 2 x PSR at 35%).

    Returns:
        ``(pnl (I, 16 U) float64 block-diagonal, BlockLayout, underlying (I,))``.
    """
    rng = np.random.default_rng(seed)
    u, m = n_underlyings, per_underlying
    if m < 5:
        raise ValueError("per_underlying must be >= 5")
    kinds, und, strike, expiry, otype = [], [], [], [], []
    fwd = 100.0 * np.exp(rng.normal(0, 2, u))
    for j in range(u):
        n_opt = m - 4
        kinds += ["linear_perpetual"] + ["linear_future"] * 3 + ["option"] * n_opt
        und += [j] * m
        expiry += [0.0, 0.1, 0.25, 0.5] + list(rng.choice([0.05, 0.25, 0.5], n_opt))
        strike += [0.0] * 4 + list(fwd[j] * np.exp(rng.normal(0, 0.2, n_opt)))
        otype += [""] * 4 + list(rng.choice(["C", "P"], n_opt))
    inst = margin.Instruments.create(kinds, underlying=und, strike=strike, expiry=expiry, option_type=otype)
    vols = np.where(inst.is_option, rng.uniform(0.4, 1.0, inst.size), 1.0)
    sc = margin.span_scenarios(inst, fwd, vols, 0.1 * fwd, np.full(u, 0.04))
    und = np.asarray(inst.underlying)
    lm = np.zeros((inst.size, 16 * u))
    for j in range(u):
        lm[und == j, 16 * j:16 * (j + 1)] = np.asarray(sc.pnl)[und == j]
    layout = margin.block_layout(und, np.repeat(np.arange(u), 16))
    return lm, layout, und


def bench_blocks(n_accounts=1_000_000, n_underlyings=4, per_underlying=16, sgemm_n=4096, repeats=5, seed=0):
    """Dense vs block vs block-sparse kernel on :func:`realistic_block_book`, and the sgemm rate, in one run."""
    rng = np.random.default_rng(seed)
    lm, layout, und = realistic_block_book(n_underlyings, per_underlying, seed)
    n_i, n_s = lm.shape
    # accounts hold 1-3 underlyings with most of their instruments: positions dense within held underlyings
    held = rng.random((n_accounts, n_underlyings)) < 0.5
    x_np = (rng.standard_normal((n_accounts, n_i)) * held[:, und]).astype(np.float32)
    out = {"block_n_accounts": n_accounts, "block_n_instruments": n_i, "block_n_scenarios": n_s,
           "block_n_blocks": layout.n_blocks, "block_flop_fraction": layout.flop_fraction(n_i, n_s)}
    x = jnp.asarray(x_np)
    lmj = jnp.asarray(lm, jnp.float32)
    zeros = jnp.zeros((n_accounts,), jnp.float32)
    xs = margin.split_positions(x_np, layout)
    ls = tuple(jnp.asarray(b) for b in layout.pnl_blocks(lm.astype(np.float32)))  # on device, as the dense lmj
    # block-sparse: each block keeps only the rows of the accounts that hold it, plus the (N, B) row index
    sp = margin.sparse_block_positions(x_np, layout)
    a = jnp.asarray(rng.standard_normal((sgemm_n, sgemm_n)), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    # dense, block and sgemm timed in the same rounds (same warm-up, best of the same number of repeats)
    out["block_loadavg_before"] = os.getloadavg()[0]
    t = _best_interleaved({
        "sgemm_s": lambda: mm(a),
        "dense_s": lambda: _portfolio_kernel(x, zeros, lmj),
        "block_s": lambda: margin.portfolio_margin_blocks(xs, ls, validate=False),
        "block_sparse_s": lambda: margin.portfolio_margin_block_sparse(sp, ls, validate=False),
        # last in each round: it allocates and frees 256 MB of block copies, and the call right after it paid
        # ~5 ms of fresh-page faults on its outputs (measured: block-sparse 13.8 ms after it, 8.5 ms otherwise)
        "block_from_dense_s": lambda: margin.portfolio_margin(x, lm, blocks=layout, validate=False),
    }, repeats)
    out["block_loadavg_after"] = os.getloadavg()[0]
    out.update(t)
    dense = np.asarray(_portfolio_kernel(x, zeros, lmj))
    got = np.asarray(margin.portfolio_margin_blocks(xs, ls, validate=False))
    out["block_max_abs_diff"] = float(np.max(np.abs(got - dense)))
    out["block_max_rel_diff"] = float(np.max(np.abs(got - dense) / np.maximum(1.0, np.abs(dense))))
    ref64 = np.asarray(margin.portfolio_margin(x_np[:2000], lm, dtype=jnp.float64))
    out["block_ref64_max_rel_diff"] = float(np.max(np.abs(got[:2000] - ref64) / np.maximum(1.0, np.abs(ref64))))
    got_sp = np.asarray(margin.portfolio_margin_block_sparse(sp, ls, validate=False))
    out["block_sparse_max_abs_diff"] = float(np.max(np.abs(got_sp - dense)))
    out["block_sparse_max_rel_diff"] = float(np.max(np.abs(got_sp - dense) / np.maximum(1.0, np.abs(dense))))
    out["block_sparse_ref64_max_rel_diff"] = float(np.max(np.abs(got_sp[:2000] - ref64)
                                                          / np.maximum(1.0, np.abs(ref64))))
    # bytes each kernel reads from memory (positions + index; the P&L blocks and the (N,) output are the same
    # few MB for all): dense and block read every position entry, block-sparse only the held blocks' rows
    out["dense_read_bytes"] = int(x_np.nbytes)
    out["block_read_bytes"] = int(sum(xb.size for xb in xs) * 4)
    out["block_sparse_read_bytes"] = sp.nbytes() + 4 * sum(int(r.shape[0]) for r in sp.rows)  # + per-row worst
    out["block_sparse_stored_fraction"] = sp.stored_fraction()
    del x, xs, a, sp
    out["sgemm_n"] = sgemm_n
    out["sgemm_gflops"] = 2 * sgemm_n ** 3 / out["sgemm_s"] / 1e9
    out["dense_gflops"] = 2 * n_accounts * n_i * n_s / out["dense_s"] / 1e9
    out["block_useful_gflops"] = 2 * n_accounts * n_i * n_s * out["block_flop_fraction"] / out["block_s"] / 1e9
    out["block_sparse_useful_gflops"] = (2 * n_accounts * n_i * n_s * out["block_flop_fraction"]
                                         * out["block_sparse_stored_fraction"] / out["block_sparse_s"] / 1e9)
    return out


def rows(r: dict) -> list:
    """The figures as :class:`~experiments.bench_report.Row` with targets and verdicts."""
    n, fused = r["n_accounts"], r["fused_s"]
    shape = f"{n:,} x {r['n_instruments']} x {r['n_scenarios']}"
    out = [
        Row(f"fused kernel, {shape}, float32", fused * 1e3, "ms", note=f"{n / fused:,.0f} accounts/s"),
        Row("fused vs streaming pass over positions", fused / r["stream_s"], "x", "<= 2 x",
            fused / r["stream_s"] <= 2, f"streaming {r['stream_s'] * 1e3:.1f} ms"),
        Row("fused speed-up vs vectorised NumPy", r["numpy_s"] / fused, "x", ">= 5 x", r["numpy_s"] / fused >= 5,
            f"NumPy {r['numpy_s'] * 1e3:.1f} ms"),
        Row("fused speed-up vs per-account loop (extrapolated)", r["loop_s"] / fused, "x", ">= 100 x",
            r["loop_s"] / fused >= 100),
        Row("max |fused - NumPy|", r["max_abs_diff_vs_numpy"], "", note="float32"),
    ]
    if "chunked_s" in r:
        out.append(Row(f"chunked path, {r['chunk_size']:,} accounts/block", r["chunked_s"] * 1e3, "ms",
                       "equal to fused", r["chunked_ok"]))
    g = r["greeks_numpy_f64_s"] / r["greeks_jax_f64_s"]
    out.append(Row(f"Black-76 Greeks, {r['n_options']:,} options, JAX f64 vs NumPy/SciPy f64", g, "x", ">= 3 x",
                   g >= 3, f"JAX f32 {r['greeks_jax_f32_s'] * 1e3:.1f} ms, f64 {r['greeks_jax_f64_s'] * 1e3:.1f} ms"))
    if "dense_s" in r:
        bshape = (f"{r['block_n_accounts']:,} accounts x {r['block_n_blocks']} underlyings x "
                  f"{r['block_n_instruments'] // r['block_n_blocks']} instruments x 16 scenarios each")
        sp = r["dense_s"] / r["block_s"]
        out += [
            Row(f"sgemm rate, {r['sgemm_n']}^2 float32 matmul (JAX)", r["sgemm_gflops"], "GFLOP/s",
                note=f"{r['sgemm_s'] * 1e3:.1f} ms; the machine's limit in this run; timed in the same rounds as "
                     f"the kernels below (load average {r['block_loadavg_before']:.2f} -> "
                     f"{r['block_loadavg_after']:.2f})"),
            Row(f"dense kernel, {bshape}", r["dense_s"] * 1e3, "ms",
                note=f"{r['block_n_accounts'] / r['dense_s']:,.0f} accounts/s, {r['dense_gflops']:.0f} GFLOP/s"),
            Row("dense kernel rate vs sgemm rate (sgemm / dense)", r["sgemm_gflops"] / r["dense_gflops"], "x",
                "<= 1.1 x", r["sgemm_gflops"] / r["dense_gflops"] <= 1.1),
            Row(f"block kernel (block-major positions), same book", r["block_s"] * 1e3, "ms",
                note=f"{r['block_n_accounts'] / r['block_s']:,.0f} accounts/s, "
                     f"{r['block_flop_fraction']:.3f} of the dense arithmetic, "
                     f"{r['block_useful_gflops']:.0f} GFLOP/s useful"),
            Row("block speed-up vs dense, same book", sp, "x", ">= 2 x", sp >= 2),
            Row("block kernel from an (N, I) array incl. the copy into blocks", r["block_from_dense_s"] * 1e3, "ms",
                note=f"{r['dense_s'] / r['block_from_dense_s']:.2f} x vs dense"),
            Row("block vs dense results, max |diff| / max(1, |dense|)", r["block_max_rel_diff"], "",
                "<= 1e-4 (float32 rounding)", r["block_max_rel_diff"] <= 1e-4,
                f"vs float64 reference: {r['block_ref64_max_rel_diff']:.1e}"),
        ]
    if "block_sparse_s" in r:
        mb = 1 << 20
        spd = r["dense_s"] / r["block_sparse_s"]
        out += [
            Row("block-sparse kernel (only held blocks' rows + (N, B) index), same book", r["block_sparse_s"] * 1e3,
                "ms", note=f"{r['block_n_accounts'] / r['block_sparse_s']:,.0f} accounts/s, "
                           f"{r['block_sparse_stored_fraction']:.3f} of the block rows stored, "
                           f"{r['block_sparse_useful_gflops']:.0f} GFLOP/s useful; reads "
                           f"{r['block_sparse_read_bytes'] / mb:.0f} MiB (rows + index + per-row worst) vs "
                           f"{r['block_read_bytes'] / mb:.0f} MiB block, {r['dense_read_bytes'] / mb:.0f} MiB dense; "
                           f"{r['block_s'] / r['block_sparse_s']:.2f} x vs block"),
            Row("block-sparse speed-up vs dense, same book", spd, "x", ">= 2 x", spd >= 2),
            Row("block-sparse vs dense results, max |diff| / max(1, |dense|)", r["block_sparse_max_rel_diff"], "",
                "<= 1e-4 (float32 rounding)", r["block_sparse_max_rel_diff"] <= 1e-4,
                f"max |diff| {r['block_sparse_max_abs_diff']:.1e}; vs float64 reference: "
                f"{r['block_sparse_ref64_max_rel_diff']:.1e}"),
        ]
    return out


def format_table(r: dict) -> str:
    n = r["n_accounts"]
    lines = [
        f"margin benchmark: backend={r['backend']} devices={r['devices']}; portfolio margin {n:,} accounts x "
        f"{r['n_instruments']} instruments x {r['n_scenarios']} scenarios, float32",
        f"{'what':<52}{'time ms':>12}{'accounts/s':>16}{'fused is x faster':>20}",
    ]
    fused = r["fused_s"]

    def row(name, s, count=n):
        lines.append(f"{name:<52}{s * 1e3:>12.1f}{count / s:>16,.0f}{s / fused:>20.2f}")

    row("fused jit kernel (matmul+min+add-on)", fused)
    row("portfolio_margin() API, validate=False", r["api_s"])
    row("portfolio_margin() API, with input validation", r["api_validated_s"])
    row("(c) streaming pass over positions (floor)", r["stream_s"])
    row("(a) vectorised NumPy", r["numpy_s"])
    row("(b) per-account Python loop, NumPy per account (extr.)", r["loop_s"])
    row("(b') pure-Python loop reference (extrapolated)", r["pyloop_s"])
    if "chunked_s" in r:
        row(f"chunked path, {r['chunk_size']:,} accounts/block (equal={r['chunked_ok']})", r["chunked_s"])
    lines.append(f"compile time of the fused kernel: {r['compile_s'] * 1e3:.0f} ms; "
                 f"max |fused - NumPy| = {r['max_abs_diff_vs_numpy']:.2e}, "
                 f"max |fused - loop| = {r['max_abs_diff_vs_loop']:.2e}")
    lines.append(f"targets: fused <= 2 x streaming: {fused / r['stream_s']:.2f} x; "
                 f">= 5 x NumPy: {r['numpy_s'] / fused:.1f} x; >= 100 x loop: {r['loop_s'] / fused:.0f} x "
                 f"(NumPy-per-account loop), {r['pyloop_s'] / fused:.0f} x (pure-Python loop)")
    m = r["n_options"]
    lines.append("")
    lines.append(f"Black-76 price + delta, gamma, vega, theta for {m:,} options")
    lines.append(f"{'what':<52}{'time ms':>12}{'options/s':>16}")
    for key, name in (("greeks_jax_f32_s", "JAX float32"), ("greeks_jax_f64_s", "JAX float64"),
                      ("greeks_numpy_f32_s", "NumPy + SciPy float32"), ("greeks_numpy_f64_s", "NumPy + SciPy float64")):
        lines.append(f"{name:<52}{r[key] * 1e3:>12.1f}{m / r[key]:>16,.0f}")
    lines.append(f"speed-up JAX f32 vs NumPy/SciPy f32: {r['greeks_numpy_f32_s'] / r['greeks_jax_f32_s']:.1f} x, "
                 f"vs f64: {r['greeks_numpy_f64_s'] / r['greeks_jax_f32_s']:.1f} x; JAX f64 vs NumPy f64: "
                 f"{r['greeks_numpy_f64_s'] / r['greeks_jax_f64_s']:.1f} x (target >= 3 x); "
                 f"max rel diff (f64) {r['greeks_max_rel_diff_f64']:.1e}")
    return "\n".join(lines)


@hydra_app("bench_margin")
def main(cfg: DictConfig) -> dict:
    r = bench(**{k: v for k, v in cfg.items() if k != "hydra"})
    print(format_table(r))
    from hydra.core.hydra_config import HydraConfig
    write_report("bench_margin", rows(r), HydraConfig.get().runtime.output_dir,
                 context={"backend": r["backend"], "devices": r["devices"],
                          "note": "shared machine: read every figure against the sgemm rate of the same run"},
                 extra=r)
    return r


if __name__ == "__main__":
    main()
