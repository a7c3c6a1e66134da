"""Slow: the default policies with RegimeNet training (short budget) and a user positions file."""
import pytest
from hydra import compose, initialize_config_dir

from experiments.backtest import CONF_DIR, run_backtest

POSITIONS = """account,asset,kind,notional_usd,moneyness,tenor_days,collateral_usd
a1,BTC,perpetual,100000,,,25000
a2,ETH,perpetual,-50000,,,8000
a3,ETH,put,30000,1.0,30,6000
a3,ETH,put,-30000,0.9,30,6000
"""


@pytest.mark.slow
def test_default_policies_with_regime_net_and_positions_file(tmp_path):
    pos = tmp_path / "positions.csv"
    pos.write_text(POSITIONS)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="backtest", overrides=[
            f"book.positions_file={pos}", "start=2021-01-01", "eval_start=2021-02-01", "end=2021-12-31",
            "train_end=2020-12-31", "+models.regime_net.max_epochs=5", "oracle_study.enabled=false", "plot=false"])
    m = run_backtest(cfg, tmp_path / "out")
    assert m["config"]["accounts"] == 3
    pred = m["policies"]["predictive"]
    assert pred["model"] == "regime_net"
    assert pred["stress"]["2021-05 crash"]["label"] == "out-of-sample"
    assert m["policies"]["reactive_garch"]["stress"]["2021-05 crash"]["label"] == "out-of-sample"
    # every predictive kind in `compare` is judged against the best reactive policy
    predictive = {k for k, v in m["policies"].items() if str(v.get("kind", "")).startswith("predictive")}
    assert {"predictive", "predictive+buf0.25"} <= predictive
    assert any(k.split("+")[0] == "predictive_smooth" for k in predictive)   # label + its Art. 28 tools, if any
    assert set(m["targets"]) == predictive
    assert (tmp_path / "out" / "report.md").exists()
