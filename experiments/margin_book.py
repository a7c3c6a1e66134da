"""Margin of a venue's whole book from Parquet shards, shard by shard in bounded memory (issue 13 item 4).

Run: ``python -m experiments.margin_book mode=generate book_dir=/tmp/book generate.n_accounts=1000000`` writes a
synthetic book; ``python -m experiments.margin_book book_dir=/tmp/book`` margins it; ``mode=bench`` generates (if
missing), runs and compares with the in-memory kernel on the same accounts. Config ``conf/margin_book.yaml``.

The book layout, the requirement (CME SPAN "Risk Arrays", Deribit "Portfolio Margin": IM = worst scenario loss,
MM = ``mm_factor`` x IM, health = collateral / MM) and the fused per-part kernel are in :mod:`margin.rules.book_margin`;
this app is the Hydra wrapper: synthetic instruments (``experiments.bench_margin.realistic_block_book``), Ray from
the config (``ray.address=...`` or ``RAY_ADDRESS``; ``backend=ray`` with no address starts a local Ray with
``ray.num_cpus``), the in-memory reference, and ``margin_book.json`` / ``.md`` (via :mod:`experiments.bench_report`)
plus ``margin_book_hist.png``.
"""
from __future__ import annotations

import functools
import resource
import time
from pathlib import Path

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import margin
from experiments._cli import hydra_app
from experiments.bench_report import Row, write_report
from margin.rules import book_margin as bm
from margin.rules.book_margin import Histograms, list_parts, load_instruments, read_part  # noqa: F401 (re-exported)
from margin.validation import MarginInputError


def generate_book(book_dir, n_accounts: int, accounts_per_shard: int = 1_000_000, n_underlyings: int = 1,
                  instruments_per_underlying: int = 16, positions_per_account: float = 4.0,
                  collateral_multiple: float = 1.5, seed: int = 0, progress: bool = True) -> dict:
    """A synthetic book (:func:`margin.rules.book_margin.generate_book`) on ``realistic_block_book`` instruments: per
    underlying 1 perpetual, 3 futures and options, scanned on the 16 CME SPAN scenarios."""
    from experiments.bench_margin import realistic_block_book

    lm, _, und = realistic_block_book(n_underlyings, instruments_per_underlying, seed)
    return bm.generate_book(book_dir, n_accounts, lm, und, accounts_per_shard=accounts_per_shard,
                            positions_per_account=positions_per_account, collateral_multiple=collateral_multiple,
                            seed=seed, progress=functools.partial(tqdm, desc="generate") if progress else None,
                            meta_extra={"n_underlyings": n_underlyings,
                                        "instruments_per_underlying": instruments_per_underlying})


def run_book(book_dir, *, mm_factor=0.8, blocks="auto", backend="auto", ray_cfg=None, hist=None, dtype="float32",
             prefetch=True, readers=2, progress=True) -> dict:
    """:func:`margin.rules.book_margin.margin_book` with the ``ray`` block of the config."""
    ray_cfg = ray_cfg or OmegaConf.create({"address": None, "num_cpus": None})
    renv = ray_cfg.get("runtime_env")
    return bm.margin_book(book_dir, mm_factor=mm_factor, blocks=blocks, dtype=dtype, hist=hist, backend=backend,
                          ray_address=ray_cfg.get("address"), ray_num_cpus=ray_cfg.get("num_cpus"),
                          ray_runtime_env=OmegaConf.to_container(renv) if isinstance(renv, DictConfig) else renv,
                          prefetch=prefetch, readers=readers,
                          progress=functools.partial(tqdm, desc="parts") if progress else None)


