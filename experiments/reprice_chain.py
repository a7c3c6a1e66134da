"""Reprice the embedded Deribit BTC option chain from its mark IVs and margin sample books drawn from it.

Prints (1) the repricing errors against Deribit's mark prices and Greeks per expiry and (2) CME SPAN and Deribit
portfolio-margin requirements (IM / MM) for named option books and for random books, with the net-vs-gross
ratio (portfolio margin / sum of isolated position margins under the same Deribit scenarios).
Run: ``python -m experiments.reprice_chain`` (Hydra; config ``conf/reprice_chain.yaml``).
"""
from __future__ import annotations

from pathlib import Path

from experiments._cli import hydra_app
import jax.numpy as jnp
import numpy as np
import pandas as pd
from omegaconf import DictConfig

import margin
from margin.chain import chain_instruments, load_deribit_chain, reprice_chain, repricing_summary


def _pick(df, expiry, strike, kind):
    sel = df[(df["expiry_utc"].dt.strftime("%Y-%m-%d") == expiry) & (df["option_type"] == kind)]
    return int((sel["strike"] - strike).abs().idxmin())


def run(cfg: DictConfig) -> dict:
    """Returns ``{"summary": DataFrame, "books": DataFrame, "random": dict}`` (and prints nothing)."""
    df = load_deribit_chain(cfg.chain_path)
    repriced = reprice_chain(df)
    summary = repricing_summary(repriced)

    live = df[df["T"] > cfg.min_days / 365.0].reset_index()
    opt_inst, fwd_opt, vols_opt = chain_instruments(live)
    index = float(df["index_price"].median())
    perp = margin.Instruments.create(["inverse_perpetual"], names=["BTC-PERPETUAL"])
    inst = margin.Instruments.concat([opt_inst, perp])
    fwd = np.r_[fwd_opt, index]
    vols = np.r_[vols_opt, 0.0]
    n_i = inst.size

    dparams = margin.DeribitParams.from_config(cfg.deribit)
    dscen = margin.deribit_scenarios(inst, fwd, vols, dparams)
    g = margin.black76_greeks(fwd_opt, live["strike"].to_numpy(), live["T"].to_numpy(), vols_opt,
                              live["is_call"].to_numpy(), dtype=jnp.float64)
    deltas = np.r_[np.asarray(g.delta), 1.0]

    sp = cfg.span.products[cfg.span_product]
    sparams = margin.SpanParams.from_config(cfg.span, [cfg.span_product])
    sscen = margin.span_scenarios(inst, fwd, vols, [sp.price_scan_range], [sp.vol_scan_range],
                                  extreme_multiple=cfg.span.extreme_multiple, extreme_cover=cfg.span.extreme_cover,
                                  look_ahead_days=cfg.span.look_ahead_days)
    values_usd = np.r_[live["mark_price"].to_numpy() * fwd_opt, 0.0]

    atm = index
    legs = {
        "short ATM straddle 26JUN20": [("2020-06-26", atm, "C", -1), ("2020-06-26", atm, "P", -1)],
        "long ATM call 26JUN20": [("2020-06-26", atm, "C", 1)],
        "short strangle 29MAY20 8000P/11000C": [("2020-05-29", 8000, "P", -1), ("2020-05-29", 11000, "C", -1)],
        "bull call spread 26JUN20 9000/11000": [("2020-06-26", 9000, "C", 1), ("2020-06-26", 11000, "C", -1)],
        "risk reversal 25SEP20 +12000C -7000P": [("2020-09-25", 12000, "C", 1), ("2020-09-25", 7000, "P", -1)],
        "covered call: +1 perp, -1 10000C 29MAY20": [("perp", 0, "", 1), ("2020-05-29", 10000, "C", -1)],
        "calendar: -1 22MAY20 / +1 26JUN20 ATM call": [("2020-05-22", atm, "C", -1), ("2020-06-26", atm, "C", 1)],
        "short 10 x 25DEC20 4000P (far OTM)": [("2020-12-25", 4000, "P", -10)],
    }
    names, rows = list(legs), []
    for book in legs.values():
        row = np.zeros(n_i)
        for exp, k, kind, q in book:
            row[n_i - 1 if exp == "perp" else _pick(live, exp, k, kind)] += q
        rows.append(row)
    books = np.array(rows)

    def margins(x):
        d = margin.deribit_margin(x, inst, dscen, fwd, dparams, deltas=deltas, dtype=jnp.float64)
        s = margin.span_requirement(x, inst, sscen, sparams, option_values=values_usd, deltas=deltas,
                                    dtype=jnp.float64)
        iso = margin.isolated_margin(x, dscen.select("standard"), dtype=jnp.float64)
        return d, s, iso

    d, s, iso = margins(books)
    table = pd.DataFrame({
        "SPAN scan USD": np.asarray(s.scan_risk[:, 0]),
        "SPAN req USD": np.asarray(s.requirement),
        "Deribit worst BTC": np.asarray(d.worst_standard),
        "Deribit IM BTC": np.asarray(d.initial_margin),
        "Deribit MM BTC": np.asarray(d.maintenance_margin),
        "Deribit IM USD": np.asarray(d.initial_margin) * index,
        "net/gross": np.where(np.asarray(iso) > 0, np.asarray(d.worst_standard) / np.where(np.asarray(iso) > 0,
                                                                                            np.asarray(iso), 1), 1),
    }, index=names)

    rng = np.random.default_rng(cfg.seed)
    nb, nl = int(cfg.n_random_books), int(cfg.legs_per_book)
    rb = np.zeros((nb, n_i))
    cols = rng.integers(0, n_i, (nb, nl))
    sizes = rng.choice([-1, 1], (nb, nl)) * rng.uniform(0.1, 5.0, (nb, nl))
    np.add.at(rb, (np.repeat(np.arange(nb), nl), cols.ravel()), sizes.ravel())
    d2, s2, iso2 = margins(rb)
    ratio = np.where(np.asarray(iso2) > 0, np.asarray(d2.worst_standard) / np.maximum(np.asarray(iso2), 1e-300), 1)
    rand = {
        "n_books": nb,
        "legs": nl,
        "deribit_im_btc_median": float(np.median(d2.initial_margin)),
        "deribit_im_btc_p99": float(np.quantile(d2.initial_margin, 0.99)),
        "span_req_usd_median": float(np.median(s2.requirement)),
        "span_usd_over_deribit_usd_median": float(np.median(
            np.asarray(s2.requirement)[np.asarray(d2.initial_margin) > 0]
            / (np.asarray(d2.initial_margin)[np.asarray(d2.initial_margin) > 0] * index))),
        "net_gross_median": float(np.median(ratio)),
        "portfolio_le_isolated": bool(np.all(np.asarray(d2.worst_standard) <= np.asarray(iso2) * (1 + 1e-9) + 1e-12)),
    }
    return {"summary": summary, "books": table, "random": rand, "index": index, "n_instruments": n_i}


def format_report(res: dict) -> str:
    fmt = lambda x: f"{x:.3g}"  # noqa: E731
    out = ["Deribit BTC chain 2020-05-14: repricing from mark IV (model - Deribit; price in BTC, vega USD/vol pt, "
           "theta USD/day)", res["summary"].to_string(float_format=fmt), "",
           f"Sample books ({res['n_instruments']} instruments: options with > 1 day to expiry + BTC-PERPETUAL; "
           f"index {res['index']:.2f} USD)", res["books"].to_string(float_format=lambda x: f"{x:,.4f}"), "",
           "Random books: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in res["random"].items())]
    return "\n".join(out)


@hydra_app("reprice_chain")
def main(cfg: DictConfig) -> dict:
    res = run(cfg)
    print(format_report(res))
    return res


if __name__ == "__main__":
    main()
