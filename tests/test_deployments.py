"""prefect.yaml for real: `boligdata serve` starts a local Prefect server, deploys, runs its warm worker
and the watcher; a burst of landed files gives one ingestion run (no idle one) and one
materialization, a failure alerts."""

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import duckdb
import pytest
from conftest import REPO, SIGTELSER_HEADER, sigtelser_year, write_extract

from flows.local_stack import post_to_api
from warehouse.files import internal_file


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AlertReceiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        AlertReceiver.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def wait_for(condition, timeout: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stack")
    landing, warehouse, home = folder / "landing", folder / "w.duckdb", folder / "prefect"
    landing.mkdir()
    alerts = HTTPServer(("127.0.0.1", free_port()), AlertReceiver)
    threading.Thread(target=alerts.serve_forever, daemon=True).start()
    port = free_port()
    out = open(folder / "serve.out", "w")
    serve = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "boligdata") if (REPO / ".venv" / "bin" / "boligdata").exists() else sys.executable,
         *([] if (REPO / ".venv" / "bin" / "boligdata").exists() else ["-m", "flows.cli"]),
         "serve", "--landing", str(landing), "--warehouse", str(warehouse), "--port", str(port),
         "--prefect-home", str(home), "--interval", "1", "--alert-webhook", f"http://127.0.0.1:{alerts.server_port}/alert"],
        stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # SIGINT stops it even if pytest runs in the background
    try:
        wait_for(lambda: "watching" in (folder / "serve.out").read_text(), 180, "boligdata serve to start")
        yield {"landing": landing, "warehouse": warehouse, "api": f"http://127.0.0.1:{port}/api", "log": home / "boligdata-serve.log"}
    finally:
        serve.send_signal(2)  # SIGINT: serve stops its worker and server
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
        alerts.shutdown()
        out.close()


def api(stack, path, body=None):
    return post_to_api(stack["api"], path, body)


def deployments(stack):
    return {d["name"]: d for d in api(stack, "/deployments/filter")}


def flow_runs(stack, deployment_id):
    return api(stack, "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment_id]}}})


def test_the_nightly_schedule_and_the_event_triggers_are_registered(stack):
    registered = deployments(stack)
    assert set(registered) == {"nightly", "ingest-landed-file", "materialize-after-loads"}
    (schedule,) = registered["nightly"]["schedules"]
    assert schedule["active"] and schedule["schedule"]["cron"] == "0 2 * * *"
    assert schedule["schedule"]["timezone"] == "Europe/Copenhagen"
    for deployment in registered.values():  # one writer at a time: overlapping triggers queue
        assert deployment["global_concurrency_limit"]["limit"] == 1
        assert deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    automations = {a["name"]: a for a in api(stack, "/automations/filter")}
    ingest = next(a for name, a in automations.items() if "ingest-landed-file" in name)
    assert ingest["trigger"]["expect"] == ["boligdata.extract.landed"]
    materialize = next(a for name, a in automations.items() if "materialize-after-loads" in name)
    assert materialize["trigger"]["posture"] == "Proactive" and materialize["trigger"]["after"] == ["boligdata.deliveries.loaded"]
    assert "boligdata-run-failed" in automations


def test_a_burst_of_landed_files_is_ingested_and_materialized_once(stack):
    landing, warehouse = stack["landing"], stack["warehouse"]
    for year in (2016, 2017, 2018):
        write_extract(landing / "politi_sigtelser" / f"{year}.csv", [SIGTELSER_HEADER, *sigtelser_year(year, "Motalavej")])

    def ledger_and_marts():
        if not warehouse.exists():
            return None
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            files = {name for (name,) in conn.execute("SELECT file_name FROM meta.deliveries WHERE status = 'loaded'").fetchall()}
            marts = conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'marts'").fetchall()[0][0]
        return files == {"2016.csv", "2017.csv", "2018.csv"} and marts
    wait_for(ledger_and_marts, 240, "the three files in the ledger and the marts built", every=2)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        # built from all three files; no population delivered yet, so not computable (NULL, not 0)
        assert conn.execute("""SELECT year, value, numerator FROM marts.indicator_values
            WHERE indicator = 'afgoerelser_pr_1000' AND scope_id = 'motalavej' ORDER BY year""").fetchall() == [
            (2016, None, 45.0), (2017, None, 45.0), (2018, None, 45.0)]
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:  # the internal layers
        assert conn.execute("SELECT count(DISTINCT aar) FROM staging.politi_sigtelser").fetchall() == [(3,)]

    registered = deployments(stack)
    time.sleep(13)  # past the materialization window (10 s, evaluated every second): a second firing would show now
    ingest_runs = flow_runs(stack, registered["ingest-landed-file"]["id"])
    materialize_runs = flow_runs(stack, registered["materialize-after-loads"]["id"])
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        published_runs = {run_id for (run_id,) in conn.execute("SELECT run_id FROM meta.runs").fetchall()}
    # the burst was announced as one event once it had settled: one run, and it did the work
    assert [run["state_type"] for run in ingest_runs] == ["COMPLETED"]
    assert ingest_runs[0]["id"] in published_runs
    assert [run["state_type"] for run in materialize_runs] == ["COMPLETED"]


def test_a_failed_run_notifies_through_the_automation(stack):
    nightly = deployments(stack)["nightly"]
    api(stack, f"/deployments/{nightly['id']}/create_flow_run", {"parameters": {"warehouse": "/"}})  # a directory
    alert = wait_for(lambda: AlertReceiver.received, 120, "the failure alert")
    assert alert[0]["subject"] == "boligdata: a run failed"
    assert "boligdata-run" in alert[0]["body"] and "Failed" in alert[0]["body"]
