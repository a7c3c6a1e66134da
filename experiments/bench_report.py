"""Benchmark and study tables with a verdict beside each target, written as JSON and Markdown.

Every benchmark (``bench_margin``, ``bench_proofs``, ``bench_backtest``, ``bench_regime_net``, ...) and
``reprice_chain`` builds a list of :class:`Row` and calls :func:`write_report`, so that a reader sees each figure,
its target and whether it was met, in the terminal and in ``<out_dir>/<name>.json`` / ``<name>.md``.

Example::

    rows = [Row("fused kernel, 1e6 x 64 x 32", 34.0, "ms", target="<= 2 x streaming", met=34.0 <= 2 * 13.7)]
    write_report("bench_margin", rows, out_dir, context={"backend": "cpu"})
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One measured figure.

    Attributes:
        what: what was measured (a short sentence).
        value: the measured number (or a string when the figure is not a number).
        unit: unit of ``value`` ("ms", "accounts/s", "bytes", "x", ...).
        target: the target as text ("<= 250 ms"); empty when the row is for comparison only.
        met: True / False when there is a target, None otherwise.
        note: what it was compared with, in the same run.
    """

    what: str
    value: Any
    unit: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    name: str
    rows: list[Row]
    context: dict = field(default_factory=dict)

    def verdict(self) -> str:
        judged = [r.met for r in self.rows if r.met is not None]
        if not judged:
            return "no targets"
        return f"{sum(judged)}/{len(judged)} targets met"


def machine_context() -> dict:
    """CPU count, load average and platform: benchmark figures are read against the machine they ran on."""
    ctx = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
           "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        ctx["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every OS
        pass
    return ctx


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e6:
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.1f}"
        return f"{value:.3e}"
    return str(value)


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "-"}[met]


def to_markdown(report: Report) -> str:
    """The report as a Markdown table: what | measured | target | verdict | note."""
    lines = [f"# {report.name}", "", f"**Verdict: {report.verdict()}**", "",
             "| what | measured | target | verdict | note |", "|---|---:|---|---|---|"]
    for r in report.rows:
        measured = f"{_fmt(r.value)} {r.unit}".strip()
        lines.append(f"| {r.what} | {measured} | {r.target or '-'} | {_verdict(r.met)} | {r.note} |")
    if report.context:
        lines += ["", "Context: " + ", ".join(f"{k}={v}" for k, v in report.context.items())]
    return "\n".join(lines) + "\n"


def to_text(report: Report) -> str:
    """A fixed-width table for the terminal."""
    head = ("what", "measured", "target", "verdict")
    body = [(r.what, f"{_fmt(r.value)} {r.unit}".strip(), r.target or "-", _verdict(r.met)) for r in report.rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(4)]
    out = [f"{report.name}: {report.verdict()}"]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [head, *body]]
    return "\n".join(out)


def write_report(name: str, rows: list[Row], out_dir: str | Path, context: dict | None = None,
                 extra: dict | None = None, echo: bool = True) -> Report:
    """Write ``<out_dir>/<name>.json`` and ``<out_dir>/<name>.md`` and (``echo``) print the text table.

    Args:
        name: report name, also the file stem.
        rows: the measured figures.
        out_dir: directory to write into (created if missing).
        context: facts about the run (machine, sizes); :func:`machine_context` is merged in.
        extra: any raw figures to keep in the JSON under ``"raw"``.

    Returns:
        The :class:`Report`.
    """
    report = Report(name, list(rows), {**machine_context(), **(context or {})})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "verdict": report.verdict(), "context": report.context,
               "rows": [asdict(r) for r in report.rows], "raw": extra or {}}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    (out / f"{name}.md").write_text(to_markdown(report))
    if echo:
        print(to_text(report))
        print(f"wrote {out / (name + '.json')} and {out / (name + '.md')}")
    return report
