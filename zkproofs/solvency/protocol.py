"""Prover and verifier of the solvency statement, shard by shard (see :mod:`zkproofs.solvency.statement`).

The prover works in two passes over fixed shards (subtrees of ``shard_size`` leaves, independent of how many
workers run them): :func:`commit_shard` commits each account and builds the shard's subtree;
once every shard root is known the top of the tree and the root are fixed, and :func:`prove_shard` proves the
shard's claims on a transcript that absorbs the whole public statement, root included; :func:`prove_top` proves
the claims above the shards (node sums, R - E, F - sum of deficits). :func:`verify_bundle_dict` checks a public
bundle in time linear in the number of accounts; :func:`verify_inclusion` checks one account's inclusion file.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import MalformedProof, ProofError, StatementError, VerificationFailed
from ..generators import get_generators
from ..group import POINT_BYTES, R, GroupBackend, get_backend
from .statement import (
    SOLVENCY_VERSION,
    AccountWitness,
    SecretSource,
    SolvencyParams,
    Tree,
    _parse_int,
    account_uid,
    base_transcript,
    check_all,
    claim_terms,
    decode_points,
    hexbytes,
    leaf_hash,
    proofs_from_hex,
    proofs_to_hex,
    prove_claims,
    shard_claims,
    shard_layout,
    top_claims,
    tree_height,
)

BUNDLE_FORMAT = "predictive-margin/solvency-bundle"
SHARD_FORMAT = "predictive-margin/solvency-shard"
INCLUSION_FORMAT = "predictive-margin/solvency-inclusion"
OPENINGS_FORMAT = "predictive-margin/solvency-openings-PRIVATE"


def _exact(x: Any, v: int) -> bool:
    """``x == v`` with x an int, not a bool (``True == 1`` in Python)."""
    return type(x) is int and x == v


def _be(backend: str | GroupBackend) -> GroupBackend:
    return get_backend(backend) if isinstance(backend, str) else backend


# ----------------------------------------------------------------------------------------------------- prover
@dataclass
class CommittedShard:
    """A shard after pass 1. ``public_*`` fields go into the bundle; ``values``, ``blindings``, ``salts`` are
    PRIVATE (they open every commitment)."""

    index: int
    ids: list[str]
    salts: list[bytes]
    uids: list[bytes]
    values: list[int]          # per leaf: K balances, J positions, D deficits (flattened)
    blindings: list[int]
    comm_enc: list[bytes]      # one 48-byte commitment per value
    paths: list[list[tuple[str, str]]]  # sibling path inside the shard, per leaf
    root_enc: bytes
    root_hash: bytes
    equity: int                # shard root's committed equity and its blinding
    equity_blinding: int
    deficit_sums: list[int]    # per deficit slot: sum over the shard, with blinding
    deficit_blindings: list[int]
    deficit_enc: list[bytes]
    cpu_s: float = 0.0

    def summary(self) -> dict:
        """What the top of the tree needs (small): root commitment and hash, deficit sums; and their openings."""
        return {"index": self.index, "root_enc": self.root_enc, "root_hash": self.root_hash,
                "equity": self.equity, "equity_blinding": self.equity_blinding, "deficit_sums": self.deficit_sums,
                "deficit_blindings": self.deficit_blindings, "deficit_enc": self.deficit_enc,
                "first_uid": self.uids[0], "last_uid": self.uids[-1], "n": len(self.uids), "cpu_s": self.cpu_s}


def order_accounts(accounts: Sequence[AccountWitness], secrets_: SecretSource) -> list[tuple[bytes, bytes, AccountWitness]]:
    """(uid, salt, account) sorted by uid; refuses a duplicate account id (names it)."""
    seen: set[str] = set()
    out = []
    for a in accounts:
        if a.account_id in seen:
            raise StatementError(f"duplicate account id {a.account_id!r}: every account must appear once")
        seen.add(a.account_id)
        salt = secrets_.salt(a.account_id)
        out.append((account_uid(a.account_id, salt), salt, a))
    out.sort(key=lambda x: x[0])
    return out


def commit_shard(p: SolvencyParams, index: int, ordered: Sequence[tuple[bytes, bytes, AccountWitness]], height: int,
                 secrets_: SecretSource, backend: str | GroupBackend = "arkworks", dst_version: int = 1) -> CommittedShard:
    """Pass 1 for one shard (``ordered``: its (uid, salt, account) in uid order; ``height``: levels of its
    subtree, :func:`shard_layout`): compute deficits, commit every value (blindings from ``secrets_``), hash
    leaves, build the subtree. Raises :class:`StatementError` for an invalid account."""
    t0 = time.process_time()
    be = _be(backend)
    gens = get_generators(be, dst_version)
    B, Bb = gens.B, gens.B_blinding
    k = height
    domain = p.domain()
    values, blinds, encs, leaf_E, leaf_H, uids, salts, ids = [], [], [], [], [], [], [], []
    D = p.D
    dsum, dbl = [0] * D, [0] * D
    eq_tot = eq_bl = 0
    for uid, salt, a in ordered:
        a.check(p)
        v = list(a.balances) + list(a.positions) + a.deficits(p)
        g = [secrets_.blinding(uid, s) for s in range(len(v))]
        c = [be.encode(be.msm([B, Bb], [x % R, y])) for x, y in zip(v, g)]
        e_v = a.equity(p)
        e_b = sum(pk * g[kk] for kk, pk in enumerate(p.liability_prices)) % R
        leaf_E.append(be.msm([B, Bb], [e_v % R, e_b]))
        leaf_H.append(leaf_hash(domain, uid, c))
        eq_tot += e_v
        eq_bl += e_b
        for d in range(D):
            dsum[d] += v[p.K + p.J + d]
            dbl[d] += g[p.K + p.J + d]
        values += v
        blinds += g
        encs += c
        uids.append(uid)
        salts.append(salt)
        ids.append(a.account_id)
    tree = Tree(be, domain, leaf_E, leaf_H, k)
    rE, renc, rh = tree.root
    dbl = [x % R for x in dbl]
    denc = [be.encode(be.msm([B, Bb], [x % R, y])) for x, y in zip(dsum, dbl)]
    return CommittedShard(index, ids, salts, uids, values, blinds, encs, [tree.path(i) for i in range(len(uids))],
                          renc, rh, eq_tot, eq_bl % R, dsum, dbl, denc, time.process_time() - t0)


def _absorb_shard(t, uids: Sequence[bytes], comm_enc: Sequence[bytes], W: int) -> None:
    t.append_u64(b"leaves", len(uids))
    for i, uid in enumerate(uids):
        t.append_message(b"leaf", uid + b"".join(comm_enc[i * W:(i + 1) * W]))


def _absorb_top(t, roots: Sequence[tuple[bytes, bytes, Sequence[bytes]]]) -> None:
    t.append_u64(b"shards", len(roots))
    for enc, h, denc in roots:
        t.append_message(b"shard-root", enc + h + b"".join(denc))


def prove_shard(p: SolvencyParams, header: dict, sh: CommittedShard, height: int, secrets_: SecretSource,
                backend: str | GroupBackend = "arkworks", dst_version: int = 1) -> dict:
    """Pass 2 for one shard: the shard's public JSON (leaves: uid and commitments; its range proofs)."""
    be = _be(backend)
    t = base_transcript(header, b"shard", sh.index, dst_version)
    _absorb_shard(t, sh.uids, sh.comm_enc, p.width)
    claims = shard_claims(p, len(sh.uids), height)
    proofs = prove_claims(be, t, claims, sh.values, sh.blindings, secrets_.nonce_rng(b"shard/%d" % sh.index),
                          dst_version)
    W = p.width
    leaves = [{"uid": u.hex(), "commitments": [c.hex() for c in sh.comm_enc[i * W:(i + 1) * W]]}
              for i, u in enumerate(sh.uids)]
    return {"format": SHARD_FORMAT, "version": SOLVENCY_VERSION, "index": sh.index, "leaves": leaves,
            "range_proofs": proofs_to_hex(proofs)}


