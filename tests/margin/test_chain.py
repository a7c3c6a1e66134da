"""The embedded Deribit BTC chain: loader checks, repricing from mark IVs reproduces marks and Greeks."""
import numpy as np
import pytest

import margin.valuation.chain as ch


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


# ----------------------------------------------------------------------------- any chain (issue 13 item 3)
def _black_coin(f, k, t, v, call):
    from scipy.stats import norm
    sq = v * np.sqrt(t)
    d1 = (np.log(f / k) + 0.5 * sq * sq) / sq
    usd = np.where(call, f * norm.cdf(d1) - k * norm.cdf(d1 - sq), k * norm.cdf(sq - d1) - f * norm.cdf(-d1))
    return usd / f


def test_eth_chain_without_mark_iv_backs_iv_out_of_prices(tmp_path):
    src = ch.synthetic_deribit_chain("ETH", "2021-03-05 06:00:00", 1500.0, mark_iv=False)
    p = tmp_path / "eth.csv"
    src.to_csv(p, index=False)
    df = ch.load_deribit_chain(p, on_bad_rows="skip")
    assert (df["iv_source"] == "mark_price").all() and np.isfinite(df["mark_iv"]).all()
    # the backed-out IV reproduces each mark price under an independent (SciPy) Black-76
    coin = _black_coin(df["underlying_price"], df["strike"], df["T"], df["mark_iv"] / 100, df["is_call"])
    np.testing.assert_allclose(coin, df["mark_price"], atol=1e-9)
    # rows with a zero (or intrinsic-only) mark price cannot give an IV: listed with their line, not dropped silently
    rej = df.attrs["rejected"]
    assert len(rej) + len(df) == len(src) and len(rej) > 0
    zero = src.index[src["mark_price"] == 0].to_numpy() + 2
    assert set(zero) <= set(rej["line"]) and (rej["column"] == "mark_price").all()
    with pytest.raises(ValueError, match=f"line {int(rej['line'].min())}, column mark_price"):
        ch.load_deribit_chain(p)


def test_corrupt_rows_skipped_and_named(tmp_path):
    src = ch.synthetic_deribit_chain("BTC", "2022-11-10 07:00:00", 17_000.0, expiry_days=(3.04, 30.04))
    src["strike"] = src["strike"].astype(object)
    src.loc[4, "strike"] = "abc"
    src.loc[7, "option_type"] = "X"
    src.loc[9, "expiry_utc"] = "not a date"
    p = tmp_path / "btc.csv"
    src.to_csv(p, index=False)
    df = ch.load_deribit_chain(p, on_bad_rows="skip")
    rej = df.attrs["rejected"].set_index("line")
    assert list(rej.index) == [11, 6, 9]  # in check order: timestamps, numbers, option type; lines are 1-based
    assert rej.loc[6, "column"] == "strike" and rej.loc[6, "value"] == "abc"
    assert rej.loc[9, "column"] == "option_type" and rej.loc[11, "column"] == "expiry_utc"
    assert len(df) == len(src) - 3
    with pytest.raises(ValueError, match="line 11, column expiry_utc"):
        ch.load_deribit_chain(p)


def test_greeks_flagged_not_asserted(tmp_path):
    src = ch.synthetic_deribit_chain("ETH", "2021-03-05 06:00:00", 1500.0)
    src.loc[30, "delta"] += 0.01
    j = int(src["vega"].idxmax())
    src.loc[j, "vega"] *= 1.2
    p = tmp_path / "eth.csv"
    src.to_csv(p, index=False)
    r = ch.reprice_chain(ch.load_deribit_chain(p, on_bad_rows="skip"))
    flags = ch.flag_greeks(r)
    got = set(zip(flags["line"], flags["greek"]))
    assert got == {(32, "delta"), (j + 2, "vega")}
