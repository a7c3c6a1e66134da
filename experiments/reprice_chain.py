"""Reprice any Deribit option chain (BTC or ETH, any date) and margin sample books drawn from that chain.

1. Loads the chain (``chain_path``; default the embedded BTC 2020-05-14 snapshot). Where ``mark_iv`` is empty the
   IV is backed out of the mark price; rows that cannot be used are listed with file line, column, value and
   reason (``on_bad_rows=skip``) or stop the run (``on_bad_rows=raise``).
2. Reprices every option from its IV (Black-76, float64) and compares with the published mark price and Greeks;
   rows whose Greeks disagree beyond ``greek_thresholds`` are FLAGGED (listed), not asserted on.
3. Builds sample books from the chain's OWN expiries and strikes (front / middle / back expiry, ATM and OTM
   strikes nearest to given moneyness) plus the currency's perpetual, and random books, and computes CME SPAN
   and Deribit portfolio-margin IM / MM and the net-vs-gross ratio (portfolio margin / sum of isolated position
   margins under the same Deribit scenarios).

Writes ``reprice_chain.json`` / ``reprice_chain.md`` (figures with verdicts, via :mod:`experiments.bench_report`,
the tables appended to the Markdown) into the Hydra run directory.
Run: ``python -m experiments.reprice_chain chain_path=/data/DERIBIT_ETH_options_2021-03-05.csv``.
"""
from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

import margin
from experiments._cli import hydra_app
from experiments.bench_report import Row, write_report
from margin.valuation.chain import chain_instruments, flag_greeks, load_deribit_chain, reprice_chain, repricing_summary
from margin.validation import MarginInputError


def _expiry_picks(live: pd.DataFrame, target_days) -> dict:
    """Maps each target horizon (days) to the chain's expiry nearest to it: ``{label: Timestamp}``."""
    exps = live.groupby("expiry_utc")["T"].first() * 365.0
    return {label: exps.index[int(np.argmin(np.abs(exps.to_numpy() - d)))] for label, d in target_days.items()}


def _pick(live: pd.DataFrame, expiry, moneyness: float, kind: str) -> int:
    """Row (position in ``live``) of the ``kind`` option of ``expiry`` whose strike is nearest to moneyness x F."""
    sel = live[(live["expiry_utc"] == expiry) & (live["option_type"] == kind)]
    if sel.empty:
        raise MarginInputError("chain", f"no {kind} option at expiry {expiry}")
    f = float(sel["underlying_price"].median())
    return int((sel["strike"] - moneyness * f).abs().idxmin())


def sample_books(live: pd.DataFrame, currency: str, spec) -> tuple[list[str], list[list[tuple[int, float]]]]:
    """Named books from the chain's own expiries and strikes.

    Args:
        live: the options of the book universe (index = instrument column); the perpetual is column ``len(live)``.
        spec: ``{"expiry_days": {front, mid, back}, "books": [{name, legs: [[expiry_label | "perp", moneyness,
            "C" | "P" | "", quantity], ...]}]}`` (``conf/reprice_chain.yaml``).

    Returns:
        ``(names, books)``: each book a list of ``(instrument column, quantity)``; names carry the instruments.
    """
    picks = _expiry_picks(live, dict(spec["expiry_days"]))
    perp = len(live)
    names, books = [], []
    for b in spec["books"]:
        legs, desc = [], []
        for label, m, kind, q in b["legs"]:
            if label == "perp":
                legs.append((perp, float(q)))
                desc.append(f"{float(q):+g} {currency}-PERPETUAL")
            else:
                j = _pick(live, picks[label], float(m), kind)
                legs.append((j, float(q)))
                desc.append(f"{float(q):+g} {live['instrument_name'].iloc[j]}")
        names.append(f"{b['name']}: " + ", ".join(desc))
        books.append(legs)
    return names, books