def top_tree(be: GroupBackend, p: SolvencyParams, n_leaves: int, roots: Sequence[tuple[bytes, bytes]],
             root_points: Sequence[Any] | None = None) -> Tree:
    k, T = shard_layout(n_leaves, p.shard_size)
    if len(roots) != T:
        raise MalformedProof(f"expected {T} shards for {n_leaves} leaves, got {len(roots)}")
    pts = list(root_points) if root_points is not None else decode_points(be, [r[0] for r in roots], "shard root")
    return Tree(be, p.domain(), pts, [r[1] for r in roots], tree_height(n_leaves) - k, base_height=k)


def top_inputs(summaries: Sequence[dict]) -> tuple[list[int], list[int]]:
    """Inputs of the top claims (per shard: equity, then deficit sums) and their blindings."""
    vals, bls = [], []
    for s in summaries:
        vals += [s["equity"]] + list(s["deficit_sums"])
        bls += [s["equity_blinding"]] + list(s["deficit_blindings"])
    return vals, bls


def check_top(p: SolvencyParams, n_leaves: int, summaries: Sequence[dict]) -> None:
    """Evaluate the top claims (R - E, F - sum of deficits, node sums) before any proving work; raises
    :class:`StatementError` naming the first false one."""
    from . import statement as st

    k, T = shard_layout(n_leaves, p.shard_size)
    st.claim_values(top_claims(p, T, k, tree_height(n_leaves) - k), *top_inputs(summaries))


