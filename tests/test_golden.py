"""Conformance: the published figures come out of ../shared/golden's raw extracts."""

import csv

import duckdb
import pytest

from flows.pipeline import run_pipeline
from transforms.reference import DEFAULT_REFERENCE_DIR, read_reference_table

BUILT_INDICATORS = set(read_reference_table(DEFAULT_REFERENCE_DIR, "indicators")["indicator"])


@pytest.fixture(scope="module")
def golden_warehouse(golden, prefect_server, tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("golden") / "golden.duckdb"
    run_pipeline(landing=str(golden / "landing"), warehouse=str(warehouse))
    return warehouse


def expected_rows(golden):
    with open(golden / "expected.csv", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle, delimiter=";") if row["indicator"] in BUILT_INDICATORS]


def test_the_walking_skeletons_indicators_are_covered(golden):
    checked = {row["indicator"] for row in expected_rows(golden)}
    assert {"afgoerelser_pr_1000", "sigtelser_pr_1000", "sigtede_pr_1000"} <= checked
    assert len(expected_rows(golden)) >= 19


def test_expected_figures_are_reproduced(golden, golden_warehouse):
    with duckdb.connect(str(golden_warehouse), read_only=True) as conn:
        for row in expected_rows(golden):
            found = conn.execute(
                "SELECT value FROM marts.indicator_values WHERE indicator = ? AND level = ? AND scope_id = ? AND year = ?",
                [row["indicator"], row["level"], row["scope_id"], int(row["year"])],
            ).fetchall()
            where = f"{row['indicator']} {row['level']} {row['scope_id']} {row['year']} ({row['note']})"
            assert found, f"no value for {where}"
            assert found[0][0] == pytest.approx(float(row["expected"]), abs=float(row["tolerance"])), where


def test_golden_deliveries_of_built_sources_load_cleanly(golden_warehouse):
    with duckdb.connect(str(golden_warehouse), read_only=True) as conn:
        statuses = conn.execute("""SELECT source, status, sum(rows_quarantined) FROM meta.deliveries
            WHERE source IN ('politi_sigtelser', 'kommune_noegletal') GROUP BY ALL ORDER BY 1""").fetchall()
    assert statuses == [("kommune_noegletal", "loaded", 0), ("politi_sigtelser", "loaded", 0)]
