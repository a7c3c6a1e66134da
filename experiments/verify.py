"""`python -m experiments.verify BUNDLE (--statement STATEMENT.json | --statement-digest HEX |
--trust-bundle-statement) [--now UNIX_SECONDS] [--backend arkworks|pyecc]`: verify a public bundle written by
``experiments.prove`` (or by ``zkproofs.Bundle.to_json``) against the VENUE's statement.

The statement is pinned by the venue's ``statement.json`` (``--statement``; any field that differs - scan range,
P&L matrix, buffer, context - rejects the bundle) or by its published SHA-256 (``--statement-digest``). Without
either, verification is refused unless ``--trust-bundle-statement`` is given: then the bundle's own statement
is verified and its digest and a summary (context, scenario labels, scan range, buffer in USD) are printed, for
a human to compare with what the venue published. The context's expiry is checked against ``--now`` (default:
the current time). Plain argparse (a verifier needs only the files, so no Hydra config).

Exit status: 0 = verified; 1 = rejected (the typed reason is printed: statement mismatch, expired, invalid
point, failed equation); 2 = unreadable (missing file, not JSON, hostile or malformed JSON, wrong schema) or a
usage error (no statement pinned).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import zkproofs
from zkproofs.schema import MAX_JSON_BYTES

VERIFIED, REJECTED, UNREADABLE = 0, 1, 2


def _read(path: str, what: str) -> bytes:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_JSON_BYTES:
            raise zkproofs.MalformedProof(f"{what} {path}: {p.stat().st_size} bytes, limit {MAX_JSON_BYTES}")
        return p.read_bytes()
    except OSError as e:
        raise zkproofs.MalformedProof(f"cannot read {what} {path}: {e.strerror or e}") from None


def verify_file(path: str, backend: str = "arkworks", *, statement: str | None = None,
                statement_digest: str | None = None, trust_bundle_statement: bool = False,
                now: float | None = None) -> tuple[int, str]:
    """(exit status, message). Never raises on hostile content: every failure is a typed ProofError message."""
    try:
        bundle = zkproofs.bundle_from_json(_read(path, "bundle"))
        expected = zkproofs.statement_from_json(_read(statement, "statement")) if statement else None
        statement_digest = statement_digest.strip().lower() if statement_digest is not None else None
        if statement_digest is not None and (len(statement_digest) != 64 or
                                             any(c not in "0123456789abcdef" for c in statement_digest)):
            raise zkproofs.MalformedProof("--statement-digest must be 64 hex digits (SHA-256)")
    except zkproofs.ProofError as e:
        return UNREADABLE, f"UNREADABLE ({type(e).__name__}): {e}"
    if expected is None and statement_digest is None and not trust_bundle_statement:
        return UNREADABLE, ("REFUSED: no statement to verify against; pass --statement STATEMENT.json (the venue's "
                            "statement) or --statement-digest HEX, or --trust-bundle-statement to verify the "
                            "bundle's own statement (its digest and summary are printed)")
    t0 = time.perf_counter()
    try:
        zkproofs.verify_bundle(bundle, backend=backend, raise_on_failure=True, expected_statement=expected,
                               expected_statement_digest=statement_digest,
                               trust_bundle_statement=trust_bundle_statement, now=now)
    except zkproofs.ProofError as e:
        return REJECTED, f"REJECTED ({type(e).__name__}): {e}"
    ms = (time.perf_counter() - t0) * 1e3
    st = bundle.statement
    pinned = "statement pinned by --statement" if expected is not None else \
        "statement pinned by --statement-digest" if statement_digest is not None else \
        "the BUNDLE's own statement, trusted: compare its digest with the venue's"
    return VERIFIED, (f"VERIFIED {bundle.kind} ({pinned}; {bundle.proof_bytes} proof bytes, {ms:.0f} ms, "
                      f"{backend})\n{st.summary()}\nstatement SHA-256 {st.digest()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", help="path to bundle.json")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--statement", help="the venue's statement.json the bundle must prove")
    g.add_argument("--statement-digest", help="SHA-256 (hex) of the venue's canonical statement.json")
    g.add_argument("--trust-bundle-statement", action="store_true",
                   help="verify the statement the bundle carries (prints its digest and summary)")
    ap.add_argument("--now", type=float, default=None, help="verifier time, UNIX seconds (default: now)")
    ap.add_argument("--backend", default="arkworks", choices=["arkworks", "pyecc"])
    a = ap.parse_args(argv)
    code, msg = verify_file(a.bundle, a.backend, statement=a.statement, statement_digest=a.statement_digest,
                            trust_bundle_statement=a.trust_bundle_statement, now=a.now)
    print(msg)
    return code


if __name__ == "__main__":
    from experiments._cli import run_cli

    run_cli(main)
