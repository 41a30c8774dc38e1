"""Ledger, partitions and marts, exercised as plain functions (no Prefect)."""

import os
import time
from pathlib import Path

import pytest
from conftest import (
    NOEGLETAL_HEADER,
    SIGTELSER_HEADER,
    ingest_all,
    land,
    query,
    sigtelser_year,
    write_extract,
)

from transforms.ledger.deliveries import (
    LedgerSnapshot,
    plan_deliveries,
)


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "landing", tmp_path / "w.duckdb"


def test_unknown_folder_and_loose_files_are_rejected_before_parsing(paths):
    landing, warehouse = paths
    land(landing, "politi_ukendt", "x.csv", ["a;b", "1;2"])
    write_extract(landing / "loose.csv", ["a;b"])
    rows = ingest_all(landing, warehouse)
    assert {(r["file_name"], r["status"], r["reason"]) for r in rows} == {
        ("x.csv", "rejected", "unknown source folder 'politi_ukendt'"),
        ("loose.csv", "rejected", "file is not inside a source folder (landing/<source>/<file>)"),
    }


def test_temporary_and_hidden_files_are_not_deliveries_yet(paths):
    landing, _ = paths
    land(landing, "politi_sigtelser", "a.csv.part", [SIGTELSER_HEADER])
    land(landing, "politi_sigtelser", ".a.csv", [SIGTELSER_HEADER])
    land(landing, "politi_sigtelser", "~$a.xlsx", [SIGTELSER_HEADER])
    assert plan_deliveries(landing, LedgerSnapshot(1, frozenset(), {})) == []


def test_ledger_records_counts_archive_and_quarantine(paths):
    landing, warehouse = paths
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen"),
                                                "2016;330;Sydbyn;Straffeloven;1;1;;"])
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["rows_read"], row["rows_loaded"], row["rows_quarantined"]) == ("loaded_with_quarantine", 5, 4, 1)
    assert query(warehouse, "SELECT delivery_id, line_number, rule, column_name, value, status, partition_key FROM meta.quarantine") == [
        (1, 6, "unknown_area", "omraade", "Sydbyn", "open", "330|2016")]
    assert open(row["archive_path"], "rb").read() == (landing / "politi_sigtelser" / "s.csv").read_bytes()
    # the held-back row as delivered, for the steward; every row as delivered is in the archived file
    assert query(warehouse, "SELECT delivery_id, line_number, omraade, lovomraade FROM raw.politi_sigtelser") == [
        (1, 6, "Sydbyn", "Straffeloven")]
    assert query(warehouse, "SELECT count(*), min(line_number), max(line_number) FROM staging.politi_sigtelser") == [(4, 2, 5)]


def test_same_file_again_is_skipped_and_same_bytes_elsewhere_is_a_duplicate(paths):
    landing, warehouse = paths
    lines = [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")]
    land(landing, "politi_sigtelser", "s.csv", lines)
    ingest_all(landing, warehouse)
    assert ingest_all(landing, warehouse) == []  # nothing new: the same name with the same bytes
    land(landing, "politi_sigtelser", "copy_of_s.csv", lines)
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["reason"]) == ("duplicate", "same bytes as delivery 1")
    assert query(warehouse, "SELECT count(*) FROM staging.politi_sigtelser") == [(4,)]


