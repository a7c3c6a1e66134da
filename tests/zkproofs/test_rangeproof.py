"""Aggregated Bulletproofs: completeness, sizes, encodings, tampering, Frozen Heart, batch, cross-backend."""
from __future__ import annotations

import json
import secrets

import pytest

from zkproofs import (
    InvalidScalar,
    MalformedProof,
    ProofError,
    R,
    RangeProof,
    StatementError,
    Transcript,
    batch_verify_range,
    get_generators,
    prove_range,
    verify_range,
)
from zkproofs.innerproduct import ipa_prove
from zkproofs.rangeproof import check_terms, range_verification_terms


def _rand_blinds(m):
    return [secrets.randbelow(R - 1) + 1 for _ in range(m)]


@pytest.mark.parametrize("n,values", [(8, [0]), (8, [255, 1, 7]), (16, [65535, 0, 1, 2]), (32, [2**32 - 1]),
                                      (64, [2**64 - 1, 12345])])
def test_prove_verify_and_size(ark, ark_gens, n, values):
    proof, V = prove_range(ark, ark_gens, Transcript(b"t"), values, _rand_blinds(len(values)), n)
    assert verify_range(proof, ark, ark_gens, Transcript(b"t"), V, n)
    raw = proof.to_bytes()
    mp = 1 << (len(values) - 1).bit_length()
    k = (n * mp).bit_length() - 1
    assert len(raw) == 1 + (2 * k + 4) * 48 + 5 * 32 == RangeProof.size(n, len(values))
    assert RangeProof.from_bytes(raw) == proof
    assert RangeProof.from_json(json.loads(json.dumps(proof.to_json()))) == proof
    # different application label, n or m: rejected
    assert not verify_range(proof, ark, ark_gens, Transcript(b"other"), V, n)
    assert not verify_range(proof, ark, ark_gens, Transcript(b"t"), V, 8 if n != 8 else 16)
    if len(values) > 1:
        assert not verify_range(proof, ark, ark_gens, Transcript(b"t"), V[:-1], n)


def test_single_64bit_proof_is_928_bytes_plus_version(ark, ark_gens):
    proof, V = prove_range(ark, ark_gens, Transcript(b"t"), [2**63], _rand_blinds(1), 64)
    assert len(proof.to_bytes()) == 1 + 928


@pytest.mark.parametrize("mode,switch_at", [("msm", 0), ("fold", 0), ("hybrid", 4), ("hybrid", 2)])
def test_ipa_modes_agree(ark, ark_gens, mode, switch_at):
    """Both IPA provers compute identical L, R and final scalars for the same inputs and transcript."""
    N = 16
    a = [secrets.randbelow(R) for _ in range(N)]
    b = [secrets.randbelow(R) for _ in range(N)]
    hf = [secrets.randbelow(R - 1) + 1 for _ in range(N)]
    Q = ark_gens.B
    ref = ipa_prove(ark, Transcript(b"ipa"), Q, [1] * N, hf, ark_gens.G(N), ark_gens.H(N), a, b, mode="fold")
    got = ipa_prove(ark, Transcript(b"ipa"), Q, [1] * N, hf, ark_gens.G(N), ark_gens.H(N), a, b, mode=mode,
                    switch_at=switch_at)
    assert got == ref
    # and against the definition: fold by hand with plain scalar multiplications, final a*G + b*H + ab*Q = P'
    from zkproofs.innerproduct import ipa_verification_scalars

    usq, uinvsq, s = ipa_verification_scalars(got, N, Transcript(b"ipa"))
    Gs, Hs = ark_gens.G(N), ark_gens.H(N)
    P = ark.msm(Gs + [ark.mul(h, f) for h, f in zip(Hs, hf)] + [Q], a + b + [sum(x * y for x, y in zip(a, b)) % R])
    for Lb, Rb, u2, ui2 in zip(got.L, got.R, usq, uinvsq):
        P = ark.add(P, ark.add(ark.mul(ark.decode(Lb), u2), ark.mul(ark.decode(Rb), ui2)))
    rhs = ark.msm(Gs + Hs + [Q], [got.a * si % R for si in s] +
                  [got.b * s[N - 1 - i] * hf[i] % R for i in range(N)] + [got.a * got.b % R])
    assert ark.eq(P, rhs)


