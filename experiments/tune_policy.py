"""Tune a margin policy on a VALIDATION period, then run the TEST period once (Hydra app, ``conf/tune_policy.yaml``).

Modes (``mode=...``):

* ``trial`` (what a sweep runs): evaluate the selected policy (default ``conf/policy/predictive_smooth.yaml``)
  on the validation period with :func:`experiments.backtest.run_backtest` (same book, liquidation engine, bad
  debt), plus per-side coverage (longs judged against ``scan_down``, shorts against ``scan_up``,
  :func:`margin.simulation.calibration.exceptions_per_side`; Kupiec POF and Christoffersen per asset x side). Returns the
  three objectives to MINIMISE: average IM fraction (mean over assets and sides), largest 30-day increase (max over
  asset x side), bad debt over the evaluation period (USD m). A configuration that fails Kupiec or Christoffersen
  (independence or conditional coverage) at 5% on any series gets every objective raised by a penalty, so it is
  dominated (the optuna sweeper has no constraint hook).
* ``pareto``: read the trials of a sweep directory (``sweep_dir=...``), evaluate the reactive baselines on the
  same validation period, print the Pareto front of the passing trials and CHOOSE one by a rule fixed before the
  test (the most issue-10 targets met on validation, then the largest worst-target slack, :func:`choose`);
  write it as ``chosen_policy.yaml`` (and to ``conf/policy/<write_conf>.yaml`` when ``write_conf`` is set).
* ``ablation``: the selected policy beside variants (``ablation.*``: the same step limit without foresight,
  with a hard coverage floor, without speed limits) on the validation period: what the lookahead buys.
* ``test``: the test period (``test.*``: models refitted to ``test.train_end``) ONCE for the selected policy
  beside ``test.compare`` (reactive EWMA and GARCH) with the same book; writes ``test_table.md`` / ``.json`` with a
  verdict on every target of issue 10.

Forecasts are computed once per (models, period, data, seed) and cached under ``forecast_cache`` (an ``.npz``
with a file lock, so parallel trials wait for one training run); each trial then runs only the policy and the
simulator. Sweep (Hydra's optuna sweeper, multi-objective NSGA-II, two jobs through the joblib launcher)::

    python -m experiments.tune_policy -m                         # 200 trials (hydra.sweeper.n_trials)
    python -m experiments.tune_policy mode=pareto sweep_dir=multirun/tune_policy/<date>/<time> \
        write_conf=predictive_smooth
    python -m experiments.tune_policy mode=test                  # once, with the chosen configuration

Honest evaluation: parameters are chosen on the validation period only; the test period is run once per chosen
configuration and reported as it comes out.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from experiments._cli import hydra_app

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
SIDES = ("long", "short")
PENALTY = (1.0, 10.0, 1.0e3)     # added to (avg margin, 30d increase, bad debt USD m) of a failing configuration


# --------------------------------------------------------------------------------------------------- forecasts

def _cache_file(cfg: DictConfig) -> Path:
    key = json.dumps({"models": OmegaConf.to_container(cfg.models, resolve=True), "train_end": str(cfg.train_end),
                      "horizon": int(cfg.horizon), "seed": int(cfg.seed), "assets": [str(a) for a in cfg.assets],
                      "data": OmegaConf.to_container(cfg.data, resolve=True), "end": str(cfg.end)}, sort_keys=True)
    return Path(cfg.forecast_cache) / f"tune_{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def forecasts_for(cfg: DictConfig) -> dict:
    """``{model: ForecastArrays}`` for every model in ``cfg.models``, each at ITS OWN horizon (``models.<m>.horizon``,
    default ``cfg.horizon``), on the common date index; cached on disk (file lock: one training per cache key)."""
    from experiments.backtest import forecast_arrays, train_models
    from experiments.data import load_features
    from margin.simulation.policies import ForecastArrays

    path = _cache_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            z = np.load(path)
            names = sorted({k.split(".")[0] for k in z.files})
            return {n: ForecastArrays(z[f"{n}.sigma"], z[f"{n}.q_lo"], z[f"{n}.q_hi"],
                                      z[f"{n}.p_high"] if f"{n}.p_high" in z.files else None) for n in names}
        t0 = time.perf_counter()
        features = load_features(cfg, with_prices=True)
        dates = _dates(features, cfg)
        models, _ = train_models(cfg, features, list(cfg.models))
        out, arrays = {}, {}
        for name, model in models.items():
            h = int(getattr(model, "horizon", None) or cfg.models[name].get("horizon", cfg.horizon))
            out[name] = forecast_arrays({name: model}, features, dates, h)[name]
            for f in ("sigma", "q_lo", "q_hi", "p_high"):
                if getattr(out[name], f) is not None:
                    arrays[f"{name}.{f}"] = getattr(out[name], f)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        log.info("forecasts trained and cached in %.0f s: %s", time.perf_counter() - t0, path)
        return out


def _dates(features: Mapping[str, pd.DataFrame], cfg: DictConfig) -> pd.DatetimeIndex:
    assets = [str(a) for a in cfg.assets]
    dates = features[assets[0]].index
    for a in assets[1:]:
        dates = dates.intersection(features[a].index)
    return dates[dates <= pd.Timestamp(cfg.end)]


# --------------------------------------------------------------------------------------------------- evaluation

def per_side(cfg: DictConfig, forecasts: Mapping, policy_cfgs: list[dict]) -> dict[str, dict]:
    """Per-side coverage and procyclicality of each policy over ``eval_start .. end``.

    Returns ``{policy name: {"coverage": {f"{asset}_{side}": coverage_metrics}, "all_pass_5pct", "avg_margin",
    "avg_margin_by_series", "max_increase_30d", "peak_to_trough"}}``; a symmetric policy uses ``scan_range`` on both
    sides (exactly what the simulator charges).
    """
    from experiments.backtest import coverage_metrics
    from experiments.data import load_features
    from margin.simulation.calibration import exceptions_per_side
    from margin.simulation.policies import RiskInputs, make_policy
    from margin.simulation.procyclicality import largest_increase, peak_to_trough

    assets = [str(a) for a in cfg.assets]
    features = load_features(cfg, with_prices=True)
    dates = _dates(features, cfg)
    logret = np.stack([features[a]["log_return"].reindex(dates).to_numpy() for a in assets], 1)
    inputs = RiskInputs(dates=dates, assets=tuple(assets), log_returns=logret, horizon=int(cfg.horizon),
                        forecasts=dict(forecasts))
    ev = (dates >= pd.Timestamp(cfg.eval_start)) & (dates <= pd.Timestamp(cfg.end))
    res = {}
    for pc in policy_cfgs:
        out = make_policy(pc)(inputs)
        down, up = out.side("long"), out.side("short")
        exc = exceptions_per_side(down, up, logret, int(cfg.horizon))
        r: dict = {"coverage": {}, "procyclicality": {}}
        paths = {"long": down[ev], "short": up[ev]}
        for a, asset in enumerate(assets):
            for side in SIDES:
                e = exc[side][ev][:, a]
                e = e[np.isfinite(e)].astype(bool)
                r["coverage"][f"{asset}_{side}"] = coverage_metrics(e, float(cfg.coverage))
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


def evaluate(cfg: DictConfig, forecasts: Mapping | None = None) -> dict:
    """Backtest metrics (:func:`experiments.backtest.run_backtest`) of the selected policy and ``cfg.compare``,
    each with a ``per_side`` block (:func:`per_side`)."""
    from experiments.backtest import policy_configs, run_backtest

    forecasts = forecasts_for(cfg) if forecasts is None else forecasts
    m = run_backtest(cfg, None, forecasts=forecasts)
    ps = per_side(cfg, forecasts, policy_configs(cfg))
    for name, r in m["policies"].items():
        r["per_side"] = ps[name]
    return m


def objectives(r: Mapping) -> tuple[list[float], dict]:
    """(objectives to minimise, summary) of one policy's metrics from :func:`evaluate`."""
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


