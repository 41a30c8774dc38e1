"""Where the run's intake tasks (ingest, validate per batch) execute: the one choice of task runner.

    BOLIGDATA_DASK_ADDRESS=tcp://HOST:8786   a running `distributed` scheduler (`--dask-address`)
    BOLIGDATA_DASK=local                     a local cluster of worker processes for this run (`--dask local`),
                                             BOLIGDATA_DASK_WORKERS of them (default: one per core)
    neither                                  Prefect's thread pool, BOLIGDATA_TASKS_IN_FLIGHT tasks at once
    BOLIGDATA_DASK_NO_WORKER_SECONDS=120     how long a run waits on a cluster that has no worker left

On Dask the tasks run through Prefect's own integration (`prefect_dask.DaskTaskRunner`): task runs,
states and retries are Prefect's as on the thread pool. Only what `.submit()` sends goes there; the
load and the publish are called in the flow's own process (one DuckDB writer), see flows/pipeline.py.
The thread pool stays the default: on one 2-core machine it is faster (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect.futures import PrefectFuture
    from prefect.task_runners import TaskRunner

ADDRESS_ENV, LOCAL_ENV, WORKERS_ENV = "BOLIGDATA_DASK_ADDRESS", "BOLIGDATA_DASK", "BOLIGDATA_DASK_WORKERS"
NO_WORKER_ENV = "BOLIGDATA_DASK_NO_WORKER_SECONDS"
POLL_SECONDS = 2.0


class ClusterLost(Exception):
    """The Dask cluster has had no worker for longer than the run waits: its tasks cannot run."""


def intake_task_runner(environ: os._Environ | dict | None = None) -> TaskRunner:
    """The task runner the run's flow submits its intake tasks to. (Prefect is imported here, not at
    the module's top: `boligdata run` reads the names above before it has quieted Prefect's logging.)"""
    from prefect.task_runners import ThreadPoolTaskRunner

    environ = os.environ if environ is None else environ
    address, mode = environ.get(ADDRESS_ENV, "").strip(), environ.get(LOCAL_ENV, "").strip().lower()
    if address or mode == "local":
        from prefect_dask import (
            DaskTaskRunner,  # distributed's import is not free; only when asked for
        )

        if address:
            return DaskTaskRunner(address=address)
        workers = int(environ.get(WORKERS_ENV) or os.cpu_count() or 1)
        # One thread per worker process: GX validation and the polars/pandas steps hold the GIL in part.
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})
    if mode not in ("", "0", "off", "threads"):
        raise ValueError(f"{LOCAL_ENV}={mode!r}: use 'local', or {ADDRESS_ENV} for a running scheduler")
    return ThreadPoolTaskRunner(max_workers=int(environ.get("BOLIGDATA_TASKS_IN_FLIGHT", "4")))


def intake_result(future: PrefectFuture, task_runner: TaskRunner):
    """The result of an intake task. On a Dask cluster a task whose workers are all gone waits for a
    worker for ever (the scheduler keeps it queued), and an unattended run with it: the run fails once
    the cluster has had no worker for BOLIGDATA_DASK_NO_WORKER_SECONDS (a worker that restarts or joins
    meanwhile takes the task up)."""
    client = getattr(task_runner, "client", None)  # DaskTaskRunner's public client; the thread pool has none
    if client is None:
        return future.result()
    grace = float(os.environ.get(NO_WORKER_ENV) or 120)
    workerless_since = None
    while True:
        try:
            return future.result(timeout=POLL_SECONDS)
        except TimeoutError:
            pass
        if client.scheduler_info(n_workers=-1)["workers"]:
            workerless_since = None
        elif workerless_since is None:
            workerless_since = time.monotonic()
        elif time.monotonic() - workerless_since > grace:
            raise ClusterLost(f"the Dask cluster at {client.scheduler.address} has had no worker for {grace:.0f} s "
                              f"({NO_WORKER_ENV}); start workers and run again, or run on threads (no --dask)")
