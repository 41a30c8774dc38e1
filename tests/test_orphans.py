"""`boligdata run` through the real command: nothing it starts outlives it (flows/guard.py), and a run
with nothing new neither starts Prefect nor imports Great Expectations.

Processes are told apart from other people's on a shared machine by a unique value in the run's
environment, which every process it starts inherits (Prefect's temporary server included)."""

import datetime as dt
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from conftest import (
    NOEGLETAL_HEADER,
    SIGTELSER_HEADER,
    boligdata_command,
    ingest_all,
    query,
    sigtelser_year,
    write_extract,
)

from flows.guard import nothing_new
from transforms.ledger.runs import RunSummary, record_run
from transforms.reference import DEFAULT_REFERENCE_DIR
from warehouse.materialize import model_fingerprint

MARK = "BOLIGDATA_TEST_RUN"


def marked_processes(mark: str) -> list[str]:
    """Command lines of the live processes whose environment carries MARK=mark."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie holds nothing and is its parent's to reap
            found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip())
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def assert_nothing_left(mark: str, within: float = 10.0) -> None:
    """No process of the run is left; the last ones may take a moment to be killed."""
    deadline = time.monotonic() + within
    while (left := marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], left


def cli(*args: str, mark: str, start_new_session: bool = False, **extra_env: str) -> subprocess.Popen:
    """The installed `boligdata` command, on an ephemeral Prefect server of its own."""
    command = boligdata_command()
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "BOLIGDATA_RECORD_NOOP")}
    env.update({MARK: mark, **extra_env})
    return subprocess.Popen([*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=start_new_session)


def test_a_server_too_slow_to_start_ends_the_run_with_one_line_and_leaves_no_process(golden, tmp_path):
    mark = uuid.uuid4().hex
    run = cli("run", "--landing", str(golden / "landing"), "--warehouse", str(tmp_path / "w.duckdb"), mark=mark,
              PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    out, err = run.communicate(timeout=300)
    assert "Traceback" not in out + err and "Exception in thread" not in err, err
    if run.returncode == 0:  # the server made it after all
        assert "Deliveries: 29 (29 loaded)" in out.splitlines()
    else:
        assert run.returncode == 1
        assert err.strip().count("\n") == 0, err
        assert err.startswith("boligdata: run failed, warehouse unchanged: Timed out while attempting to connect "
                              "to the run's temporary Prefect API server within 1 s "
                              "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"), err
        assert not (tmp_path / "w.duckdb").exists()
    assert_nothing_left(mark)


def test_a_run_uses_the_temporary_server_started_beside_it(golden, tmp_path):
    """The supervisor starts the run's Prefect server as the command starts (flows/temporary_server.py):
    neither the run nor a server Prefect would start imports Prefect's server module, and the run
    completes on it."""
    mark = uuid.uuid4().hex
    run = cli("run", "--landing", str(golden / "landing"), "--warehouse", str(tmp_path / "w.duckdb"), mark=mark,
              PYTHONPROFILEIMPORTTIME="1")  # the import log of the command and the run; the server's goes nowhere
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-2000:]
    assert "Deliveries: 29 (29 loaded)" in out.splitlines()
    modules = imported_modules(err)
    assert "flows.pipeline" in modules  # the run's imports are in the log
    assert "prefect.server.api.server" not in modules
    assert_nothing_left(mark)


def test_the_temporary_server_serves_and_stops_on_sigterm():
    from flows import temporary_server

    server, api_url = temporary_server.start(env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"})
    try:
        temporary_server.wait_until_serving(api_url, 120)
        server.terminate()  # as the supervisor stops it: uvicorn shuts down, then ends by the signal it caught
        assert server.wait(5) == -signal.SIGTERM
    finally:
        server.kill()


@pytest.mark.parametrize("where", ["environment", "profile"])
def test_with_the_operators_server_the_temporary_server_exits_at_once(tmp_path, where):
    from flows import temporary_server

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    if where == "environment":
        env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"
    else:  # as `prefect config set PREFECT_API_URL=...` leaves it
        (tmp_path / "profiles.toml").write_text('active = "operator"\n[profiles.operator]\n'
                                                'PREFECT_API_URL = "http://127.0.0.1:9/api"\n')
        env.update(PREFECT_PROFILES_PATH=str(tmp_path / "profiles.toml"), PREFECT_PROFILE="operator")
    server, api_url = temporary_server.start(env=env)
    assert server.wait(60) == 0
    with pytest.raises(RuntimeError, match="^the run's temporary Prefect API server stopped before it answered"):
        temporary_server.wait_until_serving(api_url, 5)


def test_the_supervisor_finds_the_operators_server_in_the_environment_or_the_active_profile(tmp_path, monkeypatch):
    from flows.guard import _operator_server_set

    for name in ("PREFECT_API_URL", "PREFECT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "profiles.toml"))
    assert not _operator_server_set()  # no profiles file
    (tmp_path / "profiles.toml").write_text('active = "operator"\n[profiles.operator]\nPREFECT_API_URL = "http://h:4200/api"\n'
                                            '[profiles.ephemeral]\nPREFECT_SERVER_ALLOW_EPHEMERAL_MODE = "true"\n')
    assert _operator_server_set()
    monkeypatch.setenv("PREFECT_PROFILE", "ephemeral")  # another profile chosen for this shell
    assert not _operator_server_set()
    monkeypatch.setenv("PREFECT_API_URL", "http://h:4200/api")
    assert _operator_server_set()
    monkeypatch.delenv("PREFECT_API_URL")
    (tmp_path / "profiles.toml").write_text("active = [")  # broken: the server's process decides
    assert not _operator_server_set()


def test_a_server_that_fails_to_start_ends_the_run_with_one_line_and_leaves_no_process(golden, tmp_path):
    mark = uuid.uuid4().hex
    run = cli("run", "--landing", str(golden / "landing"), "--warehouse", str(tmp_path / "w.duckdb"), mark=mark,
              PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{tmp_path}/no/such/folder/prefect.db")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 1
    assert out.splitlines() == [f"boligdata run: {golden / 'landing'} -> {tmp_path / 'w.duckdb'}"]
    assert err.startswith("boligdata: run failed, warehouse unchanged: the run's temporary Prefect API server "
                          "stopped before it answered ("), err
    assert err.count("\n") == 1
    assert not (tmp_path / "w.duckdb").exists()
    assert_nothing_left(mark)


def test_waiting_for_a_server_that_does_not_answer_ends_in_time_with_one_line():
    from flows.temporary_server import wait_until_serving

    with socket.create_server(("127.0.0.1", 0)) as listening:  # listens, but nobody serves
        started = time.monotonic()
        with pytest.raises(RuntimeError) as raised:
            wait_until_serving(f"http://127.0.0.1:{listening.getsockname()[1]}/api", 0.5)
    assert time.monotonic() - started < 5
    assert str(raised.value) == ("Timed out while attempting to connect to the run's temporary Prefect API server "
                                 "within 0.5 s (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")


def test_a_killed_run_leaves_no_process_and_the_last_completed_warehouse_and_the_next_run_recovers(
        tmp_path, prefect_server):
    from flows.pipeline import run_pipeline

    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    write_extract(landing / "politi_sigtelser" / "2016.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")])
    write_extract(landing / "kommune_noegletal" / "n.csv", [NOEGLETAL_HEADER, "2016;330;Motalavej;befolkning;1.500;"])
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    published = warehouse.read_bytes()
    for year in range(2010, 2016):  # enough files that the kill lands while they are being loaded
        write_extract(landing / "politi_sigtelser" / f"{year}.csv", [SIGTELSER_HEADER, *sigtelser_year(year, "Motalavej")])

    # SIGKILL for the command's own process only, as `kill -9 PID` or the OOM killer would: not its
    # process group, which under make is make's. Prefect's server is alive at this point.
    mark = uuid.uuid4().hex
    run = cli("run", "--landing", str(landing), "--warehouse", str(warehouse), mark=mark)
    try:
        for line in run.stdout:
            if ": loaded" in line:  # one delivery is applied in the build, the others are not
                assert any("flows.temporary_server" in command for command in marked_processes(mark))
                os.kill(run.pid, signal.SIGKILL)
                break
    finally:
        run.wait(timeout=60)
        run.stdout.close()
        run.stderr.close()
    assert run.returncode == -signal.SIGKILL
    assert_nothing_left(mark)
    assert warehouse.read_bytes() == published
    assert (tmp_path / ".w.duckdb.building").exists()  # the killed run's half-built copy

    summary = run_pipeline(landing=str(landing), warehouse=str(warehouse))
    assert summary.status_counts == {"loaded": 6}
    assert not (tmp_path / ".w.duckdb.building").exists()
    assert query(warehouse, "SELECT count(*) FROM meta.deliveries") == [(8,)]


def test_ctrl_c_stops_a_run_with_one_line_and_leaves_no_process(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    for year in range(2010, 2016):
        write_extract(landing / "politi_sigtelser" / f"{year}.csv", [SIGTELSER_HEADER, *sigtelser_year(year, "Motalavej")])
    mark = uuid.uuid4().hex
    # The terminal sends Ctrl-C to its foreground group: the command's (here a session of its own, so
    # that this test does not get it), which is not the run's.
    run = cli("run", "--landing", str(landing), "--warehouse", str(warehouse), mark=mark, start_new_session=True)
    try:
        for line in run.stdout:
            if ": loaded" in line:
                os.killpg(run.pid, signal.SIGINT)
                break
        out, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 130
    assert err == "boligdata: run interrupted, warehouse unchanged\n"
    assert not warehouse.exists()
    assert_nothing_left(mark)


@pytest.fixture
def settled(tmp_path):
    """A warehouse that has taken in everything under landing and built its marts (no Prefect)."""
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    write_extract(landing / "politi_sigtelser" / "2016.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej")])
    ingest_all(landing, warehouse)
    record_run(warehouse, RunSummary("setup", str(landing), str(warehouse), dt.datetime.now(),
                                     model_fingerprint(DEFAULT_REFERENCE_DIR)))
    return landing, warehouse


def imported_modules(importtime_log: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in importtime_log.splitlines() if line.startswith("import time:")}


def test_a_run_with_nothing_new_says_so_without_prefect_or_great_expectations(settled):
    landing, warehouse = settled
    mark = uuid.uuid4().hex
    before = warehouse.stat()
    run = cli("run", "--landing", str(landing), "--warehouse", str(warehouse), mark=mark, PYTHONPROFILEIMPORTTIME="1")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert out.splitlines() == [f"boligdata run: {landing} -> {warehouse}",
                                f"Nothing new under {landing}; warehouse unchanged: {warehouse}"]
    modules = imported_modules(err)
    assert {"duckdb", "transforms.ledger.deliveries"} <= modules  # the log is the command's
    # nor numpy: the hashes' search imports it when it runs (warehouse/staged_ids.py), 0.04 s of a 0.4 s no-op
    assert not {m for m in modules if m.split(".")[0] in ("prefect", "great_expectations", "uvicorn", "numpy")}
    assert "flows.guard" in modules and "flows.pipeline" not in modules
    assert (warehouse.stat().st_ino, warehouse.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert_nothing_left(mark, within=0)


def test_nothing_new_is_the_flows_decision(settled, tmp_path):
    landing, warehouse = settled
    assert nothing_new(landing, warehouse, None) == f"Nothing new under {landing}; warehouse unchanged: {warehouse}"
    assert nothing_new(landing, tmp_path / "none.duckdb", None) is None  # no warehouse yet

    reference = tmp_path / "reference"  # reference data changed: the marts must be rebuilt
    reference.mkdir()
    for path in DEFAULT_REFERENCE_DIR.glob("*.csv"):
        (reference / path.name).write_bytes(path.read_bytes())
    assert nothing_new(landing, warehouse, reference) is not None
    with open(reference / "scope_aliases.csv", "a", encoding="utf-8") as aliases:
        aliases.write("Motalvej;area;motalavej\n")
    assert nothing_new(landing, warehouse, reference) is None

    # the same name with other bytes is new; a file that is only touched is not
    path = landing / "politi_sigtelser" / "2016.csv"
    os.utime(path, (0, 0))
    assert nothing_new(landing, warehouse, None) is not None
    write_extract(path, [SIGTELSER_HEADER, *sigtelser_year(2016, "Motalavej", sigtede=41)])
    assert nothing_new(landing, warehouse, None) is None


def test_record_noop_runs_the_flow_anyway(settled):
    landing, warehouse = settled
    mark = uuid.uuid4().hex
    run = cli("run", "--landing", str(landing), "--warehouse", str(warehouse), mark=mark,
              BOLIGDATA_RECORD_NOOP="1", PYTHONPROFILEIMPORTTIME="1")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert out.splitlines()[-1] == f"Nothing new under {landing}; warehouse unchanged: {warehouse}"
    assert {"prefect", "flows.pipeline"} <= imported_modules(err)  # the supervised run's log
    assert_nothing_left(mark)
