"""Feature frames for the Hydra apps: the embedded data set unless ``cfg.data.<kind>.<asset>`` names a user file.

Shared by ``experiments.forecast``, ``experiments.backtest``, ``experiments.run`` and ``experiments.tune_policy``
so that every app reads the same files with the same validation (:func:`predictive.evaluation.load_asset_features`).
"""
from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig


def load_features(cfg: DictConfig, *, with_prices: bool = False) -> dict[str, pd.DataFrame]:
    """:func:`predictive.evaluation.load_asset_features` with the app's ``assets`` and ``data`` settings.

    Args:
        cfg: a config with ``assets`` and ``data.{daily,hourly,funding}`` (asset -> path overrides; an asset
            without one uses its embedded file), ``data.use_hourly`` / ``data.use_funding`` and optionally
            ``data.max_gap_days`` (longest run of missing days accepted in a daily file, default 0).
        with_prices: also copy the daily bars into columns ``_open, _high, _low, _close, _volume`` (the backtest
            marks positions at ``_close``).

    Raises:
        experiments.schema.ConfigError: a file the settings need is neither given nor embedded, or does not
            exist (names the key, the file kind and the switch that turns it off).
        predictive.DataValidationError: a file is malformed or has a gap (names file, line, column and value).
    """
    from experiments.schema import asset_files
    from predictive.evaluation import load_asset_features

    files = asset_files(cfg)  # every file the settings need exists, else ConfigError naming the key
    paths = {kind: {a: str(f[kind]) for a, f in files.items() if kind in f} for kind in ("daily", "hourly", "funding")}
    d = cfg.data
    return load_asset_features(list(files), **paths, use_hourly=bool(d.get("use_hourly", True)),
                               use_funding=bool(d.get("use_funding", True)),
                               max_gap_days=int(d.get("max_gap_days", 0)), with_prices=with_prices)


def iter_run_metrics(root, required: tuple[str, ...]):
    """Yield ``(path, metrics)`` for every ``metrics.json`` below ``root`` (a Hydra multirun directory) that holds
    all ``required`` top-level keys; other apps' metrics files in the same tree are skipped.

    Raises:
        FileNotFoundError: no matching metrics.json below ``root``.
    """
    import json
    import logging
    from pathlib import Path

    root = Path(root)
    found = False
    for path in sorted(root.rglob("metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:  # a job that died while writing
            logging.getLogger(__name__).warning("skipped %s: not readable JSON (%s)", path, exc)
            continue
        if all(key in metrics for key in required):
            found = True
            yield path, metrics
    if not found:
        raise FileNotFoundError(f"no metrics.json with keys {list(required)} below {root}")