def _span_params(cfg, currency: str, index: float):
    """SPAN parameters: the named product of ``conf/margin/span.yaml`` or, when ``span_product`` is null, the
    relative (fraction-of-index) parameters of ``span_relative`` (illustrative, like the BTC product)."""
    if cfg.span_product:
        sp = cfg.span.products[cfg.span_product]
        return margin.SpanParams.from_config(cfg.span, [cfg.span_product]), float(sp.price_scan_range), \
            float(sp.vol_scan_range)
    rel = cfg.span_relative
    psr = float(rel.price_scan_range) * index
    params = margin.SpanParams(
        price_scan_range=[psr], vol_scan_range=[float(rel.vol_scan_range)],
        extreme_multiple=float(cfg.span.extreme_multiple), extreme_cover=float(cfg.span.extreme_cover),
        look_ahead_days=float(cfg.span.look_ahead_days),
        short_option_minimum=[float(rel.short_option_minimum) * index],
        intra_spread_charge=[float(rel.intra_spread_charge) * index], som_basis=str(cfg.span.som_basis))
    return params, psr, float(rel.vol_scan_range)


def run(cfg: DictConfig) -> dict:
    """Loads, reprices and margins; returns the tables and figures (prints nothing)."""
    df = load_deribit_chain(cfg.chain_path, on_bad_rows=cfg.on_bad_rows)
    rejected = df.attrs.get("rejected", pd.DataFrame())
    currencies = sorted(df["underlying"].astype(str).unique())
    if len(currencies) != 1:
        raise MarginInputError(f"{df.attrs.get('path')}: column underlying", "one currency per chain file",
                               None, currencies)
    currency = currencies[0]
    if currency not in cfg.deribit:
        raise MarginInputError("deribit", f"no Deribit parameters for {currency}; have {list(cfg.deribit)}")
    repriced = reprice_chain(df)
    summary = repricing_summary(repriced)
    th = {k: tuple(v) for k, v in OmegaConf.to_container(cfg.greek_thresholds).items()}
    flags = flag_greeks(repriced, th)

    live = df[df["T"] > cfg.min_days / 365.0].reset_index(drop=True)
    if live.empty:
        raise MarginInputError(f"{df.attrs.get('path')}", f"no option with more than {cfg.min_days} days to expiry")
    opt_inst, fwd_opt, vols_opt = chain_instruments(live)
    index = float(df["index_price"].median())
    perp = margin.Instruments.create(["inverse_perpetual"], names=[f"{currency}-PERPETUAL"])
    inst = margin.Instruments.concat([opt_inst, perp])
    fwd = np.r_[fwd_opt, index]
    vols = np.r_[vols_opt, 0.0]
    n_i = inst.size

    dparams = margin.DeribitParams.from_config(cfg.deribit[currency])
    dscen = margin.deribit_scenarios(inst, fwd, vols, dparams)
    g = margin.black76_greeks(fwd_opt, live["strike"].to_numpy(), live["T"].to_numpy(), vols_opt,
                              live["is_call"].to_numpy())
    deltas = np.r_[np.asarray(g.delta), 1.0]
    sparams, psr, vsr = _span_params(cfg, currency, index)
    sscen = margin.span_scenarios(inst, fwd, vols, [psr], [vsr], extreme_multiple=sparams.extreme_multiple,
                                  extreme_cover=sparams.extreme_cover, look_ahead_days=sparams.look_ahead_days)
    values_usd = np.r_[live["mark_price"].to_numpy() * fwd_opt, 0.0]

    names, legs = sample_books(live, currency, OmegaConf.to_container(cfg.sample_books))
    books = np.zeros((len(legs), n_i))
    for r, book in enumerate(legs):
        for j, q in book:
            books[r, j] += q

    def margins(x):
        d = margin.deribit_margin(x, inst, dscen, fwd, dparams, deltas=deltas)
        s = margin.span_requirement(x, inst, sscen, sparams, option_values=values_usd, deltas=deltas)
        iso = margin.isolated_margin(x, dscen.select("standard"), dtype=jnp.float64)
        return d, s, iso

    d, s, iso = margins(books)
    iso_np = np.asarray(iso)
    table = pd.DataFrame({
        "SPAN scan USD": np.asarray(s.scan_risk[:, 0]),
        "SPAN req USD": np.asarray(s.requirement),
        f"Deribit worst {currency}": np.asarray(d.worst_standard),
        f"Deribit IM {currency}": np.asarray(d.initial_margin),
        f"Deribit MM {currency}": np.asarray(d.maintenance_margin),
        "Deribit IM USD": np.asarray(d.initial_margin) * index,
        "net/gross": np.where(iso_np > 0, np.asarray(d.worst_standard) / np.where(iso_np > 0, iso_np, 1), 1),
    }, index=names)

    rng = np.random.default_rng(cfg.seed)
    nb, nl = int(cfg.n_random_books), int(cfg.legs_per_book)
    rb = np.zeros((nb, n_i))
    cols = rng.integers(0, n_i, (nb, nl))
    sizes = rng.choice([-1, 1], (nb, nl)) * rng.uniform(0.1, 5.0, (nb, nl))
    np.add.at(rb, (np.repeat(np.arange(nb), nl), cols.ravel()), sizes.ravel())
    d2, s2, iso2 = margins(rb)
    im2 = np.asarray(d2.initial_margin)
    ratio = np.where(np.asarray(iso2) > 0, np.asarray(d2.worst_standard) / np.maximum(np.asarray(iso2), 1e-300), 1)
    rand = {
        "n_books": nb,
        "legs": nl,
        f"deribit_im_{currency.lower()}_median": float(np.median(im2)),
        f"deribit_im_{currency.lower()}_p99": float(np.quantile(im2, 0.99)),
        "span_req_usd_median": float(np.median(s2.requirement)),
        "span_usd_over_deribit_usd_median": float(np.median(np.asarray(s2.requirement)[im2 > 0]
                                                            / (im2[im2 > 0] * index))) if (im2 > 0).any() else np.nan,
        "net_gross_median": float(np.median(ratio)),
        "portfolio_le_isolated": bool(np.all(np.asarray(d2.worst_standard) <= np.asarray(iso2) * (1 + 1e-9) + 1e-12)),
        "mm_is_factor_x_im": bool(np.allclose(np.asarray(d2.maintenance_margin), dparams.mm_factor * im2,
                                              rtol=1e-12, atol=0)),
    }
    snap = pd.to_datetime(df["snapshot_time_utc"]).min()
    return {"summary": summary, "books": table, "random": rand, "index": index, "n_instruments": n_i,
            "currency": currency, "snapshot": str(snap), "path": df.attrs.get("path"), "rejected": rejected,
            "flags": flags, "n_rows": len(df), "n_backed_out": int((df["iv_source"] == "mark_price").sum()),
            "expiries": sorted(live["expiry_utc"].dt.strftime("%Y-%m-%d").unique())}


