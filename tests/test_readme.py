"""Every command in README.md runs: the code blocks and the entry-point table, each on tiny settings.

``COMMANDS`` maps each README command (as written, ``.venv/bin/python`` shortened to ``python``, comments dropped)
to how it is run here: extra overrides that shrink it (an override whose key the command already sets is left
out), README placeholders replaced by files made here, commands to run first in the same directory, the exit
status it must give. A command in the README that is missing from ``COMMANDS`` fails
``test_every_readme_command_is_in_the_table``, so the README cannot drift from the code; a command in the table
that the README no longer shows fails too. Adding a command = one line in ``COMMANDS``.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@dataclass(frozen=True)
class Spec:
    """How one README command is run: ``extra`` overrides (tiny settings), ``files``: README placeholder -> name
    of a file made by the ``inputs`` fixture or ``glob:<pattern>`` (newest match in the run directory), ``before``:
    README commands run first in the same directory, ``status``: expected exit status, ``slow``: only in
    ``make test-slow``, ``skip``: why it is not run, ``xfail``: what it waits for."""

    extra: str = ""
    files: dict = field(default_factory=dict)
    before: tuple = ()
    status: int = 0
    slow: bool = False
    skip: str | None = None
    xfail: str | None = None


# tiny settings, per app
MAIN = ("train_end=2020-12-31 start=2020-10-01 eval_start=2021-01-01 end=2021-03-31 +models.regime_net.max_epochs=2 "
        "data.use_hourly=false data.use_funding=false book=tiny book.n_accounts=50 "
        "oracle_study.enabled=false plot=false solvency.n_accounts=8 solvency.executor=local")
BACKTEST = ("train_end=2020-12-31 start=2020-10-01 eval_start=2021-01-01 end=2021-03-31 data.use_hourly=false "
            "data.use_funding=false book=tiny book.n_accounts=50 oracle_study.enabled=false plot=false "
            "+models.regime_net.max_epochs=2")
FORECAST = ("train_end=2020-06-30 test_start=2020-07-01 test_end=2020-09-30 refit_every=400 baselines=[ewma] "
            "data.use_hourly=false data.use_funding=false plot=false")
SWEEP_FORECAST = "python -m experiments.forecast -m model=ewma,garch,har,hmm,regime_net seed=0,1"
SWEEP_BACKTEST = ("python -m experiments.backtest -m policy=reactive,predictive policy.buffer=0,0.25 compare=[] "
                  "hydra/launcher=joblib_local")
TUNE = "python -m experiments.tune_policy -m"
TUNE_TINY = ("book=tiny book.n_accounts=50 end=2019-03-31 liquidation.hourly_comparison=false "
             "+models.regime_net.max_epochs=2 +models.regime_net_k.max_epochs=2")
MARGIN_BOOK_GENERATE = "python -m experiments.margin_book mode=generate book_dir=book generate.n_accounts=100000"
PROVE = "python -m experiments.prove account.path=my_account.csv context.venue=my-venue"

COMMANDS: dict[str, Spec] = {
    "make run": Spec(MAIN, slow=True),
    "make test": Spec(skip="the test suite itself"),
    'make run ARGS="horizon=5 train_end=2019-12-31"': Spec(MAIN + " compare=[predictive] proof.enabled=false",
                                                           slow=True),
    'make run ARGS="book.n_accounts=2000 compare=[reactive,predictive] +models.regime_net.max_epochs=80"':
        Spec(MAIN + " proof.enabled=false", slow=True),
    "python -m experiments.run --cfg job": Spec(),
    "python -m experiments.run horizon=abc": Spec(status=2),
    "python -m experiments.run coverage=1.5": Spec(status=2),
    "python -m experiments.run data.daily.BTC=/data/btc_1d.csv data.hourly.BTC=/data/btc_1h.parquet":
        Spec(MAIN + " data.use_hourly=true compare=[predictive] proof.enabled=false",
             files={"/data/btc_1d.csv": "btc_1d.csv", "/data/btc_1h.parquet": "btc_1h.parquet"}, slow=True),
    "python -m experiments.run assets=[SOL] data.daily.SOL=/data/sol_1d.csv data.use_hourly=false "
    "data.use_funding=false train_end=2021-06-30 start=2021-01-01 eval_start=2021-07-01":
        Spec("end=2021-08-31 +models.regime_net.max_epochs=2 book=tiny book.n_accounts=50 proof.enabled=false "
             "oracle_study.enabled=false plot=false", files={"/data/sol_1d.csv": "sol_1d.csv"}),
    "python -m experiments.forecast model=regime_net horizon=5":
        Spec(FORECAST + " model.max_epochs=2 model.n_ensemble=1", slow=True),
    SWEEP_FORECAST: Spec(FORECAST, slow=True),
    "python -m experiments.aggregate_forecasts multirun/forecast/<date>/<time>":
        Spec(files={"multirun/forecast/<date>/<time>": "glob:multirun/forecast/*/*"}, before=(SWEEP_FORECAST,),
             slow=True),
    "python -m experiments.backtest policy=reactive policy.buffer=0.25": Spec(BACKTEST + " compare=[]", slow=True),
    SWEEP_BACKTEST: Spec(BACKTEST, slow=True),
    "python -m experiments.aggregate_backtest multirun/backtest/<date>/<time>":
        Spec(files={"multirun/backtest/<date>/<time>": "glob:multirun/backtest/*/*"}, before=(SWEEP_BACKTEST,),
             slow=True),
    PROVE: Spec(files={"my_account.csv": "account.csv"}),
    "python -m experiments.verify bundle.json --statement statement.json":
        Spec(files={"bundle.json": "glob:outputs/prove/*/*/bundle.json",
                    "statement.json": "glob:outputs/prove/*/*/statement.json"}, before=(PROVE,)),
    "python -m experiments.reprice_chain": Spec("n_random_books=100", slow=True),
    "make bench": Spec(slow=True),
    "python -m experiments.forecast model=regime_net horizon=5 assets=[BTC,ETH,BNB] holdout=BNB":
        Spec(FORECAST + " model.max_epochs=2 model.n_ensemble=1", slow=True),
    "python -m experiments.backtest policy=predictive_smooth liquidation.frequency=hourly":
        Spec(BACKTEST.replace("data.use_hourly=false", "data.use_hourly=true")  # hourly steps need hourly bars
             + " compare=[] liquidation.hourly_comparison=false", slow=True),
    TUNE: Spec(TUNE_TINY + " hydra.sweeper.n_trials=2 hydra.sweeper.n_jobs=1", slow=True),
    "python -m experiments.tune_policy mode=pareto sweep_dir=multirun/tune_policy/<date>/<time>":
        Spec(TUNE_TINY, files={"multirun/tune_policy/<date>/<time>": "glob:multirun/tune_policy/*/*"},
             before=(TUNE,), slow=True),
    "python -m experiments.tune_policy mode=test":
        Spec(TUNE_TINY + " test.book.n_accounts=50 test.start=2020-10-01 test.end=2021-03-31", slow=True),
    MARGIN_BOOK_GENERATE: Spec(),
    "python -m experiments.margin_book book_dir=book": Spec(before=(MARGIN_BOOK_GENERATE,)),
    "python -m experiments.solvency": Spec("input.book.n_accounts=4 ray.executor=local"),
    "python -m experiments.verify_solvency PUBLIC.json --account INCLUSION.json":
        Spec(files={"PUBLIC.json": "glob:outputs/solvency/*/*/public/PUBLIC.json",
                    "INCLUSION.json": "glob:outputs/solvency/*/*/inclusion/*.json"},
             before=("python -m experiments.solvency",)),
}

# `make bench` runs these (read from the Makefile); tiny settings per module
BENCH = {
    "experiments.bench_margin": "n_accounts=2000 n_options=2000 loop_sample=20 repeats=1",
    "experiments.bench_proofs": "repeats=1 account_repeats=1 batch_size=2 pyecc=false ipa_sizes=[64]",
    "experiments.bench_backtest": "--accounts 200 --start 2021-01-01 --end 2021-02-28",
    "experiments.bench_regime_net": "--horizon 1 --presets regime_net_fast",
    "experiments.bench_solvency": "--accounts 8 --speedup-accounts 4 --inclusion-sample 2",
    "experiments.margin_book": "mode=bench book_dir=bench_book generate.n_accounts=2000 bench.in_memory_accounts=2000",
}


def readme_commands(text: str) -> list[str]:
    """Commands in the README's bash blocks and in the entry-point table (backticked ``python -m`` / ``make``)."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                found.append(line)
    table = text[text.index("## The other entry points"):]
    table = table[:table.index("\n## ")] if "\n## " in table else table
    for row in (line for line in table.splitlines() if line.startswith("| ")):
        found += [c for c in re.findall(r"`([^`]+)`", row) if c.startswith(("python -m ", "make "))]
    out = []
    for cmd in found:
        cmd = " ".join(cmd.replace(".venv/bin/python", "python").split())
        if cmd not in out:
            out.append(cmd)
    return out