def test_a_correction_replaces_only_the_partitions_it_contains(paths):
    landing, warehouse = paths
    now = time.time()
    land(landing, "politi_sigtelser", "first.csv",
         [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen"), *sigtelser_year(2017, "Sydbyen")], mtime=now - 60)
    ingest_all(landing, warehouse)
    land(landing, "politi_sigtelser", "correction_2017.csv",
         [SIGTELSER_HEADER, *sigtelser_year(2017, "Sydbyen", afgoerelser=(1, 1, 1))], mtime=now)
    ingest_all(landing, warehouse)
    assert query(warehouse, """SELECT aar, delivery_id, afgoerelser FROM staging.politi_sigtelser
                               WHERE lovomraade = 'I alt' ORDER BY aar""") == [(2016, 1, 45), (2017, 2, 3)]
    assert query(warehouse, "SELECT partition_key, delivery_id, superseded_by FROM meta.partitions ORDER BY 1, 2") == [
        ("330|2016", 1, None), ("330|2017", 1, 2), ("330|2017", 2, None)]
    assert query(warehouse, "SELECT delivery_id, status FROM meta.deliveries ORDER BY 1") == [(1, "loaded"), (2, "loaded")]
    # the superseded rows stay auditable in the archive
    ((archived,),) = query(warehouse, "SELECT archive_path FROM meta.deliveries WHERE delivery_id = 1")
    assert Path(archived).read_bytes() == (landing / "politi_sigtelser" / "first.csv").read_bytes()

    land(landing, "politi_sigtelser", "correction_2016.csv",
         [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen", afgoerelser=(2, 2, 2))], mtime=now + 60)
    ingest_all(landing, warehouse)
    assert query(warehouse, "SELECT delivery_id, status FROM meta.deliveries ORDER BY 1") == [
        (1, "superseded"), (2, "loaded"), (3, "loaded")]


def test_a_rejected_file_loads_nothing_and_keeps_the_previous_data(paths):
    landing, warehouse = paths
    land(landing, "politi_sigtelser", "good.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    ingest_all(landing, warehouse)
    land(landing, "politi_sigtelser", "bad.csv", ["År;Kommunekode;Område", "2016;330;Sydbyen"])
    (row,) = ingest_all(landing, warehouse)
    assert row["status"] == "rejected"
    assert row["reason"].startswith("missing required column(s): Lovområde")
    assert os.path.exists(row["archive_path"])
    assert query(warehouse, "SELECT count(*), min(delivery_id) FROM staging.politi_sigtelser") == [(4, 1)]


def test_marts_sum_numerators_and_denominators_and_need_every_plan_area(paths):
    landing, warehouse = paths
    population = {"Motalavej": 1000, "Ringparken": 2000, "Sydbyen": 1000, "Skælskør": 500, "Hele kommunen": 80000}
    afgoerelser = {"Motalavej": (20, 5, 5), "Ringparken": (30, 10, 10), "Sydbyen": (10, 0, 0), "Skælskør": (2, 0, 0),
                   "Hele kommunen": (600, 100, 100)}
    sigtelser = []
    noegletal = []
    for area, people in population.items():
        sigtelser += sigtelser_year(2016, area, afgoerelser=afgoerelser[area])
        noegletal.append(f"2016;330;{area};befolkning;{people};")
    sigtelser += sigtelser_year(2017, "Motalavej")  # 2017: only one area of the plan
    noegletal.append("2017;330;Motalavej;befolkning;1000;")
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser])
    land(landing, "kommune_noegletal", "n.csv", [NOEGLETAL_HEADER, *noegletal])
    ingest_all(landing, warehouse)
    values = {(lvl, scope, year): (value, num, den) for lvl, scope, year, value, num, den in query(warehouse, """
        SELECT level, scope_id, year, value, numerator, denominator FROM marts.indicator_values
        WHERE indicator = 'afgoerelser_pr_1000'""")}
    assert values[("area", "motalavej", 2016)] == (30.0, 30.0, 1000.0)
    assert values[("kommune", "330", 2016)] == (10.0, 800.0, 80000.0)
    # (30 + 50 + 10 + 2) / (1000 + 2000 + 1000 + 500) * 1000, not the mean of the four rates
    assert values[("plan", "slagelse-2017", 2016)] == pytest.approx((92 / 4.5, 92.0, 4500.0))
    assert values[("plan", "en-faelles-indsats-2021", 2016)] == pytest.approx((90 / 4.0, 90.0, 4000.0))
    assert ("plan", "slagelse-2017", 2017) not in values  # three of four areas missing: no plan figure
    assert ("area", "motalavej", 2017) in values
    vs_kommune = query(warehouse, """SELECT value, kommune_value, difference, better_than_kommune
        FROM marts.indicator_vs_kommune WHERE indicator = 'afgoerelser_pr_1000' AND scope_id = 'sydbyen' AND year = 2016""")
    assert vs_kommune == [(10.0, 10.0, 0.0, False)]
    assert query(warehouse, """SELECT better_than_kommune FROM marts.indicator_vs_kommune
        WHERE indicator = 'afgoerelser_pr_1000' AND scope_id = 'skaelskoer' AND year = 2016""") == [(True,)]


def test_every_public_table_and_column_is_described(paths):
    landing, warehouse = paths
    ingest_all(landing, warehouse)
    undocumented = query(warehouse, """
        SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns()
        WHERE schema_name IN ('marts', 'meta', 'staging', 'raw', 'ref') AND (comment IS NULL OR comment = '')""")
    assert undocumented == []
    assert query(warehouse, """SELECT count(*) FROM duckdb_tables()
        WHERE schema_name IN ('marts', 'meta', 'staging', 'raw', 'ref') AND (comment IS NULL OR comment = '')""") == [(0,)]


def test_a_corrected_delivery_closes_the_quarantined_rows_of_the_partitions_it_replaces(paths):
    landing, warehouse = paths
    now = time.time()
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen"),
                                                "2016;330;Sydbyn;Straffeloven;1;1;;",
                                                "2017;330;Sydbyn;Straffeloven;1;1;;"], mtime=now - 10)
    ingest_all(landing, warehouse)
    land(landing, "politi_sigtelser", "s_rettet_2016.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")], mtime=now)
    ingest_all(landing, warehouse)
    assert query(warehouse, """SELECT line_number, status, resolved_by, note, resolved_at IS NOT NULL FROM meta.quarantine
                               ORDER BY line_number""") == [
        (6, "waived", "boligdata", "superseded by delivery 2 (s_rettet_2016.csv)", True),
        (7, "open", None, None, False),  # 2017 was not corrected
    ]


