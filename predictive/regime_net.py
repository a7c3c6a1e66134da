"""RegimeNet: a learned volatility-regime model, pooled over assets and anchored on HAR (flax nnx, optax).

What it is
    A small network that reads a lookback window of ``L`` daily, SCALE-FREE feature rows of one asset (returns and
    variances divided by the asset's own trailing 30-day realised variance, so that a coin twice as volatile looks
    the same) plus a learned asset embedding, and outputs for each trained horizon ``h`` (one output head per h)
    and the h-day log return ``R = r_{t+1} + ... + r_{t+h}`` at origin ``t``:

    * ``K`` regime logits -> weights ``w_k`` (softmax),
    * one variance per regime ``s2_k``, ordered ``s2_1 < ... < s2_K`` (regime 1 = calmest).

    The predictive distribution is the zero-mean Gaussian mixture ``sum_k w_k N(0, s2_k)``; its variance is
    ``sum_k w_k s2_k`` (log-return^2 per h days).

HAR-anchored residual structure
    Regime log-variances are ``log a_t(h) + d_k`` where ``a_t(h)`` is a POOLED, scale-free HAR forecast (Corsi
    2009) of the h-day realised variance, ``a_t(h) = h (c0 RV30_t + c1 RV_t + c2 RV7_t)``, whose coefficients are
    fitted by least squares on ``RV_{t+1..t+h} / (h RV30_t)`` against ``[1, RV_t / RV30_t, RV7_t / RV30_t]`` over
    the training samples of all assets. It needs no per-asset fit, so it exists for an asset the net never saw.
    The net learns the log-space correction ``d_k``, squashed into ``[-max_log_ratio, +max_log_ratio]`` by a
    monotone ``tanh``: far from the data it cannot run away from HAR. A zero correction IS the HAR forecast.

Unseen assets
    Embedding row 0 is a shared "unknown asset" vector. During training each sample's asset id is replaced by 0
    with probability ``embed_dropout``, so the net learns to forecast without knowing the asset. An asset not in
    the training set is forecast with row 0, and its mixture is then pulled towards the HAR anchor in log space:
    every component is scaled by ``(a_t / v_t)^unseen_shrink`` (``v_t`` the mixture variance), so with
    ``unseen_shrink = 1`` the forecast variance equals the pooled HAR, with 0 the net's own.

Inputs (per asset frame from :func:`predictive.features.build_features`; log-returns, variances per day)
    ``log_return / sqrt(L_t)``, ``log(rv / L_t)``, ``log(garman_klass / L_t)``, ``log(rv_7 / L_t)``,
    ``log(L_t / M_t)`` and a flag "rv came from hourly bars" (``rv_source``) (``DEFAULT_INPUTS`` leaves out the
    range variance and the flag; ``inputs`` chooses), where ``L_t`` is the trailing 30-day
    mean of rv (``rv_30``; an expanding mean while the window fills) and ``M_t`` the trailing 365-day mean;
    optionally ``log(EWMA_t / L_t)`` with the RiskMetrics (lambda = 0.94) average of squared returns.
    Only ``log_return``, ``rv`` and ``rv_7`` are required: an asset with daily bars only (rv = Garman-Klass range
    variance, no hourly flag, no funding) goes through the same path. Funding (``funding_sum``, ``funding_abs``)
    is added when ``use_funding`` and present (NaN -> the training mean). Each input at row t uses rows <= t.

Loss (per sample, averaged; Patton 2011 for QLIKE)
    ``sum_h w_h [ -log sum_k w_k N(R_h; 0, s2_k)  +  qlike_weight * QLIKE(RV_h, v_h) ]
    + smooth_weight * sum_h w_h (log v_h,t - log v_h,t-1)^2``
    where ``RV_h`` is the realised-variance proxy of the h days and ``v_h`` the mixture variance; the last term is a
    day-to-day persistence penalty on the forecast variance (computed on the previous day's window of the same
    asset), which keeps day-to-day changes plausible (margin procyclicality; Murphy, Vasios & Vause 2014).

Training
    optax ``chain(clip_by_global_norm, adamw(warmup_cosine_decay_schedule))``, mini-batches drawn with
    ``numpy.random.default_rng([seed, epoch])`` so that a resumed run is bit-identical to an uninterrupted one
    (float64 on CPU). Early stopping on a chronological validation block: the last ``val_frac`` of the training
    dates (pooled over assets), with an embargo of the longest horizon. Ensemble member ``m`` uses seed
    ``seed + 1000 m``. With ``checkpoint_dir`` set, the training state is saved with orbax every
    ``checkpoint_every`` epochs; ``resume=True`` continues from the latest one.

Horizons
    Heads are trained DIRECTLY for ``horizon`` and every h in ``horizons`` (full loss weight), and for
    ``aux_horizons`` (weight ``aux_weight``). ``forecast(features, h)`` works for every trained h and raises
    ``ValueError`` naming the trained horizons otherwise.

Sources: Corsi (2009) HAR-RV; Patton (2011) QLIKE; Gal & Ghahramani (2016) / Srivastava et al. (2014) dropout
(here applied to the embedding lookup); Murphy, Vasios & Vause (2014) on procyclicality.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import nnx

from predictive.base import DEFAULT_LEVELS, InsufficientDataError, VolatilityForecast, VolatilityModel, mixture_quantiles
from predictive.base import validate_horizon
from predictive.features import forward_targets

__all__ = ["RegimeNet", "RegimeNetConfig", "RegimeNetwork", "mixture_nll", "qlike", "resolve_progress",
           "scale_free_inputs", "pooled_har_coef"]

jax.config.update("jax_enable_x64", True)
log = logging.getLogger(__name__)

_EPS = 1e-12
_FUNDING: tuple[str, ...] = ("funding_sum", "funding_abs")
#: names of the scale-free inputs (see module docstring), in column order
INPUTS: tuple[str, ...] = ("ret_z", "log_rv_rel", "log_gk_rel", "log_rv7_rel", "log_level_rel", "hourly",
                           "log_ewma_rel")
#: default inputs: without the range-variance and hourly-flag inputs, whose relation to rv changes when an asset's
#: rv switches from range-based to hourly (2018 for BTC / ETH); with them the net's bias drifted on the validation
#: year 2020 (train to 2019-12-31), see conf/model/regime_net.yaml
DEFAULT_INPUTS: tuple[str, ...] = ("ret_z", "log_rv_rel", "log_rv7_rel", "log_level_rel")


@dataclasses.dataclass(frozen=True)
class RegimeNetConfig:
    """Hyper-parameters of :class:`RegimeNet` (all plain values so Hydra can fill them)."""

    horizon: int = 1
    horizons: tuple[int, ...] = ()       # further heads trained directly (full weight); forecast works for each
    n_regimes: int = 3
    lookback: int = 30
    hidden: int = 32
    embed_dim: int = 4
    use_funding: bool = False
    inputs: tuple[str, ...] = DEFAULT_INPUTS  # subset of INPUTS fed to the net (funding is added by use_funding)
    qlike_weight: float = 1.0
    smooth_weight: float = 0.0           # day-to-day persistence penalty on log forecast variance
    embed_dropout: float = 0.2           # P(asset id -> shared "unknown" row 0) per training sample
    unseen_shrink: float = 0.5           # unseen asset: log-space pull of the mixture towards the HAR anchor
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05
    clip_norm: float = 1.0
    batch_size: int = 256
    max_epochs: int = 150
    patience: int = 20
    val_frac: float = 0.15
    seed: int = 0
    n_ensemble: int = 1
    aux_horizons: tuple[int, ...] = ()   # extra heads with loss weight aux_weight
    aux_weight: float = 0.5
    max_log_ratio: float | None = 3.0    # bound |log s2_k - log anchor| <= this (tanh squash); None = unbounded


def resolve_progress(progress: bool | str | None) -> bool:
    """``True``/``False`` as given; ``None`` or ``"auto"``: on when stderr is a terminal."""
    if progress is None or (isinstance(progress, str) and progress.lower() == "auto"):
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    if isinstance(progress, str):
        if progress.lower() in ("true", "1", "yes", "on"):
            return True
        if progress.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"progress must be true, false or auto, got {progress!r}")
    return bool(progress)


def mixture_nll(y: jax.Array, logw: jax.Array, logvar: jax.Array) -> jax.Array:
    """Negative log density of ``y`` (N,) under zero-mean Gaussian mixtures (log-weights, log-variances (N, K))."""
    comp = logw - 0.5 * (math.log(2 * math.pi) + logvar + y[:, None] ** 2 * jnp.exp(-logvar))
    return -jax.nn.logsumexp(comp, axis=-1)


def qlike(proxy: jax.Array, var: jax.Array) -> jax.Array:
    """QLIKE loss ``h/s2 - ln(h/s2) - 1`` (Patton 2011), elementwise."""
    ratio = proxy / var
    return ratio - jnp.log(ratio) - 1.0


def _num(f: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(f[col], errors="coerce").astype(np.float64).to_numpy()


def _level(f: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rv, rv_7, L) per row, causal: rv forward-filled, rv_7 / rv_30 -> expanding mean of rv while the window fills."""
    rv = pd.Series(_num(f, "rv")).ffill()
    early = rv.expanding(min_periods=1).mean()
    rv7 = pd.Series(_num(f, "rv_7")).where(lambda s: np.isfinite(s), early)
    rv30 = pd.Series(_num(f, "rv_30")) if "rv_30" in f.columns else rv.rolling(30, min_periods=30).mean()
    rv30 = rv30.where(np.isfinite(rv30), early)
    # rows before the first finite rv have no information: a fixed 1e-4 (1% daily vol), never a later value
    out = [np.maximum(np.nan_to_num(s.to_numpy(), nan=1e-4), 1e-10) for s in (rv, rv7, rv30)]
    return out[0], out[1], out[2]


