"""BLS12-381 G1 group layer: one interface, two backends.

* :class:`ArkworksBackend` (``"arkworks"``, default): ``py_arkworks_bls12381`` (Rust arkworks), fast multi-scalar
  multiplication.
* :class:`PyEccBackend` (``"pyecc"``): ``py_ecc.optimized_bls12_381``, pure Python, the slow obvious reference.

Points are backend-native objects and never cross backends; bytes (48-byte ZCash compressed encoding, the
format of the IETF BLS signature draft and of both libraries) are the interchange format. Scalars are plain
Python ``int`` in [0, r) at every API and are converted to native scalars at multi-scalar-multiplication
boundaries (``Scalar.from_le_bytes``: 0.4 us, against 7 us for ``Scalar(int)``); the one hot loop, the arkworks
inner-product prover, keeps native ``Scalar`` objects throughout (a product costs ~0.3 us against ~1.3 us for a
255-bit Python int product mod r; measured in experiments/bench_proofs.py).

Guards against the behaviours of ``py_arkworks_bls12381`` 0.5 listed in REFERENCE.md section 4:
``Scalar(int)`` silently reduces mod r (we never call it; scalars go through ``from_le_bytes``, which rejects
values >= r, after our own range check); ``multiexp_unchecked`` silently truncates to the shorter list (we check
lengths first) and accepts non-subgroup points (every point reaching it came from a checked decoder or from
hash-to-curve); ``hash_to_curve`` accepts an empty DST (we refuse it, RFC 9380 section 3.1).
"""
from __future__ import annotations

import abc
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Sequence

from .errors import BackendError, InvalidPoint, InvalidScalar

__all__ = [
    "R",
    "P",
    "POINT_BYTES",
    "SCALAR_BYTES",
    "GroupBackend",
    "ArkworksBackend",
    "PyEccBackend",
    "get_backend",
    "check_scalar",
    "scalar_to_bytes",
    "scalar_from_bytes",
]

#: Order of the prime-order subgroup of G1 (the scalar field), ~2^254.86.
R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
#: Base field modulus p of BLS12-381.
P = 0x1A0111EA397FE69A4B1BA7B6434BACD764774B84F38512BF6730D2A0F6B0F6241EABFFFEB153FFFFB9FEFFFFFFFFAAAB
POINT_BYTES = 48
SCALAR_BYTES = 32
_X_MASK = (1 << 381) - 1
_TLS = threading.local()


def check_scalar(s: Any, *, field: str = "scalar", nonzero: bool = False) -> int:
    """Return ``s`` as an ``int`` in [0, r) (``[1, r)`` if ``nonzero``); raise :class:`InvalidScalar` otherwise.

    Negative integers and integers >= r are refused, never reduced (a silently reduced scalar is how
    wraparound bugs start)."""
    if isinstance(s, bool) or not isinstance(s, int):
        try:
            import numpy as np  # numpy integer scalars are accepted, floats are not

            if isinstance(s, np.integer):
                s = int(s)
            else:
                raise InvalidScalar(f"{field}: expected an integer, got {type(s).__name__} {s!r}")
        except ImportError:  # pragma: no cover
            raise InvalidScalar(f"{field}: expected an integer, got {type(s).__name__}") from None
    if s < 0 or s >= R:
        raise InvalidScalar(f"{field}: {s} is not in [0, r)")
    if nonzero and s == 0:
        raise InvalidScalar(f"{field}: must be nonzero")
    return s


def scalar_to_bytes(s: int) -> bytes:
    """32-byte big-endian encoding of a canonical scalar."""
    return check_scalar(s).to_bytes(SCALAR_BYTES, "big")


def scalar_from_bytes(b: bytes, *, field: str = "scalar") -> int:
    """Decode a 32-byte big-endian scalar; refuse non-canonical encodings (value >= r)."""
    if len(b) != SCALAR_BYTES:
        raise InvalidScalar(f"{field}: expected {SCALAR_BYTES} bytes, got {len(b)}")
    v = int.from_bytes(b, "big")
    if v >= R:
        raise InvalidScalar(f"{field}: non-canonical scalar encoding (value >= r)")
    return v


