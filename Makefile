# corral: two commands on a fresh machine -- `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-ray test chaos venv clean bench

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "corral needs python3 >= 3.11, found " + sys.version.split()[0])'
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3-venv (Debian ships venv separately)"; \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	  else echo "error: '$(PYTHON) -m venv' failed; install python3-venv (apt-get install python3-venv)"; exit 1; fi; }

$(STAMP): $(VENV)/bin/python pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,ray]'
	@# Byte-compile now: with PYTHONDONTWRITEBYTECODE set, every CLI call would recompile.
	$(PY) -m compileall -q src
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

demo-ray: $(STAMP)
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) scripts/demo_ray.py

test: $(STAMP)
	$(PY) -m pytest -q

chaos: $(STAMP)
	$(PY) chaos/run.py --json .chaos.json

bench: $(STAMP)
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .hypothesis .chaos.json
