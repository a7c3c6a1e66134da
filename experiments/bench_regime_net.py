"""Benchmark: RegimeNet training time on BTC + ETH (data to 2020-12-31), default config and the fast preset.

    python -m experiments.bench_regime_net [--horizons 1 5] [--threads 2]

Prints wall-clock fit time (including JAX compilation) per config and horizon, epochs run per ensemble member,
and the validation loss. Timings are noisy when other work shares the machine; the script says how many CPU
cores JAX sees.
"""
from __future__ import annotations

import argparse
import os
import time

from omegaconf import OmegaConf

from experiments.forecast import CONF_DIR


def _cfg(name: str) -> dict:
    node = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    if "defaults" in node:  # the fast preset inherits from regime_net.yaml
        base = OmegaConf.load(CONF_DIR / "model" / "regime_net.yaml")
        node = OmegaConf.merge(base, {k: v for k, v in node.items() if k != "defaults"})
    d = OmegaConf.to_container(node, resolve=True)
    d.pop("name")
    return d


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--horizons", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--presets", nargs="+", default=["regime_net", "regime_net_fast"])
    ap.add_argument("--train-end", default="2020-12-31")
    args = ap.parse_args(argv)
    import jax

    from predictive.data import load_ohlcv
    from predictive.features import build_features
    from predictive.intraday import load_funding, load_hourly
    from predictive.regime_net import RegimeNet

    t0 = time.perf_counter()
    feats = {a: build_features(load_ohlcv(a), load_hourly(a), load_funding(a)).loc[: args.train_end]
             for a in ("BTC", "ETH")}
    print(f"features built in {time.perf_counter() - t0:.1f} s; rows BTC {len(feats['BTC'])}, ETH {len(feats['ETH'])};"
          f" os.cpu_count() = {os.cpu_count()}, jax devices = {jax.devices()}")
    for preset in args.presets:
        kw = _cfg(preset)
        kw["progress"] = False
        for h in args.horizons:
            t = time.perf_counter()
            m = RegimeNet(horizon=h, seed=0, **kw).fit(feats)
            sec = time.perf_counter() - t
            eps = [hh["epochs_run"] for hh in m.history_]
            best = [round(hh["best_val"], 4) for hh in m.history_]
            print(f"{preset:16s} h={h}: fit {sec:6.1f} s (n_ensemble={kw['n_ensemble']}, max_epochs="
                  f"{kw['max_epochs']}, epochs run {eps}, best val loss {best})")


if __name__ == "__main__":
    from experiments._cli import run_cli

    run_cli(main)
