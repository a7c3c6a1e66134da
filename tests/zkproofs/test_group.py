"""Group layer: RFC 9380 test vectors on both backends, identical generators, checked decoding, scalar guards."""
from __future__ import annotations

import secrets

import pytest

from zkproofs import DST_V1, BackendError, InvalidPoint, InvalidScalar, R, get_generators
from zkproofs.group import P, scalar_from_bytes

# RFC 9380 appendix J.9.1, suite BLS12381G1_XMD:SHA-256_SSWU_RO_ (affine x || y, big-endian hex).
QUUX_DST = b"QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_"
RFC9380_G1 = [
    (b"", "052926add2207b76ca4fa57a8734416c8dc95e24501772c814278700eed6d1e4e8cf62d9c09db0fac349612b759e79a1",
     "08ba738453bfed09cb546dbb0783dbb3a5f1f566ed67bb6be0e8c67e2e81a4cc68ee29813bb7994998f3eae0c9c6a265"),
    (b"abc", "03567bc5ef9c690c2ab2ecdf6a96ef1c139cc0b2f284dca0a9a7943388a49a3aee664ba5379a7655d3c68900be2f6903",
     "0b9c15f3fe6e5cf4211f346271d7b01c8f3b28be689c8429c85b67af215533311f0b8dfaaa154fa6b88176c229f2885d"),
    (b"abcdef0123456789",
     "11e0b079dea29a68f0383ee94fed1b940995272407e3bb916bbf268c263ddd57a6a27200a784cbc248e84f357ce82d98",
     "03a87ae2caf14e8ee52e51fa2ed8eefe80f02457004ba4d486d6aa1f517c0889501dc7413753f9599b099ebcbbd2d709"),
    (b"q128_" + b"q" * 128,
     "15f68eaa693b95ccb85215dc65fa81038d69629f70aeee0d0f677cf22285e7bf58d7cb86eefe8f2e9bc3f8cb84fac488",
     "1807a1d50c29f430b8cafc4f8638dfeeadf51211e1602a5f184443076715f91bb90a48ba1e370edce6ae1062f5e6dd38"),
    (b"a512_" + b"a" * 512,
     "082aabae8b7dedb0e78aeb619ad3bfd9277a2f77ba7fad20ef6aabdc6c31d19ba5a6d12283553294c1825c4b3ca2dcfe",
     "05b84ae5a942248eea39e1d91030458c40153f3b654ab7872d779ad1e942856a20c438e8d99bc8abfbf74729ce1f7ac8"),
]


@pytest.mark.parametrize("backend_name", ["arkworks", "pyecc"])
@pytest.mark.parametrize("msg,x,y", RFC9380_G1, ids=["empty", "abc", "abcdef", "q128", "a512"])
def test_hash_to_curve_rfc9380_vectors(request, backend_name, msg, x, y):
    be = request.getfixturevalue("ark" if backend_name == "arkworks" else "pyecc")
    assert be.affine(be.hash_to_curve(msg, QUUX_DST)) == (int(x, 16), int(y, 16))


@pytest.mark.parametrize("fixture", ["ark", "pyecc"])
def test_empty_dst_refused(request, fixture):
    be = request.getfixturevalue(fixture)
    with pytest.raises(BackendError):
        be.hash_to_curve(b"abc", b"")


def test_generators_identical_across_backends(ark, pyecc):
    ga, gp = get_generators(ark), get_generators(pyecc)
    assert ga.dst == DST_V1 and DST_V1.startswith(b"PREDICTIVE-MARGIN-V1-")
    assert ark.encode(ga.B) == pyecc.encode(gp.B)
    assert ark.encode(ga.B_blinding) == pyecc.encode(gp.B_blinding)
    for a, p in zip(ga.G(4) + ga.H(4), gp.G(4) + gp.H(4)):
        assert ark.encode(a) == pyecc.encode(p)
    assert ga.digest(4) == gp.digest(4)
    assert ga.digest(4) != ga.digest(8)
    # independent generators: none is the standard generator or a repeat
    encs = {ark.encode(p) for p in [ga.B, ga.B_blinding] + ga.G(8) + ga.H(8)}
    assert len(encs) == 18 and ark.encode(ark.generator()) not in encs


@pytest.mark.parametrize("fixture", ["ark", "pyecc"])
def test_encode_decode_roundtrip_and_cross_backend(request, fixture, ark, pyecc):
    be = request.getfixturevalue(fixture)
    p = be.mul(be.hash_to_curve(b"x", DST_V1), 987654321)
    enc = be.encode(p)
    assert len(enc) == 48
    assert be.eq(be.decode(enc), p)
    other = pyecc if be is ark else ark
    assert other.encode(other.decode(enc)) == enc


