"""One declaration per source, and models that declare and check themselves."""

import dataclasses
import json
import shutil

import duckdb
import pytest
from conftest import (
    NOEGLETAL_HEADER,
    SIGTELSER_HEADER,
    ingest_all,
    land,
    query,
    sigtelser_year,
)

from transforms.ledger.runs import RunSummary
from transforms.reference import DEFAULT_REFERENCE_DIR
from transforms.sources import PARTITION_YEAR_SQL, all_contracts
from transforms.sources.suite import EXPECTATIONS_DIR, suite_text
from warehouse import materialize as models
from warehouse.build import warehouse_write


def test_every_suite_file_is_generated_from_its_declaration():
    for contract in all_contracts().values():
        path = EXPECTATIONS_DIR / f"{contract.source}.json"
        assert path.read_text(encoding="utf-8") == suite_text(contract), (
            f"{path.name} is out of step with transforms/sources/{contract.source}.py: "
            "run `python -m transforms.sources.suite`")
    assert sorted(p.stem for p in EXPECTATIONS_DIR.glob("*.json")) == sorted(all_contracts())


def test_rules_shared_by_every_source_are_declared_once():
    """The year, kommune and area rules come from the shared columns, alike in every suite."""
    by_rule = {}
    for contract in all_contracts().values():
        for expectation in json.loads(suite_text(contract))["expectations"]:
            if expectation["meta"]["rule"] in ("year_out_of_range", "unknown_kommune"):
                by_rule.setdefault(expectation["meta"]["rule"], set()).add(json.dumps(expectation, sort_keys=True))
    assert {rule: len(variants) for rule, variants in by_rule.items()} == {"year_out_of_range": 1, "unknown_kommune": 1}


def test_event_types_and_categories_come_from_the_declaration(tmp_path):
    from transforms.sources.politi_anmeldelser import CATEGORIES

    warehouse = tmp_path / "w.duckdb"
    ingest_all(tmp_path / "landing", warehouse)
    rows = query(warehouse, "SELECT event_type, measure FROM core.event_types WHERE source = 'politi_anmeldelser'")
    assert {t for t, _ in rows} == {*CATEGORIES, None}
    assert ("Hærværk", "anmeldelser_haervaerk") in rows and (None, "anmeldelser") in rows


def test_models_declare_grain_and_run_in_dependency_order():
    order = [m.name for m in models.all_models()]
    for model in models.all_models():
        assert model.grain, f"{model.name} declares no grain"
        for dependency in model.depends_on:
            if dependency in order:
                assert order.index(dependency) < order.index(model.name)
    assert order.index("core.measures") < order.index("marts.indicator_values") < order.index("marts.target_status")


def test_every_partition_key_ends_with_its_period_which_starts_with_the_year():
    """The marts find the years a delivery touched from its partition keys (PARTITION_YEAR_SQL)."""
    for contract in all_contracts().values():
        last = contract.partition_by[-1]
        kind, _, column = last.rpartition(":")
        periods = {c.name for c in contract.columns if c.type == "period"}
        assert kind in ("year", "month") or column in ("aar", *periods), (contract.source, last)
    keys = ["330|2019", "330|2019-03", "Boligselskab 101|2016", "slagelse-2017|2019-H1", "slagelse-2017|2020-Q3"]
    years = duckdb.sql(f"SELECT {PARTITION_YEAR_SQL} FROM unnest(?) AS t(partition_key)", params=[keys]).fetchall()
    assert [year for (year,) in years] == [2019, 2019, 2016, 2019, 2020]


def _broken(model_name: str, select: str):
    """Every model as declared, except one whose SELECT is replaced."""
    declared = models.all_models()
    return lambda: tuple(dataclasses.replace(m, select=select) if m.name == model_name else m for m in declared)


