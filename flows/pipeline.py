"""The `boligdata run` flow. It only wires tasks; each task is one plain function of transforms/.

    discover -> per batch of files of one source (batches in parallel, on the task runner):
                    ingest (archive, read, stage each file) -> validate (one suite run)
             -> load (here, in the flow's process, batches one at a time as they come out of
                validation; a source's files in landing order, so corrections apply in order)
             -> materialize marts (after every load) -> publish the warehouse

Only ingest and validate are submitted to the task runner (flows/runner.py: threads, or a Dask
cluster); they pass Delivery objects whose rows wait as Parquet files in the spill folder. The load,
the marts and the publish are called directly, so they run in this process: the build has one
DuckDB writer, and it is here.

A task per batch, not per file: a Prefect task run costs about 50 ms of CPU between this process and
the API server, which for the 437 files of a national first run was 40 % of the run's CPU
(docs/benchmarks.md). Each file still gets its own ledger row and progress line.
"""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.runtime import flow_run

from flows.events import LOADED_EVENT, LOADED_RESOURCE_PREFIX
from flows.runner import intake_result, intake_task_runner
from transforms.intake import batches as ingest
from transforms.intake.batches import delivery_batches
from transforms.ledger.deliveries import (
    LOADED_STATUSES,
    Delivery,
    LedgerSnapshot,
    plan_deliveries,
)
from transforms.ledger.runs import RunSummary
from transforms.reference import check_reference_tables, reference_for
from transforms.steward.report import read_run, render_markdown, write_steward_report
from transforms.steward.status import write_status_page
from warehouse.build import (
    check_warehouse_path,
    check_writable_folder,
    default_archive_dir,
    spill_dir,
    warehouse_write,
)
from warehouse.load import record_deliveries
from warehouse.materialize import materialize, model_fingerprint

# Progress lines for the terminal and the Prefect UI (PREFECT_LOGGING_EXTRA_LOGGERS=boligdata).
progress = logging.getLogger("boligdata.run")


