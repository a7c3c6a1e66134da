"""Daily features: no look-ahead (perturbing the future changes nothing up to day t), and every column equal to a
plain-Python reference computed row by row from its published formula."""
import math

import numpy as np
import pandas as pd
import pytest

from predictive.data import load_ohlcv
from predictive.features import build_features, forward_targets
from predictive.intraday import load_funding, load_hourly

T_CUT = pd.Timestamp("2020-03-11")  # the day before the 2020-03-12 crash: the future is violent


@pytest.fixture(scope="module")
def raw():
    daily = load_ohlcv("BTC", start="2019-10-01", end="2020-06-30")
    hourly = load_hourly("BTC", start="2019-09-30", end="2020-06-30 23:00")
    funding = load_funding("BTC").loc["2019-10-01":"2020-06-30"]
    return daily, hourly, funding


def perturb_after(daily, hourly, funding, t, seed=0):
    """Copies with every observation after the end of day t changed (prices scaled by random factors)."""
    rng = np.random.default_rng(seed)
    d, h, f = daily.copy(), hourly.copy(), funding.copy()
    nxt = t + pd.Timedelta(days=1)
    rows = d.index > t
    fac = rng.uniform(0.7, 1.3, rows.sum())[:, None]
    d.loc[rows, ["open", "high", "low", "close"]] = d.loc[rows, ["open", "high", "low", "close"]].to_numpy() * fac
    d.loc[rows, "high"] *= 1 + rng.uniform(0, 0.05, rows.sum())  # widen the ranges too
    d.loc[rows, "low"] *= 1 - rng.uniform(0, 0.05, rows.sum())
    rows = h.index >= nxt
    fac = rng.uniform(0.9, 1.1, rows.sum())[:, None]
    h.loc[rows, ["open", "high", "low", "close"]] = h.loc[rows, ["open", "high", "low", "close"]].to_numpy() * fac
    rows = f.index >= nxt
    f.loc[rows, "funding_rate"] = f.loc[rows, "funding_rate"] + rng.normal(0, 1e-3, rows.sum())
    return d, h, f


def test_no_look_ahead_every_column(raw):
    daily, hourly, funding = raw
    base = build_features(daily, hourly, funding)
    pert = build_features(*perturb_after(daily, hourly, funding, T_CUT))
    pd.testing.assert_frame_equal(base.loc[:T_CUT], pert.loc[:T_CUT])
    # the perturbation really reaches the features after t (else the test could not fail)
    after = base.index > T_CUT
    for col in ("log_return", "rv", "parkinson", "garman_klass", "rv_7", "rv_30", "rvol_7", "rvol_30",
                "funding_sum"):
        assert not np.allclose(base.loc[after, col], pert.loc[after, col]), col


def test_last_hour_of_day_belongs_to_that_day(raw):
    """Changing the 23:00 bar of day t changes rv_t; changing the 00:00 bar of day t+1 does not."""
    daily, hourly, funding = raw
    base = build_features(daily, hourly, funding)
    h = hourly.copy()
    h.loc[T_CUT + pd.Timedelta(hours=23), ["high", "close"]] *= 1.02
    assert build_features(daily, h, funding).loc[T_CUT, "rv"] != base.loc[T_CUT, "rv"]
    h = hourly.copy()
    h.loc[T_CUT + pd.Timedelta(hours=24), ["high", "close"]] *= 1.02
    assert build_features(daily, h, funding).loc[T_CUT, "rv"] == base.loc[T_CUT, "rv"]


