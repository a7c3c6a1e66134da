"""experiments.prove / experiments.verify through Hydra's compose() and argv."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from experiments import prove as prove_cli
from experiments import verify as verify_cli

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _cfg(overrides=()):
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose(config_name="zk/cli/prove", overrides=list(overrides))


def test_prove_then_verify_cli(tmp_path, capsys):
    acc = tmp_path / "acct.csv"
    pd.DataFrame([("collateral", "USDC", 5000.0, 1.0, 0.0), ("collateral", "BTC", 0.1, 60000.0, 0.05),
                  ("position", "BTC-PERP", 0.2, 60000.0, 0.0)],
                 columns=["kind", "name", "amount", "price", "haircut"]).to_csv(acc, index=False)
    cfg = _cfg([f"account.path={acc}", "zk.bits.collateral=32", "zk.bits.position=32",
                "scenarios.fractions=[0.0,1.0,-1.0]", "scenarios.cover=[1.0,1.0,1.0]", "buffer_usd=10"])
    m = prove_cli.prove_account(cfg, tmp_path / "out")
    bundle = Path(m["bundle"])
    opened = json.loads(Path(m["openings"]).read_text())
    assert opened["values"][:2] == [str(5000 * 10000), str(1000)]
    assert "values" not in bundle.read_text()
    assert verify_cli.main([str(bundle)]) == 0
    assert "VERIFIED" in capsys.readouterr().out
    # tamper with the public statement: a scenario P&L entry
    obj = json.loads(bundle.read_text())
    obj["statement"]["pnl"][0][1] = str(int(obj["statement"]["pnl"][0][1]) + 1)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(obj))
    assert verify_cli.main([str(bad)]) == 1
    assert "REJECTED" in capsys.readouterr().out
    (tmp_path / "junk.json").write_text("{not json")
    assert verify_cli.main([str(tmp_path / "junk.json")]) == 2


def test_under_margined_account_refused(tmp_path):
    acc = tmp_path / "acct.csv"
    pd.DataFrame([("collateral", "USDC", 100.0, 1.0, 0.0), ("position", "BTC-PERP", 1.0, 60000.0, 0.0)],
                 columns=["kind", "name", "amount", "price", "haircut"]).to_csv(acc, index=False)
    cfg = _cfg([f"account.path={acc}"])
    with pytest.raises(Exception) as ei:
        prove_cli.prove_account(cfg, tmp_path / "out")
    assert isinstance(ei.value, prove_cli.zkproofs.StatementError)


def test_bad_account_file_named(tmp_path):
    acc = tmp_path / "acct.csv"
    acc.write_text("kind,name,amount,price,haircut\ncollateral,USDC,100,1,0\nposition,X,1,-5,0\n")
    with pytest.raises(prove_cli.AccountFileError, match="line 3, column price"):
        prove_cli.load_account(acc)


def test_book_account(tmp_path):
    """Account 0 of the backtest's synthetic book: perpetual positions at the last embedded close."""
    acc = prove_cli.load_account(None, book_index=0)
    assert list(acc.collateral["name"]) == ["USDC"] and len(acc.positions) >= 1
    assert all(n.endswith("-PERP") for n in acc.positions["name"])


def test_parquet_account(tmp_path):
    df = pd.DataFrame([("collateral", "USDC", 1000.0, 1.0, 0.0), ("position", "ETH-PERP", -0.5, 3000.0, 0.0)],
                      columns=["kind", "name", "amount", "price", "haircut"])
    df.to_parquet(tmp_path / "a.parquet")
    acc = prove_cli.load_account(tmp_path / "a.parquet")
    assert acc.positions["amount"].tolist() == [-0.5] and acc.collateral["name"].tolist() == ["USDC"]
