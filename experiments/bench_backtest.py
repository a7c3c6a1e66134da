"""Benchmark: the liquidation scan for 100,000 accounts x 3 years of daily steps (target < 2 minutes on 2 cores),
and the same simulator stepped hourly (10,000 accounts x 3 years of hourly bars, ~26,000 steps).

Real BTC/ETH closes 2021-01-01 .. 2023-12-31 (1,095 daily steps; Binance hourly bars for the hourly run), the
default synthetic book scaled to N accounts (perpetuals + Deribit-chain-shaped option spreads), a reactive EWMA scan
range set daily. Measures, in the same run: market precomputation, compile + first run, steady-state scan time,
account-steps per second, and a check that money is conserved. Writes ``bench_backtest.json`` / ``.md`` through
:mod:`experiments.bench_report` with a verdict beside each target.

    python -m experiments.bench_backtest                    # N = 100,000 daily; 10,000 hourly
    python -m experiments.bench_backtest --accounts 20000 --dtype float64 --hourly-accounts 0 --out outputs/bench
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from experiments.bench_report import Row, write_report


def _run(book, P, sig, vol, scan, dtype, spd=1):
    import jax

    from margin.simulation.liquidation import LiquidationParams, make_oracle, prepare_market, simulate, simulate_blocks

    params = LiquidationParams()
    args = (book, P, make_oracle(P), vol, sig, np.maximum(sig * np.sqrt(365 * spd) * 1.1, 0.2), scan, params)
    if spd > 1:      # hourly: the market is built per 90-day block inside the run (bounded memory)
        t_prep = 0.0

        def run():
            return simulate_blocks(book, lambda r: prepare_market(*args, dtype=dtype, steps_per_day=spd, rows=r),
                                   len(P), np.array([0.8, 0.8]), params, block=24 * 90)
    else:
        t0 = time.perf_counter()
        market = prepare_market(*args, dtype=dtype)
        jax.block_until_ready(market)
        t_prep = time.perf_counter() - t0

        def run():
            return simulate(book, market, np.array([0.8, 0.8]), params)
    t0 = time.perf_counter()
    s0, led, _ = run()
    jax.block_until_ready(led)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    s0, led, _ = run()
    jax.block_until_ready(led)
    t_run = time.perf_counter() - t0
    bal = (np.asarray(led.balances, np.float64) + np.asarray(led.fund, np.float64)
           + np.asarray(led.market, np.float64) - np.asarray(led.deposits, np.float64))
    init = float(np.asarray(s0.cash, np.float64).sum() + float(s0.fund))
    return {"prep_s": t_prep, "first_s": t_first, "run_s": t_run, "drift": float(np.abs(bal - init).max()),
            "init": init, "bad_debt": float(led.bad_debt[-1]), "liq": int(np.asarray(led.n_liquidations).sum())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--hourly-accounts", type=int, default=10_000, help="0 skips the hourly run")
    ap.add_argument("--start", default="2021-01-01")
    ap.add_argument("--end", default="2023-12-31")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--out", default="outputs/bench", help="directory for bench_backtest.json / .md")
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import pandas as pd

    from margin.simulation.book import synthetic_book
    from margin.simulation import ewma_sigma, hourly_schedule
    from predictive.data import load_ohlcv
    from predictive.intraday import load_hourly

    assets = ("BTC", "ETH")
    frames = {a: load_ohlcv(a) for a in assets}
    full = frames["BTC"].index.intersection(frames["ETH"].index)
    idx = full[(full >= pd.Timestamp(args.start)) & (full <= pd.Timestamp(args.end))]
    P_all = np.stack([frames[a]["close"].reindex(full).to_numpy() for a in assets], 1)
    r = np.vstack([np.zeros((1, 2)), np.diff(np.log(P_all), axis=0)])
    sel = full.isin(idx)
    P, sig = P_all[sel], ewma_sigma(r)[sel]
    vol = np.stack([frames[a]["volume"].reindex(idx).to_numpy() for a in assets], 1) * 0.02
    scan = np.expm1(2.326 * sig)
    dtype = jnp.float64 if args.dtype == "float64" else jnp.float32
    book = synthetic_book(args.accounts, assets, seed=0)
    ctx = {"devices": str(jax.devices()), "dtype": args.dtype, "accounts": book.n_accounts, "steps": len(idx),
           "period": f"{idx[0].date()} .. {idx[-1].date()}",
           "option_instruments": book.grid.n_instruments(len(assets))}
    d = _run(book, P, sig, vol, scan, dtype)
    total = d["prep_s"] + d["first_s"]
    steps = book.n_accounts * len(idx)
    rows = [
        Row("market precomputation (options Black-76 on the SPAN grid, all steps)", d["prep_s"], "s"),
        Row("first call (compile + run)", d["first_s"], "s"),
        Row("liquidation scan, compiled", d["run_s"], "s", note=f"{steps / d['run_s'] / 1e6:.1f} M account-steps/s"),
        Row(f"total daily, {book.n_accounts:,} accounts x {len(idx):,} days (precompute + compile + run)", total,
            "s", target="< 120 s", met=total < 120),
        Row("max |ledger drift| (daily run)", d["drift"], "USD", target=f"< 1e-5 x {d['init']:,.0f} USD",
            met=d["drift"] < 1e-5 * d["init"], note=f"{d['liq']:,} liquidations, bad debt {d['bad_debt']:,.0f} USD"),
    ]
    raw = {"daily": d}
    if args.hourly_accounts > 0:
        hb = synthetic_book(args.hourly_accounts, assets, seed=0)
        H = pd.DataFrame({a: load_hourly(a)["close"] for a in assets}).dropna()
        H = H[(H.index >= idx[0]) & (H.index < idx[-1] + pd.Timedelta(days=1))]
        day = hourly_schedule(H.index, idx)
        H, day = H[day >= 0], day[day >= 0]
        h = _run(hb, H.to_numpy(), sig[day] / np.sqrt(24), vol[day] / 24, scan[day], dtype, spd=24)
        tot_h = h["prep_s"] + h["first_s"]
        rows += [
            Row(f"total hourly, {hb.n_accounts:,} accounts x {len(H):,} hours (market + compile + run)", tot_h,
                "s", note="one policy; margin set daily"),
            Row("hourly run again (compiled; market built per 90-day block inside)", h["run_s"], "s",
                note=f"{hb.n_accounts * len(H) / h['run_s'] / 1e6:.1f} M account-steps/s"),
            Row("max |ledger drift| (hourly run)", h["drift"], "USD", target=f"< 1e-5 x {h['init']:,.0f} USD",
                met=h["drift"] < 1e-5 * h["init"],
                note=f"{h['liq']:,} liquidations, bad debt {h['bad_debt']:,.0f} USD"),
        ]
        raw["hourly"] = h
        ctx["hourly_steps"] = len(H)
    ctx["cpu_count"] = os.cpu_count()
    write_report("bench_backtest", rows, args.out, context=ctx, extra=raw)
    return raw


if __name__ == "__main__":
    from experiments._cli import run_cli

    run_cli(main)
