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

# Bytecode is compiled here, once: these machines set PYTHONDONTWRITEBYTECODE=1 and uv does not compile
# by default, so every process would compile Prefect and GX from source (GX's import: 5.5 s, 2.4 s
# compiled). uv compiles explicitly, whatever PYTHONDONTWRITEBYTECODE says, and only what is missing or
# stale: the first setup takes about 8 s longer, later ones about 0.3 s.
setup: $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode

demo: setup
	$(UV) run --frozen boligdata run --landing demo/landing --warehouse $(DEMO_WAREHOUSE)
	$(UV) run --frozen boligdata indicators --warehouse $(DEMO_WAREHOUSE)
	$(UV) run --frozen boligdata targets --warehouse $(DEMO_WAREHOUSE)
	@# the board's report of the demo plan for the latest year with data (prints where the HTML and PDF are)
	$(UV) run --frozen boligdata report --warehouse $(DEMO_WAREHOUSE) --plan slagelse-2017 \
		--period $$($(UV) run --frozen python -c "import duckdb; print(duckdb.connect('$(DEMO_WAREHOUSE)', read_only=True).execute(\"SELECT max(year) FROM marts.indicator_values WHERE scope_id = 'slagelse-2017'\").fetchall()[0][0])") \
		--out demo/reports

test: setup
	$(UV) run --frozen pytest
