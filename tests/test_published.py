"""The file analysts open: marts, meta and ref only, described, readable by the DuckDB releases they have."""

import os
import subprocess
import sys

import duckdb
import pytest
from conftest import REPO

from flows.pipeline import run_pipeline
from warehouse.files import internal_path

pytestmark = pytest.mark.usefixtures("prefect_server")
UV = REPO / ".tools" / "bin" / "uv"


@pytest.fixture(scope="module")
def published(prefect_server, tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("published") / "w.duckdb"
    run_pipeline(landing=str(REPO / "demo" / "landing"), warehouse=str(warehouse))
    return warehouse


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
    import shutil

    from transforms.ledger.runs import RunSummary, record_run
    from warehouse.build import published_is_current, warehouse_write

    warehouse = tmp_path / "w.duckdb"
    shutil.copyfile(published, warehouse)
    shutil.copyfile(internal_path(published), internal_path(warehouse))
    # the internal file moved on (its rename happened), FILE did not (killed before the second)
    record_run(internal_path(warehouse), RunSummary("ahead", "(test)", str(warehouse), dt.datetime.now(), None))
    assert not published_is_current(warehouse)
    with warehouse_write(warehouse, RunSummary("noop", "(test)", str(warehouse), dt.datetime.now(), None)) as write:
        write.discard()
    assert published_is_current(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM meta.runs WHERE run_id = 'ahead'").fetchall() == [(1,)]
