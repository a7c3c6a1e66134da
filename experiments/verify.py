"""`python -m experiments.verify bundle.json [--backend arkworks|pyecc]`: verify a public bundle written by
``experiments.prove`` (or by ``zkproofs.Bundle.to_json``). Plain argparse (a verifier needs only the file, so no
Hydra config). Prints the verdict; exit status 0 = verified, 1 = rejected (with the typed reason), 2 = the file
cannot be read as JSON.
"""
from __future__ import annotations

import argparse
import json
import time

import zkproofs


def verify_file(path: str, backend: str = "arkworks") -> tuple[bool, str]:
    """(verified, message). Never raises on hostile content: every failure is a typed ProofError message."""
    with open(path, "rb") as f:
        obj = json.loads(f.read())
    t0 = time.perf_counter()
    try:
        zkproofs.verify_bundle(obj, backend=backend, raise_on_failure=True)
    except zkproofs.ProofError as e:
        return False, f"REJECTED ({type(e).__name__}): {e}"
    ms = (time.perf_counter() - t0) * 1e3
    b = zkproofs.bundle_from_json(obj)
    st = b.statement
    what = {"margin": lambda: f"{st.num_collateral} collateral assets, {st.num_positions} positions, "
                              f"{st.num_scenarios} scenarios, buffer {st.buffer}",
            "equity": lambda: f"equity - maintenance margin - {st.buffer} >= 0 (1/{st.scale} USD)",
            "cross_venue": lambda: f"{len(st.prices)} collateral assets across venues {list(st.venue_names)}"}[b.kind]()
    return True, f"VERIFIED {b.kind}: {what} ({b.proof_bytes} proof bytes, {ms:.0f} ms, {backend})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", help="path to bundle.json")
    ap.add_argument("--backend", default="arkworks", choices=["arkworks", "pyecc"])
    a = ap.parse_args(argv)
    try:
        ok, msg = verify_file(a.bundle, a.backend)
    except (OSError, ValueError) as e:
        print(f"REJECTED: cannot read {a.bundle}: {e}")
        return 2
    print(msg)
    return 0 if ok else 1


if __name__ == "__main__":
    from experiments._cli import run_cli

    run_cli(main)
