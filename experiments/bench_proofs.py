"""Benchmark of zkproofs (issue 6 item 9). Prints a table with the targets; run `python -m experiments.bench_proofs`.

Measures, in one run: a 64-bit single range proof (prove / verify / bytes) on arkworks; the same statement at n=8,
m=1 on py_ecc and arkworks (ratio); an account with 16 committed inputs (32-bit) and 32 scenarios (64-bit):
prove / verify / proof bytes; batch verification of 100 single 64-bit proofs (one MSM with random weights)
against verifying them one by one; the inner-product prover computed three ways (L, R as MSMs over the original
generators; folding generators point by point; hybrid). Figures are medians of ``repeats`` runs after a warm-up;
generator derivation (hash-to-curve, once per process) is reported separately. Published reference points
(REFERENCE.md section 4): dalek bulletproofs (Ristretto, i7-7800X) 7.3 ms / 1.04 ms; pure-Python Bulletproofs
over secp256k1 on a 2-core machine 784 ms / 318 ms for one 64-bit proof.
"""
from __future__ import annotations

import os
import secrets
import statistics
import time

from experiments._cli import hydra_app
import numpy as np
from omegaconf import DictConfig

import zkproofs
from zkproofs import R, Transcript, get_backend, get_generators, prove_range, verify_range
from zkproofs.innerproduct import ipa_prove


_CPU: dict[int, float] = {}


def _median_ms(fn, repeats: int) -> tuple["_Ms", object]:
    """Median wall time (ms) of ``repeats`` calls after a warm-up; the median process CPU time (all threads) is
    attached as ``.cpu`` - less sensitive to other load on a shared machine."""
    out = fn()  # warm-up
    ts, cs = [], []
    for _ in range(repeats):
        c = time.process_time()
        t = time.perf_counter()
        out = fn()
        ts.append((time.perf_counter() - t) * 1e3)
        cs.append((time.process_time() - c) * 1e3)
    return _Ms(statistics.median(ts), statistics.median(cs)), out


class _Ms(float):
    """A wall-clock figure in ms carrying the CPU time of the same runs."""

    def __new__(cls, wall: float, cpu: float):
        x = super().__new__(cls, wall)
        x.cpu = cpu
        return x


def _single(be, gens, n: int):
    v = secrets.randbelow(1 << n)
    return prove_range(be, gens, Transcript(b"bench"), [v], [secrets.randbelow(R - 1) + 1], n)


