"""The Prefect settings every boligdata flow run runs with, entered around the run (the CLI's run, the
warm worker's runs, the benchmarks and the tests alike)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def flow_run_settings() -> Iterator[None]:
    """Flow-run heartbeats off, unless the operator set their frequency (PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    the legacy PREFECT_RUNNER_HEARTBEAT_FREQUENCY, a Prefect profile or prefect.toml).

    Prefect 3.8.8 sends them (every 180 s by default) from a thread that sleeps in steps of one second
    and is joined when the run ends, so a run ends only when that thread next wakes: an empty flow took
    1.07 s with heartbeats and 0.11 s without, and every served run of ours paid up to a second more
    (bench/latency.py, docs/benchmarks.md). The heartbeats only feed Prefect's zombie-run automation,
    which `boligdata serve` does not set up; an operator who adds it sets the variable (30 or more) and
    accepts the wait. The environment cannot say "off" in 3.8.8 (the setting parses as an integer), so
    the setting is changed in Prefect's settings context, with its public `temporary_settings`."""
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    if "heartbeat_frequency" in get_current_settings().flows.model_fields_set:  # set: environment, profile, toml
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@contextmanager
def prepare_temporary_server() -> Iterator[None]:
    """Ready the temporary Prefect server a run without PREFECT_API_URL uses (flows/cli.py); with a
    server of the operator's, nothing changes.

    - A supervised run (flows/guard.py) uses the server its supervisor started beside it
      (flows/temporary_server.py): this waits until it answers, for at most
      PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, and points the run's settings at it.
    - Otherwise (a run not started by `boligdata run`'s supervisor, or one whose server could not be
      started) Prefect starts its own, and stops it at exit. Its module is imported now: Prefect's client
      imports it (about 1.2 s of Python) before it starts the server, and imported beside GX's import in
      another thread, the two took turns at the GIL (the server came up 1.3-1.7 s later). The server gets
      the same settings (no block registration on start) through its environment."""
    import os

    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        PREFECT_UI_URL,
        temporary_settings,
    )

    from flows.temporary_server import (
        RUN_SERVER_ENV,
        server_settings,
        wait_until_serving,
        wanted,
    )

    if not wanted():
        yield
        return
    if api_url := os.environ.get(RUN_SERVER_ENV):
        # What Prefect imports when a flow is first called (its flow engine; FastAPI's encoder, for the
        # parameters it sends): imported while the server starts, not after, when the run waits on it
        # (0.4 s of Python, which GX's import in another thread made 0.8)
        import fastapi.encoders  # noqa: F401
        import prefect.flow_engine  # noqa: F401

        wait_until_serving(api_url, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        # No UI link: like Prefect's own temporary server, it serves no UI, and it is gone after the run.
        # The URL lives in Prefect's settings context, which Prefect's task threads and Dask workers
        # inherit; Prefect called outside it would start a temporary server of its own.
        with temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_UI_URL: ""}):
            yield
        return
    import prefect.server.api.server  # noqa: F401  (the import is the point)

    with temporary_settings(updates=server_settings()):
        yield