@pytest.mark.parametrize("fixture", ["ark", "pyecc"])
def test_decode_rejects_bad_encodings(request, fixture, off_subgroup):
    be = request.getfixturevalue(fixture)
    good = be.encode(be.hash_to_curve(b"y", DST_V1))
    ident = be.encode(be.identity())
    assert ident == bytes([0xC0]) + bytes(47)
    with pytest.raises(InvalidPoint):  # identity where a real point is required
        be.decode(ident)
    assert be.is_identity(be.decode(ident, allow_identity=True))
    bad = [
        good[:-1],  # truncated
        good + b"\x00",  # over-long
        bytes([good[0] & 0x7F]) + good[1:],  # compression flag cleared
        bytes([0xC0 | 0x20]) + bytes(47),  # identity with sign flag
        bytes([0xC0]) + bytes(46) + b"\x01",  # identity with nonzero x
        bytes([0x80 | 0x1A]) + bytes.fromhex("0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab"[2:]),
        (P | (1 << 383)).to_bytes(48, "big"),  # x = p (non-canonical)
        ((P + 3) | (1 << 383)).to_bytes(48, "big"),  # x >= p
        off_subgroup,  # on the curve, not in the subgroup
        "not bytes",
    ]
    # an x with no curve point: find the smallest such x
    x = 1
    while True:
        rhs = (pow(x, 3, P) + 4) % P
        if pow(rhs, (P - 1) // 2, P) != 1:
            break
        x += 1
    bad.append((x | (1 << 383)).to_bytes(48, "big"))
    for b in bad:
        with pytest.raises(InvalidPoint):
            be.decode(b)


def test_off_subgroup_point_is_on_curve_and_arkworks_unchecked_would_take_it(ark, off_subgroup):
    enc = off_subgroup
    import py_arkworks_bls12381 as a

    p = a.G1Point.from_compressed_bytes_unchecked(enc)  # the raw library accepts it ...
    assert not p.is_in_subgroup()
    with pytest.raises(InvalidPoint):  # ... our decoder does not
        ark.decode(enc)


@pytest.mark.parametrize("fixture", ["ark", "pyecc"])
def test_scalars_refused_not_reduced(request, fixture):
    be = request.getfixturevalue(fixture)
    g = be.hash_to_curve(b"z", DST_V1)
    for bad in (-1, R, R + 5, 2**256, 1.0, "3", True):
        with pytest.raises(InvalidScalar):
            be.mul(g, bad)
        with pytest.raises(InvalidScalar):
            be.msm([g], [bad])
    # arkworks' Scalar(int) would reduce R + 5 to 5 silently; we refuse instead (checked above) and R-1 works
    assert be.eq(be.add(be.mul(g, R - 1), g), be.identity())


def test_msm_length_mismatch_refused_and_matches_reference(ark, pyecc):
    pts_a = [ark.hash_to_curve(bytes([i]), DST_V1) for i in range(5)]
    with pytest.raises(BackendError):
        ark.msm(pts_a, [1, 2, 3])  # arkworks' multiexp_unchecked would silently truncate
    with pytest.raises(BackendError):
        pyecc.msm([pyecc.generator()], [1, 2])
    sc = [secrets.randbelow(R) for _ in range(5)]
    pts_p = [pyecc.decode(ark.encode(p)) for p in pts_a]
    assert ark.encode(ark.msm(pts_a, sc)) == pyecc.encode(pyecc.msm(pts_p, sc))
    # split-over-threads MSM equals the sum of scalar multiplications
    big = [ark.hash_to_curve(i.to_bytes(2, "big"), DST_V1) for i in range(60)]
    sc = [secrets.randbelow(R) for _ in big]
    ref = ark.identity()
    for p, s in zip(big, sc):
        ref = ark.add(ref, ark.mul(p, s))
    assert ark.eq(ark.msm(big, sc), ref)


def test_scalar_from_bytes_canonical():
    assert scalar_from_bytes((R - 1).to_bytes(32, "big")) == R - 1
    with pytest.raises(InvalidScalar):
        scalar_from_bytes(R.to_bytes(32, "big"))
    with pytest.raises(InvalidScalar):
        scalar_from_bytes(b"\x00" * 31)


def test_arkworks_decoder_accepts_exactly_what_the_library_checked_decoder_accepts(ark, off_subgroup):
    """Our fast decoder (strict flags + unchecked decompression + subgroup check) against the library's checked
    ``from_compressed_bytes`` on random and mutated encodings."""
    import py_arkworks_bls12381 as a

    good = [ark.encode(ark.mul(ark.hash_to_curve(b"d", DST_V1), secrets.randbelow(R))) for _ in range(20)]
    cands = good + [off_subgroup] + [secrets.token_bytes(48) for _ in range(100)]
    cands += [bytes([g[0] | 0x80]) + secrets.token_bytes(47) for g in good]
    cands += [g[:47] + bytes([g[47] ^ 1]) for g in good] + [bytes([g[0] ^ 0x20]) + g[1:] for g in good]
    for c in cands:
        try:
            ref = a.G1Point.from_compressed_bytes(c)
            ref_ok = ref != a.G1Point.identity()
        except Exception:  # noqa: BLE001 - the library raises untyped errors
            ref_ok = False
        try:
            ours = ark.decode(c)
        except InvalidPoint:
            ours = None
        assert (ours is not None) == ref_ok, c.hex()
        if ours is not None:
            assert ours == ref