def scale_free_inputs(f: pd.DataFrame, use_funding: bool = False, inputs=INPUTS) -> tuple[np.ndarray, list[str]]:
    """The (T, F) unstandardised inputs of one asset frame and their names (module docstring, "Inputs").

    Row t uses rows <= t only. Missing optional columns degrade: no ``garman_klass`` -> the rv column is used,
    no ``rv_source`` -> hourly flag 0, no funding -> NaN (standardised to the training mean).
    """
    rv, rv7, lvl = _level(f)
    long = pd.Series(rv).rolling(365, min_periods=1).mean().to_numpy()
    r = np.nan_to_num(_num(f, "log_return"), nan=0.0)
    gk = _num(f, "garman_klass") if "garman_klass" in f.columns else rv
    gk = np.where(np.isfinite(gk) & (gk > 0), gk, rv)
    hourly = (f["rv_source"].astype(str).str.startswith("hourly").to_numpy(np.float64)
              if "rv_source" in f.columns else np.zeros(len(f)))
    ewma = pd.Series(r ** 2).ewm(alpha=0.06, adjust=False).mean().to_numpy()  # RiskMetrics lambda = 0.94
    cols = [r / np.sqrt(lvl), np.log(rv / lvl + _EPS), np.log(gk / lvl + _EPS), np.log(rv7 / lvl),
            np.log(lvl / long), hourly, np.log(ewma / lvl + _EPS)]
    keep = [INPUTS.index(n) for n in inputs]
    cols, names = [cols[i] for i in keep], [INPUTS[i] for i in keep]
    if use_funding:
        for c in _FUNDING:
            cols.append(pd.to_numeric(f[c], errors="coerce").ffill().to_numpy(np.float64) if c in f.columns
                        else np.full(len(f), np.nan))
            names.append(c)
    return np.stack(cols, axis=1), names


