"""The data steward's workflow: see what failed, fix it three ways, nothing lost meanwhile."""

import html
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from conftest import (
    NOEGLETAL_HEADER,
    SIGTELSER_HEADER,
    indicator,
    ingest_all,
    land,
    query,
    sigtelser_year,
    write_extract,
)

from flows.cli import main
from transforms.reference import DEFAULT_REFERENCE_DIR
from transforms.steward import report
from transforms.steward.quarantine import read_quarantine, retry_quarantined, waive
from transforms.steward.report import read_run, render_html, render_markdown


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "landing", tmp_path / "w.duckdb"


def noegletal_with_typo(landing, mtime=None):
    return land(landing, "kommune_noegletal", "n.csv", [
        NOEGLETAL_HEADER,
        "2016;330;Motalavej;befolkning;1.500;",
        "2016;330;Motalvej;frivillige_18plus_andel;180;1060",
        "2016;330;Sydbyen;frivillige_18plus_andel;..;1000",
    ], mtime=mtime)


def test_quarantine_lists_file_line_rule_in_plain_words_and_value(paths):
    landing, warehouse = paths
    noegletal_with_typo(landing)
    ingest_all(landing, warehouse)
    rows = read_quarantine(warehouse).select("file_name", "line_number", "column_name", "value", "rule", "rule_description")
    assert rows.rows() == [
        ("n.csv", 3, "omraade", "Motalvej", "unknown_area",
         "Område must be a known area or alias (reference data), or Hele kommunen"),
        ("n.csv", 4, "taeller", "..", "missing_value", "Tæller must be filled in (.. or empty is missing, never 0)"),
    ]
    assert read_quarantine(warehouse, rule="missing_value").height == 1
    assert read_quarantine(warehouse, source="politi_sigtelser").is_empty()


def test_a_reference_fix_and_retry_releases_the_rows_that_now_pass_and_updates_the_marts(paths, tmp_path):
    landing, warehouse = paths
    noegletal_with_typo(landing)
    ingest_all(landing, warehouse)
    assert indicator(warehouse, "frivillige_18plus_andel", "area", "motalavej", 2016) is None
    reference = tmp_path / "reference"
    shutil.copytree(DEFAULT_REFERENCE_DIR, reference)
    with open(reference / "scope_aliases.csv", "a", encoding="utf-8") as aliases:
        aliases.write("Motalvej;area;motalavej\n")

    outcomes = retry_quarantined(warehouse, reference, who="steward")
    from warehouse.materialize import materialize
    materialize(warehouse, reference)

    assert [(o.released_rows, o.still_open_rows) for o in outcomes] == [(1, 1)]
    assert query(warehouse, "SELECT line_number, status, resolved_by FROM meta.quarantine ORDER BY 1") == [
        (3, "released", "steward"), (4, "open", None)]
    assert indicator(warehouse, "frivillige_18plus_andel", "area", "motalavej", 2016) == (180 / 1060 * 100, 180.0, 1060.0)
    assert query(warehouse, "SELECT status, rows_loaded, rows_quarantined FROM meta.deliveries") == [
        ("loaded_with_quarantine", 2, 1)]


def test_a_waiver_closes_rows_with_who_when_and_why(paths):
    landing, warehouse = paths
    noegletal_with_typo(landing)
    ingest_all(landing, warehouse)
    with pytest.raises(ValueError, match="needs a reason"):
        waive(warehouse, "  ", delivery_id=1)
    assert waive(warehouse, "Sydbyen did not report 2016", delivery_id=1, line_number=4, who="kirsten") == 1
    assert query(warehouse, """SELECT line_number, status, resolved_by, note, resolved_at IS NOT NULL
                               FROM meta.quarantine ORDER BY 1""") == [
        (3, "open", None, None, False), (4, "waived", "kirsten", "Sydbyen did not report 2016", True)]
    assert retry_quarantined(warehouse, DEFAULT_REFERENCE_DIR)[0].still_open_rows == 1  # a waived row is not retried


