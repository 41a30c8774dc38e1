"""`boligdata quarantine retry`: held-back rows checked again after a reference-data fix, the marts
rebuilt, the warehouse republished, all under the same write sequence as a run."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.pipeline import materialize_marts, start_run, step
from transforms.steward.quarantine import RetryOutcome, retry_quarantined
from warehouse.build import WarehouseUnavailable, warehouse_write


@step
def retry_open_rows(build: Path, reference_dir: Path) -> list[RetryOutcome]:
    return retry_quarantined(build, reference_dir)


@flow(name="boligdata-quarantine-retry")
def retry_quarantine(warehouse: str, reference_dir: str | None = None) -> list[RetryOutcome]:
    warehouse_file, reference, summary = start_run(warehouse, reference_dir, "(quarantine retry)")
    if not warehouse_file.exists():
        raise WarehouseUnavailable(f"no warehouse at {warehouse_file}")
    with warehouse_write(warehouse_file, summary) as write:
        outcomes = retry_open_rows(write.build, reference)
        summary.mart_rows = materialize_marts(write.build, reference)
    return outcomes