def run_bench(cfg: DictConfig) -> dict:
    """Run every measurement; returns a dict of figures (ms, bytes, ratios)."""
    res: dict = {}
    ark = get_backend("arkworks")
    g = get_generators(ark)
    a = cfg.account
    n_in = a.collateral + a.positions
    N_max = max(64 * 1, a.scenario_bits * (1 << (a.scenarios - 1).bit_length()), max(cfg.ipa_sizes))
    t = time.perf_counter()
    g.G(N_max)
    res["setup_generators_ms"] = (time.perf_counter() - t) * 1e3
    res["setup_generators_n"] = 2 * N_max + 2

    # machine calibration: the library's own MSM and scalar multiplication speed in this run (one thread)
    for k in (2, 64, 2048):
        pts = g.G(k)
        sc = ark.native_scalars([secrets.randbelow(R) for _ in range(k)])
        me = ark._G1.multiexp_unchecked
        res[f"msm_{k}_ms"], _ = _median_ms(lambda: me(pts, sc), cfg.repeats)

    # 64-bit single proof
    res["prove64_ms"], (p, V) = _median_ms(lambda: _single(ark, g, 64), cfg.repeats)
    res["verify64_ms"], ok = _median_ms(lambda: verify_range(p, ark, g, Transcript(b"bench"), V, 64), cfg.repeats)
    assert ok
    res["bytes64"] = len(p.to_bytes())

    # py_ecc vs arkworks at n=8, m=1
    res["ark_prove8_ms"], (p8, V8) = _median_ms(lambda: _single(ark, g, 8), cfg.repeats)
    res["ark_verify8_ms"], _ = _median_ms(lambda: verify_range(p8, ark, g, Transcript(b"bench"), V8, 8), cfg.repeats)
    if cfg.pyecc:
        pe = get_backend("pyecc")
        gp = get_generators(pe)
        gp.G(8)
        t = time.perf_counter()
        q8, W8 = _single(pe, gp, 8)
        res["pyecc_prove8_ms"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        assert verify_range(q8, pe, gp, Transcript(b"bench"), W8, 8)
        res["pyecc_verify8_ms"] = (time.perf_counter() - t) * 1e3
        assert verify_range(q8.to_bytes(), ark, g, Transcript(b"bench"), W8, 8)  # cross-backend

    # account: 16 inputs (32-bit), 32 scenarios (64-bit)
    rng = np.random.default_rng(cfg.seed)
    L = rng.integers(-10**6, 10**6, size=(a.positions, a.scenarios))
    prices = [int(x) for x in rng.integers(10**3, 10**5, size=a.collateral)]
    bal = [int(x) for x in rng.integers(10**6, 10**7, size=a.collateral)]
    pos = [int(x) for x in rng.integers(-10**3, 10**3, size=a.positions)]
    st = zkproofs.MarginStatement(prices, L, 10**6, a.input_bits, a.input_bits, a.scenario_bits, "bench")
    res["account_prove_ms"], b = _median_ms(lambda: zkproofs.prove_margin(st, bal, pos), cfg.account_repeats)
    c = b.commitments
    res["account_verify_ms"], ok = _median_ms(
        lambda: zkproofs.verify_margin(st, c["collateral"], c["positions"], b.proof), cfg.account_repeats)
    assert ok
    res["account_bytes"] = b.proof_bytes
    res["account_inputs"] = n_in

    # batch verification of 100 single 64-bit proofs
    items = [_single(ark, g, 64) for _ in range(cfg.batch_size)]
    res["batch_ms"], ok = _median_ms(lambda: zkproofs.batch_verify_range(
        [(p, V, 64, Transcript(b"bench")) for p, V in items], ark, g), max(1, cfg.repeats // 2))
    assert ok
    t = time.perf_counter()
    assert all(verify_range(p, ark, g, Transcript(b"bench"), V, 64) for p, V in items)
    res["one_by_one_ms"] = (time.perf_counter() - t) * 1e3

    # scalar arithmetic: Python ints mod r vs arkworks Scalar objects (10,000 products, incl. conversions)
    import py_arkworks_bls12381 as pa

    xs = [secrets.randbelow(R) for _ in range(10_000)]
    ys = [secrets.randbelow(R) for _ in range(10_000)]
    res["int_mul_ms"], _ = _median_ms(lambda: [x * y % R for x, y in zip(xs, ys)], cfg.repeats)
    res["int_mul_convert_ms"], _ = _median_ms(lambda: ark.native_scalars([x * y % R for x, y in zip(xs, ys)]),
                                              cfg.repeats)
    sx, sy = ark.native_scalars(xs), ark.native_scalars(ys)
    res["scalar_mul_ms"], _ = _median_ms(lambda: [x * y for x, y in zip(sx, sy)], cfg.repeats)
    res["scalar_ctor_ms"], _ = _median_ms(lambda: [pa.Scalar(x) for x in xs], cfg.repeats)

    # inner-product prover three ways
    for N in cfg.ipa_sizes:
        G, H = g.G(N), g.H(N)
        av = [secrets.randbelow(R) for _ in range(N)]
        bv = [secrets.randbelow(R) for _ in range(N)]
        for mode in ("msm", "fold", "hybrid"):
            reps = cfg.repeats if N <= 256 else 1
            res[f"ipa_{mode}_{N}_ms"], _ = _median_ms(
                lambda: ipa_prove(ark, Transcript(b"ipa"), g.B, [1] * N, [1] * N, G, H, av, bv, mode=mode), reps)
    return res


def _f(x, digits: int = 1) -> str:
    cpu = getattr(x, "cpu", None)
    return f"{x:.{digits}f} ms" + (f" (cpu {cpu:.{digits}f})" if cpu is not None else "")


def format_table(r: dict) -> str:
    rows = [("64-bit range proof: prove (arkworks)", _f(r['prove64_ms']), "<= 25 ms"),
            ("64-bit range proof: verify (arkworks)", _f(r['verify64_ms']), "<= 5 ms"),
            ("64-bit range proof: bytes", f"{r['bytes64']} (928 + 1 version byte)", "928 (formula)")]
    if "pyecc_prove8_ms" in r:
        rows += [("n=8 m=1 prove: py_ecc / arkworks",
                  f"{r['pyecc_prove8_ms']:.0f} / {r['ark_prove8_ms']:.1f} ms = {r['pyecc_prove8_ms'] / r['ark_prove8_ms']:.0f}x", "-"),
                 ("n=8 m=1 verify: py_ecc / arkworks",
                  f"{r['pyecc_verify8_ms']:.0f} / {r['ark_verify8_ms']:.1f} ms = {r['pyecc_verify8_ms'] / r['ark_verify8_ms']:.0f}x", "-")]
    rows += [(f"account ({r['account_inputs']} inputs 32-bit, 32 scenarios 64-bit): prove", _f(r['account_prove_ms'], 0), "<= 1200 ms"),
             ("account: verify", _f(r['account_verify_ms'], 0), "<= 150 ms"),
             ("account: proof bytes", f"{r['account_bytes']}", "<= 3072"),
             ("batch-verify 100 single 64-bit proofs (one MSM)", _f(r['batch_ms'], 0), "<= 250 ms"),
             ("  same 100 verified one by one", f"{r['one_by_one_ms']:.0f} ms", "-")]
    if "int_mul_ms" in r:
        rows += [("10k scalar products: Python int mod r", f"{r['int_mul_ms']:.1f} ms", "-"),
                 ("  ... + conversion to Scalar (from_le_bytes)", f"{r['int_mul_convert_ms']:.1f} ms", "-"),
                 ("  arkworks Scalar * Scalar (objects)", f"{r['scalar_mul_ms']:.1f} ms", "-"),
                 ("  10k Scalar(int) constructions (reduces mod r!)", f"{r['scalar_ctor_ms']:.1f} ms", "-")]
    for k in sorted(k for k in r if k.startswith("ipa_")):
        _, mode, N, _ = k.split("_")
        rows.append((f"IPA prover N={N}: {mode}", _f(r[k], 0), "-"))
    for k in (2, 64, 2048):
        if f"msm_{k}_ms" in r:
            rows.append((f"calibration: one arkworks MSM of {k} points (1 thread)", _f(r[f"msm_{k}_ms"], 2), "-"))
    rows.append((f"setup: {r['setup_generators_n']} generators by hash-to-curve (once)", f"{r['setup_generators_ms']:.0f} ms", "-"))
    w = max(len(x[0]) for x in rows)
    w2 = max(len(x[1]) for x in rows)
    out = [f"{'measurement':<{w}} | {'measured':<{w2}} | target", "-" * (w + w2 + 16)]
    out += [f"{a:<{w}} | {b:<{w2}} | {c}" for a, b, c in rows]
    out.append("wall = median wall-clock; cpu = process CPU time of the same runs, all threads (2-thread pool)")
    try:
        load = os.getloadavg()
        out.append(f"(cpus={os.cpu_count()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end of the run)")
    except OSError:  # pragma: no cover
        pass
    return "\n".join(out)


@hydra_app("zk/cli/bench")
def main(cfg: DictConfig) -> None:
    r = run_bench(cfg)
    print(format_table(r))


if __name__ == "__main__":
    main()
