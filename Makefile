# Two set-up commands on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-slow bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[test,cluster]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m experiments.run $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(ARGS)

bench: $(STAMP)
	$(PY) -m experiments.bench_margin
	$(PY) -m experiments.bench_proofs
	$(PY) -m experiments.bench_backtest
	$(PY) -m experiments.bench_regime_net
	$(PY) -m experiments.bench_solvency
	$(PY) -m experiments.margin_book mode=bench

clean:
	rm -rf $(VENV) outputs multirun