def report_rows(res: dict, cfg) -> list:
    """Figures with targets (verdicts) for :func:`experiments.bench_report.write_report`."""
    allrow = res["summary"].loc["ALL"]
    fit_n, fit_d = (int(x) for x in allrow["iv_fit"].split("/"))
    cur = res["currency"]
    flags = res["flags"]
    by_greek = flags.groupby("greek").size().to_dict() if len(flags) else {}
    return [
        Row(f"rows used / rejected ({res['path']})", f"{res['n_rows']} / {len(res['rejected'])}", "",
            note=f"{res['n_backed_out']} IVs backed out of mark prices"),
        Row("median |model - mark| price, all expiries", float(allrow["med|price|"]), cur,
            f"<= {cfg.targets.median_price_error} {cur}", float(allrow["med|price|"]) <= cfg.targets.median_price_error),
        Row("max |model - mark| price, all expiries", float(allrow["max|price|"]), cur,
            f"<= {cfg.targets.max_price_error} {cur}", float(allrow["max|price|"]) <= cfg.targets.max_price_error),
        Row("IV backed out of the mark price (converged)", fit_n / max(fit_d, 1), "fraction",
            note=f"{fit_n}/{fit_d}; zero or intrinsic-only marks cannot fit"),
        Row("rows whose published Greeks disagree with Black-76 (flagged, not asserted)", len(flags), "flags",
            note=", ".join(f"{k}: {v}" for k, v in sorted(by_greek.items())) or "none"),
        Row("portfolio <= sum of isolated margins, random books", res["random"]["portfolio_le_isolated"], "",
            "True", res["random"]["portfolio_le_isolated"]),
        Row("Deribit MM = mm_factor x IM, random books", res["random"]["mm_is_factor_x_im"], "", "True",
            res["random"]["mm_is_factor_x_im"]),
        Row("median net/gross ratio, random books", res["random"]["net_gross_median"], "",
            note=f"{res['random']['n_books']} books x {res['random']['legs']} legs"),
    ]


