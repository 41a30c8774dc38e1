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
