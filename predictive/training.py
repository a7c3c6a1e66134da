"""Train the forecasting models an app needs and turn their forecasts into the arrays margin policies take.

Used by ``experiments.backtest`` and ``experiments.run`` (the ``train`` step) and by notebooks:

- :func:`model_config`: ``conf/model/<name>.yaml`` (its ``defaults`` resolved) merged with overrides;
- :func:`train_models`: fit every model on feature rows ``<= train_end``; the app's ``seed``, ``horizon`` and
  ``progress`` reach every model whose constructor accepts them (explicitly or through ``**kwargs``), so the
  backtest's ``seed`` changes RegimeNet's initialisation and ``horizon=5`` trains 5-day heads;
- :func:`forecast_arrays`: run each fitted model through the whole history (a forecast at t uses rows <= t) and
  align sigma, the 1% / 99% quantiles and the high-volatility regime probability on a date index as
  :class:`margin.simulation.policies.ForecastArrays` ``(T, A)``.

Example::

    from predictive.training import forecast_arrays, train_models
    models, secs = train_models({"train_end": "2020-12-31", "seed": 0, "horizon": 1,
                                 "models": {"ewma": {"config": "ewma"}}}, features, ["ewma"])
    arrays = forecast_arrays(models, features, dates, horizon=1)
"""
from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from margin.simulation.policies import load_forecast_arrays, save_forecast_arrays  # noqa: F401 (the .npz format)

log = logging.getLogger(__name__)

__all__ = ["CONF_DIR", "forecast_arrays", "load_forecast_arrays", "model_config", "model_conf_digest", "refit_ends",
           "model_kwargs", "save_forecast_arrays", "train_models", "walk_forward_forecast_arrays"]

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def _plain(x):
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(x):
            return OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return x


