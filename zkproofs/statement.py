"""Margin-sufficiency statements over Pedersen commitments, proved with aggregated Bulletproofs.

Every statement here is a set of *affine range claims* over committed integers x_i (inputs):

    sum_i a_i x_i + c  in  [0, 2^n)          (a_i, c public signed integers, n in {8, 16, 32, 64})

The verifier derives the commitment of each claim homomorphically, ``sum_i a_i C_i + c B`` (never sees an
opening), and all claims with the same n are proved by ONE aggregated range proof. Every input has its own
range claim (x_i in [0, 2^n) or x_i + 2^(n-1) in [0, 2^n) for signed inputs), so every derived value is bounded
as an integer; the code refuses statements for which sum_i |a_i| max|x_i| + |c| + 2^n >= 2^250 (<< r/2 ~ 2^253.9),
so no claim can hold "mod r" without holding over the integers (REFERENCE.md section 4, wraparound).

Transcript: protocol label and version, statement kind, the canonical JSON of the whole public statement, the DST
version, every input commitment; then each range proof (which absorbs n, m, the generator digest and every
prover message before each challenge). All range proofs of a statement are checked in one multi-scalar
multiplication.

Statements (see ``zkproofs/NOTES.md`` for exactly what is proved and what leaks):

* :class:`MarginStatement`: private collateral balances b_k >= 0 and signed positions q_j; public haircut prices
  w_k, per-unit scenario P&L matrix L (instruments x scenarios) and buffer; for every scenario s,
  sum_k w_k b_k + sum_j L[j, s] q_j - buffer >= 0.
* :class:`EquityStatement`: committed equity E and maintenance margin M with E - M - buffer >= 0 (issue 2).
* :class:`CrossVenueStatement`: shared collateral, positions at several venues with their own matrices,
  committed per-venue worst-case losses W_v with W_v + sum_j L_v[j, s] q_vj >= 0 for every scenario of venue v
  and sum_k w_k b_k - sum_v W_v - buffer >= 0.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import InvalidPoint, MalformedProof, ProofError, StatementError, VerificationFailed
from .generators import get_generators
from .group import R, GroupBackend, check_scalar, get_backend
from .rangeproof import (
    VALID_BITS,
    RangeProof,
    check_terms,
    decode_many,
    prove_range,
    random_scalar,
    range_verification_terms,
)
from .transcript import Transcript

__all__ = [
    "STATEMENT_VERSION",
    "WRAP_BOUND_LOG2",
    "AffineClaim",
    "StatementProof",
    "Openings",
    "MarginStatement",
    "EquityStatement",
    "CrossVenueStatement",
    "Bundle",
    "pnl_to_fixed_point",
    "to_fixed_point",
    "prove_statement",
    "verify_statement",
    "prove_margin",
    "verify_margin",
    "prove_equity_covers_margin",
    "verify_equity_covers_margin",
    "prove_cross_venue",
    "verify_cross_venue",
    "verify_bundle",
    "bundle_from_json",
]

STATEMENT_VERSION = 1
#: Derived values must stay below 2^250 in absolute value (r/2 ~ 2^253.86).
WRAP_BOUND_LOG2 = 250
_MAX_COEFF = 1 << 128
_MAGIC = b"PMZK"


# ------------------------------------------------------------------------------------------------ fixed point
def to_fixed_point(x: float, scale: int, *, rounding: str) -> int:
    """Convert an amount to an integer number of 1/scale units. ``rounding``: "down" (floor) or "up" (ceil).
    Floats are read as their shortest round-tripping decimal (``repr``), so 1234.56 USD at scale 100 is 123456.
    Use "down" for what the prover claims to have (equity, collateral) and "up" for what it owes (margin)."""
    from decimal import Decimal
    from fractions import Fraction

    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        v = Fraction(int(x)) * int(scale)
    else:
        x = float(x)
        if not math.isfinite(x):
            raise StatementError(f"cannot convert non-finite amount {x!r} to fixed point")
        # the shortest decimal that round-trips (1234.56, not 1234.559999...), then exact scaling
        v = Fraction(Decimal(repr(x))) * int(scale)
    return math.floor(v) if rounding == "down" else math.ceil(v) if rounding == "up" else _bad_rounding(rounding)


def _bad_rounding(r):
    raise StatementError(f"rounding must be 'down' or 'up', got {r!r}")


def pnl_to_fixed_point(pnl: np.ndarray, scale: int) -> np.ndarray:
    """Per-unit scenario P&L matrix (instruments x scenarios, float, value units per position unit) to integers in
    1/scale value units, rounded against the prover: floor, so every loss is rounded up in magnitude and every
    gain down. (Exactly conservative for long positions; for a short position q < 0 the rounding can favour the
    prover by at most |q| units of 1/scale per scenario - choose ``scale`` so that is negligible, or add it to the
    buffer; see NOTES.md.) Returns an int64 array (raises :class:`StatementError` on NaN/inf or overflow)."""
    a = np.asarray(pnl, dtype=np.float64)
    if a.ndim != 2:
        raise StatementError(f"pnl must be 2-D (instruments x scenarios), got shape {a.shape}")
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        j, s = bad[0]
        raise StatementError(f"pnl[{j}, {s}] = {a[j, s]!r} is not finite")
    out = np.floor(a * float(scale))
    if np.abs(out).max(initial=0) >= 2.0**62:
        raise StatementError("pnl * scale overflows int64")
    return out.astype(np.int64)


# ------------------------------------------------------------------------------------------------- core claims
@dataclass(frozen=True)
class AffineClaim:
    """``sum_{(i, a) in terms} a * x_i + const`` lies in [0, 2^bits). ``label`` names it in errors."""

    bits: int
    terms: tuple[tuple[int, int], ...]
    const: int
    label: str


def _as_int(v: Any, field: str) -> int:
    if isinstance(v, (bool, float)) or not isinstance(v, (int, np.integer)):
        raise StatementError(f"{field}: expected an integer, got {type(v).__name__} {v!r}")
    return int(v)


def _int_matrix(L: Any, field: str) -> tuple[tuple[int, ...], ...]:
    if isinstance(L, np.ndarray):
        if L.ndim != 2:
            raise StatementError(f"{field}: expected a 2-D matrix, got shape {L.shape}")
        if not np.issubdtype(L.dtype, np.integer) and L.dtype != object:
            raise StatementError(f"{field}: expected an integer matrix, got dtype {L.dtype} "
                                 "(use pnl_to_fixed_point for floats)")
        rows = L.tolist()
    else:
        rows = list(L)
    out = []
    width = None
    for j, row in enumerate(rows):
        row = tuple(_as_int(v, f"{field}[{j}, {s}]") for s, v in enumerate(row))
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise StatementError(f"{field}: row {j} has {len(row)} entries, expected {width}")
        for s, v in enumerate(row):
            if abs(v) >= _MAX_COEFF:
                raise StatementError(f"{field}[{j}, {s}] = {v}: |coefficient| must be < 2^128")
        out.append(row)
    if not out or not width:
        raise StatementError(f"{field}: matrix must have at least one row and one column")
    return tuple(out)


def _check_bits(bits: Any, field: str) -> int:
    b = _as_int(bits, field)
    if b not in VALID_BITS:
        raise StatementError(f"{field} = {b}: must be one of {VALID_BITS}")
    return b


def _check_claims(num_inputs: int, claims: Sequence[AffineClaim]) -> None:
    """Every input needs a single-term range claim (gives its integer bound); every claim must stay below
    2^WRAP_BOUND_LOG2 in absolute value. Raises :class:`StatementError`."""
    bound: list[int | None] = [None] * num_inputs
    for c in claims:
        if len(c.terms) == 1 and c.terms[0][1] == 1:
            i = c.terms[0][0]
            b = max(abs(c.const), abs((1 << c.bits) - 1 - c.const))
            bound[i] = b if bound[i] is None else min(bound[i], b)
    for i, b in enumerate(bound):
        if b is None:
            raise StatementError(f"input {i} has no range claim of its own; derived claims could wrap mod r")
    lim = 1 << WRAP_BOUND_LOG2
    for c in claims:
        tot = abs(c.const) + (1 << c.bits) + sum(abs(a) * bound[i] for i, a in c.terms)
        if tot >= lim:
            raise StatementError(f"claim {c.label}: |value| bound 2^{tot.bit_length()} >= 2^{WRAP_BOUND_LOG2} "
                                 "(terms x coefficient x input range too large: could wrap mod r)")


def _groups(claims: Sequence[AffineClaim]) -> list[tuple[int, list[AffineClaim]]]:
    by: dict[int, list[AffineClaim]] = {}
    for c in claims:
        by.setdefault(c.bits, []).append(c)
    return [(b, by[b]) for b in sorted(by)]


@dataclass(frozen=True)
class StatementProof:
    """One aggregated range proof per distinct bit size of the statement's claims (ascending bit size).

    Encoding v1: ``b"PMZK" || 0x01 || count (1 byte) || (len (4 bytes BE) || range proof bytes)*``."""

    proofs: tuple[RangeProof, ...]

    def to_bytes(self) -> bytes:
        out = [_MAGIC, bytes([STATEMENT_VERSION, len(self.proofs)])]
        for p in self.proofs:
            b = p.to_bytes()
            out += [len(b).to_bytes(4, "big"), b]
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> "StatementProof":
        if not isinstance(data, (bytes, bytearray)) or len(data) < 6 or data[:4] != _MAGIC:
            raise MalformedProof("statement proof: bad magic or too short")
        if data[4] != STATEMENT_VERSION:
            raise MalformedProof(f"statement proof: unknown version {data[4]}")
        cnt, off, proofs = data[5], 6, []
        for _ in range(cnt):
            if off + 4 > len(data):
                raise MalformedProof("statement proof: truncated")
            ln = int.from_bytes(data[off:off + 4], "big")
            off += 4
            if off + ln > len(data):
                raise MalformedProof("statement proof: truncated")
            proofs.append(RangeProof.from_bytes(bytes(data[off:off + ln])))
            off += ln
        if off != len(data):
            raise MalformedProof("statement proof: trailing bytes")
        return cls(tuple(proofs))

    def to_json(self) -> dict:
        return {"version": STATEMENT_VERSION, "range_proofs": [p.to_json() for p in self.proofs]}

    @classmethod
    def from_json(cls, obj: Any) -> "StatementProof":
        if not isinstance(obj, dict) or obj.get("version") != STATEMENT_VERSION or set(obj) != {"version", "range_proofs"}:
            raise MalformedProof("statement proof JSON: bad version or keys")
        if not isinstance(obj["range_proofs"], list):
            raise MalformedProof("statement proof JSON: range_proofs must be a list")
        return cls(tuple(RangeProof.from_json(p) for p in obj["range_proofs"]))

    def __len__(self) -> int:
        return len(self.to_bytes())


@dataclass(frozen=True)
class Openings:
    """PRIVATE openings: committed values and blinding factors, in input order. Never publish."""

    values: tuple[int, ...]
    blindings: tuple[int, ...]

    def to_json(self) -> dict:
        return {"warning": "PRIVATE: openings of the commitments; do not publish",
                "values": [str(v) for v in self.values], "blindings": [f"{b:064x}" for b in self.blindings]}

    @classmethod
    def from_json(cls, obj: dict) -> "Openings":
        return cls(tuple(int(v) for v in obj["values"]), tuple(int(b, 16) for b in obj["blindings"]))


def _transcript(kind: str, statement_json: dict, dst_version: int, commitments: Sequence[bytes]) -> Transcript:
    t = Transcript(b"predictive-margin/statement")
    t.append_message(b"protocol", f"predictive-margin/{kind}/v{STATEMENT_VERSION}".encode())
    t.append_message(b"curve", b"BLS12-381-G1")
    t.append_u64(b"dst-version", dst_version)
    t.append_message(b"statement", json.dumps(statement_json, sort_keys=True, separators=(",", ":")).encode())
    t.append_u64(b"num-commitments", len(commitments))
    for c in commitments:
        t.append_message(b"C", c)
    return t


def prove_statement(
    kind: str,
    statement_json: dict,
    claims: Sequence[AffineClaim],
    values: Sequence[int],
    *,
    backend: str | GroupBackend = "arkworks",
    dst_version: int = 1,
    ipa_mode: str = "hybrid",
    blindings: Sequence[int] | None = None,
) -> tuple[list[bytes], StatementProof, Openings]:
    """General prover: commit to ``values`` (fresh blindings from ``secrets`` unless given) and prove every
    claim. Returns (commitments, proof, openings). Raises :class:`StatementError` if a claim is false."""
    be = get_backend(backend) if isinstance(backend, str) else backend
    gens = get_generators(be, dst_version)
    _check_claims(len(values), claims)
    vals = [_as_int(v, f"value[{i}]") for i, v in enumerate(values)]
    blinds = list(blindings) if blindings is not None else [random_scalar() for _ in vals]
    if len(blinds) != len(vals):
        raise StatementError("one blinding per value required")
    for i, v in enumerate(vals):
        if abs(v) >= R // 4:
            raise StatementError(f"value[{i}] = {v} is out of the integer range of the scheme")
        check_scalar(blinds[i], field=f"blinding[{i}]")
    comms = [be.encode(be.msm([gens.B, gens.B_blinding], [v % R, g])) for v, g in zip(vals, blinds)]
    # evaluate every claim over the integers before any proving work
    group_vals = []
    for bits, cl in _groups(claims):
        vs, bs = [], []
        for c in cl:
            v = sum(a * vals[i] for i, a in c.terms) + c.const
            if not 0 <= v < (1 << bits):
                raise StatementError(f"claim {c.label} is false: value {v} not in [0, 2^{bits})")
            vs.append(v)
            bs.append(sum(a * blinds[i] for i, a in c.terms) % R)
        group_vals.append((bits, vs, bs))
    t = _transcript(kind, statement_json, dst_version, comms)
    proofs = [prove_range(be, gens, t, vs, bs, bits, ipa_mode=ipa_mode, absorb_V=False)[0]
              for bits, vs, bs in group_vals]
    return comms, StatementProof(tuple(proofs)), Openings(tuple(vals), tuple(blinds))


def verify_statement(
    kind: str,
    statement_json: dict,
    claims: Sequence[AffineClaim],
    commitments: Sequence[bytes],
    proof: StatementProof | bytes,
    *,
    backend: str | GroupBackend = "arkworks",
    dst_version: int = 1,
    raise_on_failure: bool = False,
) -> bool:
    """General verifier: decode commitments (checked; identity refused), replay the transcript, check all range
    proofs in one MSM. Returns False on any failure (or raises the typed error if ``raise_on_failure``)."""
    try:
        be = get_backend(backend) if isinstance(backend, str) else backend
        gens = get_generators(be, dst_version)
        if not isinstance(proof, StatementProof):
            proof = StatementProof.from_bytes(proof)
        comms = []
        for i, c in enumerate(commitments):
            if isinstance(c, str):
                try:
                    c = bytes.fromhex(c)
                except ValueError:
                    raise InvalidPoint(f"commitment[{i}]: not hex") from None
            if not isinstance(c, (bytes, bytearray)):
                raise InvalidPoint(f"commitment[{i}]: expected bytes")
            comms.append(bytes(c))
        num_inputs = 1 + max((i for c in claims for i, _ in c.terms), default=-1)
        if len(comms) != num_inputs:
            raise StatementError(f"statement needs {num_inputs} commitments, got {len(comms)}")
        _check_claims(len(comms), claims)
        pts = decode_many(be, comms, "commitment")
        groups = _groups(claims)
        if len(proof.proofs) != len(groups):
            raise MalformedProof(f"statement needs {len(groups)} range proofs, got {len(proof.proofs)}")
        t = _transcript(kind, statement_json, dst_version, comms)
        terms = []
        for (bits, cl), rp in zip(groups, proof.proofs):
            rows = [[(i, a % R) for i, a in c.terms] + [(-1, c.const % R)] for c in cl]
            terms.append(range_verification_terms(rp, be, gens, t, None, bits, derived=(pts, rows)))
        if not check_terms(be, gens, terms):
            raise VerificationFailed(f"{kind} proof does not verify")
        return True
    except ProofError:
        if raise_on_failure:
            raise
        return False


def _decode_or_error(be, ic):
    i, c = ic
    try:
        return be.decode(c, field=f"commitment[{i}]")
    except ProofError as e:
        return e


# --------------------------------------------------------------------------------------------- margin statement
@dataclass(frozen=True)
class MarginStatement:
    """Public statement of margin sufficiency for one account at one venue.

    prices: K haircut-adjusted collateral prices w_k >= 0 (value units per collateral unit, integers);
    pnl: J x S integer matrix L[j, s] of P&L per position unit in scenario s (value units; negative = loss);
    buffer: integer >= 0 (value units; e.g. maintenance add-ons); collateral_bits / position_bits: range of the
    inputs (b_k in [0, 2^nb), q_j in [-2^(np-1), 2^(np-1))); scenario_bits: range of every scenario surplus.
    unit: free-text description of the fixed-point units (absorbed by the transcript).

    Proves for all s: sum_k w_k b_k + sum_j L[j, s] q_j - buffer in [0, 2^scenario_bits)."""

    prices: tuple[int, ...]
    pnl: tuple[tuple[int, ...], ...]
    buffer: int = 0
    collateral_bits: int = 32
    position_bits: int = 32
    scenario_bits: int = 64
    unit: str = ""

    def __post_init__(self):
        object.__setattr__(self, "prices", tuple(_as_int(w, f"prices[{k}]") for k, w in enumerate(self.prices)))
        object.__setattr__(self, "pnl", _int_matrix(self.pnl, "pnl"))
        object.__setattr__(self, "buffer", _as_int(self.buffer, "buffer"))
        for k, w in enumerate(self.prices):
            if not 0 <= w < _MAX_COEFF:
                raise StatementError(f"prices[{k}] = {w}: must be in [0, 2^128)")
        if not self.prices:
            raise StatementError("prices: at least one collateral asset required")
        if not 0 <= self.buffer < _MAX_COEFF:
            raise StatementError(f"buffer = {self.buffer}: must be in [0, 2^128)")
        for f in ("collateral_bits", "position_bits", "scenario_bits"):
            object.__setattr__(self, f, _check_bits(getattr(self, f), f))
        if not isinstance(self.unit, str):
            raise StatementError("unit must be a string")

    @property
    def num_collateral(self) -> int:
        return len(self.prices)

    @property
    def num_positions(self) -> int:
        return len(self.pnl)

    @property
    def num_scenarios(self) -> int:
        return len(self.pnl[0])

    def to_json(self) -> dict:
        return {"kind": "margin", "version": STATEMENT_VERSION, "prices": [str(w) for w in self.prices],
                "pnl": [[str(v) for v in row] for row in self.pnl], "buffer": str(self.buffer),
                "collateral_bits": self.collateral_bits, "position_bits": self.position_bits,
                "scenario_bits": self.scenario_bits, "unit": self.unit}

    @classmethod
    def from_json(cls, o: dict) -> "MarginStatement":
        try:
            if o.get("kind") != "margin" or o.get("version") != STATEMENT_VERSION:
                raise MalformedProof("not a v1 margin statement")
            return cls(tuple(int(w) for w in o["prices"]), tuple(tuple(int(v) for v in r) for r in o["pnl"]),
                       int(o["buffer"]), o["collateral_bits"], o["position_bits"], o["scenario_bits"],
                       o.get("unit", ""))
        except ProofError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MalformedProof(f"margin statement JSON: {e}") from None

    def claims(self) -> list[AffineClaim]:
        K, J, S = self.num_collateral, self.num_positions, self.num_scenarios
        cl = [AffineClaim(self.collateral_bits, ((k, 1),), 0, f"collateral[{k}]") for k in range(K)]
        off = 1 << (self.position_bits - 1)
        cl += [AffineClaim(self.position_bits, ((K + j, 1),), off, f"position[{j}]") for j in range(J)]
        for s in range(S):
            terms = tuple((k, w) for k, w in enumerate(self.prices) if w) + \
                tuple((K + j, self.pnl[j][s]) for j in range(J) if self.pnl[j][s])
            cl.append(AffineClaim(self.scenario_bits, terms, -self.buffer, f"scenario[{s}]"))
        return cl


def prove_margin(statement: MarginStatement, balances: Sequence[int], positions: Sequence[int], *,
                 backend: str | GroupBackend = "arkworks", dst_version: int = 1, ipa_mode: str = "hybrid",
                 ) -> "Bundle":
    """Commit to balances (K ints >= 0) and positions (J signed ints) and prove ``statement``.
    Returns the bundle (its ``openings`` attribute holds the private openings). Raises :class:`StatementError` (e.g. negative balance, position out
    of range, or a scenario where the account is under-margined - the prover refuses to make a false proof)."""
    if len(balances) != statement.num_collateral or len(positions) != statement.num_positions:
        raise StatementError(f"expected {statement.num_collateral} balances and {statement.num_positions} "
                             f"positions, got {len(balances)} and {len(positions)}")
    for k, b in enumerate(balances):
        if _as_int(b, f"balances[{k}]") < 0:
            raise StatementError(f"balances[{k}] = {b} is negative")
    comms, proof, op = prove_statement("margin", statement.to_json(), statement.claims(),
                                       list(balances) + list(positions), backend=backend,
                                       dst_version=dst_version, ipa_mode=ipa_mode)
    K = statement.num_collateral
    return Bundle("margin", statement, {"collateral": comms[:K], "positions": comms[K:]}, proof, dst_version, op)


def verify_margin(statement: MarginStatement, collateral_commitments: Sequence[bytes],
                  position_commitments: Sequence[bytes], proof: StatementProof | bytes, *,
                  backend: str | GroupBackend = "arkworks", dst_version: int = 1,
                  raise_on_failure: bool = False) -> bool:
    """Verify a margin-sufficiency proof from the commitments, the public statement and the proof only."""
    try:
        if len(collateral_commitments) != statement.num_collateral or \
                len(position_commitments) != statement.num_positions:
            raise StatementError("number of commitments does not match the statement")
    except ProofError:
        if raise_on_failure:
            raise
        return False
    except TypeError:
        return False
    return verify_statement("margin", statement.to_json(), statement.claims(),
                            list(collateral_commitments) + list(position_commitments), proof, backend=backend,
                            dst_version=dst_version, raise_on_failure=raise_on_failure)


# --------------------------------------------------------------------------------------------- equity statement
@dataclass(frozen=True)
class EquityStatement:
    """Committed account equity E and maintenance margin M (integers in 1/scale USD, each in [0, 2^bits)) with
    E - M - buffer in [0, 2^bits). Issue 2's "committed equity minus committed maintenance margin >= 0"."""

    scale: int = 100
    bits: int = 64
    buffer: int = 0

    def __post_init__(self):
        object.__setattr__(self, "bits", _check_bits(self.bits, "bits"))
        if _as_int(self.scale, "scale") <= 0:
            raise StatementError("scale must be positive")
        if not 0 <= _as_int(self.buffer, "buffer") < _MAX_COEFF:
            raise StatementError("buffer must be in [0, 2^128)")

    def to_json(self) -> dict:
        return {"kind": "equity", "version": STATEMENT_VERSION, "scale": self.scale, "bits": self.bits,
                "buffer": str(self.buffer)}

    @classmethod
    def from_json(cls, o: dict) -> "EquityStatement":
        try:
            if o.get("kind") != "equity" or o.get("version") != STATEMENT_VERSION:
                raise MalformedProof("not a v1 equity statement")
            return cls(int(o["scale"]), o["bits"], int(o["buffer"]))
        except ProofError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MalformedProof(f"equity statement JSON: {e}") from None

    def claims(self) -> list[AffineClaim]:
        n = self.bits
        return [AffineClaim(n, ((0, 1),), 0, "equity"), AffineClaim(n, ((1, 1),), 0, "maintenance_margin"),
                AffineClaim(n, ((0, 1), (1, -1)), -self.buffer, "equity - maintenance_margin - buffer")]