def test_prover_refuses_out_of_range_and_bad_inputs(ark, ark_gens):
    with pytest.raises(StatementError):
        prove_range(ark, ark_gens, Transcript(b"t"), [256], [1], 8)
    with pytest.raises(StatementError):
        prove_range(ark, ark_gens, Transcript(b"t"), [-1], [1], 8)
    with pytest.raises(StatementError):  # wraparound: r - 5 is "-5"
        prove_range(ark, ark_gens, Transcript(b"t"), [R - 5], [1], 64)
    with pytest.raises(StatementError):
        prove_range(ark, ark_gens, Transcript(b"t"), [1], [1], 12)
    with pytest.raises(InvalidScalar):
        prove_range(ark, ark_gens, Transcript(b"t"), [1], [R], 8)


def test_out_of_range_commitment_with_someone_elses_proof_rejected(ark, ark_gens, small_proof):
    """A proof for v=200 does not verify for a commitment to 2^8 + 200, to r - 5 or to the same value with a
    different blinding."""
    proof, V = small_proof
    B, Bb = ark_gens.B, ark_gens.B_blinding
    for v, g in [(256 + 200, 123456789), (R - 5, 123456789), (200, 123456790)]:
        C = ark.encode(ark.msm([B, Bb], [v, g]))
        assert not verify_range(proof, ark, ark_gens, Transcript(b"test"), [C], 8)
    assert verify_range(proof, ark, ark_gens, Transcript(b"test"), V, 8)


def _flip_all(raw):
    for i in range(len(raw)):
        for bit in range(8):
            yield i, bit, raw[:i] + bytes([raw[i] ^ (1 << bit)]) + raw[i + 1:]


def test_every_single_bit_flip_rejected(ark, ark_gens, small_proof):
    proof, V = small_proof
    raw = proof.to_bytes()
    accepted = []
    for i, bit, bad in _flip_all(raw):
        try:
            ok = verify_range(bad, ark, ark_gens, Transcript(b"test"), V, 8, raise_on_failure=True)
        except ProofError:
            continue
        if ok:
            accepted.append((i, bit))
    assert accepted == []
    assert len(raw) * 8 == 641 * 8


def test_each_element_replaced_truncated_overlong(ark, ark_gens, small_proof, off_subgroup):
    proof, V = small_proof
    raw = proof.to_bytes()
    other = ark.encode(ark.hash_to_curve(b"other", b"TEST-DST"))
    ident = ark.encode(ark.identity())
    off = 1
    fields = [(off + 48 * i, 48) for i in range(4)] + [(off + 192 + 32 * i, 32) for i in range(3)]
    k = len(proof.ipp.L)
    fields += [(off + 288 + 48 * i, 48) for i in range(2 * k)] + [(len(raw) - 64, 32), (len(raw) - 32, 32)]
    for start, ln in fields:
        repl = [other, ident, off_subgroup, bytes(48)] if ln == 48 else \
            [(1).to_bytes(32, "big"), R.to_bytes(32, "big"), b"\xff" * 32, bytes(32)]
        for r in repl:
            bad = raw[:start] + r + raw[start + ln:]
            assert not verify_range(bad, ark, ark_gens, Transcript(b"test"), V, 8), (start, r.hex())
            with pytest.raises(ProofError):
                verify_range(bad, ark, ark_gens, Transcript(b"test"), V, 8, raise_on_failure=True)
    for bad in [raw[:-1], raw[:10], b"", raw + b"\x00", raw + raw[-96:], b"\x02" + raw[1:], raw[:-32]]:
        with pytest.raises(MalformedProof):
            verify_range(bad, ark, ark_gens, Transcript(b"test"), V, 8, raise_on_failure=True)
    # swapped L and R, swapped A and S
    swapped = RangeProof(proof.S, proof.A, proof.T1, proof.T2, proof.t_x, proof.t_x_blinding, proof.e_blinding,
                         proof.ipp)
    assert not verify_range(swapped, ark, ark_gens, Transcript(b"test"), V, 8)
    # bad commitments: identity, off-subgroup, garbage, wrong count
    for C in ([ident], [off_subgroup], [b"\x00" * 48], [b"\x01"], [], V + V, ["zz"]):
        assert not verify_range(proof, ark, ark_gens, Transcript(b"test"), C, 8)


