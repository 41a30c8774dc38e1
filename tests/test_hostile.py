"""Hostile and broken input: nothing leaks, nothing lies, nothing blows up."""

import os
import re

import pytest
from conftest import (
    SIGTELSER_HEADER,
    boligdata_command,
    ingest_all,
    land,
    query,
    sigtelser_year,
)

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


def test_reference_data_is_checked_once_per_version_and_again_after_an_edit(tmp_path, monkeypatch):
    """A served worker checks and reads the reference files once per version of them: an edit, even
    one that puts the modification time back, is checked and read again; a failed check is not kept."""
    import os
    import shutil

    from transforms import file_versions
    from transforms.file_versions import RECENT_CHANGE_NS
    from transforms.reference import load_reference

    reference = tmp_path / "reference"
    shutil.copytree(DEFAULT_REFERENCE_DIR, reference)
    plans = reference / "plan_areas.csv"

    def settled():  # the clock, faked: every file changed long enough ago to have a version
        newest = max(os.stat(p).st_ctime_ns for p in reference.glob("*.csv"))
        monkeypatch.setattr(file_versions, "time_ns", lambda: newest + RECENT_CHANGE_NS + 1)

    settled()
    checks = check_reference_tables.cache_info().misses
    check_reference_tables(reference)
    check_reference_tables(reference)
    assert check_reference_tables.cache_info().misses == checks + 1
    assert load_reference(reference) is load_reference(reference)

    before, text = os.stat(plans), plans.read_text(encoding="utf-8")
    plans.write_text(text + "slagelse-2017;atlantis\n", encoding="utf-8")
    os.utime(plans, ns=(before.st_atime_ns, before.st_mtime_ns))  # the modification time put back
    monkeypatch.setattr(file_versions, "time_ns", lambda: os.stat(plans).st_ctime_ns)  # just changed
    for _ in range(2):  # no version yet: checked every time
        with pytest.raises(ReferenceDataError, match="atlantis"):
            check_reference_tables(reference)
    settled()
    with pytest.raises(ReferenceDataError, match="atlantis"):  # a failure is not kept
        check_reference_tables(reference)
    plans.write_text(text, encoding="utf-8")
    settled()
    check_reference_tables(reference)
    assert check_reference_tables.cache_info().misses == checks + 3


def test_an_xlsx_that_inflates_past_the_bound_is_rejected_before_it_is_read(paths, monkeypatch):
    import zipfile

    from conftest import BOLIGORG_HEADER
    from openpyxl import Workbook

    landing, warehouse = paths
    book = Workbook()
    book.active.append(BOLIGORG_HEADER.split(";"))
    (landing / "boligorg_afdelinger").mkdir(parents=True)
    path = landing / "boligorg_afdelinger" / "bomb.xlsx"
    book.save(path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as workbook:
        workbook.writestr("xl/worksheets/padding.xml", b"0" * (32 << 20))  # 32 MiB of zeros, ~32 KB deflated
    assert path.stat().st_size < 200_000
    monkeypatch.setenv("BOLIGDATA_MAX_INFLATED_BYTES", str(16 << 20))
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["reason"]) == ("rejected", f"XLSX inflates to {(32 << 20) + _parts(path):,} bytes, "
                                              f"over the limit of {16 << 20:,} (BOLIGDATA_MAX_INFLATED_BYTES)")


def _parts(path) -> int:
    import zipfile

    with zipfile.ZipFile(path) as workbook:
        return sum(e.file_size for e in workbook.infolist() if e.filename != "xl/worksheets/padding.xml")


def test_a_csv_with_more_lines_than_allowed_is_rejected(paths, monkeypatch):
    landing, warehouse = paths
    land(landing, "politi_sigtelser", "long.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")])
    monkeypatch.setenv("BOLIGDATA_MAX_ROWS", "3")
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["reason"]) == ("rejected", "file has 5 lines, over the limit of 3 (BOLIGDATA_MAX_ROWS)")


