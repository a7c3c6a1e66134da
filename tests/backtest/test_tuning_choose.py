"""margin.simulation.tuning.choose with the bad-debt priority (tune.choose_priority) and its report lines."""
import pytest

from margin.simulation.tuning import choose, pareto_report, slack


def _s(avg, inc, bd, stress, min_p=0.5, passes=True, ptt=3.0):
    return {"avg_margin": avg, "max_increase_30d": inc, "bad_debt_musd": bd, "min_p": min_p, "passes": passes,
            "peak_to_trough": ptt, "stress_bad_debt_musd": stress}


REF = _s(0.10, 2.0, 4.0, {"a": 1.0, "b": 0.5})


def test_bad_debt_priority_changes_the_choice():
    # both rules agree when the safer point also meets more targets overall
    cheap = {"summary": _s(0.09, 1.0, 3.0, {"a": 1.2, "b": 0.6}), "pareto": True}     # 4 of 7 met, 0 bad-debt
    safe = {"summary": _s(0.11, 1.5, 1.5, {"a": 0.9, "b": 0.4}), "pareto": True}      # 5 of 7 met, 3 bad-debt
    sc, ss = slack(cheap["summary"], REF), slack(safe["summary"], REF)
    assert sum(v >= 0 for v in sc.values()) == 4 and sum(v >= 0 for v in ss.values()) == 5
    assert choose([cheap, safe], REF) is safe and choose([cheap, safe], REF, "bad_debt") is safe
    # they differ when the cheaper point meets more targets but fewer bad-debt ones
    cheap2 = {"summary": _s(0.09, 1.0, 1.9, {"a": 1.2, "b": 0.6}, ptt=2.0), "pareto": True}   # 5 met, 1 bad-debt
    safe2 = {"summary": _s(0.11, 1.9, 1.9, {"a": 0.9, "b": 0.4}, ptt=3.5), "pareto": True}   # 4 met, 3 bad-debt
    assert choose([cheap2, safe2], REF) is cheap2
    assert choose([cheap2, safe2], REF, None) is cheap2
    assert choose([cheap2, safe2], REF, "bad_debt") is safe2
    off_front = {"summary": _s(0.05, 0.5, 0.1, {"a": 0.0, "b": 0.0}), "pareto": False}
    assert choose([cheap2, safe2, off_front], REF, "bad_debt") is safe2     # still only the front
    with pytest.raises(ValueError, match="choose_priority"):
        choose([cheap2], REF, "cheapest")


def test_pareto_report_lists_stress_windows():
    t = {"summary": _s(0.09, 1.0, 1.9, {"a": 1.2, "b": 0.6}), "pareto": True, "policy": {"max_rise": 0.1}}
    res, lines = pareto_report([t], [t], {"garch": REF}, ["max_rise"], eval_start="2018-01-01", end="2020-12-31",
                               train_end="2017-12-31", priority="bad_debt")
    assert res["chosen"] is t and res["best_reactive"] == "garch"
    text = "\n".join(lines)
    assert "stress windows (USD m): a 1.000, b 0.500" in text and "front #0: a 1.200, b 0.600" in text


def test_slack_is_bounded_where_the_reference_bad_debt_is_near_zero():
    """A window where the reference lost USD 30 must not turn a USD 3,000 loss into a slack of -100 (it would decide
    every tie-break by the worst slack); the sign (met or not) is the plain comparison's."""
    from margin.simulation.tuning import BAD_DEBT_MATERIALITY_MUSD

    ref = _s(0.10, 2.0, 4.0, {"tiny": 3e-5, "zero": 0.0, "big": 1.0})
    sl = slack(_s(0.10, 2.0, 1.0, {"tiny": 3e-3, "zero": 0.0, "big": 0.5}), ref)
    assert sl["stress tiny"] == pytest.approx(-(3e-3 - 3e-5) / BAD_DEBT_MATERIALITY_MUSD) and sl["stress tiny"] > -1
    assert sl["stress zero"] == 0.0 and sl["stress big"] == pytest.approx(0.5)
    assert sl["bad_debt"] == pytest.approx(0.25)
    below = slack(_s(0.10, 2.0, 1.0, {"tiny": 1e-5, "zero": 1e-4, "big": 1.0}), ref)
    assert below["stress tiny"] > 0 and below["stress zero"] < 0 and below["stress big"] == 0.0


def test_front_plot_draws_every_trial_in_its_group(tmp_path):
    from margin.simulation.tuning import front_plot, mark_pareto

    trials = [{"summary": _s(0.09, 1.0, 3.0, {}), "dir": "a"}, {"summary": _s(0.11, 1.5, 1.5, {}), "dir": "b"},
              {"summary": _s(0.12, 2.0, 2.0, {}), "dir": "c"},                     # dominated by b
              {"summary": _s(0.05, 0.5, 0.5, {}, passes=False), "dir": "d"}]
    mark_pareto(trials)
    counts = front_plot(trials, {"garch": REF}, trials[1], tmp_path / "p.png", title="t")
    assert counts == {"failing": 1, "passing": 1, "front": 2, "reactive": 1, "chosen": 1}
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
