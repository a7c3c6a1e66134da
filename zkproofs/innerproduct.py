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
* ``"hybrid"``: ``"msm"`` for the first rounds, then (current length <= ``switch_at``) materialises the folded
  generators with one MSM each and continues with ``"msm"`` over them (fewer points per later round).

Scalar arithmetic: Python ints mod r, except the arkworks "msm"/"hybrid" prover, which keeps native ``Scalar``
objects (:func:`_ipa_prove_native`). L and R are computed concurrently on the backend's thread pool.
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
    mode: str = "hybrid",
    switch_at: int = 32,
) -> InnerProductProof:
    """Create an inner-product proof (see module docstring). ``mode`` in {"msm", "fold", "hybrid"}; "hybrid" runs
    "msm" until the current length n is <= ``switch_at`` (and each folded generator combines >= 8 originals), then
    materialises the folded generators once (default; measured fastest, see experiments/bench_proofs.py)."""
    N = len(a)
    if not (N == len(b) == len(G) == len(H) == len(g_factors) == len(h_factors)) or N & (N - 1) or N == 0:
        raise ValueError("ipa_prove: lengths must be equal powers of two")
    transcript.append_u64(b"ipp-dom-sep", N)
    if mode in ("msm", "hybrid") and hasattr(backend, "native_scalars"):
        return _ipa_prove_native(backend, transcript, Q, g_factors, h_factors, G, H, a, b, mode, switch_at)
    a, b = list(a), list(b)
    Ls: list[bytes] = []
    Rs: list[bytes] = []
    enc = backend.encode
    par = getattr(backend, "map_parallel", None) or (lambda f, xs: [f(x) for x in xs])
    if mode in ("msm", "hybrid"):
        # current generator i = sum over originals j with j % n == i of cg[j] * G[j] (likewise H)
        cg = list(g_factors)
        ch = list(h_factors)
        G, H = list(G), list(H)
        M = N  # number of "original" generators currently tracked
        n = N
        while n > 1:
            if mode == "hybrid" and n <= switch_at and M >= 8 * n:
                # materialise the folded generators once (2n MSMs of M/n points, on the pool), then continue
                # with them as the new originals: later rounds cost MSMs of n points instead of M
                def fold_one(args, _G=G, _H=H, _cg=cg, _ch=ch, _n=n, _M=M):
                    which, i = args
                    idx = range(i, _M, _n)
                    if which == 0:
                        return backend.msm([_G[j] for j in idx], [_cg[j] for j in idx])
                    return backend.msm([_H[j] for j in idx], [_ch[j] for j in idx])

                folded = par(fold_one, [(0, i) for i in range(n)] + [(1, i) for i in range(n)])
                G, H = folded[:n], folded[n:]
                cg, ch = [1] * n, [1] * n
                M = n
            h = n // 2
            c_L = _ip(a[:h], b[h:])
            c_R = _ip(a[h:], b[:h])
            # L = <a_lo, G_hi> + <b_hi, H_lo> + c_L Q ; R = <a_hi, G_lo> + <b_lo, H_hi> + c_R Q
            lp, ls, rp, rs = [], [], [], []
            for base in range(0, M, n):
                lo, mid, hi = base, base + h, base + n
                lp += G[mid:hi]
                ls += [x * y % R for x, y in zip(a, cg[mid:hi])]
                lp += H[lo:mid]
                ls += [x * y % R for x, y in zip(b[h:], ch[lo:mid])]
                rp += G[lo:mid]
                rs += [x * y % R for x, y in zip(a[h:], cg[lo:mid])]
                rp += H[mid:hi]
                rs += [x * y % R for x, y in zip(b, ch[mid:hi])]
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
            for base in range(0, M, n):
                lo, mid, hi = base, base + h, base + n
                cg[lo:mid] = [x * ui % R for x in cg[lo:mid]]
                cg[mid:hi] = [x * u % R for x in cg[mid:hi]]
                ch[lo:mid] = [x * u % R for x in ch[lo:mid]]
                ch[mid:hi] = [x * ui % R for x in ch[mid:hi]]
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