def slack(s: Mapping, ref: Mapping) -> dict[str, float]:
    """Relative slack of a trial summary ``s`` on each issue-10 target against the reactive reference ``ref``
    (>= 0: met): coverage (min p-value - 0.05), average margin (1 - ratio), 30-day increase (reduction - 0.30),
    peak-to-trough (1 - ratio), bad debt (reduction - 0.50; 0 when both are 0), each stress window (no higher)."""
    out = {"coverage": s["min_p"] - 0.05,
           "avg_margin": 1 - s["avg_margin"] / ref["avg_margin"],
           "max_increase_30d": (1 - s["max_increase_30d"] / ref["max_increase_30d"]) - 0.30,
           "peak_to_trough": 1 - s["peak_to_trough"] / ref["peak_to_trough"]}
    bd, rbd = s["bad_debt_musd"], ref["bad_debt_musd"]
    out["bad_debt"] = (1 - bd / rbd) - 0.5 if rbd > 0 else (0.0 if bd == 0 else -bd)
    for w, x in s["stress_bad_debt_musd"].items():
        rx = ref["stress_bad_debt_musd"].get(w, 0.0)
        out[f"stress {w}"] = (1 - x / rx) if rx > 0 else (0.0 if x == 0 else -x)
    return out


def choose(trials: list[dict], ref: Mapping) -> dict | None:
    """The rule fixed before the test is run: among passing trials on the Pareto front, the one that meets the most
    issue-10 targets against the best reactive policy on validation (:func:`slack` >= 0), ties broken by the
    largest WORST target slack (the most robust to a new period)."""
    cand = [t for t in trials if t["summary"]["passes"] and t.get("pareto")]
    if not cand:
        return None

    def key(t):
        sl = slack(t["summary"], ref)
        return sum(v >= 0 for v in sl.values()), min(sl.values())

    return max(cand, key=key)


