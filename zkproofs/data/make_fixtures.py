"""Regenerate the stored proof fixtures (run once per format version; tests require the stored ones to keep
verifying): ``python -m zkproofs.data.make_fixtures``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from zkproofs import CrossVenueStatement, MarginStatement, prove_cross_venue, prove_equity_covers_margin, prove_margin

HERE = Path(__file__).parent


def main() -> None:
    b = prove_equity_covers_margin(25_000.50, 18_250.25, scale=100)
    (HERE / "equity_v1.json").write_text(json.dumps(b.to_json(), indent=1))
    rng = np.random.default_rng(2026)
    L = rng.integers(-40_000, 40_000, size=(6, 8))
    st = MarginStatement([30_000, 2_000, 1], L, buffer=1_000_000, collateral_bits=32, position_bits=32,
                         scenario_bits=64, unit="fixture: USD 1e-2; collateral 1e-4 units")
    b = prove_margin(st, [1_000, 20_000, 5_000_000], [12, -30, 7, 0, -2, 55])
    (HERE / "margin_v1.json").write_text(json.dumps(b.to_json(), indent=1))
    cv = CrossVenueStatement([30_000], [L[:3, :4], L[3:, 4:]], buffer=500, collateral_bits=32, position_bits=32,
                             scenario_bits=64, venue_names=("venue-a", "venue-b"))
    b = prove_cross_venue(cv, [10_000], [[3, -4, 5], [-6, 7, 8]])
    (HERE / "cross_venue_v1.json").write_text(json.dumps(b.to_json(), indent=1))


if __name__ == "__main__":
    main()
