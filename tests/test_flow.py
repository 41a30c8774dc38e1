"""The real Prefect flow, under one temporary Prefect server for the whole session."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import (
    NOEGLETAL_HEADER,
    SIGTELSER_HEADER,
    query,
    sigtelser_year,
    write_extract,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.pipeline import run_pipeline
from transforms.reference import DEFAULT_REFERENCE_DIR, ReferenceDataError
from warehouse.files import internal_file

pytestmark = pytest.mark.usefixtures("prefect_server")


def small_landing(landing):
    write_extract(landing / "politi_sigtelser" / "s.csv",
                  [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej"), "2016;330;Motalvej;I alt;1;1;1;1"])
    write_extract(landing / "kommune_noegletal" / "n.csv", [NOEGLETAL_HEADER, "2016;330;Motalavej;befolkning;1.500;"])
    (landing / "politi_sigtelser" / "garbage.csv").write_bytes(b"\x00\xff\xfe\x00garbage")
    write_extract(landing / "politi_nyt" / "x.csv", ["a;b", "1;2"])


def test_run_records_every_file_and_builds_the_marts(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    small_landing(landing)
    summary = run_pipeline(landing=str(landing), warehouse=str(warehouse))

    assert summary.status_counts == {"loaded": 1, "loaded_with_quarantine": 1, "rejected": 2}
    assert query(warehouse, "SELECT source, file_name, status, reason FROM meta.deliveries ORDER BY source, file_name") == [
        ("kommune_noegletal", "n.csv", "loaded", None),
        ("politi_nyt", "x.csv", "rejected", "unknown source folder 'politi_nyt'"),
        ("politi_sigtelser", "garbage.csv", "rejected", "not a text file: it contains NUL bytes"),
        ("politi_sigtelser", "s.csv", "loaded_with_quarantine", None),
    ]
    assert query(warehouse, """SELECT value FROM marts.indicator_values
        WHERE indicator = 'afgoerelser_pr_1000' AND level = 'area' AND scope_id = 'motalavej' AND year = 2016""") == [(30.0,)]
    assert summary.total("rows_quarantined") == 1
    assert "Deliveries: 4 (1 loaded, 1 loaded_with_quarantine, 2 rejected)" in summary.render()
    (run_id,) = query(warehouse, "SELECT DISTINCT run_id FROM meta.deliveries")[0]
    assert query(warehouse, "SELECT run_id, new_deliveries FROM meta.runs") == [(run_id, 4)]

    # the steward's report beside the warehouse, and the summary in the Prefect UI
    assert summary.report.parent == tmp_path / "w_reports" and (tmp_path / "w_reports" / "latest.html").exists()
    assert "not a text file: it contains NUL bytes" in summary.report.read_text(encoding="utf-8")
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["boligdata-run"])))
    assert any("| rejected | 2 | 0 | 0 |" in artifact.data and "unknown_area" in artifact.data for artifact in artifacts)

    # A second run with nothing new leaves the file exactly as it was.
    before = warehouse.stat()
    again = run_pipeline(landing=str(landing), warehouse=str(warehouse))
    assert again.ledger_rows == [] and "Nothing new" in again.render()
    assert (warehouse.stat().st_ino, warehouse.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_broken_reference_file_stops_the_run_before_it_touches_anything(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    small_landing(landing)
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    published = warehouse.read_bytes()

    broken_reference = tmp_path / "reference"
    shutil.copytree(DEFAULT_REFERENCE_DIR, broken_reference)
    (broken_reference / "indicators.csv").write_text("indicator;scale\nx;not-a-number\n", encoding="utf-8")
    write_extract(landing / "politi_sigtelser" / "more.csv", [SIGTELSER_HEADER, *sigtelser_year(2017, "Motalavej")])
    with pytest.raises(ReferenceDataError, match="indicators.csv: missing column"):
        run_pipeline(landing=str(landing), warehouse=str(warehouse), reference_dir=str(broken_reference))

    assert warehouse.read_bytes() == published
    assert not list(tmp_path.glob(".w.duckdb.building"))
    # the next good run takes the file in as if the failed run had never happened
    summary = run_pipeline(landing=str(landing), warehouse=str(warehouse))
    assert [(r["file_name"], r["status"]) for r in summary.ledger_rows] == [("more.csv", "loaded")]


def test_an_analyst_holding_the_file_open_neither_blocks_nor_sees_a_half_run(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    small_landing(landing)
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    analyst = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys
            con = duckdb.connect({str(warehouse)!r}, read_only=True)
            count = lambda: con.execute("SELECT count(*) FROM meta.deliveries").fetchall()[0][0]
            print(count(), flush=True)
            sys.stdin.readline()          # the pipeline runs meanwhile
            print(count(), flush=True)
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert analyst.stdout.readline().strip() == "4"
        write_extract(landing / "politi_sigtelser" / "2017.csv", [SIGTELSER_HEADER, *sigtelser_year(2017, "Motalavej")])
        summary = run_pipeline(landing=str(landing), warehouse=str(warehouse))
        assert summary.status_counts == {"loaded": 1}
        analyst.stdin.write("\n")
        analyst.stdin.flush()
        assert analyst.stdout.readline().strip() == "4"  # the open connection keeps its snapshot
    finally:
        analyst.communicate(timeout=30)
    assert query(warehouse, "SELECT count(*) FROM meta.deliveries") == [(5,)]  # a new connection sees the run


def test_quarantine_retry_flow_releases_rows_after_a_reference_fix_and_republishes(tmp_path):
    from flows.repair import retry_quarantine

    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    write_extract(landing / "kommune_noegletal" / "n.csv", [NOEGLETAL_HEADER, "2016;330;Motalvej;befolkning;1.500;",
                                                          "2016;330;Sydbyen;befolkning;1.350;"])
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    reference = tmp_path / "reference"
    shutil.copytree(DEFAULT_REFERENCE_DIR, reference)
    with open(reference / "scope_aliases.csv", "a", encoding="utf-8") as aliases:
        aliases.write("Motalvej;area;motalavej\n")

    outcomes = retry_quarantine(warehouse=str(warehouse), reference_dir=str(reference))

    assert [(o.file_name, o.released_rows, o.still_open_rows) for o in outcomes] == [("n.csv", 1, 0)]
    assert query(warehouse, "SELECT status FROM meta.quarantine") == [("released",)]
    assert query(internal_file(warehouse), "SELECT scope_id, taeller FROM staging.kommune_noegletal ORDER BY 1") == [
        ("motalavej", 1500.0), ("sydbyen", 1350.0)]
    assert query(warehouse, "SELECT status, rows_loaded, rows_quarantined FROM meta.deliveries") == [("loaded", 2, 0)]
    assert not (tmp_path / ".w.duckdb.building").exists()


def test_flow_runs_send_no_heartbeats_unless_the_operator_asks():
    """Prefect 3.8.8 ends a run only when its heartbeat thread wakes (up to a second later): our runs
    run without it, unless the operator set a frequency (then Prefect's value holds)."""
    from conftest import REPO
    from prefect import flow
    from prefect.settings import get_current_settings

    from flows.prefect_settings import flow_run_settings

    @flow
    def heartbeat_frequency():
        return get_current_settings().flows.heartbeat_frequency

    with flow_run_settings():
        assert heartbeat_frequency() is None
    # the operator's setting is read when Prefect is imported: a process of its own for each
    script = ("from prefect.settings import get_current_settings\nfrom flows.prefect_settings import flow_run_settings\n"
              "with flow_run_settings():\n    print(get_current_settings().flows.heartbeat_frequency)")
    unset = {k: v for k, v in os.environ.items() if not k.endswith("_HEARTBEAT_FREQUENCY")}
    for operator, expected in (({}, "None"), ({"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "60"}, "60"),
                               ({"PREFECT_RUNNER_HEARTBEAT_FREQUENCY": "45"}, "45")):
        out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**unset, **operator}, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[-1] == expected


def test_the_temporary_server_module_is_imported_and_its_start_registers_no_blocks():
    """A run that is not supervised (flows/guard.py starts the server of those that are) imports GX in a
    thread while Prefect starts its temporary server: the server's module is imported first, and the
    server (through its environment) skips block registration. With a server of the operator's
    (PREFECT_API_URL), or a block setting of theirs, nothing is changed."""
    from conftest import REPO

    script = ("import sys\nfrom prefect.settings import get_current_settings\n"
              "from flows.prefect_settings import prepare_temporary_server\n"
              "with prepare_temporary_server():\n"
              "    server_environment = get_current_settings().to_environment_variables(exclude_unset=True)\n"
              "    print('prefect.server.api.server' in sys.modules,"
              " server_environment.get('PREFECT_SERVER_REGISTER_BLOCKS_ON_START'),"
              " server_environment.get('PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION'))\n"
              "print(get_current_settings().server.register_blocks_on_start)")
    unset = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL" and "BLOCK" not in k}
    for operator, expected in (({}, ["True", "False", "False", "True"]),
                               ({"PREFECT_API_URL": "http://127.0.0.1:9/api"}, ["False", "None", "None", "True"]),
                               ({"PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "true"}, ["True", "True", "None", "True"])):
        out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**unset, **operator}, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == expected, operator


def test_writing_steps_retry_transient_errors_only():
    import duckdb as duck
    from prefect.states import Failed

    from flows.pipeline import _transient
    from transforms.intake.validate import SuiteError

    def failed_with(error):
        return Failed(data=error)

    assert _transient(None, None, failed_with(duck.IOException("Could not set lock on file")))
    assert _transient(None, None, failed_with(OSError("No space left on device")))
    assert not _transient(None, None, failed_with(FileNotFoundError("gone")))
    assert not _transient(None, None, failed_with(SuiteError("broken suite")))
    assert not _transient(None, None, failed_with(ValueError("bad data")))


def test_the_served_path_ingests_then_builds_only_the_years_its_runs_touched(golden, tmp_path, model_builds):
    """As `boligdata serve` does it: runs that ingest without the marts, then the materialization; the
    marts equal those of one whole run."""
    from flows.pipeline import materialize_warehouse

    landing = tmp_path / "landing"
    shutil.copytree(golden / "landing", landing)
    held = [landing / "politi_anmeldelser" / "anmeldelser_330_2019.csv", landing / "politi_anmeldelser" / "anmeldelser_330_2018.csv"]
    for path in held:
        path.rename(tmp_path / path.name)
    warehouse = tmp_path / "w.duckdb"
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    for path in held:  # two landings, two ingest-only runs
        (tmp_path / path.name).rename(path)
        assert run_pipeline(landing=str(landing), warehouse=str(warehouse), materialize=False).status_counts == {"loaded": 1}
    model_builds.clear()
    materialize_warehouse(warehouse=str(warehouse))
    assert ("marts.indicator_values", (2018, 2019)) in model_builds and ("marts.target_status", None) in model_builds
    whole = tmp_path / "whole.duckdb"
    run_pipeline(landing=str(landing), warehouse=str(whole))
    for table in ("core.indicator_figures", "core.disclosure", "marts.indicator_values", "marts.indicator_vs_kommune",
                  "marts.development_vs_kommune", "marts.target_status"):
        sql = f"SELECT * FROM {table} ORDER BY ALL"
        assert query(internal_file(warehouse), sql) == query(internal_file(whole), sql), table