def best_reactive(summaries: Mapping[str, Mapping]) -> str:
    """Best reactive policy: passes per-side coverage with the lowest average margin; if none passes, the one
    with the highest worst-series p-value (the rule of experiments.backtest's targets, per side)."""
    passing = [k for k, s in summaries.items() if s["passes"]]
    if passing:
        return min(passing, key=lambda k: summaries[k]["avg_margin"])
    return max(summaries, key=lambda k: summaries[k]["min_p"])


# --------------------------------------------------------------------------------------------------- modes

def run_trial(cfg: DictConfig, output_dir: Path | None) -> list[float]:
    t0 = time.perf_counter()
    m = evaluate(cfg)
    name = next(iter(m["policies"]))
    vals, summary = objectives(m["policies"][name])
    rec = {"policy": OmegaConf.to_container(cfg.policy, resolve=True), "summary": summary, "objectives": vals,
           "seconds": time.perf_counter() - t0}
    if output_dir is not None:
        Path(output_dir, "trial.json").write_text(json.dumps(rec, indent=1, default=float))
    log.info("trial: %s -> %s (%.1f s)", {k: v for k, v in rec["policy"].items()
                                          if k in cfg.tune.report_keys}, [round(v, 4) for v in vals],
             rec["seconds"])
    return vals


def reactive_baselines(cfg: DictConfig) -> dict[str, dict]:
    """Summaries (:func:`objectives`) of the ``cfg.tune.reactive`` policies on ``cfg``'s period and book."""
    rcfg = cfg.copy()
    OmegaConf.update(rcfg, "policy", OmegaConf.create(_load_policy(str(cfg.tune.reactive[0]))), merge=False)
    OmegaConf.update(rcfg, "compare", list(cfg.tune.reactive[1:]), merge=False)
    m = evaluate(rcfg)
    return {k: objectives(v)[1] for k, v in m["policies"].items()}


