"""experiments.tune_policy: Pareto front, choice rule, config composition (fast); one trial end to end (slow)."""
import itertools

import numpy as np
import pytest

from experiments.tune_policy import best_reactive, choose, pareto_mask, slack


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.random((60, 3))
    pts[5] = pts[4]                                   # ties are not dominated
    got = pareto_mask(pts)
    ref = [not any(all(q <= p) and any(q < p) for j, q in enumerate(pts) if j != i) for i, p in enumerate(pts)]
    np.testing.assert_array_equal(got, ref)
    assert got[4] == got[5]


def _s(avg, inc, bd, min_p=0.5, passes=True, ptt=3.0, stress=None):
    return {"avg_margin": avg, "max_increase_30d": inc, "bad_debt_musd": bd, "min_p": min_p, "passes": passes,
            "peak_to_trough": ptt, "stress_bad_debt_musd": stress or {"w": bd}}


def test_slack_and_choice_rule():
    ref = _s(0.10, 2.0, 4.0)
    s = slack(_s(0.09, 1.0, 1.0), ref)
    assert s["avg_margin"] == pytest.approx(0.1) and s["max_increase_30d"] == pytest.approx(0.2)
    assert s["bad_debt"] == pytest.approx(0.25) and s["stress w"] == pytest.approx(0.75)
    trials = [{"summary": _s(0.09, 1.0, 1.0), "pareto": True},          # worst slack 0.1
              {"summary": _s(0.05, 1.9, 0.5), "pareto": True},          # 30d increase target missed
              {"summary": _s(0.01, 0.1, 0.0, passes=False), "pareto": True},   # fails coverage: never chosen
              {"summary": _s(0.08, 0.5, 1.0), "pareto": False}]         # off the front
    assert choose(trials, ref) is trials[0]             # meets every target
    assert choose([trials[2]], ref) is None
    assert best_reactive({"a": _s(0.1, 1, 1), "b": _s(0.08, 1, 1), "c": _s(0.01, 1, 1, passes=False)}) == "b"
    assert best_reactive({"a": _s(0.1, 1, 1, 0.01, False), "b": _s(0.08, 1, 1, 0.02, False)}) == "b"


def test_config_composes_with_validation_period_and_search_space(repo_root):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(repo_root / "conf"), version_base=None):
        cfg = compose("tune_policy", return_hydra_config=True)
    assert cfg.policy.kind == "predictive_smooth" and cfg.policy.lookahead_model == "regime_net_k"
    assert cfg.models.regime_net_k.horizon == cfg.lookahead_horizon == cfg.policy.lookahead_horizon
    assert cfg.end < cfg.test.eval_start                  # validation ends before the test starts
    assert cfg.train_end < cfg.eval_start
    params = cfg.hydra.sweeper.params
    assert all(k.startswith("policy.") for k in params)
    assert list(cfg.hydra.sweeper.direction) == ["minimize"] * 3


@pytest.mark.slow
def test_one_trial_end_to_end(tmp_path, repo_root):
    from hydra import compose, initialize_config_dir

    from experiments.tune_policy import run_trial

    with initialize_config_dir(config_dir=str(repo_root / "conf"), version_base=None):
        cfg = compose("tune_policy", overrides=["book=tiny", "book.n_accounts=50", f"forecast_cache={tmp_path}",
                                                "train_end=2019-06-30", "start=2019-07-01", "eval_start=2019-07-01",
                                                "end=2020-06-30", "+models.regime_net.max_epochs=2",
                                                "+models.regime_net_k.max_epochs=2", "policy.calib_min_periods=50"])
    vals = run_trial(cfg, tmp_path)
    assert len(vals) == 3 and all(np.isfinite(vals))
    assert (tmp_path / "trial.json").exists()
