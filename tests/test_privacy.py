"""Personal data anywhere in a file: a CPR-like value in any column (known to the contract or not),
alone or inside text, in a header or in an XLSX cell, rejects the file; the number is then found in no
table, report, log or output, only in the archive's unchanged copy of the file. Columns a contract
does not know are named to the steward, never silently dropped, and their values are not stored."""

import os
import subprocess
import time

import duckdb
import polars as pl
import pytest
from conftest import boligdata_command, ingest_all, land, query

from flows.cli import main
from transforms.intake.read import first_cpr_like, read_text_rows
from transforms.ledger.runs import RunSummary
from transforms.sources import contract_for
from transforms.steward.report import (
    read_run,
    render_markdown,
    report_dir,
    write_steward_report,
)
from warehouse.files import internal_file

ANMELDELSER_HEADER = "Anmeldelses-ID;Anmeldt dato;Kommunekode;Område;Kategori"
NOEGLETAL_COLUMNS = ["År", "Kommunekode", "Område", "Indikator", "Tæller", "Nævner"]
INDSATS_HEADER = "Plan;Område;Periode;Måling;Værdi;Kommentar"


def report(n: int) -> str:
    return f"P-{n:06d};2016-03-01;330;Sydbyen;Vold"


def _xlsx(path, sheets: dict[str, list[list]]):
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def land_xlsx(landing, source, name, sheets):
    return _xlsx(landing / source / name, sheets)


NOEGLETAL_ROWS = [[2016, 330, "Sydbyen", "befolkning", 1350, None], [2016, 330, "Sydbyen", "beboere_16_64", 900, None]]

# (source, file name, how to land it, CPR as written, what the reason must say): each a different number
CASES = {
    "free text in an unknown column": (
        "politi_anmeldelser", "ukendt_kolonne.csv",
        lambda landing, cpr: land(landing, "politi_anmeldelser", "ukendt_kolonne.csv", [
            ANMELDELSER_HEADER + ";Bemærkning", report(1) + ";", report(2) + f";anmelder {cpr} ringede"]),
        "120389-1234", "in column 'Bemærkning', first at line 3"),
    "inside text in a known column": (
        "indsats_registreringer", "kendt_kolonne.csv",
        lambda landing, cpr: land(landing, "indsats_registreringer", "kendt_kolonne.csv", [
            INDSATS_HEADER, "slagelse-2017;;2019-H1;frivillige;31;forår", "slagelse-2017;;2019-H2;frivillige;27;efterår",
            f"slagelse-2017;;2020;frivillige;41;ringede til {cpr}, bad om at blive kontaktet"]),
        "0503921122", "in column 'Kommentar', first at line 4"),
    "a header": (
        "politi_anmeldelser", "overskrift.csv",
        lambda landing, cpr: land(landing, "politi_anmeldelser", "overskrift.csv", [
            ANMELDELSER_HEADER + f";Anmelder {cpr}", report(1) + ";x"]),
        "311275-4321", "in a header (column 6, line 1)"),
    "an XLSX cell": (
        "kommune_noegletal", "celle.xlsx",
        lambda landing, cpr: land_xlsx(landing, "kommune_noegletal", "celle.xlsx", {"Data": [
            [*NOEGLETAL_COLUMNS, "Sagsbehandler"], [*NOEGLETAL_ROWS[0], None], [*NOEGLETAL_ROWS[1], f"cpr {cpr}"]]}),
        "290200-5566", "in column 'Sagsbehandler', first at line 3"),
    "an XLSX number cell": (
        "kommune_noegletal", "tal.xlsx",
        lambda landing, cpr: land_xlsx(landing, "kommune_noegletal", "tal.xlsx", {"Data": [
            NOEGLETAL_COLUMNS, NOEGLETAL_ROWS[0], [2016, 330, "Sydbyen", "beboere_16_64", int(cpr), None]]}),
        "1709851010", "in column 'Tæller', first at line 3"),
    "a second XLSX sheet": (
        "kommune_noegletal", "ark.xlsx",
        lambda landing, cpr: land_xlsx(landing, "kommune_noegletal", "ark.xlsx", {
            "Data": [NOEGLETAL_COLUMNS, *NOEGLETAL_ROWS], "Noter": [["Note"], [f"spurgt {cpr}"]]}),
        "101010-2020", "in sheet 'Noter', column 'Note', first at line 2"),
    "an XLSX sheet name": (
        "kommune_noegletal", "arknavn.xlsx",
        lambda landing, cpr: land_xlsx(landing, "kommune_noegletal", "arknavn.xlsx", {
            "Data": [NOEGLETAL_COLUMNS, *NOEGLETAL_ROWS], f"Borger {cpr}": [["Note"], ["x"]]}),
        "010203-0405", "in a sheet name (sheet 2)"),
    "one CPR after 100,000 clean rows": (
        "politi_anmeldelser", "stor.csv",
        lambda landing, cpr: land(landing, "politi_anmeldelser", "stor.csv", [
            ANMELDELSER_HEADER, *(report(n) for n in range(100_000)), f"P-X;2016-03-01;330;Sydbyen;Vold {cpr}"]),
        "2402881357", "in column 'Kategori', first at line 100002"),
    "a file polars cannot parse": (
        "politi_anmeldelser", "skaev.csv",
        lambda landing, cpr: land(landing, "politi_anmeldelser", "skaev.csv", [
            ANMELDELSER_HEADER, report(1), f'"P-2;2016-03-01;330;Sydbyen;{cpr}']),
        "150570-0101", "in column 'Kategori', first at line 3"),
}