def model_conf_digest(conf_dir: str | Path = CONF_DIR) -> str:
    """SHA-256 (hex) of every ``<conf_dir>/model/*.yaml`` (names and bytes): part of the forecast caches' keys, so
    editing a model file (or a member of a combination) never reuses forecasts made with the old settings."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((Path(conf_dir) / "model").glob("*.yaml")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def model_config(name: str, overrides: Mapping | None = None, conf_dir: str | Path = CONF_DIR) -> dict:
    """``<conf_dir>/model/<name>.yaml`` merged with ``overrides`` (a plain dict; ``defaults`` lists are resolved).

    Returns:
        dict with ``name`` (the registered model name) and the constructor arguments.
    """
    from omegaconf import OmegaConf

    path = Path(conf_dir) / "model" / f"{name}.yaml"
    base: dict = {"name": name}
    if path.exists():
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        for parent in raw.pop("defaults", []) or []:
            if isinstance(parent, str) and parent != "_self_":
                base.update(model_config(parent, conf_dir=conf_dir))
        base.update(raw)
    if overrides:
        base.update(dict(overrides))
    return base


def model_kwargs(model_name: str, config: Mapping, *, seed: int, horizon: int, progress: bool,
                 user_keys=()) -> dict:
    """Constructor arguments for ``model_name``: ``config`` plus the app's ``seed``, ``horizon`` and ``progress``.

    The app's ``horizon`` always wins (a model trained for another horizon cannot serve the app); ``seed`` wins
    unless the user set it for this model (``user_keys``); ``progress`` is on when either asks for it. A model
    with a ``horizons`` list (HAR-RV) gets the app's horizon added to it. Arguments the constructor does not
    accept (no such parameter and no ``**kwargs``) are dropped.
    """
    from predictive import models as registry

    params = inspect.signature(registry.model_class(model_name).__init__).parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepts = lambda k: k in params or var_kw  # noqa: E731
    mc = {k: v for k, v in dict(config).items() if accepts(k)}
    if accepts("horizon"):
        mc["horizon"] = int(horizon)
    if "horizons" in params:
        hs = [int(h) for h in (mc.get("horizons") or params["horizons"].default or ())]
        mc["horizons"] = sorted(set(hs) | {int(horizon)})
    if accepts("seed") and "seed" not in user_keys:
        mc["seed"] = int(seed)
    if accepts("progress"):
        mc["progress"] = bool(progress) or bool(mc.get("progress", False))
    return mc


def train_models(cfg, features: Mapping[str, pd.DataFrame], names, *, progress: bool | None = None
                 ) -> tuple[dict, dict]:
    """Fit every model in ``names`` on feature rows ``<= cfg.train_end`` (the ``train`` step).

    Args:
        cfg: mapping or DictConfig with ``train_end``, ``seed``, ``horizon`` (days), optional ``progress`` and
            ``models`` (name -> ``{config: <conf/model file>, <overrides>...}``).
        features: asset -> feature frame (:func:`predictive.features.build_features`).
        names: model keys to fit (keys of ``cfg.models`` or model config names).
        progress: overrides ``cfg.progress`` (tqdm bars inside the models that have them; None: cfg's value,
            and if that is None too, whether stderr is a terminal).

    Returns:
        (models by name, fit seconds by name).

    Raises:
        ValueError / TypeError from the model constructors (unknown model, bad parameter);
        predictive.InsufficientDataError when the training rows are too few.
    """
    import sys

    from predictive import models as registry

    get = cfg.get if hasattr(cfg, "get") else (lambda k, d=None: getattr(cfg, k, d))
    train_end = pd.Timestamp(get("train_end"))
    seed, horizon = int(get("seed", 0)), int(get("horizon", 1))
    show = get("progress", None) if progress is None else progress
    show = sys.stderr.isatty() if show is None else bool(show)
    over = _plain(get("models", None)) or {}
    from tqdm.auto import tqdm

    models, secs = {}, {}
    for name in tqdm(list(names), desc="training models", disable=not show, leave=False):
        entry = dict(over.get(name) or {}) if isinstance(over.get(name), Mapping) else {}
        # forecast_horizon: this entry forecasts k days ahead instead of the app's h (a policy's foresight, e.g.
        # predictive_smooth's lookahead_model); the model is trained with a head for k as well
        forecast_horizon = entry.pop("forecast_horizon", None)
        user = {k: v for k, v in entry.items() if k != "config"}
        mc = model_config(str(entry.get("config", name)), user)
        mc.pop("forecast_horizon", None)
        mname = mc.pop("name")
        kw = model_kwargs(mname, mc, seed=seed, horizon=horizon, progress=show, user_keys=set(user))
        if forecast_horizon is not None and "horizons" in kw:
            kw["horizons"] = sorted(set(kw["horizons"]) | {int(forecast_horizon)})
        t0 = time.perf_counter()
        model = registry.make_model(mname, **kw)
        if forecast_horizon is not None:
            model.forecast_horizon = int(forecast_horizon)
        model.fit({a: f.loc[:train_end] for a, f in features.items()})
        secs[name] = time.perf_counter() - t0
        models[name] = model
        log.info("train %s (%s, seed %s, forecasts at %d days): %.1f s", name, mname, kw.get("seed", "-"),
                 int(forecast_horizon or horizon), secs[name])
    return models, secs


def forecast_arrays(models: Mapping, features: Mapping[str, pd.DataFrame], dates: pd.DatetimeIndex,
                    horizon: int) -> dict:
    """Run each fitted model through the whole history and align its forecasts on ``dates`` x assets, at
    ``horizon`` days, or at the model's own ``forecast_horizon`` where ``train_models`` set one.

    Returns:
        model name -> :class:`margin.simulation.policies.ForecastArrays` with ``sigma`` (forecast std of the h-day log
        return), ``q_lo`` / ``q_hi`` (1% / 99% quantiles, log-return units) and ``p_high`` (probability of the
        highest-variance regime, regime models only), each ``(T, A)`` float64, NaN where the model has no forecast.
    """
    from margin.simulation.policies import ForecastArrays

    out = {}
    assets = list(features)
    for name, model in models.items():
        fc = model.forecast(features, int(getattr(model, "forecast_horizon", None) or horizon))
        cols = {"sigma": [], "q_lo": [], "q_hi": [], "p_high": []}
        has_regimes = True
        for a in assets:
            f = fc[a]
            idx = f.index
            cols["sigma"].append(pd.Series(np.sqrt(f.variance), idx).reindex(dates).to_numpy())
            cols["q_lo"].append(pd.Series(f.quantiles[0.01], idx).reindex(dates).to_numpy())
            cols["q_hi"].append(pd.Series(f.quantiles[0.99], idx).reindex(dates).to_numpy())
            if f.regime_probs is not None:
                # regimes are ordered by variance (calmest first) in the regime models: the last is the high-vol one
                cols["p_high"].append(pd.Series(np.asarray(f.regime_probs)[:, -1], idx).reindex(dates).to_numpy())
            else:
                has_regimes = False
        out[name] = ForecastArrays(
            sigma=np.stack(cols["sigma"], 1), q_lo=np.stack(cols["q_lo"], 1), q_hi=np.stack(cols["q_hi"], 1),
            p_high=np.stack(cols["p_high"], 1) if has_regimes else None)
    return out


def refit_ends(train_end, last_date, refit_every: int | None) -> list[pd.Timestamp]:
    """Fit-end dates of an expanding-window walk-forward: ``train_end``, then every ``refit_every`` days while the
    next fit end is before ``last_date`` (``refit_every`` None: ``[train_end]``, one fit).

    Raises:
        ValueError: ``refit_every`` not a positive whole number of days (the message names ``refit_every``).
    """
    first = pd.Timestamp(train_end)
    if refit_every is None:
        return [first]
    if isinstance(refit_every, bool) or not isinstance(refit_every, (int, np.integer)) or int(refit_every) < 1:
        raise ValueError(f"refit_every: must be a positive number of days or null, got {refit_every!r}")
    step = pd.Timedelta(days=int(refit_every))
    ends = [first]
    while ends[-1] + step < pd.Timestamp(last_date):
        ends.append(ends[-1] + step)
    return ends


def walk_forward_forecast_arrays(cfg, features: Mapping[str, pd.DataFrame], names, dates: pd.DatetimeIndex,
                                 horizon: int, *, horizon_of=None,
                                 refit_every: int | None = None, progress: bool | None = None,
                                 fitted: Mapping | None = None) -> tuple[dict, dict]:
    """Forecast arrays of the models ``names`` on ``dates``, refitted on an expanding window every ``refit_every``
    days (the walk-forward a venue runs: a model is never used for years after its last fit).

    The models are fitted on rows ``<= cfg.train_end`` (:func:`train_models`), then again on rows ``<= train_end +
    k x refit_every days`` for k = 1, 2, ... while that is before ``dates[-1]``. A date ``t`` takes its forecast
    from the last model fitted on rows ``< t`` (dates up to ``train_end`` from the first fit: in-sample warm-up of
    calibration windows, as with one fit); a forecast at ``t`` uses feature rows ``<= t`` (the model contract), so
    no forecast sees data after its date. ``refit_every=None`` is exactly :func:`train_models` +
    :func:`forecast_arrays`.

    Args:
        cfg: as :func:`train_models` (``train_end``, ``seed``, ``horizon``, ``models``, ``progress``).
        features: asset -> feature frame.
        names: model keys.
        dates: ``(T,)`` date index of the arrays.
        horizon: app horizon h (days) passed to :func:`forecast_arrays` (a model's ``forecast_horizon`` wins there).
        horizon_of: optional ``(name, fitted model) -> days``: the horizon to forecast that model at instead.
        refit_every: days between refits, or None (one fit).
        fitted: optional ``{name: model}`` already fitted by :func:`train_models` on rows ``<= cfg.train_end`` with
            the same settings (the main job's models): used as the first fit instead of training them again.

    Returns:
        (model name -> :class:`margin.simulation.policies.ForecastArrays` ``(T, A)`` float64, fit seconds by name
        summed over the fits).

    Raises:
        ValueError: bad ``refit_every``; and what :func:`train_models` raises.
    """
    import dataclasses

    get = cfg.get if hasattr(cfg, "get") else (lambda k, d=None: getattr(cfg, k, d))
    ends = refit_ends(get("train_end"), dates[-1], refit_every)
    base = {k: _plain(get(k, None)) for k in ("seed", "horizon", "progress", "models")}
    out: dict = {}
    secs: dict = {}
    for j, fit_end in enumerate(ends):
        if j == 0 and fitted is not None:
            models, s = {n: fitted[n] for n in names}, {}
        else:
            models, s = train_models({**base, "train_end": str(fit_end.date())}, features, list(names),
                                     progress=progress)
        for k, v in s.items():
            secs[k] = secs.get(k, 0.0) + v
        rows = np.ones(len(dates), bool) if j == 0 else np.asarray(dates > fit_end)
        if j + 1 < len(ends):
            rows &= np.asarray(dates <= ends[j + 1])
        for name, model in models.items():
            h = int(horizon_of(name, model)) if horizon_of is not None else int(horizon)
            fc = forecast_arrays({name: model}, features, dates, h)[name]
            if name not in out:
                out[name] = fc
                continue
            merged = {}
            for f in dataclasses.fields(fc):
                old, new = getattr(out[name], f.name), getattr(fc, f.name)
                merged[f.name] = None if old is None or new is None else np.where(rows[:, None], new, old)
            out[name] = type(fc)(**merged)
        if len(ends) > 1:
            log.info("walk-forward fit %d/%d on rows <= %s: forecasts for %d dates", j + 1, len(ends),
                     fit_end.date(), int(rows.sum()))
    return out, secs
