"""Inner-product argument (Bünz et al. 2018, section 3; layout and verification scalars as in dalek
bulletproofs ``inner_product_proof.rs``).

Proves knowledge of vectors a, b of length N = 2^k with
``P = <a, G'> + <b, H'> + <a, b> Q`` where ``G'_i = g_i G_i`` and ``H'_i = h_i H_i`` (factor vectors), in k rounds.
Round with current length n (half h = n/2), challenge u:

    L = <a_lo, G'_hi> + <b_hi, H'_lo> + <a_lo, b_hi> Q,   R = <a_hi, G'_lo> + <b_lo, H'_hi> + <a_hi, b_lo> Q
    a <- u a_lo + u^-1 a_hi,  b <- u^-1 b_lo + u b_hi,  G' <- u^-1 G'_lo + u G'_hi,  H' <- u H'_lo + u^-1 H'_hi

so that P <- P + u^2 L + u^-2 R. Two provers compute the same proof:

* ``"msm"``: never folds points; keeps, for every ORIGINAL generator, the accumulated coefficient (product of
  factors and challenges) and computes L and R as multi-scalar multiplications over the original generators
  (N points each round).
* ``"fold"``: folds the generator vectors point by point each round (2-point MSM per folded generator).

All scalar arithmetic is on Python ints mod r; L and R are computed concurrently on the backend's thread pool.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .errors import MalformedProof
from .group import R, GroupBackend
from .transcript import Transcript

__all__ = ["InnerProductProof", "ipa_prove", "ipa_verification_scalars", "batch_invert"]


def batch_invert(xs: Sequence[int]) -> list[int]:
    """Montgomery's trick: inverses of nonzero scalars mod r with one modular exponentiation."""
    n = len(xs)
    if n == 0:
        return []
    pref = [1] * n
    acc = 1
    for i, x in enumerate(xs):
        pref[i] = acc
        acc = acc * x % R
    inv = pow(acc, R - 2, R)
    out = [0] * n
    for i in range(n - 1, -1, -1):
        out[i] = pref[i] * inv % R
        inv = inv * xs[i] % R
    return out


@dataclass(frozen=True)
class InnerProductProof:
    """``L``, ``R``: k encoded points each (48 bytes); ``a``, ``b``: final scalars (ints in [0, r))."""

    L: tuple[bytes, ...]
    R: tuple[bytes, ...]
    a: int
    b: int


def _ip(a: Sequence[int], b: Sequence[int]) -> int:
    return sum(x * y for x, y in zip(a, b)) % R