def prove_equity_covers_margin(equity_usd: float | int, maintenance_margin_usd: float | int, *,
                               scale: int = 100, bits: int = 64, buffer_usd: float = 0.0,
                               backend: str | GroupBackend = "arkworks", dst_version: int = 1,
                               ) -> "Bundle":
    """Prove committed equity >= committed maintenance margin (+ buffer). Amounts in USD are converted to
    1/scale USD rounding against the prover (equity down, margin and buffer up). Returns the bundle (private
    openings in ``bundle.openings``);
    raises :class:`StatementError` if the account is under-margined or an amount is out of range."""
    st = EquityStatement(scale, bits, to_fixed_point(buffer_usd, scale, rounding="up"))
    e = to_fixed_point(equity_usd, scale, rounding="down")
    m = to_fixed_point(maintenance_margin_usd, scale, rounding="up")
    comms, proof, op = prove_statement("equity", st.to_json(), st.claims(), [e, m], backend=backend,
                                       dst_version=dst_version)
    return Bundle("equity", st, {"equity": comms[0], "maintenance_margin": comms[1]}, proof, dst_version, op)


def verify_equity_covers_margin(bundle: "Bundle | dict", *, backend: str | GroupBackend = "arkworks",
                                raise_on_failure: bool = False) -> bool:
    """Verify an equity-covers-margin bundle (object or its JSON dict)."""
    return verify_bundle(bundle, backend=backend, raise_on_failure=raise_on_failure, expect_kind="equity")