def forms(cpr: str) -> list[str]:
    """Every way the number could be written back: with and without the hyphen."""
    digits = cpr.replace("-", "")
    return [digits, f"{digits[:6]}-{digits[6:]}"]


def dump_warehouse(warehouse) -> str:
    """Every table and view of every schema, every row, as text (and the catalog's names and comments), of
    the internal file and of the published file beside it."""
    parts = []
    for path in dict.fromkeys([internal_file(warehouse), warehouse]):
        with duckdb.connect(str(path), read_only=True) as conn:
            relations = conn.execute("""SELECT schema_name, table_name FROM duckdb_tables()
                                        UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal""").fetchall()
            parts += [repr(conn.execute("SELECT * FROM duckdb_columns()").fetchall())]
            parts += [repr(conn.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()) for schema, name in relations]
            if path == internal_file(warehouse):
                assert {schema for schema, _ in relations} >= {"meta", "raw", "staging", "marts", "ref"}
    return "\n".join(parts)


def files_outside(root, *kept) -> dict:
    """Every file below root (bytes) except those below the folders given."""
    return {path: path.read_bytes() for path in root.rglob("*")
            if path.is_file() and not any(path.is_relative_to(folder) for folder in kept)}


def assert_nowhere(cpr: str, **outputs) -> None:
    for name, text in outputs.items():
        for form in forms(cpr):
            found = form.encode() in text if isinstance(text, bytes) else form in text
            assert not found, f"the CPR-like value appears in {name}"


@pytest.mark.parametrize("case", list(CASES))
def test_a_cpr_like_value_anywhere_rejects_the_file_and_is_repeated_nowhere(tmp_path, case):
    source, name, deliver, cpr, where = CASES[case]
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "politi_anmeldelser", "ren.csv", [ANMELDELSER_HEADER, report(900_001)])
    deliver(landing, cpr)
    rows = {row["file_name"]: row for row in ingest_all(landing, warehouse)}
    assert rows["ren.csv"]["status"] == "loaded"  # the rest of the run goes on
    row = rows[name]
    assert (row["status"], row["rows_read"], row["rows_loaded"]) == ("rejected", None, None)
    assert row["reason"].startswith(f"CPR-like values (personal data) {where}; extracts must carry no personal data")
    write_steward_report(read_run(warehouse, "test-run"))
    assert_nowhere(cpr, reason=row["reason"], progress_line=RunSummary.describe(row), warehouse=dump_warehouse(warehouse),
                   markdown=render_markdown(read_run(warehouse, "test-run")),
                   **{str(path): data for path, data in files_outside(tmp_path, landing, tmp_path / "archive").items()})
    assert query(warehouse, f"SELECT count(*) FROM {contract_for(source).raw_table} WHERE delivery_id = ?",
                 [row["delivery_id"]]) == [(0,)]
    with open(row["archive_path"], "rb") as archived:  # the one place the bytes remain: the file as delivered
        assert archived.read() == (landing / source / name).read_bytes()


def test_the_check_is_cheap_on_100000_rows():
    clean = pl.DataFrame({"id": [f"P-{n:06d}" for n in range(100_000)], "dato": ["2016-03-01"] * 100_000,
                          "tekst": ["ringede kl. 22 om støj fra nr. 12"] * 100_000, "tal": ["9913991234"] * 100_000})
    with_one = pl.concat([clean, pl.DataFrame({"id": ["x"], "dato": ["x"], "tekst": ["120389-1234"], "tal": ["1"]})])
    started = time.perf_counter()
    assert first_cpr_like(clean) is None  # a 10-digit number that is no date is no CPR
    assert first_cpr_like(with_one) == "column 'tekst', first at line 100002"
    assert time.perf_counter() - started < 2  # about 0.03 s on a laptop


@pytest.mark.parametrize("value", ["120389123456", "Sag 9913991234", "3102891234", "120389-12345", "20160301-1234",
                                   "1.203.891.234", "2016-03-01 12:03:89"])
