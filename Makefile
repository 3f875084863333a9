# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit lint docs demo-bundle bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[trainer,dev,photos]'
	touch $(STAMP)

## demo: synthetic data → distil → bundle → broker → agent → MES subscriber → summary
demo: $(STAMP)
	$(PY) scripts/demo.py

## test: the whole suite (unit + integration against a private broker); exit 5 (nothing ran) is a failure
test: $(STAMP)
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - that is a failure" >&2; fi; \
	exit $$rc

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check edge_agent tests benchmarks scripts examples
	$(VENV)/bin/mypy

## docs: regenerate the configuration reference and the MQTT JSON Schemas from the code
docs: $(STAMP)
	$(PY) scripts/gen_docs.py

## demo-bundle: rebuild models/demo (the bundle shipped in the repository)
demo-bundle: $(STAMP)
	$(PY) scripts/make_demo_bundle.py

bench: $(STAMP)
	$(PY) benchmarks/runtime.py
	$(PY) benchmarks/agent.py

clean:
	rm -rf demo-out bench-out .pytest_cache .mypy_cache .ruff_cache