def _transient(task, task_run, state) -> bool:
    """Retry what may pass on a second try (a busy file, an interrupted write), never a data problem."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, (duckdb.IOException, OSError)) and not isinstance(error, (FileNotFoundError, IsADirectoryError))


# Frames travel between tasks in memory; hashing them for a cache key would cost a full pass.
step = task(cache_policy=NO_CACHE)
# Steps that write the warehouse build or the published file.
writing_step = task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, retry_condition_fn=_transient)


@step
def discover_deliveries(landing: Path, warehouse: Path) -> tuple[list[Delivery], LedgerSnapshot]:
    """New files in landing order, and the ledger they were found new against (which also says what the
    published marts were built from)."""
    ledger = LedgerSnapshot.read(warehouse)
    return plan_deliveries(landing, ledger), ledger


@step
def ingest_batch(deliveries: list[Delivery], archive_dir: Path, reference_dir: Path, spill_to: Path) -> list[Delivery]:
    return ingest.ingest_deliveries(deliveries, archive_dir, reference_dir, spill_to)


@step
def validate_batch(deliveries: list[Delivery], reference_dir: Path, order: int = 0) -> list[Delivery]:
    return ingest.validate_deliveries(deliveries, reference_dir, order=order)


@writing_step
def load_batch(deliveries: list[Delivery], build: Path, run_id: str) -> list[dict]:
    ledger_rows = []
    for ledger_row in record_deliveries(build, deliveries, run_id):
        progress.info(RunSummary.describe(ledger_row))
        ledger_rows.append(ledger_row)
    return ledger_rows


@writing_step
def materialize_marts(build: Path, reference_dir: Path, ledger: LedgerSnapshot | None = None, fingerprint: str | None = None,
                      loaded_now: tuple[int, ...] = ()) -> dict[str, int]:
    """Every model, unless the `ledger` says the marts were last built from the same reference data and
    models (`fingerprint`): then the tables, those partitioned by year only in the years touched by the
    deliveries loaded since (by this run, `loaded_now`, and by runs that did not build the marts)."""
    if ledger is None or ledger.marts_fingerprint is None or ledger.marts_fingerprint != fingerprint:
        return materialize(build, reference_dir)
    return materialize(build, reference_dir, only_marts=True, loaded_deliveries=[*ledger.loaded_since_marts, *loaded_now])


@step
def announce_loaded(warehouse: Path, summary: RunSummary) -> None:
    """Tell the event system (and the materialization deployment's trigger) that deliveries landed in the warehouse."""
    from prefect.events import emit_event

    emit_event(event=LOADED_EVENT, resource={"prefect.resource.id": f"{LOADED_RESOURCE_PREFIX}{warehouse}"},
               payload={"warehouse": str(warehouse), "deliveries": len(summary.ledger_rows),
                        "statuses": summary.status_counts, "marts_rebuilt": bool(summary.mart_rows)})


@step
def report_to_steward(warehouse: Path, run_id: str, reference_dir: Path | None = None) -> Path:
    """The offline HTML report of the run beside the warehouse, the standing status page refreshed, and
    the run's summary as an artifact in the Prefect UI."""
    from prefect.artifacts import create_markdown_artifact

    with ThreadPoolExecutor(max_workers=1) as pool:  # two readers of the warehouse: the status page beside the rest
        status_page = pool.submit(write_status_page, warehouse, reference_dir)
        run = read_run(warehouse, run_id)
        create_markdown_artifact(markdown=render_markdown(run), key="boligdata-run",
                                 description="Deliveries by status and the most frequent failing rules")
        report = write_steward_report(run)
        status_page.result()
    return report


def start_run(warehouse: str, reference_dir: str | None, landing: str, build_marts: bool = True
              ) -> tuple[Path, Path, RunSummary]:
    """What every writing flow checks first: a usable warehouse path and reference data; the run's summary."""
    warehouse_file = check_warehouse_path(Path(warehouse))
    reference = reference_for(warehouse_file, reference_dir)  # the warehouse's own, unless given
    check_reference_tables(reference)
    summary = RunSummary(str(flow_run.id or "local"), landing, str(warehouse_file),
                         dt.datetime.now(dt.UTC).replace(tzinfo=None), model_fingerprint(reference) if build_marts else None)
    return warehouse_file, reference, summary


@flow(name="boligdata-run", log_prints=False, task_runner=intake_task_runner())
def run_pipeline(landing: str, warehouse: str, reference_dir: str | None = None, archive_dir: str | None = None,
                 landed_path: str | None = None, materialize: bool = True) -> RunSummary:
    """Ingest every new file under LANDING/<source>/ into WAREHOUSE and, unless told not to, rebuild the
    marts. LANDED_PATH names the file whose arrival triggered the run (a boligdata.extract.landed event);
    the run takes in every complete new file, so the other files of a burst need no run of their own.
    New deliveries are announced as a `boligdata.deliveries.loaded` event."""
    landing_dir = Path(landing).resolve()
    warehouse_file, reference, summary = start_run(warehouse, reference_dir, str(landing_dir), materialize)
    archive = check_writable_folder(Path(archive_dir).resolve() if archive_dir else default_archive_dir(warehouse_file),
                                    "the raw file archive")
    if landed_path:
        progress.info("triggered by %s landing", landed_path)
    with warehouse_write(warehouse_file, summary) as write:
        deliveries, ledger = discover_deliveries(landing_dir, warehouse_file)
        if not deliveries and (ledger.model_fingerprint == summary.model_fingerprint or not materialize):
            progress.info("nothing new under %s; the warehouse is unchanged", landing_dir)
            write.discard()
            return summary
        write.start_building()  # the copy of the warehouse overlaps the intake; the first load waits for it
        # each batch's ingestion, then its validation: in that order the pool runs about two of each at once
        # (every ingestion first, then the validations, held 0.5 GB more at national scale)
        intake = []
        for order, batch in enumerate(delivery_batches(deliveries)):
            ingestion = ingest_batch.submit(batch, archive, reference, spill_dir(write.build_file))
            intake.append((ingestion, validate_batch.submit(ingestion, reference, order)))
        task_runner = FlowRunContext.get().task_runner
        for ingestion, validation in intake:  # loaded one at a time while later ones are validated
            intake_result(ingestion, task_runner)  # a failed ingestion raises its error, not "validation still pending"
            summary.ledger_rows += load_batch(intake_result(validation, task_runner), write.build, summary.run_id)
        if materialize:
            loaded = tuple(row["delivery_id"] for row in summary.ledger_rows if row["status"] in LOADED_STATUSES)
            summary.mart_rows = materialize_marts(write.build, reference, ledger, summary.model_fingerprint, loaded)
    # published: what follows is owed to the steward and the event system, and must not turn a published
    # run into one that "failed, warehouse unchanged"
    try:
        summary.report = report_to_steward(warehouse_file, summary.run_id, reference)
    except OSError as error:
        summary.warnings.append(f"the steward report was not written ({error.strerror or error}: "
                                f"{error.filename or 'report folder'}); the warehouse was published")
    if summary.ledger_rows:
        try:
            announce_loaded(warehouse_file, summary)
        except Exception as error:  # an event API that does not answer: the run itself is done
            summary.warnings.append(f"the loaded event was not sent ({error}); the warehouse was published")
    for warning in summary.warnings:
        progress.warning("warning: %s", warning)
    return summary


@flow(name="boligdata-materialize", log_prints=False)
def materialize_warehouse(warehouse: str, reference_dir: str | None = None) -> RunSummary:
    """Rebuild the marts if deliveries or reference data changed since they were last built."""
    warehouse_file, reference, summary = start_run(warehouse, reference_dir, "(materialize)")
    with warehouse_write(warehouse_file, summary) as write:
        ledger = LedgerSnapshot.read(warehouse_file)
        if ledger.model_fingerprint == summary.model_fingerprint:
            progress.info("the marts of %s are current", warehouse_file)
            write.discard()
            return summary
        summary.mart_rows = materialize_marts(write.build, reference, ledger, summary.model_fingerprint)
    return summary
