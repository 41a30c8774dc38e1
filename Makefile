# `make demo`: set everything up and run the pipeline on the bundled demo data.
# `make test`: set everything up and run the test suite (what CI runs).
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
DEMO_WAREHOUSE := demo/warehouse.duckdb

.PHONY: setup demo test

# uv itself comes from PyPI into a private venv, so a machine needs only python3.
$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

setup: $(UV)
	$(UV) sync --frozen --quiet

demo: setup
	$(UV) run --frozen boligdata run --landing demo/landing --warehouse $(DEMO_WAREHOUSE)
	$(UV) run --frozen boligdata indicators --warehouse $(DEMO_WAREHOUSE)

test: setup
	$(UV) run --frozen pytest
