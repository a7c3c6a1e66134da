"""Typed errors of the zkproofs package (one class per failure kind, in the manner of dalek's ``ProofError``).

Every public function of :mod:`zkproofs` either returns normally or raises a subclass of :class:`ProofError`;
verifiers turn every failure on hostile input into ``False`` (``verify``) or one of these classes
(``verify_or_raise``), never an unhandled ``ValueError``/``IndexError`` from deep inside.
"""
from __future__ import annotations

__all__ = [
    "ProofError",
    "MalformedProof",
    "InvalidPoint",
    "InvalidScalar",
    "VerificationFailed",
    "StatementError",
    "BackendError",
    "StatementMismatch",
    "ExpiredStatement",
]


class ProofError(ValueError):
    """Base class: anything wrong with a proof, a statement or their encodings."""


class MalformedProof(ProofError):
    """An encoding has the wrong length, version, tag, JSON shape or field type."""


class InvalidPoint(ProofError):
    """A group element is not canonical, not on the curve, not in the prime-order subgroup, or is the identity
    where a real point is required."""


class InvalidScalar(ProofError):
    """A scalar is not an integer in [0, r), or is zero where a nonzero scalar is required."""


class VerificationFailed(ProofError):
    """A well-formed proof does not satisfy the verification equation."""


class StatementError(ProofError):
    """The public statement or the prover's witness is inconsistent: shapes, bit sizes, values out of range,
    coefficients so large that a linear combination could wrap modulo r, an unsatisfied requirement."""


class BackendError(ProofError):
    """Unknown group backend name or backend misuse (e.g. mixing points of two backends)."""


class StatementMismatch(ProofError):
    """The bundle's statement is not the statement the verifier expects (pinned by the venue's ``statement.json``
    or its SHA-256 digest): a prover cannot choose a milder scan range, P&L matrix, buffer or context."""


class ExpiredStatement(ProofError):
    """The statement's context has expired (``expiry`` <= the verifier's time) or is not yet valid."""
