"""Backtest metric path: traffic-light zones at the Basel boundaries, h-day losses, targets."""
import numpy as np
import pytest

from experiments.backtest import coverage_metrics, h_day_losses


def _series(counts, window=250):
    e = np.zeros(window * len(counts), bool)
    for b, k in enumerate(counts):
        e[b * window + np.arange(k) * 7] = True      # spread out inside the window
    return e


def test_traffic_light_boundaries():
    m = coverage_metrics(_series([4, 5, 9, 10]))
    assert m["traffic_light"] == ["green", "yellow", "yellow", "red"]
    assert m["worst_zone"] == "red"
    assert m["exceptions"] == 28 and m["n"] == 1000
    assert coverage_metrics(_series([0, 4]))["worst_zone"] == "green"
    # a partial last window is not scored
    assert len(coverage_metrics(np.zeros(499, bool))["traffic_light"]) == 1


def test_kupiec_in_metrics_path():
    # 10 exceptions in 1000 days at 99%: exactly the expected rate -> LR 0, p 1
    e = np.zeros(1000, bool)
    e[::100] = True
    m = coverage_metrics(e)
    assert m["kupiec_lr"] == pytest.approx(0.0, abs=1e-9) and m["kupiec_p"] == pytest.approx(1.0)
    assert m["passes_5pct"]
    e[:30] = True  # a cluster of 30 more
    assert not coverage_metrics(e)["passes_5pct"]


def test_h_day_losses():
    c = np.array([[100.0], [90.0], [99.0], [99.0]])
    l1 = h_day_losses(c, 1)
    np.testing.assert_allclose(l1["long"][:3, 0], [0.1, -0.1, 0.0])
    np.testing.assert_allclose(l1["short"][:3, 0], [-0.1, 0.1, 0.0])
    assert np.isnan(l1["long"][3, 0])
    l2 = h_day_losses(c, 2)
    np.testing.assert_allclose(l2["long"][:2, 0], [1 - 99 / 100, 1 - 99 / 90])