def test_numbers_that_are_not_cpr_like_load(tmp_path, value):
    """12 digits, a 10-digit number whose first six digits are no date (99.13.99, 31 February),
    a hyphen form with five digits after it, a longer number before the hyphen: none is a CPR."""
    path = land(tmp_path, "indsats_registreringer", "ok.csv", [INDSATS_HEADER, f"slagelse-2017;;2019-H1;frivillige;31;{value}"])
    assert read_text_rows(path, contract_for("indsats_registreringer")).frame["kommentar"].to_list() == [value]


def test_a_column_the_contract_does_not_know_is_named_on_the_delivery_and_its_values_are_not_stored(tmp_path, capsys):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "politi_anmeldelser", "ekstra.csv", [ANMELDELSER_HEADER + ";Sagsbehandler;", report(1) + ";Hemmelig Hansen;",
                                                        report(2) + ";;"])
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["rows_loaded"]) == ("loaded", 2)
    warning = "not loaded, the contract does not know them: column 'Sagsbehandler'"  # the empty unnamed column is no news
    assert row["warnings"] == warning
    assert query(warehouse, "SELECT warnings FROM meta.deliveries") == [(warning,)]
    assert RunSummary.describe(row) == f"politi_anmeldelser/ekstra.csv: loaded (2 of 2 rows loaded); warning: {warning}"
    assert "Hemmelig Hansen" not in dump_warehouse(warehouse)
    assert main(["deliveries", "--warehouse", str(warehouse)]) == 0
    assert "'Sagsbehandler'" in capsys.readouterr().out
    page = write_steward_report(read_run(warehouse, "test-run")).read_text(encoding="utf-8")
    assert "<h2>Warnings</h2>" in page and "column &#x27;Sagsbehandler&#x27;" in page
    assert warning in render_markdown(read_run(warehouse, "test-run"))


def test_an_xlsx_sheet_that_is_not_read_is_named_on_the_delivery(tmp_path):
    path = _xlsx(tmp_path / "n.xlsx", {"Data": [NOEGLETAL_COLUMNS, *NOEGLETAL_ROWS], "Noter": [["Note"], ["ingen"]], "Tom": []})
    rows = read_text_rows(path, contract_for("kommune_noegletal"))
    assert rows.frame.height == 2
    assert rows.warnings == ("not read, only the first sheet is: sheet(s) 'Noter'",)


def test_a_real_run_repeats_no_cpr_like_value_in_any_output(tmp_path):
    """`boligdata run` as installed, with Prefect's own database (logs, artifacts) inside tmp_path: every
    byte it leaves outside the landing folder and the archive is searched for every number."""
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "politi_anmeldelser", "ren.csv", [ANMELDELSER_HEADER, report(900_001)])
    small = {case: spec for case, spec in CASES.items() if case != "one CPR after 100,000 clean rows"}
    for _, _, deliver, cpr, _ in small.values():
        deliver(landing, cpr)
    command = boligdata_command()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect_home")}
    run = subprocess.run([*command, "run", "--landing", str(landing), "--warehouse", str(warehouse)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    for _, name, _, _, where in small.values():
        line = next(line for line in run.stdout.splitlines() if f"/{name}: " in line)
        assert ": rejected: CPR-like values (personal data) " in line and where in line, line
    assert "politi_anmeldelser/ren.csv: loaded (1 of 1 rows loaded)" in run.stdout
    outputs = files_outside(tmp_path, landing, warehouse.with_name(f"{warehouse.stem}_archive"))
    # the warehouse, the steward's reports and Prefect's database (the run's artifact) are among them
    assert warehouse in outputs and any(path.parent == report_dir(warehouse) for path in outputs)
    prefect_db = b"".join(data for path, data in outputs.items() if path.name.startswith("prefect.db"))
    assert b"## Rejected files" in prefect_db
    dump = dump_warehouse(warehouse)
    for _, _, _, cpr, _ in small.values():
        assert_nowhere(cpr, stdout=run.stdout, stderr=run.stderr, warehouse=dump,
                       **{str(path): data for path, data in outputs.items()})


def test_a_warehouse_from_before_the_warnings_column_gains_it(tmp_path):
    from warehouse.load import ensure_schema

    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        ensure_schema(conn)
        conn.execute("ALTER TABLE meta.deliveries DROP COLUMN warnings")  # as an older release left it
        conn.execute("INSERT INTO meta.deliveries (delivery_id, source, file_name, sha256, received_at, status) "
                     "VALUES (1, 'politi_anmeldelser', 'gammel.csv', 'x', now()::TIMESTAMP, 'loaded')")
        ensure_schema(conn)
        assert conn.execute("SELECT delivery_id, warnings FROM meta.deliveries").fetchall() == [(1, None)]
        assert conn.execute("SELECT comment FROM duckdb_columns() WHERE schema_name = 'meta' "
                            "AND table_name = 'deliveries' AND column_name = 'warnings'").fetchall()[0][0]