def prove_top(p: SolvencyParams, header: dict, summaries: Sequence[dict], secrets_: SecretSource,
              backend: str | GroupBackend = "arkworks", dst_version: int = 1) -> list[str]:
    """Range proofs of the claims above the shards: node sums, R - E_root, F - sum_i d_is per scenario."""
    be = _be(backend)
    n = header["n_leaves"]
    k, T = shard_layout(n, p.shard_size)
    t = base_transcript(header, b"top", 0, dst_version)
    _absorb_top(t, [(s["root_enc"], s["root_hash"], s["deficit_enc"]) for s in summaries])
    vals, bls = top_inputs(summaries)
    claims = top_claims(p, T, k, tree_height(n) - k)
    return proofs_to_hex(prove_claims(be, t, claims, vals, bls, secrets_.nonce_rng(b"top"), dst_version))


def inclusion_file(p: SolvencyParams, header: dict, sh: CommittedShard, i: int, leaf_index: int,
                   top_path: list[tuple[str, str]]) -> dict:
    """Account ``i`` of shard ``sh``: its id, salt, openings (balances, positions, deficits and blindings), leaf
    index and full sibling path, with the public statement."""
    W = p.width
    v, g = sh.values[i * W:(i + 1) * W], sh.blindings[i * W:(i + 1) * W]
    return {"format": INCLUSION_FORMAT, "version": SOLVENCY_VERSION,
            "warning": "PRIVATE to this account: openings of its commitments",
            "statement": header, "account_id": sh.ids[i], "salt": sh.salts[i].hex(), "leaf_index": leaf_index,
            "balances": [str(x) for x in v[:p.K]], "positions": [str(x) for x in v[p.K:p.K + p.J]],
            "deficits": [str(x) for x in v[p.K + p.J:]], "blindings": [f"{x:064x}" for x in g],
            "path": [list(x) for x in sh.paths[i] + top_path]}


def inclusion_proof_bytes(inc: dict) -> int:
    """Binary size of the inclusion proof proper: sibling path (48 + 32 bytes per level), leaf index (8), salt
    (32), and the openings (32-byte blinding + 8-byte value each)."""
    return 80 * len(inc["path"]) + 8 + 32 + 40 * len(inc["blindings"])


# --------------------------------------------------------------------------------------------------- verifier
@dataclass
class VerifiedShard:
    root_point: Any
    root_enc: bytes
    root_hash: bytes
    deficit_points: list
    deficit_enc: list[bytes]
    first_uid: bytes
    last_uid: bytes
    n: int


