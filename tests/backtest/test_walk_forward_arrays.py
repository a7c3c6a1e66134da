"""predictive.training.walk_forward_forecast_arrays: refits on an expanding window, no forecast sees later data."""
import numpy as np
import pandas as pd
import pytest

from experiments.data import load_features
from predictive.training import (forecast_arrays, refit_ends, train_models, walk_forward_forecast_arrays)

CFG = {"train_end": "2019-12-31", "seed": 0, "horizon": 1, "models": {"garch": {"config": "garch"}}}


@pytest.fixture(scope="module")
def features():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"assets": ["BTC", "ETH"], "data": {"daily": {}, "hourly": {}, "funding": {},
                                                               "use_hourly": False, "use_funding": False}})
    feats = load_features(cfg, with_prices=False)
    return {a: f.loc[:"2021-06-30"] for a, f in feats.items()}


def _dates(features, end="2021-06-30"):
    d = features["BTC"].index.intersection(features["ETH"].index)
    return d[d <= pd.Timestamp(end)]


def test_refit_ends():
    assert refit_ends("2020-12-31", "2023-12-31", None) == [pd.Timestamp("2020-12-31")]
    ends = refit_ends("2020-12-31", "2023-12-31", 365)
    assert [str(e.date()) for e in ends] == ["2020-12-31", "2021-12-31", "2022-12-31"]
    assert len(refit_ends("2020-12-31", "2021-01-15", 14)) == 2    # the next fit end must lie before the last date
    for bad in (0, -3, 1.5, True, "365"):
        with pytest.raises(ValueError, match="refit_every"):
            refit_ends("2020-12-31", "2023-12-31", bad)


def test_one_fit_is_train_models_plus_forecast_arrays(features):
    dates = _dates(features)
    models, _ = train_models(CFG, features, ["garch"])
    ref = forecast_arrays(models, features, dates, 1)["garch"]
    got, secs = walk_forward_forecast_arrays(CFG, features, ["garch"], dates, 1, refit_every=None)
    np.testing.assert_array_equal(got["garch"].sigma, ref.sigma)
    np.testing.assert_array_equal(got["garch"].q_lo, ref.q_lo)
    assert secs["garch"] > 0


def test_each_segment_comes_from_its_own_fit_and_sees_no_later_data(features):
    dates = _dates(features)
    got, _ = walk_forward_forecast_arrays(CFG, features, ["garch"], dates, 1, refit_every=183)
    # segment rows equal a single fit on the segment's fit end (plain reference: one model per segment)
    ends = refit_ends(CFG["train_end"], dates[-1], 183)
    assert len(ends) == 3
    for j, fit_end in enumerate(ends):
        models, _ = train_models({**CFG, "train_end": str(fit_end.date())}, features, ["garch"])
        ref = forecast_arrays(models, features, dates, 1)["garch"].sigma
        rows = (dates > fit_end) if j else (dates <= ends[1])
        if j + 1 < len(ends):
            rows &= dates <= ends[j + 1]
        np.testing.assert_array_equal(got["garch"].sigma[rows], ref[rows])
    # the refits change the forecasts (else this test could not fail)
    one, _ = walk_forward_forecast_arrays(CFG, features, ["garch"], dates, 1, refit_every=None)
    late = dates > ends[1]
    assert np.abs(got["garch"].sigma[late] - one["garch"].sigma[late]).max() > 1e-6
    # audit: delete every row after a cut inside the last segment; every forecast up to the cut is unchanged
    cut = pd.Timestamp("2021-03-15")
    short = {a: f.loc[:cut] for a, f in features.items()}
    again, _ = walk_forward_forecast_arrays(CFG, short, ["garch"], dates[dates <= cut], 1, refit_every=183)
    # (equal up to float rounding: the filter's vectorised reductions see arrays of another length)
    np.testing.assert_allclose(again["garch"].sigma, got["garch"].sigma[dates <= cut], rtol=1e-12, atol=0)


def test_already_fitted_models_serve_as_the_first_fit(features):
    """The main job hands over the models it fitted on rows <= train_end: the first segment is not trained again."""
    dates = _dates(features)
    models, _ = train_models(CFG, features, ["garch"])
    got, secs = walk_forward_forecast_arrays(CFG, features, ["garch"], dates, 1, refit_every=None, fitted=models)
    np.testing.assert_array_equal(got["garch"].sigma, forecast_arrays(models, features, dates, 1)["garch"].sigma)
    assert secs == {}                                                  # nothing was trained
    again, secs = walk_forward_forecast_arrays(CFG, features, ["garch"], dates, 1, refit_every=183, fitted=models)
    ref, _ = walk_forward_forecast_arrays(CFG, features, ["garch"], dates, 1, refit_every=183)
    np.testing.assert_array_equal(again["garch"].sigma, ref["garch"].sigma)
    assert set(secs) == {"garch"}                                      # the refits were trained
