"""In-process fuzzer for the bundle verifier, over all three statement kinds (issue 11 item 7).

Each case takes a valid bundle (margin, equity or cross-venue) as JSON text and applies one mutation:

* ``bitflip``: one bit of the proof bytes;            * ``swap``: two 48-byte points / 32-byte scalars of the proof;
* ``public``: one public input of the statement (an integer +-1 or random, a label, a context field);
* ``commitment``: two commitments swapped, or one replaced by a commitment of another bundle;
* ``json``: a value replaced by a hostile one (null, number, float, ``Infinity``, bool, list, deep nesting,
  upper-case hex, non-ASCII digits, huge strings), a key removed or added;
* ``truncate`` / ``extend``: the proof, a list, or the JSON text cut short or extended.

Then it verifies the mutant twice: against the bundle's own statement (``trust_bundle_statement=True``) and
against the original statement (pinned). An *accepted forgery* is a mutant that verifies although its parsed
(statement, commitments, proof) differ from the original; an *untyped error* is any exception other than
:class:`~zkproofs.errors.ProofError` escaping ``verify_bundle(..., raise_on_failure=True)``.
Mutations are drawn from ``random.Random(seed)`` (reproducible; no secrets involved).
"""
from __future__ import annotations

import copy
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .errors import ProofError
from .statement import (
    Bundle,
    Context,
    CrossVenueStatement,
    EquityStatement,
    MarginStatement,
    bundle_from_json,
    prove_cross_venue,
    prove_equity_covers_margin,
    prove_margin,
    verify_bundle,
)

__all__ = ["FuzzReport", "base_bundles", "run_fuzz", "MUTATIONS"]

MUTATIONS = ("bitflip", "swap", "public", "commitment", "json", "truncate", "extend")
_HOSTILE = [None, 0, 1, -1, 1.9, 2**70, True, False, [], {}, "", "1e3", " 0_0 ", "\u0661\u0662", "NaN",
            "Infinity", "-0", "00", "0x10", "A" * 96, "ff" * 48, "c0" + "00" * 47, "00" * 48, [[[[[[[[[]]]]]]]]]]


@dataclass
class FuzzReport:
    cases: int = 0
    accepted_forgeries: int = 0
    untyped_errors: int = 0
    rejected: int = 0
    accepted_identical: int = 0
    by_mutation: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.cases} mutations ({dict(self.by_mutation)}): {self.accepted_forgeries} accepted forgeries, "
                f"{self.untyped_errors} untyped errors, {self.rejected} rejected with a typed error, "
                f"{self.accepted_identical} unchanged after parsing and accepted")


def base_bundles() -> list[Bundle]:
    """Three small valid bundles (8/16-bit ranges, fast to verify): margin, equity, cross-venue."""
    ctx = Context("fuzz-venue", Context.hash_account("fuzz"), 3, 2**62)
    m = MarginStatement([3, 1], [[2, -5], [-4, 7]], 10, 16, 8, 16, "fuzz", pnl_short=[[3, -5], [-4, 8]], context=ctx,
                        scenario_labels=("up", "down"), params={"scan_range": "0.1"})
    e = EquityStatement(ctx, [2], [10], [11], [100_000], buffer=3, collateral_bits=16, quote_bits=16,
                        position_bits=8, surplus_bits=16)
    c = CrossVenueStatement([5], [[[1, -2]], [[-3, 1], [2, 2]]], 4, 16, 8, 16, ("a", "b"), context=ctx)
    return [prove_margin(m, [100, 50], [6, -3]), prove_equity_covers_margin(e, [500], -40, [20]),
            prove_cross_venue(c, [200], [[5], [-2, 3]])]


def _leaves(o, prefix=()):
    """(path, value) of every leaf, iteratively (no recursion)."""
    out, stack = [], [(prefix, o)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, dict):
            stack += [(p + (k,), x) for k, x in v.items()]
            if not v:
                out.append((p, v))
        elif isinstance(v, list):
            stack += [(p + (i,), x) for i, x in enumerate(v)]
            if not v:
                out.append((p, v))
        else:
            out.append((p, v))
    return out


def _containers(o):
    out, stack = [], [((), o)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, (dict, list)):
            out.append((p, v))
            items = v.items() if isinstance(v, dict) else enumerate(v)
            stack += [(p + (k,), x) for k, x in items]
    return out


def _set(o, path, v):
    t = o
    for k in path[:-1]:
        t = t[k]
    t[path[-1]] = v


def _get(o, path):
    for k in path:
        o = o[k]
    return o


def _commitment_paths(j):
    return [p for p, v in _leaves(j["commitments"], ("commitments",)) if isinstance(v, str)]