def parse_header(o: Any) -> tuple[SolvencyParams, dict]:
    if not isinstance(o, dict) or set(o) != {"params", "n_leaves", "root"}:
        raise MalformedProof("statement: expected keys params, n_leaves, root")
    p = SolvencyParams.from_json(o["params"])
    n = o["n_leaves"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n < 1 << 40:
        raise MalformedProof(f"n_leaves must be an integer in [1, 2^40), got {n!r:.40}")
    r = o["root"]
    if not isinstance(r, dict) or set(r) != {"commitment", "hash"}:
        raise MalformedProof("root: expected keys commitment, hash")
    hexbytes(r["commitment"], POINT_BYTES, "root commitment")
    hexbytes(r["hash"], 32, "root hash")
    return p, o


def verify_shard(p: SolvencyParams, header: dict, index: int, shard: Any, prev_uid: bytes | None,
                 backend: str | GroupBackend = "arkworks", dst_version: int = 1) -> VerifiedShard:
    """Check one shard: leaf encodings, strictly increasing uids (no duplicate leaf), subtree, range proofs.
    Raises a :class:`ProofError` subclass on rejection."""
    be = _be(backend)
    gens = get_generators(be, dst_version)
    n = header["n_leaves"]
    k, T = shard_layout(n, p.shard_size)
    if not isinstance(shard, dict) or set(shard) != {"format", "version", "index", "leaves", "range_proofs"} or \
            shard.get("format") != SHARD_FORMAT or not _exact(shard.get("version"), SOLVENCY_VERSION):
        raise MalformedProof(f"shard {index}: not a v1 solvency shard")
    if not _exact(shard["index"], index):
        raise MalformedProof(f"shard {index}: has index {shard['index']!r:.20}")
    expect = min(1 << k, n - index * (1 << k))
    leaves = shard["leaves"]
    if not isinstance(leaves, list) or len(leaves) != expect:
        raise MalformedProof(f"shard {index}: expected {expect} leaves")
    W = p.width
    uids, encs = [], []
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, dict) or set(leaf) != {"uid", "commitments"} or \
                not isinstance(leaf["commitments"], list) or len(leaf["commitments"]) != W:
            raise MalformedProof(f"shard {index} leaf {i}: expected uid and {W} commitments")
        uid = hexbytes(leaf["uid"], 32, f"shard {index} leaf {i} uid")
        if (uids and uid <= uids[-1]) or (not uids and prev_uid is not None and uid <= prev_uid):
            raise VerificationFailed(f"shard {index} leaf {i}: account hashes not strictly increasing "
                                     "(duplicate or reordered leaf)")
        uids.append(uid)
        encs += [hexbytes(c, POINT_BYTES, f"shard {index} leaf {i} commitment") for c in leaf["commitments"]]
    pts = decode_points(be, encs, f"shard {index} commitment")
    domain = p.domain()
    K, J = p.K, p.J
    prices = list(p.liability_prices)
    leaf_E = [be.msm(pts[i * W:i * W + K], prices) for i in range(len(uids))]
    leaf_H = [leaf_hash(domain, u, encs[i * W:(i + 1) * W]) for i, u in enumerate(uids)]
    tree = Tree(be, domain, leaf_E, leaf_H, k)
    dpts = []
    for d in range(p.D):
        acc = be.identity()
        for i in range(len(uids)):
            acc = be.add(acc, pts[i * W + K + J + d])
        dpts.append(acc)
    t = base_transcript(header, b"shard", index, dst_version)
    _absorb_shard(t, uids, encs, W)
    proofs = proofs_from_hex(shard["range_proofs"])
    terms = claim_terms(be, t, shard_claims(p, len(uids), k), pts, proofs, dst_version)
    check_all(be, terms, dst_version)
    rp, renc, rh = tree.root
    return VerifiedShard(rp, renc, rh, dpts, [be.encode(x) for x in dpts], uids[0], uids[-1], len(uids))