def pooled_har_coef(frames: Mapping[str, pd.DataFrame], h: int, mask: Mapping[str, np.ndarray] | None = None
                    ) -> np.ndarray:
    """Scale-free pooled HAR coefficients ``(c0, c1, c2)`` for horizon ``h`` (module docstring).

    Least squares of ``RV_{t+1..t+h} / (h L_t)`` on ``[1, RV_t / L_t, RV7_t / L_t]`` over the rows of every frame
    whose target is known (and ``mask[asset]`` true, if given); ratios are clipped at 50 against single-day spikes.

    Raises:
        InsufficientDataError: fewer than 20 usable rows in total.
    """
    Xs, ys = [], []
    for a, f in frames.items():
        rv, rv7, lvl = _level(f)
        y = forward_targets(f, h)["rv_h"].to_numpy(np.float64) / (h * lvl)
        ok = np.isfinite(y) & (y > 0)
        if mask is not None:
            ok &= mask[a]
        X = np.stack([np.ones(len(f)), rv / lvl, rv7 / lvl], axis=1)
        Xs.append(np.minimum(X[ok], 50.0)), ys.append(np.minimum(y[ok], 50.0))
    X, y = np.concatenate(Xs), np.concatenate(ys)
    if len(y) < 20:
        raise InsufficientDataError(f"RegimeNet: pooled HAR anchor for h={h} has {len(y)} usable rows, needs 20")
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return coef


def har_anchor(f: pd.DataFrame, h: int, coef: np.ndarray) -> np.ndarray:
    """``log a_t(h)`` of one asset frame, floored at ``0.1 h L_t`` (OLS can go negative after calm spells)."""
    rv, rv7, lvl = _level(f)
    a = h * (coef[0] * lvl + coef[1] * rv + coef[2] * rv7)
    return np.log(np.maximum(a, 0.1 * h * lvl))