def run_pareto(cfg: DictConfig, output_dir: Path | None) -> dict:
    if not cfg.get("sweep_dir"):
        raise ValueError("sweep_dir: set it to the multirun directory of the sweep (mode=pareto)")
    trials = []
    for p in sorted(Path(cfg.sweep_dir).rglob("trial.json")):
        t = json.loads(p.read_text())
        t["dir"] = str(p.parent)
        trials.append(t)
    if not trials:
        raise FileNotFoundError(f"sweep_dir: no trial.json below {cfg.sweep_dir}")
    passing = [t for t in trials if t["summary"]["passes"]]
    if passing:
        pts = np.array([[t["summary"]["avg_margin"], t["summary"]["max_increase_30d"], t["summary"]["bad_debt_musd"]]
                        for t in passing])
        for t, keep in zip(passing, pareto_mask(pts)):
            t["pareto"] = bool(keep)
    ref = reactive_baselines(cfg)
    best = best_reactive(ref)
    chosen = choose(trials, ref[best])
    front = sorted([t for t in passing if t.get("pareto")], key=lambda t: t["summary"]["avg_margin"])
    keys = list(cfg.tune.report_keys)
    L = [f"# Validation Pareto front ({cfg.eval_start} .. {cfg.end}, models fitted to {cfg.train_end})", "",
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
                 f"{s['passes']} (min p {s['min_p']:.3f})")
    result = {"n_trials": len(trials), "n_passing": len(passing), "front": front, "reactive": ref,
              "best_reactive": best, "chosen": chosen}
    if chosen is not None:
        L += ["", f"Chosen (most targets met on validation, then largest worst slack): {chosen['dir']}", "",
              "```yaml", _policy_yaml(chosen["policy"], cfg), "```"]
        if cfg.get("write_conf"):
            path = CONF_DIR / "policy" / f"{cfg.write_conf}.yaml"
            path.write_text(_policy_yaml(chosen["policy"], cfg))
            L.append(f"written to {path}")
    else:
        L += ["", "No passing configuration on the Pareto front: nothing chosen."]
    text = "\n".join(L)
    print(text)
    if output_dir is not None:
        Path(output_dir, "pareto.md").write_text(text + "\n")
        Path(output_dir, "pareto.json").write_text(json.dumps(result, indent=1, default=float))
        if chosen is not None:
            Path(output_dir, "chosen_policy.yaml").write_text(_policy_yaml(chosen["policy"], cfg))
    return result


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _policy_yaml(policy: Mapping, cfg: DictConfig) -> str:
    head = (f"# Chosen by experiments.tune_policy on the VALIDATION period {cfg.eval_start} .. {cfg.end} (models fitted "
            f"to {cfg.train_end}; book {cfg.book.n_accounts} accounts, seed {cfg.seed}; horizon {cfg.horizon}),\n"
            f"# sweep {cfg.sweep_dir}; rule: Pareto front of (avg margin, largest 30-day increase, bad debt) among\n"
            "# configurations passing Kupiec + Christoffersen at 5% on every asset x side, then the most issue-10 targets\n"
            "# met against the best reactive policy, ties by the largest worst slack (experiments.tune_policy.choose).\n"
            "# Design: margin/simulation/policies.py.\n"
            "# Needs the k-day forecast `lookahead_model` (models.regime_net_k in conf/tune_policy.yaml): run it with\n"
            "# `python -m experiments.tune_policy mode=test`; from experiments.backtest use policy=predictive_smooth_nolook.\n")
    body = {k: v for k, v in policy.items() if k != "defaults"}
    return head + "defaults:\n  - _apc\n  - _self_\n" + OmegaConf.to_yaml(OmegaConf.create(body))


def _load_policy(name: str) -> dict:
    from experiments.backtest import load_policy_config

    return load_policy_config(name)


