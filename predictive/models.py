"""Model registry: ``make_model(name, **params)`` builds any volatility model by its config name.

Names: ``ewma`` (:class:`predictive.ewma.EWMA`), ``garch`` (:class:`predictive.garch.GARCH11`), ``har``
(:class:`predictive.har.HARRV`), ``hmm`` (:class:`predictive.hmm.GaussianHMM`) and ``regime_net``
(``predictive.regime_net.RegimeNet``, imported lazily so that the baselines do not pull in flax/optax).
Configs live in ``conf/model/<name>.yaml``: ``name: <name>``; every other key is a constructor argument.
"""
from __future__ import annotations

import importlib
from typing import Any

from predictive.base import VolatilityModel

__all__ = ["MODEL_NAMES", "make_model", "model_class"]

_REGISTRY: dict[str, tuple[str, str]] = {
    "ewma": ("predictive.ewma", "EWMA"),
    "garch": ("predictive.garch", "GARCH11"),
    "har": ("predictive.har", "HARRV"),
    "hmm": ("predictive.hmm", "GaussianHMM"),
    "regime_net": ("predictive.regime_net", "RegimeNet"),
}
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def model_class(name: str) -> type[VolatilityModel]:
    """The class registered under ``name``. Raises ValueError for an unknown name (listing the known ones)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models are {list(MODEL_NAMES)}")
    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def make_model(name: str, **kwargs: Any) -> VolatilityModel:
    """Build a model: ``make_model("ewma", lam=0.97)``, or ``make_model(**cfg.model)`` from a config node.

    Args:
        name: one of :data:`MODEL_NAMES`.
        kwargs: constructor arguments (OmegaConf lists are converted to Python lists).

    Raises:
        ValueError: unknown name, or invalid parameters (raised by the model's constructor).
        TypeError: an argument the model does not accept.
    """
    # OmegaConf containers (lists) -> plain Python so models see lists, not ListConfig
    merged = {k: (list(v) if type(v).__name__ == "ListConfig" else v) for k, v in kwargs.items()}
    return model_class(name)(**merged)
