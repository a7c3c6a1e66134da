"""Policy tuning on a validation period: per-side coverage of a trial, objectives, Pareto front, the choice rule,
issue-10 target slack, and the Markdown tables of ``experiments.tune_policy`` (library side of that Hydra app).

Everything here takes arrays, metric dicts and plain values (no Hydra config, no model training), so a notebook can
run a trial from forecasts it already has:

* :func:`cached_forecasts`: ``{model: ForecastArrays}`` cached in an ``.npz`` with a file lock (parallel trials wait
  for one training run; the caller passes the training as a function);
* :func:`common_dates`, :func:`per_side_metrics`: per-side coverage (longs judged against ``scan_down``, shorts
  against ``scan_up``; Kupiec POF and Christoffersen per asset x side) and procyclicality of policies;
* :func:`objectives` (three values to MINIMISE, raised by :data:`PENALTY` when coverage fails), :func:`pareto_mask`,
  :func:`slack`, :func:`choose`, :func:`choice_rule`, :func:`best_reactive`, :func:`read_trials`, :func:`mark_pareto`,
  :func:`front_plot` (every trial against the reactive baselines);
* :func:`pareto_report`, :func:`pareto_markdown`, :func:`verdict_report` (the test period's verdicts),
  :func:`verdict_rows`, :func:`verdict_markdown`, :func:`ablation_markdown`, :func:`json_default`.

``margin`` imports neither ``predictive`` nor ``zkproofs``.
"""
from __future__ import annotations

import fcntl
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SIDES = ("long", "short")
PENALTY = (1.0, 10.0, 1.0e3)     # added to (avg margin, 30d increase, bad debt USD m) of a failing configuration


# --------------------------------------------------------------------------------------------------- forecasts

def cached_forecasts(path: str | Path, compute: Callable[[], Mapping]) -> dict:
    """``{model: ForecastArrays}`` from the ``.npz`` at ``path``, or ``compute()`` saved there first.

    Holds an exclusive lock on ``path.with_suffix(".lock")`` while reading or computing, so parallel callers with
    the same ``path`` wait for ONE computation. Arrays are stored as ``"<model>.<field>"`` for the fields
    ``sigma, q_lo, q_hi, p_high`` (``p_high`` optional); written to a temporary file, then renamed.
    """
    from margin.simulation.policies import load_forecast_arrays, save_forecast_arrays

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return load_forecast_arrays(path)
        t0 = time.perf_counter()
        out = dict(compute())
        save_forecast_arrays(path, out)
        log.info("forecasts trained and cached in %.0f s: %s", time.perf_counter() - t0, path)
        return out


def common_dates(features: Mapping[str, pd.DataFrame], assets: list[str], end) -> pd.DatetimeIndex:
    """Dates present in every asset's frame of ``features`` (``{asset: DataFrame}`` indexed by date), up to ``end``."""
    dates = features[assets[0]].index
    for a in assets[1:]:
        dates = dates.intersection(features[a].index)
    return dates[dates <= pd.Timestamp(end)]


# --------------------------------------------------------------------------------------------------- evaluation

