# Two commands on a fresh machine: `make run` (the demo) and `make test` (everything).
# Both are idempotent: stamps skip work that is already done.

VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
RUN_STAMP  := $(VENV)/.stamp-run
DEV_STAMP  := $(VENV)/.stamp-dev
SYS_STAMP  := $(VENV)/.stamp-sys
PROTO_STAMP := protos/.stamp

.PHONY: run test lint typecheck unit bench deps protos clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PIP) install -q -e '.[dev,zk]'
	touch $@ $(RUN_STAMP)

# Debian packages and npm peers the tests talk to (ZooKeeper, Java Hessian, Dubbo peers).
$(SYS_STAMP): tests/setup_deps.sh tests/interop/node/package.json | $(PY)
	bash tests/setup_deps.sh
	touch $@

protos: $(DEV_STAMP)
	$(PY) -m protos.build

run: $(RUN_STAMP)
	$(VENV)/bin/laneway demo

deps: $(DEV_STAMP) $(SYS_STAMP)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: deps
	$(VENV)/bin/mypy

unit: deps
	$(VENV)/bin/pytest -q tests/unit

test: deps lint typecheck
	$(VENV)/bin/pytest -q

bench: deps
	$(VENV)/bin/pytest -q bench --benchmark-only

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tests/interop/node/node_modules
