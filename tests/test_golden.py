"""Conformance: the published figures and the target verdicts come out of ../shared/golden-2's raw extracts."""

import csv

import duckdb
import pytest

from flows.pipeline import run_pipeline
from transforms.reference import DEFAULT_REFERENCE_DIR, read_reference_table
from warehouse.files import internal_file

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
                "SELECT value, suppressed FROM marts.indicator_values WHERE indicator = ? AND level = ? AND scope_id = ? AND year = ?",
                [row["indicator"], row["level"], row["scope_id"], int(row["year"])],
            ).fetchall()
            where = f"{row['indicator']} {row['level']} {row['scope_id']} {row['year']} ({row['note']})"
            assert found, f"no value for {where}"
            if row["expected"] == "":  # the figure exists but is suppressed
                assert found[0] == (None, True), where
            else:
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


def expected_verdicts(golden):
    with open(golden / "expected_targets.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def test_expected_target_verdicts_are_reproduced(golden, golden_warehouse):
    """Every row of marts.target_status for the (plan, indicator, scope, year) has `met` as the agreement
    reads; `none` means no verdict row at all (a baseline year, or before the plan)."""
    with duckdb.connect(str(golden_warehouse), read_only=True) as conn:
        for row in expected_verdicts(golden):
            found = conn.execute("""SELECT met, source FROM marts.target_status
                WHERE plan_id = ? AND indicator = ? AND scope_id = ? AND year = ?""",
                [row["plan_id"], row["indicator"], row["scope_id"], int(row["year"])]).fetchall()
            where = f"{row['plan_id']} {row['indicator']} {row['scope_id']} {row['year']} ({row['why']})"
            if row["met"] == "none":
                assert found == [], where
            else:
                assert found, f"no verdict for {where}"
                assert {met for met, _ in found} == {row["met"] == "true"}, where
                assert all(source for _, source in found), where


def test_development_against_the_kommune_compares_rates_only(golden_warehouse):
    with duckdb.connect(str(golden_warehouse), read_only=True) as conn:
        units = conn.execute("""SELECT DISTINCT i.unit FROM marts.development_vs_kommune AS d
                                JOIN ref.indicators AS i USING (indicator) ORDER BY 1""").fetchall()
        assert ("count",) not in units and units
        # slagelse-2017's baseline is 2016: afgørelser 30.65 -> 2019, beside the kommune's 11.4 -> 2019
        (row,) = conn.execute("""SELECT baseline_year, baseline_value, kommune_baseline_value, change, kommune_change,
                                        developed_better_than_kommune
                                 FROM marts.development_vs_kommune WHERE indicator = 'afgoerelser_pr_1000'
                                   AND plan_id = 'slagelse-2017' AND scope_id = 'slagelse-2017' AND year = 2019""").fetchall()
        baseline_year, baseline, kommune_baseline, change, kommune_change, better = row
        assert (baseline_year, round(baseline, 2), round(kommune_baseline, 1)) == (2016, 30.65, 11.4)
        assert better == (change < kommune_change)  # lower is better
        # counts are never held against the whole kommune's counts
        assert conn.execute("""SELECT count(*) FROM marts.indicator_vs_kommune
                               WHERE unit = 'count' AND better_than_kommune IS NOT NULL""").fetchall() == [(0,)]


def test_no_hidden_cell_comes_back_as_the_difference_of_two_published_figures(golden_warehouse):
    """Complementary suppression: for every hidden person-based cell, no two published figures of the same
    indicator, year and kommune differ by exactly its numerator and denominator (nor equal it)."""
    with duckdb.connect(str(internal_file(golden_warehouse)), read_only=True) as conn:  # the unsuppressed figures
        cells = conn.execute("""
            WITH kommuner AS (
                SELECT 'area' AS level, area_id AS scope_id, kommune_code FROM ref.areas
                UNION ALL SELECT 'plan', plan_id, kommune_code FROM ref.plans
                UNION ALL SELECT 'bydel', bydel_id, kommune_code FROM ref.bydele)
            SELECT f.indicator, f.year, CASE f.level WHEN 'kommune' THEN f.scope_id ELSE k.kommune_code END,
                   f.level || ' ' || f.scope_id, round(f.numerator, 6), round(f.denominator, 6), v.suppressed, v.suppression
            FROM core.indicator_figures AS f
            JOIN marts.indicator_values AS v USING (indicator, level, scope_id, year)
            JOIN ref.indicators AS i USING (indicator)
            LEFT JOIN kommuner AS k ON k.level = f.level AND k.scope_id = f.scope_id
            WHERE i.person_based AND f.numerator IS NOT NULL""").fetchall()
    groups = {}
    for indicator, year, kommune, scope, numerator, denominator, suppressed, suppression in cells:
        groups.setdefault((indicator, year, kommune), []).append((scope, numerator, denominator, suppressed))
    hidden_total = 0
    for key, group in groups.items():
        published = [(n, d) for _, n, d, s in group if not s]
        for scope, numerator, denominator, suppressed in group:
            if not suppressed:
                continue
            hidden_total += 1
            for a_n, a_d in published:
                assert (a_n, a_d) != (numerator, denominator), f"{key} {scope} published as is"
                for b_n, b_d in published:
                    same_denominator = denominator is None or (a_d is not None and b_d is not None
                                                               and round(a_d - b_d, 6) == denominator)
                    assert not (round(a_n - b_n, 6) == numerator and same_denominator), f"{key} {scope} = A - B"
    assert hidden_total >= 20  # the golden data has small cells to protect
    with duckdb.connect(str(golden_warehouse), read_only=True) as conn:
        # Skælskør's 10 of 15 pupils (2018): slagelse-2017 minus en-faelles-indsats-2021 would give them back
        assert conn.execute("""SELECT scope_id, suppression FROM marts.indicator_values
            WHERE indicator = 'uddannelsesparat_9kl_andel' AND year = 2018 AND suppressed ORDER BY 1""").fetchall() == [
            ("skaelskoer", "primary"), ("slagelse-2017", "complementary")]