def argv_of(cmd: str) -> list[str]:
    """README command -> argv (``make run ARGS=...`` is what the Makefile runs: ``python -m experiments.run``)."""
    words = shlex.split(cmd)
    if words[:2] == ["make", "run"]:
        args = shlex.split(words[2][len("ARGS="):]) if len(words) > 2 else []
        return [sys.executable, "-m", "experiments.run", *args]
    assert words[:2] == ["python", "-m"], cmd
    return [sys.executable, *words[1:]]


def _key(override: str) -> str:
    return override.lstrip("+~").split("=")[0]


def with_extra(argv: list[str], extra: str) -> list[str]:
    """Append ``extra`` overrides whose keys the command does not set already (a README value wins)."""
    own = {_key(a) for a in argv[3:] if "=" in a or a.startswith("~")}
    return argv + [o for o in shlex.split(extra) if _key(o) not in own]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """The files README placeholders stand for: BTC copies, a SOL-like daily file, an account."""
    from predictive.data import embedded_path

    d = tmp_path_factory.mktemp("readme_inputs")
    btc = pd.read_csv(embedded_path("BTC"))
    btc.to_csv(d / "btc_1d.csv", index=False)
    hourly = pd.read_csv(embedded_path("BTC", "1h"))
    hourly[(hourly["date"] >= "2020-01-01") & (hourly["date"] < "2021-07-01")].to_parquet(d / "btc_1h.parquet")
    sol = btc[btc["date"] >= "2020-04-10"].copy()  # SOL's real history starts 2020-04-10; BTC bars scaled
    for col in ("open", "high", "low", "close"):
        sol[col] = sol[col] / 500.0
    sol.to_csv(d / "sol_1d.csv", index=False)
    pd.DataFrame([("collateral", "USDC", 5000.0, 1.0, 0.0), ("collateral", "BTC", 0.1, 60000.0, 0.05),
                  ("position", "BTC-PERP", 0.2, 60000.0, 0.0)],
                 columns=["kind", "name", "amount", "price", "haircut"]).to_csv(d / "account.csv", index=False)
    return {p.name: p for p in d.iterdir()}


