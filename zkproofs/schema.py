"""Strict, bounded parsing of the public JSON (bundles and statements), version 2.

Rules (every violation raises :class:`~zkproofs.errors.MalformedProof`, never anything else):

* text: at most :data:`MAX_JSON_BYTES` bytes of UTF-8, nesting depth at most :data:`MAX_DEPTH` (measured by a
  linear scan *before* ``json.loads`` runs, so 900-deep nesting never reaches a recursive parser), no ``NaN`` /
  ``Infinity`` constants, no floats at all, duplicate keys refused;
* objects have exactly the expected keys (:func:`exact_keys`);
* integers travel only as strings of ASCII digits, ``-?(0|[1-9][0-9]*)``, at most :data:`MAX_DIGITS` digits
  (no ``" 0_0 "``, no non-ASCII digits, no ``1.9``, no booleans, no JSON numbers);
* byte strings travel as canonical lower-case hex of an exact length;
* lists have a bounded length checked before any element is converted (and before any point is decoded).

The walkers here follow the fixed shape of the schema level by level; nothing recurses on input.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .errors import MalformedProof

__all__ = [
    "MAX_JSON_BYTES", "MAX_DEPTH", "MAX_DIGITS", "loads_strict", "check_depth", "exact_keys", "int_str",
    "int_list", "int_matrix", "hex_bytes", "hex_list", "text", "text_list", "as_list", "canonical_json",
    "digest_hex",
]

MAX_JSON_BYTES = 8 << 20
MAX_DEPTH = 8
MAX_DIGITS = 80
MAX_TEXT = 4096
_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)\Z", re.ASCII)
_HEX_RE = re.compile(r"(?:[0-9a-f][0-9a-f])*\Z", re.ASCII)


def check_depth(data: str, limit: int = MAX_DEPTH) -> None:
    """Linear scan of JSON text: refuse nesting deeper than ``limit`` (brackets inside strings ignored)."""
    depth = 0
    in_str = esc = False
    for ch in data:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                raise MalformedProof(f"JSON nested deeper than {limit} levels")
        elif ch in "]}":
            depth -= 1


def _no_constant(name: str):
    raise MalformedProof(f"JSON constant {name} is not allowed")


def _no_float(s: str):
    raise MalformedProof(f"JSON number {s[:20]} is not allowed (integers travel as digit strings)")


def _no_dupes(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise MalformedProof(f"duplicate JSON key {k[:40]!r}")
        d[k] = v
    return d


def loads_strict(data: bytes | str, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse JSON text under the rules above. Raises :class:`MalformedProof` only."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) > max_bytes:
            raise MalformedProof(f"JSON is {len(data)} bytes, limit {max_bytes}")
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedProof(f"JSON is not UTF-8: {e.reason} at byte {e.start}") from None
    if not isinstance(data, str):
        raise MalformedProof("JSON input must be bytes or str")
    if len(data) > max_bytes:
        raise MalformedProof(f"JSON is {len(data)} characters, limit {max_bytes}")
    check_depth(data)
    try:
        return json.loads(data, parse_constant=_no_constant, parse_float=_no_float, parse_int=_no_float,
                          object_pairs_hook=_no_dupes)
    except MalformedProof:
        raise
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise MalformedProof(f"not JSON: {str(e)[:200]}") from None


def exact_keys(o: Any, keys: set[str] | frozenset[str], where: str) -> dict:
    if not isinstance(o, dict):
        raise MalformedProof(f"{where}: expected an object, got {type(o).__name__}")
    got = set(o)
    if got != set(keys):
        extra = sorted(str(k)[:40] for k in got - set(keys))
        missing = sorted(set(keys) - got)
        raise MalformedProof(f"{where}: unexpected keys {extra}, missing keys {missing}")
    return o


def int_str(v: Any, where: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """An integer written as a string of ASCII digits (optional leading '-'), lo <= value < hi."""
    if type(v) is not str:
        raise MalformedProof(f"{where}: integers travel as strings of ASCII digits, got {type(v).__name__}")
    if len(v) > MAX_DIGITS or not _INT_RE.match(v) or v == "-0":
        raise MalformedProof(f"{where}: {v[:40]!r} is not a canonical decimal integer")
    x = int(v)
    if (lo is not None and x < lo) or (hi is not None and x >= hi):
        raise MalformedProof(f"{where}: {x} outside [{lo}, {hi})")
    return x


def as_list(v: Any, where: str, *, min_len: int = 0, max_len: int) -> list:
    if type(v) is not list:
        raise MalformedProof(f"{where}: expected a list, got {type(v).__name__}")
    if not min_len <= len(v) <= max_len:
        raise MalformedProof(f"{where}: length {len(v)} outside [{min_len}, {max_len}]")
    return v


def int_list(v: Any, where: str, *, max_len: int, lo=None, hi=None, min_len: int = 1) -> tuple[int, ...]:
    v = as_list(v, where, min_len=min_len, max_len=max_len)
    return tuple(int_str(x, f"{where}[{i}]", lo=lo, hi=hi) for i, x in enumerate(v))


def int_matrix(v: Any, where: str, *, rows: int, cols: int, lo=None, hi=None) -> tuple[tuple[int, ...], ...]:
    v = as_list(v, where, min_len=rows, max_len=rows)
    return tuple(int_list(r, f"{where}[{j}]", min_len=cols, max_len=cols, lo=lo, hi=hi) for j, r in enumerate(v))


def hex_bytes(v: Any, where: str, n: int) -> bytes:
    """Canonical lower-case hex of exactly ``n`` bytes."""
    if type(v) is not str:
        raise MalformedProof(f"{where}: expected a hex string, got {type(v).__name__}")
    if len(v) != 2 * n or not _HEX_RE.match(v):
        raise MalformedProof(f"{where}: expected {2 * n} lower-case hex digits")
    return bytes.fromhex(v)


def hex_list(v: Any, where: str, n: int, *, count: int) -> list[bytes]:
    v = as_list(v, where, min_len=count, max_len=count)
    return [hex_bytes(x, f"{where}[{i}]", n) for i, x in enumerate(v)]


def text(v: Any, where: str, *, max_len: int = MAX_TEXT) -> str:
    """A string of printable characters (no control characters), at most ``max_len`` characters."""
    if type(v) is not str:
        raise MalformedProof(f"{where}: expected a string, got {type(v).__name__}")
    if len(v) > max_len or any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in v):
        raise MalformedProof(f"{where}: string too long or with control characters")
    return v


def text_list(v: Any, where: str, *, count: int, max_len: int = 256) -> tuple[str, ...]:
    v = as_list(v, where, min_len=count, max_len=count)
    return tuple(text(x, f"{where}[{i}]", max_len=max_len) for i, x in enumerate(v))


def canonical_json(o: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, ASCII only (non-ASCII as \\u escapes)."""
    return json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def digest_hex(o: Any) -> str:
    """SHA-256 (lower-case hex) of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(o)).hexdigest()
