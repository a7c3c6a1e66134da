"""Typed checks of the composed configs, run by :func:`experiments._cli.hydra_app` before any work.

Each app's schema is a tuple of :class:`Field` (key, type, range or choices) plus cross-field checks (date order,
the files every asset needs under the settings, enough training rows). A violation raises :class:`ConfigError`
naming the key, the value and what is expected; nothing here imports JAX or trains anything, so a bad override is
reported in well under 5 s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["ConfigError", "Field", "Schema", "BACKTEST", "FORECAST", "MAIN", "check_config", "min_training_rows"]

_ABSENT = object()


class ConfigError(ValueError):
    """A config value is wrong. ``key`` is its dotted name (``"horizon"``, ``"data.daily.SOL"``)."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class Field:
    """One key's type and allowed values.

    ``kind``: ``int``, ``float``, ``bool``, ``date`` (ISO string), ``str``, ``str_list`` (non-empty list of names)
    or ``auto_bool`` (true / false / auto). ``low`` / ``high`` bound numbers (``open_low`` / ``open_high``: strict).
    ``optional``: the key may be absent (apps whose YAML does not list it).
    """

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple | None = None
    optional: bool = False


@dataclass(frozen=True)
class Schema:
    """An app's fields, date order ``(earlier, strict, later)`` and extra checks ``f(cfg) -> None``."""

    fields: tuple[Field, ...]
    date_order: tuple[tuple[str, bool, str], ...] = ()
    checks: tuple[Callable[[DictConfig], None], ...] = ()


def _select(cfg: DictConfig, key: str):
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except Exception as exc:  # noqa: BLE001 - interpolation / missing-value errors of OmegaConf
        raise ConfigError(key, f"cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def _typed(f: Field, value):
    """The value converted to ``f.kind``; ConfigError naming the key otherwise."""
    shown = repr(value)
    if f.kind == "int":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and
                                                                      value.strip().lstrip("+-").isdigit())):
            raise ConfigError(f.key, f"expected an integer, got {shown}")
        return int(value)
    if f.kind == "float":
        try:
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f.key, f"expected a number, got {shown}") from None
        if not math.isfinite(out):
            raise ConfigError(f.key, f"expected a finite number, got {shown}")
        return out
    if f.kind in ("bool", "auto_bool"):
        if isinstance(value, bool):
            return value
        if f.kind == "auto_bool" and value in (None, "auto"):
            return "auto"
        raise ConfigError(f.key, f"expected true or false{' or auto' if f.kind == 'auto_bool' else ''}, got {shown}")
    if f.kind == "date":
        try:
            return pd.Timestamp(str(value))
        except (TypeError, ValueError):
            raise ConfigError(f.key, f"expected a date like 2020-12-31, got {shown}") from None
    if f.kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f.key, f"expected a string, got {shown}")
        return value
    if f.kind == "str_list":
        if not isinstance(value, (list, ListConfig)) or len(value) == 0:
            raise ConfigError(f.key, f"expected a non-empty list like [BTC, ETH], got {shown}")
        names = [str(v) for v in value]
        if len(set(names)) != len(names):
            raise ConfigError(f.key, f"lists a name twice: {names}")
        return names
    raise AssertionError(f"unknown field kind {f.kind!r}")


def _check_field(cfg: DictConfig, f: Field) -> None:
    value = _select(cfg, f.key)
    if value is _ABSENT:
        if f.optional:
            return
        raise ConfigError(f.key, "is missing from the config")
    value = _typed(f, value)
    if f.choices is not None and value not in f.choices:
        raise ConfigError(f.key, f"expected one of {list(f.choices)}, got {value!r}")
    if f.low is not None and (value <= f.low if f.open_low else value < f.low):
        raise ConfigError(f.key, f"must be {'>' if f.open_low else '>='} {f.low:g}, got {value!r}")
    if f.high is not None and (value >= f.high if f.open_high else value > f.high):
        raise ConfigError(f.key, f"must be {'<' if f.open_high else '<='} {f.high:g}, got {value!r}")


def check_config(cfg: DictConfig, schema: Schema) -> None:
    """Check ``cfg`` against ``schema``: every field, then the date order, then the extra checks.

    Raises:
        ConfigError: the first violation, naming the key.
    """
    for f in schema.fields:
        _check_field(cfg, f)
    for early, strict, late in schema.date_order:
        a, b = pd.Timestamp(str(cfg[early])), pd.Timestamp(str(cfg[late]))
        if a > b or (strict and a == b):
            raise ConfigError(early, f"{early}={a.date()} must be {'before' if strict else 'on or before'} "
                                     f"{late}={b.date()}")
    for check in schema.checks:
        check(cfg)


# ------------------------------------------------------------------------------------------------ data checks

_SWITCH = {"hourly": "data.use_hourly=false", "funding": "data.use_funding=false"}
_FREQUENCY = {"daily": "1d", "hourly": "1h", "funding": "funding_8h"}


