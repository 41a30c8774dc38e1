"""What analysts rely on: the documented queries run, lineage, export."""

import re

import duckdb
import pytest
from conftest import REPO, ingest_all

from flows.cli import main

QUERIES = re.findall(r"```sql\n(.*?)```", (REPO / "docs" / "analysts.md").read_text(encoding="utf-8"), re.S)


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    ingest_all(REPO / "demo" / "landing", warehouse)
    return warehouse


def test_the_guide_has_thirteen_queries():
    assert len(QUERIES) == 13


@pytest.mark.parametrize("sql", QUERIES, ids=[f"query-{n}" for n in range(1, len(QUERIES) + 1)])
def test_each_documented_query_runs_and_answers(demo_warehouse, sql):
    with duckdb.connect(str(demo_warehouse), read_only=True) as conn:
        rows = conn.execute(sql).fetchall()
    assert rows, "the query answered nothing on the demo data"


def test_explain_names_the_value_its_parts_and_the_deliveries(demo_warehouse, capsys):
    assert main(["explain", "afgoerelser_pr_1000", "motalavej", "2021", "--warehouse", str(demo_warehouse)]) == 0
    out = capsys.readouterr().out.splitlines()
    with duckdb.connect(str(demo_warehouse), read_only=True) as conn:
        value, numerator, denominator = conn.execute("""SELECT value, numerator, denominator FROM marts.indicator_values
            WHERE indicator = 'afgoerelser_pr_1000' AND scope_id = 'motalavej' AND year = 2021""").fetchall()[0]
    assert out[0] == f"afgoerelser_pr_1000 for area motalavej, 2021: {value} per_1000"
    assert out[2] == f"  numerator {numerator}, denominator {denominator} (measures: afgoerelser, befolkning)"
    assert any("kommune_noegletal/noegletal_slagelse_2019-2021.csv, 7 row(s)" in line for line in out)
    assert any("politi_sigtelser/sigtelser_slagelse_2019-2021.csv, 4 row(s)" in line for line in out)
    assert main(["explain", "afgoerelser_pr_1000", "motalavej", "1990", "--warehouse", str(demo_warehouse)]) == 2


def test_export_writes_the_marts_as_parquet(demo_warehouse, tmp_path, capsys):
    assert main(["export", str(tmp_path / "out"), "--warehouse", str(demo_warehouse)]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["marts.development_vs_kommune.parquet", "marts.indicator_values.parquet",
                       "marts.indicator_vs_kommune.parquet", "marts.target_status.parquet",
                       "marts.targets_without_data.parquet", "meta.deliveries.parquet", "meta.partitions.parquet",
                       "meta.quarantine.parquet", "meta.reported_figures.parquet", "meta.reports.parquet",
                       "meta.runs.parquet", "meta.steward_actions.parquet", "ref.indicators.parquet", "ref.targets.parquet"]
    import pyarrow.parquet as pq

    schema = pq.read_schema(tmp_path / "out" / "marts.indicator_values.parquet")
    assert schema.field("suppressed").metadata[b"description"].startswith(b"True when disclosure control hides")
    assert schema.metadata[b"description"].startswith(b"One row per (indicator, level, scope_id, year)")
    with duckdb.connect(str(demo_warehouse), read_only=True) as conn:
        expected = conn.execute("SELECT count(*) FROM marts.indicator_values").fetchall()
        exported = conn.execute(f"SELECT count(*) FROM '{tmp_path / 'out' / 'marts.indicator_values.parquet'}'").fetchall()
    assert exported == expected


def test_the_targets_summary_names_each_verdict_and_its_agreement(demo_warehouse, capsys):
    assert main(["targets", "--warehouse", str(demo_warehouse)]) == 0
    out = capsys.readouterr().out
    assert "7-frivillige-mindst-50" in out and "000 (aktivt liv, frivillighed/civilsamfund)" in out
    assert "agreed target(s) without data yet" in out
    assert main(["targets", "--warehouse", str(demo_warehouse), "--plan", "slagelse-2071"]) == 2
    assert "no plan 'slagelse-2071'; plans: amagerbro-2018, en-faelles-indsats-2021, slagelse-2017" in capsys.readouterr().err
