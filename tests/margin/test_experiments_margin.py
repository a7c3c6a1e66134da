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
    assert "SPAN" in reprice_chain.format_report(res)


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
