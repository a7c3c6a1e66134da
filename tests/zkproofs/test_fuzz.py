"""Property tests: hostile bytes and JSON never make a verifier raise anything but a ProofError, never accept."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zkproofs
from zkproofs import ProofError, Transcript, verify_range
from zkproofs.fuzz import MUTATIONS, base_bundles, run_fuzz

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=1200))
def test_random_bytes_never_accepted(ark, ark_gens, small_proof, data):
    _, V = small_proof
    try:
        ok = verify_range(data, ark, ark_gens, Transcript(b"test"), V, 8, raise_on_failure=True)
    except ProofError:
        ok = False
    assert not ok


def test_fuzz_in_suite_all_three_kinds():
    """A few hundred mutations over margin, equity and cross-venue bundles: every mutant is rejected with a typed
    error (pinned and unpinned), nothing is accepted that differs from the original, nothing escapes untyped."""
    rep = run_fuzz(350, seed=11)
    assert rep.cases == 350 and set(rep.by_mutation) == set(MUTATIONS)
    assert rep.accepted_forgeries == 0 and rep.untyped_errors == 0, rep.examples
    assert rep.rejected == 350


def test_fuzzer_can_detect_a_forgery():
    """The fuzzer's oracle is not vacuous: a verifier that accepts everything is reported."""
    import zkproofs.fuzz as fz

    real = fz.verify_bundle
    try:
        fz.verify_bundle = lambda *a, **k: True
        rep = fz.run_fuzz(14, seed=0)
    finally:
        fz.verify_bundle = real
    assert rep.accepted_forgeries > 0


@pytest.mark.slow
def test_fuzz_10000():
    rep = run_fuzz(10_500, seed=2026)
    print(rep.summary())
    assert rep.cases >= 10_000 and rep.accepted_forgeries == 0 and rep.untyped_errors == 0, rep.examples


def test_hostile_json_text_is_typed():
    """Infinity in an integer field and 900-deep nesting (both escaped verify_bundle before issue 11)."""
    b = base_bundles()[1]
    text = json.dumps(b.to_json())
    for bad in (text.replace('"buffer": "3"', '"buffer": Infinity'), text.replace('"buffer": "3"', '"buffer": 3'),
                text.replace('"commitments": {', '"commitments": ' + "[" * 900 + "]" * 900 + ', "x": {', 1),
                "[" * 100_000, b"\xff\xfe", text.replace('"curve": "BLS12-381-G1"', '"curve": "BN254"')):
        for pinned in (None, b.statement):
            with pytest.raises(ProofError):
                zkproofs.verify_bundle(bad, raise_on_failure=True, expected_statement=pinned,
                                       trust_bundle_statement=pinned is None)
    d = b.to_json()
    d["commitments"] = d["commitments"]
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    d["commitments"]["collateral"] = deep
    with pytest.raises(zkproofs.MalformedProof):
        zkproofs.verify_bundle(d, raise_on_failure=True, trust_bundle_statement=True)


def test_oversized_commitment_lists_refused_before_any_point_is_decoded(monkeypatch):
    """4,100 commitments used to be decoded before the size limit rejected them: sizes are now checked against
    the statement first (no point is decoded)."""
    from zkproofs.group import ArkworksBackend

    decoded = []
    real = ArkworksBackend.decode
    monkeypatch.setattr(ArkworksBackend, "decode", lambda self, *a, **k: decoded.append(1) or real(self, *a, **k))
    b = base_bundles()[0]
    d = b.to_json()
    d["commitments"]["long"] = d["commitments"]["long"] * 2050
    assert len(d["commitments"]["long"]) == 4100
    with pytest.raises(zkproofs.MalformedProof, match="commitments.long: length 4100"):
        zkproofs.verify_bundle(d, raise_on_failure=True, trust_bundle_statement=True)
    assert decoded == []
    assert zkproofs.verify_bundle(b.to_json(), trust_bundle_statement=True) and decoded  # the patch is live