def _parse_compressed(data: bytes, field: str) -> tuple[bool, bool, int]:
    """Strict parse of the ZCash compressed G1 encoding: returns (is_infinity, sign_flag, x).

    Checks the length, the compression flag, that the infinity encoding is exactly 0xc0 || 0^47, and x < p."""
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidPoint(f"{field}: expected bytes, got {type(data).__name__}")
    if len(data) != POINT_BYTES:
        raise InvalidPoint(f"{field}: expected {POINT_BYTES} bytes, got {len(data)}")
    z = int.from_bytes(data, "big")
    c_flag, b_flag, a_flag = (z >> 383) & 1, (z >> 382) & 1, (z >> 381) & 1
    x = z & _X_MASK
    if not c_flag:
        raise InvalidPoint(f"{field}: compression flag not set")
    if b_flag:
        if a_flag or x:
            raise InvalidPoint(f"{field}: non-canonical encoding of the identity")
        return True, False, 0
    if x >= P:
        raise InvalidPoint(f"{field}: x coordinate >= p (non-canonical)")
    return False, bool(a_flag), x


def _check_dst(dst: bytes) -> bytes:
    if not isinstance(dst, (bytes, bytearray)) or not 0 < len(dst) <= 255:
        raise BackendError("hash-to-curve DST must be 1..255 bytes (RFC 9380 section 3.1)")
    return bytes(dst)


class GroupBackend(abc.ABC):
    """Interface over the prime-order subgroup of BLS12-381 G1 (additive notation).

    Scalars are ``int`` in [0, r). Points are opaque native objects of one backend."""

    name: str

    @abc.abstractmethod
    def hash_to_curve(self, msg: bytes, dst: bytes) -> Any:
        """RFC 9380 ``BLS12381G1_XMD:SHA-256_SSWU_RO_`` hash of ``msg`` under a non-empty ``dst``."""

    @abc.abstractmethod
    def identity(self) -> Any: ...

    @abc.abstractmethod
    def generator(self) -> Any:
        """The standard generator of G1 (only used in tests; commitments use hash-to-curve generators)."""

    @abc.abstractmethod
    def add(self, p: Any, q: Any) -> Any: ...

    @abc.abstractmethod
    def neg(self, p: Any) -> Any: ...

    @abc.abstractmethod
    def mul(self, p: Any, k: int) -> Any:
        """k * p for a canonical scalar k."""

    @abc.abstractmethod
    def _msm(self, points: Sequence[Any], scalars: Sequence[int]) -> Any: ...

    def msm(self, points: Sequence[Any], scalars: Sequence[int]) -> Any:
        """Multi-scalar multiplication sum_i scalars[i] * points[i].

        Raises :class:`BackendError` if the lengths differ (arkworks would silently truncate) and
        :class:`InvalidScalar` for a scalar outside [0, r)."""
        if len(points) != len(scalars):
            raise BackendError(f"msm: {len(points)} points but {len(scalars)} scalars")
        if not points:
            return self.identity()
        return self._msm(points, scalars)

    def sub(self, p: Any, q: Any) -> Any:
        return self.add(p, self.neg(q))

    @abc.abstractmethod
    def eq(self, p: Any, q: Any) -> bool: ...

    def is_identity(self, p: Any) -> bool:
        return self.eq(p, self.identity())

    @abc.abstractmethod
    def encode(self, p: Any) -> bytes:
        """48-byte ZCash compressed encoding."""

    @abc.abstractmethod
    def affine(self, p: Any) -> tuple[int, int] | None:
        """Affine coordinates (x, y) as ints, None for the identity (tests and test vectors)."""

    @abc.abstractmethod
    def _decode_checked(self, data: bytes, sign: bool, x: int, field: str) -> Any: ...

    def decode(self, data: bytes, *, allow_identity: bool = False, field: str = "point") -> Any:
        """Checked decoding: canonical flags, x < p, on the curve, in the prime-order subgroup, and not the
        identity unless ``allow_identity``. Raises :class:`InvalidPoint`."""
        inf, sign, x = _parse_compressed(data, field)
        if inf:
            if not allow_identity:
                raise InvalidPoint(f"{field}: identity point where a real point is required")
            return self.identity()
        return self._decode_checked(bytes(data), sign, x, field)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# --------------------------------------------------------------------------------------------------------------