def per_side_metrics(log_returns: np.ndarray, dates: pd.DatetimeIndex, assets: list[str], horizon: int,
                     forecasts: Mapping, policy_cfgs: list[dict], *, coverage: float, eval_start,
                     end) -> dict[str, dict]:
    """Per-side coverage and procyclicality of each policy over ``eval_start .. end``.

    Args:
        log_returns: ``(T, A)`` daily log returns on ``dates`` (``T``) for ``assets`` (``A``).
        horizon: margin period of risk in days (exceptions over ``horizon``-day losses).
        forecasts: ``{model: ForecastArrays}`` on ``dates``.
        policy_cfgs: policy configs for :func:`margin.simulation.policies.make_policy`.
        coverage: target coverage (e.g. 0.99) of Kupiec / Christoffersen.

    Returns ``{policy name: {"coverage": {f"{asset}_{side}": coverage_metrics}, "procyclicality", "all_pass_5pct",
    "min_p", "avg_margin", "max_increase_30d", "max_increase_1d", "peak_to_trough", "exceptions"}}`` (margins as IM
    fractions); a symmetric policy uses ``scan_range`` on both sides (exactly what the simulator charges).
    """
    from margin.simulation.calibration import exceptions_per_side
    from margin.simulation.coverage import coverage_metrics
    from margin.simulation.policies import RiskInputs, make_policy
    from margin.simulation.procyclicality import largest_increase, peak_to_trough

    logret = log_returns
    inputs = RiskInputs(dates=dates, assets=tuple(assets), log_returns=logret, horizon=int(horizon),
                        forecasts=dict(forecasts))
    ev = (dates >= pd.Timestamp(eval_start)) & (dates <= pd.Timestamp(end))
    res = {}
    for pc in policy_cfgs:
        out = make_policy(pc)(inputs)
        down, up = out.side("long"), out.side("short")
        exc = exceptions_per_side(down, up, logret, int(horizon))
        r: dict = {"coverage": {}, "procyclicality": {}}
        paths = {"long": down[ev], "short": up[ev]}
        for a, asset in enumerate(assets):
            for side in SIDES:
                e = exc[side][ev][:, a]
                e = e[np.isfinite(e)].astype(bool)
                r["coverage"][f"{asset}_{side}"] = coverage_metrics(e, float(coverage))
                p = paths[side][:, a]
                r["procyclicality"][f"{asset}_{side}"] = {
                    "avg": float(np.mean(p)), "max_increase_30d": float(largest_increase(p, 30)),
                    "max_increase_1d": float(largest_increase(p, 1)), "peak_to_trough": float(peak_to_trough(p))}
        pcs = r["procyclicality"].values()
        r["all_pass_5pct"] = all(c["passes_5pct"] for c in r["coverage"].values())
        r["min_p"] = min(min(c["kupiec_p"], c["christoffersen_p_ind"], c["christoffersen_p_cc"])
                         for c in r["coverage"].values())
        r["avg_margin"] = float(np.mean([x["avg"] for x in pcs]))
        r["max_increase_30d"] = float(max(x["max_increase_30d"] for x in pcs))
        r["max_increase_1d"] = float(max(x["max_increase_1d"] for x in pcs))
        r["peak_to_trough"] = float(max(x["peak_to_trough"] for x in pcs))
        r["exceptions"] = {k: c["exceptions"] for k, c in r["coverage"].items()}
        res[out.name] = r
    return res


def objectives(r: Mapping) -> tuple[list[float], dict]:
    """(objectives to minimise, summary) of one policy's backtest metrics with a ``per_side`` block
    (:func:`per_side_metrics`): average IM fraction, largest 30-day increase, bad debt (USD m); each raised by
    :data:`PENALTY` when per-side coverage fails at 5%."""
    ps = r["per_side"]
    summary = {"avg_margin": ps["avg_margin"], "max_increase_30d": ps["max_increase_30d"],
               "max_increase_1d": ps["max_increase_1d"],
               "bad_debt_musd": r["book"]["bad_debt_usd"] / 1e6, "peak_to_trough": ps["peak_to_trough"],
               "passes": ps["all_pass_5pct"], "min_p": ps["min_p"], "exceptions": ps["exceptions"],
               "stress_bad_debt_musd": {w: x["bad_debt_usd"] / 1e6 for w, x in r["stress"].items()}}
    vals = [summary["avg_margin"], summary["max_increase_30d"], summary["bad_debt_musd"]]
    if not summary["passes"]:
        vals = [v + p for v, p in zip(vals, PENALTY)]
    return vals, summary


# --------------------------------------------------------------------------------------------------- choice

