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