def _mutate(rng: random.Random, j: dict, other: dict, kind: str) -> Any:
    """Return the mutant (a dict, or JSON text for text-level mutations)."""
    j = copy.deepcopy(j)
    proof = bytearray.fromhex(j["proof"])
    if kind == "bitflip":
        i = rng.randrange(len(proof) * 8)
        proof[i // 8] ^= 1 << (i % 8)
        j["proof"] = proof.hex()
    elif kind == "swap":
        # points start after the 6-byte header + 4-byte length + 1 version byte of the first range proof
        size = rng.choice((48, 32))
        n = (len(proof) - 11) // size
        a, b = rng.sample(range(n), 2)
        pa, pb = 11 + a * size, 11 + b * size
        x, y = proof[pa:pa + size], proof[pb:pb + size]
        if x == y:
            proof[pa] ^= 1
        else:
            proof[pa:pa + size], proof[pb:pb + size] = y, x
        j["proof"] = proof.hex()
    elif kind == "public":
        leaves = [(p, v) for p, v in _leaves(j["statement"], ("statement",)) if p[-1] not in ("kind", "version")]
        p, v = rng.choice(leaves)
        if isinstance(v, str) and v.lstrip("-").isdigit():
            x = int(v)
            _set(j, p, str(rng.choice((x + 1, x - 1, -x, x * 2 + 1, rng.randrange(-2**64, 2**64)))))
        elif isinstance(v, str):
            _set(j, p, v + rng.choice(("x", " ", "0")))
        else:
            _set(j, p, "1")
    elif kind == "commitment":
        paths = _commitment_paths(j)
        if rng.random() < 0.5 and len(paths) > 1:
            a, b = rng.sample(paths, 2)
            va, vb = _get(j, a), _get(j, b)
            if va == vb:
                _set(j, a, _get(other, rng.choice(_commitment_paths(other))))
            else:
                _set(j, a, vb)
                _set(j, b, va)
        else:
            _set(j, rng.choice(paths), _get(other, rng.choice(_commitment_paths(other))))
    elif kind == "json":
        r = rng.random()
        if r < 0.6:
            p, _ = rng.choice(_leaves(j))
            _set(j, p, copy.deepcopy(rng.choice(_HOSTILE)))
        elif r < 0.8:
            p, c = rng.choice([x for x in _containers(j) if isinstance(x[1], dict) and x[1]])
            if rng.random() < 0.5:
                del c[rng.choice(list(c))]
            else:
                c[rng.choice(("extra", "proof_bytes", "unit", "positions"))] = rng.choice(_HOSTILE[:6])
        else:  # text level: deep nesting or a JSON constant
            text = json.dumps(j)
            if rng.random() < 0.6:
                depth = rng.choice((9, 50, 900, 5000))
                return text.replace('"commitments": {', '"commitments": ' + "[" * depth + "]" * depth +
                                    ', "_c": {', 1)
            return text.replace('"buffer": "', '"buffer": ' + rng.choice(("Infinity", "-Infinity", "NaN", "1e999",
                                                                          "1.9")) + ', "_b": "', 1)
    elif kind == "truncate":
        r = rng.random()
        if r < 0.4:
            j["proof"] = proof[:rng.randrange(len(proof))].hex()
        elif r < 0.7:
            lists = [(p, c) for p, c in _containers(j) if isinstance(c, list) and c]
            p, c = rng.choice(lists)
            del c[rng.randrange(len(c))]
        else:
            text = json.dumps(j)
            return text[:rng.randrange(len(text))]
    elif kind == "extend":
        r = rng.random()
        if r < 0.4:
            j["proof"] = (proof + bytes(rng.randrange(256) for _ in range(rng.choice((1, 32, 48, 96))))).hex()
        elif r < 0.7:
            lists = [(p, c) for p, c in _containers(j) if isinstance(c, list) and c]
            p, c = rng.choice(lists)
            c.append(copy.deepcopy(rng.choice(c)))
        else:
            return json.dumps(j) + rng.choice(("x", "{}", " ]", "\x00"))
    else:  # pragma: no cover
        raise ValueError(kind)
    return j


def _same(parsed: Bundle, orig: Bundle) -> bool:
    return (parsed.kind == orig.kind and parsed.statement == orig.statement and parsed.proof == orig.proof and
            parsed.flat_commitments() == orig.flat_commitments() and parsed.dst_version == orig.dst_version)


def run_fuzz(n: int, seed: int = 0, bundles: list[Bundle] | None = None, keep_examples: int = 5) -> FuzzReport:
    """Apply ``n`` mutations (round-robin over bundles and mutation kinds) and return the counts."""
    rng = random.Random(seed)
    bundles = bundles or base_bundles()
    js = [b.to_json() for b in bundles]
    rep = FuzzReport()
    for i in range(n):
        bi = i % len(bundles)
        kind = MUTATIONS[(i // len(bundles)) % len(MUTATIONS)]
        mutant = _mutate(rng, js[bi], js[(bi + 1) % len(js)], kind)
        rep.cases += 1
        rep.by_mutation[kind] += 1
        for pinned in (False, True):
            try:
                ok = verify_bundle(mutant, raise_on_failure=True, trust_bundle_statement=not pinned,
                                   expected_statement=bundles[bi].statement if pinned else None)
            except ProofError:
                ok = False
            except Exception as e:  # noqa: BLE001 - this is what the fuzzer counts
                rep.untyped_errors += 1
                if len(rep.examples) < keep_examples:
                    rep.examples.append((kind, f"untyped {type(e).__name__}: {e}"[:300]))
                break
            if ok:
                try:
                    same = _same(bundle_from_json(mutant), bundles[bi])
                except ProofError:
                    same = False
                if same:
                    rep.accepted_identical += 1
                else:
                    rep.accepted_forgeries += 1
                    if len(rep.examples) < keep_examples:
                        rep.examples.append((kind, "accepted forgery"))
            elif pinned:
                rep.rejected += 1
    return rep
