"""Kupiec, Christoffersen and traffic-light tests against hand computations and published tables."""
import math

import numpy as np
import pytest
from scipy import stats

from predictive.coverage import (christoffersen, kupiec_acceptance_band, kupiec_pof, traffic_light,
                                 traffic_light_zone)


def test_kupiec_matches_hand_computation():
    # 5 exceptions in 250 days at 99%: LR = -2[245 ln .99 + 5 ln .01] + 2[245 ln .98 + 5 ln .02]
    hits = np.zeros(250, bool)
    hits[[3, 50, 120, 121, 200]] = True
    expected = -2 * (245 * math.log(0.99) + 5 * math.log(0.01)) + 2 * (245 * math.log(0.98) + 5 * math.log(0.02))
    result = kupiec_pof(hits, 0.99)
    assert result.x == 5 and result.n == 250
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.pvalue == pytest.approx(1 - stats.chi2.cdf(expected, 1), rel=1e-9)


def test_kupiec_zero_exceptions_uses_zero_log_zero():
    result = kupiec_pof(np.zeros(500, bool), 0.99)
    assert result.statistic == pytest.approx(-2 * 500 * math.log(0.99), rel=1e-12)


def test_kupiec_band_matches_jorion_table():
    # Jorion, Value at Risk (3rd ed.), Table 6-3, p = 1%: T = 510 -> 1 < N < 11; T = 1000 -> 4 < N < 17.
    assert kupiec_acceptance_band(510, 0.99) == (2, 10)
    assert kupiec_acceptance_band(1000, 0.99) == (5, 16)


def test_christoffersen_matches_hand_computation():
    hits = np.array([0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1], bool)
    prev, curr = hits[:-1], hits[1:]
    n00 = sum(1 for a, b in zip(prev, curr) if not a and not b)
    n01 = sum(1 for a, b in zip(prev, curr) if not a and b)
    n10 = sum(1 for a, b in zip(prev, curr) if a and not b)
    n11 = sum(1 for a, b in zip(prev, curr) if a and b)
    pi01, pi11 = n01 / (n00 + n01), n11 / (n10 + n11)
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    lr_ind = (-2 * ((n00 + n10) * math.log(1 - pi) + (n01 + n11) * math.log(pi))
              + 2 * (n00 * math.log(1 - pi01) + n01 * math.log(pi01) + n10 * math.log(1 - pi11)
                     + n11 * math.log(pi11)))
    result = christoffersen(hits, 0.99)
    assert result.transitions == (n00, n01, n10, n11)
    assert result.lr_ind == pytest.approx(lr_ind, rel=1e-12)
    assert result.lr_cc == pytest.approx(lr_ind + kupiec_pof(hits, 0.99).statistic, rel=1e-12)
    assert result.p_cc == pytest.approx(stats.chi2.sf(result.lr_cc, 2), rel=1e-9)


def test_christoffersen_handles_no_consecutive_exceptions():
    hits = np.zeros(300, bool)
    hits[[10, 100, 200]] = True  # n11 = 0: the 0 ln 0 = 0 convention applies
    result = christoffersen(hits)
    assert result.transitions[3] == 0
    assert np.isfinite(result.lr_ind) and np.isfinite(result.lr_cc)


@pytest.mark.parametrize("count, zone", [(0, "green"), (4, "green"), (5, "yellow"), (9, "yellow"),
                                         (10, "red"), (30, "red")])
def test_traffic_light_zone_boundaries(count, zone):
    assert traffic_light_zone(count) == zone


def test_traffic_light_blocks():
    hits = np.zeros(760, bool)
    hits[:4] = True           # block 1: 4 -> green
    hits[250:255] = True      # block 2: 5 -> yellow
    hits[500:510] = True      # block 3: 10 -> red; the last 10 days form no complete block
    assert traffic_light(hits, 250) == ["green", "yellow", "red"]


@pytest.mark.parametrize("bad, match", [(np.array([0, 2, 1]), "index 1"), (np.zeros((2, 2)), "1-D"),
                                        (np.array([], bool), "empty")])
def test_bad_exceptions_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        kupiec_pof(bad)


def test_bad_coverage_rejected():
    with pytest.raises(ValueError, match="coverage"):
        kupiec_pof(np.zeros(10, bool), coverage=1.5)