class ArkworksBackend(GroupBackend):
    """``py_arkworks_bls12381`` backend. Large MSMs are split over ``workers`` threads (the extension releases the
    GIL and its MSM is single-threaded at the sizes used here; measured ~1.9x on 2 cores)."""

    name = "arkworks"

    def __init__(self, workers: int | None = None, split_threshold: int = 48):
        import py_arkworks_bls12381 as ark

        self._G1 = ark.G1Point
        self._S = ark.Scalar
        self.workers = max(1, min(2, os.cpu_count() or 1) if workers is None else int(workers))
        self.split_threshold = split_threshold
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        self._id = ark.G1Point.identity()

    def hash_to_curve(self, msg: bytes, dst: bytes) -> Any:
        return self._G1.hash_to_curve(bytes(msg), _check_dst(dst))

    def identity(self) -> Any:
        return self._id

    def generator(self) -> Any:
        return self._G1()

    def add(self, p, q):
        return p + q

    def neg(self, p):
        return -p

    def mul(self, p, k: int):
        return p * self._scalar(check_scalar(k))

    def _scalar(self, k: int):
        try:
            return self._S.from_le_bytes(k.to_bytes(32, "little"))
        except (OverflowError, ValueError, AttributeError, TypeError):
            check_scalar(k)  # raises the precise InvalidScalar
            raise InvalidScalar(f"cannot convert scalar {k!r}") from None

    def native_scalars(self, scalars: Sequence[int]) -> list:
        """Convert canonical ints to ``Scalar`` (from_le_bytes rejects values >= r; to_bytes rejects < 0)."""
        fl = self._S.from_le_bytes
        if not all(type(k) is int for k in scalars):  # bool, float, numpy ints: go through the strict check
            scalars = [check_scalar(k, field=f"scalar[{i}]") for i, k in enumerate(scalars)]
        try:
            return [fl(k.to_bytes(32, "little")) for k in scalars]
        except (OverflowError, ValueError, AttributeError, TypeError):
            for i, k in enumerate(scalars):
                check_scalar(k, field=f"scalar[{i}]")
            raise InvalidScalar("cannot convert scalars") from None

    def _msm(self, points, scalars):
        sc = self.native_scalars(scalars)
        return self.msm_native(points, sc)

    def msm_native(self, points: Sequence[Any], sc: Sequence[Any]) -> Any:
        """MSM with already-converted native scalars (lengths must match; checked)."""
        n = len(points)
        if n != len(sc):
            raise BackendError(f"msm: {n} points but {len(sc)} scalars")
        if n == 0:
            return self._id
        me = self._G1.multiexp_unchecked
        if self._pool is None or n < self.split_threshold or getattr(_TLS, "in_pool", False):
            return me(list(points), list(sc))
        k = self.workers
        step = -(-n // k)
        futs = [self._pool.submit(me, list(points[i:i + step]), list(sc[i:i + step])) for i in range(0, n, step)]
        out = futs[0].result()
        for f in futs[1:]:
            out = out + f.result()
        return out

    def map_parallel(self, fn, items):
        """Run ``fn`` over ``items`` on the backend's thread pool (used for independent MSMs such as L and R)."""
        if self._pool is None or getattr(_TLS, "in_pool", False):
            return [fn(x) for x in items]

        def run(x):  # nested parallelism on the same pool would deadlock: mark the worker
            _TLS.in_pool = True
            try:
                return fn(x)
            finally:
                _TLS.in_pool = False

        return list(self._pool.map(run, items))

    def eq(self, p, q) -> bool:
        return p == q

    def encode(self, p) -> bytes:
        return bytes(p.to_compressed_bytes())

    def affine(self, p):
        if p == self._id:
            return None
        b = bytes(p.to_xy_bytes_be())
        return int.from_bytes(b[:48], "big"), int.from_bytes(b[48:], "big")

    def _decode_checked(self, data, sign, x, field):
        # flags and x < p were checked by _parse_compressed; decompression solves y^2 = x^3 + 4 (fails if x is not
        # an abscissa, so the result is on the curve); then the subgroup check. Measured ~30% faster than the
        # library's checked from_compressed_bytes, same accept set (tested against it).
        try:
            pt = self._G1.from_compressed_bytes_unchecked(data)
        except Exception as e:  # the extension raises plain exceptions; re-type them
            raise InvalidPoint(f"{field}: not a curve point ({e})") from None
        if not pt.is_in_subgroup():
            raise InvalidPoint(f"{field}: point not in the prime-order subgroup")
        return pt


# --------------------------------------------------------------------------------------------------------------
class PyEccBackend(GroupBackend):
    """``py_ecc.optimized_bls12_381`` backend (Jacobian coordinates, pure Python). MSM is the obvious
    sum of double-and-add products; hash-to-curve is ``py_ecc.bls.hash_to_curve.hash_to_G1``."""

    name = "pyecc"

    def __init__(self):
        from py_ecc import optimized_bls12_381 as bls
        from py_ecc.bls.hash_to_curve import hash_to_G1
        from py_ecc.bls.point_compression import compress_G1

        self._b = bls
        self._h2c = hash_to_G1
        self._compress = compress_G1

    def hash_to_curve(self, msg: bytes, dst: bytes):
        return self._h2c(bytes(msg), _check_dst(dst), hashlib.sha256)

    def identity(self):
        return self._b.Z1

    def generator(self):
        return self._b.G1

    def add(self, p, q):
        return self._b.add(p, q)

    def neg(self, p):
        return self._b.neg(p)

    def mul(self, p, k: int):
        return self._b.multiply(p, check_scalar(k))

    def _msm(self, points, scalars):
        b = self._b
        acc = b.Z1
        for i, (pt, k) in enumerate(zip(points, scalars)):
            k = check_scalar(k, field=f"scalar[{i}]")
            if k:
                acc = b.add(acc, b.multiply(pt, k))
        return acc

    def eq(self, p, q) -> bool:
        return self._b.eq(p, q)

    def is_identity(self, p) -> bool:
        return self._b.is_inf(p)

    def encode(self, p) -> bytes:
        return int(self._compress(p)).to_bytes(POINT_BYTES, "big")

    def affine(self, p):
        if self._b.is_inf(p):
            return None
        x, y = self._b.normalize(p)
        return x.n, y.n

    def _decode_checked(self, data, sign, x, field):
        b = self._b
        FQ = b.FQ
        rhs = (pow(x, 3, P) + 4) % P
        y = pow(rhs, (P + 1) // 4, P)  # p = 3 mod 4
        if y * y % P != rhs:
            raise InvalidPoint(f"{field}: x is not the abscissa of a curve point")
        if (y * 2) // P != int(sign):
            y = P - y
        pt = (FQ(x), FQ(y), FQ.one())
        # subgroup check: r * pt == O (py_ecc's multiply does not reduce n mod r)
        if not b.is_inf(b.multiply(pt, R)):
            raise InvalidPoint(f"{field}: point not in the prime-order subgroup")
        return pt


_BACKENDS = {"arkworks": ArkworksBackend, "pyecc": PyEccBackend}


@lru_cache(maxsize=None)
def get_backend(name: str = "arkworks") -> GroupBackend:
    """Backend singleton by name: ``"arkworks"`` (default) or ``"pyecc"``. Raises :class:`BackendError`."""
    if isinstance(name, GroupBackend):  # pragma: no cover - convenience
        return name
    try:
        cls = _BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r}; choose one of {sorted(_BACKENDS)}") from None
    return cls()
