"""dYdX v4 rules: hand-computed worked examples, int64 kernel vs Python-int reference, bad input."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from margin.rules.venues import dydx
from margin.rules.venues.dydx import (
    LiquidityTier,
    Risk,
    account_risk,
    account_risk_batched,
    adjusted_initial_margin_ppm,
    base_to_quote_quantums,
    fillable_price,
    fillable_price_batched,
    maintenance_margin_ppm,
    position_margin_requirements,
)
from margin.rules.venues._validate import VenueInputError

M = 1_000_000
USD = 1_000_000  # quote quantums per USDC
CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "margin"
N_ACC, N_MKT = 16, 4  # one kernel shape for every batched test (one compilation)


def _load_conf():
    """Compose the config group file with Hydra (as the entry points do)."""
    with initialize_config_dir(version_base=None, config_dir=str(CONF_DIR)):
        return OmegaConf.to_container(compose(config_name="dydx_v4"), resolve=True)


@pytest.fixture(scope="module")
def tiers():
    return dydx.tiers_from_config(_load_conf())


def test_config_has_reference_tiers(tiers):
    # REFERENCE.md: Large 2%/60%/none; Mid 5%/60%/$40M-$100M; Small 10%/50%/$20M-$50M; Long-Tail 20%/50%/$5M-$10M.
    want = {"Large-Cap": (20_000, 600_000, 0, 0), "Mid-Cap": (50_000, 600_000, 40 * USD * 10**6, 100 * USD * 10**6),
            "Small-Cap": (100_000, 500_000, 20 * USD * 10**6, 50 * USD * 10**6),
            "Long-Tail": (200_000, 500_000, 5 * USD * 10**6, 10 * USD * 10**6)}
    got = {k: (t.initial_margin_ppm, t.maintenance_fraction_ppm, t.open_interest_lower_cap,
               t.open_interest_upper_cap) for k, t in tiers.items()}
    assert got == want
    cfg = _load_conf()
    assert cfg["liquidations"]["spread_to_maintenance_margin_ratio_ppm"] == 1_500_000


def test_maintenance_fraction_rounds_down(tiers):
    assert maintenance_margin_ppm(tiers["Mid-Cap"]) == 30_000  # 5% x 60%
    assert maintenance_margin_ppm(tiers["Long-Tail"]) == 100_000
    # 33_333 x 0.6 = 19_999.8 -> 19_999
    assert maintenance_margin_ppm(LiquidityTier("x", 33_333, 600_000)) == 19_999


# Published test vectors of dydxprotocol/v4-chain protocol/x/perpetuals/types/liquidity_tier_test.go
# (TestLiquidityTierGetMaintenanceMarginPpm, TestGetInitialMarginQuoteQuantums, TestGetAdjustedInitialMarginPpm).
@pytest.mark.parametrize("imf,mf,want", [
    (150_000, 800_000, 120_000), (450_000, 770_000, 346_500), (637_239, 289_284, 184_343),
    (1_000_000, 1_000_000, 1_000_000), (0, 1_000_000, 0), (0, 0, 0), (1_000_000, 0, 0),
])
def test_v4_chain_maintenance_margin_vectors(imf, mf, want):
    assert maintenance_margin_ppm(LiquidityTier("t", imf, mf)) == want


@pytest.mark.parametrize("imf,lo,hi,oi,quote,want", [
    (200_000, 0, 0, 0, 500_000, 100_000),
    (500_000, 0, 0, 0, 1_000_000, 500_000),
    (100_000, 0, 0, 0, 1, 1),
    (567_243, 0, 0, 0, 123_456, 70_030),
    (200_000, 0, 0, 1_500_000_000_000, 500_000, 100_000),
    (200_000, 1_000_000_000_000, 2_000_000_000_000, 1_500_000_000_000, 500_000, 300_000),
    (200_000, 25_000_000_000_000, 50_000_000_000_000, 80_000_000_000_000, 500_000, 500_000),
    (200_000, 25_000_000_000_000, 50_000_000_000_000, 25_000_000_000_000, 500_000, 100_000),
    (200_000, 25_000_000_000_000, 60_000_000_000_000, 28_123_456_789_123, 500_000, 135_697),
])
def test_v4_chain_initial_margin_vectors(imf, lo, hi, oi, quote, want):
    assert position_margin_requirements(quote, LiquidityTier("t", imf, 0, lo, hi), oi)[0] == want


@pytest.mark.parametrize("oi,lo,hi,want", [
    (0, 1_000_000, 2_000_000, 200_000), (1_500_000, 1_000_000, 2_000_000, 600_000),
    (1_234_567, 1_000_000, 2_000_000, 387_653), (1_000_000, 1_000_000, 2_000_000, 200_000),
    (2_000_000, 1_000_000, 2_000_000, 1_000_000), (2_500_000, 1_000_000, 2_000_000, 1_000_000),
    (1_500_000, 0, 0, 200_000),
])
def test_v4_chain_adjusted_imf_vectors(oi, lo, hi, want):
    assert adjusted_initial_margin_ppm(LiquidityTier("t", 200_000, 0, lo, hi), oi) == want


def test_v4_chain_vectors_through_int64_kernel():
    # the same IMR vectors through the batched kernel: one market per vector (exponent 0, price 1),
    # padded to the (N_ACC, N_MKT) shape used below so the jitted kernel compiles once
    vec = [(200_000, 1_000_000_000_000, 2_000_000_000_000, 1_500_000_000_000, 500_000, 300_000),
           (200_000, 25_000_000_000_000, 60_000_000_000_000, 28_123_456_789_123, 500_000, 135_697),
           (567_243, 0, 0, 0, 123_456, 70_030), (100_000, 0, 0, 0, 1, 1)]
    imf, lo, hi, oi, quote, want = (list(c) for c in zip(*vec))
    q = np.zeros((N_ACC, N_MKT), np.int64)
    q[0] = quote
    r = account_risk_batched(np.zeros(N_ACC, np.int64), q, [1] * N_MKT, [-6] * N_MKT, [0] * N_MKT, imf,
                             [0] * N_MKT, lo, hi, oi)
    assert np.asarray(r.position_imr)[0].tolist() == want


def test_oi_scaling_half_way_and_edges(tiers):
    mid = tiers["Mid-Cap"]
    lo, hi = mid.open_interest_lower_cap, mid.open_interest_upper_cap
    half = (lo + hi) // 2
    assert adjusted_initial_margin_ppm(mid, half) == 50_000 + (M - 50_000) // 2 == 525_000
    assert adjusted_initial_margin_ppm(mid, lo) == 50_000  # OI <= lower: base IMF
    assert adjusted_initial_margin_ppm(mid, hi) == M  # OI >= upper: 100%
    assert adjusted_initial_margin_ppm(mid, hi + 1) == M
    assert adjusted_initial_margin_ppm(mid, lo + 1) == 50_000  # 950_000 * 1 // 6e13 = 0
    # floor: IMF 20_001 half-way: 20_001 + 979_999 // 2 = 20_001 + 489_999 (not 490_000)
    t = LiquidityTier("odd", 20_001, 500_000, 0, 10)
    assert adjusted_initial_margin_ppm(t, 5) == 20_001 + 489_999
    # upper cap 0 disables scaling whatever the OI
    assert adjusted_initial_margin_ppm(tiers["Large-Cap"], 10**18) == 20_000


def test_position_requirements_round_up_and_mmr_uses_base_imf(tiers):
    mid = tiers["Mid-Cap"]
    # $10,000 notional, OI half-way: IMR at 52.5%, MMR from the base IMF: 10_000 x 5% x 60% = $300.
    n = 10_000 * USD
    half = (mid.open_interest_lower_cap + mid.open_interest_upper_cap) // 2
    imr, mmr = position_margin_requirements(n, mid, half)
    assert imr == n * 525_000 // M == 5_250 * USD
    assert mmr == 300 * USD
    assert mmr != -(-n * maintenance_margin_ppm(LiquidityTier("s", 525_000, 600_000)) // M)
    # shorts have the same requirements
    assert position_margin_requirements(-n, mid, half) == (imr, mmr)
    # IMR rounds up: 1_000_001 x 5% = 50_000.05 -> 50_001
    assert position_margin_requirements(1_000_001, mid)[0] == 50_001
    # MMR = ceil(ceil(33 x 5%) x 60%) = ceil(2 x 0.6) = 2, not ceil(33 x 3%) = 1
    assert position_margin_requirements(33, mid) == (2, 2)


def test_user_imf_raises_imr_not_mmr(tiers):
    mid = tiers["Mid-Cap"]
    n = 1_000 * USD
    assert position_margin_requirements(n, mid, 0, 100_000) == (100 * USD, 30 * USD)
    # a user IMF below the scaled IMF is ignored
    assert position_margin_requirements(n, mid, 0, 10_000) == (50 * USD, 30 * USD)


def test_account_tests_at_boundaries(tiers):
    large = tiers["Large-Cap"]
    n = 50_000 * USD  # 1 BTC at $50,000: IMR $1,000, MMR $600
    assert account_risk(0, [n], [large]) == Risk(n, 1_000 * USD, 600 * USD)
    at_mmr = Risk(600 * USD, 1_000 * USD, 600 * USD)
    assert not at_mmr.is_liquidatable() and not dydx.is_liquidatable(at_mmr)
    below = Risk(600 * USD - 1, 1_000 * USD, 600 * USD)
    assert dydx.is_liquidatable(below)
    # no positions: MMR 0 -> never liquidatable, even with negative net collateral
    assert not dydx.is_liquidatable(Risk(-5, 0, 0))
    assert dydx.is_initial_collateralized(Risk(1_000, 1_000, 600))
    assert not dydx.is_initial_collateralized(Risk(999, 1_000, 600))
    # net collateral = quote balance + signed notionals
    r = account_risk(-45_000 * USD, [n, -10_000 * USD], [large, large])
    assert r.nc == -5_000 * USD
    assert r.imr == 1_000 * USD + 200 * USD and r.mmr == 600 * USD + 120 * USD


def test_base_to_quote_truncates_towards_zero():
    # BTC-USD: atomic resolution -10, price exponent -5: 1 BTC = 1e10 base quantums at $50,000.
    assert base_to_quote_quantums(10**10, -10, 5_000_000_000, -5) == 50_000 * USD
    # 1 base quantum at price 1_999_999_999: 1.999.. quote quantums -> 1 (long) / -1 (short)
    assert base_to_quote_quantums(1, -10, 1_999_999_999, -5) == 1
    assert base_to_quote_quantums(-1, -10, 1_999_999_999, -5) == -1
    assert base_to_quote_quantums(7, -6, 3, 2) == 7 * 3 * 10**2  # exponent 2 - 6 + 6 = 2: multiply


def test_fillable_price_worked_example(tiers):
    large = tiers["Large-Cap"]
    ps = 10**10  # long 1 BTC at $50,000
    pnnv = base_to_quote_quantums(ps, -10, 5_000_000_000, -5)
    _, pmmr = position_margin_requirements(pnnv, large)
    assert pmmr == 600 * USD
    # TNC = $300, TMMR = $600 -> ABR = 1 - 300/600 = 0.5; spread = 0.5 x 1.5 x $600 = $450
    p = fillable_price(pnnv, pmmr, 300 * USD, pmmr, ps)
    assert p == Fraction(50_000 * USD - 450 * USD, ps)
    assert p * 10**4 == 49_550  # USDC per BTC: x 10**(10 - 6)
    # short: price above oracle
    assert fillable_price(-pnnv, pmmr, 300 * USD, pmmr, -ps) * 10**4 == 50_450
    # TNC < 0 -> ABR clamps to 1; TNC >= TMMR -> ABR 0 (oracle price)
    assert fillable_price(pnnv, pmmr, -1, pmmr, ps) * 10**4 == 50_000 - 900
    assert fillable_price(pnnv, pmmr, pmmr, pmmr, ps) * 10**4 == 50_000
    # BA scales ABR: BA 0.5 -> ABR 0.25
    assert fillable_price(pnnv, pmmr, 300 * USD, pmmr, ps, ba_ppm=500_000) * 10**4 == 50_000 - 225
    with pytest.raises(VenueInputError, match="tmmr"):
        fillable_price(pnnv, pmmr, 0, 0, ps)
    with pytest.raises(VenueInputError, match="position_size"):
        fillable_price(pnnv, pmmr, 0, pmmr, 0)


# Vectors of TestGetFillablePrice (protocol/x/clob/keeper/liquidations_test.go; read from a stored copy of a
# v4-chain fork carrying the same test): BTC at $50,000, atomic resolution -8, tier IMF 20 % / MMF 10 %,
# default config BA 1.0, SMMR 0.1. Prices are quote quantums per base quantum.
BTC_PS = 10_000_000  # 0.1 BTC in base quantums


def _btc_tier():
    return LiquidityTier("20/10", 200_000, 500_000)


@pytest.mark.parametrize("sign,quote_usd,ba,smmr,want", [
    (1, -4_501, 1_000_000, 100_000, Fraction(49_999, 100)),
    (1, -4_501, 2_000_000, 100_000, Fraction(49_998, 100)),
    (1, -4_501, 1_000_000, 200_000, Fraction(49_998, 100)),
    (-1, 5_499, 1_000_000, 100_000, Fraction(50_001, 100)),
    (-1, 5_499, 2_000_000, 100_000, Fraction(50_002, 100)),
    (-1, 5_499, 1_000_000, 200_000, Fraction(50_002, 100)),
    (1, -5_000, 1_000_000, 100_000, Fraction(495)),  # at the bankruptcy price
    (-1, 5_000, 1_000_000, 100_000, Fraction(505)),
    (1, -5_500, 1_000_000, 100_000, Fraction(495)),  # below bankruptcy: ABR clamps to 1
    (-1, 4_500, 1_000_000, 100_000, Fraction(505)),
    (1, -4_501, 2**32 - 1, 100_000, Fraction(495)),
    (1, -4_501, 1_000_000, 1, Fraction(4_999_999_999, 10_000_000)),
    (1, -4_501, 1_000_000, 1_000_000, Fraction(49_990, 100)),
])
def test_v4_chain_fillable_price_vectors(sign, quote_usd, ba, smmr, want):
    ps = sign * BTC_PS
    pnnv = base_to_quote_quantums(ps, -8, 5_000_000_000, -5)  # $50,000 with price exponent -5
    r = account_risk(quote_usd * USD, [pnnv], [_btc_tier()])
    _, pmmr = position_margin_requirements(pnnv, _btc_tier())
    assert fillable_price(pnnv, pmmr, r.nc, r.mmr, ps, smmr_ppm=smmr, ba_ppm=ba) == want
    got = fillable_price_batched([[pnnv]], [[pmmr]], [r.nc], [r.mmr], [[ps]], smmr_ppm=smmr, ba_ppm=ba)
    assert float(got[0, 0]) == pytest.approx(float(want), rel=1e-14)


def test_v4_chain_fillable_price_two_positions():
    # 0.004 BTC long ($200) + 0.1 ETH long ($300, atomic resolution -9), quote -$490: ETH fills at $2,976
    btc = base_to_quote_quantums(400_000, -8, 5_000_000_000, -5)
    eth = base_to_quote_quantums(100_000_000, -9, 3_000_000_000, -6)
    r = account_risk(-490 * USD, [btc, eth], [_btc_tier(), _btc_tier()])
    assert (btc, eth, r.nc, r.mmr) == (200 * USD, 300 * USD, 10 * USD, 50 * USD)
    pmmr = position_margin_requirements(eth, _btc_tier())[1]
    assert fillable_price(eth, pmmr, r.nc, r.mmr, 100_000_000, smmr_ppm=100_000) == Fraction(372, 125)


# --------------------------------------------------------------------------------------------
# int64 kernel against the Python-int reference
# --------------------------------------------------------------------------------------------

# (atomic_resolution, price_exponent): exponents -9, -9, -6, +2 after adding 6 (last one multiplies)
MARKETS = [(-10, -5), (-9, -6), (-6, -6), (-3, -1)]


def _reference(quote, q, price, imf, mf, lo, hi, oi, user):
    tiers = [LiquidityTier(f"m{j}", int(imf[j]), int(mf[j]), int(lo[j]), int(hi[j])) for j in range(N_MKT)]
    out = []
    for i in range(N_ACC):
        notionals = [base_to_quote_quantums(int(q[i, j]), MARKETS[j][0], int(price[j]), MARKETS[j][1])
                     for j in range(N_MKT)]
        out.append((account_risk(int(quote[i]), notionals, tiers, [int(x) for x in oi],
                                 [int(x) for x in user[i]]), notionals))
    return out


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size_exp=st.integers(0, 12), oi_mode=st.sampled_from(range(5)))
def test_batched_equals_python_reference(seed, size_exp, oi_mode):
    rng = np.random.default_rng(seed)
    price = rng.integers(1, 10**10, N_MKT)
    price[3] = rng.integers(1, 10**3)  # exponent +2 market: keep notionals inside the safe range
    q = rng.integers(-(10**size_exp), 10**size_exp + 1, (N_ACC, N_MKT))
    q[rng.random((N_ACC, N_MKT)) < 0.2] = 0
    quote = rng.integers(-(10**12), 10**12, N_ACC)
    imf = rng.integers(0, M + 1, N_MKT)
    imf[0] = 20_000
    mf = rng.integers(0, M + 1, N_MKT)
    lo = rng.integers(0, 10**14, N_MKT)
    hi = lo + rng.integers(1, 10**17, N_MKT)
    hi[3] = lo[3] = 0  # scaling disabled on one market
    # OI at the caps, one either side, half-way, or random up to 2x the upper cap
    choices = [lo, lo + 1, (lo + hi) // 2, hi - 1, rng.integers(0, 2 * hi + 1)]
    oi = np.maximum(choices[oi_mode], 0)
    user = rng.integers(0, M + 1, (N_ACC, N_MKT)) * (rng.random((N_ACC, N_MKT)) < 0.3)
    exps = [a for a, _ in MARKETS], [p for _, p in MARKETS]
    got = account_risk_batched(quote, q, price, exps[0], exps[1], imf, mf, lo, hi, oi, user)
    ref = _reference(quote, q, price, imf, mf, lo, hi, oi, user)
    assert [int(x) for x in got.nc] == [r.nc for r, _ in ref]
    assert [int(x) for x in got.imr] == [r.imr for r, _ in ref]
    assert [int(x) for x in got.mmr] == [r.mmr for r, _ in ref]
    assert [bool(x) for x in got.liquidatable] == [r.is_liquidatable() for r, _ in ref]
    assert [bool(x) for x in got.initial_collateralized] == [r.is_initial_collateralized() for r, _ in ref]
    assert np.asarray(got.notional).tolist() == [n for _, n in ref]


def test_batched_near_int64_safe_bound_is_exact():
    # |notional| close to 2**62 still exact (products would overflow int64 without the split).
    price = np.array([9_000_000_000, 1, 1, 1])
    big = 2**62 // 9 - 10  # BTC-like exponent -9 and price 9e9: notional = 9 q, just below 2**62
    q = np.zeros((N_ACC, N_MKT), np.int64)
    q[0, 0] = big
    q[1, 0] = -big
    imf = np.full(N_MKT, 999_999)
    mf = np.full(N_MKT, 999_999)
    oi = np.array([2**62 - 1, 0, 0, 0])
    lo = np.array([1, 0, 0, 0])
    hi = np.array([2**62, 0, 0, 0])
    got = account_risk_batched(np.zeros(N_ACC, np.int64), q, price, [a for a, _ in MARKETS],
                               [p for _, p in MARKETS], imf, mf, lo, hi, oi)
    ref = _reference(np.zeros(N_ACC, np.int64), q, price, imf, mf, lo, hi, oi, np.zeros_like(q))
    assert int(got.imr[0]) == ref[0][0].imr and int(got.mmr[1]) == ref[1][0].mmr
    assert int(got.nc[1]) == ref[1][0].nc == -ref[0][0].nc
    assert ref[0][0].nc > 2**61  # really near the bound


def test_fillable_price_batched_matches_exact(tiers):
    rng = np.random.default_rng(7)
    ps = rng.integers(1, 10**12, (8, 3)) * rng.choice([-1, 1], (8, 3))
    pnnv = ps * 5  # price 5 quote quantums per base quantum
    pmmr = np.abs(pnnv) // 100
    tmmr = pmmr.sum(axis=1) + 1
    tnc = (tmmr * rng.uniform(-0.5, 1.2, 8)).astype(np.int64)
    got = np.asarray(fillable_price_batched(pnnv, pmmr, tnc, tmmr, ps))
    for i in range(8):
        for j in range(3):
            want = fillable_price(int(pnnv[i, j]), int(pmmr[i, j]), int(tnc[i]), int(tmmr[i]), int(ps[i, j]))
            assert got[i, j] == pytest.approx(float(want), rel=1e-13)


@settings(max_examples=30, deadline=None)
@given(imf=st.integers(0, M), lo=st.integers(0, 10**15), span=st.integers(1, 10**15),
       a=st.integers(0, 3 * 10**15), b=st.integers(0, 3 * 10**15), n=st.integers(-(10**15), 10**15))
def test_imr_monotone_in_open_interest_mmr_independent(imf, lo, span, a, b, n):
    t = LiquidityTier("p", imf, 600_000, lo, lo + span)
    oi1, oi2 = sorted((a, b))
    i1, m1 = position_margin_requirements(n, t, oi1)
    i2, m2 = position_margin_requirements(n, t, oi2)
    assert i1 <= i2 and m1 == m2
    assert m1 <= i1  # maintenance never above initial (maintenance fraction <= 100%)


# --------------------------------------------------------------------------------------------
# Bad input: typed error naming field and index, before any kernel runs
# --------------------------------------------------------------------------------------------

def _ok_args():
    q = np.ones((2, 2), np.int64)
    return dict(quote_balance=[0, 0], base_quantums=q, price=[5, 5], atomic_resolution=[-10, -10],
                price_exponent=[-5, -5], initial_margin_ppm=[50_000, 50_000],
                maintenance_fraction_ppm=[600_000, 600_000], open_interest_lower_cap=[0, 0],
                open_interest_upper_cap=[0, 0], open_interest_quote_quantums=[0, 0])


@pytest.mark.parametrize("field,value,match", [
    ("base_quantums", np.array([[1.0, np.nan], [1.0, 1.0]]), r"base_quantums at index \(0, 1\).*finite"),
    ("base_quantums", np.array([[1.5, 1.0], [1.0, 1.0]]), r"base_quantums at index \(0, 0\).*integer"),
    ("price", [5, -1], r"price at index \(1,\).*>= 0"),
    ("price", [5, 5, 5], r"price.*shape mismatch"),
    ("quote_balance", [0], r"quote_balance.*shape mismatch"),
    ("initial_margin_ppm", [50_000, 1_000_001], r"initial_margin_ppm at index \(1,\)"),
    ("open_interest_lower_cap", [5, 0], r"open_interest_lower_cap at index \(0,\).*upper_cap"),
    ("user_imf_ppm", np.full((2, 3), 1), r"user_imf_ppm.*shape mismatch"),
    ("price_exponent", [-5, -20], r"price_exponent at index \(1,\).*safe range"),
    ("base_quantums", np.array([[2**62, 1], [1, 1]]), r"base_quantums at index \(0, 0\).*2\*\*62"),
])
def test_batched_bad_input_raises_before_kernel(field, value, match, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("kernel ran on bad input")

    monkeypatch.setattr(dydx, "_risk_kernel", boom)
    args = _ok_args()
    if field == "base_quantums" and value.dtype.kind == "i":
        args["price"] = [2 * 10**9, 10**9]  # notional 2**63
    args[field] = value
    with pytest.raises(VenueInputError, match=match) as ei:
        account_risk_batched(**args)
    assert isinstance(ei.value, ValueError) and ei.value.field == field


def test_reference_bad_input():
    with pytest.raises(VenueInputError, match="initial_margin_ppm"):
        LiquidityTier("bad", 1_000_001, 0)
    with pytest.raises(VenueInputError, match="open_interest_lower_cap"):
        LiquidityTier("bad", 1, 0, 10, 5)
    t = LiquidityTier("ok", 50_000, 600_000)
    with pytest.raises(VenueInputError, match="user_imf_ppm"):
        position_margin_requirements(10, t, 0, -1)
    with pytest.raises(VenueInputError, match="open_interest_quote_quantums"):
        position_margin_requirements(10, t, -1)
    with pytest.raises(VenueInputError, match="tiers.*length mismatch"):
        account_risk(0, [1, 2], [t])
    with pytest.raises(VenueInputError, match="notionals"):
        account_risk(0, [1.5], [t])