# ---------------------------------------------------------------------------------------------- cross-venue
@dataclass(frozen=True)
class CrossVenueStatement:
    """Shared collateral (K haircut prices) and V venues, each with a J_v x S_v integer P&L matrix.

    Inputs (in order): b_0..b_{K-1}, the positions of venue 0, ..., of venue V-1, then W_0..W_{V-1}.
    Claims: b_k in [0, 2^nb); q_vj + 2^(np-1) in [0, 2^np); W_v in [0, 2^ns);
    W_v + sum_j L_v[j, s] q_vj in [0, 2^ns) for every scenario s of venue v (W_v >= worst-case loss);
    sum_k w_k b_k - sum_v W_v - buffer in [0, 2^ns)."""

    prices: tuple[int, ...]
    venues: tuple[tuple[tuple[int, ...], ...], ...]
    buffer: int = 0
    collateral_bits: int = 32
    position_bits: int = 32
    scenario_bits: int = 64
    venue_names: tuple[str, ...] = ()
    unit: str = ""

    def __post_init__(self):
        base = MarginStatement(self.prices, self.venues[0] if self.venues else ((0,),), self.buffer,
                               self.collateral_bits, self.position_bits, self.scenario_bits, self.unit)
        if not self.venues:
            raise StatementError("at least one venue required")
        object.__setattr__(self, "prices", base.prices)
        object.__setattr__(self, "buffer", base.buffer)
        object.__setattr__(self, "venues", tuple(_int_matrix(L, f"venues[{v}]") for v, L in enumerate(self.venues)))
        names = tuple(self.venue_names) or tuple(f"venue{v}" for v in range(len(self.venues)))
        if len(names) != len(self.venues):
            raise StatementError("one name per venue required")
        object.__setattr__(self, "venue_names", names)

    def to_json(self) -> dict:
        return {"kind": "cross_venue", "version": STATEMENT_VERSION, "prices": [str(w) for w in self.prices],
                "venues": [[[str(v) for v in row] for row in L] for L in self.venues],
                "venue_names": list(self.venue_names), "buffer": str(self.buffer),
                "collateral_bits": self.collateral_bits, "position_bits": self.position_bits,
                "scenario_bits": self.scenario_bits, "unit": self.unit}

    @classmethod
    def from_json(cls, o: dict) -> "CrossVenueStatement":
        try:
            if o.get("kind") != "cross_venue" or o.get("version") != STATEMENT_VERSION:
                raise MalformedProof("not a v1 cross-venue statement")
            return cls(tuple(int(w) for w in o["prices"]),
                       tuple(tuple(tuple(int(v) for v in r) for r in L) for L in o["venues"]), int(o["buffer"]),
                       o["collateral_bits"], o["position_bits"], o["scenario_bits"], tuple(o["venue_names"]),
                       o.get("unit", ""))
        except ProofError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MalformedProof(f"cross-venue statement JSON: {e}") from None

    def layout(self) -> tuple[int, list[int], int]:
        """(K, start index of each venue's positions, index of W_0)."""
        K = len(self.prices)
        starts, i = [], K
        for L in self.venues:
            starts.append(i)
            i += len(L)
        return K, starts, i

    def claims(self) -> list[AffineClaim]:
        K, starts, w0 = self.layout()
        nb, np_, ns = self.collateral_bits, self.position_bits, self.scenario_bits
        cl = [AffineClaim(nb, ((k, 1),), 0, f"collateral[{k}]") for k in range(K)]
        for v, L in enumerate(self.venues):
            cl += [AffineClaim(np_, ((starts[v] + j, 1),), 1 << (np_ - 1), f"{self.venue_names[v]}.position[{j}]")
                   for j in range(len(L))]
        V = len(self.venues)
        cl += [AffineClaim(ns, ((w0 + v, 1),), 0, f"{self.venue_names[v]}.worst_loss") for v in range(V)]
        for v, L in enumerate(self.venues):
            for s in range(len(L[0])):
                terms = ((w0 + v, 1),) + tuple((starts[v] + j, L[j][s]) for j in range(len(L)) if L[j][s])
                cl.append(AffineClaim(ns, terms, 0, f"{self.venue_names[v]}.scenario[{s}]"))
        terms = tuple((k, w) for k, w in enumerate(self.prices) if w) + tuple((w0 + v, -1) for v in range(V))
        cl.append(AffineClaim(ns, terms, -self.buffer, "collateral - sum worst losses - buffer"))
        return cl


