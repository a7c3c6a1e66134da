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
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import zkproofs
from zkproofs import R, ArkworksBackend, Transcript, get_backend, get_generators, prove_range, verify_range
from zkproofs.innerproduct import ipa_prove

from experiments.bench_report import Row, write_report


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
    n_in = a.collateral + 2 * a.positions
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

    # MSM floor of one 64-bit single proof: record every MSM this prover performs for one proof (one thread), then
    # replay exactly those MSMs (same points, same scalars) with the library alone. prove / floor is the cost of
    # everything that is not an MSM (transcript, scalar vectors, IPA scalar folding, encodings).
    rec = ArkworksBackend(workers=1)
    calls: list = []

    class _Recorder:
        def __getattr__(self, name):
            return getattr(ark._G1, name)

        @staticmethod
        def multiexp_unchecked(points, scalars):
            calls.append((list(points), list(scalars)))
            return ark._G1.multiexp_unchecked(points, scalars)

    rec._G1 = _Recorder()
    _single(rec, g, 64)
    me = ark._G1.multiexp_unchecked
    res["msm_floor64_count"] = len(calls)
    res["msm_floor64_ms"], _ = _median_ms(lambda: [me(p, s) for p, s in calls], cfg.repeats)
    res["prove64_1w_ms"], _ = _median_ms(lambda: _single(ArkworksBackend(workers=1), g, 64), cfg.repeats)

    # account: K collateral + J positions (long and short parts: K + 2J committed inputs), S scenarios
    rng = np.random.default_rng(cfg.seed)
    L = rng.integers(-10**6, 10**6, size=(a.positions, a.scenarios))
    prices = [int(x) for x in rng.integers(10**3, 10**5, size=a.collateral)]
    bal = [int(x) for x in rng.integers(10**6, 10**7, size=a.collateral)]
    pos = [int(x) for x in rng.integers(-10**3, 10**3, size=a.positions)]
    ctx = zkproofs.Context("bench", "bench-account", 0, 2**62)
    st = zkproofs.MarginStatement(prices, L, 10**6, a.input_bits, a.input_bits, a.scenario_bits, "bench",
                                  pnl_short=L + (L % 2), context=ctx)
    one = ArkworksBackend(workers=1)
    for tag, kw in (("1w", {"backend": one}), ("2t", {}), ("2p", {"workers": 2})):
        if tag == "2p":
            zkproofs.prove_margin(st, bal, pos, workers=2)  # warm the worker processes (generators)
        res[f"account_prove_{tag}_ms"], b = _median_ms(lambda: zkproofs.prove_margin(st, bal, pos, **kw),
                                                      cfg.account_repeats)
    c = b.commitments
    flat_pos = list(c["long"]) + list(c["short"])
    res["account_verify_1w_ms"], ok1 = _median_ms(
        lambda: zkproofs.verify_margin(st, c["collateral"], flat_pos, b.proof, backend=one), cfg.account_repeats)
    res["account_verify_ms"], ok = _median_ms(
        lambda: zkproofs.verify_margin(st, c["collateral"], flat_pos, b.proof), cfg.account_repeats)
    assert ok and ok1
    res["batch_n"] = cfg.batch_size
    res["account_prove_ms"] = min(res["account_prove_2t_ms"], res["account_prove_2p_ms"])
    res["account_bytes"] = b.proof_bytes
    res["account_inputs"] = n_in
    res["account_scenarios"] = a.scenarios

    # batch verification of 100 single 64-bit proofs: 1 thread, 2 threads, 2 processes
    items = [_single(ark, g, 64) for _ in range(cfg.batch_size)]
    reps = max(1, cfg.repeats // 2)
    res["batch_1w_ms"], ok1 = _median_ms(lambda: zkproofs.batch_verify_range(
        [(p, V, 64, Transcript(b"bench")) for p, V in items], one, g), reps)
    res["batch_2t_ms"], ok2 = _median_ms(lambda: zkproofs.batch_verify_range(
        [(p, V, 64, Transcript(b"bench")) for p, V in items], ark, g), reps)
    labelled = [(p.to_bytes(), V, 64, b"bench") for p, V in items]
    res["batch_2p_ms"], ok3 = _median_ms(lambda: zkproofs.batch_verify_parallel(labelled, workers=2), reps)
    assert ok1 and ok2 and ok3
    res["batch_ms"] = min(res["batch_2t_ms"], res["batch_2p_ms"])
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


def rows(r: dict) -> list[Row]:
    """The figures with their issue-11 targets and verdicts (``experiments.bench_report.Row``)."""
    out = [Row("64-bit range proof: prove (arkworks, 2 threads)", round(r["prove64_ms"], 2), "ms", "<= 25 ms",
               r["prove64_ms"] <= 25, f"cpu {r['prove64_ms'].cpu:.1f} ms"),
           Row("64-bit range proof: prove, 1 thread", round(r["prove64_1w_ms"], 2), "ms",
               note=f"cpu {r['prove64_1w_ms'].cpu:.1f} ms"),
           Row(f"  MSM floor: its {r['msm_floor64_count']} MSMs replayed alone, 1 thread",
               round(r["msm_floor64_ms"], 2), "ms", note=f"cpu {r['msm_floor64_ms'].cpu:.1f} ms"),
           Row("  prove (1 thread) / MSM floor, wall", round(r["prove64_1w_ms"] / r["msm_floor64_ms"], 2), "x",
               "<= 1.3 x", r["prove64_1w_ms"] <= 1.3 * r["msm_floor64_ms"],
               f"cpu ratio {r['prove64_1w_ms'].cpu / r['msm_floor64_ms'].cpu:.2f}"),
           Row("64-bit range proof: verify (arkworks)", round(r["verify64_ms"], 2), "ms", "<= 5 ms",
               r["verify64_ms"] <= 5, f"cpu {r['verify64_ms'].cpu:.1f} ms"),
           Row("64-bit range proof: bytes", r["bytes64"], "B", "929 (928 + version byte)", r["bytes64"] == 929)]
    if "pyecc_prove8_ms" in r:
        out += [Row("n=8 m=1 prove: py_ecc / arkworks", round(r["pyecc_prove8_ms"] / r["ark_prove8_ms"]), "x",
                    note=f"{r['pyecc_prove8_ms']:.0f} / {r['ark_prove8_ms']:.1f} ms"),
                Row("n=8 m=1 verify: py_ecc / arkworks", round(r["pyecc_verify8_ms"] / r["ark_verify8_ms"]), "x",
                    note=f"{r['pyecc_verify8_ms']:.0f} / {r['ark_verify8_ms']:.1f} ms")]
    acc = f"account ({r['account_inputs']} committed inputs 32-bit, {r['account_scenarios']} scenarios 64-bit)"
    out += [Row(f"{acc}: prove, 1 worker (1 thread)", round(r["account_prove_1w_ms"]), "ms",
                note=f"cpu {r['account_prove_1w_ms'].cpu:.0f} ms"),
            Row(f"{acc}: prove, 2 threads (MSMs split)", round(r["account_prove_2t_ms"]), "ms", "<= 700 ms",
                r["account_prove_2t_ms"] <= 700, f"cpu {r['account_prove_2t_ms'].cpu:.0f} ms"),
            Row(f"{acc}: prove, 2 processes (one range proof each)", round(r["account_prove_2p_ms"]), "ms",
                "<= 700 ms", r["account_prove_2p_ms"] <= 700, "parent cpu only"),
            Row("account: verify, 1 thread", round(r["account_verify_1w_ms"]), "ms",
                note=f"cpu {r['account_verify_1w_ms'].cpu:.0f} ms"),
            Row("account: verify, 2 threads", round(r["account_verify_ms"]), "ms", "<= 100 ms",
                r["account_verify_ms"] <= 100, f"cpu {r['account_verify_ms'].cpu:.0f} ms"),
            Row("account: proof bytes", r["account_bytes"], "B", "<= 3072", r["account_bytes"] <= 3072),
            Row(f"batch-verify {r['batch_n']} single 64-bit proofs, 1 thread", round(r["batch_1w_ms"]), "ms",
                note=f"cpu {r['batch_1w_ms'].cpu:.0f} ms"),
            Row(f"batch-verify {r['batch_n']}, 2 threads (one MSM)", round(r["batch_2t_ms"]), "ms", "<= 250 ms",
                r["batch_2t_ms"] <= 250, f"cpu {r['batch_2t_ms'].cpu:.0f} ms"),
            Row(f"batch-verify {r['batch_n']}, 2 processes (one MSM each)", round(r["batch_2p_ms"]), "ms",
                "<= 250 ms", r["batch_2p_ms"] <= 250, "parent cpu only"),
            Row(f"  same {r['batch_n']} verified one by one", round(r["one_by_one_ms"]), "ms")]
    if "int_mul_ms" in r:
        out += [Row("10k scalar products: Python int mod r", round(r["int_mul_ms"], 1), "ms"),
                Row("  arkworks Scalar * Scalar (objects)", round(r["scalar_mul_ms"], 1), "ms"),
                Row("  10k Scalar(int) constructions (reduces mod r!)", round(r["scalar_ctor_ms"], 1), "ms")]
    for k in sorted(k for k in r if k.startswith("ipa_")):
        _, mode, N, _ = k.split("_")
        out.append(Row(f"IPA prover N={N}: {mode}", round(r[k], 1), "ms"))
    for k in (2, 64, 2048):
        if f"msm_{k}_ms" in r:
            out.append(Row(f"calibration: one arkworks MSM of {k} points (1 thread)", round(r[f"msm_{k}_ms"], 3), "ms"))
    out.append(Row(f"setup: {r['setup_generators_n']} generators by hash-to-curve (once)",
                   round(r["setup_generators_ms"]), "ms"))
    return out


def format_table(r: dict) -> str:
    """Plain-text table (what ``main`` prints through ``write_report``)."""
    from experiments.bench_report import Report, to_text

    return to_text(Report("bench_proofs", rows(r)))


@hydra_app("zk/cli/bench")
def main(cfg: DictConfig) -> None:
    r = run_bench(cfg)
    out_dir = cfg.get("out_dir") or HydraConfig.get().runtime.output_dir
    load = os.getloadavg()
    write_report("bench_proofs", rows(r), out_dir,
                 context={"load_average_at_end": [round(x, 2) for x in load], "cpus": os.cpu_count(),
                          "note": "wall = median wall clock; cpu = process CPU time of the same runs (all threads)"},
                 extra={k: float(v) for k, v in r.items()})


if __name__ == "__main__":
    main()
