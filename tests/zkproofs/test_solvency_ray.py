"""Ray layer of zkproofs.solvency: the public output does not depend on the number of workers (byte-identical
bundles, shard files and inclusion files for seed-fixed secrets, SeededSecretSource: TEST ONLY)."""
from __future__ import annotations

import pytest

from zkproofs import ProofError
from zkproofs.solvency import SeededSecretSource, prove_solvency, verify_solvency_file

from test_solvency import make_accounts, make_params

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_2cpu():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _files(d):
    return {str(f.relative_to(d)): f.read_bytes() for f in sorted(d.rglob("*.json"))
}


def test_one_and_two_workers_give_identical_public_output(ray_2cpu, tmp_path):
    p, accts = make_params(shard_size=2), make_accounts(9)
    one = prove_solvency(p, accts, tmp_path / "one", executor="local", secrets_=SeededSecretSource(42))
    two = prove_solvency(p, accts, tmp_path / "two", executor="ray", workers=2, secrets_=SeededSecretSource(42))
    assert one["shards"] == two["shards"] == 5
    a, b = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(a) == sorted(b) and len([k for k in a if k.startswith("inclusion")]) == 9
    for k in a:  # public bundle, shard files, inclusion files, private openings: byte for byte
        assert a[k] == b[k], k
    assert verify_solvency_file(two["public"])["accounts"] == 9
    # the default secret source draws fresh secrets: same statement, different commitments
    three = prove_solvency(p, accts, tmp_path / "three", executor="ray", workers=2)
    assert (tmp_path / "three/public/PUBLIC.json").read_bytes() != a["public/PUBLIC.json"]
    assert three["total_equity_PRIVATE"] == one["total_equity_PRIVATE"]


def test_verification_on_ray_workers(ray_2cpu, tmp_path):
    import json

    s = prove_solvency(make_params(shard_size=2), make_accounts(5), tmp_path, executor="local")
    assert verify_solvency_file(s["public"], workers=2)["accounts"] == 5
    pub = json.loads((tmp_path / "public/PUBLIC.json").read_text())  # swap two shards' references
    pub["shards"][0], pub["shards"][1] = pub["shards"][1], pub["shards"][0]
    (tmp_path / "public/SWAPPED.json").write_text(json.dumps(pub))
    with pytest.raises(ProofError):
        verify_solvency_file(tmp_path / "public/SWAPPED.json", workers=2)
