# castream — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch is pinned exactly and installed first: a looser spec pulls the CUDA wheels.
# Everything: engine, dashboard, offline, cluster (the `all` extra) and the test tools (`dev`).
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/castream demo $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check acquisition engine ui offline tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint docker/Dockerfile.cpu docker/Dockerfile.gpu

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/ingest_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
