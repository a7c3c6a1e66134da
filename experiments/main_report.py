"""The main job's ``report.md`` and ``margin_paths.png``: tables and plots that follow the data and the config.

Vocabulary (one name per measure):

- **breach** (walk-forward, this report): an h-day loss of a 1x linear perpetual above its Gaussian initial margin
  ``z(coverage) x sigma_h`` of notional, set at the origin t from the model's forecast;
- **exception** (venue backtest, ``backtest/report.md``): an h-day loss above the margin policy's scan range (the
  policy's own formula: ``exp(z sigma_h) - 1`` for reactive, mixture quantiles with a regime add-on for predictive,
  plus any buffer, floor or cap), on the dates common to all assets. Those counts are QUOTED from the backtest's
  metrics, never recomputed here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

__all__ = ["backtest_exceptions", "format_table", "plot_paths", "render_report"]

SIDES = ("long", "short")


def format_table(metrics: dict, policies) -> str:
    """Markdown table of the walk-forward's per-policy, per-asset metrics (margins in % of notional)."""
    lines = ["| policy | asset | days | breaches (long+short) | breach rate | Kupiec LR | Kupiec p | "
             "avg IM (% of notional) | max 30d IM increase (%) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for policy in policies:
        for asset, m in metrics[policy].items():
            lines.append(f"| {policy} | {asset} | {m['days']} | {m['breaches']} | {m['breach_rate']:.2%} | "
                         f"{m['kupiec_lr']:.2f} | {m['kupiec_pvalue']:.3f} | {m['avg_margin_pct']:.2f} | "
                         f"{m['max_30d_increase_pct']:.1f} |")
    return "\n".join(lines)


def backtest_exceptions(venue: dict, policies) -> dict:
    """The venue backtest's own exception counts for the backtest policies of the walk-forward's kinds.

    Args:
        venue: the dict returned by ``experiments.backtest.run_backtest`` (``venue["policies"][name]`` holds
            ``kind``, ``model`` and ``coverage["<ASSET>_<side>"]`` with ``n``, ``exceptions``, ``rate``,
            ``kupiec_p``).
        policies: walk-forward policy names (``reactive``, ``predictive``): backtest policies of that ``kind``
            are quoted.

    Returns:
        ``{walk-forward policy: {backtest policy: {asset: {side: {"n", "exceptions", "rate", "kupiec_p"}}}}}``.
    """
    out: dict = {}
    for policy in policies:
        out[policy] = {}
        for name, res in (venue.get("policies") or {}).items():
            if res.get("kind") != policy:
                continue
            per_asset: dict = {}
            for key, cov in res.get("coverage", {}).items():
                asset, side = key.rsplit("_", 1)
                per_asset.setdefault(asset, {})[side] = {k: cov[k] for k in ("n", "exceptions", "rate", "kupiec_p")}
            out[policy][name] = {"model": res.get("model"), "coverage": per_asset}
    return out


def _exceptions_table(quoted: dict) -> str:
    lines = ["| backtest policy (model) | asset | side | days | exceptions | exception rate | Kupiec p |",
             "|---|---|---|---:|---:|---:|---:|"]
    for per_policy in quoted.values():
        for name, q in per_policy.items():
            for asset, sides in q["coverage"].items():
                for side in SIDES:
                    c = sides[side]
                    lines.append(f"| {name} ({q['model']}) | {asset} | {side} | {c['n']} | {c['exceptions']} | "
                                 f"{c['rate']:.2%} | {c['kupiec_p']:.3f} |")
    return "\n".join(lines)


def render_report(metrics: dict, cfg: DictConfig, table: str) -> str:
    """``report.md``: what was run (from the data and the config), the walk-forward table, how to read it, the venue
    backtest's exceptions quoted from its metrics, the proofs."""
    conf = metrics["config"]
    assets = list(metrics["reactive"])
    data_span = ", ".join(f"{a} {conf['data_start'][a]} .. {conf['data_end'][a]}" for a in assets)
    m0 = metrics["reactive"][assets[0]]
    dropped = {a: metrics["reactive"][a]["origins_dropped_gap"] for a in assets}
    h = int(conf["horizon"])
    lines = [f"# predictive-margin main job: {m0['first_origin']} .. {m0['last_origin']}, h = {h} day(s)", "",
             f"Data: {data_span}. Models trained on data up to {conf['train_end']} (seed {conf['seed']}) for the "
             f"{h}-day horizon. Each day t, the initial margin (IM) of a long and a short 1x linear perpetual per "
             f"asset is z({cfg.coverage}) x the forecast sigma of the {h}-day log return, in % of notional; a "
             f"**breach** is a loss over t .. t + {h} calendar days above that IM. Reactive = "
             f"{conf['reactive_model']}, predictive = {conf['predictive_model']}. {len(assets)} asset(s) x 2 sides "
             f"= {2 * len(assets)} series per policy.", ""]
    if any(dropped.values()):
        lines += ["Origins dropped because the close of t + h is missing (a gap in the data, or the end): " +
                  ", ".join(f"{a} {n}" for a, n in dropped.items()) + ".", ""]
    lines += [table, "",
              f"How to read it: at {cfg.coverage:.0%} coverage about {1 - cfg.coverage:.0%} of position-days should "
              "breach. A Kupiec p-value below 0.05 rejects that coverage (too many or too few breaches). Lower "
              "average IM is cheaper for traders; a lower largest 30-day increase means gentler (less procyclical) "
              "margin calls. Breaches pool the long and the short position (2 x days observations); per-side "
              "figures are in metrics.json.", ""]
    if h > 1:
        lines += [f"At h = {h} days the windows of consecutive origins overlap, so breaches come in runs and "
                  "Kupiec's test, which assumes independent observations, rejects too often; read its p-value as "
                  "indicative.", ""]
    if "backtest" in metrics:
        quoted = metrics["backtest"].get("exceptions") or {}
        lines += ["## Venue backtest: exceptions, a different measure", "",
                  f"The venue backtest ([backtest/report.md](backtest/report.md); book from "
                  f"{metrics['backtest'].get('start')}) counts **exceptions**: h-day losses above the margin "
                  "POLICY's scan range, which is not the Gaussian IM above (reactive: exp(z sigma_h) - 1; predictive: "
                  "the regime model's mixture quantiles plus a high-volatility add-on; either with buffers, floors "
                  "or caps), on the dates common to all assets. So breach and exception counts differ. The counts "
                  "below are quoted from backtest/metrics.json, not recomputed.", ""]
        if any(quoted.values()):
            lines += [_exceptions_table(quoted), ""]
    if "proof" in metrics:
        p, b = metrics["proof"], metrics["book_proof"]
        lines += ["## Zero-knowledge proofs (Bulletproofs on BLS12-381)", "",
                  f"- the long 1x {p['account']['asset']} account of {p['account']['date']}, proved: "
                  f"{p.get('proved', 'equity >= MM')}: verified={p['verified']}, {p['bytes']} bytes, prove {p['prove_ms']:.1f} ms, "
                  f"verify {p['verify_ms']:.1f} ms ({p['backend']}).",
                  f"- book account {b['book_account']} covers every one of {b['scenarios']} scenarios "
                  f"({b['instruments']} positions, {b['collateral_assets']} collateral assets): "
                  f"verified={b['verified']}, {b['proof_bytes']} bytes, prove {b['prove_ms']:.1f} ms, "
                  f"verify {b['verify_ms']:.1f} ms. Public bundle: `proof/bundle.json` "
                  "(check it with `python -m experiments.verify proof/bundle.json --statement proof/statement.json`); "
                  "openings stay in "
                  "`proof/openings.PRIVATE.json`.", ""]
    if "solvency" in metrics:
        sol = metrics["solvency"]
        lines += ["## Exchange-wide proof of solvency", "",
                  f"- {sol['accounts']} accounts of the book ({sol['scenarios']} stress scenarios, epoch "
                  f"{sol['epoch']}): reserves R cover total customer equity (a Merkle sum tree of Pedersen "
                  "commitments, every node range-proved), and in every scenario the deficits left after each "
                  f"account's collateral fit inside the insurance fund F = {sol['insurance_fund'] / 1e6:,.0f} USD; "
                  f"verified={sol.get('verified')}, prover {sol['wall_s']:.1f} s wall "
                  f"({sol['prover_cpu_s_per_account'] * 1e3:.0f} ms CPU per account), inclusion proof <= "
                  f"{sol['inclusion_proof_bytes_max']:,} bytes. Public bundle `solvency/public/PUBLIC.json` (check "
                  "it with `python -m experiments.verify_solvency`); one inclusion file per account in "
                  "`solvency/inclusion/`; private openings in `solvency/private/` (mode 0600).", ""]
    return "\n".join(lines)


def plot_paths(paths: dict, full: dict, closes: dict, cfg: DictConfig, out: Path) -> None:
    """Price, both IM paths (% of notional) and each policy's breaches, one column per asset.

    The IM paths start at ``cfg.start`` so the model's warm-up shows, the evaluation start is marked, stress
    windows inside the data are shaded (each in the legend) and the y range is set by the evaluation period's
    99.5% quantile, so a warm-up spike cannot squash the rest.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    colours = {"reactive": "tab:orange", "predictive": "tab:blue"}
    assets = list(paths["reactive"])
    start, eval_start, end = pd.Timestamp(cfg.start), pd.Timestamp(cfg.eval_start), pd.Timestamp(cfg.end)
    fig, axes = plt.subplots(2, len(assets), figsize=(6.5 * len(assets), 8), sharex="col", squeeze=False,
                             layout="constrained")
    for col, asset in enumerate(assets):
        top, bottom = axes[0, col], axes[1, col]
        price = closes[asset].loc[start:end]
        top.plot(price.index, price.to_numpy(), color="black", lw=0.8, label=f"{asset} close")
        top.set_yscale("log")
        top.set_ylabel("close (USD, log scale)")
        top.set_title(f"{asset}: close and initial margin")
        scale = []
        for policy, colour in colours.items():
            series = full[policy][asset].loc[start:end]
            bottom.plot(series.index, series.to_numpy() * 100, color=colour, lw=0.9, label=f"{policy} IM")
            p = paths[policy][asset]
            hits = p.breaches["long"] | p.breaches["short"]
            bottom.scatter(p.dates[hits], p.im_fraction[hits] * 100, color=colour, marker="x", s=30,
                           label=f"{policy} breach ({int(hits.sum())} days)")
            scale.append(p.im_fraction * 100)
        p = paths["reactive"][asset]
        worst = np.maximum(p.loss_fraction["long"], p.loss_fraction["short"]) * 100
        bottom.plot(p.dates, worst, color="grey", lw=0.5, alpha=0.6, label="realised h-day loss (worse side)")
        scale.append(worst)
        finite = np.concatenate(scale)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            bottom.set_ylim(0, float(np.quantile(finite, 0.995)) * 1.15)
        for ax in (top, bottom):
            ax.axvline(eval_start, color="green", lw=1, ls="--", label="evaluation start" if ax is bottom else None)
            for k, (name, (w0, w1)) in enumerate(cfg.get("stress_windows", {}).items()):
                w0, w1 = pd.Timestamp(w0), pd.Timestamp(w1)
                if w1 < max(start, price.index[0]) or w0 > min(end, price.index[-1]):
                    continue  # only windows inside the plotted data
                ax.axvspan(w0, w1, color=f"C{k + 4}", alpha=0.15,
                           label=f"stress: {name}" if ax is bottom else None)
            locator = mdates.AutoDateLocator(minticks=4, maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        bottom.set_ylabel(f"% of notional (h = {int(cfg.horizon)} d)")
        bottom.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)  # below: data stays visible
    fig.savefig(out, dpi=110)
    plt.close(fig)
