"""The proof benchmark runs end to end on a tiny configuration (figures are printed, not asserted)."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir

from experiments import bench_proofs

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def test_bench_runs_tiny():
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose(config_name="zk/cli/bench", overrides=[
            "repeats=1", "account_repeats=1", "batch_size=3", "pyecc=false", "ipa_sizes=[16]",
            "account.collateral=1", "account.positions=2", "account.scenarios=2", "account.input_bits=32",
            "account.scenario_bits=64"])
    r = bench_proofs.run_bench(cfg)
    assert r["bytes64"] == 929 and r["account_inputs"] == 5  # 1 collateral + 2 positions x (long, short)
    assert r["msm_floor64_ms"] > 0 and r["account_prove_1w_ms"] > 0 and r["batch_2p_ms"] > 0
    table = bench_proofs.format_table(r)
    assert "<= 25 ms" in table and "IPA prover N=16: fold" in table and "2 processes" in table
    assert "MSM floor" in table and "1 worker (1 thread)" in table
