"""Regenerate the stored proof fixtures (run once per format version; tests require the stored ones to keep
verifying): ``python -m zkproofs.data.make_fixtures``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from zkproofs import (
    Context,
    CrossVenueStatement,
    EquityStatement,
    MarginStatement,
    Transcript,
    get_backend,
    get_generators,
    prove_cross_venue,
    prove_equity_covers_margin,
    prove_margin,
    prove_range,
)
from zkproofs.rangeproof import random_scalar

HERE = Path(__file__).parent


def main(range_only: bool = False) -> None:
    if range_only:
        return _range_fixtures()
    ctx = Context("fixture-venue", Context.hash_account("fixture-account"), 1, 2**62)  # expires in ~1.5e11 years
    est = EquityStatement(ctx, [1_000_000], [30_000_000], [30_000_001], [5_000], buffer=100,
                          collateral_names=("USDC",), instruments=("BTC-PERP",), value_scale=10**6,
                          amount_scale=10**4, unit="fixture: value 1e-6 USD; amount 1e-4 coin")
    b = prove_equity_covers_margin(est, [10_000], -25_000_000_000, [1_000])
    (HERE / "equity_v2.json").write_text(json.dumps(b.to_json(), indent=1))
    rng = np.random.default_rng(2026)
    L = rng.integers(-40_000, 40_000, size=(6, 8))
    st = MarginStatement([30_000, 2_000, 1], L, buffer=1_000_000, collateral_bits=32, position_bits=32,
                         scenario_bits=64, unit="fixture: USD 1e-2; collateral 1e-4 units", pnl_short=L + (L % 2),
                         context=ctx)
    b = prove_margin(st, [1_000, 20_000, 5_000_000], [12, -30, 7, 0, -2, 55])
    (HERE / "margin_v2.json").write_text(json.dumps(b.to_json(), indent=1))
    cv = CrossVenueStatement([30_000], [L[:3, :4], L[3:, 4:]], buffer=500, collateral_bits=32, position_bits=32,
                             scenario_bits=64, venue_names=("venue-a", "venue-b"), context=ctx)
    b = prove_cross_venue(cv, [10_000], [[3, -4, 5], [-6, 7, 8]])
    (HERE / "cross_venue_v2.json").write_text(json.dumps(b.to_json(), indent=1))
    _range_fixtures()


def _range_fixtures() -> None:
    for backend, n, values in (("arkworks", 64, [2**64 - 1, 0, 123456789]), ("pyecc", 8, [200])):
        be = get_backend(backend)
        p, V = prove_range(be, get_generators(be), Transcript(b"fixture"), values, [random_scalar() for _ in values], n)
        obj = {"label": "fixture", "n": n, "commitments": [c.hex() for c in V], "proof": p.to_bytes().hex(),
               "made_with": backend}
        (HERE / f"rangeproof_{backend}_n{n}_v1.rp.json").write_text(json.dumps(obj, indent=1))


if __name__ == "__main__":
    import sys

    main(range_only="--range-only" in sys.argv)