def test_event_ids_are_unique_across_deliveries_except_in_replaced_partitions(paths):
    landing, warehouse = paths
    now = time.time()
    header = "Anmeldelses-ID;Anmeldt dato;Kommunekode;Område;Kategori"
    land(landing, "politi_anmeldelser", "jan.csv", [header, "A1;2016-01-10;330;Motalavej;Vold"], mtime=now - 20)
    ingest_all(landing, warehouse)
    land(landing, "politi_anmeldelser", "feb.csv", [header, "A1;2016-02-10;330;Motalavej;Vold",
                                                    "A2;2016-02-11;330;Motalavej;Vold"], mtime=now - 10)
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["rows_loaded"], row["rows_quarantined"]) == ("loaded_with_quarantine", 1, 1)
    assert query(warehouse, "SELECT delivery_id, line_number, rule, value, note FROM meta.quarantine") == [
        (2, 2, "duplicate_id", "A1", "already loaded by delivery 1, line 2")]
    # re-delivering January with the same id is a correction, not a duplicate
    land(landing, "politi_anmeldelser", "jan_rettet.csv", [header, "A1;2016-01-12;330;Motalavej;Hærværk"], mtime=now)
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["rows_loaded"]) == ("loaded", 1)


def test_a_file_and_its_correction_in_one_run_load_as_if_they_came_in_two(paths):
    """One run validates and loads its files in batches; a batch must keep landing order's meaning."""
    landing, warehouse = paths
    now = time.time()
    header = "Anmeldelses-ID;Anmeldt dato;Kommunekode;Område;Kategori"
    land(landing, "politi_anmeldelser", "jan.csv", [header, "A1;2016-01-10;330;Motalavej;Vold",
                                                    "A9;2016-01-11;330;Motalvej;Vold"], mtime=now - 20)
    land(landing, "politi_anmeldelser", "feb.csv", [header, "A2;2016-02-10;330;Motalavej;Vold",
                                                    "A1;2016-02-11;330;Motalavej;Vold"], mtime=now - 10)
    land(landing, "politi_anmeldelser", "jan_rettet.csv", [header, "A1;2016-01-12;330;Motalavej;Hærværk"], mtime=now)
    rows = ingest_all(landing, warehouse)
    assert [(r["file_name"], r["rows_loaded"], r["rows_quarantined"]) for r in rows] == [
        ("jan.csv", 1, 1), ("feb.csv", 1, 1), ("jan_rettet.csv", 1, 0)]
    assert query(warehouse, "SELECT delivery_id, status FROM meta.deliveries ORDER BY 1") == [
        (1, "superseded"), (2, "loaded_with_quarantine"), (3, "loaded")]
    assert query(warehouse, "SELECT delivery_id, line_number, rule, status, note FROM meta.quarantine ORDER BY 1, 2") == [
        (1, 3, "unknown_area", "waived", "superseded by delivery 3 (jan_rettet.csv)"),
        (2, 3, "duplicate_id", "open", "already loaded by delivery 1, line 2")]
    assert query(warehouse, "SELECT anmeldelses_id, delivery_id, kategori FROM staging.politi_anmeldelser ORDER BY 1") == [
        ("A1", 3, "Hærværk"), ("A2", 2, "Vold")]
    # what a steward reads of a held-back row: its text as delivered, whether validation or the load held it back
    assert query(warehouse, "SELECT delivery_id, line_number, anmeldelses_id, anmeldt_dato, omraade FROM raw.politi_anmeldelser "
                            "ORDER BY 1, 2") == [(1, 3, "A9", "2016-01-11", "Motalvej"), (2, 3, "A1", "2016-02-11", "Motalavej")]


