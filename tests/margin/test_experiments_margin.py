"""The margin experiment entry points run through Hydra's compose() on small shapes."""
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments import bench_margin, reprice_chain


@pytest.mark.slow
def test_reprice_chain_small(repo_root):
    with initialize_config_dir(config_dir=str(repo_root / "conf"), version_base=None):
        cfg = compose(config_name="reprice_chain", overrides=["n_random_books=200"])
    res = reprice_chain.run(cfg)
    assert res["summary"].loc["ALL", "n"] == 310
    books = res["books"]
    assert np.allclose(books["Deribit MM BTC"], 0.8 * books["Deribit IM BTC"])
    assert (books["net/gross"] <= 1 + 1e-12).all()
    assert res["random"]["portfolio_le_isolated"]
    assert "Sample books" in reprice_chain.format_tables(res)


def test_sample_books_use_the_chains_own_expiries_and_strikes(repo_root):
    import margin

    src = margin.synthetic_deribit_chain("ETH", "2021-03-05 06:00:00", 1500.0, expiry_days=(1.08, 6.08, 27.08, 90.08))
    live = src.assign(expiry_utc=lambda d: __import__("pandas").to_datetime(d["expiry_utc"]),
                      T=lambda d: (d["expiry_utc"] - __import__("pandas").to_datetime(d["snapshot_time_utc"]))
                      .dt.total_seconds() / (365 * 86400))
    with initialize_config_dir(config_dir=str(repo_root / "conf"), version_base=None):
        cfg = compose(config_name="reprice_chain")
    from omegaconf import OmegaConf
    names, books = reprice_chain.sample_books(live, "ETH", OmegaConf.to_container(cfg.sample_books))
    assert len(names) == len(cfg.sample_books.books)
    legs = [live["instrument_name"].iloc[j] for book in books for j, _ in book if j < len(live)]
    assert legs and set(legs) <= set(src["instrument_name"])
    # the "back" expiry (365 days wanted) is this chain's last one; nothing from the 2020-05-14 chain
    assert any("3JUN21" in leg for leg in legs)


@pytest.mark.slow
@pytest.mark.parametrize("currency,snapshot,index,expiries", [
    ("ETH", "2021-03-05 06:00:00", 1500.0, (1.08, 6.08, 27.08, 90.08, 300.08)),
    ("BTC", "2023-07-19 09:30:00", 30_000.0, (9.94, 37.94)),
])
def test_reprice_chain_any_chain(repo_root, tmp_path, currency, snapshot, index, expiries):
    import margin

    src = margin.synthetic_deribit_chain(currency, snapshot, index, expiry_days=expiries, mark_iv=False)
    src.loc[3, "mark_price"] = -1.0  # a corrupt row: listed, not fatal (on_bad_rows=skip)
    path = tmp_path / f"{currency}.csv"
    src.to_csv(path, index=False)
    with initialize_config_dir(config_dir=str(repo_root / "conf"), version_base=None):
        cfg = compose(config_name="reprice_chain", overrides=[f"chain_path={path}", "n_random_books=100"])
    res = reprice_chain.run(cfg)
    assert res["currency"] == currency
    assert 5 in set(res["rejected"]["line"])
    # the sample books hold this chain's own instruments (its expiries and strikes)
    names = set(src["instrument_name"])
    for book in res["books"].index:
        legs = [leg.split(" ", 1)[1] for leg in book.split(": ", 1)[1].split(", ")]
        assert all(leg in names or leg == f"{currency}-PERPETUAL" for leg in legs)
    assert res["random"]["portfolio_le_isolated"] and res["random"]["mm_is_factor_x_im"]
    reprice_chain.write(res, cfg, tmp_path / "out")
    md = (tmp_path / "out" / "reprice_chain.md").read_text()
    assert "Rows not used" in md and "met" in md and (tmp_path / "out" / "reprice_chain.json").exists()


def test_bench_small(repo_root):
    with initialize_config_dir(config_dir=str(repo_root / "conf"), version_base=None):
        cfg = compose(config_name="bench_margin", overrides=[
            "n_accounts=3000", "n_instruments=8", "n_scenarios=5", "n_options=1000", "loop_sample=50",
            "chunk_size=1024", "repeats=1", "blocks.n_accounts=2000", "blocks.sgemm_n=256"])
    r = bench_margin.bench(**cfg)
    assert r["chunked_ok"] and r["max_abs_diff_vs_loop"] < 1e-4 and r["greeks_max_rel_diff_f64"] < 1e-10
    assert "streaming pass" in bench_margin.format_table(r)
    assert r["block_n_blocks"] == 4 and r["block_flop_fraction"] == 0.25 and r["block_max_rel_diff"] < 1e-5
    rows = bench_margin.rows(r)
    assert any("sgemm" in row.what for row in rows) and any(row.target == ">= 2 x" for row in rows)