def test_hostile_json_rejected_with_typed_error():
    for obj in [None, [], {"version": 1}, {"version": 2}, {"version": 1, "A": 1}, "x"]:
        with pytest.raises(MalformedProof):
            RangeProof.from_json(obj)


def test_frozen_heart_weak_transcript_accepts_forgery_ours_refuses(ark, ark_gens, frozen_heart_forgery):
    """Trail of Bits 2022 ("Frozen Heart"): if V is not absorbed before the challenges, a prover can choose V
    AFTER seeing them. Here the forger proves for value 0 but commits T1 to t1 + d, then solves for the V that
    balances the equation: it knows V's opening (v_f, gamma_f) and v_f is a random scalar (out of range)."""
    n = 8
    forged, v_f, g_f = frozen_heart_forgery(ark, ark_gens, Transcript(b"weak"), n)
    V = ark.msm([ark_gens.B, ark_gens.B_blinding], [v_f, g_f])
    assert not 0 <= v_f < 2**n  # the forger knows an opening of V to a value far outside [0, 2^8)
    weak = range_verification_terms(forged, ark, ark_gens, Transcript(b"weak"), None, n, derived=([V], [[(0, 1)]]))
    assert check_terms(ark, ark_gens, [weak])  # the weakened verifier accepts the forgery
    # our verifier absorbs V (and everything else) before the first challenge: refused
    assert not verify_range(forged, ark, ark_gens, Transcript(b"weak"), [ark.encode(V)], n)


def test_batch_verification(ark, ark_gens):
    good = []
    for i in range(6):
        n = [8, 16, 32][i % 3]
        p, V = prove_range(ark, ark_gens, Transcript(b"b%d" % i), [i * 3, 5][: 1 + i % 2], _rand_blinds(1 + i % 2), n)
        good.append((p, V, n, i))
    assert batch_verify_range([(p, V, n, Transcript(b"b%d" % i)) for p, V, n, i in good], ark, ark_gens)
    # one bad member (wrong transcript label) fails the batch; one swapped commitment too
    bad = [(p, V, n, Transcript(b"b%d" % (i if i != 3 else 99))) for p, V, n, i in good]
    assert not batch_verify_range(bad, ark, ark_gens)
    bad = [(p, good[1][1] if i == 0 else V, n, Transcript(b"b%d" % i)) for p, V, n, i in good]
    assert not batch_verify_range(bad, ark, ark_gens)
    assert not batch_verify_range([(b"\x01garbage", good[0][1], 8, Transcript(b"b0"))], ark, ark_gens)


def test_cross_backend_proofs(ark, pyecc):
    """A proof made with py_ecc verifies with arkworks and vice versa (n=8, m=1 to keep py_ecc fast)."""
    gp, ga = get_generators(pyecc), get_generators(ark)
    p1, V1 = prove_range(pyecc, gp, Transcript(b"x"), [77], [secrets.randbelow(R)], 8)
    assert verify_range(p1.to_bytes(), ark, ga, Transcript(b"x"), V1, 8)
    p2, V2 = prove_range(ark, ga, Transcript(b"x"), [201], [secrets.randbelow(R)], 8)
    assert verify_range(p2.to_bytes(), pyecc, gp, Transcript(b"x"), V2, 8)
    assert not verify_range(p2.to_bytes(), pyecc, gp, Transcript(b"x"), V1, 8)