def test_a_report_that_cannot_be_written_does_not_make_a_published_run_a_failed_one(paths, prefect_server):
    from flows.pipeline import run_pipeline

    landing, warehouse = paths
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")])
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    (warehouse.parent / "w_reports").write_text("a file where the report folder should be")
    summary = run_pipeline(landing=str(landing), warehouse=str(warehouse))
    assert summary.status_counts == {"loaded": 1}
    assert query(warehouse, "SELECT status FROM meta.deliveries") == [("loaded",)]  # published
    (warning,) = summary.warnings
    assert warning.startswith("the steward report was not written (") and warning.endswith("the warehouse was published")
    assert f"Warning: {warning}" in summary.render()


def test_an_archive_that_cannot_be_written_is_named_before_anything_happens(paths, prefect_server):
    from flows.pipeline import run_pipeline
    from warehouse.build import WarehouseUnavailable

    landing, warehouse = paths
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")])
    blocked = warehouse.parent / "archive-is-a-file"
    blocked.write_text("x")
    with pytest.raises(WarehouseUnavailable, match=f"the raw file archive {blocked} cannot be created: File exists"):
        run_pipeline(landing=str(landing), warehouse=str(warehouse), archive_dir=str(blocked))
    assert not warehouse.exists()


FUZZ_FILES = 520
FUZZ_SEED = 20261125


def _fuzzed(template: bytes, rng) -> bytes:
    """One hostile variant of a valid delivery."""
    data = bytearray(template)
    kind = rng.randrange(10)
    if kind == 0:  # flipped bytes
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:  # cut short
        del data[rng.randrange(len(data)):]
    elif kind == 2:  # a stray quote
        data.insert(rng.randrange(len(data)), ord('"'))
    elif kind == 3:  # numbers that are not numbers
        text = data.decode("utf-8", "replace")
        digits = [i for i, c in enumerate(text) if c.isdigit()]
        if digits:
            i = rng.choice(digits)
            text = text[:i] + rng.choice(["1" + "0" * 400, "inf", "NaN", "-7", "1e308", "9" * 30, ""]) + text[i + 1:]
        data = bytearray(text.encode("utf-8"))
    elif kind == 4:  # garbage
        data = bytearray(rng.randbytes(rng.randrange(1, 2000)))
    elif kind == 5:  # empty or whitespace
        data = bytearray(rng.choice([b"", b"\r\n", b"   "]))
    elif kind == 6:  # the wrong delimiter
        data = bytearray(data.replace(b";", b","))
    elif kind == 7:  # personal data in free text
        data = bytearray(data.replace(b"\r\n", b";anmelder 120389-1234 ringede\r\n", 1))
    elif kind == 8:  # Windows-1252
        data = bytearray(data.decode("utf-8").encode("cp1252", "replace"))
    else:  # rows repeated
        lines = data.split(b"\r\n")
        data = bytearray(b"\r\n".join(lines + lines[1:] * rng.randrange(1, 4)))
    return bytes(data)


