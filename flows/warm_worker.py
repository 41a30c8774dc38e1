"""The worker of `boligdata serve`: it runs the flow runs of the `boligdata` work pool inside the serve
process, one at a time, with Prefect, Great Expectations and the pipeline's modules already imported.

Why not Prefect's process worker or `flow.serve`: both start a new Python process for every flow run
(`flow.serve` spawns one with multiprocessing). Measured on this machine (2 cores) against a running
server, ingesting a 1-row file: 5.0 s in a spawned process (Prefect import, GX import and context
set-up, then the run), 1.1 s in a process that has run one before. The process worker also polls
every 5-10 s. This worker polls every POLL_SECONDS (a cheap local API call) and starts a due run at
once, so a triggered run starts within about a second of its event.

What stays Prefect's: the deployments, their schedule and triggers come from prefect.yaml (`prefect
deploy`); the server creates the runs; the run is proposed Pending first, so the server's deployment
concurrency limit (1, ENQUEUE) still decides whether it may start; the flow engine runs it exactly as
in a spawned process (`prefect.flow_engine.run_flow` with the flow run, which is what the runner's
child process calls), so states, logs, the deployment concurrency lease and the failure automation are
unchanged. What is given up: a run shares the serve process, so a run that crashes the interpreter
(not an exception: those end as Failed) takes serve down with it; Ctrl-C waits for the run in flight
(a second Ctrl-C abandons it, marked Crashed; the warehouse is published atomically or not at all).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import socket
import threading
import time
from uuid import UUID

from flows.prefect_settings import flow_run_settings

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 30
# After an announcement, the watcher holds further files until the announced run has started (it
# takes in every new file when it starts), but no longer than this: a trigger that never fired must
# not hold files forever.
ANNOUNCEMENT_GRACE_SECONDS = 30.0
INGESTING_FLOW = "boligdata-run"

log = logging.getLogger("boligdata.serve")


def load_entrypoint(entrypoint: str):
    """`flows/pipeline.py:run_pipeline` -> the flow object of the already importable module flows.pipeline
    (not a second copy loaded from the file path: the warm module state, GX's context, is shared)."""
    path, name = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


class WarmWorker(threading.Thread):
    def __init__(self, work_pool: str, poll_seconds: float = POLL_SECONDS, warm_up: bool = True):
        super().__init__(name="boligdata-warm-worker", daemon=True)
        self.work_pool = work_pool
        self.poll_seconds = poll_seconds
        self.warm_up = warm_up
        self.worker_name = f"boligdata-serve-{socket.gethostname()}"
        self.current = None  # the FlowRun being run, if any
        self.current_flow_name: str | None = None
        self.runs_finished = 0
        self._stopping = threading.Event()
        self._flows: dict[UUID, object] = {}  # deployment id -> flow
        self._due_ingestions = 0  # runs of the ingesting flow seen due at the last poll, not yet started
        self._last_ingestion_started = 0.0  # time.monotonic()
        self._last_announced = 0.0
        self.ready = threading.Event()  # set once the imports are warm and the first poll was made

    # -- what the watcher asks ------------------------------------------------------------------

    def note_announced(self) -> None:
        self._last_announced = time.monotonic()

    def ingestion_pending(self) -> bool:
        """An ingestion is running or due, or the last announcement's run has not started yet: a file
        that becomes complete now will be taken in by that run (or, if it is running, is held until it
        has finished and then announced only if the run did not take it in)."""
        if self.current is not None and self.current_flow_name == INGESTING_FLOW:
            return True
        if self._due_ingestions:
            return True
        since = time.monotonic() - self._last_announced
        return self._last_announced > self._last_ingestion_started and since < ANNOUNCEMENT_GRACE_SECONDS

    # -- the loop --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Take no further run; the one in flight finishes (join the thread to wait for it)."""
        self._stopping.set()

    def run(self) -> None:
        from prefect import get_client

        if self.warm_up:
            from flows import (
                pipeline,  # noqa: F401 (imported now, not at the first run)
            )
            from transforms.intake.validate import warm_up

            warm_up()
        last_heartbeat = 0.0
        with get_client(sync_client=True) as client:
            while not self._stopping.is_set():
                if time.monotonic() - last_heartbeat > HEARTBEAT_SECONDS:
                    try:
                        client.send_worker_heartbeat(self.work_pool, self.worker_name, HEARTBEAT_SECONDS)
                        last_heartbeat = time.monotonic()
                    except Exception as error:  # the server restarting: try again at the next poll
                        log.warning("worker heartbeat failed: %s", error)
                try:
                    due = client.get_scheduled_flow_runs_for_work_pool(
                        self.work_pool, scheduled_before=dt.datetime.now(dt.UTC))
                except Exception as error:
                    log.warning("polling work pool %s failed: %s", self.work_pool, error)
                    self._stopping.wait(5)
                    continue
                runs = sorted((d.flow_run for d in due), key=lambda r: r.expected_start_time or r.created)
                flows = [self._flow_for(client, run) for run in runs]
                self._due_ingestions = sum(1 for f in flows if f is not None and f.name == INGESTING_FLOW)
                self.ready.set()
                for flow_run, flow in zip(runs, flows):
                    if self._stopping.is_set():
                        break
                    if flow is not None:
                        self._execute(client, flow_run, flow)
                    if flow is not None and flow.name == INGESTING_FLOW:
                        self._due_ingestions = max(0, self._due_ingestions - 1)
                self._stopping.wait(self.poll_seconds)

    def _flow_for(self, client, flow_run):
        if flow_run.deployment_id not in self._flows:
            try:
                deployment = client.read_deployment(flow_run.deployment_id)
                self._flows[flow_run.deployment_id] = load_entrypoint(deployment.entrypoint)
            except Exception as error:
                log.error("cannot load the flow of flow run %s: %s", flow_run.name, error)
                return None
        return self._flows[flow_run.deployment_id]

    def _execute(self, client, flow_run, flow) -> None:
        from prefect.exceptions import Abort
        from prefect.flow_engine import run_flow
        from prefect.states import Crashed, Pending
        from prefect.utilities.engine import propose_state_sync

        try:
            state = propose_state_sync(client, Pending(), flow_run_id=flow_run.id)
        except Abort:
            return  # someone else took it (another worker) or it was cancelled
        if not state.is_pending():  # e.g. AwaitingConcurrencySlot: the server keeps it queued
            return
        self.current_flow_name = flow.name
        if flow.name == INGESTING_FLOW:
            self._last_ingestion_started = time.monotonic()
        self.current = flow_run
        started = time.monotonic()
        try:
            with flow_run_settings():
                final = run_flow(flow, flow_run=client.read_flow_run(flow_run.id), return_type="state", error_logger=log)
            outcome = final.name if final is not None else "?"
        except Exception as error:  # the engine itself failed: the run must not stay Running
            outcome = f"crashed ({error})"
            try:
                propose_state_sync(client, Crashed(message=f"the warm worker's engine call failed: {error}"),
                                   flow_run_id=flow_run.id, force=True)
            except Exception:
                pass
        finally:
            self.current = None
            self.current_flow_name = None
            self.runs_finished += 1
        deployment = getattr(flow_run, "deployment_id", None)
        print(f"{flow.name} run {flow_run.name} ({deployment and str(deployment)[:8]}): {outcome} in "
              f"{time.monotonic() - started:.1f} s", flush=True)

    def abandon_current(self, message: str) -> None:
        """Mark the run in flight Crashed (serve is stopping without waiting for it)."""
        flow_run = self.current
        if flow_run is None:
            return
        from prefect import get_client
        from prefect.states import Crashed

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)
