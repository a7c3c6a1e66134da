"""Plots of volatility forecasts (matplotlib, Agg backend: files only, no display)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["plot_forecasts"]


def _ann(x: np.ndarray, horizon: int) -> np.ndarray:
    """Variance of the h-day log return -> annualised volatility sqrt(var * 365 / h) (24/7 market)."""
    return np.sqrt(np.asarray(x, np.float64) * 365.0 / horizon)


def plot_forecasts(forecasts: Mapping[str, pd.DataFrame], path: str | Path, *, horizon: int, label: str = "model",
                   baseline: Mapping[str, pd.DataFrame] | None = None, baseline_label: str | None = None) -> Path:
    """Forecast vs realised annualised volatility per asset, regime probabilities shaded.

    Args:
        forecasts: {asset: frame from :func:`predictive.evaluation.walk_forward`} (columns ``variance``, ``rv_h``
            and optionally ``p_0..p_{K-1}`` regime probabilities, regime K-1 the most volatile).
        path: PNG file to write.
        horizon: h in days (for the annualisation).
        baseline: optional second set of forecasts drawn as a thin line.

    Top panel per asset: realised volatility of the h-day window (from the RV proxy), the forecast, the baseline;
    the background is shaded by the probability of the most volatile regime. Bottom panel: stacked regime
    probabilities. Returns the path.
    """
    assets = list(forecasts)
    has_p = any("p_0" in f for f in forecasts.values())
    nrows = 2 if has_p else 1
    fig, axes = plt.subplots(nrows, len(assets), figsize=(7 * len(assets), 3.2 * nrows + 0.6), squeeze=False,
                             sharex="col", gridspec_kw={"height_ratios": [3, 1][:nrows]})
    for j, a in enumerate(assets):
        f = forecasts[a]
        ax = axes[0, j]
        x = f.index
        ax.plot(x, _ann(f["rv_h"], horizon), color="0.6", lw=0.6, label="realised (RV proxy)")
        if baseline is not None and a in baseline:
            b = baseline[a]
            ax.plot(b.index, _ann(b["variance"], horizon), color="tab:orange", lw=0.9,
                    label=f"{baseline_label or 'baseline'} forecast")
        ax.plot(x, _ann(f["variance"], horizon), color="tab:blue", lw=1.1, label=f"{label} forecast")
        pcols = sorted([c for c in f.columns if c.startswith("p_")], key=lambda c: int(c[2:]))
        if pcols:
            stress = f[pcols[-1]].to_numpy()
            top = np.nanmax(_ann(f["rv_h"], horizon)) if len(f) else 1.0
            ax.fill_between(x, 0, top, where=stress > 0.5, color="tab:red", alpha=0.12, step="mid",
                            label=f"P(regime {len(pcols) - 1}) > 0.5")
            axp = axes[1, j]
            axp.stackplot(x, *[f[c].to_numpy() for c in pcols], labels=[f"regime {c[2:]}" for c in pcols],
                          colors=plt.cm.RdYlGn_r(np.linspace(0.1, 0.9, len(pcols))), alpha=0.8)
            axp.set_ylim(0, 1)
            axp.set_ylabel("regime prob.")
            axp.legend(fontsize=7, loc="upper left", ncol=len(pcols))
        ax.set_title(f"{a}: {horizon}-day volatility, annualised")
        ax.set_ylabel("annualised vol")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
