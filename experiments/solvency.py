"""`python -m experiments.solvency`: an exchange-wide proof of solvency (``zkproofs.solvency``, issue 12) for the
backtest's synthetic book or a Parquet file of accounts. Config: ``conf/solvency.yaml``.

Writes ``public/PUBLIC.json`` (+ ``public/shards/``), one inclusion file per account in ``inclusion/`` and the
private openings in ``private/`` (mode 0600), then verifies the public bundle. A user's mistake (bad file, row,
value or config key) is one line on stderr and exit status 2.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from experiments._cli import hydra_app

from zkproofs.solvency import SecretSource, prove_solvency, verify_solvency_file
from zkproofs.solvency.inputs import Market, SolvencyInputError, build_params, read_accounts_parquet, span_grid, to_witness

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _close(asset: str, date: str) -> float:
    """Embedded daily close of ``asset`` on (or last before) ``date``."""
    from predictive.data import load_ohlcv

    df = load_ohlcv(asset, end=str(date))
    if df.empty:
        raise SolvencyInputError(f"market.date={date}: no embedded {asset} close on or before it")
    return float(df["close"].iloc[-1])


def market_from_cfg(cfg: DictConfig) -> Market:
    """USD market data from the config; null prices are the embedded close on ``market.date``."""
    mk = cfg.market
    assets = {}
    for name, a in mk.assets.items():
        price = a.price if a.price is not None else _close(name, mk.date)
        assets[name] = (price, a.haircut, int(a.amount_scale))
    instruments = {}
    for name, ins in mk.instruments.items():
        und = ins.underlying
        if und in assets:
            price = assets[und][0]
        else:
            price = ins.get("price") or _close(und, mk.date)
        instruments[name] = (price, int(ins.position_scale))
    moves, labels = span_grid(cfg.scenarios.scan_range, list(cfg.scenarios.fractions), list(cfg.scenarios.cover))
    return Market(assets, instruments, moves, labels, float(cfg.insurance_fund_usd),
                  float(cfg.reserves_usd) if cfg.reserves_usd is not None else 0.0, int(mk.value_scale))


def book_accounts(p, market: Market, n_accounts: int, seed: int) -> list:
    """Accounts of ``margin.simulation.book.synthetic_book(n_accounts, seed)``: equity (notional / leverage, or the book's
    explicit collateral) as USDC; perpetual positions in coin at the market date's price. Option legs are left
    out (the SPAN grid here covers linear products only)."""
    from margin.simulation.book import synthetic_book

    if "USDC" not in p.assets:
        raise SolvencyInputError("market.assets must include USDC for the book input (equity is held as USDC)")
    book = synthetic_book(int(n_accounts), seed=int(seed))
    out = []
    for i in range(book.n_accounts):
        usd = book.perp_usd[i]
        coll = float(book.collateral[i])
        equity = coll if math.isfinite(coll) else float(np.abs(usd).sum()) / float(book.leverage[i])
        pos = {}
        for a, x in zip(book.assets, usd):
            ins = f"{a}-PERP"
            if x != 0:
                if ins not in market.instruments:
                    raise SolvencyInputError(f"market.instruments: the book holds {ins}; add it to the config")
                pos[ins] = float(x) / market.instruments[ins][0]
        out.append(to_witness(p, f"book-{seed}-{i:07d}", {"USDC": equity}, pos))
    return out


def run(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Testable core: build the statement, prove, write, verify; return the summary (timings, sizes, verified)."""
    market = market_from_cfg(cfg)
    epoch = str(cfg.epoch if cfg.epoch is not None else cfg.market.date)
    kw = dict(venue=str(cfg.venue), epoch=epoch, collateral_bits=int(cfg.bits.collateral),
              position_bits=int(cfg.bits.position), value_bits=int(cfg.bits.value),
              deficit_mode=str(cfg.deficit_mode), shard_size=int(cfg.shard_size))
    p = build_params(market, **kw)
    src = str(cfg.input.source)
    if src == "book":
        accounts = book_accounts(p, market, cfg.input.book.n_accounts, cfg.input.book.seed)
    elif src == "parquet":
        if not cfg.input.parquet:
            raise SolvencyInputError("input.parquet: a Parquet path is required when input.source=parquet")
        accounts = read_accounts_parquet(cfg.input.parquet, p)
    else:
        raise SolvencyInputError(f"input.source={src!r}: must be book or parquet")
    if cfg.reserves_usd is None:  # demonstration stand-in for an attested figure
        E = sum(a.equity(p) for a in accounts)
        market.reserves_usd = math.ceil(E * float(cfg.reserve_ratio)) / p.value_scale
        p = build_params(market, **kw)
    summary = prove_solvency(p, accounts, out_dir, workers=int(cfg.ray.workers), executor=str(cfg.ray.executor),
                             secrets_=SecretSource(), progress=bool(cfg.progress))
    if cfg.verify:
        t0 = time.perf_counter()
        verify_solvency_file(summary["public"], progress=bool(cfg.progress))
        summary.update(verified=True, verify_s=time.perf_counter() - t0)
    summary["input"] = src
    return summary