def asset_files(cfg: DictConfig) -> dict[str, dict[str, Path]]:
    """asset -> file kind (``daily`` and, if switched on, ``hourly`` / ``funding``) -> path, from ``cfg.data``.

    An asset is known by its files alone: ``data.<kind>.<asset>`` if given, else the embedded file (BTC, ETH; an
    embedded daily-only asset such as BNB has no hourly / funding entry).

    Raises:
        ConfigError: a file the settings need is neither given nor embedded (names the key to set and the switch
            that turns the file kind off), or a given path does not exist.
    """
    from predictive.data import EMBEDDED_ASSETS, embedded_path

    d = cfg.data
    kinds = ["daily"] + [k for k in ("hourly", "funding") if d.get(f"use_{k}", True)]
    out: dict[str, dict[str, Path]] = {}
    for asset in (str(a) for a in cfg.assets):
        out[asset] = {}
        for kind in kinds:
            given = (d.get(kind) or {}).get(asset)
            key = f"data.{kind}.{asset}"
            if given is None:
                if asset.upper() not in EMBEDDED_ASSETS:
                    off = f", or turn {kind} data off with {_SWITCH[kind]}" if kind in _SWITCH else ""
                    raise ConfigError(key, f"asset {asset} has no {kind} file: set {key}=/path/to/file{off}")
                embedded = embedded_path(asset, _FREQUENCY[kind])
                if kind != "daily" and not embedded.is_file():
                    continue  # an embedded daily-only asset (BNB): load_asset_features warns, once, when loading
                out[asset][kind] = embedded
                continue
            path = Path(str(given)).expanduser()
            if not path.exists() and str(given).upper() in EMBEDDED_ASSETS:  # another embedded asset's file
                path = embedded_path(str(given), _FREQUENCY[kind])
            if not path.is_file():
                off = f" (or turn {kind} data off with {_SWITCH[kind]})" if kind in _SWITCH else ""
                raise ConfigError(key, f"{kind} file {str(given)!r} does not exist{off}")
            out[asset][kind] = path
    return out


def min_training_rows(model: dict, horizon: int, n_assets: int) -> tuple[int, str]:
    """(daily rows up to ``train_end`` one asset needs, why) for a model config ``{"name": ..., params}``.

    Mirrors the models' own refusals (``min_history`` in predictive/*.py) so they are caught before training:
    RegimeNet also needs ``batch_size`` training samples after its validation split (pooled over assets) and
    30 rows of feature warm-up (rolling 30-day volatility).
    """
    name = str(model.get("name"))
    h = int(horizon)
    if name == "regime_net":
        lookback, batch = int(model.get("lookback", 30)), int(model.get("batch_size", 256))
        val_frac = float(model.get("val_frac", 0.15))
        heads = max([h, *[int(x) for key in ("horizons", "aux_horizons") for x in (model.get(key) or [])]])
        samples = math.ceil(batch / (1.0 - val_frac) / max(n_assets, 1))
        need = max(lookback + heads + 50, 30 + lookback + samples + 2 * heads)
        return need, (f"lookback {lookback} + 30 warm-up + {samples} samples per asset for batch_size {batch} "
                      f"after val_frac {val_frac}")
    if name == "har":
        windows = [int(x) for x in model.get("windows", [7, 30])]
        horizons = [int(x) for x in model.get("horizons", [1, 5])]
        return max(windows) + max(horizons + [h]) + 30, "HAR-RV windows + horizon + 30"
    return {"ewma": 30, "garch": 100, "hmm": 100}.get(name, 1), "the model's min_history"


def _model_configs(cfg: DictConfig, names) -> dict[str, dict]:
    from experiments.backtest import model_config

    over = OmegaConf.to_container(cfg.models, resolve=True) if cfg.get("models") else {}
    out = {}
    for name in names:
        spec = over.get(name) or {}
        spec = spec if isinstance(spec, dict) else {}
        out[name] = model_config(str(spec.get("config", name)), {k: v for k, v in spec.items() if k != "config"})
    return out


def check_data(cfg: DictConfig, train_end_key: str, eval_start_key: str, models: dict[str, dict]) -> None:
    """Every asset's files exist and load; each asset has enough daily rows up to ``train_end`` for every model,
    and data on or after the evaluation start.

    Raises:
        ConfigError: a missing file, too little training data (the count, the model's minimum and the setting to
            move) or no evaluation data.
        predictive.DataValidationError: a malformed file (names file, line, column and value).
    """
    from predictive.data import load_ohlcv

    files = asset_files(cfg)
    train_end, eval_start = pd.Timestamp(str(cfg[train_end_key])), pd.Timestamp(str(cfg[eval_start_key]))
    horizon, n_assets = int(cfg.horizon), len(files)
    max_gap = int(cfg.data.get("max_gap_days", 0))
    for asset, paths in files.items():
        dates = load_ohlcv(paths["daily"], max_gap_days=max_gap).index
        rows = int((dates <= train_end).sum())
        for name, model in models.items():
            need, why = min_training_rows(model, horizon, n_assets)
            if rows < need:
                raise ConfigError(train_end_key, (
                    f"{train_end_key}={train_end.date()} leaves {asset} {rows} daily rows for training (its data "
                    f"starts {dates[0].date()}); model {name!r} needs at least {need} ({why}): move "
                    f"{train_end_key} later or give a longer {asset} file"))
        if dates[-1] < eval_start + pd.Timedelta(days=horizon):
            raise ConfigError(eval_start_key, f"{asset} data end on {dates[-1].date()}, before {eval_start_key}="
                                              f"{eval_start.date()} + horizon {horizon}: nothing to evaluate")


