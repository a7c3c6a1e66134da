"""The simulator's per-day option/perpetual scenario P&L equals margin.span_scenarios on the same instruments."""
import numpy as np

from margin.simulation.book import OptionGrid
from margin.valuation.instruments import Instruments
from margin.simulation.liquidation import SPAN_GRID, _series_strikes, option_scenario_pnl
from margin.rules.span import span_scenarios


def test_option_grid_pnl_matches_span_scenarios():
    grid = OptionGrid(tenors=(7, 30), moneyness=(0.8, 1.0, 1.2))
    T = 12
    rng = np.random.default_rng(0)
    spot = np.stack([30000 * np.exp(np.cumsum(rng.normal(0, 0.03, T))),
                     2000 * np.exp(np.cumsum(rng.normal(0, 0.04, T)))], 1)
    iv = np.stack([np.full(T, 0.6), np.full(T, 0.8)], 1)
    scan = np.stack([np.full(T, 0.1), np.full(T, 0.15)], 1)
    strike, tau, _, _ = _series_strikes(spot, grid.tenors, grid.moneyness)
    value, delta, pnl = option_scenario_pnl(spot, strike, tau, iv, scan, vol_scan=0.25)
    for t in (0, 5, 9):
        a, j, k, c = grid.decode(np.arange(grid.n_instruments(2)))
        inst = Instruments.create(["option"] * len(a), underlying=a, strike=strike[t][a, j, k],
                                  expiry=tau[t][j], option_type=np.where(c == 0, "C", "P").tolist())
        ref = span_scenarios(inst, spot[t], iv[t][a], scan[t] * spot[t], iv[t] * 0.25)
        np.testing.assert_allclose(pnl[t], np.asarray(ref.pnl), rtol=1e-9, atol=1e-8 * spot[t].max())
    # perpetuals: the simulator's per-USD-notional moves x spot = SPAN P&L of a linear perpetual
    perp = Instruments.create(["linear_perpetual", "linear_perpetual"], underlying=[0, 1])
    ref = np.asarray(span_scenarios(perp, spot[3], np.ones(2), scan[3] * spot[3], np.zeros(2)).pnl)
    mult, _, cover = SPAN_GRID.T
    np.testing.assert_allclose(spot[3][:, None] * mult[None] * scan[3][:, None] * cover[None], ref, rtol=1e-12)