def run_command(cmd: str, cwd: Path, inputs: dict[str, Path]) -> subprocess.CompletedProcess:
    spec = COMMANDS[cmd]
    for first in spec.before:
        done = run_command(first, cwd, inputs)
        assert done.returncode == COMMANDS[first].status, (first, done.stderr[-2000:])
    argv = argv_of(cmd)
    for placeholder, name in spec.files.items():
        if name.startswith("glob:"):
            matches = sorted(cwd.glob(name[len("glob:"):]), key=lambda p: p.stat().st_mtime)
            assert matches, f"{cmd}: nothing matches {name} (run by {spec.before})"
            target = matches[-1]
        else:
            target = inputs[name]
        argv = [a.replace(placeholder, str(target)) for a in argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(with_extra(argv, spec.extra), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=1800)


def _params():
    for cmd, spec in COMMANDS.items():
        marks = []
        if spec.slow:
            marks.append(pytest.mark.slow)
        if spec.skip:
            marks.append(pytest.mark.skip(reason=spec.skip))
        if spec.xfail:
            marks.append(pytest.mark.xfail(reason=spec.xfail, strict=False))
        yield pytest.param(cmd, marks=marks, id=re.sub(r"[^A-Za-z0-9]+", "_", cmd).strip("_")[:70])


def test_every_readme_command_is_in_the_table():
    shown = readme_commands(README.read_text())
    missing = [c for c in shown if c not in COMMANDS]
    assert not missing, f"README commands without a row in tests/test_readme.py COMMANDS: {missing}"
    stale = [c for c in COMMANDS if c not in shown]
    assert not stale, f"COMMANDS rows the README no longer shows: {stale}"


def test_make_targets_run_what_the_table_assumes():
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PY) -m experiments.run $(ARGS)" in makefile
    bench = re.search(r"^bench:.*\n((?:\t.*\n)+)", makefile, flags=re.M).group(1)
    assert sorted(re.findall(r"-m (experiments\.\w+)", bench)) == sorted(BENCH)


@pytest.mark.parametrize("cmd", list(_params()))
def test_readme_command_runs(cmd, tmp_path, inputs):
    if cmd == "make bench":
        for module, tiny in BENCH.items():
            argv = [sys.executable, "-m", module, *shlex.split(tiny)]
            done = subprocess.run(argv, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                  capture_output=True, text=True, timeout=1800)
            assert done.returncode == 0, (module, done.stderr[-3000:])
        return
    done = run_command(cmd, tmp_path, inputs)
    assert done.returncode == COMMANDS[cmd].status, done.stderr[-3000:]
    if COMMANDS[cmd].status == 2:  # a user's mistake: one line, no traceback
        assert done.stderr.strip().startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
