"""Gaussian HMM: log-likelihood equal to hmmlearn's at the same parameters, EM monotone, filtered probabilities
equal to a plain-Python forward recursion, h-step moments equal to brute-force path enumeration."""
import itertools
import math

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM as RefHMM

from predictive.data import load_ohlcv
from predictive.features import build_features
from predictive.hmm import GaussianHMM, _horizon_components, em_fit, hmm_filter, hmm_loglikelihood
from predictive.intraday import load_hourly


@pytest.fixture(scope="module")
def feats():
    daily = load_ohlcv("BTC", start="2018-01-01", end="2020-12-31")
    hourly = load_hourly("BTC", start="2018-01-01", end="2020-12-31 23:00")
    return {"BTC": build_features(daily, hourly)}


@pytest.fixture(scope="module")
def obs(feats):
    f = feats["BTC"].iloc[1:]
    return np.stack([f["log_return"].to_numpy(), np.log(f["rv"].to_numpy())], axis=1)


@pytest.fixture(scope="module")
def fitted(obs):
    return em_fit(obs, 3, n_init=2, max_iter=150, seed=1)


def ref_score(params, x):
    ref = RefHMM(n_components=params["pi"].size, covariance_type="diag")
    ref.n_features = x.shape[1]
    ref.startprob_, ref.transmat_ = params["pi"], params["A"]
    ref.means_, ref.covars_ = params["mu"], params["var"]
    return ref.score(x)


def test_loglik_equals_hmmlearn_at_fitted_params(obs, fitted):
    params, ll, _ = fitted
    ref = ref_score(params, obs)
    assert abs(ll - ref) <= 1e-6 * abs(ref)
    assert abs(hmm_loglikelihood(params, obs) - ref) <= 1e-6 * abs(ref)


@pytest.mark.parametrize("k, d, seed", [(1, 1, 0), (2, 1, 1), (4, 2, 2)])
def test_loglik_equals_hmmlearn_at_random_params(obs, k, d, seed):
    rng = np.random.default_rng(seed)
    x = obs[:700, :d]
    A = rng.dirichlet(np.ones(k) * 2, size=k) + np.eye(k)
    params = {"pi": rng.dirichlet(np.ones(k)), "A": A / A.sum(1, keepdims=True),
              "mu": x.mean(0) + rng.normal(0, 1, (k, d)) * x.std(0),
              "var": x.var(0) * rng.uniform(0.2, 3, (k, d))}
    ref = ref_score(params, x)
    assert abs(hmm_loglikelihood(params, x) - ref) <= 1e-6 * abs(ref)


def test_em_log_likelihood_never_decreases(fitted):
    _, ll, histories = fitted
    for hist in histories:
        steps = np.diff(hist)
        assert np.all(steps >= -1e-9 * abs(hist[-1])), steps.min()
        assert len(hist) > 5
    assert ll == pytest.approx(max(h[-1] for h in histories))


def test_em_iterations_equal_hmmlearn_from_same_start(obs):
    """With hmmlearn's priors switched off (pure maximum likelihood) and regime means free, N Baum-Welch steps
    from the same starting point give the same parameters."""
    x = obs[:600]
    init = {"pi": np.array([0.5, 0.3, 0.2]),
            "A": np.array([[0.90, 0.07, 0.03], [0.10, 0.85, 0.05], [0.05, 0.15, 0.80]]),
            "mu": np.array([[0.001, -8.0], [0.0, -7.0], [-0.002, -6.0]]),
            "var": np.array([[2e-4, 0.8], [1e-3, 0.6], [4e-3, 0.7]])}
    ours, ll, (hist,) = em_fit(x, 3, zero_mean_cols=(), init=init, max_iter=25, tol=-np.inf)
    ref = RefHMM(n_components=3, covariance_type="diag", init_params="", params="stmc", n_iter=25,
                 tol=-np.inf, covars_prior=0.0, covars_weight=1.0, means_weight=0.0, min_covar=0.0)
    ref.n_features = 2
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = init["pi"], init["A"], init["mu"], init["var"]
    ref.fit(x)
    ref_var = np.array([np.diag(c) for c in ref.covars_])  # hmmlearn returns full matrices for "diag"
    order = np.argsort(ref_var[:, 0])
    np.testing.assert_allclose(ours["mu"], ref.means_[order], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours["var"], ref_var[order], rtol=1e-6)
    np.testing.assert_allclose(ours["A"], ref.transmat_[np.ix_(order, order)], rtol=1e-6, atol=1e-12)
    assert len(hist) == 26 and ll == pytest.approx(ref.score(x), rel=1e-9)


