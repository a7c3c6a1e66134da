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
* ``pareto``: read the trials of a sweep directory (``sweep_dir=...``, or a list ``sweep_dir=[a,b]``: trials
  pooled), evaluate the reactive baselines on the same validation period, print the Pareto front of the passing
  trials and CHOOSE one by a rule fixed before the test (with ``tune.choose_priority=bad_debt``: first the most
  bad-debt targets met, total and every validation stress window; then the most issue-10 targets met on validation,
  then the largest worst-target slack, :func:`choose`);
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

The logic (forecast cache, per-side coverage, objectives, Pareto front, choice rule, slack, tables) lives in
:mod:`margin.simulation.tuning` (re-exported here); this module reads the config, trains models and writes files.
"""
from __future__ import annotations

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
from margin.simulation.tuning import (  # noqa: F401  (re-exported: experiments.tune_policy.<name>)
    PENALTY, SIDES, ablation_markdown, best_reactive, cached_forecasts, choice_rule, choose, common_dates, front_plot,
    json_default, mark_pareto, objectives, pareto_markdown, pareto_mask, pareto_report, per_side_metrics, read_trials,
    slack, verdict_report, verdict_markdown, verdict_rows)

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _cache_file(cfg: DictConfig) -> Path:
    from predictive.training import model_conf_digest

    key = json.dumps({"models": OmegaConf.to_container(cfg.models, resolve=True), "train_end": str(cfg.train_end),
                      "horizon": int(cfg.horizon), "seed": int(cfg.seed), "assets": [str(a) for a in cfg.assets],
                      "data": OmegaConf.to_container(cfg.data, resolve=True), "end": str(cfg.end),
                      "model_files": model_conf_digest(), "refit_every": cfg.get("refit_every")}, sort_keys=True)
    return Path(cfg.forecast_cache) / f"tune_{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def forecasts_for(cfg: DictConfig) -> dict:
    """``{model: ForecastArrays}`` for every model in ``cfg.models``, each at ITS OWN horizon (``models.<m>.horizon``,
    default ``cfg.horizon``), on the common date index; cached on disk (:func:`margin.simulation.tuning.
    cached_forecasts`: file lock, one training per cache key)."""
    def compute() -> dict:
        from experiments.data import load_features
        from predictive.training import walk_forward_forecast_arrays

        features = load_features(cfg, with_prices=True)
        dates = _dates(features, cfg)
        horizon_of = lambda name, model: int(getattr(model, "horizon", None)  # noqa: E731
                                             or cfg.models[name].get("horizon", cfg.horizon))
        out, _ = walk_forward_forecast_arrays(cfg, features, list(cfg.models), dates, int(cfg.horizon),
                                              horizon_of=horizon_of, refit_every=cfg.get("refit_every"))
        return out

    return cached_forecasts(_cache_file(cfg), compute)


def _dates(features: Mapping[str, pd.DataFrame], cfg: DictConfig) -> pd.DatetimeIndex:
    return common_dates(features, [str(a) for a in cfg.assets], cfg.end)


def per_side(cfg: DictConfig, forecasts: Mapping, policy_cfgs: list[dict]) -> dict[str, dict]:
    """Per-side coverage and procyclicality of each policy over ``eval_start .. end``
    (:func:`margin.simulation.tuning.per_side_metrics` on ``cfg``'s assets and data)."""
    from experiments.data import load_features

    assets = [str(a) for a in cfg.assets]
    features = load_features(cfg, with_prices=True)
    dates = _dates(features, cfg)
    logret = np.stack([features[a]["log_return"].reindex(dates).to_numpy() for a in assets], 1)
    return per_side_metrics(logret, dates, assets, int(cfg.horizon), forecasts, policy_cfgs,
                            coverage=float(cfg.coverage), eval_start=cfg.eval_start, end=cfg.end)


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
    # sweep_dir may list several sweeps (``sweep_dir=[<dir1>,<dir2>]``): their trials are pooled, one front, one choice
    dirs = list(cfg.sweep_dir) if OmegaConf.is_list(cfg.sweep_dir) else [cfg.sweep_dir]
    trials = [t for d in dirs for t in read_trials(d)]
    passing = mark_pareto(trials)
    priority = cfg.tune.get("choose_priority")
    reactive = reactive_baselines(cfg)
    result, L = pareto_report(trials, passing, reactive, list(cfg.tune.report_keys),
                              eval_start=cfg.eval_start, end=cfg.end, train_end=_fitted(cfg), priority=priority)
    chosen = result["chosen"]
    if output_dir is not None:
        front_plot(trials, reactive, chosen, Path(output_dir, "pareto.png"),
                   title=f"Validation {cfg.eval_start} .. {cfg.end}: {len(trials)} trials (models fitted to "
                         f"{_fitted(cfg)})")
        L += ["", "Plot: pareto.png (every trial; red = front, green = chosen, stars = reactive baselines)"]
    if chosen is not None:
        L += ["", f"Chosen ({choice_rule(priority)}): {chosen['dir']}", "",
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


def _fitted(cfg: DictConfig) -> str:
    """``train_end`` and the refit schedule, for report headers ("models fitted to ...")."""
    from margin.simulation.report import fitted_label

    return fitted_label(cfg.train_end, cfg.get("refit_every"))


def _policy_yaml(policy: Mapping, cfg: DictConfig) -> str:
    import textwrap

    text = (f"Chosen by experiments.tune_policy on the VALIDATION period {cfg.eval_start} .. {cfg.end} (models fitted "
            f"to {_fitted(cfg)}; book {cfg.book.n_accounts} accounts, seed {cfg.seed}; horizon "
            f"{cfg.horizon}), sweep {cfg.sweep_dir}; rule: {choice_rule(cfg.tune.get('choose_priority'))} "
            "(experiments.tune_policy.choose). Design: margin/simulation/policies.py. Needs the k-day forecast "
            "`lookahead_model` (models.regime_net_k: a RegimeNet with forecast_horizon: k, in conf/backtest.yaml and "
            "conf/tune_policy.yaml); policy=predictive_smooth_nolook drops the foresight.")
    head = "".join(f"# {line}\n" for line in textwrap.wrap(text, 116))
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
    res, text = verdict_report(m, secs, eval_start=tcfg.eval_start, end=tcfg.end, seed=tcfg.seed,
                            policy_file=cfg.policy_file)
    print(text)
    if output_dir is not None:
        Path(output_dir, "test_table.md").write_text(text + "\n")
        Path(output_dir, "test_metrics.json").write_text(json.dumps({**res, "metrics": m}, indent=1, default=json_default))
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
    text = ablation_markdown(rows, eval_start=cfg.eval_start, end=cfg.end, train_end=_fitted(cfg))
    print(text)
    if output_dir is not None:
        Path(output_dir, "ablation.md").write_text(text + "\n")
    return rows


@hydra_app("tune_policy")
def main(cfg: DictConfig):
    from hydra.core.hydra_config import HydraConfig

    from experiments.schema import check_refit_every

    out = Path(HydraConfig.get().runtime.output_dir)
    check_refit_every(cfg)
    mode = str(cfg.mode)
    run = {"trial": run_trial, "pareto": run_pareto, "test": run_test, "ablation": run_ablation}.get(mode)
    if run is None:
        raise ValueError(f"mode: must be trial, pareto, test or ablation, got {mode!r}")
    res = run(cfg, out)
    return res if mode == "trial" else None     # the sweeper reads a trial's objectives


if __name__ == "__main__":
    main()