def run_test(cfg: DictConfig, output_dir: Path | None) -> dict:
    """The TEST period once: the selected policy beside ``test.compare`` with the same book; verdict table."""
    tcfg = cfg.copy()
    for k, v in OmegaConf.to_container(cfg.test, resolve=True).items():
        OmegaConf.update(tcfg, k, v, merge=isinstance(v, dict))
    t0 = time.perf_counter()
    m = evaluate(tcfg)
    secs = time.perf_counter() - t0
    summ = {k: objectives(v)[1] for k, v in m["policies"].items()}
    pred = next(iter(m["policies"]))
    react = {k: v for k, v in summ.items() if k != pred}
    best = best_reactive(react)
    P, R = summ[pred], summ[best]
    ev0, ev1 = pd.Timestamp(tcfg.eval_start), pd.Timestamp(tcfg.end)
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
    c = m["config"]
    L = [f"# Test period {c['eval_start']} .. {c['end']} (models fitted to {c['train_end']}; book opened "
         f"{c['start']}, {c['accounts']:,} accounts, seed {tcfg.seed}; horizon {c['horizon']})", "",
         f"Predictive: {pred} (conf/policy/{cfg.policy_file}.yaml); best reactive by per-side coverage then "
         f"cost: {best}. Run once; {secs:.0f} s.", "",
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
    text = "\n".join(L)
    print(text)
    res = {"table": rows, "summaries": summ, "best_reactive": best, "predictive": pred, "seconds": secs}
    if output_dir is not None:
        Path(output_dir, "test_table.md").write_text(text + "\n")
        Path(output_dir, "test_metrics.json").write_text(json.dumps({**res, "metrics": m}, indent=1, default=_jd))
    return res


def run_ablation(cfg: DictConfig, output_dir: Path | None) -> dict:
    """The selected policy and its variants ``cfg.ablation`` (parameter overrides, e.g. the same step limit
    without foresight) on the configured period: shows what the lookahead buys. Run on the validation period."""
    base = OmegaConf.to_container(cfg.policy, resolve=True)
    rows = {}
    forecasts = forecasts_for(cfg)
    for label, over in {"selected": {}, **OmegaConf.to_container(cfg.ablation, resolve=True)}.items():
        vcfg = cfg.copy()
        OmegaConf.update(vcfg, "policy", OmegaConf.create({**base, **over, "name": f"{base['name']}[{label}]"}),
                         merge=False)
        m = evaluate(vcfg, forecasts)
        rows[label] = (over, objectives(next(iter(m["policies"].values())))[1])
    L = [f"# Ablation on {cfg.eval_start} .. {cfg.end} (models fitted to {cfg.train_end})", "",
         "| variant | overrides | exceptions per series | passes | avg margin | max 30d inc | max 1d inc | "
         "peak/trough | bad debt (USD m) |", "|---|---|---|---|---|---|---|---|---|"]
    for label, (over, s) in rows.items():
        L.append(f"| {label} | {over or '-'} | {s['exceptions']} | {s['passes']} (min p {s['min_p']:.3f}) | "
                 f"{100 * s['avg_margin']:.2f}% | {100 * s['max_increase_30d']:.0f}% | "
                 f"{100 * s['max_increase_1d']:.0f}% | {s['peak_to_trough']:.2f} | {s['bad_debt_musd']:.3f} |")
    text = "\n".join(L)
    print(text)
    if output_dir is not None:
        Path(output_dir, "ablation.md").write_text(text + "\n")
    return rows


def _cov_ref(c: Mapping) -> str:
    return f"{c['exceptions']} exc., {c['kupiec_p']:.3f} / {c['christoffersen_p_ind']:.3f} / {c['christoffersen_p_cc']:.3f}"


def _jd(x):
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


@hydra_app("tune_policy")
def main(cfg: DictConfig):
    from hydra.core.hydra_config import HydraConfig

    out = Path(HydraConfig.get().runtime.output_dir)
    mode = str(cfg.mode)
    if mode == "trial":
        return run_trial(cfg, out)
    if mode == "pareto":
        run_pareto(cfg, out)
        return None
    if mode == "test":
        run_test(cfg, out)
        return None
    if mode == "ablation":
        run_ablation(cfg, out)
        return None
    raise ValueError(f"mode: must be trial, pareto, test or ablation, got {mode!r}")


if __name__ == "__main__":
    main()