def ipa_prove(
    backend: GroupBackend,
    transcript: Transcript,
    Q: Any,
    g_factors: Sequence[int],
    h_factors: Sequence[int],
    G: Sequence[Any],
    H: Sequence[Any],
    a: Sequence[int],
    b: Sequence[int],
    mode: str = "msm",
) -> InnerProductProof:
    """Create an inner-product proof (see module docstring). ``mode`` in {"msm", "fold"}."""
    N = len(a)
    if not (N == len(b) == len(G) == len(H) == len(g_factors) == len(h_factors)) or N & (N - 1) or N == 0:
        raise ValueError("ipa_prove: lengths must be equal powers of two")
    transcript.append_u64(b"ipp-dom-sep", N)
    a, b = list(a), list(b)
    Ls: list[bytes] = []
    Rs: list[bytes] = []
    enc = backend.encode
    par = getattr(backend, "map_parallel", None) or (lambda f, xs: [f(x) for x in xs])
    if mode == "msm":
        cg = list(g_factors)
        ch = list(h_factors)
        n = N
        G, H = list(G), list(H)
        while n > 1:
            h = n // 2
            c_L = _ip(a[:h], b[h:])
            c_R = _ip(a[h:], b[:h])
            # original index j belongs to current index j % n
            lp, ls, rp, rs = [], [], [], []
            for j in range(N):
                i = j % n
                if i >= h:  # G_hi pairs with a_lo in L, H_hi with b_hi... see module docstring
                    lp.append(G[j]); ls.append(a[i - h] * cg[j] % R)
                    rp.append(H[j]); rs.append(b[i - h] * ch[j] % R)
                else:
                    rp.append(G[j]); rs.append(a[i + h] * cg[j] % R)
                    lp.append(H[j]); ls.append(b[i + h] * ch[j] % R)
            lp.append(Q); ls.append(c_L)
            rp.append(Q); rs.append(c_R)
            Lpt, Rpt = par(lambda ps: backend.msm(ps[0], ps[1]), [(lp, ls), (rp, rs)])
            Ls.append(enc(Lpt)); Rs.append(enc(Rpt))
            transcript.append_message(b"L", Ls[-1])
            transcript.append_message(b"R", Rs[-1])
            u = transcript.challenge_scalar(b"u")
            ui = pow(u, R - 2, R)
            a = [(a[i] * u + a[i + h] * ui) % R for i in range(h)]
            b = [(b[i] * ui + b[i + h] * u) % R for i in range(h)]
            for j in range(N):
                if j % n < h:
                    cg[j] = cg[j] * ui % R; ch[j] = ch[j] * u % R
                else:
                    cg[j] = cg[j] * u % R; ch[j] = ch[j] * ui % R
            n = h
    elif mode == "fold":
        n = N
        Gc, Hc = list(G), list(H)
        gf, hf = list(g_factors), list(h_factors)
        while n > 1:
            h = n // 2
            c_L = _ip(a[:h], b[h:])
            c_R = _ip(a[h:], b[:h])
            lp = Gc[h:] + Hc[:h] + [Q]
            ls = [a[i] * gf[h + i] % R for i in range(h)] + [b[h + i] * hf[i] % R for i in range(h)] + [c_L]
            rp = Gc[:h] + Hc[h:] + [Q]
            rs = [a[h + i] * gf[i] % R for i in range(h)] + [b[i] * hf[h + i] % R for i in range(h)] + [c_R]
            Lpt, Rpt = par(lambda ps: backend.msm(ps[0], ps[1]), [(lp, ls), (rp, rs)])
            Ls.append(enc(Lpt)); Rs.append(enc(Rpt))
            transcript.append_message(b"L", Ls[-1])
            transcript.append_message(b"R", Rs[-1])
            u = transcript.challenge_scalar(b"u")
            ui = pow(u, R - 2, R)
            a = [(a[i] * u + a[i + h] * ui) % R for i in range(h)]
            b = [(b[i] * ui + b[i + h] * u) % R for i in range(h)]
            # fold generators point by point
            Gc = par(lambda i: backend.msm([Gc[i], Gc[h + i]], [ui * gf[i] % R, u * gf[h + i] % R]), range(h))
            Hc = par(lambda i: backend.msm([Hc[i], Hc[h + i]], [u * hf[i] % R, ui * hf[h + i] % R]), range(h))
            gf = [1] * h
            hf = [1] * h
            n = h
    else:
        raise ValueError(f"unknown IPA prover mode {mode!r}")
    return InnerProductProof(tuple(Ls), tuple(Rs), a[0], b[0])


def ipa_verification_scalars(
    proof: InnerProductProof, N: int, transcript: Transcript
) -> tuple[list[int], list[int], list[int]]:
    """Replay the challenges and return (u_k^2, u_k^-2, s) where s_i is the coefficient of G_i in the fully
    folded G (dalek's ``verification_scalars``); the coefficient of H_i is 1/s_i = s_{N-1-i}."""
    k = len(proof.L)
    if N <= 0 or N & (N - 1) or (1 << k) != N or len(proof.R) != k:
        raise MalformedProof(f"inner-product proof has {k} rounds, expected log2({N})")
    transcript.append_u64(b"ipp-dom-sep", N)
    us = []
    for Lb, Rb in zip(proof.L, proof.R):
        transcript.append_message(b"L", Lb)
        transcript.append_message(b"R", Rb)
        us.append(transcript.challenge_scalar(b"u"))
    uinv = batch_invert(us)
    allinv = 1
    for x in uinv:
        allinv = allinv * x % R
    usq = [u * u % R for u in us]
    uinvsq = [x * x % R for x in uinv]
    s = [0] * N
    s[0] = allinv
    for i in range(1, N):
        lg = i.bit_length() - 1
        s[i] = s[i - (1 << lg)] * usq[k - 1 - lg] % R
    return usq, uinvsq, s
