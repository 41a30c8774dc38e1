"""`boligdata quarantine retry`: held-back rows checked again after a reference-data fix, the marts
rebuilt, the warehouse republished, all under the same one-writer discipline as a run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run

from flows.pipeline import materialize_marts, publish_warehouse, step
from transforms.materialize import model_fingerprint
from transforms.reference import DEFAULT_REFERENCE_DIR, check_reference_tables
from transforms.run_summary import RunSummary
from transforms.steward import RetryOutcome, retry_quarantined
from transforms.warehouse_file import WarehouseUnavailable, check_warehouse_path, warehouse_build, writer_lock


@step
def retry_open_rows(build: Path, reference_dir: Path) -> list[RetryOutcome]:
    return retry_quarantined(build, reference_dir)


@flow(name="boligdata-quarantine-retry")
def retry_quarantine(warehouse: str, reference_dir: str | None = None) -> list[RetryOutcome]:
    warehouse_file = check_warehouse_path(Path(warehouse))
    if not warehouse_file.exists():
        raise WarehouseUnavailable(f"no warehouse at {warehouse_file}")
    reference = Path(reference_dir).resolve() if reference_dir else DEFAULT_REFERENCE_DIR
    check_reference_tables(reference)
    summary = RunSummary(str(flow_run.id or "local"), "(quarantine retry)", str(warehouse_file),
                         dt.datetime.now(dt.UTC).replace(tzinfo=None), model_fingerprint(reference))
    with writer_lock(warehouse_file), warehouse_build(warehouse_file) as build:
        outcomes = retry_open_rows(build, reference)
        summary.mart_rows = materialize_marts(build, reference)
        publish_warehouse(build, warehouse_file, summary)
    return outcomes
