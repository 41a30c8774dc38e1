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
    """Ready what Prefect needs to start its temporary server (no API URL set), for a run that imports
    GX beside it (flows/cli.py); starting and stopping the server stay Prefect's.

    - Its module is imported now: Prefect's client imports it (about 1.2 s of Python) before it starts
      the server, and imported beside GX's import in another thread, the two took turns at the GIL:
      the server came up 1.3-1.7 s later (an empty flow with GX imported beside it: 6.8-7.3 s; 5.5 s
      this way, as with no GX at all; docs/benchmarks.md).
    - It does not register block types on start, unless the operator set either setting: that
      imports every installed Prefect collection (prefect-dask, dask and distributed: 0.25 s) for a
      catalogue no boligdata run reads. A standing server (`boligdata serve`, `prefect server start`)
      registers them as usual. The server process gets the settings through its environment."""
    from prefect.settings import (
        PREFECT_API_BLOCKS_REGISTER_ON_START,
        PREFECT_API_URL,
        PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        get_current_settings,
        temporary_settings,
    )

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        yield
        return
    import prefect.server.api.server  # noqa: F401  (the import is the point)

    operator_set = get_current_settings().server.model_fields_set  # environment, profile, toml
    if operator_set & {"register_blocks_on_start", "memoize_block_auto_registration"}:
        yield
        return
    with temporary_settings(updates={PREFECT_API_BLOCKS_REGISTER_ON_START: False,
                                     PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION: False}):
        yield
