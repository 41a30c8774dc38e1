"""The file analysts open: marts, meta and ref only, described, readable by the DuckDB releases they have."""

import os
import shutil
import subprocess
import sys

import duckdb
import pytest
from conftest import REPO

from flows.pipeline import run_pipeline
from warehouse.build import write_published
from warehouse.files import internal_path

pytestmark = pytest.mark.usefixtures("prefect_server")
UV = REPO / ".tools" / "bin" / "uv"


@pytest.fixture(scope="module")
def published(prefect_server, tmp_path_factory):
    """The demo warehouse, published twice: the second run adds a year of police reports, so FILE is
    the first run's FILE with what changed written into it (write_published's usual path)."""
    folder = tmp_path_factory.mktemp("published")
    landing, warehouse = folder / "landing", folder / "w.duckdb"
    shutil.copytree(REPO / "demo" / "landing", landing)
    held_back = landing / "politi_anmeldelser" / "anmeldelser_330_2021.csv"
    held_back.rename(folder / held_back.name)
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    (folder / held_back.name).rename(held_back)
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    return warehouse


def _contents(path) -> tuple:
    """Every published table's description, columns and rows (in order of value, not of storage)."""
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = conn.execute("SELECT schema_name, table_name, comment FROM duckdb_tables() ORDER BY ALL").fetchall()
        columns = conn.execute("SELECT schema_name, table_name, column_index, column_name, data_type, comment "
                               "FROM duckdb_columns() ORDER BY ALL").fetchall()
        rows = {f"{s}.{t}": conn.execute(f"SELECT * FROM {s}.{t} ORDER BY ALL").fetchall() for s, t, _ in tables}
    return tables, columns, rows


def _written_anew(internal, path):
    path.unlink(missing_ok=True)
    write_published(internal, path)
    return _contents(path)


def test_publishing_what_changed_gives_the_file_a_fresh_write_gives(published, tmp_path):
    """FILE is written from its last version (only the changed years and tables); whatever changed in
    the internal file, it ends as a file written anew from it would."""
    warehouse, internal = tmp_path / "w.duckdb", tmp_path / "w.internal.duckdb"
    shutil.copyfile(published, warehouse)
    shutil.copyfile(internal_path(published), internal)
    assert _contents(warehouse) == _written_anew(internal, tmp_path / "anew.duckdb")
    with duckdb.connect(str(internal)) as conn:
        conn.execute("UPDATE marts.indicator_values SET value = value + 1 WHERE year = 2019 AND value IS NOT NULL")
        conn.execute("DELETE FROM marts.indicator_vs_kommune WHERE year = 2020")
        conn.execute("COMMENT ON COLUMN marts.target_status.note IS 'Why the verdict is NULL (reworded).'")
        conn.execute("ALTER TABLE marts.targets_without_data ADD COLUMN checked BOOLEAN DEFAULT true")
        conn.execute("COMMENT ON COLUMN marts.targets_without_data.checked IS 'A new column.'")
        conn.execute("UPDATE meta.quarantine SET note = 'looked at'")
        conn.execute("DROP TABLE ref.targets")
    write_published(internal, warehouse)
    assert _contents(warehouse) == _written_anew(internal, tmp_path / "anew.duckdb")
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'targets'").fetchall() == [(0,)]
        assert conn.execute("SELECT count(value) FROM meta.quarantine").fetchall() == [(0,)]


