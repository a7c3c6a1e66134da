"""Murphy-Vasios-Vause measures against a plain loop."""
import numpy as np
import pytest

from margin.simulation.procyclicality import largest_increase, peak_to_trough, procyclicality_summary


def test_against_loop():
    rng = np.random.default_rng(0)
    m = np.exp(np.cumsum(rng.normal(0, 0.1, 300)))
    for n in (1, 5, 30):
        ref = max(0.0, max((m[t + n] - m[t]) / m[t] for t in range(len(m) - n)))
        assert largest_increase(m, n) == pytest.approx(ref)
        ref_abs = max(0.0, max(m[t + n] - m[t] for t in range(len(m) - n)))
        assert largest_increase(m, n, relative=False) == pytest.approx(ref_abs)
    assert peak_to_trough(m) == pytest.approx(m.max() / m.min())
    two = np.stack([m, m[::-1]], 1)
    np.testing.assert_allclose(largest_increase(two, 5), [largest_increase(m, 5), largest_increase(m[::-1], 5)])


def test_edge_cases():
    assert largest_increase(np.array([3.0, 2.0, 1.0]), 1) == 0.0
    assert largest_increase(np.array([1.0, 2.0]), 1) == pytest.approx(1.0)
    assert np.isnan(largest_increase(np.array([1.0]), 1))
    with pytest.raises(ValueError, match="n"):
        largest_increase(np.ones(5), 0)
    with pytest.raises(ValueError, match="negative"):
        peak_to_trough(np.array([1.0, -1.0]))
    s = procyclicality_summary(np.array([1.0, 1.5, 1.2, 2.4]), windows=(1,))
    assert s["peak_to_trough"] == pytest.approx(2.4) and s["max_increase_1d"] == pytest.approx(1.0)
