"""Markdown report and plots of a venue backtest (:class:`margin.simulation.backtest.BacktestResult`).

Everything the text says is taken from the metrics: the number of series (2 x assets), the stress windows inside the
data (with their in/out-of-sample label), the day the book opened. Margins are in % of notional everywhere; money in
USD. Plots use concise date ticks, mark the start of the evaluation period, put every line and shaded area in the
legend and scale the y axis to the evaluation period (a warm-up spike does not set the scale; points above the axis
are counted in the title).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["fitted_label", "render_report", "write_outputs", "pareto_plot", "json_default"]

_ZONES = {"green": 0, "yellow": 1, "red": 2}


def fitted_label(train_end, refit_every=None) -> str:
    """``"<train_end>"`` or ``"<train_end>, refitted every N days"``: the "models fitted to ..." of report headers."""
    return f"{train_end}, refitted every {refit_every} days" if refit_every else str(train_end)


def _pct(x, digits: int = 1) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f}%"


def _usd(x) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x / 1e6:,.2f}M" if abs(x) >= 1e5 else f"{x:,.0f}"


def _met(flag) -> str:
    return "met" if flag else "NOT met"


def json_default(x):
    """``json.dumps`` default for numpy scalars and arrays."""
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


def render_report(m: dict) -> str:
    """Markdown report of a backtest's metrics dict (``BacktestResult.metrics``)."""
    c = m["config"]
    n_series = c.get("n_series", 2 * len(c["assets"]))
    kept = m.get("stress_windows", {}).get("kept", {})
    skipped = m.get("stress_windows", {}).get("skipped", {})
    bk = c["book"]
    opened = c.get("book_start", c["start"])
    L = ["# Margin policy backtest", "", "## How to read this report", "",
         "Each row is one margin policy run on the same history and the same venue book "
         f"({c['accounts']:,} accounts, {', '.join(c['assets'])}). **Coverage**: a fixed 1x long and a fixed 1x short "
         f"position per asset ({n_series} series); an *exception* is a day whose {c['horizon']}-day loss (close to "
         f"the close {c['horizon']} calendar day(s) later; a move that would span a gap in the data is dropped) "
         "exceeded the IM fraction set at that day's close: the policy's down move for the long, its up move for "
         f"the short. At {100 * c['coverage']:.0f}% coverage about 1 exception per 100 days is expected; Kupiec "
         "(right number of exceptions) and Christoffersen (no clustering; conditional coverage) pass when their "
         "p-values are >= 0.05; the Basel traffic light counts exceptions per 250-day window (green 0-4, yellow 5-9, "
         "red 10+). **Cost**: average IM as % of notional of those positions (lower = cheaper for traders). "
         "**Procyclicality**: largest 1/5/30-day relative increase and peak-to-trough ratio of the IM (Murphy, "
         "Vasios & Vause 2014): sudden rises force deleveraging in a crisis. **Losses**: liquidations and bad debt "
         "(negative equity left after liquidation, paid by the insurance fund, then ADL, then socialised) over the "
         f"evaluation period and in the {len(kept)} stress window(s) inside the data; 'in-sample' marks windows "
         f"inside the models' training data (up to {c.get('train_end') or 'n/a'}), which flatter the model. Book "
         "figures come from a simulation, not from a real venue: compare policies with each other.", "",
         f"Data {c.get('data_start', '?')} .. {c.get('data_end', '?')}; book opened {opened} (first day with data and "
         f"every policy's margin; configured start {c['start']}); evaluation period {c['eval_start']} .. {c['end']}; "
         f"horizon {c['horizon']} day(s); models fitted to "
         f"{fitted_label(c.get('train_end') or 'n/a', c.get('refit_every'))}; liquidation steps {c.get('frequency', 'daily')}; oracle "
         f"{c['oracle'].get('kind')}. Book: {bk['accounts']:,} accounts, perpetual notional "
         f"{_usd(bk['perp_notional_usd'])} USD at inception ({bk['long_positions']:,} long / "
         f"{bk['short_positions']:,} short positions), {bk['option_accounts']:,} with an option spread, median "
         f"target leverage {bk['median_leverage']:.1f}x; {_reentry(c)}.", "",
         "## Policies side by side", "",
         f"| policy | exceptions (of {n_series} series) | all pass 5% | worst zone | avg IM (% notional) | "
         "book IM / notional | max 1d / 5d / 30d increase | peak/trough | liquidations | liq. volume (USD) | "
         f"bad debt (eval, USD) | bad debt ({len(kept)} stress windows, USD) | fund min (USD) |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in m["policies"].items():
        pc = r.get("procyclicality_by_series") or r["procyclicality"]
        worst = max((x["worst_zone"] or "green" for x in r["coverage"].values()), key=_ZONES.__getitem__,
                    default="n/a")
        inc = " / ".join(_pct(np.nanmax([pc[a][f"max_increase_{n}d"] for a in pc])) for n in (1, 5, 30))
        ptt = np.nanmax([pc[a]["peak_to_trough"] for a in pc])
        b = r["book"]
        L.append(f"| {name} | {r['exceptions_total']} | {'yes' if r['all_pass_5pct'] else 'no'} | {worst} | "
                 f"{_pct(r['avg_im_fraction'])} | {_pct(b['avg_im_over_notional'])} | {inc} | {ptt:.2f} | "
                 f"{b['liquidations']:,} | {_usd(b['liquidation_volume_usd'])} | {_usd(b['bad_debt_usd'])} | "
                 f"{_usd(r['stress_bad_debt_usd'])} | {_usd(b['fund_min'])} |")
    L += ["", "![Pareto](pareto.png)", "",
          "## Coverage per side", "",
          "Longs are judged against the down move, shorts against the up move. The day-to-day change is "
          "exp|log(IM_t / IM_{t-1})| - 1 over the evaluation period.", "",
          "| policy | asset | side | avg IM | IM day-to-day change, median / p99 | n | exceptions | rate | "
          "Kupiec LR (p) | Christoffersen ind LR (p) | cc LR (p) | traffic light per 250 days |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in m["policies"].items():
        for ser, x in r["coverage"].items():
            asset, side = ser.rsplit("_", 1)
            tl = ",".join(z[0].upper() for z in x["traffic_light"]) or "-"
            mv = (r.get("margin_variability") or {}).get(ser)
            mv = "n/a" if mv is None else f"{_pct(np.expm1(mv['median']))} / {_pct(np.expm1(mv['p99']))}"
            L.append(f"| {name} | {asset} | {side} | {_pct(r.get('avg_im_fraction_by_series', {}).get(ser))} | "
                     f"{mv} | {x['n']} | {x['exceptions']} | {_pct(x['rate'], 2)} | {x['kupiec_lr']:.2f} "
                     f"({x['kupiec_p']:.3f}) | {x['christoffersen_lr_ind']:.2f} ({x['christoffersen_p_ind']:.3f}) | "
                     f"{x['christoffersen_lr_cc']:.2f} ({x['christoffersen_p_cc']:.3f}) | {tl} |")
    var = m.get("forecast_variability") or {}
    if var:
        L += ["", "## Forecast day-to-day variability", "",
              "|log(sigma_t / sigma_{t-1})| of each model's forecast over the evaluation period (0.10 = a 10.5% "
              "change in one day); margin built straight on a jumpy forecast is procyclical.", "",
              "| model | asset | median | 99th percentile | max (one-day factor) |", "|---|---|---|---|---|"]
        for model, per in var.items():
            for asset, v in per.items():
                L.append(f"| {model} | {asset} | {v['median']:.4f} | {v['p99']:.4f} | {v['max']:.3f} "
                         f"({v['max_ratio']:.2f}x) |")
    L += _hourly_section(m.get("hourly_vs_daily") or {}, c)
    L += ["", "## Stress windows", ""]
    if skipped:
        L += ["Not evaluated (outside the simulated data): " + "; ".join(f"{k}" for k in skipped) + ".", ""]
    for w, info in kept.items():
        L += [f"### {w} ({info['start']} .. {info['end']}{', clipped to the data' if info['clipped'] else ''})", "",
              "| policy | sample | exceptions | avg IM | max 5d increase | liquidations | liq. volume (USD) | "
              "bad debt (USD) | fund drawdown (USD) |", "|---|---|---|---|---|---|---|---|---|"]
        for name, r in m["policies"].items():
            x = r["stress"].get(w)
            if x is None:
                continue
            L.append(f"| {name} | {x['label']} | {x['exceptions']} | {_pct(x['avg_im_fraction'])} | "
                     f"{_pct(x['max_increase_5d'])} | {x['liquidations']:,} | {_usd(x['liquidation_volume_usd'])} | "
                     f"{_usd(x['bad_debt_usd'])} | {_usd(x['fund_drawdown_usd'])} |")
        L.append("")
    if m.get("targets"):
        L += ["## Targets: predictive vs best reactive", "",
              "Best reactive = the reactive policy that passes every coverage test with the lowest average margin "
              "(if none passes: the one with the highest worst-series Kupiec p-value). Targets: coverage passes on "
              f"all {n_series} series at 5%; average margin no higher; largest 30-day increase >= 30% lower; "
              "peak-to-trough lower; bad debt over the evaluation period >= 50% lower; bad debt in each stress window "
              "no higher.", "",
              "| policy | vs | coverage | avg margin (vs) | 30d increase (vs, reduction) | peak/trough (vs) | "
              "bad debt eval (vs, reduction) | each stress window no higher | stress bad debt (vs) |",
              "|---|---|---|---|---|---|---|---|---|"]
        for p, t in m["targets"].items():
            L.append(f"| {p} | {t['best_reactive']} | {_met(t['coverage_pass'])} | {_pct(t['avg_margin'])} "
                     f"({_pct(t['avg_margin_reactive'])}) {_met(t['avg_margin_no_higher'])} | "
                     f"{_pct(t['max_increase_30d'])} ({_pct(t['max_increase_30d_reactive'])}, "
                     f"{_pct(t['max_increase_30d_reduction'])}) {_met(t['max_increase_30d_target_met'])} | "
                     f"{t['peak_to_trough']:.2f} ({t['peak_to_trough_reactive']:.2f}) "
                     f"{_met(t['peak_to_trough_lower'])} | {_usd(t['bad_debt'])} ({_usd(t['bad_debt_reactive'])}, "
                     f"{_pct(t['bad_debt_reduction'])}) {_met(t['bad_debt_target_met'])} | "
                     f"{_met(t['stress_windows_no_higher_met'])} | {_usd(t['stress_bad_debt'])} "
                     f"({_usd(t['stress_bad_debt_reactive'])}) |")
        L.append("")
    o = m.get("oracle_study")
    if o:
        keys = [k for k, v in o.items() if isinstance(v, dict)]
        wn = list(o[keys[0]]["stress"]) if keys else []
        L += ["## Oracle study", "", f"Policy {o['policy']}, whole simulation ({opened} .. {c['end']}); bad debt "
              "in USD.", "", "| oracle | bad debt | liquidations | " + " | ".join(wn) + " |",
              "|---|---|---|" + "---|" * len(wn)]
        for k in keys:
            v = o[k]
            L.append(f"| {k} | {_usd(v['bad_debt_usd'])} | {v['liquidations']:,} | "
                     + " | ".join(_usd(x) for x in v["stress"].values()) + " |")
        L.append("")
    t = m.get("timings", {})
    L += ["## Timings (s)", "", ", ".join(f"{k} {v:.1f}" for k, v in t.items()), ""]
    return "\n".join(L)


def _reentry(c: dict) -> str:
    days = (c.get("liquidation") or {}).get("reentry_days")
    if days is None:
        return "liquidated accounts may re-open"
    return ("liquidated accounts do not re-open" if int(days) == 0
            else f"liquidated accounts re-open after {int(days)} day(s)")


def _hourly_section(h: dict, c: dict) -> list[str]:
    L = ["", "## Daily vs hourly liquidations", ""]
    whole, crash = h.get("whole_period") or {}, h.get("crash_days") or {}
    if not whole and not crash:
        return L + ["Not run (needs hourly bars: `data.use_hourly=true`, and `liquidation.hourly_comparison=true`).",
                    ""]
    L += ["The same policies and book stepped once a day (daily closes) and once an hour (hourly bars), margin set "
          "daily in both; intraday steps see the path inside a crash day. Bad debt in USD. Caveat: hourly steps also "
          "let accounts answer margin calls within the hour and spread liquidations (and their square-root impact) "
          "over the day, which is optimistic; read the gap as an upper bound on what intraday liquidation saves.",
          ""]
    if whole:
        L += [f"Whole evaluation period ({c['eval_start']} .. {c['end']}):", "",
              "| policy | bad debt daily | bad debt hourly | liquidations daily | liquidations hourly |",
              "|---|---|---|---|---|"]
        for p, v in whole.items():
            L.append(f"| {p} | {_usd(v['daily_bad_debt_usd'])} | {_usd(v['hourly_bad_debt_usd'])} | "
                     f"{v['daily_liquidations']:,} | {v['hourly_liquidations']:,} |")
        L.append("")
    else:
        L += ["Whole period: run with `liquidation.frequency=hourly` (steps every hour over the whole period).", ""]
    if crash:
        L += ["Crash days (a fresh book opened a few days before each crash day, simulated daily and hourly over the "
              "same days):", "",
              "| crash day | days | policy | bad debt daily (on the day) | bad debt hourly (on the day) | "
              "liquidations daily | liquidations hourly |", "|---|---|---|---|---|---|---|"]
        for d, v in crash.items():
            if "skipped" in v:
                L.append(f"| {d} | - | skipped: {v['skipped']} | | | | |")
                continue
            for p, x in v["policies"].items():
                L.append(f"| {d} | {v['start']} .. {v['end']} | {p} | {_usd(x['daily_bad_debt_usd'])} "
                         f"({_usd(x['daily_bad_debt_on_day_usd'])}) | {_usd(x['hourly_bad_debt_usd'])} "
                         f"({_usd(x['hourly_bad_debt_on_day_usd'])}) | {x['daily_liquidations']:,} | "
                         f"{x['hourly_liquidations']:,} |")
        L.append("")
    return L


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    return plt, mdates


def _date_axis(ax, mdates) -> None:
    loc = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def pareto_plot(m: dict, path: str | Path) -> None:
    """Every policy at (average IM % of notional, largest 30-day increase %), marker area ~ bad debt over the
    evaluation period; the Pareto-efficient policies (no other is at least as good on all three) in red."""
    plt, _ = _mpl()
    names = list(m["policies"])
    x = np.array([100 * m["policies"][n]["avg_im_fraction"] for n in names])
    y = np.array([100 * m["policies"][n]["max_increase_30d"] for n in names])
    bd = np.array([m["policies"][n]["book"]["bad_debt_usd"] for n in names])
    pts = np.stack([x, y, bd], 1)
    dom = np.array([any(np.all(q <= p) and np.any(q < p) for q in pts) for p in pts])
    size = 40 + 800 * bd / bd.max() if bd.max() > 0 else np.full(len(bd), 60.0)
    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    ax.scatter(x[dom], y[dom], s=size[dom], c="tab:blue", alpha=0.6, label="dominated")
    ax.scatter(x[~dom], y[~dom], s=size[~dom], c="tab:red", alpha=0.6,
               label="Pareto-efficient (margin, 30d increase, bad debt)")
    for n, xi, yi, b in zip(names, x, y, bd):
        ax.annotate(f"{n}\n{_usd(b)} USD", (xi, yi), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("average IM (% of notional), evaluation period")
    ax.set_ylabel("largest 30-day increase of IM (%)")
    ax.set_title("Cost vs procyclicality; marker area = bad debt over the evaluation period")
    ax.margins(0.15)
    ax.legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plots(out_dir: Path, result) -> None:
    plt, mdates = _mpl()
    m = result.metrics
    assets = m["config"]["assets"]
    d = result.dates
    ev = result.eval_mask
    eval_start = d[ev][0] if ev.any() else d[0]
    p_high = next((v["p_high"] for v in result.paths.values() if v["p_high"] is not None), None)
    for a, asset in enumerate(assets):
        fig, axes = plt.subplots(2, 1, figsize=(14, 7), sharex=True, layout="constrained")
        for ax, side, key in ((axes[0], "long", "scan_down"), (axes[1], "short", "scan_up")):
            loss = 100 * result.losses[side][:, a]
            cols = [loss[ev]] + [100 * v[key][ev, a] for v in result.paths.values()]
            top = np.nanquantile(np.concatenate([x[np.isfinite(x)] for x in cols]), 0.995) * 1.3
            above = int(np.sum(loss[ev] > top)) + sum(int(np.sum(100 * v[key][:, a] > top))
                                                      for v in result.paths.values())
            ax.scatter(d, np.where(loss > 0, loss, np.nan), s=3, c="k", zorder=3,
                       label=f"realised {m['config']['horizon']}-day loss (long: top, short: bottom)")
            for name, v in result.paths.items():
                ax.plot(d, 100 * v[key][:, a], lw=1, label=f"{name} IM")
            for i, (w, info) in enumerate(result.windows.items()):
                ax.axvspan(info["start"], info["end"], color="grey", alpha=0.15,
                           label="stress windows" if i == 0 else None)
            ax.axvline(eval_start, color="tab:green", ls="--", lw=1, label="evaluation start")
            if p_high is not None:
                ax2 = ax.twinx()
                ax2.fill_between(d, 0, p_high[:, a], color="tab:red", alpha=0.10, step="mid")
                ax2.set_ylim(0, 1)
                ax2.set_ylabel("P(high-vol regime)")
                ax.fill_between([], [], color="tab:red", alpha=0.10, label="P(high-vol regime), right axis")
            ax.set_ylim(0, top)
            ax.set_ylabel(f"{side}: % of notional")
            ax.set_title(f"{asset} {side}: IM vs realised loss" + (f" ({above} points above the axis)"
                                                                   if above else ""), fontsize=10)
            _date_axis(ax, mdates)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right upper", fontsize=7)
        fig.savefig(out_dir / f"margin_vs_loss_{asset}.png", dpi=110)
        plt.close(fig)
    for fname, key, ylabel, title in (("insurance_fund.png", "fund", "insurance fund (USD m)", "Insurance fund"),
                                      ("bad_debt.png", "bad_debt", "cumulative bad debt (USD m)",
                                       "Cumulative bad debt since the book opened")):
        fig, ax = plt.subplots(figsize=(14, 4), layout="constrained")
        for name, v in result.paths.items():
            ax.plot(d, v[key] / 1e6, lw=1, label=name)
        for i, (w, info) in enumerate(result.windows.items()):
            ax.axvspan(info["start"], info["end"], color="grey", alpha=0.15, label="stress windows" if i == 0 else None)
        ax.axvline(eval_start, color="tab:green", ls="--", lw=1, label="evaluation start")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        fig.legend(loc="outside right upper", fontsize=7)
        _date_axis(ax, mdates)
        fig.savefig(out_dir / fname, dpi=110)
        plt.close(fig)
    pareto_plot(m, out_dir / "pareto.png")


def write_outputs(result, out_dir: str | Path, *, plot: bool = True) -> Path:
    """Write ``metrics.json``, ``report.md`` and (``plot``) the PNG plots of a backtest into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2, default=json_default))
    (out / "report.md").write_text(render_report(result.metrics))
    if plot:
        _plots(out, result)
    return out