def verify_top(p: SolvencyParams, header: dict, shards: Sequence[VerifiedShard], top_proofs: Any,
               backend: str | GroupBackend = "arkworks", dst_version: int = 1, *, absorb_root: bool = True) -> None:
    """Rebuild the tree above the shards, compare the root with the statement's, check the top range proofs."""
    be = _be(backend)
    n = header["n_leaves"]
    k, T = shard_layout(n, p.shard_size)
    tree = top_tree(be, p, n, [(s.root_enc, s.root_hash) for s in shards], [s.root_point for s in shards])
    _, renc, rh = tree.root
    if renc.hex() != header["root"]["commitment"] or rh.hex() != header["root"]["hash"]:
        raise VerificationFailed("the tree does not hash to the published root")
    t = base_transcript(header, b"top", 0, dst_version, absorb_root=absorb_root)
    _absorb_top(t, [(s.root_enc, s.root_hash, s.deficit_enc) for s in shards])
    base = []
    for s in shards:
        base += [s.root_point] + list(s.deficit_points)
    terms = claim_terms(be, t, top_claims(p, T, k, tree_height(n) - k), base, proofs_from_hex(top_proofs),
                        dst_version)
    check_all(be, terms, dst_version)


def check_bundle_layout(bundle):
    """The public bundle's outer layout: exact keys, format, version, curve and DST version, the statement header,
    and one shard reference per shard. Returns ``(params, header, leaves per shard, number of shards, shard refs)``.

    Raises:
        MalformedProof: anything else (never another exception type on hostile input of these fields).
    """
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT or \
            not _exact(bundle.get("version"), SOLVENCY_VERSION) or \
            set(bundle) != {"format", "version", "curve", "dst_version", "statement", "shards", "top_proofs"}:
        raise MalformedProof("not a v1 solvency bundle")
    if bundle["curve"] != "BLS12-381-G1" or not _exact(bundle["dst_version"], 1):
        raise MalformedProof("unsupported curve or DST version")
    p, header = parse_header(bundle["statement"])
    k, T = shard_layout(header["n_leaves"], p.shard_size)
    refs = bundle["shards"]
    if not isinstance(refs, list) or len(refs) != T:
        raise MalformedProof(f"expected {T} shards for {header['n_leaves']} leaves")
    return p, header, k, T, refs


def verify_bundle_dict(bundle: Any, *, load_shard=None, backend: str | GroupBackend = "arkworks",
                       progress: bool = False) -> dict:
    """Verify a public solvency bundle. ``bundle["shards"]`` holds the shard objects inline, or references
    ``{"file", "sha256"}`` resolved by ``load_shard(ref) -> shard dict`` (which checks the digest).
    Returns a summary (epoch, accounts, scenarios, F, R, ...). Raises a :class:`ProofError` subclass on
    rejection; never anything else on hostile input."""
    try:
        p, header, k, T, refs = check_bundle_layout(bundle)
        n = header["n_leaves"]
        it = range(T)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="verify shards", unit="shard", leave=False)
        done, prev = [], None
        for t in it:
            sh = refs[t]
            if load_shard is not None and isinstance(sh, dict) and "file" in sh:
                sh = load_shard(sh)
            v = verify_shard(p, header, t, sh, prev, backend)
            prev = v.last_uid
            done.append(v)
        verify_top(p, header, done, bundle["top_proofs"], backend)
        return {"venue": p.venue, "epoch": p.epoch, "accounts": n, "scenarios": p.S, "shards": T,
                "insurance_fund": p.insurance_fund, "reserves": p.reserves, "value_scale": p.value_scale,
                "deficit_mode": p.deficit_mode, "root": header["root"]["hash"]}
    except ProofError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as e:
        raise MalformedProof(f"solvency bundle: {type(e).__name__}: {e}") from None


