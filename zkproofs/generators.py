"""Generators by RFC 9380 hash-to-curve under a versioned domain-separation tag.

``B`` (value base, "G" in the issue), ``B_blinding`` ("H"), and the vectors ``G_i``, ``H_i`` (i = 0, 1, ...) are
``hash_to_curve(label, DST)`` with suite BLS12381G1_XMD:SHA-256_SSWU_RO_ (RFC 9380 section 8.8.1) and
``DST = b"PREDICTIVE-MARGIN-V1-BLS12381G1_XMD:SHA-256_SSWU_RO_"``. Nobody knows a discrete-log relation between
any two of them (random-oracle model), which is what makes Pedersen commitments binding and the inner-product
argument sound. The lists are prefix-stable (G_i does not depend on n or m), derived lazily and cached per
backend; both backends derive byte-identical generators (tested).

Labels: ``b"pedersen/B"``, ``b"pedersen/B_blinding"``, ``b"bulletproofs/G/" || i (4 bytes BE)``,
``b"bulletproofs/H/" || i (4 bytes BE)``.
"""
from __future__ import annotations

import hashlib
import threading
from typing import Any

from .errors import StatementError
from .group import GroupBackend, get_backend

__all__ = ["DST_V1", "Generators", "get_generators"]

#: Versioned, non-empty DST (RFC 9380 section 3.1: "tags MUST be unique per application, SHOULD include a
#: revision number").
DST_V1 = b"PREDICTIVE-MARGIN-V1-BLS12381G1_XMD:SHA-256_SSWU_RO_"
_DSTS = {1: DST_V1}


class Generators:
    """Pedersen bases ``B``, ``B_blinding`` and Bulletproofs vectors ``G(k)``, ``H(k)`` for one backend and DST."""

    def __init__(self, backend: GroupBackend, dst: bytes = DST_V1):
        if not dst:
            raise ValueError("DST must be non-empty")
        self.backend = backend
        self.dst = bytes(dst)
        self.B = backend.hash_to_curve(b"pedersen/B", self.dst)
        self.B_blinding = backend.hash_to_curve(b"pedersen/B_blinding", self.dst)
        self._G: list[Any] = []
        self._H: list[Any] = []
        self._enc: list[bytes] = []  # encodings of G_i || H_i, for the digest
        self._digests: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def _extend(self, k: int) -> None:
        with self._lock:
            start = len(self._G)
            if k <= start:
                return
            be = self.backend
            idx = range(start, k)
            h2c = lambda lab: be.hash_to_curve(lab, self.dst)  # noqa: E731
            labels_g = [b"bulletproofs/G/" + i.to_bytes(4, "big") for i in idx]
            labels_h = [b"bulletproofs/H/" + i.to_bytes(4, "big") for i in idx]
            mp = getattr(be, "map_parallel", None)
            if mp is not None:
                gs, hs = mp(h2c, labels_g), mp(h2c, labels_h)
            else:
                gs, hs = [h2c(x) for x in labels_g], [h2c(x) for x in labels_h]
            self._G.extend(gs)
            self._H.extend(hs)

    def G(self, k: int) -> list[Any]:
        """First ``k`` generators G_0..G_{k-1}."""
        self._extend(k)
        return self._G[:k]

    def H(self, k: int) -> list[Any]:
        self._extend(k)
        return self._H[:k]

    def digest(self, k: int) -> bytes:
        """SHA-256 over the DST and the encodings of B, B_blinding, G_0..G_{k-1}, H_0..H_{k-1} (absorbed by the
        transcript so a proof is bound to the exact generator set)."""
        d = self._digests.get(k)
        if d is None:
            be = self.backend
            h = hashlib.sha256(b"predictive-margin/generators/v1")
            h.update(len(self.dst).to_bytes(2, "big") + self.dst + k.to_bytes(8, "big"))
            h.update(be.encode(self.B) + be.encode(self.B_blinding))
            for g, hh in zip(self.G(k), self.H(k)):
                h.update(be.encode(g) + be.encode(hh))
            d = self._digests[k] = h.digest()
        return d


_CACHE: dict[tuple[str, bytes], Generators] = {}
_CACHE_LOCK = threading.Lock()


def get_generators(backend: str | GroupBackend = "arkworks", dst_version: int = 1) -> Generators:
    """Cached :class:`Generators` for a backend (name or instance) and DST version."""
    be = get_backend(backend) if isinstance(backend, str) else backend
    if isinstance(dst_version, bool) or not isinstance(dst_version, int) or dst_version not in _DSTS:
        raise StatementError(f"unknown DST version {dst_version!r}; known: {sorted(_DSTS)}")
    dst = _DSTS[dst_version]
    key = (be.name, dst)
    with _CACHE_LOCK:
        g = _CACHE.get(key)
        if g is None:
            g = _CACHE[key] = Generators(be, dst)
    return g