def _md(df: pd.DataFrame, index: bool = True, fmt: str = ".4g") -> str:
    """A DataFrame as a Markdown table (pandas' ``to_markdown`` needs the optional ``tabulate``)."""
    d = df.reset_index() if index else df
    cell = lambda v: format(v, fmt) if isinstance(v, (float, np.floating)) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(map(str, d.columns)) + " |", "|" + "---|" * len(d.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines)


def format_tables(res: dict, max_rows: int = 20) -> str:
    """The repricing table per expiry, the sample books, the rejected rows and the flagged Greeks (Markdown)."""
    cur = res["currency"]
    out = [f"## {cur} chain {res['snapshot']}: repricing from the IV (model - Deribit; price in {cur}, "
           "vega USD/vol pt, theta USD/day)", "", _md(res["summary"], fmt=".3g"), "",
           f"## Sample books ({res['n_instruments']} instruments: options with > min_days to expiry + "
           f"{cur}-PERPETUAL; index {res['index']:.2f} USD; expiries {', '.join(res['expiries'])})", "",
           _md(res["books"], fmt=",.4f"), "",
           "Random books: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in res["random"].items()), ""]
    rej = res["rejected"]
    out += [f"## Rows not used ({len(rej)})", ""]
    out += [_md(rej.head(max_rows), index=False) if len(rej) else "none", ""]
    if len(rej) > max_rows:
        out += [f"... and {len(rej) - max_rows} more (all in the JSON)", ""]
    fl = res["flags"]
    out += [f"## Published Greeks flagged ({len(fl)}; |model - published| > absolute + relative x |published|)", ""]
    out += [_md(fl.head(max_rows), index=False) if len(fl) else "none", ""]
    if len(fl) > max_rows:
        out += [f"... and {len(fl) - max_rows} more (all in the JSON)", ""]
    return "\n".join(out)


def write(res: dict, cfg, out_dir) -> None:
    """Writes ``reprice_chain.json`` / ``.md`` (figures and verdicts, then the tables) into ``out_dir``."""
    extra = {"summary": res["summary"].reset_index().to_dict(orient="records"),
             "books": res["books"].reset_index(names="book").to_dict(orient="records"),
             "random": res["random"], "rejected": res["rejected"].to_dict(orient="records"),
             "flags": res["flags"].to_dict(orient="records")}
    write_report("reprice_chain", report_rows(res, cfg), out_dir,
                 context={"chain": res["path"], "currency": res["currency"], "snapshot": res["snapshot"]},
                 extra=extra)
    md = Path(out_dir) / "reprice_chain.md"
    md.write_text(md.read_text() + "\n" + format_tables(res))


@hydra_app("reprice_chain")
def main(cfg: DictConfig) -> dict:
    from hydra.core.hydra_config import HydraConfig

    res = run(cfg)
    print(format_tables(res))
    write(res, cfg, HydraConfig.get().runtime.output_dir)
    return res


if __name__ == "__main__":
    main()