def in_memory_rate(book_dir, n_accounts: int, *, blocks="auto", repeats=3, dtype="float32") -> dict:
    """Throughput of the jitted in-memory kernel (:func:`margin.portfolio_margin`, or
    :func:`margin.portfolio_margin_blocks` on a block-diagonal book) on the dense positions of the first
    ``n_accounts`` accounts of the book, already in memory: the reference the Parquet pipeline is judged against."""
    lm, _ = load_instruments(book_dir)
    layout = margin.detect_block_layout(lm) if blocks == "auto" else None
    layout = layout if layout is not None and layout.n_blocks > 1 else None
    parts, got = [], 0
    for name in list_parts(book_dir):
        p = read_part(book_dir, name)
        parts.append(p)
        got += p["ids"].size
        if got >= n_accounts:
            break
    n = min(got, n_accounts)
    x_np = np.concatenate([bm.dense_positions(p, lm.shape[0]) for p in parts])[:n]
    del parts
    if layout is not None:
        xs = margin.split_positions(x_np, layout)
        ls = layout.pnl_blocks(lm.astype(np.float32))
        fn = lambda: margin.portfolio_margin_blocks(xs, ls, validate=False)  # noqa: E731
    else:
        x = jax.numpy.asarray(x_np)
        fn = lambda: margin.portfolio_margin(x, lm, dtype=jax.numpy.dtype(dtype), validate=False)  # noqa: E731
    jax.block_until_ready(fn())
    best = min(_timed(fn) for _ in range(repeats))
    return {"in_memory_accounts": int(n), "in_memory_s": best, "in_memory_accounts_per_s": n / best}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def summary_rows(res: dict, targets: dict | None = None) -> list:
    n = res["n_accounts"]
    e, he = res["edges"], res["h_edges"]
    q = lambda key, qq: bm.hist_quantile(res[key], res["mm_edges"] if key == "hist_mm" else e, 0, qq)  # noqa: E731
    hq = lambda qq: bm.hist_quantile(res["hist_health"], he, res["n_health_below"], qq)  # noqa: E731
    stages = [k for k in ("t_read_wait", "t_prepare", "t_kernel", "t_read_prepare") if k in res]
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
            note=f"{n - res['n_zero_margin']:,} accounts; histogram bins, resolution one bin"),
        Row("MM quantiles p50 / p90 / p99", f"{q('hist_mm', .5):,.4g} / {q('hist_mm', .9):,.4g} / "
                                            f"{q('hist_mm', .99):,.4g}", "USD"),
        Row("health quantiles p1 / p10 / p50", f"{hq(.01):.4g} / {hq(.1):.4g} / {hq(.5):.4g}", "",
            note="health = collateral / MM"),
        Row("wall time, read + margin all parts", res["seconds"], "s",
            note=(f"best of {len(res['pass_seconds'])} full passes ("
                  + ", ".join(f"{t:.3f}" for t in res["pass_seconds"]) + " s; the in-memory reference is also the "
                  "best of as many calls); " if len(res.get("pass_seconds", ())) > 1 else "")
            + f"set-up before or beside the parts (kernel compile, part buffers, warm-up: the parts held in flight "
                 f"read and the first margined, discarded; Ray start-up): "
                 f"{res.get('compile_s', 0):.2f} s, "
                 "not included" + ("; Ray workers compile inside the timed part" if res["backend"] == "ray" else "")),
        Row("throughput from Parquet", res["accounts_per_s"], "accounts/s",
            note="stage seconds: " + ", ".join(f"{k[2:]} {res[k]:.2f}" for k in stages)
            + (" (the next part is read and copied into its buffers on a thread (read_prepare, overlapping the "
               "kernel); read_wait is the time spent waiting for it)"
               if "t_read_wait" in res else "")),
    ]
    mem_t = (targets or {}).get("peak_rss_gb")
    rows.append(Row("peak memory of the pipeline (max RSS)", res["peak_rss_gb"], "GB",
                    f"< {mem_t} GB" if mem_t else "", (res["peak_rss_gb"] < mem_t) if mem_t else None,
                    "Ray workers not included" if res["backend"] == "ray" else "before the in-memory reference"))
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
    ax[0].stairs(res["hist_mm"], res["mm_edges"], label="MM")
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
    # bench: the best of `bench.repeats` full passes, as the in-memory reference is the best of as many calls
    passes = [run_book(book, mm_factor=cfg.mm_factor, blocks=cfg.blocks, backend=cfg.backend, ray_cfg=cfg.ray,
                       hist=OmegaConf.to_container(cfg.histogram), dtype=cfg.dtype, prefetch=cfg.prefetch,
                       readers=cfg.get("readers", 2), progress=cfg.progress)
              for _ in range(int(cfg.bench.repeats) if cfg.mode == "bench" else 1)]
    res = min(passes, key=lambda r: r["seconds"])
    if any(r["sum_im"] != res["sum_im"] or r["n_below_mm"] != res["n_below_mm"] for r in passes):
        raise RuntimeError("margin_book: passes over the same book gave different totals (bug)")
    res["pass_seconds"] = [r["seconds"] for r in passes]
    res["book_dir"] = str(book)
    targets = None
    if cfg.mode == "bench":
        n_mem = cfg.bench.in_memory_accounts or res["n_accounts"]  # null: the same accounts as the pipeline
        res.update(in_memory_rate(book, n_mem, blocks=cfg.blocks, repeats=cfg.bench.repeats, dtype=cfg.dtype))
        res["peak_rss_gb_with_in_memory"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        targets = OmegaConf.to_container(cfg.targets)
    report(res, out_dir, targets)
    return res


@hydra_app("margin_book")
def main(cfg: DictConfig) -> dict:
    from hydra.core.hydra_config import HydraConfig

    return run(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
