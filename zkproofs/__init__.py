"""Zero-knowledge margin sufficiency on BLS12-381: Pedersen commitments, aggregated Bulletproofs range proofs,
and margin statements (single venue, equity-covers-margin, cross-venue). Protocol notes: ``zkproofs/NOTES.md``.

Public API (everything else may change):

* group layer: :func:`get_backend` (``"arkworks"`` default, ``"pyecc"`` reference), :data:`R`, :func:`check_scalar`;
* generators and transcript: :func:`get_generators`, :data:`DST_V1`, :class:`Transcript`;
* range proofs: :class:`RangeProof`, :func:`prove_range`, :func:`verify_range`, :func:`batch_verify_range`;
* statements (format v2: every statement carries a :class:`Context`; verifiers pin the statement with
  ``verify_bundle(bundle, expected_statement=...)``): :class:`Context`, :class:`MarginStatement`,
  :func:`prove_margin`, :func:`verify_margin`,
  :func:`prove_equity_covers_margin`, :func:`verify_equity_covers_margin`, :class:`CrossVenueStatement`,
  :func:`prove_cross_venue`, :func:`verify_cross_venue`, :class:`Bundle`, :func:`verify_bundle`,
  :func:`bundle_from_json`, :func:`statement_from_json`, :func:`check_statement_matches`,
  :func:`pnl_to_fixed_point`, :func:`to_fixed_point`, :func:`margin_from_usd` (USD / coin amounts to an exactly
  conservative fixed-point statement);
* errors: :class:`ProofError` and its subclasses.
"""
from .errors import (
    BackendError,
    ExpiredStatement,
    InvalidPoint,
    InvalidScalar,
    MalformedProof,
    ProofError,
    StatementError,
    StatementMismatch,
    VerificationFailed,
)
from .fixedpoint import FixedPointMargin, margin_from_usd
from .generators import DST_V1, Generators, get_generators
from .group import POINT_BYTES, SCALAR_BYTES, R, ArkworksBackend, GroupBackend, PyEccBackend, check_scalar, get_backend
from .rangeproof import (
    RangeProof,
    batch_verify_parallel,
    batch_verify_range,
    commit,
    padded_m,
    prove_range,
    verify_range,
)
from .statement import (
    AffineClaim,
    Bundle,
    Context,
    CrossVenueStatement,
    EquityStatement,
    MarginStatement,
    Openings,
    StatementProof,
    bundle_from_json,
    check_statement_matches,
    pnl_to_fixed_point,
    prove_cross_venue,
    prove_equity_covers_margin,
    prove_margin,
    prove_statement,
    statement_from_json,
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
    "BackendError", "StatementMismatch", "ExpiredStatement",
    "R", "POINT_BYTES", "SCALAR_BYTES", "GroupBackend", "ArkworksBackend", "PyEccBackend", "get_backend",
    "check_scalar",
    "DST_V1", "Generators", "get_generators", "Transcript",
    "RangeProof", "prove_range", "verify_range", "batch_verify_range", "batch_verify_parallel", "commit", "padded_m",
    "AffineClaim", "StatementProof", "Openings", "Bundle", "MarginStatement", "EquityStatement",
    "CrossVenueStatement", "prove_statement", "verify_statement", "prove_margin", "verify_margin",
    "prove_equity_covers_margin", "verify_equity_covers_margin", "prove_cross_venue", "verify_cross_venue",
    "verify_bundle", "bundle_from_json", "pnl_to_fixed_point", "to_fixed_point",
    "Context", "statement_from_json", "check_statement_matches", "FixedPointMargin", "margin_from_usd",
]
