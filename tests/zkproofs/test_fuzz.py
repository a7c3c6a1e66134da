"""Property tests: hostile bytes and JSON never make a verifier raise anything but a ProofError, never accept."""
from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zkproofs
from zkproofs import ProofError, Transcript, verify_range

_EQ = zkproofs.prove_equity_covers_margin(150.0, 100.0, bits=16, scale=1)
_EQ_JSON = _EQ.to_json()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=1200))
def test_random_bytes_never_accepted(ark, ark_gens, small_proof, data):
    _, V = small_proof
    try:
        ok = verify_range(data, ark, ark_gens, Transcript(b"test"), V, 8, raise_on_failure=True)
    except ProofError:
        ok = False
    assert not ok


def _paths(o, prefix=()):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from _paths(v, prefix + (i,))
    else:
        yield prefix


_LEAVES = [p for p in _paths(_EQ_JSON) if p and p[0] not in ("proof_bytes", "curve")]


@settings(max_examples=60, deadline=None)
@given(idx=st.integers(0, len(_LEAVES) - 1),
       repl=st.one_of(st.none(), st.integers(-2**300, 2**300), st.text(max_size=5), st.booleans(),
                      st.lists(st.integers(), max_size=2), st.sampled_from(["00" * 48, "c0" + "00" * 47, "ff" * 32])))
def test_mutated_bundle_json_never_raises_untyped(idx, repl):
    obj = copy.deepcopy(_EQ_JSON)
    path = _LEAVES[idx]
    tgt = obj
    for k in path[:-1]:
        tgt = tgt[k]
    if tgt[path[-1]] == repl:
        return
    tgt[path[-1]] = repl
    try:
        ok = zkproofs.verify_bundle(json.loads(json.dumps(obj)), raise_on_failure=True)
    except ProofError:
        ok = False
    # a changed leaf may only keep the proof valid if it encodes the same value (e.g. "1" vs 1 for a version)
    if ok:
        assert zkproofs.bundle_from_json(obj).proof == _EQ.proof
        assert zkproofs.bundle_from_json(obj).statement == _EQ.statement
