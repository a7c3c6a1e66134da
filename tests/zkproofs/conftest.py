"""Shared fixtures for zkproofs tests: backends, generators, small proofs reused across tests."""
from __future__ import annotations

import pytest

from zkproofs import Transcript, get_backend, get_generators, prove_range


@pytest.fixture(scope="session")
def ark():
    return get_backend("arkworks")


@pytest.fixture(scope="session")
def pyecc():
    return get_backend("pyecc")


@pytest.fixture(scope="session")
def ark_gens(ark):
    return get_generators(ark)


@pytest.fixture(scope="session")
def small_proof(ark, ark_gens):
    """An n=8, m=1 proof of v=200 with the application label b"test"."""
    proof, V = prove_range(ark, ark_gens, Transcript(b"test"), [200], [123456789], 8)
    return proof, V


@pytest.fixture(scope="session")
def off_subgroup() -> bytes:
    """Compressed encoding of a point on y^2 = x^3 + 4 that is NOT in the prime-order subgroup (the cofactor of G1
    is ~2^126, so the first x with a square right-hand side gives such a point; checked with py_ecc)."""
    from py_ecc import optimized_bls12_381 as b

    from zkproofs.group import P, R

    x = 5
    while True:
        rhs = (pow(x, 3, P) + 4) % P
        y = pow(rhs, (P + 1) // 4, P)
        if y * y % P == rhs:
            pt = (b.FQ(x), b.FQ(y), b.FQ.one())
            assert b.is_on_curve(pt, b.b)
            if not b.is_inf(b.multiply(pt, R)):
                sign = (y * 2) // P
                z = x | (1 << 383) | (sign << 381)
                return z.to_bytes(48, "big")
        x += 1


def forge_range_proof_unbound_v(be, gens, t, n: int):
    """Frozen Heart (Trail of Bits 2022): a range proof for a V chosen AFTER the Fiat-Shamir challenges, valid only
    under a transcript ``t`` that does not absorb V first. The forger proves value 0 but commits T1 to t1 + d, then
    solves for the V that balances the check. Returns ``(proof, v_f, g_f)`` with V = v_f B + g_f B_blinding and v_f
    a random scalar (far outside [0, 2^n))."""
    import secrets

    from zkproofs import RangeProof
    from zkproofs.group import R
    from zkproofs.innerproduct import ipa_prove
    from zkproofs.rangeproof import _domain_sep

    N = n
    B, Bb, G, H = gens.B, gens.B_blinding, gens.G(N), gens.H(N)
    rnd = lambda: secrets.randbelow(R - 1) + 1  # noqa: E731
    _domain_sep(t, gens, n, 1, 1)
    t.append_message(b"V-derived", b"bound-by-statement")  # the weak transcript: V is NOT absorbed
    alpha, rho = rnd(), rnd()
    sL, sR = [rnd() for _ in range(N)], [rnd() for _ in range(N)]
    A = be.msm([Bb] + H, [alpha] + [R - 1] * N)
    S = be.msm([Bb] + G + H, [rho] + sL + sR)
    t.append_message(b"A", be.encode(A)); t.append_message(b"S", be.encode(S))
    y, z = t.challenge_scalar(b"y"), t.challenge_scalar(b"z")
    zz = z * z % R
    yp = [pow(y, i, R) for i in range(N)]
    l0 = [(0 - z) % R] * N
    r0 = [(yp[i] * (z - 1) + zz * (1 << i)) % R for i in range(N)]
    r1 = [yp[i] * sR[i] % R for i in range(N)]
    t1 = (sum(a * b for a, b in zip(l0, r1)) + sum(a * b for a, b in zip(sL, r0))) % R
    t2 = sum(a * b for a, b in zip(sL, r1)) % R
    d, tau1, tau2 = rnd(), rnd(), rnd()
    T1, T2 = be.msm([B, Bb], [(t1 + d) % R, tau1]), be.msm([B, Bb], [t2, tau2])
    t.append_message(b"T1", be.encode(T1)); t.append_message(b"T2", be.encode(T2))
    x = t.challenge_scalar(b"x")
    lx = [(a + b * x) % R for a, b in zip(l0, sL)]
    rx = [(a + b * x) % R for a, b in zip(r0, r1)]
    t_x = sum(a * b for a, b in zip(lx, rx)) % R
    t_xb, e_bl = rnd(), (alpha + rho * x) % R
    t.append_scalar(b"t_x", t_x); t.append_scalar(b"t_x_blinding", t_xb); t.append_scalar(b"e_blinding", e_bl)
    w = t.challenge_scalar(b"w")
    yinv = pow(y, R - 2, R)
    ipp = ipa_prove(be, t, be.mul(B, w), [1] * N, [pow(yinv, i, R) for i in range(N)], G, H, lx, rx)
    proof = RangeProof(be.encode(A), be.encode(S), be.encode(T1), be.encode(T2), t_x, t_xb, e_bl, ipp)
    # solve for V: z^2 V = (t_x - delta) B + t_xb Bb - x T1 - x^2 T2
    delta = ((z - zz) * sum(yp) - z * zz * ((1 << n) - 1)) % R
    zinv2 = pow(zz, R - 2, R)
    v_f = zinv2 * (t_x - delta - x * (t1 + d) - x * x * t2) % R
    g_f = zinv2 * (t_xb - x * tau1 - x * x * tau2) % R
    return proof, v_f, g_f


@pytest.fixture(scope="session")
def frozen_heart_forgery():
    """:func:`forge_range_proof_unbound_v`, for the tests that show a weak transcript accepts it."""
    return forge_range_proof_unbound_v