@pytest.mark.slow
def test_every_bit_flip_rejected_n16_m2(ark, ark_gens):
    proof, V = prove_range(ark, ark_gens, Transcript(b"s"), [1, 2], _rand_blinds(2), 16)
    raw = proof.to_bytes()
    for i, bit, bad in _flip_all(raw):
        assert not verify_range(bad, ark, ark_gens, Transcript(b"s"), V, 16)


@pytest.mark.parametrize("path", sorted((__import__("pathlib").Path(__import__("zkproofs").__file__).parent / "data")
                                        .glob("*.rp.json")), ids=lambda p: p.name)
def test_stored_range_proofs_keep_verifying(ark, ark_gens, path):
    """Stored v1 range proofs (one made with py_ecc) keep verifying with arkworks; a flipped last byte does not."""
    obj = json.loads(path.read_text())
    raw = bytes.fromhex(obj["proof"])
    V = [bytes.fromhex(c) for c in obj["commitments"]]
    assert verify_range(raw, ark, ark_gens, Transcript(obj["label"].encode()), V, obj["n"])
    assert not verify_range(raw[:-1] + bytes([raw[-1] ^ 1]), ark, ark_gens, Transcript(obj["label"].encode()), V,
                            obj["n"])


@pytest.mark.parametrize("mode", ["msm", "hybrid"])
def test_native_scalar_ipa_equals_int_ipa(ark, pyecc, ark_gens, mode):
    """The arkworks prover keeps scalars as native ``Scalar`` objects; py_ecc runs the plain-int path. Same
    inputs, same transcript: identical proofs."""
    N = 8
    gp = get_generators(pyecc)
    a = [secrets.randbelow(R) for _ in range(N)]
    b = [secrets.randbelow(R) for _ in range(N)]
    hf = [secrets.randbelow(R - 1) + 1 for _ in range(N)]
    pa = ipa_prove(ark, Transcript(b"n"), ark_gens.B, [1] * N, hf, ark_gens.G(N), ark_gens.H(N), a, b, mode=mode,
                   switch_at=1 if mode == "msm" else 2)
    pp = ipa_prove(pyecc, Transcript(b"n"), gp.B, [1] * N, hf, gp.G(N), gp.H(N), a, b, mode=mode,
                   switch_at=1 if mode == "msm" else 2)
    assert pa == pp


def test_parallel_paths_verify_and_reject(ark, ark_gens):
    """Both cores: a statement proved with its range proofs in two worker processes verifies like the serial one;
    batch verification split over two processes accepts good proofs and rejects a batch with one bad proof."""
    import zkproofs

    ctx = zkproofs.Context("v", "a", 1, 2**40)
    st = zkproofs.MarginStatement([3, 1], [[2, -5], [-4, 7]], 10, 16, 8, 32, context=ctx)
    b = zkproofs.prove_margin(st, [100, 50], [6, -3], workers=2)
    assert zkproofs.verify_bundle(b.to_json(), expected_statement=st)
    assert len(b.proof.proofs) == 3
    items = []
    for v in (1, 2, 3, 2**16 - 1):
        p, V = prove_range(ark, ark_gens, Transcript(b"par"), [v], _rand_blinds(1), 16)
        items.append((p.to_bytes(), V, 16, b"par"))
    assert zkproofs.batch_verify_parallel(items, workers=2)
    bad = list(items)
    bad[3] = (bad[3][0], items[2][1], 16, b"par")  # someone else's commitment
    assert not zkproofs.batch_verify_parallel(bad, workers=2)
    assert not zkproofs.batch_verify_parallel(items[:3] + [(items[3][0], items[3][1], 16, b"other")], workers=2)
    assert not zkproofs.batch_verify_parallel([(b"\x01junk", items[0][1], 16, b"par")] * 2, workers=2)
