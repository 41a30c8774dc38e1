"""The embedded default: a Prefect server on 127.0.0.1, boligdata's deployments from prefect.yaml, a
failure alert, the warm worker (flows/warm_worker.py) and the landing watcher, all on one machine with
no external service. `boligdata serve` runs it; the deployment tests start the same pieces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from flows.events import LANDED_EVENT, LANDED_RESOURCE_PREFIX

REPO = Path(__file__).resolve().parents[1]
WORK_POOL = "boligdata"
FLOW_NAMES = ["boligdata-run", "boligdata-materialize", "boligdata-quarantine-retry"]


def prefect_command() -> str:
    return str(Path(sys.executable).with_name("prefect"))


def stack_env(port: int, prefect_home: Path, landing: Path, warehouse: Path) -> dict[str, str]:
    """The environment every piece of the stack runs with."""
    return {
        **os.environ,
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "boligdata",
        # proactive triggers (the materialization's debounce) are evaluated every second, not every 5
        "PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY": "PT1S",
        "BOLIGDATA_HOME": str(REPO),
        "BOLIGDATA_LANDING": str(Path(landing).resolve()),
        "BOLIGDATA_WAREHOUSE": str(Path(warehouse).resolve()),
    }


def start_server(env: dict[str, str], log: Path, timeout: float = 90) -> subprocess.Popen:
    """`prefect server start` on 127.0.0.1, returned once its health check answers."""
    port = env["PREFECT_API_URL"].rsplit(":", 1)[1].split("/")[0]
    with open(log, "ab") as out:
        server = subprocess.Popen([prefect_command(), "server", "start", "--host", "127.0.0.1", "--port", port],
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with {server.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{env['PREFECT_API_URL']}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"the Prefect server did not answer within {timeout:.0f} s; see {log}")


def post_to_api(api_url: str, path: str, body: dict | None = None, attempts: int = 5):
    """POST BODY as JSON to the Prefect API at API_URL and return the answer's JSON (the deployment
    tests and bench/latency.py read the stack this way). A 503 is retried after its Retry-After, as
    Prefect's own client retries it: the SQLite server answers so while it writes events."""
    request = urllib.request.Request(f"{api_url}{path}", data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code != 503 or attempt == attempts - 1:
                raise
            time.sleep(float(error.headers.get("Retry-After") or 2))


def deploy(env: dict[str, str], log: Path) -> None:
    """The work pool, then every deployment of prefect.yaml."""
    with open(log, "ab") as out:
        for command in ([prefect_command(), "work-pool", "create", WORK_POOL, "--type", "process", "--overwrite"],
                        [prefect_command(), "--no-prompt", "deploy", "--all"]):
            subprocess.run(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=True)


def create_failure_alert(webhook_url: str) -> None:
    """An automation that POSTs to WEBHOOK_URL when a boligdata flow run fails or crashes.
    Runs with PREFECT_API_URL already pointing at the server."""
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    block = CustomWebhookNotificationBlock(name="boligdata-alerts", url=webhook_url,
                                           json_data={"subject": "{{subject}}", "body": "{{body}}"})
    block_id = block.save("boligdata-alerts", overwrite=True)
    Automation(
        name="boligdata-run-failed",
        description="Tell the operator when a boligdata flow run fails or crashes.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": FLOW_NAMES},
            posture=Posture.Reactive, threshold=1,
        ),
        actions=[SendNotification(
            block_document_id=block_id,
            subject="boligdata: a run failed",
            body="Flow run {{ flow_run.name }} of {{ flow.name }} ended {{ flow_run.state.name }}: {{ flow_run.state.message }}",
        )],
    ).create()


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGINT first (as Ctrl-C would), then harder."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def announce(paths: list[Path], landing: Path) -> None:
    """Emit one landed event for a burst of complete files (PREFECT_API_URL must point at the server):
    the first file is the event's resource, every file is in the payload and the rest are related
    resources. One event, so one ingestion run takes in the burst (it takes in every new file)."""
    from prefect.events import emit_event

    def resource_id(path: Path) -> str:
        return f"{LANDED_RESOURCE_PREFIX}{path.relative_to(landing).as_posix()}"

    first = paths[0].relative_to(landing)
    emit_event(event=LANDED_EVENT,
               resource={"prefect.resource.id": resource_id(paths[0]),
                         "boligdata.source": first.parts[0] if len(first.parts) > 1 else ""},
               related=[{"prefect.resource.id": resource_id(path), "prefect.resource.role": "landed-file"}
                        for path in paths[1:]],
               payload={"path": str(paths[0]), "paths": [str(path) for path in paths], "landing": str(landing)})
