# Two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup bench lint clean check-compat check-security

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/flowdeck --demo --data-dir .flowdeck-demo

test: $(STAMP)
	TZ=UTC $(BIN)/python -m pytest -q -n 2

bench: $(STAMP)
	$(BIN)/python bench/engine.py

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff mypy types-PyYAML types-regex
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# Not in CI: schemathesis against a live `flowdeck serve` (open, then with a token) and a 60 s
# mixed load at 50 clients (bench/security.py). schemathesis lives in its own venv, never in
# `make test`'s dependencies.
SECURITY_VENV := .venv-security
check-security: $(STAMP)
	test -x $(SECURITY_VENV)/bin/schemathesis || ( $(PYTHON) -m venv $(SECURITY_VENV) && \
		$(SECURITY_VENV)/bin/python -m pip install --quiet "schemathesis>=4,<5" )
	$(BIN)/python bench/security.py --schemathesis $(SECURITY_VENV)/bin/schemathesis

clean:
	rm -rf $(VENV) $(COMPAT) $(SECURITY_VENV) .pytest_cache

# Every answer of the Kestra dialect read with kestrapy 1.0.4 (the client of Kestra 1.x and
# of Kestra's own 1.x end-to-end tests), in a virtual environment of its own: not in `make
# test`, whose kestrapy is 2.x.
COMPAT := .venv-compat
check-compat: $(STAMP)
	test -x $(COMPAT)/bin/python || $(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip install --quiet "kestrapy==1.0.4"
	TZ=UTC $(BIN)/python tests/compat/record_calls.py $(COMPAT)/calls.json
	$(COMPAT)/bin/python tests/compat/check_kestrapy1.py $(COMPAT)/calls.json
