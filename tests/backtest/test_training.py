"""predictive.training: the app's seed, horizon and progress reach every model; layering of margin vs predictive."""
import subprocess
import sys

import pytest

from predictive.training import model_config, model_kwargs


def test_seed_and_horizon_reach_regime_net_through_kwargs():
    mc = model_config("regime_net_fast")
    mc.pop("name")
    kw = model_kwargs("regime_net", mc, seed=7, horizon=5, progress=False)
    assert kw["seed"] == 7 and kw["horizon"] == 5 and kw["max_epochs"] == 40
    from predictive import make_model

    m = make_model("regime_net", **kw)
    assert m.horizon == 5 and m.config.seed == 7
    # a seed set by the user for this model wins over the app's seed; the horizon never does
    kw = model_kwargs("regime_net", {**mc, "seed": 3, "horizon": 1}, seed=7, horizon=5, progress=True,
                      user_keys={"seed", "horizon"})
    assert kw["seed"] == 3 and kw["horizon"] == 5 and kw["progress"] is True


@pytest.mark.parametrize("name, has_seed", [("ewma", False), ("garch", False), ("hmm", True)])
def test_explicit_parameters_only_where_accepted(name, has_seed):
    kw = model_kwargs(name, {}, seed=11, horizon=5, progress=False)
    assert ("seed" in kw) == has_seed and "horizon" not in kw
    if has_seed:
        assert kw["seed"] == 11


def test_har_gets_the_app_horizon():
    assert 10 in model_kwargs("har", {}, seed=0, horizon=10, progress=False)["horizons"]


def test_margin_imports_neither_predictive_nor_zkproofs():
    code = ("import sys, margin, margin.simulation, margin.simulation.liquidation, margin.simulation.book,"
            " margin.simulation.tuning;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('predictive', 'zkproofs')];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_predictive_coverage_is_a_reexport():
    import margin.simulation.coverage as new
    import predictive.coverage as old

    assert old.kupiec_pof is new.kupiec_pof and old.christoffersen is new.christoffersen


def test_forecast_arrays_round_trip(tmp_path):
    import numpy as np

    from margin.simulation.policies import ForecastArrays
    from predictive.training import load_forecast_arrays, save_forecast_arrays

    rng = np.random.default_rng(0)
    fc = {"a": ForecastArrays(*rng.random((3, 4, 2))), "b": ForecastArrays(*rng.random((4, 4, 2)))}
    save_forecast_arrays(tmp_path / "f.npz", fc)
    back = load_forecast_arrays(tmp_path / "f.npz")
    assert back["a"].p_high is None and np.array_equal(back["b"].p_high, fc["b"].p_high)
    assert np.array_equal(back["a"].sigma, fc["a"].sigma)
