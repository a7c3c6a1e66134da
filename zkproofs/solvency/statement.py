"""Exchange-wide proof of solvency for leveraged accounts: the per-epoch statement, its prover and verifier.

Statement (one epoch of one venue; protocol and leakage in ``zkproofs/NOTES.md``, section "Exchange-wide
solvency"). Public: :class:`SolvencyParams` (venue, epoch, collateral assets with liability prices p_k and haircut
prices w_k, instruments with the per-unit scenario P&L matrix L, insurance fund F, reserves R, bit sizes, shard
size), the number of leaves and the root. Private, per account i: collateral balances b_ik >= 0, signed positions
q_ij and committed stress deficits d_is. Proved:

1. **Liabilities.** A Merkle sum tree over the accounts (leaves sorted by a salted hash of the account id, strictly
   increasing, so no id appears twice). Each node is (E, h): E a Pedersen commitment to the subtree's customer
   equity, h = SHA-256(tag, domain, height, E_left, h_left, E_right, h_right) binding both children's
   commitments, their hashes and the epoch (the domain digest covers the whole public statement). A leaf's E is
   sum_k p_k C(b_ik) (mark value of its collateral, p_k rounded up); its hash binds its id hash and every one of
   its commitments. Every node's committed sum, leaves included, is range-proved in [0, 2^value_bits).
2. **Reserves cover liabilities:** R - E_root in [0, 2^value_bits).
3. **Stress solvency:** per scenario s, d_is in [0, 2^vb), surplus_is + d_is in [0, 2^vb) with
   surplus_is = sum_k w_k b_ik + sum_j L[j, s] q_ij, and F - sum_i d_is in [0, 2^vb). (``deficit_mode =
   "worst_case"`` commits one D_i >= every scenario's deficit and uses it for every s: the same statement with
   d_is = D_i, cheaper and more conservative.)
4. **Inclusion.** Each account's file carries its id, salt, openings, sibling path and the public statement;
   :func:`verify_inclusion` checks it against a public bundle.

Encodings: points are 48-byte compressed BLS12-381 G1 (hex in JSON), scalars and integers as decimal strings,
hashes SHA-256 (32 bytes, never truncated). Units: value unit 1/value_scale USD (fixed point); collateral amount
unit 1/amount_scale[k] coin; position amount unit 1/position_scale[j] coin. Rounding is against the prover:
liability prices up, haircut prices and F, R down, P&L per unit floored (losses up; see NOTES.md for the
short-position caveat of a single per-unit matrix).

Errors: :class:`~zkproofs.errors.StatementError` for bad parameters or a false claim (the prover refuses),
:class:`~zkproofs.errors.MalformedProof` for bad encodings, :class:`~zkproofs.errors.VerificationFailed` when a
well-formed bundle does not verify. Verifiers never raise anything else on hostile input.

Sources: Maxwell's Merkle sum tree (2014); Provisions (Dagher et al., CCS 2015); DAPOL+ (Ji & Chalkias, CCS 2021);
Summa (PSE); "Broken Proofs of Solvency in Blockchain Custodial Wallets and Exchanges" (Chalkias, Chatzigiannis,
Ji, FC 2022 workshops); Bulletproofs (Bünz et al., S&P 2018).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import MalformedProof, ProofError, StatementError, VerificationFailed
from ..generators import get_generators
from ..group import R, GroupBackend
from ..rangeproof import RangeProof, check_terms, decode_many, prove_range, range_verification_terms
from ..transcript import Transcript

__all__ = [
    "SOLVENCY_VERSION",
    "SolvencyParams",
    "SecretSource",
    "SeededSecretSource",
    "AccountWitness",
    "tree_height",
    "shard_layout",
]

SOLVENCY_VERSION = 1
PROTOCOL = b"predictive-margin/solvency/v1"
VALID_BITS = (8, 16, 32, 64)
WRAP_BOUND_LOG2 = 250
MAX_CHUNK = 64  # claims per aggregated range proof (N = 64 x 64 = 4096 generators at 64 bits)
MIN_CHUNK = 8   # remainders smaller than this are padded instead of split further
_MAX_COEFF = 1 << 128


# ------------------------------------------------------------------------------------------------- parameters
def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            import numpy as np

            if isinstance(v, np.integer):
                return int(v)
        except ImportError:  # pragma: no cover
            pass
        raise StatementError(f"{what}: expected an integer, got {type(v).__name__} {v!r}")
    return v


@dataclass(frozen=True)
class SolvencyParams:
    """Public parameters of one epoch's solvency statement (all integers in fixed point).

    Attributes:
        venue, epoch: identifiers (text), bound into every hash and transcript.
        assets: K collateral asset names.
        liability_prices: (K,) p_k >= 0, value units per collateral amount unit (mark price, rounded up).
        haircut_prices: (K,) w_k >= 0, value units per amount unit after haircut (rounded down).
        instruments: J instrument names; pnl: (J, S) L[j][s], value units per position amount unit (floored).
        scenarios: S scenario labels.
        insurance_fund: F >= 0 and reserves: R >= 0, value units (rounded down).
        value_scale: value units per USD; amount_scales: (K,) amount units per coin; position_scales: (J,).
        collateral_bits, position_bits, value_bits: Bulletproofs range sizes (8, 16, 32 or 64).
        deficit_mode: "per_scenario" (one committed d_is per scenario) or "worst_case" (one D_i for all s).
        shard_size: leaves per shard subtree (a power of two); fixes the proof layout, not the tree.
    """

    venue: str
    epoch: str
    assets: tuple[str, ...]
    liability_prices: tuple[int, ...]
    haircut_prices: tuple[int, ...]
    instruments: tuple[str, ...]
    pnl: tuple[tuple[int, ...], ...]
    scenarios: tuple[str, ...]
    insurance_fund: int
    reserves: int
    value_scale: int = 1_000_000
    amount_scales: tuple[int, ...] = ()
    position_scales: tuple[int, ...] = ()
    collateral_bits: int = 64
    position_bits: int = 32
    value_bits: int = 64
    deficit_mode: str = "per_scenario"
    shard_size: int = 64

    def __post_init__(self):
        K, J = len(self.assets), len(self.instruments)
        if not isinstance(self.venue, str) or not isinstance(self.epoch, str) or not self.venue or not self.epoch:
            raise StatementError("venue and epoch must be non-empty strings")
        if K < 1 or J < 1:
            raise StatementError(f"need at least one collateral asset and one instrument, got K={K}, J={J}")
        for name, names in (("assets", self.assets), ("instruments", self.instruments), ("scenarios", self.scenarios)):
            if len(set(names)) != len(names) or not all(isinstance(x, str) and x for x in names):
                raise StatementError(f"{name}: names must be distinct non-empty strings, got {list(names)}")
        S = len(self.scenarios)
        if S < 1:
            raise StatementError("need at least one scenario")
        object.__setattr__(self, "assets", tuple(self.assets))
        object.__setattr__(self, "instruments", tuple(self.instruments))
        object.__setattr__(self, "scenarios", tuple(self.scenarios))
        for fname, n in (("liability_prices", K), ("haircut_prices", K)):
            v = tuple(_int(x, f"{fname}[{i}]") for i, x in enumerate(getattr(self, fname)))
            if len(v) != n or any(not 0 <= x < _MAX_COEFF for x in v):
                raise StatementError(f"{fname}: need {n} integers in [0, 2^128), got {list(v)}")
            object.__setattr__(self, fname, v)
        if any(w > p for w, p in zip(self.haircut_prices, self.liability_prices)):
            raise StatementError("a haircut price exceeds its liability price")
        rows = tuple(tuple(_int(x, f"pnl[{j}][{s}]") for s, x in enumerate(r)) for j, r in enumerate(self.pnl))
        if len(rows) != J or any(len(r) != S for r in rows):
            raise StatementError(f"pnl must be {J} x {S} (instruments x scenarios)")
        if any(abs(x) >= _MAX_COEFF for r in rows for x in r):
            raise StatementError("pnl: |entry| must be < 2^128")
        object.__setattr__(self, "pnl", rows)
        for fname in ("insurance_fund", "reserves"):
            v = _int(getattr(self, fname), fname)
            if not 0 <= v < (1 << 128):
                raise StatementError(f"{fname} = {v}: must be in [0, 2^128)")
        if _int(self.value_scale, "value_scale") <= 0:
            raise StatementError("value_scale must be positive")
        for fname, n in (("amount_scales", K), ("position_scales", J)):
            v = tuple(_int(x, fname) for x in getattr(self, fname)) or (1,) * n
            if len(v) != n or any(x <= 0 for x in v):
                raise StatementError(f"{fname}: need {n} positive integers")
            object.__setattr__(self, fname, v)
        for fname in ("collateral_bits", "position_bits", "value_bits"):
            if _int(getattr(self, fname), fname) not in VALID_BITS:
                raise StatementError(f"{fname} = {getattr(self, fname)}: must be one of {VALID_BITS}")
        if self.deficit_mode not in ("per_scenario", "worst_case"):
            raise StatementError(f"deficit_mode = {self.deficit_mode!r}: must be per_scenario or worst_case")
        ss = _int(self.shard_size, "shard_size")
        if ss < 1 or ss & (ss - 1) or ss > 1 << 16:
            raise StatementError(f"shard_size = {ss}: must be a power of two in [1, 65536]")
        self._check_wrap()

    # ---- derived sizes
    @property
    def K(self) -> int:
        return len(self.assets)

    @property
    def J(self) -> int:
        return len(self.instruments)

    @property
    def S(self) -> int:
        return len(self.scenarios)

    @property
    def D(self) -> int:
        """Committed deficits per account."""
        return self.S if self.deficit_mode == "per_scenario" else 1

    @property
    def width(self) -> int:
        """Committed values per leaf: K balances, J positions, D deficits."""
        return self.K + self.J + self.D

    def deficit_slot(self, s: int) -> int:
        return s if self.deficit_mode == "per_scenario" else 0

    def _check_wrap(self) -> None:
        """Every claim must stay far below r/2 over the integers (no wraparound mod r): the largest is a
        scenario surplus or a node sum over at most 2^40 leaves."""
        bb, pb, vb = 1 << self.collateral_bits, 1 << (self.position_bits - 1), 1 << self.value_bits
        worst = vb
        for s in range(self.S):
            worst = max(worst, sum(w * bb for w in self.haircut_prices) + sum(abs(r[s]) * pb for r in self.pnl) + vb)
        worst = max(worst, (sum(p * bb for p in self.liability_prices) << 40),
                    self.insurance_fund + (vb << 40), self.reserves + (vb << 40))
        if worst.bit_length() >= WRAP_BOUND_LOG2:
            raise StatementError(f"claims could reach 2^{worst.bit_length()} >= 2^{WRAP_BOUND_LOG2}: prices, P&L "
                                 "or bit sizes too large (a claim could wrap mod r)")

    # ---- encodings
    def to_json(self) -> dict:
        return {"kind": "solvency", "version": SOLVENCY_VERSION, "venue": self.venue, "epoch": self.epoch,
                "assets": list(self.assets), "liability_prices": [str(x) for x in self.liability_prices],
                "haircut_prices": [str(x) for x in self.haircut_prices], "instruments": list(self.instruments),
                "pnl": [[str(x) for x in r] for r in self.pnl], "scenarios": list(self.scenarios),
                "insurance_fund": str(self.insurance_fund), "reserves": str(self.reserves),
                "value_scale": self.value_scale, "amount_scales": list(self.amount_scales),
                "position_scales": list(self.position_scales), "collateral_bits": self.collateral_bits,
                "position_bits": self.position_bits, "value_bits": self.value_bits,
                "deficit_mode": self.deficit_mode, "shard_size": self.shard_size,
                "units": f"value unit 1/{self.value_scale} USD; collateral k in 1/amount_scales[k] coin; "
                         f"position j in 1/position_scales[j] coin"}

    @classmethod
    def from_json(cls, o: Any) -> "SolvencyParams":
        try:
            if not isinstance(o, dict) or o.get("kind") != "solvency" or type(o.get("version")) is not int or o["version"] != SOLVENCY_VERSION:
                raise MalformedProof("not a v1 solvency statement")

            def ints(xs):
                if not isinstance(xs, list):
                    raise MalformedProof("expected a list")
                return tuple(_parse_int(x) for x in xs)

            p = cls(o["venue"], o["epoch"], tuple(o["assets"]), ints(o["liability_prices"]),
                    ints(o["haircut_prices"]), tuple(o["instruments"]), tuple(ints(r) for r in o["pnl"]),
                    tuple(o["scenarios"]), _parse_int(o["insurance_fund"]), _parse_int(o["reserves"]),
                    o["value_scale"], tuple(o["amount_scales"]), tuple(o["position_scales"]),
                    o["collateral_bits"], o["position_bits"], o["value_bits"], o["deficit_mode"], o["shard_size"])
            if json.dumps(p.to_json(), sort_keys=True) != json.dumps(o, sort_keys=True):  # True != 1 here
                raise MalformedProof("solvency statement JSON is not canonical (unknown keys or altered units)")
            return p
        except ProofError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MalformedProof(f"solvency statement JSON: {e}") from None

    def canonical(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()

    def domain(self) -> bytes:
        """SHA-256 of the canonical public statement (venue, epoch, prices, P&L, F, R, bits): the domain separator
        of every leaf and node hash, so a tree is bound to its epoch and statement."""
        return hashlib.sha256(b"predictive-margin/solvency/domain/v1" + self.canonical()).digest()


def _parse_int(x: Any) -> int:
    if isinstance(x, bool):
        raise MalformedProof("integer expected, got a boolean")
    if isinstance(x, int):
        return x
    if isinstance(x, str) and x.lstrip("-").isdigit() and len(x) < 80:
        return int(x)
    raise MalformedProof(f"integer expected (decimal string), got {x!r:.40}")


# ------------------------------------------------------------------------------------------------- randomness
class SecretSource:
    """Where the prover's secrets come from: blinding factors and range-proof nonces from ``secrets``; the
    per-account salts from a fresh 32-byte epoch master secret (``secrets.token_bytes``) through HMAC-SHA256, so
    one id always gets one salt within an epoch (DAPOL+'s KDF from a master secret)."""

    deterministic = False

    def __init__(self, master: bytes | None = None):
        self.master = master if master is not None else secrets.token_bytes(32)

    def salt(self, account_id: str) -> bytes:
        return hmac.new(self.master, b"salt/" + account_id.encode(), hashlib.sha256).digest()

    def blinding(self, uid: bytes, slot: int) -> int:
        return secrets.randbelow(R - 1) + 1

    def nonce_rng(self, label: bytes) -> Callable[[], int] | None:
        return None  # prove_range's default: secrets


class SeededSecretSource(SecretSource):
    """TEST ONLY: every secret derived from ``seed`` by HMAC-SHA256 (blindings keyed by the leaf's uid and slot,
    nonces by shard and proof label), so the public bundle is reproducible and independent of how the work is
    split across workers. Never use it for a real statement: anyone who knows the seed opens every commitment."""

    deterministic = True

    def __init__(self, seed: int | bytes):
        key = seed if isinstance(seed, bytes) else int(seed).to_bytes(16, "big", signed=True)
        self.key = hashlib.sha256(b"TEST-ONLY-seeded-solvency/" + key).digest()
        super().__init__(hmac.new(self.key, b"master", hashlib.sha256).digest())

    def _scalar(self, msg: bytes) -> int:
        d = hmac.new(self.key, msg + b"/0", hashlib.sha512).digest()
        return int.from_bytes(d, "big") % (R - 1) + 1

    def blinding(self, uid: bytes, slot: int) -> int:
        return self._scalar(b"blind/" + uid + slot.to_bytes(4, "big"))

    def nonce_rng(self, label: bytes) -> Callable[[], int]:
        counter = [0]

        def rng() -> int:
            counter[0] += 1
            return self._scalar(b"nonce/" + label + b"/" + counter[0].to_bytes(8, "big"))

        return rng


# ---------------------------------------------------------------------------------------------- leaves and tree
def account_uid(account_id: str, salt: bytes) -> bytes:
    """SHA-256("pm-solvency/uid/v1" || len(id) || id || salt): the leaf's id hash (hides the id, binds it)."""
    idb = account_id.encode()
    return hashlib.sha256(b"pm-solvency/uid/v1" + len(idb).to_bytes(4, "big") + idb + bytes(salt)).digest()


def leaf_hash(domain: bytes, uid: bytes, commitments: Sequence[bytes]) -> bytes:
    """SHA-256(tag || domain || uid || every commitment of the leaf)."""
    h = hashlib.sha256(b"pm-solvency/leaf/v1" + domain + uid)
    for c in commitments:
        h.update(c)
    return h.digest()


def node_hash(domain: bytes, height: int, e_left: bytes, h_left: bytes, e_right: bytes, h_right: bytes) -> bytes:
    """SHA-256(tag || domain || height || E_left || h_left || E_right || h_right): binds both children's
    commitments and hashes, and (through the domain) the epoch and statement."""
    return hashlib.sha256(b"pm-solvency/node/v1" + domain + height.to_bytes(1, "big") + e_left + h_left +
                          e_right + h_right).digest()


def empty_hash(domain: bytes, height: int) -> bytes:
    """Hash of the padding node at ``height`` (its commitment is the identity point)."""
    return hashlib.sha256(b"pm-solvency/empty/v1" + domain + height.to_bytes(1, "big")).digest()


def tree_height(n_leaves: int) -> int:
    """ceil(log2 n): level h has ceil(n / 2^h) nodes; an odd last node is paired with an empty node."""
    if n_leaves < 1:
        raise StatementError("a solvency tree needs at least one leaf")
    return (n_leaves - 1).bit_length()


def shard_layout(n_leaves: int, shard_size: int) -> tuple[int, int]:
    """(shard height k = min(log2 shard_size, tree height), number of shards ceil(n / 2^k))."""
    k = min(shard_size.bit_length() - 1, tree_height(n_leaves))
    return k, -(-n_leaves // (1 << k))


class Tree:
    """A (sub)tree's levels: ``E[h][i]`` (backend points) and ``H[h][i]`` (hashes), with empty padding nodes as
    ``None`` entries produced on demand. Built bottom-up from leaf points and hashes over ``height`` levels."""

    def __init__(self, be: GroupBackend, domain: bytes, leaf_E: list, leaf_H: list[bytes], height: int,
                 base_height: int = 0):
        self.be, self.domain = be, domain
        ident = be.identity()
        self.E, self.H, self.enc = [list(leaf_E)], [list(leaf_H)], [[be.encode(p) for p in leaf_E]]
        id_enc = be.encode(ident)
        for lvl in range(1, height + 1):
            h_abs = base_height + lvl
            pe, ph, penc = self.E[-1], self.H[-1], self.enc[-1]
            E, H, enc = [], [], []
            for i in range(0, len(pe), 2):
                if i + 1 < len(pe):
                    er, hr, encr = pe[i + 1], ph[i + 1], penc[i + 1]
                else:
                    er, hr, encr = ident, empty_hash(domain, h_abs - 1), id_enc
                e = be.add(pe[i], er)
                E.append(e)
                enc.append(be.encode(e))
                H.append(node_hash(domain, h_abs, penc[i], ph[i], encr, hr))
            self.E.append(E)
            self.H.append(H)
            self.enc.append(enc)
        self.base_height = base_height
        self.id_enc = id_enc

    def path(self, index: int) -> list[tuple[str, str]]:
        """Sibling path of leaf ``index``: per level (bottom up) the sibling's commitment and hash (hex)."""
        out = []
        for lvl in range(len(self.E) - 1):
            sib = index ^ 1
            if sib < len(self.E[lvl]):
                out.append((self.enc[lvl][sib].hex(), self.H[lvl][sib].hex()))
            else:
                out.append((self.id_enc.hex(), empty_hash(self.domain, self.base_height + lvl).hex()))
            index >>= 1
        return out

    @property
    def root(self) -> tuple[Any, bytes, bytes]:
        return self.E[-1][0], self.enc[-1][0], self.H[-1][0]


# ---------------------------------------------------------------------------------------------------- witness
@dataclass
class AccountWitness:
    """One account in fixed point: ``balances`` (K,) >= 0 collateral amount units, ``positions`` (J,) signed
    position amount units. Its deficits are computed by the prover (:meth:`deficits`)."""

    account_id: str
    balances: tuple[int, ...]
    positions: tuple[int, ...]

    def surplus(self, p: SolvencyParams) -> list[int]:
        """Per scenario: sum_k w_k b_k + sum_j L[j, s] q_j (value units; a plain-integer reference)."""
        base = sum(w * b for w, b in zip(p.haircut_prices, self.balances))
        return [base + sum(p.pnl[j][s] * q for j, q in enumerate(self.positions)) for s in range(p.S)]

    def equity(self, p: SolvencyParams) -> int:
        return sum(pk * b for pk, b in zip(p.liability_prices, self.balances))

    def deficits(self, p: SolvencyParams) -> list[int]:
        d = [max(0, -x) for x in self.surplus(p)]
        return d if p.deficit_mode == "per_scenario" else [max(d)]

    def check(self, p: SolvencyParams) -> None:
        if not isinstance(self.account_id, str) or not self.account_id:
            raise StatementError(f"account id must be a non-empty string, got {self.account_id!r}")
        if len(self.balances) != p.K or len(self.positions) != p.J:
            raise StatementError(f"account {self.account_id}: need {p.K} balances and {p.J} positions")
        for k, b in enumerate(self.balances):
            if not 0 <= _int(b, "balance") < 1 << p.collateral_bits:
                raise StatementError(f"account {self.account_id}: balance of {p.assets[k]} = {b} not in "
                                     f"[0, 2^{p.collateral_bits}) amount units")
        half = 1 << (p.position_bits - 1)
        for j, q in enumerate(self.positions):
            if not -half <= _int(q, "position") < half:
                raise StatementError(f"account {self.account_id}: position in {p.instruments[j]} = {q} not in "
                                     f"[-2^{p.position_bits - 1}, 2^{p.position_bits - 1})")


# ------------------------------------------------------------------------------------------------------ claims
@dataclass(frozen=True)
class Claim:
    """``sum a * x_i + const`` (x_i the shard's or top's committed inputs) lies in [0, 2^bits)."""

    bits: int
    terms: tuple[tuple[int, int], ...]
    const: int
    label: str


def shard_claims(p: SolvencyParams, n_leaves: int, height: int) -> list[Claim]:
    """Claims of a shard of ``n_leaves`` leaves (inputs: per leaf K balances, J positions, D deficits, in order)
    whose subtree has ``height`` levels above the leaves: per leaf the input ranges, each scenario's surplus plus
    deficit, the leaf's equity sum; per internal node of the subtree its equity sum."""
    W, K, J = p.width, p.K, p.J
    nb, npb, vb = p.collateral_bits, p.position_bits, p.value_bits
    out: list[Claim] = []
    for i in range(n_leaves):
        o = i * W
        out += [Claim(nb, ((o + k, 1),), 0, f"leaf {i}: balance {p.assets[k]}") for k in range(K)]
        out += [Claim(npb, ((o + K + j, 1),), 1 << (npb - 1), f"leaf {i}: position {p.instruments[j]}")
                for j in range(J)]
        out += [Claim(vb, ((o + K + J + d, 1),), 0, f"leaf {i}: deficit {d}") for d in range(p.D)]
        for s in range(p.S):
            terms = tuple((o + k, w) for k, w in enumerate(p.haircut_prices) if w)
            terms += tuple((o + K + j, p.pnl[j][s]) for j in range(J) if p.pnl[j][s])
            terms += ((o + K + J + p.deficit_slot(s), 1),)
            out.append(Claim(vb, terms, 0, f"leaf {i}: surplus + deficit, scenario {p.scenarios[s]}"))
    for lvl in range(height + 1):
        span = 1 << lvl
        for start in range(0, n_leaves, span):
            terms = tuple((j * W + k, pk) for j in range(start, min(start + span, n_leaves))
                          for k, pk in enumerate(p.liability_prices) if pk)
            out.append(Claim(vb, terms, 0, f"node (height {lvl}, leaves {start}..{min(start + span, n_leaves) - 1})"
                                           " equity sum"))
    return out


def top_claims(p: SolvencyParams, n_shards: int, shard_height: int, top_height: int) -> list[Claim]:
    """Claims over the shard roots (inputs: per shard its equity E_t, then its D deficit sums): the inputs'
    ranges, every node above the shards, R - E_root and, per scenario, F - sum_i d_is."""
    vb, D = p.value_bits, p.D
    W = 1 + D
    out = [Claim(vb, ((t * W, 1),), 0, f"shard {t} equity") for t in range(n_shards)]
    out += [Claim(vb, ((t * W + 1 + d, 1),), 0, f"shard {t} deficit sum {d}") for t in range(n_shards) for d in range(D)]
    for lvl in range(1, top_height + 1):
        span = 1 << lvl
        for start in range(0, n_shards, span):
            terms = tuple((t * W, 1) for t in range(start, min(start + span, n_shards)))
            out.append(Claim(vb, terms, 0, f"node (height {shard_height + lvl}) equity sum"))
    out.append(Claim(vb, tuple((t * W, -1) for t in range(n_shards)), p.reserves, "reserves - total equity"))
    for s in range(p.S):
        terms = tuple((t * W + 1 + p.deficit_slot(s), -1) for t in range(n_shards))
        out.append(Claim(vb, terms, p.insurance_fund, f"insurance fund - total deficit, scenario {p.scenarios[s]}"))
    return out


def chunks(claims: Sequence[Claim]) -> list[tuple[int, list[int]]]:
    """Split claims into aggregated range proofs: grouped by bit size (ascending), then chunks of MAX_CHUNK and a
    binary decomposition of the remainder (pieces below MIN_CHUNK merged and padded). Returns (bits, indices)."""
    by: dict[int, list[int]] = {}
    for i, c in enumerate(claims):
        by.setdefault(c.bits, []).append(i)
    out = []
    for bits in sorted(by):
        idx = by[bits]
        pos = 0
        while len(idx) - pos >= MAX_CHUNK:
            out.append((bits, idx[pos:pos + MAX_CHUNK]))
            pos += MAX_CHUNK
        rem = len(idx) - pos
        for b in reversed(range(MAX_CHUNK.bit_length())):
            size = 1 << b
            if size < MIN_CHUNK:
                break
            if rem >= size:
                out.append((bits, idx[pos:pos + size]))
                pos += size
                rem -= size
        if rem:
            out.append((bits, idx[pos:]))
    return out


def claim_values(claims: Sequence[Claim], values: Sequence[int], blindings: Sequence[int]):
    """Evaluate every claim over the integers (refusing a false one) and its blinding mod r."""
    out = []
    for c in claims:
        v = sum(a * values[i] for i, a in c.terms) + c.const
        if not 0 <= v < (1 << c.bits):
            raise StatementError(f"claim {c.label} is false: value {v} not in [0, 2^{c.bits})")
        out.append((v, sum(a * blindings[i] for i, a in c.terms) % R))
    return out


def prove_claims(be: GroupBackend, transcript: Transcript, claims: Sequence[Claim], values: Sequence[int],
                 blindings: Sequence[int], rng: Callable[[], int] | None, dst_version: int = 1) -> list[RangeProof]:
    """Aggregated range proofs of every claim, in :func:`chunks` order, on one transcript (which must already
    hold the statement and every input commitment). The claims' commitments are derived, never published."""
    gens = get_generators(be, dst_version)
    from . import statement as _self

    vb = _self.claim_values(claims, values, blindings)  # module lookup: the tests' cheating prover patches it
    proofs = []
    for bits, idx in chunks(claims):
        proofs.append(prove_range(be, gens, transcript, [vb[i][0] for i in idx], [vb[i][1] for i in idx], bits,
                                  rng=rng, absorb_V=False)[0])
    return proofs


def claim_terms(be: GroupBackend, transcript: Transcript, claims: Sequence[Claim], base_points: Sequence[Any],
                proofs: Sequence[RangeProof], dst_version: int = 1) -> list:
    """Verification terms of :func:`prove_claims`' proofs (one MSM later checks all of them)."""
    gens = get_generators(be, dst_version)
    plan = chunks(claims)
    if len(proofs) != len(plan):
        raise MalformedProof(f"expected {len(plan)} range proofs, got {len(proofs)}")
    terms = []
    for (bits, idx), pr in zip(plan, proofs):
        rows = [[(i, a % R) for i, a in claims[j].terms] + ([(-1, claims[j].const % R)] if claims[j].const else [])
                for j in idx]
        terms.append(range_verification_terms(pr, be, gens, transcript, None, bits, derived=(base_points, rows)))
    return terms


def check_all(be: GroupBackend, terms: list, dst_version: int = 1) -> None:
    if not check_terms(be, get_generators(be, dst_version), terms):
        raise VerificationFailed("solvency range proofs do not verify (a claim is false or a proof was altered)")


# ------------------------------------------------------------------------------------------------- transcripts
def statement_header(p: SolvencyParams, n_leaves: int, root_E: bytes, root_hash: bytes) -> dict:
    """The public statement as the verifier sees it: parameters, number of leaves and the root."""
    return {"params": p.to_json(), "n_leaves": n_leaves, "root": {"commitment": root_E.hex(), "hash": root_hash.hex()}}


def base_transcript(header: dict, part: bytes, index: int, dst_version: int = 1, *, absorb_root: bool = True) -> Transcript:
    """Transcript of one proof of the statement: protocol, curve, DST version, the canonical public statement
    (parameters, number of leaves, root commitment and hash), the part ("shard" or "top") and its index.
    ``absorb_root=False`` exists only for the Frozen-Heart test (a weakened verifier)."""
    t = Transcript(b"predictive-margin/solvency")
    t.append_message(b"protocol", PROTOCOL)
    t.append_message(b"curve", b"BLS12-381-G1")
    t.append_u64(b"dst-version", dst_version)
    h = header if absorb_root else {k: v for k, v in header.items() if k != "root"}
    t.append_message(b"statement", json.dumps(h, sort_keys=True, separators=(",", ":")).encode())
    t.append_message(b"part", part)
    t.append_u64(b"index", index)
    return t


def proofs_to_hex(proofs: Sequence[RangeProof]) -> list[str]:
    return [pr.to_bytes().hex() for pr in proofs]


def proofs_from_hex(xs: Any) -> list[RangeProof]:
    if not isinstance(xs, list) or len(xs) > 4096:
        raise MalformedProof("range proofs must be a list of hex strings")
    out = []
    for x in xs:
        if not isinstance(x, str) or len(x) > 20000:
            raise MalformedProof("range proof must be a hex string")
        try:
            out.append(RangeProof.from_bytes(bytes.fromhex(x)))
        except ValueError as e:
            if isinstance(e, ProofError):
                raise
            raise MalformedProof(f"range proof: {e}") from None
    return out


def hexbytes(x: Any, n: int, what: str) -> bytes:
    if not isinstance(x, str) or len(x) != 2 * n:
        raise MalformedProof(f"{what}: expected {n} bytes of hex")
    try:
        return bytes.fromhex(x)
    except ValueError:
        raise MalformedProof(f"{what}: not hex") from None


def decode_points(be: GroupBackend, encs: Sequence[bytes], what: str) -> list:
    return decode_many(be, list(encs), what)