def test_files_typed_together_keep_their_own_verdicts_and_rows(paths):
    """A batch's files are typed in one pass (transforms/intake/batches.py): a file whose column holds no
    value of its type is rejected alone, with its own first value, and the others load their own rows."""
    landing, warehouse = paths
    now = time.time()
    for number, (name, taeller) in enumerate([("a.csv", "1.350"), ("b.csv", "mange"), ("c.csv", "7")]):
        land(landing, "kommune_noegletal", name, [NOEGLETAL_HEADER, f"{2016 + number};330;Sydbyen;befolkning;{taeller};",
                                                  f"{2016 + number};101;Hele kommunen;befolkning;{taeller};"], mtime=now - 10 + number)
    rows = ingest_all(landing, warehouse, build_marts=False)
    assert [(r["file_name"], r["status"], r["reason"], r["rows_loaded"]) for r in rows] == [
        ("a.csv", "loaded", None, 2),
        ("b.csv", "rejected", "column 'Tæller': no value is a number (first value 'mange')", None),
        ("c.csv", "loaded", None, 2)]
    assert query(warehouse, "SELECT delivery_id, line_number, aar, taeller FROM staging.kommune_noegletal ORDER BY 1, 2") == [
        (1, 2, 2016, 1350.0), (1, 3, 2016, 1350.0), (3, 2, 2018, 7.0), (3, 3, 2018, 7.0)]
    assert query(warehouse, "SELECT count(*) FROM raw.kommune_noegletal") == [(0,)]  # nothing held back


def test_batches_hold_one_source_in_landing_order_the_largest_source_first(tmp_path):
    import datetime as dt

    from transforms.intake.batches import delivery_batches
    from transforms.ledger.deliveries import Delivery

    def delivery(delivery_id, source, size):
        return Delivery(delivery_id, source, f"{delivery_id}.csv", tmp_path / f"{delivery_id}.csv", "", size, dt.datetime(2026, 1, 1))

    deliveries = [delivery(1, "politi_sigtelser", 10), delivery(2, "politi_anmeldelser", 60), delivery(3, "politi_sigtelser", 10),
                  delivery(4, "politi_anmeldelser", 60), delivery(5, "politi_anmeldelser", 60)]
    batches = delivery_batches(deliveries, max_bytes=100)
    assert [[d.delivery_id for d in batch] for batch in batches] == [[2], [4], [5], [1, 3]]


def test_csv_and_xlsx_files_of_a_batch_are_typed_each_by_its_format(paths):
    """XLSX cells carry plain numbers, CSV text Danish ones: files of the two formats of one batch are
    typed apart."""
    from openpyxl import Workbook

    landing, warehouse = paths
    now = time.time()
    land(landing, "kommune_noegletal", "a.csv", [NOEGLETAL_HEADER, "2016;330;Sydbyen;befolkning;1.350;"], mtime=now - 30)
    book = Workbook()
    book.active.append(NOEGLETAL_HEADER.split(";"))
    book.active.append([2017, 330, "Sydbyen", "befolkning", 1350.5, None])
    book.save(landing / "kommune_noegletal" / "b.xlsx")
    os.utime(landing / "kommune_noegletal" / "b.xlsx", (now - 20, now - 20))
    land(landing, "kommune_noegletal", "c.csv", [NOEGLETAL_HEADER, "2018;330;Sydbyen;befolkning;7,5;"], mtime=now - 10)
    rows = ingest_all(landing, warehouse, build_marts=False)
    assert [(r["file_name"], r["encoding"], r["status"]) for r in rows] == [
        ("a.csv", "utf-8", "loaded"), ("b.xlsx", "xlsx", "loaded"), ("c.csv", "utf-8", "loaded")]
    assert query(warehouse, "SELECT delivery_id, taeller FROM staging.kommune_noegletal ORDER BY 1") == [
        (1, 1350.0), (2, 1350.5), (3, 7.5)]
