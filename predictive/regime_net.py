"""RegimeNet: a learned volatility-regime model (flax nnx, trained with optax).

What it is
    A small network that reads a lookback window of ``L`` daily feature rows (standardised log-returns and log
    variances, funding) of one asset plus a learned asset embedding (``nnx.Embed``; one network pooled across all
    assets) and outputs, for the h-day log return ``R = r_{t+1} + ... + r_{t+h}`` at origin ``t``:

    * ``K`` regime logits -> weights ``w_k`` (softmax),
    * one variance per regime ``s2_k``, ordered ``s2_1 < s2_2 < ... < s2_K`` (regime 1 = calmest).

    The predictive distribution is the zero-mean Gaussian mixture ``sum_k w_k N(0, s2_k)``; its variance is
    ``sum_k w_k s2_k``. Regime variances are parametrised around a HAR-like anchor ``log(h * rv_7_t)`` (the
    trailing 7-day mean of daily realised variance, Corsi 2009), so the network learns log-space corrections.

Loss (per sample, averaged; Patton 2011 for QLIKE)
    ``-log sum_k w_k N(R; 0, s2_k)  +  qlike_weight * (RV/v - log(RV/v) - 1)``
    where ``RV = rv_{t+1} + ... + rv_{t+h}`` is the realised-variance proxy and ``v = sum_k w_k s2_k``.
    ``qlike_weight = 0`` gives the pure mixture negative log-likelihood.

Training
    optax ``chain(clip_by_global_norm, adamw(warmup_cosine_decay_schedule))``, mini-batches drawn with
    ``numpy.random.default_rng([seed, epoch])`` so that a resumed run is bit-identical to an uninterrupted one
    (float64 on CPU). Early stopping on a chronological validation block: the last ``val_frac`` of the training
    dates (pooled over assets); samples whose targets reach into the validation block are dropped from the
    training part (an ``h``-day embargo). The best validation parameters are kept. With ``checkpoint_dir`` set,
    the training state (params, optimizer state, best params, epoch, early-stopping counters) is saved with an
    orbax ``CheckpointManager`` every ``checkpoint_every`` epochs; ``resume=True`` continues from the latest one.

Horizon
    One model per horizon: ``horizon`` is a constructor argument and ``forecast(..., horizon)`` must be given the
    same value (``ValueError`` otherwise). Train one model per h (the evaluation app does). Optionally
    ``aux_horizons`` adds auxiliary output heads (other horizons, loss weight ``aux_weight``) that share the trunk
    during training (multi-task regularisation); forecasts always come from the main head.

Inputs
    ``fit`` / ``forecast`` take ``{asset: features}`` frames from ``predictive.features.build_features`` (columns
    ``log_return``, ``rv``, ``rv_7``, ``rv_30``, ``garman_klass`` and funding columns if present). Units: log-returns,
    variances in log-return^2 per day.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import nnx

from predictive.features import forward_targets
from predictive.base import DEFAULT_LEVELS, InsufficientDataError, VolatilityForecast, VolatilityModel, mixture_quantiles

__all__ = ["RegimeNet", "RegimeNetConfig", "RegimeNetwork", "mixture_nll", "qlike"]

jax.config.update("jax_enable_x64", True)

_EPS = 1e-12
# feature name -> transform applied before standardisation; "log" = log(x + eps), "raw" = as is, "hourly" = 1 where
# a source-flag column (rv_source) starts with "hourly" (RV from hourly bars rather than a range estimator)
_DEFAULT_FEATURES: tuple[tuple[str, str], ...] = (
    ("log_return", "raw"),
    ("rv", "log"),
    ("garman_klass", "log"),
    ("rv_7", "log"),
    ("rv_30", "log"),
)

# funding features used when present (predictive.features.build_features with funding); NaN before the perpetual
# existed -> standardised 0 (the training mean), i.e. "no information"
_FUNDING: tuple[str, ...] = ("funding_sum", "funding_abs")


@dataclasses.dataclass(frozen=True)
class RegimeNetConfig:
    """Hyper-parameters of :class:`RegimeNet` (all plain values so Hydra can fill them)."""

    horizon: int = 1
    n_regimes: int = 3
    lookback: int = 30
    hidden: int = 32
    embed_dim: int = 4
    features: tuple[tuple[str, str], ...] = _DEFAULT_FEATURES
    use_funding: bool = True
    qlike_weight: float = 1.0
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
    aux_horizons: tuple[int, ...] = ()  # extra training heads (multi-task); forecasts use the main head only
    aux_weight: float = 0.5             # loss weight of each auxiliary head (main head: 1)
    max_log_ratio: float | None = None  # bound |log s2_k - anchor| <= this (tanh squash); None = unbounded


def mixture_nll(y: jax.Array, logw: jax.Array, logvar: jax.Array) -> jax.Array:
    """Negative log density of ``y`` (N,) under zero-mean Gaussian mixtures (log-weights, log-variances (N, K))."""
    comp = logw - 0.5 * (math.log(2 * math.pi) + logvar + y[:, None] ** 2 * jnp.exp(-logvar))
    return -jax.nn.logsumexp(comp, axis=-1)


def qlike(proxy: jax.Array, var: jax.Array) -> jax.Array:
    """QLIKE loss ``h/s2 - ln(h/s2) - 1`` (Patton 2011), elementwise."""
    ratio = proxy / var
    return ratio - jnp.log(ratio) - 1.0


class RegimeNetwork(nnx.Module):
    """Window (N, L, F) float64, asset ids (N,) int, anchor log-variances (N, H) -> log-weights, log-variances (N, H, K).

    ``H = n_heads`` output heads share the trunk (head 0: the model's horizon; others: auxiliary horizons).
    """

    def __init__(self, lookback: int, n_features: int, n_assets: int, n_regimes: int, hidden: int,
                 embed_dim: int, *, rngs: nnx.Rngs, n_heads: int = 1, max_log_ratio: float | None = None):
        self.n_heads, self.n_regimes = n_heads, n_regimes
        self.max_log_ratio = None if max_log_ratio is None else float(max_log_ratio)
        dt = jnp.float64
        self.embed = nnx.Embed(n_assets, embed_dim, param_dtype=dt, dtype=dt, rngs=rngs)
        self.l1 = nnx.Linear(lookback * n_features + embed_dim, hidden, param_dtype=dt, dtype=dt, rngs=rngs)
        self.l2 = nnx.Linear(hidden, hidden, param_dtype=dt, dtype=dt, rngs=rngs)
        self.logits = nnx.Linear(hidden, n_heads * n_regimes, param_dtype=dt, dtype=dt, rngs=rngs)
        self.scale = nnx.Linear(hidden, n_heads * n_regimes, param_dtype=dt, dtype=dt, rngs=rngs,
                                kernel_init=nnx.initializers.zeros)
        # initial regime offsets in log-variance: spread around the anchor (calm .. stressed)
        init = np.linspace(-0.7, 0.7, n_regimes) if n_regimes > 1 else np.zeros(1)
        raw = np.concatenate([init[:1], np.log(np.expm1(np.maximum(np.diff(init), 1e-3)))])
        self.offset = nnx.Param(jnp.asarray(np.tile(raw, (n_heads, 1)), dtype=dt))

    def __call__(self, x: jax.Array, asset: jax.Array, anchor: jax.Array) -> tuple[jax.Array, jax.Array]:
        n = x.shape[0]
        z = jnp.concatenate([x.reshape(n, -1), self.embed(asset)], axis=-1)
        z = nnx.gelu(self.l1(z))
        z = nnx.gelu(self.l2(z)) + z  # residual keeps a near-linear (HAR-like) path easy to learn
        shape = (n, self.n_heads, self.n_regimes)
        logw = jax.nn.log_softmax(self.logits(z).reshape(shape), axis=-1)
        # ordered log-variances: v_1 = anchor + a_1 + u_1(z), v_k = v_{k-1} + softplus(a_k + u_k(z)), so regime 1
        # is always the calmest (identifiable regimes; ensemble members' regimes line up)
        pre = self.offset[...][None] + self.scale(z).reshape(shape)
        steps = jnp.concatenate([pre[..., :1], jax.nn.softplus(pre[..., 1:])], axis=-1)
        dev = jnp.cumsum(steps, axis=-1)
        if self.max_log_ratio is not None:  # monotone squash keeps the order, bounds extrapolation far from data
            dev = self.max_log_ratio * jnp.tanh(dev / self.max_log_ratio)
        logvar = anchor[..., None] + dev
        return logw, logvar


def _loss(model: RegimeNetwork, x, a, anchor, y, proxy, qlike_weight, head_weights):
    """Mean over samples of sum_j head_weights[j] * (mixture NLL + qlike_weight * QLIKE) of head j; y, proxy (N, H)."""
    logw, logvar = model(x, a, anchor)
    n, H, K = logw.shape
    nll = mixture_nll(y.reshape(-1), logw.reshape(-1, K), logvar.reshape(-1, K)).reshape(n, H)
    var = jnp.exp(jax.nn.logsumexp(logw + logvar, axis=-1))
    per_head = jnp.mean(nll + qlike_weight * qlike(proxy, var), axis=0)
    return jnp.sum(per_head * head_weights)


class RegimeNet(VolatilityModel):
    """Pooled learned regime-mixture volatility model (see module docstring).

    Args (besides :class:`RegimeNetConfig` fields, which can all be given as keywords):
        checkpoint_dir: orbax checkpoint directory for the training state, or None (no checkpoints).
        checkpoint_every: save every this many epochs (and at the end).
        resume: continue from the latest checkpoint in ``checkpoint_dir`` if there is one.
        progress: show a tqdm progress bar with the running losses.

    Raises:
        ValueError: horizon < 1, n_regimes < 1, lookback < 1, val_frac outside (0, 1), n_ensemble < 1.
    """

    name = "regime_net"

    def __init__(self, *, checkpoint_dir: str | None = None, checkpoint_every: int = 10, resume: bool = False,
                 progress: bool = True, **kwargs):
        if "features" in kwargs and kwargs["features"] is not None:
            kwargs["features"] = tuple((str(c), str(t)) for c, t in kwargs["features"])
        elif "features" in kwargs:
            kwargs.pop("features")
        if kwargs.get("aux_horizons") is not None:
            kwargs["aux_horizons"] = tuple(int(x) for x in kwargs["aux_horizons"])
        self.config = cfg = RegimeNetConfig(**kwargs)
        for field, value, ok in (("horizon", cfg.horizon, cfg.horizon >= 1),
                                 ("n_regimes", cfg.n_regimes, cfg.n_regimes >= 1),
                                 ("lookback", cfg.lookback, cfg.lookback >= 1),
                                 ("n_ensemble", cfg.n_ensemble, cfg.n_ensemble >= 1),
                                 ("max_epochs", cfg.max_epochs, cfg.max_epochs >= 1),
                                 ("batch_size", cfg.batch_size, cfg.batch_size >= 1),
                                 ("val_frac", cfg.val_frac, 0.0 < cfg.val_frac < 1.0),
                                 ("qlike_weight", cfg.qlike_weight, cfg.qlike_weight >= 0.0),
                                 ("aux_horizons", cfg.aux_horizons, all(x >= 1 for x in cfg.aux_horizons)),
                                 ("aux_weight", cfg.aux_weight, cfg.aux_weight >= 0.0),
                                 ("max_log_ratio", cfg.max_log_ratio,
                                  cfg.max_log_ratio is None or cfg.max_log_ratio > 0)):
            if not ok:
                raise ValueError(f"RegimeNet: invalid {field}={value!r}")
        for col, tr in cfg.features:
            if tr not in ("log", "raw", "hourly"):
                raise ValueError(f"RegimeNet: feature transform for {col!r} must be 'log', 'raw' or 'hourly', "
                                 f"got {tr!r}")
        self.horizon = cfg.horizon
        self.n_regimes = cfg.n_regimes
        self.heads = (cfg.horizon,) + tuple(x for x in cfg.aux_horizons if x != cfg.horizon)
        self.min_history = cfg.lookback + max(self.heads) + 50
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = int(checkpoint_every)
        self.resume = bool(resume)
        self.progress = bool(progress)
        self.assets_: list[str] | None = None
        self.columns_: list[tuple[str, str]] | None = None
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.members_: list[RegimeNetwork] = []
        self.history_: list[dict] = []
        self.train_seconds_: float | None = None

    # ------------------------------------------------------------------ data
    def _columns(self, frames: Mapping[str, pd.DataFrame]) -> list[tuple[str, str]]:
        cols = list(self.config.features)
        if self.config.use_funding:
            cols += [(c, "raw") for c in _FUNDING if any(c in f.columns for f in frames.values())]
        for asset, f in frames.items():
            missing = [c for c, _ in cols if c not in f.columns and not c.startswith("funding")]
            if missing:
                raise ValueError(f"RegimeNet: features of {asset!r} lack columns {missing}")
        return cols

    def _raw_matrix(self, f: pd.DataFrame) -> np.ndarray:
        """(T, F) transformed, unstandardised features; missing values forward-filled then NaN left for the mean."""
        out = np.empty((len(f), len(self.columns_)), dtype=np.float64)
        for j, (c, tr) in enumerate(self.columns_):
            if c not in f.columns:
                out[:, j] = np.nan
                continue
            if tr == "hourly":  # 1 where the day's value came from hourly bars (rv_source), else 0
                out[:, j] = f[c].astype(str).str.startswith("hourly").to_numpy(np.float64)
                continue
            v = pd.to_numeric(f[c], errors="coerce").astype(np.float64).ffill().to_numpy()
            out[:, j] = np.log(np.maximum(v, 0.0) + _EPS) if tr == "log" else v
        return out

    @staticmethod
    def _anchor(f: pd.DataFrame, h: int) -> np.ndarray:
        rv7 = pd.to_numeric(f["rv_7"], errors="coerce").astype(np.float64)
        # causal fallback while the 7-day window fills: expanding mean of rv up to t (never a later value)
        early = pd.to_numeric(f["rv"], errors="coerce").astype(np.float64).expanding(min_periods=1).mean()
        rv7 = rv7.where(np.isfinite(rv7), early).ffill().fillna(1e-4).to_numpy()
        return np.log(h * np.maximum(rv7, 1e-10))

    def _windows(self, z: np.ndarray) -> np.ndarray:
        """(T, F) standardised -> (T, L, F) windows ending at each row; the first L-1 rows repeat row 0 (edge pad)."""
        L = self.config.lookback
        padded = np.concatenate([np.repeat(z[:1], L - 1, axis=0), z], axis=0)
        idx = np.arange(len(z))[:, None] + np.arange(L)[None, :]
        return padded[idx]

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        z = (raw - self.mean_) / self.std_
        return np.clip(np.nan_to_num(z, nan=0.0), -10.0, 10.0)

    @staticmethod
    def _targets(f: pd.DataFrame, h: int) -> tuple[np.ndarray, np.ndarray]:
        """h-day forward log return and realised-variance proxy aligned at origin t (NaN where unknown)."""
        t = forward_targets(f, h)
        return t["ret_h"].to_numpy(np.float64), t["rv_h"].to_numpy(np.float64)

    def _check_frames(self, features: Mapping[str, pd.DataFrame]) -> None:
        if not isinstance(features, Mapping) or not features:
            raise ValueError("RegimeNet: features must be a non-empty mapping {asset: DataFrame}")
        for asset, f in features.items():
            for c in ("log_return", "rv", "rv_7"):
                if c not in f.columns:
                    raise ValueError(f"RegimeNet: features of {asset!r} lack column {c!r}")

    # ------------------------------------------------------------------ fit
    def fit(self, features: Mapping[str, pd.DataFrame]) -> "RegimeNet":
        """Train on all rows given (pooled over assets). Returns self.

        Raises:
            InsufficientDataError: an asset has fewer than ``min_history`` rows.
            ValueError: missing feature columns.
        """
        self._check_frames(features)
        cfg = self.config
        for asset, f in features.items():
            if len(f) < self.min_history:
                raise InsufficientDataError(
                    f"RegimeNet: asset {asset!r} has {len(f)} rows, needs at least min_history={self.min_history}")
        self.assets_ = list(features)
        self.columns_ = self._columns(features)
        raws = {a: self._raw_matrix(f) for a, f in features.items()}
        stacked = np.concatenate(list(raws.values()), axis=0)
        n_obs = np.isfinite(stacked).sum(axis=0)
        filled = np.where(np.isfinite(stacked), stacked, 0.0)
        self.mean_ = filled.sum(axis=0) / np.maximum(n_obs, 1)  # a column with no data (funding before 2019) -> 0
        std = np.sqrt(np.where(np.isfinite(stacked), (stacked - self.mean_) ** 2, 0.0).sum(axis=0)
                      / np.maximum(n_obs, 1))
        self.std_ = np.where(np.isfinite(std) & (std > 0), std, 1.0)

        xs, ids, anchors, ys, vs, dates = [], [], [], [], [], []
        for i, (asset, f) in enumerate(features.items()):
            w = self._windows(self._standardise(raws[asset]))
            tg = [self._targets(f, hh) for hh in self.heads]
            fr = np.stack([t[0] for t in tg], axis=1)  # (T, H)
            fv = np.stack([t[1] for t in tg], axis=1)
            anc = np.stack([self._anchor(f, hh) for hh in self.heads], axis=1)
            ok = (np.isfinite(fr) & np.isfinite(fv) & (fv > 0) & np.isfinite(anc)).all(axis=1)
            ok[: cfg.lookback - 1] = False  # only full windows for training
            xs.append(w[ok]), ids.append(np.full(ok.sum(), i)), anchors.append(anc[ok])
            ys.append(fr[ok]), vs.append(fv[ok]), dates.append(f.index.to_numpy()[ok])
        X, A, ANC = np.concatenate(xs), np.concatenate(ids), np.concatenate(anchors)
        Y, V, D = np.concatenate(ys), np.concatenate(vs), np.concatenate(dates)
        udates = np.unique(D)
        cut = udates[int(len(udates) * (1.0 - cfg.val_frac))]
        val = D >= cut
        # embargo: a training target r_{t+1..t+h} must end before the validation block starts
        embargo = udates[max(int(len(udates) * (1.0 - cfg.val_frac)) - max(self.heads), 0)]
        train = D < embargo
        if train.sum() < cfg.batch_size or val.sum() < 1:
            raise InsufficientDataError(
                f"RegimeNet: {int(train.sum())} training / {int(val.sum())} validation samples are too few "
                f"(batch_size={cfg.batch_size})")
        data_tr = tuple(jnp.asarray(v[train]) for v in (X, A, ANC, Y, V))
        data_va = tuple(jnp.asarray(v[val]) for v in (X, A, ANC, Y, V))
        t0 = time.perf_counter()
        self.members_, self.history_ = [], []
        for m in range(cfg.n_ensemble):
            model, hist = self._train_one(cfg.seed + 1000 * m, data_tr, data_va, len(self.assets_),
                                          X.shape[-1], member=m)
            self.members_.append(model)
            self.history_.append(hist)
        self.train_seconds_ = time.perf_counter() - t0
        return self

    def _train_one(self, seed, data_tr, data_va, n_assets, n_features, member=0):
        cfg = self.config
        model = RegimeNetwork(cfg.lookback, n_features, n_assets, cfg.n_regimes, cfg.hidden, cfg.embed_dim,
                              rngs=nnx.Rngs(seed), n_heads=len(self.heads), max_log_ratio=cfg.max_log_ratio)
        head_w = jnp.asarray([1.0] + [cfg.aux_weight] * (len(self.heads) - 1))
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
        qw = float(cfg.qlike_weight)

        def loss_fn(p, batch):
            return _loss(nnx.merge(graphdef, p), *batch, qw, head_w)

        @jax.jit
        def run_epoch(p, s, perm):
            def step(carry, idx):
                p, s = carry
                batch = tuple(d[idx] for d in data_tr)
                loss, g = jax.value_and_grad(loss_fn)(p, batch)
                upd, s = tx.update(g, s, p)
                return (optax.apply_updates(p, upd), s), loss
            (p, s), losses = jax.lax.scan(step, (p, s), perm.reshape(steps_per_epoch, bs))
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
            bar = tqdm(total=cfg.max_epochs, initial=start, desc=f"RegimeNet h={cfg.horizon} m={member}",
                       leave=False)
        last = start - 1  # last completed epoch
        stop_at = getattr(self, "_interrupt_after", None)  # test hook: simulate a killed run after this epoch
        for epoch in range(start, cfg.max_epochs):
            if bad >= cfg.patience:
                break
            if stop_at is not None and epoch > stop_at:
                break
            rng = np.random.default_rng([seed, epoch])
            perm = jnp.asarray(rng.permutation(n_tr)[: steps_per_epoch * bs])
            p, s, tr_loss = run_epoch(p, s, perm)
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
    def predict_mixture(self, features: Mapping[str, pd.DataFrame]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{asset: (weights (T, K*n_ensemble), variances (T, K*n_ensemble))} of the h-day log return at every row."""
        if not self.members_:
            raise RuntimeError("RegimeNet: call fit() before forecast()")
        self._check_frames(features)
        out = {}
        for asset, f in features.items():
            if asset not in self.assets_:
                raise ValueError(f"RegimeNet: asset {asset!r} was not in the training set {self.assets_}")
            x = jnp.asarray(self._windows(self._standardise(self._raw_matrix(f))))
            a = jnp.full((len(f),), self.assets_.index(asset))
            anc = jnp.asarray(np.stack([self._anchor(f, hh) for hh in self.heads], axis=1))
            ws, vs = [], []
            for model in self.members_:
                logw, logvar = _apply(model, x, a, anc)
                logw, logvar = logw[:, 0], logvar[:, 0]  # main head (the model's horizon)
                ws.append(np.exp(np.asarray(logw)) / len(self.members_))
                vs.append(np.exp(np.asarray(logvar)))
            out[asset] = (np.concatenate(ws, axis=1), np.concatenate(vs, axis=1))
        return out

    def forecast(self, features: Mapping[str, pd.DataFrame], horizon: int) -> dict[str, VolatilityForecast]:
        """Mixture forecast at every row t (uses rows <= t only). ``horizon`` must equal the constructor's."""
        if int(horizon) != self.horizon:
            raise ValueError(f"RegimeNet: trained for horizon={self.horizon}, forecast asked horizon={horizon}")
        res = {}
        K = self.n_regimes
        for asset, (w, v) in self.predict_mixture(features).items():
            var = np.sum(w * v, axis=1)
            q = mixture_quantiles(w, np.sqrt(v), DEFAULT_LEVELS)
            # regime probabilities: sum the ensemble members' regime k (regimes are ordered, so they align)
            probs = w.reshape(len(w), -1, K).sum(axis=1)
            res[asset] = VolatilityForecast(index=features[asset].index, horizon=self.horizon,
                                            variance=var, quantiles=q, regime_probs=probs)
        return res


@nnx.jit
def _apply(model, x, a, anc):
    return model(x, a, anc)