def test_a_broken_mart_fails_its_audit_and_the_published_file_stays_as_it_was(tmp_path, monkeypatch):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    land(landing, "kommune_noegletal", "n.csv", [NOEGLETAL_HEADER, "2016;330;Sydbyen;befolkning;1000;"])
    ingest_all(landing, warehouse)
    published = warehouse.read_bytes()

    # a mart that lists every row twice breaks its grain
    values = next(m for m in models.all_models() if m.name == "marts.indicator_values")
    doubled = f"SELECT * FROM ({values.select}) UNION ALL SELECT * FROM ({values.select})"
    monkeypatch.setattr(models, "all_models", _broken("marts.indicator_values", doubled))
    run = RunSummary("audit-test", "(test)", str(warehouse), None, "fingerprint")
    with pytest.raises(models.ModelError, match=r"model marts.indicator_values .*audit failed: unique grain "
                                                r'\(indicator, level, scope_id, year\): \{"indicator":"\w+","level":"area","scope_id":"sydbyen","year":2016,"copies":2\}'):
        with warehouse_write(warehouse, run) as write:
            models.materialize(write.build, DEFAULT_REFERENCE_DIR)
    assert warehouse.read_bytes() == published
    assert not list(tmp_path.glob(".w.duckdb.building*"))


@pytest.mark.parametrize(("model_name", "select", "audit"), [
    ("marts.indicator_vs_kommune", "SELECT * REPLACE ('somewhere' AS level) FROM ({select})", "accepted_values level"),
    ("marts.target_status", "SELECT * REPLACE (NULL AS rule) FROM ({select})", "not_null rule"),
])
def test_each_kind_of_audit_names_the_model_and_the_rows(tmp_path, monkeypatch, model_name, select, audit):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2018, "Motalavej")])
    land(landing, "kommune_noegletal", "n.csv", [NOEGLETAL_HEADER, "2018;330;Motalavej;befolkning;1000;"])
    ingest_all(landing, warehouse)
    original = next(m for m in models.all_models() if m.name == model_name)
    monkeypatch.setattr(models, "all_models", _broken(model_name, select.format(select=original.select)))
    with pytest.raises(models.ModelError, match=f"model {model_name} .*audit failed: {audit}"):
        models.materialize(warehouse, DEFAULT_REFERENCE_DIR)
    # the transaction rolled back: the mart is the one the last good build made
    assert query(warehouse, "SELECT count(*) FROM marts.indicator_values WHERE level = 'somewhere'") == [(0,)]


def test_a_mart_rebuilt_by_year_is_audited_in_those_years(tmp_path, monkeypatch):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    ingest_all(landing, warehouse)
    land(landing, "politi_sigtelser", "s2017.csv", [SIGTELSER_HEADER, *sigtelser_year(2017, "Sydbyen")])
    (row,) = ingest_all(landing, warehouse, build_marts=False)
    values = next(m for m in models.all_models() if m.name == "marts.indicator_values")
    doubled = f"SELECT * FROM ({values.select}) UNION ALL SELECT * FROM ({values.select})"
    monkeypatch.setattr(models, "all_models", _broken("marts.indicator_values", doubled))
    with pytest.raises(models.ModelError, match=r"model marts.indicator_values .*audit failed: unique grain "
                                                r'\(indicator, level, scope_id, year\): \{"indicator":"\w+","level":"\w+","scope_id":"\w+","year":2017,"copies":2\}'):
        models.materialize(warehouse, DEFAULT_REFERENCE_DIR, only_marts=True, loaded_deliveries=[row["delivery_id"]])
    assert query(warehouse, "SELECT count(*) FROM marts.indicator_values WHERE year = 2017") == [(0,)]  # rolled back


def test_a_model_column_without_a_description_fails_the_build(tmp_path, monkeypatch):
    warehouse = tmp_path / "w.duckdb"
    ingest_all(tmp_path / "landing", warehouse)
    values = next(m for m in models.all_models() if m.name == "marts.indicator_values")
    monkeypatch.setattr(models, "all_models", _broken("marts.indicator_values",
                                                      f"SELECT *, 1 AS undocumented FROM ({values.select})"))
    with pytest.raises(models.ModelError, match="column\\(s\\) without a description: undocumented"):
        models.materialize(warehouse, DEFAULT_REFERENCE_DIR)