def prove_book_solvency(out_dir: str | Path, n_accounts: int = 100, *, seed: int = 0, workers: int = 2,
                        executor: str = "ray", deficit_mode: str = "per_scenario", progress: bool = False,
                        **overrides) -> dict:
    """For ``make run``: prove and verify the solvency statement for the first ``n_accounts`` accounts of the
    synthetic book (``conf/solvency.yaml`` defaults), writing into ``out_dir``. Returns the summary dict
    (accounts, root, sizes, prover wall and CPU seconds, ``verified``, ``verify_s``), without the prover's
    private totals (total equity and deficits are hidden by the statement: never write them to metrics).
    ``overrides``: dotted config keys, e.g. ``**{"shard_size": 16}``."""
    cfg = OmegaConf.load(CONF_DIR / "solvency.yaml")
    for key in ("defaults", "hydra"):
        cfg.pop(key, None)
    cfg.input.book.n_accounts, cfg.input.book.seed = int(n_accounts), int(seed)
    cfg.ray.workers, cfg.ray.executor, cfg.deficit_mode, cfg.progress = int(workers), executor, deficit_mode, progress
    for k, v in overrides.items():
        OmegaConf.update(cfg, k, v)
    m = run(cfg, out_dir)
    return {k: v for k, v in m.items() if not k.endswith("_PRIVATE")}  # E and deficit totals stay private


def _print(m: dict) -> None:
    vs = 1e6
    print(f"proved solvency for {m['accounts']} accounts ({m['shards']} shards, {m['scenarios']} scenarios, "
          f"epoch {m['epoch']}): root {m['root'][:16]}..., F = {m['insurance_fund'] / vs:,.2f} USD, "
          f"R = {m['reserves'] / vs:,.2f} USD")
    print(f"prover: {m['wall_s']:.1f} s wall, {m['prover_cpu_s_per_account'] * 1e3:.0f} ms CPU per account "
          f"({m['workers']} workers, {m['executor']}); range proofs {m['range_proof_bytes']:,} bytes; "
          f"inclusion proof <= {m['inclusion_proof_bytes_max']:,} bytes"
          + (f"; verified in {m['verify_s']:.1f} s" if m.get("verified") else ""))
    print(f"public bundle : {m['public']}\ninclusion files (one per account, hand them out): {m['inclusion_dir']}")
    print(f"PRIVATE openings (never publish): {m['private_dir']}")
    print(f"verify with   : python -m experiments.verify_solvency {m['public']} [--account INCLUSION.json]")


@hydra_app("solvency")
def main(cfg: DictConfig) -> None:
    out_dir = cfg.out_dir
    if out_dir is None:
        from hydra.core.hydra_config import HydraConfig

        out_dir = HydraConfig.get().runtime.output_dir
    m = run(cfg, out_dir)  # a ProofError (SolvencyInputError is one) is a user's mistake: one line, exit 2
    _print(m)


if __name__ == "__main__":
    main()
