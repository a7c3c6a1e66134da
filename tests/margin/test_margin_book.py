"""experiments.margin_book: a book in Parquet parts, margined part by part, equals the in-memory dense kernel."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir

import margin
from experiments import margin_book as mb


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    d = tmp_path_factory.mktemp("book")
    mb.generate_book(d, 2_500, accounts_per_shard=1_000, n_underlyings=2, instruments_per_underlying=6,
                     positions_per_account=3, seed=1, progress=False)
    return d


def _dense_reference(book):
    """All parts read with pandas into one dense (N, I) array: the in-memory reference."""
    lm, _ = mb.load_instruments(book)
    pos = pq.read_table(book / "positions").to_pandas()
    acc = pq.read_table(book / "accounts").to_pandas()
    x = np.zeros((len(acc), lm.shape[0]))
    x[pos["account_id"].to_numpy(), pos["instrument"].to_numpy()] = pos["quantity"].to_numpy()
    im = np.asarray(margin.portfolio_margin(x, lm, dtype=np.float64))
    return im, acc["collateral_usd"].to_numpy()


@pytest.mark.parametrize("blocks", ["auto", "dense"])
def test_parts_equal_in_memory_dense_kernel(book, blocks):
    res = mb.run_book(book, blocks=blocks, progress=False)
    im, coll = _dense_reference(book)
    assert res["n_accounts"] == 2_500 and res["n_parts"] == 3
    assert res["n_blocks"] == (2 if blocks == "auto" else 1)
    assert res["sum_im"] == pytest.approx(im.sum(), rel=1e-5)
    assert res["sum_mm"] == pytest.approx(0.8 * im.sum(), rel=1e-5)
    assert res["sum_collateral"] == pytest.approx(coll.sum(), rel=1e-12)
    assert res["n_below_mm"] == int((coll < 0.8 * im).sum())
    assert res["hist_im"].sum() + res["n_im_above"] == int((im > res["edges"][0]).sum())


def test_report_files(book, tmp_path):
    res = mb.run_book(book, progress=False)
    mb.report(res, tmp_path, targets={"peak_rss_gb": 4.0}, echo=False)
    payload = json.loads((tmp_path / "margin_book.json").read_text())
    assert payload["raw"]["n_accounts"] == 2_500 and len(payload["raw"]["hist_health"]) > 10
    assert "total IM" in (tmp_path / "margin_book.md").read_text()
    assert (tmp_path / "margin_book_hist.png").stat().st_size > 1000


def test_bad_rows_named(book, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(book, bad)
    part = bad / "positions" / "part-00001.parquet"
    t = pq.read_table(part)
    inst = t["instrument"].to_numpy().copy()
    inst[7] = 99
    pq.write_table(t.set_column(1, "instrument", pa.array(inst, pa.int32())), part)
    with pytest.raises(margin.MarginInputError, match=r"part-00001.parquet: row 7, column instrument.*99"):
        mb.run_book(bad, progress=False)
    qty = t["quantity"].to_numpy().copy()
    qty[3] = np.nan
    pq.write_table(t.set_column(2, "quantity", pa.array(qty, pa.float32())), part)
    with pytest.raises(margin.MarginInputError, match="row 3, column quantity"):
        mb.run_book(bad, progress=False)
    pq.write_table(t, part)
    (bad / "accounts" / "part-00002.parquet").unlink()
    with pytest.raises(margin.MarginInputError, match="part-00002.parquet"):
        mb.run_book(bad, progress=False)


def test_hydra_generate_then_run(repo_root, tmp_path):
    with initialize_config_dir(config_dir=str(repo_root / "conf"), version_base=None):
        cfg = compose(config_name="margin_book", overrides=[
            f"book_dir={tmp_path / 'b'}", "mode=generate", "generate.n_accounts=300",
            "generate.accounts_per_shard=200", "progress=false"])
    assert mb.run(cfg, tmp_path)["meta"]["n_parts"] == 2
    cfg.mode = "run"
    res = mb.run(cfg, tmp_path / "out")
    assert res["n_accounts"] == 300 and (tmp_path / "out" / "margin_book.md").exists()


@pytest.mark.slow
def test_ray_backend_equals_local(book):
    ray = pytest.importorskip("ray")
    from omegaconf import OmegaConf

    try:
        res = mb.run_book(book, backend="ray", ray_cfg=OmegaConf.create({"address": None, "num_cpus": 2}),
                          progress=False)
    finally:
        ray.shutdown()
    local = mb.run_book(book, progress=False)
    assert res["backend"] == "ray" and res["n_accounts"] == local["n_accounts"]
    assert res["sum_im"] == pytest.approx(local["sum_im"], rel=1e-6)
    assert (res["hist_health"] == local["hist_health"]).all()
