"""Merlin-style Fiat-Shamir transcript over SHA-256.

The transcript is a running SHA-256 state. Every append is framed as
``b"A" || len(label) (4 bytes LE) || label || len(data) (8 bytes LE) || data`` so no two different sequences of
appends produce the same byte string; every challenge is framed as ``b"C" || len(label) || label || counter`` and
its output seed is absorbed back into the state (ratchet), so later challenges depend on earlier ones.
A challenge scalar is the 512-bit big-endian integer ``SHA-256(seed || 0) || SHA-256(seed || 1)`` reduced mod r
(bias < 2^-256), retried with the next counter if it is zero, so challenges are canonical and nonzero.

The protocol layers (:mod:`zkproofs.rangeproof`, :mod:`zkproofs.statement`) absorb, before the first challenge:
protocol name and version, curve, n, m, a digest of the generators, every commitment and the whole public
statement; and every prover message before the challenge that depends on it (Frozen Heart, Trail of Bits 2022).
Design after Merlin (https://merlin.cool), with SHA-256 in place of STROBE/Keccak.
"""
from __future__ import annotations

import hashlib

from .group import R

__all__ = ["Transcript", "TRANSCRIPT_LABEL"]

TRANSCRIPT_LABEL = b"predictive-margin/transcript/v1"


class Transcript:
    """Fiat-Shamir transcript. ``Transcript(b"app label")``; ``append_message``, ``append_u64``,
    ``challenge_scalar``. ``clone()`` forks the state (prover and verifier each use their own copy)."""

    __slots__ = ("_h",)

    def __init__(self, label: bytes = b""):
        self._h = hashlib.sha256()
        self._absorb(b"dom-sep", TRANSCRIPT_LABEL)
        self._absorb(b"app", bytes(label))

    def _absorb(self, label: bytes, data: bytes) -> None:
        self._h.update(b"A" + len(label).to_bytes(4, "little") + label + len(data).to_bytes(8, "little") + data)

    def append_message(self, label: bytes, data: bytes) -> None:
        """Absorb ``data`` under ``label`` (length-prefixed, domain-separated)."""
        self._absorb(bytes(label), bytes(data))

    def append_u64(self, label: bytes, x: int) -> None:
        if not 0 <= int(x) < 1 << 64:
            raise ValueError(f"append_u64: {x} out of range")
        self._absorb(bytes(label), int(x).to_bytes(8, "little"))

    def append_scalar(self, label: bytes, s: int) -> None:
        self._absorb(bytes(label), int(s).to_bytes(32, "big"))

    def challenge_bytes(self, label: bytes, counter: int = 0) -> bytes:
        label = bytes(label)
        self._h.update(b"C" + len(label).to_bytes(4, "little") + label + counter.to_bytes(4, "little"))
        seed = self._h.copy().digest()
        self._h.update(seed)  # ratchet: later challenges depend on this one
        return hashlib.sha256(seed + b"\x00").digest() + hashlib.sha256(seed + b"\x01").digest()

    def challenge_scalar(self, label: bytes) -> int:
        """A canonical nonzero scalar in [1, r) bound to everything absorbed so far."""
        counter = 0
        while True:
            c = int.from_bytes(self.challenge_bytes(label, counter), "big") % R
            if c:
                return c
            counter += 1  # pragma: no cover - probability ~2^-255

    def clone(self) -> "Transcript":
        t = Transcript.__new__(Transcript)
        t._h = self._h.copy()
        return t
