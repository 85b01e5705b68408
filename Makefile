# Two commands on a fresh machine: `make run` (the demo) and `make test` (everything).
# Both are idempotent: stamps skip work that is already done.

VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
RUN_STAMP  := $(VENV)/.stamp-run
DEV_STAMP  := $(VENV)/.stamp-dev
SYS_STAMP  := $(VENV)/.stamp-sys
PROTO_STAMP := protos/.stamp

.PHONY: run test lint typecheck unit bench bench-deps bench-e2e bench-grpc deps native protos clean

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

# The data paths (codecs, relays, routing) compiled with mypyc (proxy/native.py): rebuilt when its sources change,
# removed (pure Python runs) when mypy is not installed. Never a stale build.
native: | $(PY)
	$(PY) -m proxy.native

run: $(RUN_STAMP) native
	$(VENV)/bin/laneway demo

deps: $(DEV_STAMP) $(SYS_STAMP)
	$(PY) -m proxy.native

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

# Bench-only tools (not test dependencies): Debian haproxy, the TCP-mode yardstick of the
# end-to-end benchmark, and py-spy for its optional profile (--profile SECONDS).
# bench/e2e_grpc.py also needs Debian nginx (grpc_pass) and h2load (nghttp2-client); a
# freshly installed nginx service is stopped at once (the benchmark runs its own).
bench-deps: $(DEV_STAMP)
	command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || \
		(apt-get update -qq && apt-get install -y -qq haproxy)
	command -v h2load >/dev/null 2>&1 && (command -v nginx >/dev/null 2>&1 || \
		test -x /usr/sbin/nginx) || \
		(apt-get update -qq && apt-get install -y -qq nginx nghttp2-client && \
		(service nginx stop >/dev/null 2>&1 || true))
	$(PIP) install -q py-spy

# End-to-end Dubbo: direct vs laneway vs haproxy TCP mode vs bare trio relays (issue 5).
bench-e2e: bench-deps native
	$(PY) -m bench.e2e_dubbo

# End-to-end gRPC: direct vs laneway vs nginx grpc_pass vs haproxy h2, h2load (issue 6).
bench-grpc: bench-deps native
	$(PY) -m bench.e2e_grpc --profile 8

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tests/interop/node/node_modules
	find proxy routing -name '*.so' -delete; rm -f proxy/.native-stamp