class RegimeNetwork(nnx.Module):
    """Window (N, L, F) float64, asset ids (N,) int (0 = unknown), anchor log-variances (N, H) -> log-weights,
    log-variances (N, H, K). Embedding has ``n_assets + 1`` rows (row 0 = shared unknown asset)."""

    def __init__(self, lookback: int, n_features: int, n_assets: int, n_regimes: int, hidden: int,
                 embed_dim: int, *, rngs: nnx.Rngs, n_heads: int = 1, max_log_ratio: float | None = None):
        self.n_heads, self.n_regimes = n_heads, n_regimes
        self.max_log_ratio = None if max_log_ratio is None else float(max_log_ratio)
        dt = jnp.float64
        self.embed = nnx.Embed(n_assets + 1, max(embed_dim, 1), param_dtype=dt, dtype=dt, rngs=rngs)
        self.l1 = nnx.Linear(lookback * n_features + max(embed_dim, 1), hidden, param_dtype=dt, dtype=dt, rngs=rngs)
        self.l2 = nnx.Linear(hidden, hidden, param_dtype=dt, dtype=dt, rngs=rngs)
        self.logits = nnx.Linear(hidden, n_heads * n_regimes, param_dtype=dt, dtype=dt, rngs=rngs)
        self.scale = nnx.Linear(hidden, n_heads * n_regimes, param_dtype=dt, dtype=dt, rngs=rngs,
                                kernel_init=nnx.initializers.zeros)
        init = np.linspace(-0.7, 0.7, n_regimes) if n_regimes > 1 else np.zeros(1)
        raw = np.concatenate([init[:1], np.log(np.expm1(np.maximum(np.diff(init), 1e-3)))])
        self.offset = nnx.Param(jnp.asarray(np.tile(raw, (n_heads, 1)), dtype=dt))

    def __call__(self, x: jax.Array, asset: jax.Array, anchor: jax.Array) -> tuple[jax.Array, jax.Array]:
        n = x.shape[0]
        z = jnp.concatenate([x.reshape(n, -1), self.embed(asset)], axis=-1)
        z = nnx.gelu(self.l1(z))
        z = nnx.gelu(self.l2(z)) + z
        shape = (n, self.n_heads, self.n_regimes)
        logw = jax.nn.log_softmax(self.logits(z).reshape(shape), axis=-1)
        pre = self.offset[...][None] + self.scale(z).reshape(shape)
        steps = jnp.concatenate([pre[..., :1], jax.nn.softplus(pre[..., 1:])], axis=-1)
        dev = jnp.cumsum(steps, axis=-1)  # ordered: regime 1 calmest (members' regimes line up)
        if self.max_log_ratio is not None:
            dev = self.max_log_ratio * jnp.tanh(dev / self.max_log_ratio)
        return logw, anchor[..., None] + dev


def _mix_logvar(logw, logvar):
    return jax.nn.logsumexp(logw + logvar, axis=-1)


def _loss(model: RegimeNetwork, batch, qlike_weight, smooth_weight, head_weights):
    """Mean over samples of the head-weighted mixture NLL + QLIKE (+ persistence penalty); see module docstring."""
    x, a, anchor, y, proxy = batch[:5]
    logw, logvar = model(x, a, anchor)
    n, H, K = logw.shape
    nll = mixture_nll(y.reshape(-1), logw.reshape(-1, K), logvar.reshape(-1, K)).reshape(n, H)
    lv = _mix_logvar(logw, logvar)
    per_head = jnp.mean(nll + qlike_weight * qlike(proxy, jnp.exp(lv)), axis=0)
    total = jnp.sum(per_head * head_weights)
    if len(batch) > 5:  # previous day's window of the same asset
        xp, ancp = batch[5], batch[6]
        lwp, lvp = model(xp, a, ancp)
        d = lv - _mix_logvar(lwp, lvp)
        total = total + smooth_weight * jnp.sum(jnp.mean(d ** 2, axis=0) * head_weights)
    return total