def test_adding_a_source_is_one_declaration(tmp_path, monkeypatch, request):
    """A new event source, declared in one module, gets its suite, tables, events and measures."""
    from transforms.sources import (
        KOMMUNEKODE,
        OMRAADE,
        Column,
        Contract,
        Events,
        date_since_2000,
        one_of,
    )

    new = Contract(
        source="kommune_graffiti", description="Graffiti removals (test source).",
        columns=(Column("sag_id", "Sag-ID", "text", "Case id."),
                 Column("dato", "Dato", "date", "Date.", checks=(date_since_2000("Dato"),)),
                 KOMMUNEKODE, OMRAADE,
                 Column("flade", "Flade", "text", "Surface.", checks=(one_of("Flade", ("Mur", "Dør")),))),
        levels=("area",), key=("sag_id",), unique_across_deliveries="sag_id", partition_by=("kommunekode", "year:dato"),
        events=Events(date="dato", type="flade", counts={"Mur": "graffiti_mur"}, total="graffiti"),
    )
    monkeypatch.setitem(all_contracts(), new.source, new)  # as if transforms/sources/kommune_graffiti.py existed
    suites = tmp_path / "suites"
    shutil.copytree(EXPECTATIONS_DIR, suites)
    (suites / "kommune_graffiti.json").write_text(suite_text(new), encoding="utf-8")
    monkeypatch.setattr("transforms.sources.suite.EXPECTATIONS_DIR", suites)
    models.all_models.cache_clear()
    request.addfinalizer(models.all_models.cache_clear)

    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "kommune_graffiti", "g.csv", ["Sag-ID;Dato;Kommunekode;Område;Flade",
                                                "g1;2019-03-01;330;Motalavej;Mur", "g2;2019-04-01;330;Motalavej;Dør",
                                                "g3;2019-05-01;330;Motalavej;Tag"])
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["rows_loaded"]) == ("loaded_with_quarantine", 2)
    assert query(warehouse, "SELECT rule, value FROM meta.quarantine") == [("value_not_in_set", "Tag")]
    assert query(warehouse, """SELECT measure, value FROM core.measures WHERE scope_id = 'motalavej' AND year = 2019
                               ORDER BY measure""") == [("graffiti", 2.0), ("graffiti_mur", 1.0)]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT comment FROM duckdb_tables() WHERE schema_name = 'staging' "
                            "AND table_name = 'kommune_graffiti'").fetchall()[0][0].startswith("Typed rows")


def test_schema_sql_holds_only_what_ensure_schema_compares():
    """ensure_schema applies schema.sql only when the catalog lacks a schema, table, column or comment it
    declares: an index, a view or an UPDATE there would never reach an existing warehouse."""
    import re

    from warehouse.load import SCHEMA_SQL

    allowed = re.compile(r"(CREATE (SCHEMA|TABLE) IF NOT EXISTS|ALTER TABLE \S+ ADD COLUMN IF NOT EXISTS|COMMENT ON (TABLE|COLUMN)) ")
    statements = [" ".join(statement.query.split()) for statement in duckdb.extract_statements(SCHEMA_SQL.read_text(encoding="utf-8"))]
    assert statements and [s for s in statements if not allowed.match(s)] == []


def test_a_reworded_description_changes_the_model_fingerprint(monkeypatch):
    """A table rebuilt by year keeps the descriptions it has; a reworded one must make the next run
    rebuild the marts whole, which a changed fingerprint does."""
    before = models.model_fingerprint(DEFAULT_REFERENCE_DIR)
    reworded = tuple(dataclasses.replace(m, columns={**m.columns, "year": "The calendar year, reworded."})
                     if m.name == "marts.indicator_values" else m for m in models.all_models())
    monkeypatch.setattr(models, "all_models", lambda: reworded)
    assert models.model_fingerprint(DEFAULT_REFERENCE_DIR) != before


def test_the_model_fingerprint_and_order_are_the_same_in_every_process():
    """A run compares the fingerprint it computes with the one the last run recorded (another process)."""
    import os
    import subprocess
    import sys

    script = ("from warehouse.materialize import all_models, model_fingerprint;"
              "from transforms.reference import DEFAULT_REFERENCE_DIR;"
              "print(model_fingerprint(DEFAULT_REFERENCE_DIR), [m.name for m in all_models()])")
    seen = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert len(seen) == 1