def prove_cross_venue(statement: CrossVenueStatement, balances: Sequence[int],
                      positions: Sequence[Sequence[int]], *, backend: str | GroupBackend = "arkworks",
                      dst_version: int = 1, ipa_mode: str = "hybrid") -> "Bundle":
    """Prove the cross-venue statement; the prover computes W_v = max(0, max_s -(L_v^T q_v)_s) itself."""
    if len(positions) != len(statement.venues) or len(balances) != len(statement.prices):
        raise StatementError("balances/positions do not match the statement")
    for k, b in enumerate(balances):
        if _as_int(b, f"balances[{k}]") < 0:
            raise StatementError(f"balances[{k}] = {b} is negative")
    W = []
    flat: list[int] = []
    for v, (L, q) in enumerate(zip(statement.venues, positions)):
        q = [_as_int(x, f"positions[{v}][{j}]") for j, x in enumerate(q)]
        if len(q) != len(L):
            raise StatementError(f"venue {v}: {len(L)} instruments but {len(q)} positions")
        flat += q
        W.append(max(0, max(-sum(L[j][s] * q[j] for j in range(len(L))) for s in range(len(L[0])))))
    comms, proof, op = prove_statement("cross_venue", statement.to_json(), statement.claims(),
                                       list(balances) + flat + W, backend=backend, dst_version=dst_version,
                                       ipa_mode=ipa_mode)
    K, starts, w0 = statement.layout()
    venues = [comms[starts[v]:starts[v] + len(L)] for v, L in enumerate(statement.venues)]
    return Bundle("cross_venue", statement, {"collateral": comms[:K], "venues": venues,
                                             "worst_losses": comms[w0:]}, proof, dst_version, op)