class RegimeNet(VolatilityModel):
    """Pooled, HAR-anchored regime-mixture volatility model with direct h-day heads (see module docstring).

    Args (besides :class:`RegimeNetConfig` fields, which can all be given as keywords):
        checkpoint_dir: orbax checkpoint directory for the training state, or None (no checkpoints).
        checkpoint_every: save every this many epochs (and at the end).
        resume: continue from the latest checkpoint in ``checkpoint_dir`` if there is one.
        progress: tqdm bars over ensemble members and epochs: True, False or "auto"/None (stderr is a terminal).

    Attributes after fit: ``heads`` (trained horizons, main first), ``assets_``, ``har_coef_`` ({h: (c0, c1, c2)}),
    ``history_`` (per member: train / val losses, epochs run), ``train_seconds_``.

    Raises:
        ValueError: a setting out of range (names it).
    """

    name = "regime_net"

    def __init__(self, *, checkpoint_dir: str | None = None, checkpoint_every: int = 10, resume: bool = False,
                 progress: bool | str | None = "auto", **kwargs):
        kwargs.pop("features", None)  # older configs: the input set is fixed (scale-free, module docstring)
        if kwargs.get("inputs") is not None:
            kwargs["inputs"] = tuple(str(x) for x in kwargs["inputs"])
            unknown = [x for x in kwargs["inputs"] if x not in INPUTS]
            if unknown or not kwargs["inputs"]:
                raise ValueError(f"RegimeNet: invalid inputs={list(kwargs['inputs'])}; choose from {list(INPUTS)}")
        for key in ("aux_horizons", "horizons"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(int(x) for x in kwargs[key])  # range checked below (names the field)
            elif key in kwargs:
                kwargs[key] = ()
        self.config = cfg = RegimeNetConfig(**kwargs)
        for field, value, ok in (("horizon", cfg.horizon, isinstance(cfg.horizon, (int, np.integer))
                                  and cfg.horizon >= 1),
                                 ("horizons", cfg.horizons, all(x >= 1 for x in cfg.horizons)),
                                 ("n_regimes", cfg.n_regimes, cfg.n_regimes >= 1),
                                 ("lookback", cfg.lookback, cfg.lookback >= 1),
                                 ("n_ensemble", cfg.n_ensemble, cfg.n_ensemble >= 1),
                                 ("max_epochs", cfg.max_epochs, cfg.max_epochs >= 1),
                                 ("batch_size", cfg.batch_size, cfg.batch_size >= 1),
                                 ("val_frac", cfg.val_frac, 0.0 < cfg.val_frac < 1.0),
                                 ("qlike_weight", cfg.qlike_weight, cfg.qlike_weight >= 0.0),
                                 ("smooth_weight", cfg.smooth_weight, cfg.smooth_weight >= 0.0),
                                 ("embed_dropout", cfg.embed_dropout, 0.0 <= cfg.embed_dropout < 1.0),
                                 ("unseen_shrink", cfg.unseen_shrink, 0.0 <= cfg.unseen_shrink <= 1.0),
                                 ("aux_horizons", cfg.aux_horizons, all(x >= 1 for x in cfg.aux_horizons)),
                                 ("aux_weight", cfg.aux_weight, cfg.aux_weight >= 0.0),
                                 ("max_log_ratio", cfg.max_log_ratio,
                                  cfg.max_log_ratio is None or cfg.max_log_ratio > 0)):
            if not ok:
                raise ValueError(f"RegimeNet: invalid {field}={value!r}")
        self.horizon = int(cfg.horizon)
        self.n_regimes = cfg.n_regimes
        main = [self.horizon] + [h for h in cfg.horizons if h != self.horizon]
        main = list(dict.fromkeys(main))
        aux = [h for h in dict.fromkeys(cfg.aux_horizons) if h not in main]
        self.heads = tuple(main + aux)
        self.head_weights = tuple([1.0] * len(main) + [cfg.aux_weight] * len(aux))
        self.min_history = cfg.lookback + max(self.heads) + 50
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = int(checkpoint_every)
        self.resume = bool(resume)
        self.progress = resolve_progress(progress)
        self.assets_: list[str] | None = None
        self.columns_: list[str] | None = None
        self.har_coef_: dict[int, np.ndarray] = {}
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.members_: list[RegimeNetwork] = []
        self.history_: list[dict] = []
        self.train_seconds_: float | None = None

    # ------------------------------------------------------------------ data
    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        z = (raw - self.mean_) / self.std_
        return np.clip(np.nan_to_num(z, nan=0.0), -10.0, 10.0)

    def _windows(self, z: np.ndarray) -> np.ndarray:
        """(T, F) standardised -> (T, L, F) windows ending at each row; the first L-1 rows repeat row 0 (edge pad)."""
        L = self.config.lookback
        padded = np.concatenate([np.repeat(z[:1], L - 1, axis=0), z], axis=0)
        idx = np.arange(len(z))[:, None] + np.arange(L)[None, :]
        return padded[idx]

    def _anchors(self, f: pd.DataFrame) -> np.ndarray:
        return np.stack([har_anchor(f, h, self.har_coef_[h]) for h in self.heads], axis=1)

    def _anchor(self, f: pd.DataFrame, h: int) -> np.ndarray:
        """``log a_t(h)``, the pooled-HAR anchor of a trained head ``h`` (after fit)."""
        return har_anchor(f, h, self.har_coef_[h])

    def _check_frames(self, features: Mapping[str, pd.DataFrame]) -> None:
        if not isinstance(features, Mapping) or not features:
            raise ValueError("RegimeNet: features must be a non-empty mapping {asset: DataFrame}")
        for asset, f in features.items():
            for c in ("log_return", "rv", "rv_7"):
                if c not in f.columns:
                    raise ValueError(f"RegimeNet: features of {asset!r} lack column {c!r}")

    # ------------------------------------------------------------------ fit
    def fit(self, features: Mapping[str, pd.DataFrame]) -> "RegimeNet":
        """Train on all rows given, pooled over any number of assets (with or without hourly bars). Returns self.

        Raises:
            InsufficientDataError: an asset has fewer than ``min_history`` rows, or too few training samples
                (the message gives the counts and the settings to move).
            ValueError: missing feature columns.
        """
        self._check_frames(features)
        cfg = self.config
        for asset, f in features.items():
            if len(f) < self.min_history:
                raise InsufficientDataError(
                    f"RegimeNet: asset {asset!r} has {len(f)} rows up to the fit end, needs at least "
                    f"min_history={self.min_history} (lookback={cfg.lookback} + longest horizon {max(self.heads)} "
                    "+ 50); move train_end later, or lower model.lookback, or leave the asset out")
        self.assets_ = list(features)
        raws = {a: scale_free_inputs(f, cfg.use_funding, cfg.inputs) for a, f in features.items()}
        self.columns_ = next(iter(raws.values()))[1]
        raws = {a: r for a, (r, _) in raws.items()}
        stacked = np.concatenate(list(raws.values()), axis=0)
        n_obs = np.isfinite(stacked).sum(axis=0)
        filled = np.where(np.isfinite(stacked), stacked, 0.0)
        self.mean_ = filled.sum(axis=0) / np.maximum(n_obs, 1)
        std = np.sqrt(np.where(np.isfinite(stacked), (stacked - self.mean_) ** 2, 0.0).sum(axis=0)
                      / np.maximum(n_obs, 1))
        self.std_ = np.where(np.isfinite(std) & (std > 0), std, 1.0)

        # chronological split on pooled dates; embargo of the longest horizon before the validation block
        all_dates = np.unique(np.concatenate([f.index.to_numpy() for f in features.values()]))
        k = int(len(all_dates) * (1.0 - cfg.val_frac))
        cut = all_dates[min(k, len(all_dates) - 1)]
        embargo = all_dates[max(k - max(self.heads), 0)]
        fit_mask = {a: f.index.to_numpy() < embargo for a, f in features.items()}
        self.har_coef_ = {h: pooled_har_coef(features, h, fit_mask) for h in self.heads}

        use_prev = cfg.smooth_weight > 0
        cols = {k: [] for k in ("x", "a", "anc", "y", "v", "d", "xp", "ancp")}
        for i, (asset, f) in enumerate(features.items()):
            w = self._windows(self._standardise(raws[asset]))
            tg = [forward_targets(f, hh) for hh in self.heads]
            fr = np.stack([t["ret_h"].to_numpy(np.float64) for t in tg], axis=1)
            fv = np.stack([t["rv_h"].to_numpy(np.float64) for t in tg], axis=1)
            anc = self._anchors(f)
            ok = (np.isfinite(fr) & np.isfinite(fv) & (fv > 0) & np.isfinite(anc)).all(axis=1)
            ok[: cfg.lookback] = False  # only full windows (and a previous-day window) for training
            cols["x"].append(w[ok]), cols["a"].append(np.full(ok.sum(), i + 1)), cols["anc"].append(anc[ok])
            cols["y"].append(fr[ok]), cols["v"].append(fv[ok]), cols["d"].append(f.index.to_numpy()[ok])
            if use_prev:
                prev = np.flatnonzero(ok) - 1
                cols["xp"].append(w[prev]), cols["ancp"].append(anc[prev])
        X, A, ANC, Y, V, D = (np.concatenate(cols[k]) for k in ("x", "a", "anc", "y", "v", "d"))
        extra = (np.concatenate(cols["xp"]), np.concatenate(cols["ancp"])) if use_prev else ()
        val, train = D >= cut, D < embargo
        if train.sum() < cfg.batch_size or val.sum() < 1:
            raise InsufficientDataError(
                f"RegimeNet: {int(train.sum())} training / {int(val.sum())} validation samples over "
                f"{len(features)} asset(s) are too few (need >= batch_size={cfg.batch_size} training samples); "
                "move train_end later, add assets, or lower model.batch_size / model.lookback / model.val_frac")
        arrays = (X, A, ANC, Y, V) + extra
        data_tr = tuple(jnp.asarray(v[train]) for v in arrays)
        data_va = tuple(jnp.asarray(v[val]) for v in arrays)
        t0 = time.perf_counter()
        self.members_, self.history_ = [], []
        members = range(cfg.n_ensemble)
        outer = None
        if self.progress and cfg.n_ensemble > 1:
            from tqdm.auto import tqdm
            outer = tqdm(total=cfg.n_ensemble, desc=f"RegimeNet members (h={','.join(map(str, self.heads))})")
        for m in members:
            model, hist = self._train_one(cfg.seed + 1000 * m, data_tr, data_va, len(self.assets_),
                                          X.shape[-1], member=m)
            self.members_.append(model)
            self.history_.append(hist)
            if outer is not None:
                outer.update(1)
        if outer is not None:
            outer.close()
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def _train_one(self, seed, data_tr, data_va, n_assets, n_features, member=0):
        cfg = self.config
        model = RegimeNetwork(cfg.lookback, n_features, n_assets, cfg.n_regimes, cfg.hidden, cfg.embed_dim,
                              rngs=nnx.Rngs(seed), n_heads=len(self.heads), max_log_ratio=cfg.max_log_ratio)
        head_w = jnp.asarray(self.head_weights)
        graphdef, params = nnx.split(model, nnx.Param)
        n_tr = int(data_tr[0].shape[0])
        bs = min(cfg.batch_size, n_tr)
        steps_per_epoch = n_tr // bs
        total = steps_per_epoch * cfg.max_epochs
        sched = optax.warmup_cosine_decay_schedule(
            init_value=0.0, peak_value=cfg.learning_rate, warmup_steps=max(int(cfg.warmup_frac * total), 1),
            decay_steps=max(total, 2), end_value=cfg.learning_rate * 0.01)
        tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm),
                         optax.adamw(sched, weight_decay=cfg.weight_decay))
        opt_state = tx.init(params)
        qw, sw = float(cfg.qlike_weight), float(cfg.smooth_weight)

        def loss_fn(p, batch):
            return _loss(nnx.merge(graphdef, p), batch, qw, sw, head_w)

        @jax.jit
        def run_epoch(p, s, perm, drop):
            def step(carry, inp):
                p, s = carry
                idx, dr = inp
                batch = [d[idx] for d in data_tr]
                batch[1] = jnp.where(dr, 0, batch[1])  # embedding dropout -> shared unknown-asset row
                loss, g = jax.value_and_grad(loss_fn)(p, tuple(batch))
                upd, s = tx.update(g, s, p)
                return (optax.apply_updates(p, upd), s), loss
            (p, s), losses = jax.lax.scan(step, (p, s), (perm.reshape(steps_per_epoch, bs),
                                                         drop.reshape(steps_per_epoch, bs)))
            return p, s, jnp.mean(losses)

        @jax.jit
        def val_loss(p):
            return loss_fn(p, data_va)

        state = {"params": params, "opt_state": opt_state, "best_params": params,
                 "epoch": np.array(-1, np.int64), "best_val": np.array(np.inf), "bad_epochs": np.array(0, np.int64)}
        mngr = None
        if self.checkpoint_dir is not None:
            import orbax.checkpoint as ocp
            path = Path(self.checkpoint_dir).absolute() / f"member_{member}"
            mngr = ocp.CheckpointManager(path, options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))
            if self.resume and mngr.latest_step() is not None:
                abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
                state = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore(abstract))
        hist = {"train": [], "val": [], "epochs_run": 0, "resumed_from": int(state["epoch"])}
        p, s = state["params"], state["opt_state"]
        best_p, best_val, bad = state["best_params"], float(state["best_val"]), int(state["bad_epochs"])
        start = int(state["epoch"]) + 1
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=cfg.max_epochs, initial=start, desc=f"RegimeNet epochs (member {member})",
                       leave=False)
        last = start - 1
        stop_at = getattr(self, "_interrupt_after", None)  # test hook: simulate a killed run after this epoch
        for epoch in range(start, cfg.max_epochs):
            if bad >= cfg.patience:
                break
            if stop_at is not None and epoch > stop_at:
                break
            rng = np.random.default_rng([seed, epoch])
            n_use = steps_per_epoch * bs
            perm = jnp.asarray(rng.permutation(n_tr)[:n_use])
            drop = jnp.asarray(rng.random(n_use) < cfg.embed_dropout)
            p, s, tr_loss = run_epoch(p, s, perm, drop)
            vl = float(val_loss(p))
            last = epoch
            hist["train"].append(float(tr_loss)), hist["val"].append(vl)
            if vl < best_val - 1e-6:
                best_val, best_p, bad = vl, p, 0
            else:
                bad += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(train=f"{float(tr_loss):.4f}", val=f"{vl:.4f}", best=f"{best_val:.4f}")
            if mngr is not None and ((epoch + 1) % self.checkpoint_every == 0):
                self._save(mngr, epoch, p, s, best_p, best_val, bad)
        if mngr is not None:
            if last >= start and mngr.latest_step() != last:
                self._save(mngr, last, p, s, best_p, best_val, bad)
            mngr.wait_until_finished()
            mngr.close()
        if bar is not None:
            bar.close()
        hist["epochs_run"] = last + 1
        hist["best_val"] = best_val
        return nnx.merge(graphdef, best_p), hist

    @staticmethod
    def _save(mngr, epoch, p, s, best_p, best_val, bad):
        import orbax.checkpoint as ocp
        state = {"params": p, "opt_state": s, "best_params": best_p, "epoch": np.array(epoch, np.int64),
                 "best_val": np.array(best_val, np.float64), "bad_epochs": np.array(bad, np.int64)}
        mngr.save(int(epoch), args=ocp.args.StandardSave(state))

    # ------------------------------------------------------------------ forecast
    def _head(self, horizon) -> int:
        h = validate_horizon(horizon)
        if h not in self.heads:
            raise ValueError(f"RegimeNet: trained for horizons {list(self.heads)}, forecast asked horizon={h}; "
                             f"train with horizon={h} or add it to model.horizons")
        return self.heads.index(h)

    def predict_mixture(self, features: Mapping[str, pd.DataFrame], horizon: int | None = None
                        ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{asset: (weights (T, K*n_ensemble), variances (T, K*n_ensemble))} of the h-day log return at every row.

        ``horizon`` defaults to the main one. An asset outside the training set uses the unknown-asset embedding
        and the ``unseen_shrink`` pull towards the HAR anchor (module docstring).
        """
        if not self.members_:
            raise RuntimeError("RegimeNet: call fit() before forecast()")
        j = self._head(self.horizon if horizon is None else horizon)
        self._check_frames(features)
        out = {}
        for asset, f in features.items():
            seen = asset in self.assets_
            if not seen:
                log.info("RegimeNet: asset %r not in the training set %s: unknown-asset embedding, pulled towards "
                         "the pooled HAR anchor (unseen_shrink=%g)", asset, self.assets_, self.config.unseen_shrink)
            raw, _ = scale_free_inputs(f, self.config.use_funding, self.config.inputs)
            x = jnp.asarray(self._windows(self._standardise(raw)))
            a = jnp.full((len(f),), self.assets_.index(asset) + 1 if seen else 0)
            anc_all = self._anchors(f)
            anc = jnp.asarray(anc_all)
            ws, vs = [], []
            for model in self.members_:
                logw, logvar = _apply(model, x, a, anc)
                ws.append(np.exp(np.asarray(logw[:, j])) / len(self.members_))
                vs.append(np.exp(np.asarray(logvar[:, j])))
            w, v = np.concatenate(ws, axis=1), np.concatenate(vs, axis=1)
            if not seen and self.config.unseen_shrink > 0:
                mix = np.sum(w * v, axis=1)
                v = v * np.exp(self.config.unseen_shrink * (anc_all[:, j] - np.log(mix)))[:, None]
            out[asset] = (w, v)
        return out

    def forecast(self, features: Mapping[str, pd.DataFrame], horizon: int) -> dict[str, VolatilityForecast]:
        """Mixture forecast at every row t (uses rows <= t only) for a trained horizon (see ``heads``).

        Raises:
            ValueError: ``horizon`` has no trained head (names the trained ones); bad frames.
            RuntimeError: before fit.
        """
        h = validate_horizon(horizon)
        if self.members_:
            self._head(h)
        res = {}
        K = self.n_regimes
        for asset, (w, v) in self.predict_mixture(features, h).items():
            var = np.sum(w * v, axis=1)
            q = mixture_quantiles(w, np.sqrt(v), DEFAULT_LEVELS)
            probs = w.reshape(len(w), -1, K).sum(axis=1)
            res[asset] = VolatilityForecast(index=features[asset].index, horizon=h,
                                            variance=var, quantiles=q, regime_probs=probs)
        return res


@nnx.jit
def _apply(model, x, a, anc):
    return model(x, a, anc)
