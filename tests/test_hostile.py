"""Hostile and broken input: nothing leaks, nothing lies, nothing blows up."""

import os
import re

import pytest
from conftest import SIGTELSER_HEADER, ingest_all, land, query, sigtelser_year

from transforms.reference import (
    DEFAULT_REFERENCE_DIR,
    ReferenceDataError,
    check_reference_tables,
)


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "landing", tmp_path / "w.duckdb"


def test_links_and_pipes_in_landing_are_recorded_and_never_read(paths, tmp_path):
    landing, warehouse = paths
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "passwd"
    secret.write_text("root:x:0:0:secret\n")
    valid = land(outside, "politi_sigtelser", "valid.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")])
    folder = landing / "politi_sigtelser"
    folder.mkdir(parents=True)
    (folder / "passwd.csv").symlink_to(secret)
    (folder / "valid.csv").symlink_to(valid)
    (folder / "dangling.csv").symlink_to(outside / "gone.csv")
    os.mkfifo(folder / "pipe.csv")
    (folder / "sub").symlink_to(outside / "politi_sigtelser", target_is_directory=True)
    (landing / "kommune_noegletal").symlink_to(outside / "politi_sigtelser", target_is_directory=True)

    rows = ingest_all(landing, warehouse)
    outcome = {(r["source"], r["file_name"]): (r["status"], r["reason"], r["archive_path"]) for r in rows}
    link = "a symbolic link: not followed (nothing outside the landing folder is read)"
    assert outcome == {
        ("politi_sigtelser", "passwd.csv"): ("rejected", link, None),
        ("politi_sigtelser", "valid.csv"): ("rejected", link, None),
        ("politi_sigtelser", "dangling.csv"): ("rejected", link, None),
        ("politi_sigtelser", "sub"): ("rejected", link, None),
        ("politi_sigtelser", "pipe.csv"): ("rejected", "not a regular file (a named pipe, socket or device): not read", None),
        ("", "kommune_noegletal"): ("rejected", link, None),
    }
    assert query(warehouse, "SELECT count(*) FROM raw.politi_sigtelser") == [(0,)]
    archived = [p for p in (warehouse.parent / "archive").rglob("*") if p.is_file()] if (warehouse.parent / "archive").exists() else []
    assert archived == []
    # seen once, recorded once
    assert ingest_all(landing, warehouse) == []


def test_an_xlsx_in_a_csv_only_folder_is_rejected_for_its_format_even_when_its_bytes_loaded_elsewhere(paths):
    from conftest import BOLIGORG_HEADER
    from openpyxl import Workbook

    landing, warehouse = paths
    book = Workbook()
    book.active.append(BOLIGORG_HEADER.split(";"))
    book.active.append(["FOB", 23, 2016, 100, 10, 1, 10, 2, 1234.5, None])
    (landing / "boligorg_afdelinger").mkdir(parents=True)
    (landing / "politi_sigtelser").mkdir(parents=True)
    book.save(landing / "boligorg_afdelinger" / "fob.xlsx")
    os.utime(landing / "boligorg_afdelinger" / "fob.xlsx", (1, 1))
    (landing / "politi_sigtelser" / "fob.xlsx").write_bytes((landing / "boligorg_afdelinger" / "fob.xlsx").read_bytes())
    rows = ingest_all(landing, warehouse)
    assert [(r["source"], r["status"], r["reason"]) for r in rows] == [
        ("boligorg_afdelinger", "loaded", None),
        ("politi_sigtelser", "rejected", "XLSX is not accepted for politi_sigtelser; deliver ;-separated CSV")]


@pytest.mark.parametrize(("name", "change", "message"), [
    ("indicators", lambda text: text + text.splitlines()[1] + "\n", "indicators.csv: an indicator twice"),
    ("scope_aliases", lambda text: text + "Ringparken;area;sydbyen\n", "scope_aliases.csv: an alias that names two places: Ringparken"),
    ("scope_aliases", lambda text: text + "Nørrebro;area;noerrebro\n", "an alias for an unknown area or bydel, or a level that does not exist: Nørrebro"),
    ("areas", lambda text: text + "kort\n", "areas.csv: an area without id or name, or with an unknown kommune (a short row?): kort"),
    ("plan_areas", lambda text: text + "slagelse-2017;atlantis\n", "plan_areas.csv: a plan or area that does not exist: slagelse-2017/atlantis"),
    ("targets", lambda text: text + text.splitlines()[1].replace("tryghed_andel", "lykke_andel", 1) + "\n",
     "targets.csv: a target twice for the same scope, or of an indicator the catalog lacks"),
])
def test_reference_data_that_contradicts_itself_stops_the_run(tmp_path, name, change, message):
    import shutil

    reference = tmp_path / "reference"
    shutil.copytree(DEFAULT_REFERENCE_DIR, reference)
    path = reference / f"{name}.csv"
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ReferenceDataError, match=re.escape(message)):
        check_reference_tables(reference)
