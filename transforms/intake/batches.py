"""The steps before loading, as plain functions on a batch of deliveries of one source:

    ingest_deliveries (each file: archive, read, stage, spill to Parquet)
    -> validate_deliveries (the whole batch in one suite run)

A run works in batches (`delivery_batches`) because the fixed costs are per call, not per row: a GX
suite run costs 0.1-0.2 s whatever its size, and a Prefect task run about 50 ms of CPU between the
client and the API server (docs/benchmarks.md).

A bad file is an outcome, not an error: RejectedFile turns into a `rejected` delivery with its reason,
and the later steps pass a settled delivery through untouched. Between steps the rows wait on disk,
<spill dir>/<delivery_id>.<part>.parquet, so memory holds only what is being worked on:
raw (text as delivered), staged (typed, with the suite's helper columns), type_problems (values that
did not fit their type) and, after validation, problems (everything `load` quarantines)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from itertools import groupby
from pathlib import Path

import polars as pl

from transforms.intake.read import RejectedFile, read_text_rows
from transforms.intake.stage import stage_rows
from transforms.intake.validate import validate_rows
from transforms.ledger.deliveries import Delivery, archive_raw_file
from transforms.reference import load_reference
from transforms.sources import contract_for

# Delivered bytes per batch. Validation holds a batch's rows in memory twice (polars, then pandas for
# GX): about 64 MB of CSV is 1.5M rows, ~1 GB.
DEFAULT_BATCH_BYTES = 64 << 20


def _keyed(frame: pl.DataFrame, delivery_id: int) -> pl.DataFrame:
    return frame.select(pl.lit(delivery_id, dtype=pl.Int32).alias("delivery_id"), pl.all())


def ingest_delivery(delivery: Delivery, archive_dir: Path, reference_dir: Path, spill_dir: Path) -> Delivery:
    """Archive the file, read and type its rows and write them to the spill folder."""
    delivery = archive_raw_file(delivery, archive_dir)
    if delivery.is_settled:
        return delivery
    contract = contract_for(delivery.source)
    try:
        text_rows = read_text_rows(delivery.path, contract)
        delivery = replace(delivery, encoding=text_rows.encoding, warnings="; ".join(text_rows.warnings) or None)
        staged = stage_rows(text_rows.frame, contract, load_reference(reference_dir), plain_numbers=text_rows.encoding == "xlsx")
    except RejectedFile as rejection:
        return delivery.rejected(str(rejection))
    spill_dir.mkdir(parents=True, exist_ok=True)
    delivery = replace(delivery, spilled=spill_dir / str(delivery.delivery_id), rows_read=text_rows.frame.height)
    _keyed(text_rows.frame, delivery.delivery_id).select(list(contract.raw_columns())).write_parquet(delivery.spill_path("raw"))
    _keyed(staged.frame, delivery.delivery_id).write_parquet(delivery.spill_path("staged"))
    _keyed(staged.problems, delivery.delivery_id).write_parquet(delivery.spill_path("type_problems"))
    return delivery


def ingest_deliveries(deliveries: list[Delivery], archive_dir: Path, reference_dir: Path, spill_dir: Path) -> list[Delivery]:
    return [ingest_delivery(delivery, archive_dir, reference_dir, spill_dir) for delivery in deliveries]


def delivery_batches(deliveries: list[Delivery], max_bytes: int | None = None) -> list[list[Delivery]]:
    """The deliveries in batches of one source and at most max_bytes of delivered files (a larger file
    is a batch of its own), in landing order within each source."""
    max_bytes = max_bytes or int(os.environ.get("BOLIGDATA_BATCH_BYTES", DEFAULT_BATCH_BYTES))
    batches = []
    for _, of_source in groupby(sorted(deliveries, key=lambda d: d.source), key=lambda d: d.source):
        batch, size = [], 0
        for delivery in of_source:  # sorted() is stable: landing order holds within a source
            if batch and size + delivery.size_bytes > max_bytes:
                batches.append(batch)
                batch, size = [], 0
            batch.append(delivery)
            size += delivery.size_bytes
        batches.append(batch)
    return batches


def validate_deliveries(deliveries: list[Delivery], reference_dir: Path, today: dt.date | None = None) -> list[Delivery]:
    """Check a batch of ingested deliveries of one source in one suite run and write each delivery's
    problems (typing and suite, with the delivered value and the row's partition key) beside its rows."""
    pending = [d for d in deliveries if not d.is_settled]
    if not pending:
        return deliveries
    contract = contract_for(pending[0].source)
    assert all(d.source == contract.source for d in pending), "a validation batch holds one source"

    def spilled(part: str) -> pl.LazyFrame:
        return pl.scan_parquet([d.spill_path(part) for d in pending])

    staged = spilled("staged").collect()
    problems = validate_rows(staged, spilled("type_problems").collect(), spilled("raw"), contract,
                             load_reference(reference_dir), today, with_notes=True)
    problems = problems.join(staged.select(pl.col("delivery_id").cast(pl.Int64), pl.col("line_number").cast(pl.Int64),
                                           "partition_key"), on=["delivery_id", "line_number"], how="left")
    by_delivery = problems.partition_by("delivery_id", as_dict=True)
    for delivery in pending:
        by_delivery.get((delivery.delivery_id,), problems.clear()).write_parquet(delivery.spill_path("problems"))
    return deliveries
