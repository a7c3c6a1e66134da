"""Zero-knowledge margin sufficiency on BLS12-381: Pedersen commitments, aggregated Bulletproofs range proofs,
and margin statements (single venue, equity-covers-margin, cross-venue). Protocol notes: ``zkproofs/NOTES.md``.

Public API (everything else may change):

* group layer: :func:`get_backend` (``"arkworks"`` default, ``"pyecc"`` reference), :data:`R`, :func:`check_scalar`;
* generators and transcript: :func:`get_generators`, :data:`DST_V1`, :class:`Transcript`;
* range proofs: :class:`RangeProof`, :func:`prove_range`, :func:`verify_range`, :func:`batch_verify_range`;
* statements: :class:`MarginStatement`, :func:`prove_margin`, :func:`verify_margin`,
  :func:`prove_equity_covers_margin`, :func:`verify_equity_covers_margin`, :class:`CrossVenueStatement`,
  :func:`prove_cross_venue`, :func:`verify_cross_venue`, :class:`Bundle`, :func:`verify_bundle`,
  :func:`bundle_from_json`, :func:`pnl_to_fixed_point`, :func:`to_fixed_point`;
* errors: :class:`ProofError` and its subclasses.
"""
from .errors import (
    BackendError,
    InvalidPoint,
    InvalidScalar,
    MalformedProof,
    ProofError,
    StatementError,
    VerificationFailed,
)
from .generators import DST_V1, Generators, get_generators
from .group import POINT_BYTES, SCALAR_BYTES, R, ArkworksBackend, GroupBackend, PyEccBackend, check_scalar, get_backend
from .rangeproof import RangeProof, batch_verify_range, commit, padded_m, prove_range, verify_range
from .statement import (
    AffineClaim,
    Bundle,
    CrossVenueStatement,
    EquityStatement,
    MarginStatement,
    Openings,
    StatementProof,
    bundle_from_json,
    pnl_to_fixed_point,
    prove_cross_venue,
    prove_equity_covers_margin,
    prove_margin,
    prove_statement,
    to_fixed_point,
    verify_bundle,
    verify_cross_venue,
    verify_equity_covers_margin,
    verify_margin,
    verify_statement,
)
from .transcript import Transcript
from . import solvency  # noqa: E402,F401  exchange-wide solvency (issue 12): zkproofs.solvency

__all__ = [
    "ProofError", "MalformedProof", "InvalidPoint", "InvalidScalar", "VerificationFailed", "StatementError",
    "BackendError",
    "R", "POINT_BYTES", "SCALAR_BYTES", "GroupBackend", "ArkworksBackend", "PyEccBackend", "get_backend",
    "check_scalar",
    "DST_V1", "Generators", "get_generators", "Transcript",
    "RangeProof", "prove_range", "verify_range", "batch_verify_range", "commit", "padded_m",
    "AffineClaim", "StatementProof", "Openings", "Bundle", "MarginStatement", "EquityStatement",
    "CrossVenueStatement", "prove_statement", "verify_statement", "prove_margin", "verify_margin",
    "prove_equity_covers_margin", "verify_equity_covers_margin", "prove_cross_venue", "verify_cross_venue",
    "verify_bundle", "bundle_from_json", "pnl_to_fixed_point", "to_fixed_point",
]