def pareto_mask(points: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: rows of ``points`` (``(n, k)``, minimise every column) not dominated by another row."""
    p = np.asarray(points, dtype=np.float64)
    keep = np.ones(len(p), bool)
    for i in range(len(p)):
        dominated = np.all(p <= p[i], axis=1) & np.any(p < p[i], axis=1)
        keep[i] = not dominated.any()
    return keep


#: Bad debt (USD m) below which a reference amount is not used as a denominator of a relative slack: USD 10,000,
#: the size of one small account's loss (a window where the reference lost USD 30 would turn a USD 3,000 loss into a
#: slack of -100 and decide every tie-break by the worst slack). Verdicts (met / not met) do not depend on it.
BAD_DEBT_MATERIALITY_MUSD = 0.01


def slack(s: Mapping, ref: Mapping) -> dict[str, float]:
    """Relative slack of a trial summary ``s`` on each issue-10 target against the reactive reference ``ref``
    (>= 0: met): coverage (min p-value - 0.05), average margin (1 - ratio), 30-day increase (reduction - 0.30),
    peak-to-trough (1 - ratio), bad debt (reduction - 0.50; 0 when both are 0), each stress window (no higher).
    Bad-debt reductions are relative to ``max(reference, BAD_DEBT_MATERIALITY_MUSD)``: the sign (met or not) is
    that of the plain comparison, the size stays bounded where the reference is near zero."""
    out = {"coverage": s["min_p"] - 0.05,
           "avg_margin": 1 - s["avg_margin"] / ref["avg_margin"],
           "max_increase_30d": (1 - s["max_increase_30d"] / ref["max_increase_30d"]) - 0.30,
           "peak_to_trough": 1 - s["peak_to_trough"] / ref["peak_to_trough"]}

    def reduction(x: float, rx: float) -> float:
        return (rx - x) / max(rx, BAD_DEBT_MATERIALITY_MUSD)

    bd, rbd = s["bad_debt_musd"], ref["bad_debt_musd"]
    out["bad_debt"] = reduction(bd, rbd) - 0.5 if rbd > 0 else (0.0 if bd == 0 else reduction(bd, 0.0))
    for w, x in s["stress_bad_debt_musd"].items():
        out[f"stress {w}"] = reduction(x, ref["stress_bad_debt_musd"].get(w, 0.0))
    return out


BAD_DEBT_TARGETS = ("bad_debt", "stress ")    # slack keys of the bad-debt targets (total, each stress window)


def choice_rule(priority: str | None = None) -> str:
    """The rule :func:`choose` applies, in words (the Pareto report and the written configuration quote it)."""
    return ("Pareto front of (avg margin, largest 30-day increase, bad debt) among configurations passing Kupiec + "
            "Christoffersen at 5% on every asset x side, then "
            + ("the most bad-debt targets met (total and every validation stress window), then "
               if priority == "bad_debt" else "")
            + "the most issue-10 targets met against the best reactive policy, ties by the largest worst slack")


def choose(trials: list[dict], ref: Mapping, priority: str | None = None) -> dict | None:
    """The rule fixed before the test is run: among passing trials on the Pareto front, the one that meets the most
    issue-10 targets against the best reactive policy on validation (:func:`slack` >= 0), ties broken by the
    largest WORST target slack (the most robust to a new period).

    ``priority="bad_debt"`` (``tune.choose_priority``) first maximises the number of BAD-DEBT targets met (the total
    and every stress window, :data:`BAD_DEBT_TARGETS`), then applies the rule above: safety is not traded for
    cost or smoothness (the 2021-2023 test of the earlier choice lost on bad debt in every stress window).
    ``None`` is the rule above alone.

    Raises:
        ValueError: unknown ``priority``.
    """
    if priority not in (None, "none", "bad_debt"):
        raise ValueError(f"tune.choose_priority: must be null, none or bad_debt, got {priority!r}")
    cand = [t for t in trials if t["summary"]["passes"] and t.get("pareto")]
    if not cand:
        return None

    def key(t):
        sl = slack(t["summary"], ref)
        met = sum(v >= 0 for v in sl.values())
        bd = sum(v >= 0 for k, v in sl.items() if k.startswith(BAD_DEBT_TARGETS))
        return (bd if priority == "bad_debt" else 0), met, min(sl.values())

    return max(cand, key=key)


def best_reactive(summaries: Mapping[str, Mapping]) -> str:
    """Best reactive policy: passes per-side coverage with the lowest average margin; if none passes, the one
    with the highest worst-series p-value (the rule of experiments.backtest's targets, per side)."""
    passing = [k for k, s in summaries.items() if s["passes"]]
    if passing:
        return min(passing, key=lambda k: summaries[k]["avg_margin"])
    return max(summaries, key=lambda k: summaries[k]["min_p"])



def read_trials(sweep_dir: str | Path) -> list[dict]:
    """Every ``trial.json`` below ``sweep_dir`` (sorted by path), each with ``"dir"`` set to its directory.
    Raises FileNotFoundError if there is none."""
    trials = []
    for p in sorted(Path(sweep_dir).rglob("trial.json")):
        t = json.loads(p.read_text())
        t["dir"] = str(p.parent)
        trials.append(t)
    if not trials:
        raise FileNotFoundError(f"sweep_dir: no trial.json below {sweep_dir}")
    return trials


def mark_pareto(trials: list[dict]) -> list[dict]:
    """Set ``t["pareto"]`` on every PASSING trial (``t["summary"]["passes"]``): on the Pareto front of (avg margin,
    largest 30-day increase, bad debt) among the passing trials. Returns the passing trials."""
    passing = [t for t in trials if t["summary"]["passes"]]
    if passing:
        pts = np.array([[t["summary"]["avg_margin"], t["summary"]["max_increase_30d"], t["summary"]["bad_debt_musd"]]
                        for t in passing])
        for t, keep in zip(passing, pareto_mask(pts)):
            t["pareto"] = bool(keep)
    return passing


def front_plot(trials: list[dict], reactive: Mapping[str, Mapping], chosen: dict | None, path: str | Path, *,
               title: str = "") -> dict[str, int]:
    """Every trial of a tuning sweep on two panels, average margin (% of notional) against bad debt (USD m) and
    against the largest 30-day increase (%): trials failing per-side coverage in grey, passing ones in blue, the
    Pareto front (``t["pareto"]``, :func:`mark_pareto`) in red, the chosen one circled in green, the reactive
    baselines (``reactive``: name -> :func:`objectives` summary) as black stars with their names.

    Returns:
        the number of points drawn per group (``failing``, ``passing``, ``front``, ``reactive``, ``chosen``).
    """
    from margin.simulation.report import _mpl

    plt, _ = _mpl()
    groups = {"failing": [t for t in trials if not t["summary"]["passes"]],
              "passing": [t for t in trials if t["summary"]["passes"] and not t.get("pareto")],
              "front": [t for t in trials if t["summary"]["passes"] and t.get("pareto")]}
    style = {"failing": dict(c="0.75", s=10, label="fails Kupiec / Christoffersen"),
             "passing": dict(c="tab:blue", s=14, alpha=0.6, label="passes coverage"),
             "front": dict(c="tab:red", s=26, label="Pareto front")}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    for ax, key, ylabel, scale in ((axes[0], "bad_debt_musd", "bad debt over the period (USD m)", 1.0),
                                   (axes[1], "max_increase_30d", "largest 30-day increase of IM (%)", 100.0)):
        for g, ts in groups.items():
            if ts:
                ax.scatter([100 * t["summary"]["avg_margin"] for t in ts], [scale * t["summary"][key] for t in ts],
                           **style[g])
        if chosen is not None:
            ax.scatter([100 * chosen["summary"]["avg_margin"]], [scale * chosen["summary"][key]], s=160,
                       facecolors="none", edgecolors="tab:green", linewidths=2, label="chosen")
        for name, r in reactive.items():
            x, y = 100 * r["avg_margin"], scale * r[key]
            ax.scatter([x], [y], marker="*", s=180, c="k")
            ax.annotate(name, (x, y), fontsize=8, xytext=(5, 5), textcoords="offset points")
        ax.set_xlabel("average IM (% of notional, mean of asset x side)")
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {**{g: len(ts) for g, ts in groups.items()}, "reactive": len(reactive), "chosen": int(chosen is not None)}


# --------------------------------------------------------------------------------------------------- tables

def pareto_markdown(trials: list[dict], passing: list[dict], front: list[dict], ref: Mapping[str, Mapping],
                    best: str, keys: list[str], *, eval_start, end, train_end) -> list[str]:
    """Markdown lines: the validation Pareto front (``front``: trials with ``policy`` and ``summary``; columns
    ``keys`` of the policy, margins in %, bad debt in USD m, targets met / worst :func:`slack` against
    ``ref[best]``), then the reactive baselines ``ref`` (summaries of :func:`objectives`)."""
    L = [f"# Validation Pareto front ({eval_start} .. {end}, models fitted to {train_end})", "",
         f"{len(trials)} trials, {len(passing)} pass Kupiec + Christoffersen at 5% on every asset x side, "
         f"{len(front)} on the Pareto front (avg margin, largest 30-day increase, bad debt).", "",
         "| " + " | ".join(keys) + " | avg margin | max 30d inc | peak/trough | bad debt (USD m) | min p | "
         "targets met / worst slack vs " + best + " |", "|" + "---|" * (len(keys) + 6)]
    for t in front:
        s = t["summary"]
        L.append("| " + " | ".join(_fmt(t["policy"].get(k)) for k in keys)
                 + f" | {100 * s['avg_margin']:.2f}% | {100 * s['max_increase_30d']:.0f}% | {s['peak_to_trough']:.2f}"
                 f" | {s['bad_debt_musd']:.3f} | {s['min_p']:.3f} | {sum(v >= 0 for v in slack(s, ref[best]).values())}/"
                 f"{len(slack(s, ref[best]))}, {min(slack(s, ref[best]).values()):+.3f} |")
    L += ["", "Reactive baselines on the same period:", ""]
    for k, s in ref.items():
        L.append(f"- {k}: avg margin {100 * s['avg_margin']:.2f}%, max 30d increase {100 * s['max_increase_30d']:.0f}%,"
                 f" peak/trough {s['peak_to_trough']:.2f}, bad debt {s['bad_debt_musd']:.3f} USD m, passes "
                 f"{s['passes']} (min p {s['min_p']:.3f}); stress windows (USD m): {_stress(s)}")
    L += ["", "Stress-window bad debt (USD m) of the front:", ""]
    L += [f"- front #{i}: {_stress(t['summary'])}" for i, t in enumerate(front)]
    return L


def _stress(s: Mapping) -> str:
    return ", ".join(f"{w} {v:.3f}" for w, v in s["stress_bad_debt_musd"].items())


def pareto_report(trials: list[dict], passing: list[dict], ref: Mapping[str, Mapping], keys: list[str], *,
                  eval_start, end, train_end, priority: str | None = None) -> tuple[dict, list[str]]:
    """Choose among ``trials`` (``passing`` marked by :func:`mark_pareto`) against the best of the reactive
    summaries ``ref`` (:func:`best_reactive`, :func:`choose`). Returns (``{"n_trials", "n_passing", "front" (sorted
    by avg margin), "reactive", "best_reactive", "chosen" (a trial or None)}``, Markdown lines of
    :func:`pareto_markdown`). ``priority``: see :func:`choose`."""
    best = best_reactive(ref)
    chosen = choose(trials, ref[best], priority)
    front = sorted([t for t in passing if t.get("pareto")], key=lambda t: t["summary"]["avg_margin"])
    L = pareto_markdown(trials, passing, front, ref, best, keys, eval_start=eval_start, end=end, train_end=train_end)
    result = {"n_trials": len(trials), "n_passing": len(passing), "front": front, "reactive": ref,
              "best_reactive": best, "chosen": chosen}
    return result, L


def verdict_report(m: Mapping, seconds: float, *, eval_start, end, seed, policy_file) -> tuple[dict, str]:
    """Verdicts of the test period from backtest metrics ``m`` (first policy = the predictive one, the others
    reactive, each with a ``per_side`` block). Returns (``{"table": rows of :func:`verdict_rows`, "summaries",
    "best_reactive", "predictive", "seconds"}``, the Markdown of :func:`verdict_markdown`)."""
    summ = {k: objectives(v)[1] for k, v in m["policies"].items()}
    pred = next(iter(m["policies"]))
    react = {k: v for k, v in summ.items() if k != pred}
    best = best_reactive(react)
    rows = verdict_rows(m, summ, pred, best, eval_start=eval_start, end=end)
    text = verdict_markdown(m, rows, summ, pred, best, seed=seed, policy_file=policy_file, seconds=seconds)
    return {"table": rows, "summaries": summ, "best_reactive": best, "predictive": pred, "seconds": seconds}, text


def verdict_rows(m: Mapping, summ: Mapping[str, Mapping], pred: str, best: str, *, eval_start,
                  end) -> list[tuple[str, str, str, str]]:
    """Rows ``(target, predictive value, reactive value, "met" | "NOT met")`` of every issue-10 target for policy
    ``pred`` against ``best`` (``m``: backtest metrics with ``per_side`` blocks; ``summ``: :func:`objectives`
    summaries); stress windows count only if they lie within ``eval_start .. end``."""
    P, R = summ[pred], summ[best]
    ev0, ev1 = pd.Timestamp(eval_start), pd.Timestamp(end)
    windows = {w: x for w, x in m["policies"][pred]["stress"].items()
               if pd.Timestamp(x["start"]) >= ev0 and pd.Timestamp(x["end"]) <= ev1}
    rows = []

    def add(target, value, ref, met):
        rows.append((target, value, ref, "met" if met else "NOT met"))

    for ser, c in m["policies"][pred]["per_side"]["coverage"].items():
        add(f"coverage {ser}: Kupiec p / Christoffersen p_ind / p_cc >= 0.05",
            f"{c['exceptions']} exc., {c['kupiec_p']:.3f} / {c['christoffersen_p_ind']:.3f} / {c['christoffersen_p_cc']:.3f}",
            _cov_ref(m["policies"][best]["per_side"]["coverage"][ser]), c["passes_5pct"])
    add("average margin (IM fraction, mean of asset x side) no higher", f"{100 * P['avg_margin']:.2f}%",
        f"{100 * R['avg_margin']:.2f}%", P["avg_margin"] <= R["avg_margin"])
    red = 1 - P["max_increase_30d"] / R["max_increase_30d"] if R["max_increase_30d"] > 0 else float("nan")
    add("largest 30-day increase at least 30% lower", f"{100 * P['max_increase_30d']:.0f}% ({100 * red:.0f}% lower)",
        f"{100 * R['max_increase_30d']:.0f}%", red >= 0.30)
    add("peak-to-trough lower", f"{P['peak_to_trough']:.2f}", f"{R['peak_to_trough']:.2f}",
        P["peak_to_trough"] < R["peak_to_trough"])
    bd, rbd = P["bad_debt_musd"], R["bad_debt_musd"]
    bred = (1 - bd / rbd) if rbd > 0 else (0.0 if bd == 0 else -np.inf)
    add("bad debt over the evaluation period at least 50% lower", f"{bd:.3f} USD m ({100 * bred:.0f}% lower)",
        f"{rbd:.3f} USD m", bred >= 0.5)
    for w in windows:
        x, rx = P["stress_bad_debt_musd"][w], R["stress_bad_debt_musd"].get(w, 0.0)
        add(f"bad debt in stress window {w} no higher", f"{x:.3f} USD m", f"{rx:.3f} USD m", x <= rx)
    return rows


def verdict_markdown(m: Mapping, rows: list[tuple], summ: Mapping[str, Mapping], pred: str, best: str, *, seed,
                  policy_file, seconds: float) -> str:
    """The test table: the verdict rows of :func:`verdict_rows`, then every policy's summary (margins in %, bad
    debt in USD m, stress-window bad debt, exceptions per series, passes)."""
    c = m["config"]
    from margin.simulation.report import fitted_label

    L = [f"# Test period {c['eval_start']} .. {c['end']} (models fitted to "
         f"{fitted_label(c['train_end'], c.get('refit_every'))}; book opened "
         f"{c['start']}, {c['accounts']:,} accounts, seed {seed}; horizon {c['horizon']})", "",
         f"Predictive: {pred} (conf/policy/{policy_file}.yaml); best reactive by per-side coverage then "
         f"cost: {best}. Run once; {seconds:.0f} s.", "",
         "| target | " + pred + " | " + best + " | verdict |", "|---|---|---|---|"]
    L += [f"| {a} | {b} | {r} | {v} |" for a, b, r, v in rows]
    L += ["", "All policies:", "", "| policy | avg margin | max 30d inc | peak/trough | bad debt (USD m) | "
          + " | ".join(f"stress {w}" for w in m["policies"][pred]["stress"]) + " | exceptions per series | passes |",
          "|---|---|---|---|---|" + "---|" * len(m["policies"][pred]["stress"]) + "---|---|"]
    for k, s in summ.items():
        L.append(f"| {k} | {100 * s['avg_margin']:.2f}% | {100 * s['max_increase_30d']:.0f}% | "
                 f"{s['peak_to_trough']:.2f} | {s['bad_debt_musd']:.3f} | "
                 + " | ".join(f"{v:.3f}" for v in s["stress_bad_debt_musd"].values())
                 + f" | {s['exceptions']} | {s['passes']} |")
    return "\n".join(L)


def ablation_markdown(rows: Mapping[str, tuple[Mapping, Mapping]], *, eval_start, end, train_end) -> str:
    """The ablation table: ``rows`` is ``{variant: (parameter overrides, summary of :func:`objectives`)}``."""
    L = [f"# Ablation on {eval_start} .. {end} (models fitted to {train_end})", "",
         "| variant | overrides | exceptions per series | passes | avg margin | max 30d inc | max 1d inc | "
         "peak/trough | bad debt (USD m) |", "|---|---|---|---|---|---|---|---|---|"]
    for label, (over, s) in rows.items():
        L.append(f"| {label} | {over or '-'} | {s['exceptions']} | {s['passes']} (min p {s['min_p']:.3f}) | "
                 f"{100 * s['avg_margin']:.2f}% | {100 * s['max_increase_30d']:.0f}% | "
                 f"{100 * s['max_increase_1d']:.0f}% | {s['peak_to_trough']:.2f} | {s['bad_debt_musd']:.3f} |")
    return "\n".join(L)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _cov_ref(c: Mapping) -> str:
    return f"{c['exceptions']} exc., {c['kupiec_p']:.3f} / {c['christoffersen_p_ind']:.3f} / {c['christoffersen_p_cc']:.3f}"


def json_default(x):
    """``json.dumps(default=...)`` for metrics: NumPy scalars and arrays as Python values, anything else as str."""
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)
