"""Conformance: the published figures come out of ../shared/golden's raw extracts."""

import csv

import duckdb
import pytest

from flows.pipeline import run_pipeline
from transforms.reference import DEFAULT_REFERENCE_DIR, read_reference_table

CATALOG = set(read_reference_table(DEFAULT_REFERENCE_DIR, "indicators")["indicator"])


@pytest.fixture(scope="module")
def golden_warehouse(golden, prefect_server, tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("golden") / "golden.duckdb"
    run_pipeline(landing=str(golden / "landing"), warehouse=str(warehouse))
    return warehouse


def expected_rows(golden):
    with open(golden / "expected.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def test_every_expected_indicator_is_in_the_catalog(golden):
    assert {row["indicator"] for row in expected_rows(golden)} <= CATALOG


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


def test_every_golden_delivery_loads_cleanly(golden, golden_warehouse):
    with duckdb.connect(str(golden_warehouse), read_only=True) as conn:
        statuses = conn.execute("""SELECT source, status, count(*), sum(rows_quarantined) FROM meta.deliveries
            GROUP BY ALL ORDER BY 1""").fetchall()
        encodings = dict(conn.execute("SELECT file_name, encoding FROM meta.deliveries").fetchall())
    landed = {}
    for path in (golden / "landing").glob("*/*"):
        landed[path.parent.name] = landed.get(path.parent.name, 0) + 1
    assert statuses == [(source, "loaded", n, 0) for source, n in sorted(landed.items())]
    assert encodings["boligkorsoer.csv"] == "cp1252"
    assert encodings["fob_2014-2019.xlsx"] == "xlsx"
