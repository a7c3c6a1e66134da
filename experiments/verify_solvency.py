"""`python -m experiments.verify_solvency PUBLIC.json [--account INCLUSION.json]`: verify an exchange-wide
solvency bundle written by ``experiments.solvency`` (its shard files are read from beside it and checked against
their SHA-256), and optionally one account's inclusion file against it.

Exit status: 0 verified, 1 rejected (a well-formed bundle or inclusion file that does not verify, with the typed
reason), 2 unreadable (missing file, not JSON, not a solvency bundle). Prints one verdict line, then a short
summary: epoch, accounts, scenarios, F, R (USD), and for ``--account`` the account's balances and positions as
committed in the tree. Never a traceback on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from zkproofs import MalformedProof, ProofError

UNREADABLE, REJECTED, VERIFIED = 2, 1, 0


def _usd(x: int, vs: int) -> str:
    return f"{x / vs:,.2f} USD"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.verify_solvency", description=__doc__.split("\n\n")[0])
    ap.add_argument("public", help="path to PUBLIC.json")
    ap.add_argument("--account", help="an account's inclusion file to check against the bundle")
    ap.add_argument("--backend", default="arkworks", choices=["arkworks", "pyecc"])
    ap.add_argument("--workers", type=int, default=0,
                    help="verify the shards as Ray tasks on this many CPUs (RAY_ADDRESS: a cluster); 0 = in-process")
    a = ap.parse_args(argv)
    from zkproofs.solvency import load_bundle, verify_bundle_dict, verify_inclusion

    try:
        bundle, load_shard = load_bundle(a.public)
        inc = None
        if a.account:
            with open(a.account, "rb") as f:
                inc = json.loads(f.read())
    except (OSError, ValueError) as e:
        print(f"UNREADABLE: {e}")
        return UNREADABLE
    t0 = time.perf_counter()
    try:
        if a.workers > 0:
            from zkproofs.solvency import verify_solvency_file

            s = verify_solvency_file(a.public, backend=a.backend, workers=a.workers)
        else:
            s = verify_bundle_dict(bundle, load_shard=load_shard, backend=a.backend)
    except MalformedProof as e:
        if not isinstance(bundle, dict) or bundle.get("format") != "predictive-margin/solvency-bundle":
            print(f"UNREADABLE: {a.public} is not a solvency bundle ({e})")
            return UNREADABLE
        print(f"REJECTED ({type(e).__name__}): {e}")
        return REJECTED
    except ProofError as e:
        print(f"REJECTED ({type(e).__name__}): {e}")
        return REJECTED
    bundle_s = time.perf_counter() - t0
    acct = None
    if inc is not None:
        t1 = time.perf_counter()
        try:
            acct = verify_inclusion(bundle["statement"], inc, backend=a.backend)
        except ProofError as e:
            print(f"REJECTED inclusion ({type(e).__name__}): {e}")
            return REJECTED
        inc_ms = (time.perf_counter() - t1) * 1e3
    vs = s["value_scale"]
    what = "bundle and account" if acct else "bundle"
    print(f"VERIFIED solvency {what}: venue {s['venue']}, epoch {s['epoch']}, root {s['root'][:16]}...")
    print(f"  accounts {s['accounts']}, scenarios {s['scenarios']} ({s['deficit_mode']}), "
          f"F = {_usd(s['insurance_fund'], vs)}, R = {_usd(s['reserves'], vs)}; bundle verified in {bundle_s:.2f} s")
    if acct:
        print(f"  account {acct['account_id']} is leaf {acct['leaf_index']}: equity {_usd(acct['equity'], vs)}, "
              f"balances {acct['balances']}, positions {acct['positions']} (fixed-point units); "
              f"inclusion proof {acct['proof_bytes']} bytes, checked in {inc_ms:.1f} ms")
    return VERIFIED


if __name__ == "__main__":
    sys.exit(main())
