"""Regulatory backtests of a margin or VaR model's coverage (also re-exported as ``predictive.coverage``).

Given a boolean series of exceptions (days on which the realised loss exceeded the margin or the VaR forecast),
these tests ask whether the exceptions are as rare as the coverage level promises (Kupiec) and whether they arrive
independently rather than in clusters (Christoffersen).

References:
    Kupiec, P. (1995). Techniques for verifying the accuracy of risk measurement models. Journal of Derivatives 3(2).
    Christoffersen, P. (1998). Evaluating interval forecasts. International Economic Review 39(4).
    Basel Committee on Banking Supervision (1996). Supervisory framework for the use of "backtesting" in conjunction
    with the internal models approach to market risk capital requirements (traffic-light zones).

Bad input raises :class:`margin.validation.MarginInputError` (a ``ValueError``) naming the argument and value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from margin.validation import MarginInputError

__all__ = [
    "KupiecResult",
    "ChristoffersenResult",
    "kupiec_pof",
    "kupiec_acceptance_band",
    "christoffersen",
    "traffic_light",
    "traffic_light_zone",
    "coverage_metrics",
]


@dataclass(frozen=True)
class KupiecResult:
    """Kupiec proportion-of-failures test.

    Attributes:
        statistic: LR_uc, asymptotically chi-squared with 1 degree of freedom.
        pvalue: P(chi2(1) >= statistic).
        n: number of observations.
        x: number of exceptions.
        rate: x / n.
        expected_rate: 1 - coverage.
    """

    statistic: float
    pvalue: float
    n: int
    x: int
    rate: float
    expected_rate: float

    def passes(self, significance: float = 0.05) -> bool:
        """True when the test does not reject correct unconditional coverage at ``significance``."""
        return self.pvalue >= significance


@dataclass(frozen=True)
class ChristoffersenResult:
    """Christoffersen independence and conditional-coverage tests.

    Attributes:
        lr_ind: independence statistic, ~ chi2(1).
        p_ind: its p-value.
        lr_cc: conditional coverage statistic LR_uc + LR_ind, ~ chi2(2).
        p_cc: its p-value.
        transitions: counts ``(n00, n01, n10, n11)`` of consecutive exception indicators.
    """

    lr_ind: float
    p_ind: float
    lr_cc: float
    p_cc: float
    transitions: tuple[int, int, int, int]


def _as_exceptions(exceptions) -> np.ndarray:
    arr = np.asarray(exceptions)
    if arr.ndim != 1:
        raise MarginInputError("exceptions", "must be a 1-D array of booleans", value=arr.shape)
    if arr.size == 0:
        raise MarginInputError("exceptions", "empty: a coverage test needs at least one observation")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            bad = int(np.flatnonzero(~np.isin(arr, (0, 1)))[0])
            raise MarginInputError("exceptions", "must be booleans or 0/1", index=bad, value=arr[bad].item())
        arr = arr.astype(bool)
    return arr


def _check_coverage(coverage: float) -> float:
    if not 0.0 < coverage < 1.0:
        raise MarginInputError("coverage", "must lie strictly between 0 and 1", value=coverage)
    return float(coverage)


def _xlogy(x: float, y: float) -> float:
    """x ln y with the convention 0 ln 0 = 0 (zero cells in the likelihoods)."""
    return 0.0 if x == 0 else x * np.log(y)


def _bernoulli_loglik(n_miss: int, n_hit: int, p: float) -> float:
    return _xlogy(n_miss, 1.0 - p) + _xlogy(n_hit, p)


def kupiec_pof(exceptions, coverage: float = 0.99) -> KupiecResult:
    """Kupiec (1995) proportion-of-failures likelihood-ratio test.

    LR_uc = -2 ln[(1-p)^(n-x) p^x] + 2 ln[(1-x/n)^(n-x) (x/n)^x],  p = 1 - coverage, ~ chi2(1).

    Args:
        exceptions: shape ``(n,)`` bool (or 0/1): True on days the loss exceeded the margin.
        coverage: confidence level of the margin model, e.g. 0.99 (CPMI-IOSCO PFMI Principle 6).

    Returns:
        :class:`KupiecResult`.

    Raises:
        ValueError: ``exceptions`` not 1-D, empty, or not boolean; ``coverage`` outside (0, 1).
    """
    hits = _as_exceptions(exceptions)
    p = 1.0 - _check_coverage(coverage)
    n, x = int(hits.size), int(hits.sum())
    rate = x / n
    statistic = -2.0 * _bernoulli_loglik(n - x, x, p) + 2.0 * _bernoulli_loglik(n - x, x, rate)
    statistic = max(statistic, 0.0)  # guards -1e-16 from rounding when rate == p
    return KupiecResult(float(statistic), float(stats.chi2.sf(statistic, 1)), n, x, rate, p)


def kupiec_acceptance_band(n: int, coverage: float = 0.99, significance: float = 0.05) -> tuple[int, int]:
    """Smallest and largest exception counts out of ``n`` that the Kupiec test accepts at ``significance``.

    Raises:
        ValueError: ``n < 1`` or ``coverage`` outside (0, 1).
    """
    if n < 1:
        raise MarginInputError("n", "must be at least 1", value=n)
    accepted = [x for x in range(n + 1)
                if kupiec_pof(np.arange(n) < x, coverage).pvalue >= significance]
    return min(accepted), max(accepted)


def christoffersen(exceptions, coverage: float = 0.99) -> ChristoffersenResult:
    """Christoffersen (1998) independence and conditional-coverage tests.

    With transition counts n_ij (exception state i on day t-1, j on day t):
    pi01 = n01/(n00+n01), pi11 = n11/(n10+n11), pi = (n01+n11)/(n00+n01+n10+n11),
    LR_ind = -2 ln[(1-pi)^(n00+n10) pi^(n01+n11)] + 2 ln[(1-pi01)^n00 pi01^n01 (1-pi11)^n10 pi11^n11] ~ chi2(1),
    LR_cc = LR_uc + LR_ind ~ chi2(2). Zero cells use 0 ln 0 = 0.

    Args:
        exceptions: shape ``(n,)`` bool, ``n >= 2``.
        coverage: confidence level of the model, e.g. 0.99.

    Returns:
        :class:`ChristoffersenResult`.

    Raises:
        ValueError: as :func:`kupiec_pof`, or fewer than 2 observations.
    """
    hits = _as_exceptions(exceptions)
    if hits.size < 2:
        raise MarginInputError("exceptions", "the independence test needs at least 2 observations",
                               value=int(hits.size))
    prev, curr = hits[:-1], hits[1:]
    n00 = int(np.sum(~prev & ~curr))
    n01 = int(np.sum(~prev & curr))
    n10 = int(np.sum(prev & ~curr))
    n11 = int(np.sum(prev & curr))
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    restricted = _bernoulli_loglik(n00 + n10, n01 + n11, pi)
    unrestricted = _bernoulli_loglik(n00, n01, pi01) + _bernoulli_loglik(n10, n11, pi11)
    lr_ind = max(-2.0 * restricted + 2.0 * unrestricted, 0.0)
    lr_cc = kupiec_pof(hits, coverage).statistic + lr_ind
    return ChristoffersenResult(float(lr_ind), float(stats.chi2.sf(lr_ind, 1)), float(lr_cc),
                                float(stats.chi2.sf(lr_cc, 2)),
                                (n00, n01, n10, n11))


def traffic_light_zone(n_exceptions: int) -> str:
    """Basel traffic-light zone for a count of exceptions in 250 days at 99%: green 0-4, yellow 5-9, red 10+.

    Raises:
        ValueError: a negative count.
    """
    if n_exceptions < 0:
        raise MarginInputError("n_exceptions", "must be non-negative", value=n_exceptions)
    if n_exceptions <= 4:
        return "green"
    if n_exceptions <= 9:
        return "yellow"
    return "red"


def traffic_light(exceptions, window: int = 250) -> list[str]:
    """Basel zone of each consecutive, non-overlapping ``window``-day block (a last partial block is dropped).

    Args:
        exceptions: shape ``(n,)`` bool.
        window: block length in days (250 in the Basel framework, which calibrates the zones to it).

    Returns:
        One zone name (``"green"``, ``"yellow"``, ``"red"``) per complete block.

    Raises:
        ValueError: bad ``exceptions`` or ``window < 1``.
    """
    hits = _as_exceptions(exceptions)
    if window < 1:
        raise MarginInputError("window", "must be at least 1", value=window)
    blocks = hits.size // window
    return [traffic_light_zone(int(hits[b * window:(b + 1) * window].sum())) for b in range(blocks)]


_ZONE_ORDER = {"green": 0, "yellow": 1, "red": 2}


def worst_zone(zones) -> str | None:
    """The worst of a list of traffic-light zones (red > yellow > green); None for an empty list."""
    return max(zones, key=_ZONE_ORDER.__getitem__) if zones else None


def coverage_metrics(exceptions, coverage: float = 0.99, window: int = 250, significance: float = 0.05) -> dict:
    """Kupiec POF, Christoffersen and Basel traffic-light zones of one exception series, as a JSON-ready dict.

    Args:
        exceptions: shape ``(n,)`` bool: True on days the realised loss exceeded the margin.
        coverage: confidence level of the margin, e.g. 0.99.
        window: traffic-light block length in days (Basel: 250); zones are empty when ``n < window``.
        significance: level at which ``passes_5pct`` judges the three tests (0.05).

    Returns:
        ``n``, ``exceptions``, ``rate``, ``kupiec_lr``, ``kupiec_p``, ``christoffersen_lr_ind``,
        ``christoffersen_p_ind``, ``christoffersen_lr_cc``, ``christoffersen_p_cc``, ``traffic_light`` (list of
        zones), ``worst_zone``, ``passes_5pct`` (Kupiec, independence and conditional coverage all >= significance).

    Raises:
        ValueError: as :func:`kupiec_pof` / :func:`christoffersen`.
    """
    e = _as_exceptions(exceptions)
    k = kupiec_pof(e, coverage)
    c = christoffersen(e, coverage)
    zones = traffic_light(e, window) if len(e) >= window else []
    return {"n": int(k.n), "exceptions": int(k.x), "rate": float(k.rate), "kupiec_lr": float(k.statistic),
            "kupiec_p": float(k.pvalue), "christoffersen_lr_ind": float(c.lr_ind),
            "christoffersen_p_ind": float(c.p_ind), "christoffersen_lr_cc": float(c.lr_cc),
            "christoffersen_p_cc": float(c.p_cc), "traffic_light": zones, "worst_zone": worst_zone(zones),
            "passes_5pct": bool(k.pvalue >= significance and c.p_ind >= significance and c.p_cc >= significance)}