def _ipa_prove_native(backend, transcript, Q, g_factors, h_factors, G, H, a, b, mode, switch_at):
    """The "msm"/"hybrid" prover with scalars kept as the backend's native field elements (arkworks ``Scalar``:
    a product costs ~0.3 us against ~1.3 us for a 255-bit Python int product mod r plus its conversion at the
    MSM boundary; measured in experiments/bench_proofs.py). Produces the same proof as the int path (tested)."""
    ns = backend.native_scalars
    msm = backend.msm_native
    par = backend.map_parallel
    enc = backend.encode
    zero, one = ns([0, 1])
    N = len(a)
    a, b = ns(list(a)), ns(list(b))
    cg, ch = ns(list(g_factors)), ns(list(h_factors))
    G, H = list(G), list(H)
    M = n = N
    Ls: list[bytes] = []
    Rs: list[bytes] = []
    while n > 1:
        if mode == "hybrid" and n <= switch_at and M >= 8 * n:
            def fold_one(args, _G=G, _H=H, _cg=cg, _ch=ch, _n=n, _M=M):
                which, i = args
                idx = range(i, _M, _n)
                if which == 0:
                    return msm([_G[j] for j in idx], [_cg[j] for j in idx])
                return msm([_H[j] for j in idx], [_ch[j] for j in idx])

            folded = par(fold_one, [(0, i) for i in range(n)] + [(1, i) for i in range(n)])
            G, H = folded[:n], folded[n:]
            cg, ch = [one] * n, [one] * n
            M = n
        h = n // 2
        c_L = sum((x * y for x, y in zip(a[:h], b[h:])), zero)
        c_R = sum((x * y for x, y in zip(a[h:], b[:h])), zero)
        lp, ls, rp, rs = [], [], [], []
        for base in range(0, M, n):
            lo, mid, hi = base, base + h, base + n
            lp += G[mid:hi]
            ls += [x * y for x, y in zip(a, cg[mid:hi])]
            lp += H[lo:mid]
            ls += [x * y for x, y in zip(b[h:], ch[lo:mid])]
            rp += G[lo:mid]
            rs += [x * y for x, y in zip(a[h:], cg[lo:mid])]
            rp += H[mid:hi]
            rs += [x * y for x, y in zip(b, ch[mid:hi])]
        lp.append(Q); ls.append(c_L)
        rp.append(Q); rs.append(c_R)
        Lpt, Rpt = par(lambda ps: msm(ps[0], ps[1]), [(lp, ls), (rp, rs)])
        Ls.append(enc(Lpt)); Rs.append(enc(Rpt))
        transcript.append_message(b"L", Ls[-1])
        transcript.append_message(b"R", Rs[-1])
        (u,) = ns([transcript.challenge_scalar(b"u")])
        ui = u.inverse()
        a = [a[i] * u + a[i + h] * ui for i in range(h)]
        b = [b[i] * ui + b[i + h] * u for i in range(h)]
        for base in range(0, M, n):
            lo, mid, hi = base, base + h, base + n
            cg[lo:mid] = [x * ui for x in cg[lo:mid]]
            cg[mid:hi] = [x * u for x in cg[mid:hi]]
            ch[lo:mid] = [x * u for x in ch[lo:mid]]
            ch[mid:hi] = [x * ui for x in ch[mid:hi]]
        n = h
    return InnerProductProof(tuple(Ls), tuple(Rs), int(a[0]), int(b[0]))


def ipa_verification_scalars(
    proof: InnerProductProof, N: int, transcript: Transcript, extra_inverses: Sequence[int] = (),
) -> tuple[list[int], list[int], list[int]]:
    """Replay the challenges and return (u_k^2, u_k^-2, s) where s_i is the coefficient of G_i in the fully
    folded G (dalek's ``verification_scalars``); the coefficient of H_i is 1/s_i = s_{N-1-i}.
    If ``extra_inverses`` (nonzero scalars) is given, their inverses are computed in the same batch inversion
    and returned as a 4th element."""
    k = len(proof.L)
    if N <= 0 or N & (N - 1) or (1 << k) != N or len(proof.R) != k:
        raise MalformedProof(f"inner-product proof has {k} rounds, expected log2({N})")
    transcript.append_u64(b"ipp-dom-sep", N)
    us = []
    for Lb, Rb in zip(proof.L, proof.R):
        transcript.append_message(b"L", Lb)
        transcript.append_message(b"R", Rb)
        us.append(transcript.challenge_scalar(b"u"))
    allinvs = batch_invert(us + list(extra_inverses))
    uinv, extra = allinvs[:k], allinvs[k:]
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
    if extra_inverses:
        return usq, uinvsq, s, extra
    return usq, uinvsq, s
