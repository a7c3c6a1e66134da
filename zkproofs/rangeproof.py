"""Aggregated Bulletproofs range proofs (Bünz, Bootle, Boneh, Poelstra, Wuille, Maxwell, IEEE S&P 2018, section
4.3 "aggregating logarithmic proofs"), following dalek bulletproofs' ``RangeProof`` (prover messages, transcript
order, the single-multiscalar verification equation). Maths in ``zkproofs/NOTES.md``.

Proves that each of m committed values ``V_j = v_j B + gamma_j B_blinding`` lies in [0, 2^n), n in {8,16,32,64}.
m is padded to the next power of two with commitments to 0 with blinding 0 (the identity point), which the
verifier reproduces; both the real and the padded m are absorbed by the transcript.

Encoding (version 1): ``0x01 || A || S || T1 || T2 || t_x || t_x_blinding || e_blinding || (L_i || R_i)_i || a || b``
with 48-byte compressed points and 32-byte big-endian scalars: 1 + (2 log2(n m') + 4) * 48 + 5 * 32 bytes
(929 for one 64-bit value: the 928-byte body of the paper/dalek layout plus the version byte).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import InvalidPoint, MalformedProof, ProofError, StatementError, VerificationFailed
from .generators import Generators
from .group import POINT_BYTES, R, SCALAR_BYTES, GroupBackend, check_scalar, scalar_from_bytes
from .innerproduct import InnerProductProof, ipa_prove, ipa_verification_scalars
from .transcript import Transcript

__all__ = [
    "RangeProof",
    "VALID_BITS",
    "RANGEPROOF_VERSION",
    "padded_m",
    "commit",
    "prove_range",
    "verify_range",
    "range_verification_terms",
    "batch_verify_range",
    "batch_verify_parallel",
    "VerificationTerms",
    "check_terms",
    "decode_commitments",
    "decode_many",
    "random_scalar",
]

VALID_BITS = (8, 16, 32, 64)
RANGEPROOF_VERSION = 1
MAX_M = 1 << 10  # caps a hostile verifier input at N = 64 * 1024 generators


def padded_m(m: int) -> int:
    """Smallest power of two >= m (the aggregation size the verifier reproduces)."""
    if m < 1:
        raise StatementError(f"m must be >= 1, got {m}")
    return 1 << (m - 1).bit_length()


def _check_nm(n: int, m: int) -> int:
    if n not in VALID_BITS:
        raise StatementError(f"n must be one of {VALID_BITS}, got {n}")
    if not 1 <= m <= MAX_M:
        raise StatementError(f"m must be in [1, {MAX_M}], got {m}")
    return padded_m(m)


def random_scalar() -> int:
    """Uniform nonzero scalar from ``secrets`` (blinding factors, nonces)."""
    return secrets.randbelow(R - 1) + 1


def commit(backend: GroupBackend, gens: Generators, value: int, blinding: int) -> Any:
    """Pedersen commitment ``value * B + blinding * B_blinding`` (value, blinding canonical scalars)."""
    return backend.msm([gens.B, gens.B_blinding], [check_scalar(value, field="value"),
                                                   check_scalar(blinding, field="blinding")])


@dataclass(frozen=True)
class RangeProof:
    """An aggregated range proof. Points are kept encoded (48 bytes) and decoded with checks by the verifier;
    scalars are ints in [0, r).

    A, S: commitments to the bit vectors and to the blinding vectors; T1, T2: commitments to the coefficients
    t_1, t_2 of t(x); t_x = t(x); t_x_blinding, e_blinding: blindings; ipp: inner-product proof of <l(x), r(x)>."""

    A: bytes
    S: bytes
    T1: bytes
    T2: bytes
    t_x: int
    t_x_blinding: int
    e_blinding: int
    ipp: InnerProductProof

    # ---------------------------------------------------------------- encodings
    def to_bytes(self) -> bytes:
        out = [bytes([RANGEPROOF_VERSION]), self.A, self.S, self.T1, self.T2]
        out += [x.to_bytes(32, "big") for x in (self.t_x, self.t_x_blinding, self.e_blinding)]
        for Lb, Rb in zip(self.ipp.L, self.ipp.R):
            out += [Lb, Rb]
        out += [self.ipp.a.to_bytes(32, "big"), self.ipp.b.to_bytes(32, "big")]
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> "RangeProof":
        """Parse a versioned encoding; checks length, version and scalar canonicity (points are checked when a
        verifier decodes them). Raises :class:`MalformedProof` / :class:`InvalidScalar`."""
        if not isinstance(data, (bytes, bytearray)):
            raise MalformedProof("range proof must be bytes")
        data = bytes(data)
        if len(data) < 1 or data[0] != RANGEPROOF_VERSION:
            raise MalformedProof(f"unknown range proof version {data[:1].hex() or '<empty>'}")
        body = data[1:]
        fixed = 4 * POINT_BYTES + 5 * SCALAR_BYTES
        rest = len(body) - fixed
        if rest < 0 or rest % (2 * POINT_BYTES):
            raise MalformedProof(f"range proof length {len(data)} is not 1 + {fixed} + k*96")
        k = rest // (2 * POINT_BYTES)
        if k > 32:
            raise MalformedProof("too many inner-product rounds")
        pts = [body[i * 48:(i + 1) * 48] for i in range(4)]
        off = 4 * 48
        sc = [scalar_from_bytes(body[off + 32 * i: off + 32 * (i + 1)], field="range proof scalar") for i in range(3)]
        off += 96
        L, Rr = [], []
        for i in range(k):
            L.append(body[off:off + 48]); Rr.append(body[off + 48:off + 96]); off += 96
        a = scalar_from_bytes(body[off:off + 32], field="ipp.a")
        b = scalar_from_bytes(body[off + 32:off + 64], field="ipp.b")
        return cls(pts[0], pts[1], pts[2], pts[3], sc[0], sc[1], sc[2], InnerProductProof(tuple(L), tuple(Rr), a, b))

    def to_json(self) -> dict:
        return {
            "version": RANGEPROOF_VERSION,
            "A": self.A.hex(), "S": self.S.hex(), "T1": self.T1.hex(), "T2": self.T2.hex(),
            "t_x": f"{self.t_x:064x}", "t_x_blinding": f"{self.t_x_blinding:064x}",
            "e_blinding": f"{self.e_blinding:064x}",
            "L": [x.hex() for x in self.ipp.L], "R": [x.hex() for x in self.ipp.R],
            "a": f"{self.ipp.a:064x}", "b": f"{self.ipp.b:064x}",
        }

    @classmethod
    def from_json(cls, obj: Any) -> "RangeProof":
        """Inverse of :meth:`to_json`; any shape/type problem raises :class:`MalformedProof`."""
        try:
            if not isinstance(obj, dict) or obj.get("version") != RANGEPROOF_VERSION:
                raise MalformedProof("range proof JSON: missing or unknown version")
            keys = {"version", "A", "S", "T1", "T2", "t_x", "t_x_blinding", "e_blinding", "L", "R", "a", "b"}
            if set(obj) != keys:
                raise MalformedProof(f"range proof JSON: keys {sorted(set(obj) ^ keys)} unexpected/missing")
            if not isinstance(obj["L"], list) or not isinstance(obj["R"], list) or len(obj["L"]) != len(obj["R"]):
                raise MalformedProof("range proof JSON: L and R must be lists of equal length")
            hexes = [obj[k] for k in ("A", "S", "T1", "T2", "t_x", "t_x_blinding", "e_blinding")]
            for a, b in zip(obj["L"], obj["R"]):
                hexes += [a, b]
            hexes += [obj["a"], obj["b"]]
            if not all(isinstance(h, str) for h in hexes):
                raise MalformedProof("range proof JSON: fields must be hex strings")
            parts = [bytes.fromhex(h) for h in hexes]
        except ProofError:
            raise
        except (ValueError, TypeError, AttributeError) as e:
            raise MalformedProof(f"range proof JSON: {e}") from None
        pt_idx = set(range(4)) | set(range(7, 7 + 2 * len(obj["L"])))
        for i, p in enumerate(parts):
            if len(p) != (POINT_BYTES if i in pt_idx else SCALAR_BYTES):
                raise MalformedProof(f"range proof JSON: field {i} has wrong length {len(p)}")
        return cls.from_bytes(bytes([RANGEPROOF_VERSION]) + b"".join(parts))

    @staticmethod
    def size(n: int, m: int) -> int:
        """Encoded size in bytes (with the version byte) for m values of n bits."""
        k = (n * padded_m(m)).bit_length() - 1
        return 1 + (2 * k + 4) * POINT_BYTES + 5 * SCALAR_BYTES


# ------------------------------------------------------------------------------------------------------- prover
def _domain_sep(transcript: Transcript, gens: Generators, n: int, m: int, mp: int) -> None:
    transcript.append_message(b"protocol", b"bulletproofs-rangeproof/v1")
    transcript.append_message(b"curve", b"BLS12-381-G1")
    transcript.append_u64(b"n", n)
    transcript.append_u64(b"m", m)
    transcript.append_u64(b"m_padded", mp)
    transcript.append_message(b"generators", gens.digest(n * mp))


def prove_range(
    backend: GroupBackend,
    gens: Generators,
    transcript: Transcript,
    values: Sequence[int],
    blindings: Sequence[int],
    n: int,
    *,
    ipa_mode: str = "hybrid",
    rng=None,
    absorb_V: bool = True,
) -> tuple[RangeProof, list[bytes]]:
    """Prove that every ``values[j]`` lies in [0, 2^n).

    Args: values, blindings: m ints (blindings canonical scalars, from ``secrets``); n: bits in {8,16,32,64};
    ``rng``: optional callable returning a random nonzero scalar (tests only; default ``secrets``).
    Returns (proof, commitments) with commitments the 48-byte encodings of V_j = v_j B + gamma_j B_blinding.
    ``absorb_V=False`` (statement layer only): the V_j are linear combinations of commitments the caller has
    already absorbed together with the coefficients, so only a marker is absorbed and V is not computed
    (returned list empty).
    Raises :class:`StatementError` if a value is out of range (a prover never produces a false proof)."""
    m = len(values)
    mp = _check_nm(n, m)
    if len(blindings) != m:
        raise StatementError(f"{m} values but {len(blindings)} blindings")
    for j, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << n):
            raise StatementError(f"value[{j}] = {v!r} is not an integer in [0, 2^{n})")
        check_scalar(blindings[j], field=f"blinding[{j}]")
    rnd = rng or random_scalar
    vals = list(values) + [0] * (mp - m)
    blinds = list(blindings) + [0] * (mp - m)
    N = n * mp
    B, Bb = gens.B, gens.B_blinding
    G, H = gens.G(N), gens.H(N)
    enc = backend.encode
    par = getattr(backend, "map_parallel", None) or (lambda f, xs: [f(x) for x in xs])

    _domain_sep(transcript, gens, n, m, mp)
    if absorb_V:
        V = [enc(backend.msm([B, Bb], [v, g])) for v, g in zip(values, blindings)]
        Vid = enc(backend.identity())
        for Vb in V + [Vid] * (mp - m):
            transcript.append_message(b"V", Vb)
    else:
        V = []
        transcript.append_message(b"V-derived", b"bound-by-statement")

    aL = [(v >> i) & 1 for v in vals for i in range(n)]
    alpha, rho = rnd(), rnd()
    sL = [rnd() for _ in range(N)]
    sR = [rnd() for _ in range(N)]
    # A = alpha Bb + sum_{bit=1} G_i - sum_{bit=0} H_i  (a_R = a_L - 1 in {0, -1}): two MSMs with unit scalars
    # (cheap: MSM cost grows with scalar bit length) instead of one with scalars r - 1
    ones = [G[i] for i in range(N) if aL[i]]
    zeros = [H[i] for i in range(N) if not aL[i]]
    A_pt = backend.sub(backend.msm([Bb] + ones, [alpha] + [1] * len(ones)), backend.msm(zeros, [1] * len(zeros)))
    S_pt = backend.msm([Bb] + G + H, [rho] + sL + sR)  # large: split over the worker threads by the backend
    A_b, S_b = enc(A_pt), enc(S_pt)
    transcript.append_message(b"A", A_b)
    transcript.append_message(b"S", S_b)
    y = transcript.challenge_scalar(b"y")
    z = transcript.challenge_scalar(b"z")

    zz = z * z % R
    ypow = [1] * N
    for i in range(1, N):
        ypow[i] = ypow[i - 1] * y % R
    pow2 = [1 << i for i in range(n)]
    zpow = [zz]  # z^{2+j}
    for _ in range(1, mp):
        zpow.append(zpow[-1] * z % R)
    l0 = [(b - z) % R for b in aL]
    l1 = sL
    r0 = [(ypow[i] * (aL[i] - 1 + z) + zpow[i // n] * pow2[i % n]) % R for i in range(N)]
    r1 = [ypow[i] * sR[i] % R for i in range(N)]
    t1 = (sum(a * b for a, b in zip(l0, r1)) + sum(a * b for a, b in zip(l1, r0))) % R
    t2 = sum(a * b for a, b in zip(l1, r1)) % R
    tau1, tau2 = rnd(), rnd()
    T1_pt, T2_pt = par(lambda ps: backend.msm(ps[0], ps[1]), [([B, Bb], [t1, tau1]), ([B, Bb], [t2, tau2])])
    T1_b, T2_b = enc(T1_pt), enc(T2_pt)
    transcript.append_message(b"T1", T1_b)
    transcript.append_message(b"T2", T2_b)
    x = transcript.challenge_scalar(b"x")

    lx = [(a + b * x) % R for a, b in zip(l0, l1)]
    rx = [(a + b * x) % R for a, b in zip(r0, r1)]
    t_x = sum(a * b for a, b in zip(lx, rx)) % R
    t_x_blinding = (tau2 * x * x + tau1 * x + sum(zp * g for zp, g in zip(zpow, blinds))) % R
    e_blinding = (alpha + rho * x) % R
    transcript.append_scalar(b"t_x", t_x)
    transcript.append_scalar(b"t_x_blinding", t_x_blinding)
    transcript.append_scalar(b"e_blinding", e_blinding)
    w = transcript.challenge_scalar(b"w")
    Q = backend.mul(B, w)

    yinv = pow(y, R - 2, R)
    hf = [1] * N
    for i in range(1, N):
        hf[i] = hf[i - 1] * yinv % R
    ipp = ipa_prove(backend, transcript, Q, [1] * N, hf, G, H, lx, rx, mode=ipa_mode)
    return RangeProof(A_b, S_b, T1_b, T2_b, t_x, t_x_blinding, e_blinding, ipp), V


# ----------------------------------------------------------------------------------------------------- verifier
@dataclass
class VerificationTerms:
    """A verification equation sum(coeffs * points) == identity, split into the shared generators (``g`` and
    ``h`` coefficient lists for G_i, H_i, and ``b``, ``bb`` for B, B_blinding) and proof-specific points, so
    that several equations merge into one MSM with random weights."""

    g: list[int]
    h: list[int]
    b: int
    bb: int
    points: list[Any]
    scalars: list[int]


def range_verification_terms(
    proof: RangeProof,
    backend: GroupBackend,
    gens: Generators,
    transcript: Transcript,
    commitments: Sequence[Any] | None,
    n: int,
    *,
    commitments_encoded: Sequence[bytes] | None = None,
    derived: tuple[Sequence[Any], Sequence[Sequence[tuple[int, int]]]] | None = None,
    proof_points: Sequence[Any] | None = None,
) -> VerificationTerms:
    """Replay the transcript and return the terms of dalek's single verification equation
    (A + x S + c x T1 + c x^2 T2 + sum u^2 L + u^-2 R - (e + c t_blind) B_blinding + (w (t_x - ab) + c (delta -
    t_x)) B + sum (-z - a s_i) G_i + sum (z + y^-i (z^{2+j} 2^k - b s^-1_i)) H_i + sum c z^{2+j} V_j == 0),
    with c a fresh random scalar combining the two checks. ``commitments`` are decoded points (real values only,
    padding is added here). Alternatively ``derived = (base_points, rows)`` gives each V_j as the linear
    combination sum_{(i, a) in rows[j]} a * base_points[i] (index -1 meaning B); such V_j are not absorbed (the
    caller absorbed the base points and coefficients). Raises :class:`ProofError` subclasses on malformed input."""
    m = len(commitments) if derived is None else len(derived[1])
    mp = _check_nm(n, m)
    N = n * mp
    if len(proof.ipp.L) != N.bit_length() - 1:
        raise MalformedProof(f"proof has {len(proof.ipp.L)} IPA rounds, expected {N.bit_length() - 1} for "
                             f"n={n}, m={m}")
    if proof_points is None:  # batch verification decodes every proof's points in one parallel pass
        proof_points = decode_many(backend, _proof_point_encodings(proof), "proof point")
    decoded = list(proof_points)
    A, S, T1, T2 = decoded[:4]
    k = len(proof.ipp.L)
    Ls, Rs = decoded[4:4 + k], decoded[4 + k:]
    _domain_sep(transcript, gens, n, m, mp)
    if derived is None:
        enc_V = list(commitments_encoded) if commitments_encoded is not None else [backend.encode(c) for c in commitments]
        Vid = backend.encode(backend.identity())
        for Vb in enc_V + [Vid] * (mp - m):
            transcript.append_message(b"V", Vb)
    else:
        transcript.append_message(b"V-derived", b"bound-by-statement")
    transcript.append_message(b"A", proof.A)
    transcript.append_message(b"S", proof.S)
    y = transcript.challenge_scalar(b"y")
    z = transcript.challenge_scalar(b"z")
    transcript.append_message(b"T1", proof.T1)
    transcript.append_message(b"T2", proof.T2)
    x = transcript.challenge_scalar(b"x")
    for s in (proof.t_x, proof.t_x_blinding, proof.e_blinding, proof.ipp.a, proof.ipp.b):
        check_scalar(s, field="proof scalar")
    transcript.append_scalar(b"t_x", proof.t_x)
    transcript.append_scalar(b"t_x_blinding", proof.t_x_blinding)
    transcript.append_scalar(b"e_blinding", proof.e_blinding)
    w = transcript.challenge_scalar(b"w")
    ym1 = (y - 1) % R
    usq, uinvsq, s, (yinv, ym1inv) = ipa_verification_scalars(proof.ipp, N, transcript,
                                                              extra_inverses=(y, ym1 if ym1 else 1))

    c = random_scalar()
    a, b = proof.ipp.a, proof.ipp.b
    zz = z * z % R
    zpow = [zz]
    for _ in range(1, mp):
        zpow.append(zpow[-1] * z % R)
    # delta(y, z) = (z - z^2) <1, y^N> - sum_j z^{3+j} (2^n - 1)
    sum_y = (pow(y, N, R) - 1) * ym1inv % R if ym1 else N % R
    delta = ((z - zz) * sum_y - z * sum(zpow) * ((1 << n) - 1)) % R
    minus_z = R - z
    g = [(minus_z - a * si) % R for si in s]
    h = [0] * N
    yi = 1
    bsc = b
    for i in range(N):
        h[i] = (z + yi * (zpow[i // n] * (1 << (i % n)) - bsc * s[N - 1 - i])) % R
        yi = yi * yinv % R
    base_b = (w * (proof.t_x - a * b) + c * (delta - proof.t_x)) % R
    base_bb = (-proof.e_blinding - c * proof.t_x_blinding) % R
    points = [A, S, T1, T2] + Ls + Rs
    scalars = [1, x, c * x % R, c * x * x % R] + usq + uinvsq
    if derived is None:
        points += list(commitments)
        scalars += [c * zp % R for zp in zpow[:m]]
    else:
        base_points, rows = derived
        acc = [0] * len(base_points)
        for j, row in enumerate(rows):
            cz = c * zpow[j] % R
            for i, a in row:
                if i == -1:
                    base_b += cz * a
                else:
                    acc[i] += cz * a
        base_b %= R
        points += list(base_points)
        scalars += [v % R for v in acc]
    return VerificationTerms(g, h, base_b, base_bb, points, scalars)


def _proof_point_encodings(proof: RangeProof) -> list[bytes]:
    return [proof.A, proof.S, proof.T1, proof.T2] + list(proof.ipp.L) + list(proof.ipp.R)


def decode_many(backend: GroupBackend, encs: Sequence[bytes], field: str = "point") -> list:
    """Checked decoding of many points (identity refused). Serial: py-arkworks-bls12381's decompression and
    subgroup check hold the GIL (measured: 2 threads are slower than 1), unlike its MSM.
    Raises the first :class:`InvalidPoint` in input order."""
    def run(chunk):
        out = []
        for i, b in chunk:
            try:
                out.append(backend.decode(b, field=f"{field}[{i}]"))
            except ProofError as e:
                out.append(e)
        return out

    res = run(list(enumerate(encs)))
    for p in res:
        if isinstance(p, ProofError):
            raise p
    return res


def check_terms(backend: GroupBackend, gens: Generators, terms: Sequence[VerificationTerms],
                weights: Sequence[int] | None = None) -> bool:
    """Evaluate sum_t weight_t * (equation_t) as ONE multi-scalar multiplication; True iff it is the identity.
    With several equations the weights must be random (default: 128-bit weights from ``secrets``; the first
    equation gets weight 1)."""
    if not terms:
        return True
    if weights is None:
        weights = [1] + [secrets.randbits(128) | 1 for _ in terms[1:]]
    Nmax = max(len(t.g) for t in terms)
    g = [0] * Nmax
    h = [0] * Nmax
    bsum = bbsum = 0
    pts: list[Any] = []
    scs: list[int] = []
    for t, wt in zip(terms, weights):
        if wt == 1:
            for i, v in enumerate(t.g):
                g[i] += v
            for i, v in enumerate(t.h):
                h[i] += v
            scs += t.scalars
        else:
            for i, v in enumerate(t.g):
                g[i] += wt * v
            for i, v in enumerate(t.h):
                h[i] += wt * v
            scs += [wt * v % R for v in t.scalars]
        bsum += wt * t.b
        bbsum += wt * t.bb
        pts += t.points
    allp = [gens.B, gens.B_blinding] + gens.G(Nmax) + gens.H(Nmax) + pts
    alls = [bsum % R, bbsum % R] + [v % R for v in g] + [v % R for v in h] + scs
    return backend.is_identity(backend.msm(allp, alls))


def decode_commitments(backend: GroupBackend, commitments: Sequence[bytes], field: str = "commitment") -> list:
    """Checked decoding of commitment encodings (identity refused)."""
    encs = []
    for i, c in enumerate(commitments):
        if isinstance(c, str):
            try:
                c = bytes.fromhex(c)
            except ValueError:
                raise InvalidPoint(f"{field}[{i}]: not hex") from None
        encs.append(c)
    return decode_many(backend, encs, field)


def verify_range(
    proof: RangeProof | bytes,
    backend: GroupBackend,
    gens: Generators,
    transcript: Transcript,
    commitments: Sequence[bytes],
    n: int,
    *,
    raise_on_failure: bool = False,
) -> bool:
    """Verify an aggregated range proof against encoded commitments. Returns False on any failure (malformed
    proof, invalid point or scalar, failed equation), or raises the typed :class:`ProofError` if
    ``raise_on_failure``. Never raises anything else on hostile bytes."""
    try:
        if not isinstance(proof, RangeProof):
            proof = RangeProof.from_bytes(proof)
        if isinstance(n, bool) or not isinstance(n, int):
            raise StatementError(f"n must be an int, got {n!r}")
        enc = [bytes.fromhex(c) if isinstance(c, str) else bytes(c) for c in commitments]
        V = decode_commitments(backend, enc)
        t = range_verification_terms(proof, backend, gens, transcript, V, n, commitments_encoded=enc)
        if not check_terms(backend, gens, [t]):
            raise VerificationFailed("range proof verification equation does not hold")
        return True
    except ProofError:
        if raise_on_failure:
            raise
        return False
    except (ValueError, TypeError) as e:  # e.g. bad hex; typed, never leaked raw
        if raise_on_failure:
            raise MalformedProof(str(e)) from None
        return False


def batch_verify_range(
    items: Sequence[tuple[RangeProof | bytes, Sequence[bytes], int, Transcript]],
    backend: GroupBackend,
    gens: Generators,
) -> bool:
    """Verify many independent range proofs at once: one MSM over the union of their equations with random
    128-bit weights from ``secrets`` (a batch with one bad proof fails except with probability ~2^-128).
    ``items``: (proof, encoded commitments, n, fresh transcript) per proof. Returns True iff all verify."""
    try:
        parsed, encs, spans = [], [], []
        for proof, comms, n, tr in items:
            if not isinstance(proof, RangeProof):
                proof = RangeProof.from_bytes(proof)
            enc = [bytes.fromhex(c) if isinstance(c, str) else bytes(c) for c in comms]
            pe = _proof_point_encodings(proof)
            spans.append((len(encs), len(pe), len(enc)))
            encs += pe + enc
            parsed.append((proof, enc, n, tr))
        pts = decode_many(backend, encs)  # every point of every proof in one parallel pass
        terms = []
        for (proof, enc, n, tr), (off, k, m) in zip(parsed, spans):
            terms.append(range_verification_terms(proof, backend, gens, tr, pts[off + k:off + k + m], n,
                                                  commitments_encoded=enc, proof_points=pts[off:off + k]))
        return check_terms(backend, gens, terms)
    except (ProofError, ValueError, TypeError):
        return False


def _batch_job(args) -> bool:
    """Worker-process job of :func:`batch_verify_parallel`: verify one chunk as one weighted MSM."""
    from .generators import get_generators
    from .group import get_backend

    backend, dst_version, chunk = args
    be = get_backend(backend)
    gens = get_generators(be, dst_version)
    return batch_verify_range([(p, V, n, Transcript(label)) for p, V, n, label in chunk], be, gens)


def batch_verify_parallel(items: Sequence[tuple[bytes, Sequence[bytes], int, bytes]], *, backend: str = "arkworks",
                          dst_version: int = 1, workers: int = 2) -> bool:
    """Batch verification split over ``workers`` processes (stdlib ``concurrent.futures`` process pool, created
    once per process). ``items``: (proof bytes, encoded commitments, n, transcript label) per proof, each proof
    made on a fresh ``Transcript(label)``. Each process checks its share as ONE MSM with its own random weights
    from ``secrets`` (point decoding and the subgroup check hold the GIL in py-arkworks-bls12381, so processes,
    not threads, parallelise them). True iff every chunk verifies; never raises on hostile input."""
    from .statement import process_pool

    try:
        items = [(p.to_bytes() if isinstance(p, RangeProof) else bytes(p), [bytes(c) for c in V], int(n), bytes(lb))
                 for p, V, n, lb in items]
    except (TypeError, ValueError, AttributeError):
        return False
    if workers <= 1 or len(items) < 2:
        return _batch_job((backend, dst_version, items))
    k = min(workers, len(items))
    chunks = [items[i::k] for i in range(k)]
    pool = process_pool(k)
    futs = [pool.submit(_batch_job, (backend, dst_version, c)) for c in chunks[1:]]
    ok = _batch_job((backend, dst_version, chunks[0]))
    return all([ok] + [f.result() for f in futs])
