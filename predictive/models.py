"""Model registry: ``make_model(name, **params)`` builds any volatility model by its config name.

Names: ``ewma`` (:class:`predictive.ewma.EWMA`), ``garch`` (:class:`predictive.garch.GARCH11`), ``har``
(:class:`predictive.har.HARRV`), ``hmm`` (:class:`predictive.hmm.GaussianHMM`) and ``regime_net``
(``predictive.regime_net.RegimeNet``, imported lazily so that the baselines do not pull in flax/optax) and ``combo``
(:class:`predictive.combo.ForecastCombination`, trailing-QLIKE-weighted combination of member models).
Configs live in ``conf/model/<name>.yaml``: ``name: <name>``; every other key is a constructor argument.
"""
from __future__ import annotations

import importlib
from typing import Any

from predictive.base import VolatilityModel

__all__ = ["COMMON_ARGS", "MODEL_NAMES", "build_model", "make_model", "model_class"]

_REGISTRY: dict[str, tuple[str, str]] = {
    "ewma": ("predictive.ewma", "EWMA"),
    "garch": ("predictive.garch", "GARCH11"),
    "har": ("predictive.har", "HARRV"),
    "hmm": ("predictive.hmm", "GaussianHMM"),
    "regime_net": ("predictive.regime_net", "RegimeNet"),
    "combo": ("predictive.combo", "ForecastCombination"),
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def model_class(name: str) -> type[VolatilityModel]:
    """The class registered under ``name``. Raises ValueError for an unknown name (listing the known ones)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models are {list(MODEL_NAMES)}")
    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


#: arguments the apps set from their top-level config; models that do not take one of them ignore it
COMMON_ARGS: tuple[str, ...] = ("horizon", "seed", "progress")


def _accepts(cls, key: str) -> bool:
    import inspect

    params = inspect.signature(cls.__init__).parameters
    return key in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def make_model(name: str, *, horizon: int | None = None, seed: int | None = None, progress=None,
               **kwargs: Any) -> VolatilityModel:
    """Build a model: ``make_model("ewma", lam=0.97)``, or ``make_model(**cfg.model, horizon=5, seed=1)``.

    Args:
        name: one of :data:`MODEL_NAMES`.
        horizon, seed, progress: the app-level settings (:data:`COMMON_ARGS`). Each reaches every model whose
            constructor takes it (RegimeNet: all three; HMM: ``seed``; HAR: ``horizon`` is added to its fitted
            horizons); models without the argument ignore it (EWMA and GARCH forecast any h in closed form).
            ``None`` leaves the config's own value. ``progress`` is on if either this or the config says so.
        kwargs: constructor arguments from the config (OmegaConf lists are converted to Python lists).

    Raises:
        ValueError: unknown name, or invalid parameters (raised by the model's constructor).
        TypeError: an argument the model does not accept.
    """
    cls = model_class(name)
    merged = {k: (list(v) if type(v).__name__ == "ListConfig" else v) for k, v in kwargs.items()}
    if horizon is not None:
        if _accepts(cls, "horizon"):
            merged["horizon"] = horizon
        elif _accepts(cls, "horizons"):
            hs = list(merged.get("horizons", getattr(cls, "default_horizons", (1, 5))))
            merged["horizons"] = hs + ([int(horizon)] if int(horizon) not in hs else [])
    if seed is not None and _accepts(cls, "seed"):
        merged["seed"] = int(seed)
    if progress is not None and _accepts(cls, "progress"):
        cfg_p = merged.get("progress")
        merged["progress"] = progress if cfg_p in (None, False, "auto") or progress is True else cfg_p
    return cls(**merged)


def build_model(config, *, horizon: int | None = None, seed: int | None = None, progress=None) -> VolatilityModel:
    """Build a model from a config mapping ``{name: ..., **constructor args}`` (a ``conf/model/*.yaml`` node).

    Same rules as :func:`make_model`; the config may itself hold ``horizon`` / ``seed`` / ``progress`` (the
    explicit arguments win, except that ``progress`` is on if either says so).
    """
    if hasattr(config, "items") and type(config).__name__ == "DictConfig":
        from omegaconf import OmegaConf
        config = OmegaConf.to_container(config, resolve=True)
    cfg = dict(config)
    name = cfg.pop("name")
    own = {k: cfg.pop(k) for k in COMMON_ARGS if k in cfg}
    horizon = own.get("horizon") if horizon is None else horizon
    seed = own.get("seed") if seed is None else seed
    if "progress" in own and progress is not True:
        progress = own["progress"] if own["progress"] not in (None, False, "auto") or progress is None else progress
    return make_model(name, horizon=horizon, seed=seed, progress=progress, **cfg)
