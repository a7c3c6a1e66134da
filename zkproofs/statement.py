"""Margin-sufficiency statements over Pedersen commitments, proved with aggregated Bulletproofs (format v2).

Every statement here is a set of *affine range claims* over committed integers x_i (inputs):

    sum_i a_i x_i + c  in  [0, 2^n)          (a_i, c public signed integers, n in {8, 16, 32, 64})

The verifier derives the commitment of each claim homomorphically, ``sum_i a_i C_i + c B`` (never sees an
opening), and all claims with the same n are proved by ONE aggregated range proof. Every input has its own
range claim, so every derived value is bounded as an integer; the code refuses statements for which
sum_i |a_i| max|x_i| + |c| + 2^n >= 2^250 (<< r/2 ~ 2^253.9), so no claim can hold "mod r" without holding over
the integers (REFERENCE.md section 4, wraparound).

Transcript (Fiat-Shamir; Frozen Heart, Trail of Bits 2022): protocol label and version, statement kind, curve,
DST version, the canonical JSON of the whole public statement - including its :class:`Context` (venue, account,
epoch, expiry) - and every input commitment; then each aggregated range proof on its own fork of that
transcript (bound to the group index), which absorbs n, m, the generator digest and every prover message before
each challenge (Bünz et al. 2018). All range proofs of a statement are checked in one multi-scalar
multiplication.

Statements (see ``zkproofs/NOTES.md`` for exactly what is proved, what is hidden and what is not proved):

* :class:`MarginStatement`: private collateral balances b_k >= 0 and positions as long and short parts
  l_j, s_j >= 0; public haircut prices w_k, per-unit P&L matrices floored for long parts and ceiled for short
  parts, buffer; for every scenario s, sum_k w_k b_k + sum_j (L[j, s] l_j - Lshort[j, s] s_j) - buffer >= 0.
* :class:`EquityStatement`: equity (collateral + signed quote balance + marked positions) minus a maintenance
  margin DERIVED from the committed position parts and public MM rates and prices, minus the buffer, >= 0.
* :class:`CrossVenueStatement`: shared collateral, positions at several venues with their own matrices,
  committed per-venue worst-case losses W_v; collateral >= sum_v W_v + buffer.

Verifiers verify against their own (pinned) statement: :func:`verify_bundle` takes ``expected_statement`` /
``expected_statement_digest`` and checks the context's expiry.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import (
    ExpiredStatement,
    InvalidPoint,
    MalformedProof,
    ProofError,
    StatementError,
    StatementMismatch,
    VerificationFailed,
)
from .generators import get_generators
from .group import POINT_BYTES, R, GroupBackend, check_scalar, get_backend
from .rangeproof import (
    VALID_BITS,
    RangeProof,
    check_terms,
    decode_many,
    padded_m,
    prove_range,
    random_scalar,
    range_verification_terms,
)
from .schema import (
    as_list,
    canonical_json,
    exact_keys,
    hex_bytes,
    hex_list,
    int_list,
    int_matrix,
    int_str,
    loads_strict,
    text,
    text_list,
)
from .transcript import Transcript

__all__ = [
    "STATEMENT_VERSION",
    "WRAP_BOUND_LOG2",
    "BUNDLE_FORMAT",
    "CURVE",
    "AffineClaim",
    "Context",
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
    "statement_from_json",
    "check_statement_matches",
    "process_pool",
]

#: Format version of statements, statement proofs and bundles (v1: no context, declared MM, signed positions).
STATEMENT_VERSION = 2
#: Derived values must stay below 2^250 in absolute value (r/2 ~ 2^253.86).
WRAP_BOUND_LOG2 = 250
BUNDLE_FORMAT = "predictive-margin/zk-bundle"
CURVE = "BLS12-381-G1"
_MAX_COEFF = 1 << 128
_MAGIC = b"PMZK"
#: Size limits checked before any conversion or point decoding.
_MAX_COLLATERAL = 256
_MAX_INSTRUMENTS = 256
_MAX_SCENARIOS = 1024
_MAX_VENUES = 16
_MAX_PARAMS = 32


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


def pnl_to_fixed_point(pnl: np.ndarray, scale: int, *, rounding: str = "down") -> np.ndarray:
    """Per-unit scenario P&L matrix (instruments x scenarios, float, value units per position unit) to integers in
    1/scale value units, computed exactly (each float's exact binary value times ``scale``, then floor or ceil).
    ``rounding="down"`` (floor) is the coefficient of a LONG part (a loss is rounded up, a gain down),
    ``rounding="up"`` (ceil) the coefficient of a SHORT part, which enters with a minus sign; with both, every
    scenario P&L is rounded against the prover for either sign of the position (see :class:`MarginStatement`).
    Returns an int64 array (raises :class:`StatementError` on NaN/inf or overflow)."""
    from fractions import Fraction

    a = np.asarray(pnl, dtype=np.float64)
    if a.ndim != 2:
        raise StatementError(f"pnl must be 2-D (instruments x scenarios), got shape {a.shape}")
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        j, s = bad[0]
        raise StatementError(f"pnl[{j}, {s}] = {a[j, s]!r} is not finite")
    if rounding not in ("down", "up"):
        _bad_rounding(rounding)
    rnd = math.floor if rounding == "down" else math.ceil
    out = [[rnd(Fraction(float(x)) * int(scale)) for x in row] for row in a.tolist()]
    if out and np.abs(np.asarray(out, dtype=object)).max(initial=0) >= 2**62:
        raise StatementError("pnl * scale overflows int64")
    return np.asarray(out, dtype=np.int64).reshape(a.shape)


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
        if cnt > len(VALID_BITS):
            raise MalformedProof(f"statement proof: {cnt} range proofs (at most {len(VALID_BITS)})")
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
        if not isinstance(obj, dict) or obj.get("version") != STATEMENT_VERSION or \
                set(obj) != {"version", "range_proofs"}:
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
    t.append_message(b"curve", CURVE.encode())
    t.append_u64(b"dst-version", dst_version)
    t.append_message(b"statement", canonical_json(statement_json))
    t.append_u64(b"num-commitments", len(commitments))
    for c in commitments:
        t.append_message(b"C", c)
    return t


def _group_transcript(base: Transcript, index: int, bits: int, num_claims: int) -> Transcript:
    """Each aggregated range proof of a statement runs on its own fork of the statement transcript (bound to
    the group index, its bit size and claim count), so the groups can be proved in parallel processes."""
    t = base.clone()
    t.append_u64(b"group", index)
    t.append_u64(b"group-bits", bits)
    t.append_u64(b"group-claims", num_claims)
    return t


def _prove_group_job(args):
    """Worker-process job: rebuild the group transcript and prove one aggregated range proof."""
    backend, dst_version, kind, statement_json, comms, index, bits, vs, bs, ipa_mode = args
    be = get_backend(backend)
    gens = get_generators(be, dst_version)
    t = _group_transcript(_transcript(kind, statement_json, dst_version, comms), index, bits, len(vs))
    return prove_range(be, gens, t, vs, bs, bits, ipa_mode=ipa_mode, absorb_V=False)[0].to_bytes()


_POOLS: dict[int, Any] = {}


def process_pool(workers: int):
    """A persistent :class:`concurrent.futures.ProcessPoolExecutor` with ``workers`` processes (created once per
    process; its workers derive and cache the generators on first use)."""
    import concurrent.futures
    import multiprocessing

    pool = _POOLS.get(workers)
    if pool is None:
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                          else "spawn")
        pool = _POOLS[workers] = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx)
        import atexit

        atexit.register(pool.shutdown, wait=True, cancel_futures=True)
    return pool


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
    workers: int = 1,
) -> tuple[list[bytes], StatementProof, Openings]:
    """General prover: commit to ``values`` (fresh blindings from ``secrets`` unless given) and prove every
    claim. Returns (commitments, proof, openings). Raises :class:`StatementError` if a claim is false.

    ``workers > 1`` (named backends only) proves the statement's aggregated range proofs (one per bit size) in a
    persistent process pool, one group per process; the proof is the same as with ``workers=1`` up to the
    prover's randomness. Blindings travel to the workers through the pool's local pipes."""
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
    if workers > 1 and len(group_vals) > 1 and isinstance(backend, str):
        jobs = [(backend, dst_version, kind, statement_json, comms, i, bits, vs, bs, ipa_mode)
                for i, (bits, vs, bs) in enumerate(group_vals)]
        # largest group first: it is the critical path
        order = sorted(range(len(jobs)), key=lambda i: -jobs[i][6] * padded_m(len(jobs[i][7])))
        pool = process_pool(workers)
        futs = {i: pool.submit(_prove_group_job, jobs[i]) for i in order[1:]}
        done = {order[0]: _prove_group_job(jobs[order[0]])}
        done.update({i: f.result() for i, f in futs.items()})
        proofs = [RangeProof.from_bytes(done[i]) for i in range(len(jobs))]
    else:
        proofs = [prove_range(be, gens, _group_transcript(t, i, bits, len(vs)), vs, bs, bits, ipa_mode=ipa_mode,
                              absorb_V=False)[0]
                  for i, (bits, vs, bs) in enumerate(group_vals)]
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
        for gi, ((bits, cl), rp) in enumerate(zip(groups, proof.proofs)):
            rows = [[(i, a % R) for i, a in c.terms] + [(-1, c.const % R)] for c in cl]
            terms.append(range_verification_terms(rp, be, gens, _group_transcript(t, gi, bits, len(cl)), None, bits,
                                                  derived=(pts, rows)))
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


# ------------------------------------------------------------------------------------------------------ context
@dataclass(frozen=True)
class Context:
    """Who and when a statement is about; absorbed in the transcript as part of the statement.

    venue: the venue's identifier; account: the account id or its hash (e.g. ``Context.hash_account``);
    epoch: the venue's epoch counter (non-negative integer, e.g. the day or block the balances are taken at);
    expiry: UNIX time in seconds (UTC) from which verifiers refuse the statement (:class:`ExpiredStatement`).
    A proof made under one context never verifies under another (the transcript differs)."""

    venue: str
    account: str
    epoch: int
    expiry: int

    def __post_init__(self):
        for f in ("venue", "account"):
            v = getattr(self, f)
            if not isinstance(v, str) or not 0 < len(v) <= 256:
                raise StatementError(f"context.{f} must be a non-empty string of at most 256 characters")
        for f in ("epoch", "expiry"):
            v = _as_int(getattr(self, f), f"context.{f}")
            if not 0 <= v < 1 << 63:
                raise StatementError(f"context.{f} = {v} must be in [0, 2^63)")
            object.__setattr__(self, f, v)

    @staticmethod
    def hash_account(account_id: str, salt: str = "") -> str:
        """``"sha256:" + SHA-256(salt || account_id)`` (hex): names an account without revealing its id."""
        return "sha256:" + hashlib.sha256((salt + account_id).encode()).hexdigest()

    def to_json(self) -> dict:
        return {"venue": self.venue, "account": self.account, "epoch": str(self.epoch), "expiry": str(self.expiry)}

    @classmethod
    def from_json(cls, o: Any) -> "Context":
        exact_keys(o, {"venue", "account", "epoch", "expiry"}, "statement.context")
        return cls(text(o["venue"], "context.venue", max_len=256), text(o["account"], "context.account", max_len=256),
                   int_str(o["epoch"], "context.epoch", lo=0, hi=1 << 63),
                   int_str(o["expiry"], "context.expiry", lo=0, hi=1 << 63))

    def check_time(self, now: float | int | None = None) -> None:
        """Raise :class:`ExpiredStatement` if ``now`` (UNIX seconds, default the current time) >= expiry."""
        now = time.time() if now is None else now
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise StatementError(f"verifier time must be a finite number of UNIX seconds, got {now!r}")
        if now >= self.expiry:
            raise ExpiredStatement(f"statement for {self.venue}/{self.account} epoch {self.epoch} expired at "
                                   f"{self.expiry} (UNIX s); verifier time {int(now)}")


def _check_context(c: Any) -> "Context":
    if not isinstance(c, Context):
        raise StatementError("every statement needs a zkproofs.Context(venue, account, epoch, expiry)")
    return c


def _names(v: Any, n: int, default: str, field: str) -> tuple[str, ...]:
    v = tuple(v) if v else tuple(f"{default}{i}" for i in range(n))
    if len(v) != n or not all(isinstance(x, str) and 0 < len(x) <= 256 for x in v):
        raise StatementError(f"{field}: {n} non-empty names of at most 256 characters required")
    return v


def _params(p: Any) -> tuple[tuple[str, str], ...]:
    items = sorted(dict(p or {}).items())
    if len(items) > _MAX_PARAMS:
        raise StatementError(f"params: at most {_MAX_PARAMS} entries")
    for k, v in items:
        if not isinstance(k, str) or not isinstance(v, str) or not 0 < len(k) <= 64 or len(v) > 1024:
            raise StatementError(f"params: keys and values must be strings (key {k!r})")
    return tuple(items)


def _short_matrix(long: tuple, short: Any, field: str) -> tuple:
    short = long if short is None else _int_matrix(short, field)
    if len(short) != len(long) or any(len(a) != len(b) for a, b in zip(short, long)):
        raise StatementError(f"{field}: shape differs from the long-part matrix")
    for j, (a, b) in enumerate(zip(long, short)):
        for s, (x, y) in enumerate(zip(a, b)):
            if y - x not in (0, 1):
                raise StatementError(f"{field}[{j}, {s}] = {y} must be the long entry {x} or {x} + 1 (floor/ceil "
                                     "of one real P&L)")
    return short


def _scales(vs: Any, asc: Any) -> tuple[int, int]:
    vs, asc = _as_int(vs, "value_scale"), _as_int(asc, "amount_scale")
    if not 0 < vs < 1 << 64 or not 0 < asc < 1 << 64:
        raise StatementError("value_scale and amount_scale must be in [1, 2^64)")
    return vs, asc


def _units_json(st) -> dict:
    return {"value_scale": str(st.value_scale), "amount_scale": str(st.amount_scale), "text": st.unit}


def _units_from_json(o: Any) -> tuple[int, int, str]:
    exact_keys(o, {"value_scale", "amount_scale", "text"}, "statement.units")
    return (int_str(o["value_scale"], "units.value_scale", lo=1, hi=1 << 64),
            int_str(o["amount_scale"], "units.amount_scale", lo=1, hi=1 << 64), text(o["text"], "units.text"))


def _params_from_json(o: Any) -> dict:
    if not isinstance(o, dict) or len(o) > _MAX_PARAMS:
        raise MalformedProof(f"statement.params: an object of at most {_MAX_PARAMS} string entries expected")
    for k, v in o.items():
        text(k, "params key", max_len=64)
        text(v, f"params[{k[:40]!r}]", max_len=1024)
    return o


def _bits_from_json(o: Any, names: Sequence[str]) -> list[int]:
    exact_keys(o, set(names), "statement.bits")
    out = []
    for n in names:
        b = int_str(o[n], f"bits.{n}", lo=0, hi=65)
        if b not in VALID_BITS:
            raise MalformedProof(f"bits.{n} = {b}: must be one of {VALID_BITS}")
        out.append(b)
    return out


def _header(o: Any, kind: str, keys: set[str]) -> dict:
    exact_keys(o, keys | {"kind", "version"}, "statement")
    if o["kind"] != kind:
        raise MalformedProof(f"statement.kind: expected {kind!r}")
    if o["version"] != str(STATEMENT_VERSION):
        raise MalformedProof(f"statement.version: expected \"{STATEMENT_VERSION}\"")
    return o


def _from_json_guard(fn):
    """Wrap a strict ``from_json``: every failure is a :class:`MalformedProof` (StatementError from the
    dataclass checks becomes MalformedProof too: the JSON does not describe a valid statement)."""
    def wrapped(cls, o):
        try:
            return fn(cls, o)
        except MalformedProof:
            raise
        except StatementError as e:
            raise MalformedProof(f"{cls.__name__}: {e}") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as e:
            raise MalformedProof(f"{cls.__name__} JSON: {type(e).__name__}") from None
    wrapped.__doc__ = fn.__doc__
    return classmethod(wrapped)


class _StatementBase:
    """Shared helpers: canonical JSON, digest, summary."""

    def canonical_bytes(self) -> bytes:
        """The canonical JSON of the statement (what ``statement.json`` holds and the transcript absorbs)."""
        return canonical_json(self.to_json())

    def digest(self) -> str:
        """SHA-256 of :meth:`canonical_bytes` (lower-case hex): what a venue publishes to pin the statement."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def usd(self, value_units: int) -> str:
        """A value in value units (1/value_scale USD) as USD text."""
        return f"{value_units / self.value_scale:,.2f} USD" if self.value_scale > 1 else f"{value_units} value units"


# --------------------------------------------------------------------------------------------- margin statement
@dataclass(frozen=True)
class MarginStatement(_StatementBase):
    """Public statement of margin sufficiency for one account at one venue (format v2).

    prices: K haircut-adjusted collateral prices w_k >= 0 (value units per collateral amount unit, rounded down);
    pnl: J x S integer matrix L[j, s] = floor(real P&L per position unit in scenario s, in value units) - the
    coefficient of each LONG part; pnl_short: ceil of the same real numbers (default: ``pnl``, for exact integer
    P&L) - the coefficient of each SHORT part; buffer: integer >= 0 (value units, rounded up);
    collateral_bits, position_bits, scenario_bits in {8, 16, 32, 64}; unit: free text; context: a
    :class:`Context` (required); collateral_names (K), instruments (J), scenario_labels (S); value_scale (value
    units per USD), amount_scale (amount units per coin); params: the scenario set's parameters (strings, e.g.
    ``{"scan_range": "0.1"}``).

    Private inputs: balances b_k (amount units), each position q_j as a long part l_j and a short part s_j
    (q_j = l_j - s_j, both >= 0). Claims, all proved:

        b_k in [0, 2^nb),   l_j in [0, 2^np),   s_j in [0, 2^np)
        for all s:  sum_k w_k b_k + sum_j (L[j, s] l_j - Lshort[j, s] s_j) - buffer  in [0, 2^ns)

    Since L <= real P&L <= Lshort and l, s >= 0, each proved scenario surplus is <= the real-valued surplus:
    rounding never favours the prover, for either sign of a position (issue 11)."""

    prices: tuple[int, ...]
    pnl: tuple[tuple[int, ...], ...]
    buffer: int = 0
    collateral_bits: int = 64
    position_bits: int = 32
    scenario_bits: int = 64
    unit: str = ""
    pnl_short: tuple[tuple[int, ...], ...] | None = None
    context: Context | None = None
    collateral_names: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    scenario_labels: tuple[str, ...] = ()
    value_scale: int = 1
    amount_scale: int = 1
    params: Any = ()

    def __post_init__(self):
        object.__setattr__(self, "prices", tuple(_as_int(w, f"prices[{k}]") for k, w in enumerate(self.prices)))
        object.__setattr__(self, "pnl", _int_matrix(self.pnl, "pnl"))
        object.__setattr__(self, "pnl_short", _short_matrix(self.pnl, self.pnl_short, "pnl_short"))
        object.__setattr__(self, "buffer", _as_int(self.buffer, "buffer"))
        for k, w in enumerate(self.prices):
            if not 0 <= w < _MAX_COEFF:
                raise StatementError(f"prices[{k}] = {w}: must be in [0, 2^128)")
        if not 0 < len(self.prices) <= _MAX_COLLATERAL:
            raise StatementError(f"prices: 1 to {_MAX_COLLATERAL} collateral assets required")
        if len(self.pnl) > _MAX_INSTRUMENTS or len(self.pnl[0]) > _MAX_SCENARIOS:
            raise StatementError(f"pnl: at most {_MAX_INSTRUMENTS} instruments and {_MAX_SCENARIOS} scenarios")
        if not 0 <= self.buffer < _MAX_COEFF:
            raise StatementError(f"buffer = {self.buffer}: must be in [0, 2^128)")
        for f in ("collateral_bits", "position_bits", "scenario_bits"):
            object.__setattr__(self, f, _check_bits(getattr(self, f), f))
        if not isinstance(self.unit, str):
            raise StatementError("unit must be a string")
        _check_context(self.context)
        object.__setattr__(self, "collateral_names", _names(self.collateral_names, len(self.prices), "collateral",
                                                            "collateral_names"))
        object.__setattr__(self, "instruments", _names(self.instruments, len(self.pnl), "instrument", "instruments"))
        object.__setattr__(self, "scenario_labels", _names(self.scenario_labels, len(self.pnl[0]), "scenario",
                                                           "scenario_labels"))
        vs, asc = _scales(self.value_scale, self.amount_scale)
        object.__setattr__(self, "value_scale", vs)
        object.__setattr__(self, "amount_scale", asc)
        object.__setattr__(self, "params", _params(self.params))

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
        return {"kind": "margin", "version": str(STATEMENT_VERSION), "context": self.context.to_json(),
                "collateral_names": list(self.collateral_names), "prices": [str(w) for w in self.prices],
                "instruments": list(self.instruments), "scenarios": list(self.scenario_labels),
                "pnl_long": [[str(v) for v in row] for row in self.pnl],
                "pnl_short": [[str(v) for v in row] for row in self.pnl_short], "buffer": str(self.buffer),
                "bits": {"collateral": str(self.collateral_bits), "position": str(self.position_bits),
                         "scenario": str(self.scenario_bits)},
                "units": _units_json(self), "params": dict(self.params)}

    @_from_json_guard
    def from_json(cls, o: Any) -> "MarginStatement":
        """Strict parse (exact keys, digit-string integers, sizes checked first); :class:`MalformedProof`."""
        o = _header(o, "margin", {"context", "collateral_names", "prices", "instruments", "scenarios", "pnl_long",
                                  "pnl_short", "buffer", "bits", "units", "params"})
        ctx = Context.from_json(o["context"])
        prices = int_list(o["prices"], "prices", max_len=_MAX_COLLATERAL, lo=0, hi=_MAX_COEFF)
        K = len(prices)
        J = len(as_list(o["pnl_long"], "pnl_long", min_len=1, max_len=_MAX_INSTRUMENTS))
        S = len(as_list(o["scenarios"], "scenarios", min_len=1, max_len=_MAX_SCENARIOS))
        Ll = int_matrix(o["pnl_long"], "pnl_long", rows=J, cols=S, lo=-_MAX_COEFF + 1, hi=_MAX_COEFF)
        Ls = int_matrix(o["pnl_short"], "pnl_short", rows=J, cols=S, lo=-_MAX_COEFF + 1, hi=_MAX_COEFF)
        nb, np_, ns = _bits_from_json(o["bits"], ("collateral", "position", "scenario"))
        vs, asc, unit = _units_from_json(o["units"])
        return cls(prices, Ll, int_str(o["buffer"], "buffer", lo=0, hi=_MAX_COEFF), nb, np_, ns, unit,
                   pnl_short=Ls, context=ctx, collateral_names=text_list(o["collateral_names"], "collateral_names",
                                                                          count=K),
                   instruments=text_list(o["instruments"], "instruments", count=J),
                   scenario_labels=text_list(o["scenarios"], "scenarios", count=S), value_scale=vs,
                   amount_scale=asc, params=_params_from_json(o["params"]))

    def input_layout(self) -> tuple[int, int, int]:
        """(K, index of l_0, index of s_0): inputs are b_0..b_{K-1}, l_0..l_{J-1}, s_0..s_{J-1}."""
        K, J = self.num_collateral, self.num_positions
        return K, K, K + J

    def claims(self) -> list[AffineClaim]:
        K, J, S = self.num_collateral, self.num_positions, self.num_scenarios
        _, l0, s0 = self.input_layout()
        cl = [AffineClaim(self.collateral_bits, ((k, 1),), 0, f"collateral {self.collateral_names[k]}")
              for k in range(K)]
        cl += [AffineClaim(self.position_bits, ((l0 + j, 1),), 0, f"long part {self.instruments[j]}") for j in range(J)]
        cl += [AffineClaim(self.position_bits, ((s0 + j, 1),), 0, f"short part {self.instruments[j]}")
               for j in range(J)]
        for s in range(S):
            terms = tuple((k, w) for k, w in enumerate(self.prices) if w) + \
                tuple((l0 + j, self.pnl[j][s]) for j in range(J) if self.pnl[j][s]) + \
                tuple((s0 + j, -self.pnl_short[j][s]) for j in range(J) if self.pnl_short[j][s])
            cl.append(AffineClaim(self.scenario_bits, terms, -self.buffer, f"scenario {self.scenario_labels[s]}"))
        return cl

    def witness(self, balances: Sequence[int], positions: Sequence[int]) -> list[int]:
        """Input vector (b, l, s) from balances and signed positions (amount units)."""
        if len(balances) != self.num_collateral or len(positions) != self.num_positions:
            raise StatementError(f"expected {self.num_collateral} balances and {self.num_positions} positions, got "
                                 f"{len(balances)} and {len(positions)}")
        b = [_as_int(x, f"balances[{k}]") for k, x in enumerate(balances)]
        for k, x in enumerate(b):
            if x < 0:
                raise StatementError(f"balances[{k}] = {x} is negative")
        q = [_as_int(x, f"positions[{j}]") for j, x in enumerate(positions)]
        return b + [max(x, 0) for x in q] + [max(-x, 0) for x in q]

    def surpluses(self, balances: Sequence[int], positions: Sequence[int]) -> list[int]:
        """Plain-integer evaluation of every scenario claim (value units), without proving."""
        x = self.witness(balances, positions)
        return [sum(a * x[i] for i, a in c.terms) + c.const for c in self.claims()[-self.num_scenarios:]]

    def summary(self) -> str:
        p = dict(self.params)
        scan = p.get("scan_range", "n/a")
        return (f"margin statement {self.digest()[:16]}...: venue {self.context.venue}, account "
                f"{self.context.account}, epoch {self.context.epoch}, expiry {self.context.expiry}; "
                f"{self.num_collateral} collateral assets {list(self.collateral_names)}, {self.num_positions} "
                f"instruments {list(self.instruments)}; {self.num_scenarios} scenarios {list(self.scenario_labels)}; "
                f"scan range {scan}; buffer {self.usd(self.buffer)}")


def prove_margin(statement: MarginStatement, balances: Sequence[int], positions: Sequence[int], *,
                 backend: str | GroupBackend = "arkworks", dst_version: int = 1, ipa_mode: str = "hybrid",
                 workers: int = 1) -> "Bundle":
    """Commit to balances (K ints >= 0, amount units) and the long and short parts of positions (J signed ints,
    amount units; q > 0 is committed as (q, 0), q < 0 as (0, -q)) and prove ``statement``.
    Returns the bundle (its ``openings`` attribute holds the private openings). Raises :class:`StatementError`
    (negative balance, a part out of range, or a scenario where the account is under-margined - the prover
    refuses to make a false proof)."""
    x = statement.witness(balances, positions)
    comms, proof, op = prove_statement("margin", statement.to_json(), statement.claims(), x, backend=backend,
                                       dst_version=dst_version, ipa_mode=ipa_mode, workers=workers)
    K, l0, s0 = statement.input_layout()
    return Bundle("margin", statement, {"collateral": comms[:K], "long": comms[l0:s0], "short": comms[s0:]}, proof,
                  dst_version, op)


def verify_margin(statement: MarginStatement, collateral_commitments: Sequence[bytes],
                  position_commitments: Sequence[bytes], proof: StatementProof | bytes, *,
                  backend: str | GroupBackend = "arkworks", dst_version: int = 1,
                  raise_on_failure: bool = False, now: float | None = None) -> bool:
    """Verify a margin-sufficiency proof from the commitments, the public statement (the verifier's own) and the
    proof only. ``position_commitments``: the J long-part commitments followed by the J short-part ones (2J).
    Checks the statement's expiry against ``now`` (default the current time)."""
    try:
        if not isinstance(statement, MarginStatement):
            raise StatementError("statement must be a MarginStatement")
        if len(collateral_commitments) != statement.num_collateral or \
                len(position_commitments) != 2 * statement.num_positions:
            raise StatementError("number of commitments does not match the statement")
        statement.context.check_time(now)
    except ProofError:
        if raise_on_failure:
            raise
        return False
    except TypeError:
        if raise_on_failure:
            raise MalformedProof("commitments must be sequences") from None
        return False
    return verify_statement("margin", statement.to_json(), statement.claims(),
                            list(collateral_commitments) + list(position_commitments), proof, backend=backend,
                            dst_version=dst_version, raise_on_failure=raise_on_failure)


# --------------------------------------------------------------------------------------------- equity statement
@dataclass(frozen=True)
class EquityStatement(_StatementBase):
    """Equity covers maintenance margin, with the maintenance margin DERIVED inside the statement (format v2).

    Public: K haircut collateral prices w_k (value units per amount unit, floor); J instruments with mark prices
    per amount unit rounded down (``mark_long``, the value of a long unit) and up (``mark_short``, the liability
    of a short unit; each mark_short - mark_long in {0, 1}); maintenance-margin rates ``mm_rate_ppm`` (parts per
    million of notional, in [0, 10^6]); buffer (value units, rounded up); bits (collateral, quote, position,
    surplus); context; names; scales.

    Private inputs: balances b_k >= 0; a signed quote balance Q (value units: cash minus the cost of open
    positions; may be negative); long and short parts l_j, s_j >= 0 of each position. Derived per-unit MM:
    ``mm_j = ceil(mm_rate_ppm_j * mark_short_j / 10^6)``. Claims:

        b_k in [0, 2^nb),  Q + 2^(nq-1) in [0, 2^nq),  l_j, s_j in [0, 2^np)
        sum_k w_k b_k + Q + sum_j (mark_long_j l_j - mark_short_j s_j)          (equity E)
          - sum_j mm_j (l_j + s_j)                                               (maintenance margin MM)
          - buffer  in [0, 2^ns)

    MM is a function of the committed parts and the public rates and prices: a prover cannot declare MM = 0
    (issue 11). l_j + s_j >= |l_j - s_j|, so committing both parts only raises MM."""

    context: Context
    prices: tuple[int, ...]
    mark_long: tuple[int, ...]
    mark_short: tuple[int, ...] | None = None
    mm_rate_ppm: tuple[int, ...] = ()
    buffer: int = 0
    collateral_bits: int = 64
    quote_bits: int = 64
    position_bits: int = 64
    surplus_bits: int = 64
    collateral_names: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    value_scale: int = 1
    amount_scale: int = 1
    unit: str = ""

    def __post_init__(self):
        _check_context(self.context)
        object.__setattr__(self, "prices", tuple(_as_int(w, f"prices[{k}]") for k, w in enumerate(self.prices)))
        ml = tuple(_as_int(w, f"mark_long[{j}]") for j, w in enumerate(self.mark_long))
        ms = ml if self.mark_short is None else tuple(_as_int(w, f"mark_short[{j}]")
                                                      for j, w in enumerate(self.mark_short))
        mm = tuple(_as_int(w, f"mm_rate_ppm[{j}]") for j, w in enumerate(self.mm_rate_ppm))
        if not 0 < len(self.prices) <= _MAX_COLLATERAL or len(ml) > _MAX_INSTRUMENTS:
            raise StatementError(f"1 to {_MAX_COLLATERAL} collateral assets, at most {_MAX_INSTRUMENTS} instruments")
        if len(ms) != len(ml) or len(mm) != len(ml):
            raise StatementError("mark_long, mark_short and mm_rate_ppm need one entry per instrument")
        for j, (a, b, r) in enumerate(zip(ml, ms, mm)):
            if not 0 <= a < _MAX_COEFF or b - a not in (0, 1):
                raise StatementError(f"instrument {j}: marks must be 0 <= mark_long < 2^128, mark_short - mark_long "
                                     "in {0, 1}")
            if not 0 <= r <= 1_000_000:
                raise StatementError(f"mm_rate_ppm[{j}] = {r} not in [0, 10^6]")
        for k, w in enumerate(self.prices):
            if not 0 <= w < _MAX_COEFF:
                raise StatementError(f"prices[{k}] = {w}: must be in [0, 2^128)")
        object.__setattr__(self, "mark_long", ml)
        object.__setattr__(self, "mark_short", ms)
        object.__setattr__(self, "mm_rate_ppm", mm)
        if not 0 <= _as_int(self.buffer, "buffer") < _MAX_COEFF:
            raise StatementError("buffer must be in [0, 2^128)")
        for f in ("collateral_bits", "quote_bits", "position_bits", "surplus_bits"):
            object.__setattr__(self, f, _check_bits(getattr(self, f), f))
        object.__setattr__(self, "collateral_names", _names(self.collateral_names, len(self.prices), "collateral",
                                                            "collateral_names"))
        object.__setattr__(self, "instruments", _names(self.instruments, len(ml), "instrument", "instruments"))
        vs, asc = _scales(self.value_scale, self.amount_scale)
        object.__setattr__(self, "value_scale", vs)
        object.__setattr__(self, "amount_scale", asc)
        if not isinstance(self.unit, str):
            raise StatementError("unit must be a string")

    @property
    def mm_per_unit(self) -> tuple[int, ...]:
        """Derived maintenance margin per amount unit of |position|: ceil(rate_ppm * mark_short / 10^6)."""
        return tuple(-(-r * m // 1_000_000) for r, m in zip(self.mm_rate_ppm, self.mark_short))

    def to_json(self) -> dict:
        return {"kind": "equity", "version": str(STATEMENT_VERSION), "context": self.context.to_json(),
                "collateral_names": list(self.collateral_names), "prices": [str(w) for w in self.prices],
                "instruments": list(self.instruments), "mark_long": [str(w) for w in self.mark_long],
                "mark_short": [str(w) for w in self.mark_short], "mm_rate_ppm": [str(w) for w in self.mm_rate_ppm],
                "buffer": str(self.buffer),
                "bits": {"collateral": str(self.collateral_bits), "quote": str(self.quote_bits),
                         "position": str(self.position_bits), "surplus": str(self.surplus_bits)},
                "units": _units_json(self)}

    @_from_json_guard
    def from_json(cls, o: Any) -> "EquityStatement":
        """Strict parse; :class:`MalformedProof`."""
        o = _header(o, "equity", {"context", "collateral_names", "prices", "instruments", "mark_long", "mark_short",
                                  "mm_rate_ppm", "buffer", "bits", "units"})
        ctx = Context.from_json(o["context"])
        prices = int_list(o["prices"], "prices", max_len=_MAX_COLLATERAL, lo=0, hi=_MAX_COEFF)
        J = len(as_list(o["mark_long"], "mark_long", max_len=_MAX_INSTRUMENTS))
        ml = int_list(o["mark_long"], "mark_long", min_len=J, max_len=J, lo=0, hi=_MAX_COEFF)
        ms = int_list(o["mark_short"], "mark_short", min_len=J, max_len=J, lo=0, hi=_MAX_COEFF)
        mm = int_list(o["mm_rate_ppm"], "mm_rate_ppm", min_len=J, max_len=J, lo=0, hi=1_000_001)
        nb, nq, np_, ns = _bits_from_json(o["bits"], ("collateral", "quote", "position", "surplus"))
        vs, asc, unit = _units_from_json(o["units"])
        return cls(ctx, prices, ml, ms, mm, int_str(o["buffer"], "buffer", lo=0, hi=_MAX_COEFF), nb, nq, np_, ns,
                   text_list(o["collateral_names"], "collateral_names", count=len(prices)),
                   text_list(o["instruments"], "instruments", count=J), vs, asc, unit)

    def input_layout(self) -> tuple[int, int, int, int]:
        """(K, index of Q, index of l_0, index of s_0)."""
        K, J = len(self.prices), len(self.mark_long)
        return K, K, K + 1, K + 1 + J

    def claims(self) -> list[AffineClaim]:
        K, q, l0, s0 = self.input_layout()
        J = len(self.mark_long)
        cl = [AffineClaim(self.collateral_bits, ((k, 1),), 0, f"collateral {self.collateral_names[k]}")
              for k in range(K)]
        cl.append(AffineClaim(self.quote_bits, ((q, 1),), 1 << (self.quote_bits - 1), "quote balance"))
        cl += [AffineClaim(self.position_bits, ((l0 + j, 1),), 0, f"long part {self.instruments[j]}") for j in range(J)]
        cl += [AffineClaim(self.position_bits, ((s0 + j, 1),), 0, f"short part {self.instruments[j]}")
               for j in range(J)]
        mm = self.mm_per_unit
        terms = tuple((k, w) for k, w in enumerate(self.prices) if w) + ((q, 1),) + \
            tuple((l0 + j, self.mark_long[j] - mm[j]) for j in range(J) if self.mark_long[j] != mm[j]) + \
            tuple((s0 + j, -(self.mark_short[j] + mm[j])) for j in range(J) if self.mark_short[j] + mm[j])
        cl.append(AffineClaim(self.surplus_bits, terms, -self.buffer, "equity - maintenance_margin - buffer"))
        return cl

    def witness(self, balances: Sequence[int], quote: int, positions: Sequence[int]) -> list[int]:
        if len(balances) != len(self.prices) or len(positions) != len(self.mark_long):
            raise StatementError(f"expected {len(self.prices)} balances and {len(self.mark_long)} positions")
        b = [_as_int(x, f"balances[{k}]") for k, x in enumerate(balances)]
        if any(x < 0 for x in b):
            raise StatementError("balances must be >= 0")
        p = [_as_int(x, f"positions[{j}]") for j, x in enumerate(positions)]
        return b + [_as_int(quote, "quote")] + [max(x, 0) for x in p] + [max(-x, 0) for x in p]

    def equity_and_mm(self, balances: Sequence[int], quote: int, positions: Sequence[int]) -> tuple[int, int]:
        """Plain-integer (equity, maintenance margin) in value units, as the statement computes them."""
        x = self.witness(balances, quote, positions)
        K, q, l0, s0 = self.input_layout()
        J = len(self.mark_long)
        e = sum(w * x[k] for k, w in enumerate(self.prices)) + x[q] + \
            sum(self.mark_long[j] * x[l0 + j] - self.mark_short[j] * x[s0 + j] for j in range(J))
        m = sum(mm * (x[l0 + j] + x[s0 + j]) for j, mm in enumerate(self.mm_per_unit))
        return e, m

    def summary(self) -> str:
        rates = ", ".join(f"{n} {r / 1e4:g}%" for n, r in zip(self.instruments, self.mm_rate_ppm))
        return (f"equity statement {self.digest()[:16]}...: venue {self.context.venue}, account "
                f"{self.context.account}, epoch {self.context.epoch}, expiry {self.context.expiry}; equity >= "
                f"MM (derived: {rates or 'no positions'}) + buffer {self.usd(self.buffer)}")


def prove_equity_covers_margin(statement: EquityStatement, balances: Sequence[int] = (), quote: int = 0,
                               positions: Sequence[int] = (), *, backend: str | GroupBackend = "arkworks",
                               dst_version: int = 1, workers: int = 1, **legacy) -> "Bundle":
    """Prove equity >= derived maintenance margin + buffer for ``statement`` (an :class:`EquityStatement`) with
    private balances (amount units), signed quote balance (value units) and signed positions (amount units).
    The v1 form ``prove_equity_covers_margin(equity_usd, mm_usd)`` (a declared MM) is refused with
    :class:`StatementError`: the maintenance margin is derived from the committed positions. Raises
    :class:`StatementError` if the account is under-margined."""
    if not isinstance(statement, EquityStatement):
        raise StatementError("prove_equity_covers_margin needs an EquityStatement: the maintenance margin is "
                             "derived from committed positions and public MM rates, it cannot be declared "
                             "(v1 call prove_equity_covers_margin(equity, mm) removed, issue 11)")
    if legacy:
        raise StatementError(f"unknown arguments {sorted(legacy)}")
    x = statement.witness(balances, quote, positions)
    comms, proof, op = prove_statement("equity", statement.to_json(), statement.claims(), x, backend=backend,
                                       dst_version=dst_version, workers=workers)
    K, q, l0, s0 = statement.input_layout()
    return Bundle("equity", statement, {"collateral": comms[:K], "quote": comms[q], "long": comms[l0:s0],
                                        "short": comms[s0:]}, proof, dst_version, op)


def verify_equity_covers_margin(bundle: "Bundle | dict", *, backend: str | GroupBackend = "arkworks",
                                raise_on_failure: bool = False, expected_statement: Any = None,
                                expected_statement_digest: str | None = None, trust_bundle_statement: bool = False,
                                now: float | None = None) -> bool:
    """Verify an equity-covers-margin bundle (object or its JSON dict) against the expected statement (see
    :func:`verify_bundle`)."""
    return verify_bundle(bundle, backend=backend, raise_on_failure=raise_on_failure, expect_kind="equity",
                         expected_statement=expected_statement, expected_statement_digest=expected_statement_digest,
                         trust_bundle_statement=trust_bundle_statement, now=now)


# ---------------------------------------------------------------------------------------------- cross-venue
@dataclass(frozen=True)
class CrossVenueStatement(_StatementBase):
    """Shared collateral (K haircut prices) and V venues, each with a J_v x S_v P&L matrix pair (floor for long
    parts, ``venues_short`` = ceil for short parts; default the same integers). Format v2.

    Inputs (in order): b_0..b_{K-1}; for each venue v its long parts then its short parts; then W_0..W_{V-1}.
    Claims: b_k in [0, 2^nb); l_vj, s_vj in [0, 2^np); W_v in [0, 2^ns);
    W_v + sum_j (L_v[j, s] l_vj - Lshort_v[j, s] s_vj) in [0, 2^ns) for every scenario s of venue v
    (W_v >= worst-case loss); sum_k w_k b_k - sum_v W_v - buffer in [0, 2^ns)."""

    prices: tuple[int, ...]
    venues: tuple[tuple[tuple[int, ...], ...], ...]
    buffer: int = 0
    collateral_bits: int = 64
    position_bits: int = 32
    scenario_bits: int = 64
    venue_names: tuple[str, ...] = ()
    unit: str = ""
    venues_short: tuple | None = None
    context: Context | None = None
    value_scale: int = 1
    amount_scale: int = 1

    def __post_init__(self):
        if not self.venues or len(self.venues) > _MAX_VENUES:
            raise StatementError(f"1 to {_MAX_VENUES} venues required")
        base = MarginStatement(self.prices, self.venues[0], self.buffer, self.collateral_bits, self.position_bits,
                               self.scenario_bits, self.unit, context=self.context, value_scale=self.value_scale,
                               amount_scale=self.amount_scale)
        object.__setattr__(self, "prices", base.prices)
        object.__setattr__(self, "buffer", base.buffer)
        for f in ("collateral_bits", "position_bits", "scenario_bits", "value_scale", "amount_scale"):
            object.__setattr__(self, f, getattr(base, f))
        longs = tuple(_int_matrix(L, f"venues[{v}]") for v, L in enumerate(self.venues))
        shorts = self.venues_short if self.venues_short is not None else (None,) * len(longs)
        if len(shorts) != len(longs):
            raise StatementError("venues_short: one matrix per venue")
        object.__setattr__(self, "venues", longs)
        object.__setattr__(self, "venues_short", tuple(_short_matrix(L, S, f"venues_short[{v}]")
                                                       for v, (L, S) in enumerate(zip(longs, shorts))))
        if sum(len(L) for L in longs) > _MAX_INSTRUMENTS or any(len(L[0]) > _MAX_SCENARIOS for L in longs):
            raise StatementError("too many instruments or scenarios")
        object.__setattr__(self, "venue_names", _names(self.venue_names, len(longs), "venue", "venue_names"))

    def to_json(self) -> dict:
        return {"kind": "cross_venue", "version": str(STATEMENT_VERSION), "context": self.context.to_json(),
                "prices": [str(w) for w in self.prices],
                "venues": [{"name": n, "pnl_long": [[str(v) for v in row] for row in L],
                            "pnl_short": [[str(v) for v in row] for row in Ls]}
                           for n, L, Ls in zip(self.venue_names, self.venues, self.venues_short)],
                "buffer": str(self.buffer),
                "bits": {"collateral": str(self.collateral_bits), "position": str(self.position_bits),
                         "scenario": str(self.scenario_bits)}, "units": _units_json(self)}

    @_from_json_guard
    def from_json(cls, o: Any) -> "CrossVenueStatement":
        """Strict parse; :class:`MalformedProof`."""
        o = _header(o, "cross_venue", {"context", "prices", "venues", "buffer", "bits", "units"})
        ctx = Context.from_json(o["context"])
        prices = int_list(o["prices"], "prices", max_len=_MAX_COLLATERAL, lo=0, hi=_MAX_COEFF)
        vs_ = as_list(o["venues"], "venues", min_len=1, max_len=_MAX_VENUES)
        names, longs, shorts = [], [], []
        for v, ve in enumerate(vs_):
            exact_keys(ve, {"name", "pnl_long", "pnl_short"}, f"venues[{v}]")
            names.append(text(ve["name"], f"venues[{v}].name", max_len=256))
            J = len(as_list(ve["pnl_long"], f"venues[{v}].pnl_long", min_len=1, max_len=_MAX_INSTRUMENTS))
            first = as_list(ve["pnl_long"][0], f"venues[{v}].pnl_long[0]", min_len=1, max_len=_MAX_SCENARIOS)
            S = len(first)
            longs.append(int_matrix(ve["pnl_long"], f"venues[{v}].pnl_long", rows=J, cols=S, lo=-_MAX_COEFF + 1,
                                    hi=_MAX_COEFF))
            shorts.append(int_matrix(ve["pnl_short"], f"venues[{v}].pnl_short", rows=J, cols=S,
                                     lo=-_MAX_COEFF + 1, hi=_MAX_COEFF))
        nb, np_, ns = _bits_from_json(o["bits"], ("collateral", "position", "scenario"))
        vs, asc, unit = _units_from_json(o["units"])
        return cls(prices, tuple(longs), int_str(o["buffer"], "buffer", lo=0, hi=_MAX_COEFF), nb, np_, ns,
                   tuple(names), unit, venues_short=tuple(shorts), context=ctx, value_scale=vs, amount_scale=asc)

    def layout(self) -> tuple[int, list[int], int]:
        """(K, start index of each venue's long parts (its short parts follow), index of W_0)."""
        K = len(self.prices)
        starts, i = [], K
        for L in self.venues:
            starts.append(i)
            i += 2 * len(L)
        return K, starts, i

    def claims(self) -> list[AffineClaim]:
        K, starts, w0 = self.layout()
        nb, np_, ns = self.collateral_bits, self.position_bits, self.scenario_bits
        cl = [AffineClaim(nb, ((k, 1),), 0, f"collateral[{k}]") for k in range(K)]
        for v, L in enumerate(self.venues):
            J = len(L)
            cl += [AffineClaim(np_, ((starts[v] + j, 1),), 0, f"{self.venue_names[v]}.long[{j}]") for j in range(J)]
            cl += [AffineClaim(np_, ((starts[v] + J + j, 1),), 0, f"{self.venue_names[v]}.short[{j}]")
                   for j in range(J)]
        V = len(self.venues)
        cl += [AffineClaim(ns, ((w0 + v, 1),), 0, f"{self.venue_names[v]}.worst_loss") for v in range(V)]
        for v, (L, Ls) in enumerate(zip(self.venues, self.venues_short)):
            J = len(L)
            for s in range(len(L[0])):
                terms = ((w0 + v, 1),) + tuple((starts[v] + j, L[j][s]) for j in range(J) if L[j][s]) + \
                    tuple((starts[v] + J + j, -Ls[j][s]) for j in range(J) if Ls[j][s])
                cl.append(AffineClaim(ns, terms, 0, f"{self.venue_names[v]}.scenario[{s}]"))
        terms = tuple((k, w) for k, w in enumerate(self.prices) if w) + tuple((w0 + v, -1) for v in range(V))
        cl.append(AffineClaim(ns, terms, -self.buffer, "collateral - sum worst losses - buffer"))
        return cl

    def summary(self) -> str:
        return (f"cross-venue statement {self.digest()[:16]}...: account {self.context.account}, epoch "
                f"{self.context.epoch}, expiry {self.context.expiry}; venues {list(self.venue_names)}; buffer "
                f"{self.usd(self.buffer)}")


def prove_cross_venue(statement: CrossVenueStatement, balances: Sequence[int],
                      positions: Sequence[Sequence[int]], *, backend: str | GroupBackend = "arkworks",
                      dst_version: int = 1, ipa_mode: str = "hybrid", workers: int = 1) -> "Bundle":
    """Prove the cross-venue statement; the prover computes W_v = max(0, max_s -(L_v l_v - Lshort_v s_v)_s)."""
    if len(positions) != len(statement.venues) or len(balances) != len(statement.prices):
        raise StatementError("balances/positions do not match the statement")
    for k, b in enumerate(balances):
        if _as_int(b, f"balances[{k}]") < 0:
            raise StatementError(f"balances[{k}] = {b} is negative")
    W = []
    flat: list[int] = []
    for v, (L, Ls, q) in enumerate(zip(statement.venues, statement.venues_short, positions)):
        q = [_as_int(x, f"positions[{v}][{j}]") for j, x in enumerate(q)]
        if len(q) != len(L):
            raise StatementError(f"venue {v}: {len(L)} instruments but {len(q)} positions")
        lp, sp = [max(x, 0) for x in q], [max(-x, 0) for x in q]
        flat += lp + sp
        W.append(max(0, max(-sum(L[j][s] * lp[j] - Ls[j][s] * sp[j] for j in range(len(L)))
                            for s in range(len(L[0])))))
    comms, proof, op = prove_statement("cross_venue", statement.to_json(), statement.claims(),
                                       list(balances) + flat + W, backend=backend, dst_version=dst_version,
                                       ipa_mode=ipa_mode, workers=workers)
    K, starts, w0 = statement.layout()
    venues = [{"long": comms[starts[v]:starts[v] + len(L)], "short": comms[starts[v] + len(L):starts[v] + 2 * len(L)]}
              for v, L in enumerate(statement.venues)]
    return Bundle("cross_venue", statement, {"collateral": comms[:K], "venues": venues,
                                             "worst_losses": comms[w0:]}, proof, dst_version, op)


def verify_cross_venue(bundle: "Bundle | dict", *, backend: str | GroupBackend = "arkworks",
                       raise_on_failure: bool = False, expected_statement: Any = None,
                       expected_statement_digest: str | None = None, trust_bundle_statement: bool = False,
                       now: float | None = None) -> bool:
    """Verify a cross-venue bundle against the expected statement (see :func:`verify_bundle`)."""
    return verify_bundle(bundle, backend=backend, raise_on_failure=raise_on_failure, expect_kind="cross_venue",
                         expected_statement=expected_statement, expected_statement_digest=expected_statement_digest,
                         trust_bundle_statement=trust_bundle_statement, now=now)


# -------------------------------------------------------------------------------------------------- bundles
_KINDS = {"margin": MarginStatement, "equity": EquityStatement, "cross_venue": CrossVenueStatement}


def statement_from_json(o: Any) -> "MarginStatement | EquityStatement | CrossVenueStatement":
    """Strict parse of a v2 statement of any kind (dict, or JSON text / bytes as in ``statement.json``)."""
    if isinstance(o, (bytes, bytearray, str)):
        o = loads_strict(o)
    if not isinstance(o, dict):
        raise MalformedProof("statement: expected an object")
    kind = o.get("kind")
    if type(kind) is not str or kind not in _KINDS:
        raise MalformedProof("statement.kind: expected one of margin, equity, cross_venue")
    return _KINDS[kind].from_json(o)


def _commitment_count(kind: str, st) -> int:
    if kind == "margin":
        return st.num_collateral + 2 * st.num_positions
    if kind == "equity":
        return len(st.prices) + 1 + 2 * len(st.mark_long)
    return st.layout()[2] + len(st.venues)


@dataclass(frozen=True)
class Bundle:
    """Public bundle: statement kind, statement, commitments (48-byte encodings, grouped by role), proof; the
    provers also attach the private ``openings`` (kept out of every encoding; write them with
    ``openings.to_json()`` to a separate private file).

    JSON (format v2, strict): ``{"format": "predictive-margin/zk-bundle", "version": "2", "kind", "curve":
    "BLS12-381-G1", "dst_version": "1", "statement": {...}, "commitments": {...}, "proof": hex}`` with
    commitments ``{"collateral", "long", "short"}`` (margin), ``{"collateral", "quote", "long", "short"}``
    (equity), ``{"collateral", "venues": [{"long", "short"}], "worst_losses"}`` (cross-venue); every point as
    96 lower-case hex digits; the proof as lower-case hex of :meth:`StatementProof.to_bytes`."""

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
            return list(c["collateral"]) + list(c["long"]) + list(c["short"])
        if self.kind == "equity":
            return list(c["collateral"]) + [c["quote"]] + list(c["long"]) + list(c["short"])
        if self.kind == "cross_venue":
            return list(c["collateral"]) + [x for v in c["venues"] for x in list(v["long"]) + list(v["short"])] + \
                list(c["worst_losses"])
        raise MalformedProof(f"unknown bundle kind {self.kind!r}")

    def to_json(self) -> dict:
        c = self.commitments
        hx = lambda xs: [bytes(x).hex() for x in xs]  # noqa: E731
        if self.kind == "margin":
            cj = {"collateral": hx(c["collateral"]), "long": hx(c["long"]), "short": hx(c["short"])}
        elif self.kind == "equity":
            cj = {"collateral": hx(c["collateral"]), "quote": bytes(c["quote"]).hex(), "long": hx(c["long"]),
                  "short": hx(c["short"])}
        else:
            cj = {"collateral": hx(c["collateral"]),
                  "venues": [{"long": hx(v["long"]), "short": hx(v["short"])} for v in c["venues"]],
                  "worst_losses": hx(c["worst_losses"])}
        return {"format": BUNDLE_FORMAT, "version": str(STATEMENT_VERSION), "kind": self.kind, "curve": CURVE,
                "dst_version": str(self.dst_version), "statement": self.statement.to_json(), "commitments": cj,
                "proof": self.proof.to_bytes().hex()}

    @property
    def proof_bytes(self) -> int:
        return len(self.proof.to_bytes())


def _commitments_from_json(kind: str, st, o: Any) -> dict:
    P = POINT_BYTES
    if kind == "margin":
        exact_keys(o, {"collateral", "long", "short"}, "commitments")
        J = st.num_positions
        return {"collateral": hex_list(o["collateral"], "commitments.collateral", P, count=st.num_collateral),
                "long": hex_list(o["long"], "commitments.long", P, count=J),
                "short": hex_list(o["short"], "commitments.short", P, count=J)}
    if kind == "equity":
        exact_keys(o, {"collateral", "quote", "long", "short"}, "commitments")
        J = len(st.mark_long)
        return {"collateral": hex_list(o["collateral"], "commitments.collateral", P, count=len(st.prices)),
                "quote": hex_bytes(o["quote"], "commitments.quote", P),
                "long": hex_list(o["long"], "commitments.long", P, count=J),
                "short": hex_list(o["short"], "commitments.short", P, count=J)}
    exact_keys(o, {"collateral", "venues", "worst_losses"}, "commitments")
    vs = as_list(o["venues"], "commitments.venues", min_len=len(st.venues), max_len=len(st.venues))
    venues = []
    for v, (ve, L) in enumerate(zip(vs, st.venues)):
        exact_keys(ve, {"long", "short"}, f"commitments.venues[{v}]")
        venues.append({"long": hex_list(ve["long"], f"commitments.venues[{v}].long", P, count=len(L)),
                       "short": hex_list(ve["short"], f"commitments.venues[{v}].short", P, count=len(L))})
    return {"collateral": hex_list(o["collateral"], "commitments.collateral", P, count=len(st.prices)),
            "venues": venues,
            "worst_losses": hex_list(o["worst_losses"], "commitments.worst_losses", P, count=len(st.venues))}


def bundle_from_json(o: Any) -> Bundle:
    """Strict parse of a v2 bundle (dict, or JSON text / bytes). Exact keys at every level; integers only as
    digit strings; canonical lower-case hex of exact lengths; ``curve`` must be BLS12-381-G1; every size (number
    of commitments, proof length) is checked against the statement before any point is decoded. Raises
    :class:`MalformedProof` (only)."""
    try:
        if isinstance(o, (bytes, bytearray, str)):
            o = loads_strict(o)
        exact_keys(o, {"format", "version", "kind", "curve", "dst_version", "statement", "commitments", "proof"},
                   "bundle")
        if o["format"] != BUNDLE_FORMAT:
            raise MalformedProof(f"bundle.format: expected {BUNDLE_FORMAT!r}")
        if o["version"] != str(STATEMENT_VERSION):
            raise MalformedProof(f"bundle.version: expected \"{STATEMENT_VERSION}\" (v1 bundles carry no context "
                                 "and are no longer accepted)")
        if o["curve"] != CURVE:
            raise MalformedProof(f"bundle.curve: expected {CURVE!r}")
        kind = o["kind"]
        if type(kind) is not str or kind not in _KINDS:
            raise MalformedProof("bundle.kind: expected one of margin, equity, cross_venue")
        dst_version = int_str(o["dst_version"], "bundle.dst_version", lo=1, hi=1 << 16)
        st = _KINDS[kind].from_json(o["statement"])
        comms = _commitments_from_json(kind, st, o["commitments"])
        groups = _groups(st.claims())
        max_len = 6 + sum(4 + RangeProof.size(b, len(cl)) for b, cl in groups)
        p = o["proof"]
        if type(p) is not str or len(p) > 2 * max_len:
            raise MalformedProof(f"bundle.proof: a hex string of at most {max_len} bytes expected")
        proof = StatementProof.from_bytes(hex_bytes(p, "bundle.proof", len(p) // 2))
        return Bundle(kind, st, comms, proof, dst_version)
    except MalformedProof:
        raise
    except ProofError as e:
        raise MalformedProof(f"bundle: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as e:
        raise MalformedProof(f"bundle JSON: {type(e).__name__}") from None


def _expected(expected_statement: Any, kind: str):
    if isinstance(expected_statement, _StatementBase):
        return expected_statement
    return statement_from_json(expected_statement)


def check_statement_matches(bundle_statement, expected: Any = None, digest: str | None = None) -> None:
    """Raise :class:`StatementMismatch` unless the bundle's statement equals the expected statement (object, dict
    or ``statement.json`` bytes) field for field, or its SHA-256 digest equals ``digest`` (hex)."""
    got = bundle_statement.canonical_bytes()
    if expected is not None:
        exp = _expected(expected, bundle_statement.to_json()["kind"])
        if exp.canonical_bytes() != got:
            a, b = exp.to_json(), bundle_statement.to_json()
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise StatementMismatch(f"the bundle's statement differs from the expected statement in {diff}")
    if digest is not None:
        d = digest.strip().lower() if isinstance(digest, str) else None
        if d is None or len(d) != 64 or any(c not in "0123456789abcdef" for c in d):
            raise MalformedProof("expected statement digest must be 64 hex digits (SHA-256)")
        if hashlib.sha256(got).hexdigest() != d:
            raise StatementMismatch(f"the bundle's statement digest {hashlib.sha256(got).hexdigest()} is not the "
                                    f"expected {d}")


def verify_bundle(bundle: Bundle | dict, *, backend: str | GroupBackend = "arkworks", raise_on_failure: bool = False,
                  expect_kind: str | None = None, expected_statement: Any = None,
                  expected_statement_digest: str | None = None, trust_bundle_statement: bool = False,
                  now: float | None = None) -> bool:
    """Verify a bundle (object, JSON dict or JSON text) of any kind against the VERIFIER's statement.

    The statement is pinned by ``expected_statement`` (a statement object, its JSON dict, or the bytes of the
    venue's ``statement.json``) or ``expected_statement_digest`` (SHA-256 hex of the canonical statement JSON);
    a bundle whose statement differs in any field is rejected (:class:`StatementMismatch`). Without either the
    call is refused (:class:`StatementError`) unless ``trust_bundle_statement=True`` (then the bundle's own
    statement is verified: print its ``summary()`` and ``digest()``). The context's expiry is checked against
    ``now`` (UNIX seconds; default the current time; :class:`ExpiredStatement`).

    Returns True, or False on rejection (or raises the typed :class:`ProofError` if ``raise_on_failure``);
    never raises anything else on hostile input."""
    try:
        if not isinstance(bundle, Bundle):
            bundle = bundle_from_json(bundle)
        if expect_kind is not None and bundle.kind != expect_kind:
            raise StatementError(f"expected a {expect_kind} bundle, got {bundle.kind}")
        if expected_statement is None and expected_statement_digest is None and not trust_bundle_statement:
            raise StatementError("no expected statement: pass expected_statement= (the venue's statement.json) or "
                                 "expected_statement_digest=, or trust_bundle_statement=True")
        st = bundle.statement
        check_statement_matches(st, expected_statement, expected_statement_digest)
        st.context.check_time(now)
        comms = bundle.flat_commitments()
        if len(comms) != _commitment_count(bundle.kind, st):
            raise MalformedProof("number of commitments does not match the statement")
        return verify_statement(bundle.kind, st.to_json(), st.claims(), comms, bundle.proof, backend=backend,
                                dst_version=bundle.dst_version, raise_on_failure=True)
    except ProofError:
        if raise_on_failure:
            raise
        return False
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as e:
        if raise_on_failure:
            raise MalformedProof(f"bundle: {type(e).__name__}") from None
        return False