def test_columns_match_row_by_row_reference(raw):
    daily, hourly, funding = raw
    feat = build_features(daily, hourly, funding)
    ln2 = math.log(2.0)
    closes = daily["close"].tolist()
    for i in (1, 40, 120, len(daily) - 1):
        o, hi, lo, c = (float(daily[k].iloc[i]) for k in ("open", "high", "low", "close"))
        row = feat.iloc[i]
        assert row["log_return"] == pytest.approx(math.log(closes[i] / closes[i - 1]), rel=1e-12)
        assert row["parkinson"] == pytest.approx(math.log(hi / lo) ** 2 / (4 * ln2), rel=1e-12)
        gk = 0.5 * math.log(hi / lo) ** 2 - (2 * ln2 - 1) * math.log(c / o) ** 2
        assert row["garman_klass"] == pytest.approx(gk, rel=1e-12)
        if i >= 30:
            assert row["rv_7"] == pytest.approx(sum(feat["rv"].iloc[i - 6:i + 1]) / 7, rel=1e-12)
            assert row["rv_30"] == pytest.approx(sum(feat["rv"].iloc[i - 29:i + 1]) / 30, rel=1e-12)
            r2 = [math.log(closes[j] / closes[j - 1]) ** 2 for j in range(i - 29, i + 1)]
            assert row["rvol_30"] == pytest.approx(math.sqrt(365 * sum(r2) / 30), rel=1e-12)
        # hourly realised variance: sum of squared close-to-close hourly log returns of the day
        day = feat.index[i]
        bars = hourly.loc[day - pd.Timedelta(hours=1): day + pd.Timedelta(hours=23)]
        if row["rv_source"] == "hourly" and len(bars) == 25:
            cl = bars["close"].tolist()
            ref = sum(math.log(cl[k] / cl[k - 1]) ** 2 for k in range(1, 25))
            assert row["rv"] == pytest.approx(ref, rel=1e-12)
        # funding: settlements stamped on that day
        fr = funding.loc[day: day + pd.Timedelta(hours=23, minutes=59), "funding_rate"].tolist()
        assert row["funding_n"] == len(fr)
        assert row["funding_sum"] == pytest.approx(sum(fr), abs=1e-15)
        assert row["funding_abs"] == pytest.approx(sum(abs(x) for x in fr), abs=1e-15)
    assert feat["rv_30"].iloc[:29].isna().all() and feat["rv_30"].iloc[29:].notna().all()


def test_forward_targets_against_loop(raw):
    feat = build_features(*raw)
    for h in (1, 5):
        tg = forward_targets(feat, h)
        r, rv = feat["log_return"].tolist(), feat["rv"].tolist()
        n = len(feat)
        for t in (0, 1, 57, n - h - 1):
            assert tg["ret_h"].iloc[t] == pytest.approx(sum(r[t + 1:t + h + 1]), rel=1e-12)
            assert tg["rv_h"].iloc[t] == pytest.approx(sum(rv[t + 1:t + h + 1]), rel=1e-12)
        assert tg.iloc[n - h:].isna().all().all() and tg.iloc[:n - h].notna().all().all()


def test_without_hourly_rv_is_garman_klass(raw):
    daily, _, _ = raw
    feat = build_features(daily)
    np.testing.assert_array_equal(feat["rv"].to_numpy(), feat["garman_klass"].to_numpy())
    assert (feat["rv_source"] == "garman_klass").all() and not feat["rv_missing_hours"].any()
    assert "funding_sum" not in feat.columns


@pytest.mark.parametrize("column, value", [("close", float("nan")), ("low", 0.0), ("open", -3.0)])
def test_bad_prices_rejected_naming_value(raw, column, value):
    daily = raw[0].copy()
    daily.iloc[17, daily.columns.get_loc(column)] = value
    with pytest.raises(ValueError) as err:
        build_features(daily)
    msg = str(err.value)
    assert column in msg and repr(value) in msg and str(daily.index[17].date()) in msg


def test_too_short_and_bad_horizon(raw):
    with pytest.raises(ValueError, match="at least 2 rows"):
        build_features(raw[0].iloc[:1])
    feat = build_features(raw[0].iloc[:50])
    for h in (0, -2):
        with pytest.raises(ValueError, match=f"got {h}"):
            forward_targets(feat, h)