def test_a_file_holding_every_layer_is_published_anew(published, tmp_path):
    """A warehouse from before the split kept raw, staging and core in FILE: not a starting point."""
    warehouse = tmp_path / "w.duckdb"
    shutil.copyfile(internal_path(published), warehouse)
    write_published(internal_path(published), warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        schemas = {s for (s,) in conn.execute("SELECT DISTINCT schema_name FROM duckdb_tables()").fetchall()}
    assert schemas == {"marts", "meta", "ref"}


def test_the_published_file_holds_marts_meta_and_ref_only_every_part_described(published):
    with duckdb.connect(str(published), read_only=True) as conn:
        schemas = {s for (s,) in conn.execute("SELECT DISTINCT schema_name FROM duckdb_tables()").fetchall()}
        assert schemas == {"marts", "meta", "ref"}
        assert conn.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall() == [(0,)]
        undescribed = conn.execute("""SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns()
            WHERE schema_name IN ('marts', 'meta', 'ref') AND (comment IS NULL OR comment = '')""").fetchall()
        assert undescribed == []
        # the delivered values of held-back rows stay with the stewards
        assert conn.execute("SELECT count(*), count(value) FROM meta.quarantine").fetchall() == [(1, 0)]
    with duckdb.connect(str(internal_path(published)), read_only=True) as conn:
        schemas = {s for (s,) in conn.execute("SELECT DISTINCT schema_name FROM duckdb_tables()").fetchall()}
        assert {"raw", "staging", "core"} <= schemas
        assert conn.execute("SELECT value FROM meta.quarantine").fetchall() == [("Motalvej",)]


def _client(tmp_path, name: str, requirement: str):
    if not UV.exists():  # make test installs it; CI must not skip
        pytest.fail(f"{UV} is missing: run the tests with `make test`")
    venv = tmp_path / name
    subprocess.run([str(UV), "venv", "-q", "-p", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run([str(UV), "pip", "install", "-q", "-p", str(venv / "bin" / "python"), requirement],
                   check=True, timeout=300, env={**os.environ, "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(REPO / ".tools" / "cache"))})
    return venv / "bin"


@pytest.mark.parametrize("version", ["1.4.4", "1.5.5"])
def test_duckdb_releases_analysts_have_open_it(published, tmp_path, version):
    python = _client(tmp_path, f"duckdb-{version}", f"duckdb=={version}") / "python"
    script = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True);"
              "rows = c.execute('SELECT count(*) FROM marts.indicator_values').fetchall()[0][0];"
              "described = c.execute(\"SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'marts' AND comment <> ''\").fetchall()[0][0];"
              "print(duckdb.__version__, rows, described)")
    out = subprocess.run([str(python), "-c", script, str(published)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with duckdb.connect(str(published), read_only=True) as conn:
        rows = conn.execute("SELECT count(*) FROM marts.indicator_values").fetchall()[0][0]
        described = conn.execute("SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'marts'").fetchall()[0][0]
    assert out.stdout.split() == [version, str(rows), str(described)]


def test_the_duckdb_cli_from_pypi_opens_it_read_only(published, tmp_path):
    cli = _client(tmp_path, "duckdb-cli", "duckdb-cli==1.5.6") / "duckdb"
    out = subprocess.run([str(cli), "-readonly", str(published), "-csv", "-c",
                          "SELECT count(*) AS n FROM marts.target_status"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "n" and int(out.stdout.splitlines()[1]) > 0


def test_a_run_killed_between_its_two_renames_is_published_by_the_next_writer(published, tmp_path):
    import datetime as dt

    from transforms.ledger.runs import RunSummary, record_run
    from warehouse.build import published_is_current, warehouse_write

    warehouse = tmp_path / "w.duckdb"
    shutil.copyfile(published, warehouse)
    shutil.copyfile(internal_path(published), internal_path(warehouse))
    # the internal file moved on (its rename happened), FILE did not (killed before the second)
    record_run(internal_path(warehouse), RunSummary("ahead", "(test)", str(warehouse), dt.datetime.now(), None))
    # and it left what a run killed while publishing leaves: its build, FILE's next version, their logs
    leftovers = [tmp_path / name for name in (".w.duckdb.building", ".w.duckdb.building.wal",
                                              ".w.duckdb.publishing", ".w.duckdb.publishing.wal", ".w.duckdb.replaced")]
    for leftover in leftovers:
        leftover.write_bytes(b"left by a killed run")
    assert not published_is_current(warehouse)
    with warehouse_write(warehouse, RunSummary("noop", "(test)", str(warehouse), dt.datetime.now(), None)) as write:
        write.discard()
    assert published_is_current(warehouse)
    assert [leftover.name for leftover in leftovers if leftover.exists()] == []
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM meta.runs WHERE run_id = 'ahead'").fetchall() == [(1,)]


def test_the_replaced_internal_file_is_removed_after_the_renames_not_in_them(published, tmp_path):
    """Renamed over, a large internal file's blocks are freed inside the rename (25 ms for 100 MB): the
    publish keeps a link to it and removes that after both renames, in a thread."""
    import datetime as dt
    import threading

    from transforms.ledger.runs import RunSummary
    from warehouse.build import warehouse_write

    warehouse = tmp_path / "w.duckdb"
    shutil.copyfile(published, warehouse)
    shutil.copyfile(internal_path(published), internal_path(warehouse))
    replaced = os.stat(internal_path(warehouse)).st_ino
    with warehouse_write(warehouse, RunSummary("again", "(test)", str(warehouse), dt.datetime.now(), None)) as write:
        assert write.build.exists()
    for thread in threading.enumerate():
        if thread.name == "boligdata-free":
            thread.join()
    assert os.stat(internal_path(warehouse)).st_ino != replaced
    assert sorted(path.name for path in tmp_path.iterdir()) == [".w.duckdb.lock", "w.duckdb", "w.internal.duckdb"]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM meta.runs WHERE run_id = 'again'").fetchall() == [(1,)]


def test_a_file_that_cannot_serve_as_the_starting_point_is_published_anew(published, tmp_path):
    """FILE in another storage version, or damaged (a zeroed block): not copied forward, written anew."""
    internal = internal_path(published)
    fresh = _written_anew(internal, tmp_path / "anew.duckdb")
    newer, damaged = tmp_path / "newer.duckdb", tmp_path / "damaged.duckdb"
    with duckdb.connect(str(newer)) as conn:  # DuckDB 2.0's own storage version, which 1.4/1.5 cannot open
        conn.execute("CREATE SCHEMA marts; CREATE TABLE marts.indicator_values AS SELECT 1 AS year")
    shutil.copyfile(published, damaged)
    with open(damaged, "r+b") as handle:
        handle.seek(damaged.stat().st_size // 2)
        handle.write(b"\0" * 262144)
    for warehouse in (newer, damaged):
        write_published(internal, warehouse)
        assert _contents(warehouse) == fresh
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            assert conn.execute("SELECT tags['storage_version'] FROM duckdb_databases() "
                                "WHERE database_name = current_database()").fetchall() == [("v1.4.0+",)]


def test_a_run_that_fails_while_its_build_is_copied_leaves_the_warehouse_and_no_build(published, tmp_path, monkeypatch):
    """The build is copied in a thread while the intake runs (WarehouseWrite.start_building): a run that
    fails meanwhile waits for the copy, removes it, and leaves both files as they were."""
    import datetime as dt
    import time

    import warehouse.build as build_module
    from transforms.ledger.runs import RunSummary
    from warehouse.build import build_path, warehouse_write

    warehouse = tmp_path / "w.duckdb"
    shutil.copyfile(published, warehouse)
    shutil.copyfile(internal_path(published), internal_path(warehouse))
    before = (warehouse.read_bytes(), internal_path(warehouse).read_bytes())
    copy = shutil.copyfile

    def slow_copy(source, target):
        time.sleep(0.5)  # still copying when the run fails
        return copy(source, target)

    monkeypatch.setattr(build_module.shutil, "copyfile", slow_copy)
    with pytest.raises(RuntimeError, match="an intake failure"):
        with warehouse_write(warehouse, RunSummary("failing", "(test)", str(warehouse), dt.datetime.now(), None)) as write:
            write.start_building()
            raise RuntimeError("an intake failure")
    assert not build_path(warehouse).exists()
    assert (warehouse.read_bytes(), internal_path(warehouse).read_bytes()) == before

    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build_module.shutil, "copyfile", full_disk)
    with pytest.raises(OSError, match="No space left"):  # a copy that fails in its thread fails the run at the first use
        with warehouse_write(warehouse, RunSummary("failing", "(test)", str(warehouse), dt.datetime.now(), None)) as write:
            write.start_building()
            write.build
    assert not build_path(warehouse).exists()
    assert (warehouse.read_bytes(), internal_path(warehouse).read_bytes()) == before


def test_a_write_checkpoints_its_build_once_when_it_publishes_and_publishes_both_files_or_neither(published, tmp_path,
                                                                                              monkeypatch):
    """The write holds its build open (WarehouseWrite): a step's own connection joins that instance, so
    its close leaves the change in the write-ahead log instead of checkpointing; the publish checkpoints
    once, and the internal file and FILE both show the change. FILE's next version is written before
    either file is replaced: a failure there leaves both as they were, and no build; a damaged FILE is
    written anew. (A warehouse named pub.duckdb: its build's database is called `pub` too.)"""
    import datetime as dt

    import warehouse.build as build_module
    from transforms.ledger.runs import RunSummary
    from warehouse.build import build_path, warehouse_write

    warehouse, internal = tmp_path / "pub.duckdb", internal_path(tmp_path / "pub.duckdb")
    shutil.copyfile(published, warehouse)
    shutil.copyfile(internal_path(published), internal)

    def write(warnings: str) -> None:
        with warehouse_write(warehouse, RunSummary(warnings, "(test)", str(warehouse), dt.datetime.now(), None)) as build:
            with duckdb.connect(str(build.build)) as conn:
                conn.execute("UPDATE meta.deliveries SET warnings = ? WHERE delivery_id = 1", [warnings])
            log = build.build.with_name(f"{build.build.name}.wal")
            assert log.exists() and log.stat().st_size > 0

    def warnings_in(path) -> list:
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute("SELECT warnings FROM meta.deliveries WHERE delivery_id = 1").fetchall()

    write("held")
    assert not internal.with_name(f"{internal.name}.wal").exists()
    assert warnings_in(internal) == warnings_in(warehouse) == [("held",)]

    with open(warehouse, "r+b") as handle:  # FILE damaged: a zeroed block
        handle.seek(warehouse.stat().st_size // 2)
        handle.write(b"\0" * 262144)
    write("anew")
    assert _contents(warehouse) == _written_anew(internal, tmp_path / "anew.duckdb")
    assert warnings_in(warehouse) == [("anew",)]

    before = (warehouse.read_bytes(), internal.read_bytes())

    def failing(*args):
        raise duckdb.IOException("IO Error: No space left on device")

    monkeypatch.setattr(build_module, "_write_publishing", failing)
    with pytest.raises(duckdb.IOException, match="No space left"):
        write("lost")
    assert (warehouse.read_bytes(), internal.read_bytes()) == before
    assert not build_path(warehouse).exists()


def test_row_groups_are_merged_every_twelfth_run_not_at_every_publish(tmp_path):
    """DuckDB stores each run's appends as a row group of their own (here meta.runs' one row); the build's
    checkpoint merges them only every COMPACT_EVERY_RUNS-th published run, not at every publish."""
    import datetime as dt

    from transforms.ledger.runs import RunSummary
    from warehouse.build import COMPACT_EVERY_RUNS, warehouse_write

    warehouse = tmp_path / "w.duckdb"
    row_groups = []
    for run in range(COMPACT_EVERY_RUNS + 2):
        with warehouse_write(warehouse, RunSummary(f"run {run}", "(test)", str(warehouse), dt.datetime.now(), None)) as write:
            write.build  # noqa: B018  (the build is made on first use; the run then records itself and publishes)
        with duckdb.connect(str(internal_path(warehouse)), read_only=True) as conn:
            row_groups += conn.execute("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('meta.runs')").fetchall()[0]
    assert COMPACT_EVERY_RUNS == 12
    assert row_groups == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2, 3]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM meta.runs").fetchall() == [(14,)]
