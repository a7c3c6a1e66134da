"""The embedded Deribit BTC chain: loader checks, repricing from mark IVs reproduces marks and Greeks."""
import numpy as np
import pytest

import margin.chain as ch


@pytest.fixture(scope="module")
def repriced():
    return ch.reprice_chain(ch.load_deribit_chain())


def test_loader(repriced):
    assert len(repriced) == 310
    assert repriced["T"].min() > 0 and set(repriced["option_type"]) == {"C", "P"}


def test_prices_match_marks(repriced):
    # Deribit prices are in BTC = Black-76 USD price / F (zero rate): a USD or a per-100 convention would be
    # off by orders of magnitude.
    err = repriced["err_price"].abs()
    assert err.median() < 1e-5
    assert err.max() < 2e-3
    rel = (err / repriced["mark_price"].clip(lower=1e-3)).median()
    assert rel < 1e-4


def test_greek_conventions(repriced):
    # delta = N(d1) (unadjusted), gamma per USD, vega USD per vol point, theta USD per calendar day (365);
    # compared away from the last day before expiry, where Deribit's theta follows another convention.
    r = repriced[repriced["T"] > 2 / 365]
    assert r["err_delta"].abs().max() < 1e-4
    assert r["err_gamma"].abs().max() < 1e-5
    assert (r["err_vega"].abs() / r["vega"].abs().clip(lower=0.01)).max() < 1e-3
    assert (r["err_theta"].abs() / r["theta"].abs().clip(lower=0.01)).max() < 1e-3


def test_implied_vol_from_marks(repriced):
    r = repriced[repriced["T"] > 2 / 365]
    assert r["iv_converged"].all()
    assert (r["iv_from_mark"] - r["mark_iv"]).abs().median() < 0.05  # vol points
    assert np.isfinite(repriced["iv_from_mark"]).all()


def test_bad_rows_named(tmp_path):
    src = ch.load_deribit_chain.__globals__["resources"].files("margin") / "data" / "DERIBIT_BTC_options_2020-05-14.csv"
    lines = src.read_text().splitlines()
    bad = lines[:3] + [lines[3].replace(",C,", ",X,", 1)] + lines[4:6]
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(bad))
    with pytest.raises(ValueError, match="line 4, column option_type"):
        ch.load_deribit_chain(p)
    cols = lines[0].split(",")
    row = lines[1].split(",")
    row[cols.index("mark_iv")] = "-3"
    p.write_text("\n".join([lines[0], ",".join(row)]))
    with pytest.raises(ValueError, match="line 2, column mark_iv"):
        ch.load_deribit_chain(p)