def _backtest_data(cfg: DictConfig) -> None:
    from experiments.backtest import load_policy_config

    needed = set()
    for name in [cfg.policy.get("name")] + [str(c) for c in cfg.get("compare", []) or []]:
        if name is None:
            continue
        try:
            pc = cfg.policy if name == cfg.policy.get("name") else load_policy_config(name)
        except Exception as exc:  # noqa: BLE001 - an unknown policy name
            raise ConfigError("compare", f"unknown policy {name!r} ({str(exc).splitlines()[0]})") from None
        model = pc.get("model")
        if model:
            needed.add(str(model))
            # the main job trains only `models` and hands their forecasts to the backtest
            if "walk_forward" in cfg and cfg.get("backtest_enabled", True) and str(model) not in cfg.models:
                raise ConfigError("compare", f"policy {name!r} needs model {str(model)!r}, which is not in models "
                                             f"({list(cfg.models)}): add it back or drop the policy from compare")
    if "models" in cfg and "walk_forward" in cfg:  # the main job trains every listed model
        needed |= {str(m) for m in cfg.models}
    check_data(cfg, "train_end", "eval_start", _model_configs(cfg, sorted(needed)))


def check_refit_every(cfg: DictConfig) -> None:
    """``refit_every`` (days between walk-forward refits of the forecasting models) is absent, null or an int >= 1.

    Raises:
        ConfigError: naming ``refit_every``.
    """
    value = cfg.get("refit_every")
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("refit_every", f"must be a whole number of days >= 1 or null (one fit at train_end), "
                                         f"got {value!r}")


def _main_models(cfg: DictConfig) -> None:
    for key in ("walk_forward.reactive_model", "walk_forward.predictive_model"):
        name = str(OmegaConf.select(cfg, key))
        if name not in cfg.models:
            raise ConfigError(key, f"model {name!r} is not in models ({list(cfg.models)})")
    if int(cfg.proof.book_account) >= int(cfg.book.n_accounts):
        raise ConfigError("proof.book_account", f"account {cfg.proof.book_account} does not exist in a book of "
                                                f"book.n_accounts={cfg.book.n_accounts}")


def _forecast_data(cfg: DictConfig) -> None:
    names = {str(cfg.model.name): OmegaConf.to_container(cfg.model, resolve=True)}
    names.update(_model_configs(cfg, [str(b) for b in cfg.get("baselines", []) or []]))
    check_data(cfg, "train_end", "test_start", names)


COMMON = (
    Field("seed", "int", low=0),
    Field("horizon", "int", low=1),
    Field("assets", "str_list"),
    Field("data.use_hourly", "bool"),
    Field("data.use_funding", "bool"),
    Field("data.max_gap_days", "int", low=0, optional=True),
    Field("progress", "auto_bool", optional=True),
    Field("plot", "bool", optional=True),
    Field("overwrite", "bool", optional=True),
)

BACKTEST = Schema(
    fields=COMMON + (
        Field("coverage", "float", low=0.5, high=1.0, open_low=True, open_high=True),
        Field("train_end", "date"), Field("start", "date"), Field("eval_start", "date"), Field("end", "date"),
        Field("book.n_accounts", "int", low=1),
        Field("dtype", "str", choices=("float32", "float64")),
    ),
    date_order=(("train_end", True, "eval_start"), ("start", False, "eval_start"), ("eval_start", False, "end")),
    checks=(check_refit_every, _backtest_data),
)

MAIN = Schema(
    fields=BACKTEST.fields + (
        Field("maintenance_fraction", "float", low=0.0, high=1.0, open_low=True),
        Field("backtest_enabled", "bool"),
        Field("proof.enabled", "bool"),
        Field("proof.backend", "str", choices=("arkworks", "pyecc")),
        Field("proof.book_account", "int", low=0),
        Field("solvency.enabled", "bool"),
        Field("solvency.n_accounts", "int", low=1),
        Field("solvency.workers", "int", low=1),
        Field("solvency.executor", "str", choices=("ray", "local")),
    ),
    date_order=BACKTEST.date_order,
    checks=(_main_models, check_refit_every, _backtest_data),
)

FORECAST = Schema(
    fields=COMMON + (
        Field("train_end", "date"), Field("test_start", "date"), Field("test_end", "date"),
        Field("refit_every", "int", low=1),
    ),
    date_order=(("train_end", True, "test_start"), ("test_start", False, "test_end")),
    checks=(_forecast_data,),
)
