"""margin.rules.book_margin / experiments.margin_book: a book in Parquet parts, margined part by part by the fused kernel,
equals the in-memory dense kernel (margin.portfolio_margin) account by account."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir

import margin
from experiments import margin_book as mb
from margin.rules import book_margin as bm


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    d = tmp_path_factory.mktemp("book")
    mb.generate_book(d, 2_500, accounts_per_shard=1_000, n_underlyings=2, instruments_per_underlying=6,
                     positions_per_account=3, seed=1, progress=False)
    return d


def _dense_reference(book, dtype=np.float32):
    """All parts read with pandas into one dense (N, I) array (duplicates summed): the in-memory reference."""
    lm, _ = bm.load_instruments(book)
    pos = pq.read_table(book / "positions").to_pandas()
    acc = pq.read_table(book / "accounts").to_pandas()
    ids = acc["account_id"].to_numpy()
    x = np.zeros((len(acc), lm.shape[0]))
    np.add.at(x, (np.searchsorted(ids, pos["account_id"].to_numpy()), pos["instrument"].to_numpy()),
              pos["quantity"].to_numpy().astype(np.float64))
    im = np.asarray(margin.portfolio_margin(x.astype(dtype), lm, dtype=dtype, validate=False), np.float64)
    return im, acc["collateral_usd"].to_numpy()


def _chunk(monkeypatch, chunk):
    """Accounts per kernel chunk (small: many chunks and row windows per part)."""
    monkeypatch.setattr(bm, "chunk_accounts", lambda n_instruments: chunk)


@pytest.mark.parametrize("blocks, chunk", [("auto", 16384), ("dense", 64)])
def test_parts_equal_in_memory_dense_kernel(book, blocks, chunk, monkeypatch):
    _chunk(monkeypatch, chunk)
    res = bm.margin_book(book, blocks=blocks, per_account=True)
    im, coll = _dense_reference(book)
    assert res["n_accounts"] == 2_500 and res["n_parts"] == 3
    assert res["n_blocks"] == (2 if blocks == "auto" else 1)
    np.testing.assert_allclose(res["im"], im, rtol=2e-6, atol=1e-4)
    assert res["sum_im"] == pytest.approx(im.sum(), rel=1e-6)
    assert res["sum_mm"] == pytest.approx(0.8 * im.sum(), rel=1e-6)
    assert res["sum_collateral"] == pytest.approx(coll.sum(), rel=1e-12)
    assert res["n_below_mm"] == int((coll < 0.8 * res["im"]).sum())
    assert res["n_below_im"] == int((coll < res["im"]).sum())
    assert res["hist_im"].sum() + res["n_im_above"] == int((res["im"] >= res["edges"][0]).sum())
    assert res["n_zero_margin"] == int((res["im"] == 0).sum())
    assert res["n_health_below"] + res["hist_health"].sum() + res["n_health_above"] == int((res["im"] > 0).sum())
    assert res["max_im"] == pytest.approx(im.max(), rel=1e-6)
    ref = np.histogram(res["im"][res["im"] > 0], res["edges"])[0]
    assert np.abs(res["hist_im"] - ref).sum() <= 2  # float32 log at bin edges


def _write_part(d, name, acc, inst, qty, ids, coll):
    (d / "positions").mkdir(parents=True, exist_ok=True)
    (d / "accounts").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table([np.asarray(acc, np.int64), np.asarray(inst, np.int32), np.asarray(qty, np.float32)],
                            schema=bm.POSITION_SCHEMA), d / "positions" / name)
    pq.write_table(pa.table([np.asarray(ids, np.int64), np.asarray(coll, np.float64)], schema=bm.ACCOUNT_SCHEMA),
                   d / "accounts" / name)


@pytest.fixture()
def hand_book(tmp_path):
    """Duplicated (account, instrument) rows, accounts without rows, unsorted instruments within an account,
    non-contiguous account ids (part 0) and contiguous ones (part 1)."""
    lm, _, und = __import__("experiments.bench_margin", fromlist=["x"]).realistic_block_book(1, 6, 3)
    mb.generate_book(tmp_path, 1, accounts_per_shard=1, n_underlyings=1, instruments_per_underlying=6,
                     progress=False)  # instruments.parquet, then our own parts
    for p in (tmp_path / "positions").glob("*"):
        p.unlink()
    for p in (tmp_path / "accounts").glob("*"):
        p.unlink()
    _write_part(tmp_path, "part-00000.parquet", acc=[3, 3, 3, 7, 7, 7, 7, 20, 20],
                inst=[5, 1, 5, 0, 0, 0, 2, 4, 1], qty=[1, -2, 3, 1.5, 1.5, -0.5, 2, -4, 1],
                ids=[3, 5, 7, 20, 21], coll=[100, 50, 0, 10, 7])
    _write_part(tmp_path, "part-00001.parquet", acc=[31, 31, 33, 33], inst=[2, 2, 3, 2], qty=[1, 1, -1, 5],
                ids=[30, 31, 32, 33], coll=[1, 2, 3, 1e6])
    return tmp_path


@pytest.mark.parametrize("dtype, chunk", [("float32", 2), ("float64", 16384)])
def test_duplicates_summed_and_empty_accounts(hand_book, dtype, chunk, monkeypatch):
    _chunk(monkeypatch, chunk)
    res = bm.margin_book(hand_book, dtype=dtype, per_account=True)
    im, coll = _dense_reference(hand_book, np.dtype(dtype))
    assert res["n_accounts"] == 9 and res["n_positions"] == 13
    np.testing.assert_allclose(res["im"], im, rtol=1e-12 if dtype == "float64" else 1e-6)
    assert res["n_zero_margin"] == int((im == 0).sum()) >= 3  # accounts 5, 21, 30 hold nothing
    assert res["sum_collateral"] == pytest.approx(coll.sum(), rel=1e-15)
    assert res["hist_health"].sum() + res["n_health_below"] + res["n_health_above"] == int((im > 0).sum())


def test_report_files(book, tmp_path):
    res = mb.run_book(book, progress=False)
    mb.report(res, tmp_path, targets={"peak_rss_gb": 4.0}, echo=False)
    payload = json.loads((tmp_path / "margin_book.json").read_text())
    assert payload["raw"]["n_accounts"] == 2_500 and len(payload["raw"]["hist_health"]) > 10
    assert "total IM" in (tmp_path / "margin_book.md").read_text()
    assert (tmp_path / "margin_book_hist.png").stat().st_size > 1000


def test_bad_rows_named(book, tmp_path, monkeypatch):
    import shutil

    _chunk(monkeypatch, 64)
    bad = tmp_path / "bad"
    shutil.copytree(book, bad)
    part = bad / "positions" / "part-00001.parquet"
    t = pq.read_table(part)
    inst = t["instrument"].to_numpy().copy()
    inst[7] = 99
    pq.write_table(t.set_column(1, "instrument", pa.array(inst, pa.int32())), part)
    with pytest.raises(margin.MarginInputError, match=r"part-00001.parquet: row 7, column instrument.*99"):
        bm.margin_book(bad, blocks="dense")
    qty = t["quantity"].to_numpy().copy()
    qty[3] = np.nan
    pq.write_table(t.set_column(2, "quantity", pa.array(qty, pa.float32())), part)
    with pytest.raises(margin.MarginInputError, match="row 3, column quantity"):
        bm.margin_book(bad, blocks="dense")
    acc = t["account_id"].to_numpy().copy()
    acc[[10, 2000]] = acc[[2000, 10]]
    pq.write_table(t.set_column(0, "account_id", pa.array(acc, pa.int64())), part)
    with pytest.raises(margin.MarginInputError, match="row 11, column account_id: rows must be sorted"):
        bm.margin_book(bad, blocks="dense")
    acc = t["account_id"].to_numpy().copy()
    acc[5] = 5
    pq.write_table(t.set_column(0, "account_id", pa.array(acc, pa.int64())), part)
    with pytest.raises(margin.MarginInputError, match=r"row 5, column account_id: account not in.*\(value 5\)"):
        bm.margin_book(bad, blocks="dense")
    pq.write_table(t, part)
    apart = bad / "accounts" / "part-00001.parquet"
    at = pq.read_table(apart)
    coll = at["collateral_usd"].to_numpy().copy()
    coll[4] = -1.0
    pq.write_table(at.set_column(1, "collateral_usd", pa.array(coll)), apart)
    with pytest.raises(margin.MarginInputError, match=r"row 4, column collateral_usd: must be finite and >= 0"):
        bm.margin_book(bad, blocks="dense")
    pq.write_table(at, apart)
    (bad / "accounts" / "part-00002.parquet").unlink()
    with pytest.raises(margin.MarginInputError, match="part-00002.parquet"):
        bm.margin_book(bad, blocks="dense")


def test_hydra_generate_then_run(repo_root, tmp_path):
    with initialize_config_dir(config_dir=str(repo_root / "conf"), version_base=None):
        cfg = compose(config_name="margin_book", overrides=[
            f"book_dir={tmp_path / 'b'}", "mode=generate", "generate.n_accounts=300",
            "generate.accounts_per_shard=200", "progress=false"])
    assert mb.run(cfg, tmp_path)["meta"]["n_parts"] == 2
    cfg.mode = "bench"
    res = mb.run(cfg, tmp_path / "out")
    assert res["n_accounts"] == 300 and res["in_memory_accounts"] == 300
    assert "in-memory kernel" in (tmp_path / "out" / "margin_book.md").read_text()


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