def test_fuzzed_deliveries_each_end_in_the_ledger_and_leave_no_non_finite_value(paths):
    import random

    from conftest import BOLIGORG_HEADER, NOEGLETAL_HEADER

    landing, warehouse = paths
    templates = {
        "politi_sigtelser": [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej"), *sigtelser_year(2016, "Hele kommunen")],
        "kommune_noegletal": [NOEGLETAL_HEADER, "2016;330;Motalavej;befolkning;1.500;",
                              "2016;330;Motalavej;uddannelsesparat_9kl_andel;45;90"],
        "boligorg_afdelinger": [BOLIGORG_HEADER, "BoligKorsør;015;2016;300;30;2;766;16;61.872,50;890"],
        "politi_anmeldelser": ["Anmeldelses-ID;Anmeldt dato;Kommunekode;Område;Kategori",
                               "A1;2016-03-01;330;Motalavej;Hærværk", "A2;2016-03-02;330;;Vold"],
        "politi_tryghed": ["År;Kommunekode;Område;Andel trygge (%);Andel utrygge (%);Respondenter",
                           "2016;330;Motalavej;58,3;20,1;120"],
        "indsats_registreringer": ["Plan;Område;Periode;Måling;Værdi;Kommentar", "slagelse-2017;;2018-H1;frivillige;30;"],
    }
    rng = random.Random(FUZZ_SEED)
    sources = sorted(templates)
    for n in range(FUZZ_FILES):
        source = sources[n % len(sources)]
        template = ("\r\n".join(templates[source]) + "\r\n").encode("utf-8")
        path = landing / source / f"fuzz-{n:04d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_fuzzed(template, rng))
    rows = ingest_all(landing, warehouse)
    assert len(rows) == FUZZ_FILES  # every file: one ledger row, with a status
    assert {r["status"] for r in rows} <= {"loaded", "loaded_with_quarantine", "rejected", "duplicate"}
    assert all(r["reason"] for r in rows if r["status"] == "rejected")
    assert all("120389-1234" not in (r["reason"] or "") for r in rows)
    numeric = query(warehouse, """SELECT table_schema, table_name, column_name FROM information_schema.columns
                                  WHERE data_type IN ('DOUBLE', 'FLOAT', 'REAL')""")
    for schema, table, column in numeric:
        assert query(warehouse, f'SELECT count(*) FROM {schema}.{table} WHERE NOT isfinite("{column}")') == [(0,)], \
            f"{schema}.{table}.{column}"


@pytest.mark.parametrize("written", ["150585 1115", "150585–1115", "150585\u20111115", "15 05 85 11 15",
                                     "\uff11\uff15\uff10\uff15\uff18\uff15\uff11\uff11\uff11\uff15"])
def test_cpr_numbers_written_otherwise_are_found_and_never_repeated(paths, written):
    landing, warehouse = paths
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER + ";Bemærkning",
                                                *(row + ";" for row in sigtelser_year(2016, "Motalavej")[:-1]),
                                                sigtelser_year(2016, "Motalavej")[-1] + f";ring {written} tilbage"])
    (row,) = ingest_all(landing, warehouse)
    assert row["status"] == "rejected" and row["reason"].startswith("CPR-like values (personal data) in column 'Bemærkning'")
    assert written not in row["reason"]


def test_a_cpr_in_a_file_name_is_masked_in_the_ledger_and_the_file_rejected(paths):
    landing, warehouse = paths
    land(landing, "politi_sigtelser", "borger_150585-1115.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")])
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["file_name"]) == ("rejected", "borger_######-####.csv")
    assert "150585" not in str(query(warehouse, "SELECT * FROM meta.deliveries"))
    assert ingest_all(landing, warehouse) == []  # recorded once


def test_an_unparseable_csv_is_rejected_without_quoting_its_content(paths):
    landing, warehouse = paths
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, '2016;330;"Hr. Jensen, Ringparken;Straffeloven;1;1;;'])
    (row,) = ingest_all(landing, warehouse)
    assert row["status"] == "rejected" and "Jensen" not in row["reason"]


def test_a_copy_of_a_file_rejected_in_the_same_run_is_rejected_for_the_same_reason(paths):
    landing, warehouse = paths
    bad = land(landing, "politi_sigtelser", "a.csv", ["År;Kommunekode", "2016;330"], mtime=1)
    land(landing, "politi_sigtelser", "b.csv", ["År;Kommunekode", "2016;330"], mtime=2)
    first, copy = ingest_all(landing, warehouse)
    assert (first["status"], copy["status"]) == ("rejected", "rejected")
    assert copy["reason"] == f"same bytes as delivery {first['delivery_id']}, which was rejected: {first['reason']}"
    assert bad.exists()