def verify_inclusion(bundle_statement: Any, inc: Any, *, backend: str | GroupBackend = "arkworks") -> dict:
    """Check an account's inclusion file against the public statement of a (verified) bundle: same statement,
    the leaf recomputed from the account id, salt and openings, the sibling path up to the published root, and
    the deficits the account's own surplus requires. Returns the account's figures; raises a
    :class:`ProofError` subclass on rejection."""
    try:
        be = _be(backend)
        gens = get_generators(be)
        p, header = parse_header(bundle_statement)
        keys = {"format", "version", "warning", "statement", "account_id", "salt", "leaf_index", "balances",
                "positions", "deficits", "blindings", "path"}
        if not isinstance(inc, dict) or set(inc) != keys or inc["format"] != INCLUSION_FORMAT or \
                not _exact(inc["version"], SOLVENCY_VERSION):
            raise MalformedProof("not a v1 solvency inclusion file")
        if inc["statement"] != bundle_statement:
            raise VerificationFailed("the inclusion file is for a different statement (epoch, venue, root, F or R)")
        if not isinstance(inc["warning"], str):
            raise MalformedProof("warning must be a string")
        aid = inc["account_id"]
        if not isinstance(aid, str) or not aid:
            raise MalformedProof("account_id must be a non-empty string")
        salt = hexbytes(inc["salt"], 32, "salt")
        n = header["n_leaves"]
        li = inc["leaf_index"]
        if isinstance(li, bool) or not isinstance(li, int) or not 0 <= li < n:
            raise MalformedProof(f"leaf_index must be in [0, {n})")
        bal = [_parse_int(x) for x in inc["balances"]]
        pos = [_parse_int(x) for x in inc["positions"]]
        dfs = [_parse_int(x) for x in inc["deficits"]]
        bl = [int(hexbytes(x, 32, "blinding").hex(), 16) for x in inc["blindings"]]
        if len(bal) != p.K or len(pos) != p.J or len(dfs) != p.D or len(bl) != p.width:
            raise MalformedProof("openings do not match the statement's assets, instruments and deficits")
        if any(b >= R for b in bl):
            raise MalformedProof("blinding out of range")
        acct = AccountWitness(aid, tuple(bal), tuple(pos))
        acct.check(p)
        need = acct.deficits(p)
        if any(not 0 <= d < 1 << p.value_bits for d in dfs) or any(d < nd for d, nd in zip(dfs, need)):
            raise VerificationFailed("committed deficits do not cover this account's stress losses")
        B, Bb = gens.B, gens.B_blinding
        vals = bal + pos + dfs
        enc = [be.encode(be.msm([B, Bb], [v % R, g])) for v, g in zip(vals, bl)]
        uid = account_uid(aid, salt)
        domain = p.domain()
        h = leaf_hash(domain, uid, enc)
        e_b = sum(pk * bl[kk] for kk, pk in enumerate(p.liability_prices)) % R
        E = be.msm([B, Bb], [acct.equity(p) % R, e_b])
        path = inc["path"]
        H = tree_height(n)
        if not isinstance(path, list) or len(path) != H:
            raise MalformedProof(f"path must have {H} levels")
        from .statement import empty_hash, node_hash

        idx = li
        encE = be.encode(E)
        for lvl, sib in enumerate(path):
            if not isinstance(sib, list) or len(sib) != 2:
                raise MalformedProof("path entries are [commitment, hash]")
            se, sh = hexbytes(sib[0], POINT_BYTES, "sibling commitment"), hexbytes(sib[1], 32, "sibling hash")
            level_size = -(-n // (1 << lvl))
            if idx ^ 1 >= level_size:  # empty padding sibling: identity and the fixed hash
                if se != be.encode(be.identity()) or sh != empty_hash(domain, lvl):
                    raise VerificationFailed("padding sibling is not the empty node")
                sp = be.identity()
            else:
                sp = be.decode(se, field="sibling commitment")
            if idx & 1:
                E = be.add(sp, E)
                newenc = be.encode(E)
                h = node_hash(domain, lvl + 1, se, sh, encE, h)
            else:
                E = be.add(E, sp)
                newenc = be.encode(E)
                h = node_hash(domain, lvl + 1, encE, h, se, sh)
            encE = newenc
            idx >>= 1
        if encE.hex() != header["root"]["commitment"] or h.hex() != header["root"]["hash"]:
            raise VerificationFailed("the account's leaf and path do not hash to the published root")
        return {"account_id": aid, "leaf_index": li, "uid": uid.hex(), "equity": acct.equity(p),
                "balances": dict(zip(p.assets, bal)), "positions": dict(zip(p.instruments, pos)),
                "deficits": dfs, "proof_bytes": inclusion_proof_bytes(inc)}
    except ProofError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError) as e:
        raise MalformedProof(f"inclusion file: {type(e).__name__}: {e}") from None


def shard_digest(shard: dict) -> str:
    import json

    return hashlib.sha256(json.dumps(shard, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
