"""Where the run's intake tasks (ingest, validate per batch) execute: the one choice of task runner.

    BOLIGDATA_DASK_ADDRESS=tcp://HOST:8786   a running `distributed` scheduler (`--dask-address`)
    BOLIGDATA_DASK=local                     a local cluster of worker processes for this run (`--dask local`),
                                             BOLIGDATA_DASK_WORKERS of them (default: one per core)
    neither                                  Prefect's thread pool, BOLIGDATA_TASKS_IN_FLIGHT tasks at once

On Dask the tasks run through Prefect's own integration (`prefect_dask.DaskTaskRunner`): task runs,
states and retries are Prefect's as on the thread pool. Only what `.submit()` sends goes there; the
load and the publish are called in the flow's own process (one DuckDB writer), see flows/pipeline.py.
The thread pool stays the default: on one 2-core machine it is faster (docs/benchmarks.md).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

ADDRESS_ENV, LOCAL_ENV, WORKERS_ENV = "BOLIGDATA_DASK_ADDRESS", "BOLIGDATA_DASK", "BOLIGDATA_DASK_WORKERS"


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