def test_the_same_bytes_in_another_source_folder_are_a_delivery_of_their_own(paths):
    """A file first dropped in the wrong folder and then in the right one: the wrong one is rejected under
    its folder's contract, the right one loads (it is no copy of the rejected one)."""
    landing, warehouse = paths
    lines = [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")]
    land(landing, "kommune_noegletal", "s.csv", lines, mtime=1)
    land(landing, "politi_sigtelser", "s.csv", lines, mtime=2)
    wrong, right = ingest_all(landing, warehouse)
    assert (wrong["source"], wrong["status"]) == ("kommune_noegletal", "rejected")
    assert (right["source"], right["status"], right["rows_loaded"]) == ("politi_sigtelser", "loaded", 4)
    assert query(warehouse, "SELECT count(*) FROM staging.politi_sigtelser") == [(4,)]


def test_an_unclosed_quote_in_the_header_is_named(paths):
    landing, warehouse = paths
    land(landing, "politi_sigtelser", "q.csv", [SIGTELSER_HEADER.replace("Område", '"Område'),
                                                *sigtelser_year(2016, "Motalavej")])
    (row,) = ingest_all(landing, warehouse)
    assert (row["status"], row["reason"]) == ("rejected", 'the header line has an unclosed quote ("), which would '
                                              "swallow the rows below it; remove or close it")


def test_a_failed_run_says_nothing_of_it_was_published(tmp_path):
    import subprocess

    landing = tmp_path / "landing"
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")])
    reference = tmp_path / "reference"
    import shutil

    shutil.copytree(DEFAULT_REFERENCE_DIR, reference)
    (reference / "areas.csv").write_text("area_id;name;kommune_code\nmotalavej;Motalavej;330\nmotalavej;Igen;330\n")
    command = boligdata_command()
    run = subprocess.run([*command, "run", "--landing", str(landing), "--warehouse", str(tmp_path / "w.duckdb"),
                          "--reference", str(reference)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert run.stderr.strip().endswith("; nothing of this run was published (-v shows details)")
    assert "an area id twice: motalavej" in run.stderr
    assert not (tmp_path / "w.duckdb").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MB file system of its own (tmpfs), so that a full disk is a real ENOSPC from the kernel:
    as root, permissions cannot simulate it."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small file system cannot be mounted here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_fails_the_run_with_one_line_and_leaves_the_published_file_and_nothing_else(tmp_path, small_disk,
                                                                                               prefect_server):
    import hashlib
    import subprocess

    from flows.pipeline import run_pipeline

    landing, warehouse = tmp_path / "landing", small_disk / "w.duckdb"
    land(landing, "politi_sigtelser", "2016.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")])
    assert run_pipeline(landing=str(landing), warehouse=str(warehouse)).status_counts == {"loaded": 1}
    published = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in small_disk.glob("*.duckdb")}
    stat = os.statvfs(small_disk)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 256 * 1024))
    land(landing, "politi_sigtelser", "2017.csv", [SIGTELSER_HEADER, *sigtelser_year(2017, "Motalavej")])

    command = boligdata_command()
    run = subprocess.run([*command, "run", "--landing", str(landing), "--warehouse", str(warehouse)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr  # one line, no traceback
    (line,) = lines
    assert line.startswith("boligdata: run failed, warehouse unchanged: the disk is full (No space left on device); "
                           "free space or fix the folder, then run again: ")
    assert line.endswith("; nothing of this run was published (-v shows details)")
    # the published and internal files as the last run left them, and no build, log, spill or half-published file
    assert {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in small_disk.glob("*.duckdb")} == published
    assert sorted(p.name for p in small_disk.iterdir() if p.name.startswith(".")) == [".w.duckdb.lock"]

    filler.unlink()  # space again: the file that waited in the landing folder is taken in
    assert run_pipeline(landing=str(landing), warehouse=str(warehouse)).status_counts == {"loaded": 1}
    assert query(warehouse, "SELECT file_name, status FROM meta.deliveries ORDER BY 1") == [("2016.csv", "loaded"),
                                                                                             ("2017.csv", "loaded")]


def test_an_ingestion_that_fails_names_its_error_not_the_validation_it_left_pending(tmp_path):
    """A spill folder that cannot be made (BOLIGDATA_SPILL_DIR names a file): the one line says why, not
    Prefect's "Run is in PENDING state" of the validation that waited on it."""
    import subprocess

    landing, warehouse, not_a_folder = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "spill"
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")])
    not_a_folder.write_text("a file, not a folder")
    command = boligdata_command()
    run = subprocess.run([*command, "run", "--landing", str(landing), "--warehouse", str(warehouse)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "BOLIGDATA_SPILL_DIR": str(not_a_folder)})
    assert run.returncode == 1
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"boligdata: run failed, warehouse unchanged: [Errno 20] Not a directory: '{not_a_folder}/")
    assert "PENDING" not in line
    assert not warehouse.exists()