def verify_cross_venue(bundle: "Bundle | dict", *, backend: str | GroupBackend = "arkworks",
                       raise_on_failure: bool = False) -> bool:
    return verify_bundle(bundle, backend=backend, raise_on_failure=raise_on_failure, expect_kind="cross_venue")


# -------------------------------------------------------------------------------------------------- bundles
_KINDS = {"margin": MarginStatement, "equity": EquityStatement, "cross_venue": CrossVenueStatement}


@dataclass(frozen=True)
class Bundle:
    """Public bundle: statement kind, statement, commitments (48-byte encodings, grouped by role), proof; the
    provers also attach the private ``openings`` (kept out of every encoding; write them with
    ``openings.to_json()`` to a separate private file)."""

    kind: str
    statement: Any
    commitments: dict
    proof: StatementProof
    dst_version: int = 1
    #: PRIVATE openings (prover side only): never serialised by to_json/to_bytes, not compared, not printed.
    openings: "Openings | None" = field(default=None, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        """Byte encoding of the proof (:class:`StatementProof`); statement and commitments travel in JSON."""
        return self.proof.to_bytes()

    def public(self) -> "Bundle":
        """Copy without the private openings."""
        return Bundle(self.kind, self.statement, self.commitments, self.proof, self.dst_version)

    def flat_commitments(self) -> list[bytes]:
        c = self.commitments
        if self.kind == "margin":
            return list(c["collateral"]) + list(c["positions"])
        if self.kind == "equity":
            return [c["equity"], c["maintenance_margin"]]
        if self.kind == "cross_venue":
            return list(c["collateral"]) + [x for v in c["venues"] for x in v] + list(c["worst_losses"])
        raise MalformedProof(f"unknown bundle kind {self.kind!r}")

    def to_json(self) -> dict:
        def hx(o):
            if isinstance(o, (bytes, bytearray)):
                return bytes(o).hex()
            if isinstance(o, dict):
                return {k: hx(v) for k, v in o.items()}
            return [hx(v) for v in o]

        return {"format": "predictive-margin/zk-bundle", "version": STATEMENT_VERSION, "kind": self.kind,
                "curve": "BLS12-381-G1", "dst_version": self.dst_version, "statement": self.statement.to_json(),
                "commitments": hx(self.commitments), "proof": self.proof.to_json(),
                "proof_bytes": len(self.proof.to_bytes())}

    @property
    def proof_bytes(self) -> int:
        return len(self.proof.to_bytes())


def bundle_from_json(o: Any) -> Bundle:
    """Parse a bundle JSON dict; raises :class:`MalformedProof` on any shape problem."""
    try:
        if not isinstance(o, dict) or o.get("format") != "predictive-margin/zk-bundle" or \
                o.get("version") != STATEMENT_VERSION:
            raise MalformedProof("not a v1 predictive-margin bundle")
        kind = o["kind"]
        if kind not in _KINDS:
            raise MalformedProof(f"unknown bundle kind {kind!r}")
        st = _KINDS[kind].from_json(o["statement"])
        dst_version = o["dst_version"]
        if isinstance(dst_version, bool) or not isinstance(dst_version, int):
            raise MalformedProof("dst_version must be an int")

        def unhx(x):
            if isinstance(x, str):
                return bytes.fromhex(x)
            if isinstance(x, dict):
                return {k: unhx(v) for k, v in x.items()}
            if isinstance(x, list):
                return [unhx(v) for v in x]
            raise MalformedProof("commitments must be hex strings")

        comms = unhx(o["commitments"])
        proof = StatementProof.from_json(o["proof"])
        b = Bundle(kind, st, comms, proof, dst_version)
        b.flat_commitments()
        return b
    except ProofError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise MalformedProof(f"bundle JSON: {e}") from None


def verify_bundle(bundle: Bundle | dict, *, backend: str | GroupBackend = "arkworks", raise_on_failure: bool = False,
                  expect_kind: str | None = None) -> bool:
    """Verify a bundle (object or JSON dict) of any kind. False (or a typed error) on rejection."""
    try:
        if not isinstance(bundle, Bundle):
            bundle = bundle_from_json(bundle)
        if expect_kind is not None and bundle.kind != expect_kind:
            raise StatementError(f"expected a {expect_kind} bundle, got {bundle.kind}")
        comms = bundle.flat_commitments()
        st = bundle.statement
        return verify_statement(bundle.kind, st.to_json(), st.claims(), comms, bundle.proof, backend=backend,
                                dst_version=bundle.dst_version, raise_on_failure=True)
    except ProofError:
        if raise_on_failure:
            raise
        return False
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        if raise_on_failure:
            raise MalformedProof(f"bundle: {e}") from None
        return False
