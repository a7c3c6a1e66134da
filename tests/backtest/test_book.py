"""Synthetic book and positions-file loader."""
import numpy as np
import pandas as pd
import pytest

from margin.simulation.book import CHAIN_PATH, BookError, OptionGrid, chain_weights, load_positions, synthetic_book


def test_synthetic_seeded_and_shaped():
    a = synthetic_book(3000, ("BTC", "ETH"), seed=7, long_prob=0.6, option_prob=0.4)
    b = synthetic_book(3000, ("BTC", "ETH"), seed=7, long_prob=0.6, option_prob=0.4)
    c = synthetic_book(3000, ("BTC", "ETH"), seed=8, long_prob=0.6, option_prob=0.4)
    np.testing.assert_array_equal(a.perp_usd, b.perp_usd)
    np.testing.assert_array_equal(a.opt_idx, b.opt_idx)
    assert not np.array_equal(a.perp_usd, c.perp_usd)
    main = a.perp_usd[np.abs(a.perp_usd).argmax(1) == np.arange(2)[:, None].T[0, 0]]
    assert main.shape[0] > 0
    longs = (a.perp_usd > 0).sum() / (a.perp_usd != 0).sum()
    assert abs(longs - 0.6) < 0.03
    has = a.opt_asset >= 0
    assert abs(has.mean() - 0.4) < 0.03
    g = a.grid
    asset, tenor, k, put = g.decode(a.opt_idx[has])
    assert np.all(asset == a.opt_asset[has][:, None]) and np.all(tenor[:, 0] == tenor[:, 1])
    assert np.all(put[:, 0] == put[:, 1])
    # vertical spreads one grid step wide, opposite signs
    assert np.all(np.abs(k[:, 0] - k[:, 1]) == 1)
    assert np.all(np.sign(a.opt_count[has, 0]) == -np.sign(a.opt_count[has, 1]))
    assert np.all(a.leverage >= 1) and np.all(a.reserve >= 0)


def test_chain_weights_match_loop():
    grid = OptionGrid()
    w = chain_weights(grid)
    df = pd.read_csv(CHAIN_PATH)
    ref = np.zeros((grid.J, grid.K))
    for _, row in df.iterrows():
        tau = max((pd.Timestamp(row.expiry_utc) - pd.Timestamp(row.snapshot_time_utc)).total_seconds() / 86400, 0.5)
        j = int(np.argmin([abs(np.log(tau) - np.log(d)) for d in grid.tenors]))
        k = int(np.argmin([abs(np.log(row.strike / row.underlying_price) - np.log(m)) for m in grid.moneyness]))
        ref[j, k] += 0 if np.isnan(row.open_interest) else row.open_interest
    ref = ref / ref.sum() + 1e-3
    np.testing.assert_allclose(w, ref / ref.sum())


GOOD = """account,asset,kind,notional_usd,moneyness,tenor_days,collateral_usd
a1,BTC,perpetual,10000,,,2500
a1,ETH,perpetual,-4000,,,2500
a2,ETH,call,3000,1.0,30,1000
a2,ETH,call,-3000,1.1,30,1000
"""


def test_load_good(tmp_path):
    p = tmp_path / "pos.csv"
    p.write_text(GOOD)
    b = load_positions(p, assets=("BTC", "ETH"))
    assert b.n_accounts == 2
    np.testing.assert_allclose(b.perp_usd, [[10000, -4000], [0, 0]])
    assert b.opt_asset.tolist() == [-1, 1]
    g = b.grid
    assert b.opt_idx[1].tolist() == [g.index(1, 1, 4, 0), g.index(1, 1, 5, 0)]
    np.testing.assert_allclose(b.collateral, [2500, 1000])
    pq = tmp_path / "pos.parquet"
    pd.read_csv(p).to_parquet(pq)
    b2 = load_positions(pq, assets=("BTC", "ETH"))
    np.testing.assert_allclose(b2.perp_usd, b.perp_usd)


@pytest.mark.parametrize("line,bad,match", [
    (3, "a1,SOL,perpetual,-4000,,,2500", r"line 3, column 'asset'.*'SOL'"),
    (2, "a1,BTC,future,10000,,,2500", r"line 2, column 'kind'.*'future'"),
    (3, "a1,ETH,perpetual,abc,,,2500", r"line 3, column 'notional_usd'.*'abc'"),
    (3, "a1,ETH,perpetual,inf,,,2500", r"line 3, column 'notional_usd'"),
    (4, "a2,ETH,call,3000,0.95,30,1000", r"line 4, column 'moneyness'.*0.95"),
    (4, "a2,ETH,call,3000,1.0,31,1000", r"line 4, column 'tenor_days'.*31"),
    (2, "a1,BTC,perpetual,10000,,,-5", r"line 2, column 'collateral_usd'.*-5"),
])
def test_load_bad_rows(tmp_path, line, bad, match):
    rows = GOOD.strip().split("\n")
    rows[line - 1] = bad
    p = tmp_path / "pos.csv"
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(BookError, match=match) as e:
        load_positions(p, assets=("BTC", "ETH"))
    assert "pos.csv" in str(e.value)


def test_load_structure_errors(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("account,asset,kind\n1,BTC,perpetual\n")
    with pytest.raises(BookError, match="missing column 'notional_usd'"):
        load_positions(p)
    p.write_text(GOOD + "a2,ETH,put,100,1.0,30,1000\n")
    with pytest.raises(BookError, match="line 6.*more than two option legs"):
        load_positions(p, assets=("BTC", "ETH"))
    with pytest.raises(BookError, match="not found"):
        load_positions(tmp_path / "nope.csv")
    with pytest.raises(BookError, match="n_accounts"):
        synthetic_book(0)