def test_the_cli_lists_shows_and_waives(paths, capsys):
    landing, warehouse = paths
    noegletal_with_typo(landing)
    ingest_all(landing, warehouse)
    assert main(["deliveries", "--warehouse", str(warehouse), "--status", "loaded_with_quarantine"]) == 0
    assert "n.csv" in capsys.readouterr().out
    assert main(["quarantine", "list", "--warehouse", str(warehouse), "--rule", "unknown_area"]) == 0
    out = capsys.readouterr().out
    assert "Motalvej" in out and "unknown_area" in out and ".." not in out
    assert main(["quarantine", "show", "1", "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert "line 3: År=2016; Kommunekode=330; Område=Motalvej; Indikator=frivillige_18plus_andel; Tæller=180; Nævner=1060" in out
    assert "[open] unknown_area on omraade = 'Motalvej': Område must be a known area" in out
    assert main(["quarantine", "waive", "--warehouse", str(warehouse), "--rule", "missing_value",
                 "--reason", "not reported"]) == 0
    assert capsys.readouterr().out.strip() == "waived 1 quarantined row problem(s): not reported"
    assert main(["quarantine", "waive", "--warehouse", str(warehouse), "--reason", "everything"]) == 2
    assert "say which rows to waive" in capsys.readouterr().err


BAD_INPUTS = [
    # (folder, file name, bytes, expected status, expected reason or quarantined rule)
    ("politi_sigtelser", "empty.csv", b"", "rejected", "empty file"),
    ("politi_sigtelser", "garbage.csv", bytes(range(256)) * 4, "rejected", "not a text file"),
    ("politi_sigtelser", "missing.csv", "År;Kommunekode;Område;Lovområde;Afgørelser;Sigtelser\r\n2016;330;Sydbyen;I alt;1;1\r\n".encode(),
     "rejected", "missing required column(s): Sigtede, Sigtede 15-29 år"),
    ("politi_ukendt", "x.csv", b"a;b\r\n1;2\r\n", "rejected", "unknown source folder 'politi_ukendt'"),
    ("politi_anmeldelser", "cpr.csv", "Anmeldelses-ID;Anmeldt dato;Kommunekode;Område;Kategori;Anmelder\r\n"
     "A1;2016-01-01;330;Sydbyen;Vold;010190-1234\r\n".encode(), "rejected",
     "CPR-like values (personal data) in column 'Anmelder', first at line 2"),
    ("kommune_noegletal", "sql.csv", 'År;Kommunekode;"Område""; DROP TABLE meta.deliveries; --";Indikator;Tæller;Nævner\r\n'
     "2016;330;Sydbyen;befolkning;1;\r\n".encode(), "rejected", "missing required column(s): Område"),
]


@pytest.mark.parametrize(("folder", "name", "content", "status", "reason"), BAD_INPUTS, ids=[b[1] for b in BAD_INPUTS])
def test_bad_files_are_rejected_with_a_reason_and_kept(paths, folder, name, content, status, reason):
    landing, warehouse = paths
    write_extract(landing / "politi_sigtelser" / "good.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    (landing / folder).mkdir(parents=True, exist_ok=True)
    (landing / folder / name).write_bytes(content)
    rows = {row["file_name"]: row for row in ingest_all(landing, warehouse)}
    assert rows[name]["status"] == status
    assert rows[name]["reason"].startswith(reason)
    assert "010190" not in rows[name]["reason"]  # personal data is never repeated
    assert open(rows[name]["archive_path"], "rb").read() == content
    assert rows["good.csv"]["status"] == "loaded"  # the rest of the run is not affected
    assert query(warehouse, "SELECT count(*) FROM meta.deliveries") == [(2,)]


def test_a_file_over_the_size_limit_is_rejected(paths, monkeypatch):
    landing, warehouse = paths
    write_extract(landing / "politi_sigtelser" / "big.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    monkeypatch.setenv("BOLIGDATA_MAX_FILE_BYTES", "100")
    (row,) = ingest_all(landing, warehouse)
    assert row["status"] == "rejected" and "over the limit of 100 (BOLIGDATA_MAX_FILE_BYTES)" in row["reason"]


class _ExternalReferences(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found, self.tags = [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset") and value and not value.startswith("#"):
                self.found.append((tag, name, value))


def test_the_steward_report_names_every_problem_and_renders_offline(paths):
    landing, warehouse = paths
    noegletal_with_typo(landing)
    (landing / "politi_sigtelser").mkdir()
    (landing / "politi_sigtelser" / "empty.csv").write_bytes(b"")
    rows = ingest_all(landing, warehouse)
    page = render_html(read_run(warehouse, "test-run"))
    assert all(f">{row['file_name']}" in page or f"/{row['file_name']}<" in page for row in rows)
    assert "empty file" in page
    assert "Motalvej" in page and "Område must be a known area or alias (reference data), or Hele kommunen" in page
    assert "Tæller must be filled in (.. or empty is missing, never 0)" in page
    assert "Open quarantined row problems in the whole warehouse: 2." in page
    parser = _ExternalReferences()
    parser.feed(page)
    assert parser.found == [] and not parser.tags & {"script", "link", "img", "iframe"}
    assert "http://" not in page and "https://" not in page and "@import" not in page and "url(" not in page

    summary = render_markdown(read_run(warehouse, "test-run"))
    assert "| loaded_with_quarantine | 1 | 1 | 2 |" in summary
    assert "| rejected | 1 | 0 | 0 |" in summary
    assert "- `politi_sigtelser/empty.csv`: empty file" in summary
    assert "| kommune_noegletal | unknown_area | 1 |" in summary


def test_a_duplicate_key_within_and_across_deliveries_and_a_total_row_in_a_housing_file(paths):
    landing, warehouse = paths
    now = time.time()
    header = "Hændelses-ID;Dato;Kommunekode;Område;Hændelsestype"
    land(landing, "brand_haendelser", "a.csv", [header, "B1;2016-01-01;330;Sydbyen;Bilbrand",
                                                "B1;2016-01-02;330;Sydbyen;Bilbrand"], mtime=now - 10)
    land(landing, "brand_haendelser", "b.csv", [header, "B2;2017-01-01;330;Sydbyen;Bilbrand"], mtime=now - 5)
    land(landing, "brand_haendelser", "c.csv", [header, "B2;2018-01-01;330;Sydbyen;Bilbrand"], mtime=now)
    ingest_all(landing, warehouse)
    assert query(warehouse, "SELECT delivery_id, line_number, rule, value, note FROM meta.quarantine ORDER BY 1, 2") == [
        (1, 3, "duplicate_in_delivery", "B1", "already in this delivery at line 2"),
        (3, 2, "duplicate_id", "B2", "already loaded by delivery 2, line 2")]
    assert query(warehouse, "SELECT delivery_id, line_number FROM staging.brand_haendelser ORDER BY 1, 2") == [(1, 2), (2, 2)]
    (description,) = read_quarantine(warehouse, rule="duplicate_in_delivery")["rule_description"]
    assert description.startswith("Each Hændelses-ID may occur once in a delivery: this row repeats an earlier line")


def test_retry_judges_a_held_back_row_with_the_rest_of_its_delivery(paths, tmp_path):
    """An I alt row held back for its area name is checked against its law rows, which were loaded."""
    landing, warehouse = paths
    land(landing, "politi_sigtelser", "s.csv", [
        SIGTELSER_HEADER,
        "2016;330;Motalavej;Straffeloven;30;60;;",
        "2016;330;Motalavej;Våbenloven;5;8;;",
        "2016;330;Motalavej;Lov om euforiserende stoffer;10;20;;",
        "2016;330;Motalvej;I alt;45;88;40;20",
    ])
    ingest_all(landing, warehouse)
    assert {rule for (rule,) in query(warehouse, "SELECT rule FROM meta.quarantine")} == {"unknown_area", "i_alt_sum"}
    reference = tmp_path / "reference"
    shutil.copytree(DEFAULT_REFERENCE_DIR, reference)
    with open(reference / "scope_aliases.csv", "a", encoding="utf-8") as aliases:
        aliases.write("Motalvej;area;motalavej\n")
    ((archived,),) = query(warehouse, "SELECT archive_path FROM meta.deliveries")
    Path(archived).rename(tmp_path / "elsewhere")  # the delivery is read again from its archived file
    (outcome,) = retry_quarantined(warehouse, reference)
    assert (outcome.released_rows, outcome.still_open_rows, outcome.problems) == (0, 1, [f"its archived file is missing: {archived}"])
    assert query(warehouse, "SELECT DISTINCT line_number FROM meta.quarantine WHERE status = 'open'") == [(5,)]
    (tmp_path / "elsewhere").rename(archived)
    (outcome,) = retry_quarantined(warehouse, reference)
    assert (outcome.released_rows, outcome.still_open_rows) == (1, 0)
    assert query(warehouse, "SELECT count(*) FROM staging.politi_sigtelser WHERE scope_id = 'motalavej'") == [(4,)]


def test_the_report_escapes_what_files_hold_and_shows_at_most_its_rows_per_delivery(tmp_path):
    hostile = "<b>\"x\" & 'y'</b>"
    deliveries = pl.DataFrame({"delivery_id": [7], "source": ["politi_tryghed"], "file_name": ["a&b.csv"],
                               "status": ["loaded_with_quarantine"], "reason": [None], "rows_read": [503],
                               "rows_loaded": [0], "rows_quarantined": [503], "warnings": [None]},
                              schema_overrides={"reason": pl.Utf8, "warnings": pl.Utf8})
    lines = range(1, report.ROWS_PER_DELIVERY + 4)
    problems = pl.DataFrame({"delivery_id": 7, "source": "politi_tryghed", "file_name": "a&b.csv",
                             "line_number": list(lines), "column_name": "omraade",
                             "value": [hostile if n == 1 else None for n in lines], "rule": "unknown_area",
                             "rule_description": "Område must be known", "status": "open"})
    page = render_html(report.RunOutcome(tmp_path / "w.duckdb", "r1", deliveries, problems, 503))
    assert f"<td>{html.escape(hostile)}</td>" in page and hostile not in page
    assert "<td>politi_tryghed/a&amp;b.csv</td>" in page and "<h3>politi_tryghed/a&amp;b.csv (delivery 7)</h3>" in page
    assert "<tr><td class=num>7</td><td>politi_tryghed/a&amp;b.csv</td><td>loaded_with_quarantine</td>" \
           "<td class=num>503</td><td class=num>0</td><td class=num>503</td></tr>" in page
    assert "<tr><td class=num>2</td><td>omraade</td><td></td><td>unknown_area</td>" in page  # a missing value: empty
    assert f"<td class=num>{report.ROWS_PER_DELIVERY}</td>" in page
    assert f"<td class=num>{report.ROWS_PER_DELIVERY + 1}</td>" not in page
    assert "... and 3 more: <code>boligdata quarantine list --delivery 7</code>" in page