def test_zero_mean_and_regime_order(fitted):
    params, _, _ = fitted
    assert np.all(params["mu"][:, 0] == 0.0)
    assert np.all(np.diff(params["var"][:, 0]) > 0)  # calmest regime first
    np.testing.assert_allclose(params["A"].sum(1), 1.0, rtol=1e-12)


def test_filtered_probabilities_equal_python_forward(obs, fitted):
    params, _, _ = fitted
    x = obs[:300]
    pi, A, mu, var = (np.asarray(params[k]) for k in ("pi", "A", "mu", "var"))
    K = pi.size

    def dens(xt, k):
        return math.prod(math.exp(-0.5 * (xt[j] - mu[k, j]) ** 2 / var[k, j]) / math.sqrt(2 * math.pi * var[k, j])
                         for j in range(xt.size))

    ref, f = [], None
    for t in range(x.shape[0]):
        pred = list(pi) if f is None else [sum(f[i] * A[i, j] for i in range(K)) for j in range(K)]
        joint = [pred[k] * dens(x[t], k) for k in range(K)]
        s = sum(joint)
        f = [v / s for v in joint]
        ref.append(f)
    np.testing.assert_allclose(hmm_filter(params, x), np.array(ref), rtol=1e-8, atol=1e-12)


def test_h_step_moments_equal_path_enumeration():
    A = np.array([[0.9, 0.1], [0.3, 0.7]])
    mu = np.array([[0.001], [-0.004]])
    var = np.array([[1e-4], [2.5e-3]])
    h = 4
    m, v = _horizon_components(A, mu, var, h)
    for k in range(2):
        mean = second = 0.0
        for path in itertools.product(range(2), repeat=h - 1):
            states = (k, *path)
            p = math.prod(A[a, b] for a, b in zip(states[:-1], states[1:]))
            pm = sum(mu[s, 0] for s in states)
            pv = sum(var[s, 0] for s in states)
            mean += p * pm
            second += p * (pv + pm**2)
        assert m[k, 0] == pytest.approx(mean, rel=1e-12)
        assert v[k, 0] == pytest.approx(second - mean**2, rel=1e-12)


def test_model_forecast_uses_filtered_probabilities(feats):
    model = GaussianHMM(n_regimes=2, n_init=1, max_iter=60).fit(feats)
    p = model.params_["BTC"]
    fc1 = model.forecast(feats, 1)["BTC"]
    f = feats["BTC"]
    x = np.stack([f["log_return"].to_numpy()[1:], np.log(f["rv"].to_numpy()[1:])], axis=1)
    filt = hmm_filter(p, x)
    np.testing.assert_allclose(fc1.regime_probs[1:], filt, rtol=1e-12)
    np.testing.assert_allclose(fc1.regime_probs[0], p["pi"])
    w = filt @ p["A"]
    np.testing.assert_allclose(fc1.variance[1:], w @ p["var"][:, 0], rtol=1e-12)
    # 1% / 99% quantiles solve the mixture CDF
    from scipy.stats import norm
    for level in (0.01, 0.99):
        q = fc1.quantiles[level][1:]
        cdf = (w * norm.cdf(q[:, None] / np.sqrt(p["var"][:, 0])[None, :])).sum(1)
        np.testing.assert_allclose(cdf, level, atol=1e-9)


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_k_rejected(k):
    with pytest.raises(ValueError) as err:
        GaussianHMM(n_regimes=k)
    assert repr(k) in str(err.value)


def test_too_short(feats):
    from predictive.base import InsufficientDataError
    with pytest.raises(InsufficientDataError, match="needs at least 100"):
        GaussianHMM().fit({"BTC": feats["BTC"].iloc[:50]})
