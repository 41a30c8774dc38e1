"""The steps before loading, as plain functions on a batch of deliveries of one source:

    ingest_deliveries (each file: archive, read; a chunk of files: stage, spill to Parquet)
    -> validate_deliveries (the whole batch in one suite run)

A run works in batches (`delivery_batches`) because the fixed costs are per call, not per row: a GX
suite run costs 0.1-0.2 s whatever its size, and a Prefect task run about 50 ms of CPU between the
client and the API server (docs/benchmarks.md).

A bad file is an outcome, not an error: RejectedFile turns into a `rejected` delivery with its reason,
and the later steps pass a settled delivery through untouched. Between steps the rows wait on disk,
<spill dir>/<id of the first delivery staged with them>.<part>.parquet (rows keyed by delivery_id and
line_number), so memory holds only what is being worked on:
raw (text as delivered), staged (typed, with the suite's helper columns), type_problems (values that
did not fit their type) and, after validation, problems (everything `load` quarantines), held_back
(the raw rows of those problems, which the warehouse keeps for the steward) and shared_ids (ids that
should be unique across deliveries and that several of the batch hold)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from itertools import groupby
from pathlib import Path

import polars as pl

from transforms.intake.read import RejectedFile, TextRows, read_text_rows
from transforms.intake.stage import stage_batch
from transforms.intake.validate import (
    ids_in_several_deliveries,
    validate_holding_back,
    validation_turn,
)
from transforms.ledger.deliveries import Delivery, archive_raw_file
from transforms.reference import Reference, load_reference
from transforms.sources import Contract, contract_for

# Delivered bytes per batch. Validation holds a batch's rows in memory twice (polars, then pandas for
# GX): about 48 MiB of CSV is 1M rows, ~0.75 GB. At 64 MiB a national first run peaked at 1.8-2.0 GiB
# (over 2 GiB once in four), at 48 MiB 1.5-1.7 GiB, for about 0.4 s more (one more GX run per large source).
DEFAULT_BATCH_BYTES = 48 << 20
# Rows typed in one pass: a pass per file costs more than a small file's rows (98 files of a few dozen
# rows took 1 s one by one), and a pass over more rows holds more in memory (a police file is ~45,000 rows).
STAGE_CHUNK_ROWS = 100_000
# The spill lives for one run: lz4 writes a national first run's spill in 0.5 CPU-s less than zstd, for
# about 200 MB on disk instead of 50 (uncompressed: 280 MB, no faster).
SPILL_COMPRESSION = "lz4"


def _spill(frame: pl.DataFrame, path: Path) -> None:
    """One spilled part. Without column statistics: every reader scans a part whole (no filter of ours
    can skip a row group), and the string columns' min/max cost 15 % of the write (0.06 CPU-s per
    police batch)."""
    frame.write_parquet(path, compression=SPILL_COMPRESSION, statistics=False)


def _keyed(frame: pl.DataFrame, delivery_id: int) -> pl.DataFrame:
    return frame.select(pl.lit(delivery_id, dtype=pl.Int32).alias("delivery_id"), pl.all())


def _stage_and_spill(read: list[tuple[Delivery, TextRows]], contract: Contract, reference: Reference,
                     spill_dir: Path) -> list[Delivery]:
    """Type the rows of files read, in one pass per format (XLSX cells carry plain numbers, CSV text
    Danish ones), and write each format's rows to the spill folder: the deliveries of one format share
    its files, <spill dir>/<first delivery id>.<part>.parquet."""
    is_xlsx = {delivery.delivery_id: text_rows.encoding == "xlsx" for delivery, text_rows in read}
    spilled, rejected = {}, {}
    for xlsx in set(is_xlsx.values()):
        of_format = [(delivery, text_rows) for delivery, text_rows in read if is_xlsx[delivery.delivery_id] == xlsx]
        raw = pl.concat([_keyed(text_rows.frame, delivery.delivery_id) for delivery, text_rows in of_format], rechunk=False)
        staged, rejected_here = stage_batch(raw, contract, reference, plain_numbers=xlsx)
        rejected |= rejected_here
        kept = [delivery.delivery_id for delivery, _ in of_format if delivery.delivery_id not in rejected_here]
        if not kept:
            continue
        frames = {"raw": raw.select(list(contract.raw_columns())), "staged": staged.frame, "type_problems": staged.problems}
        if rejected_here:
            frames = {part: frame.filter(pl.col("delivery_id").is_in(kept)) for part, frame in frames.items()}
        spill_dir.mkdir(parents=True, exist_ok=True)
        for part, frame in frames.items():
            _spill(frame, spill_dir / f"{kept[0]}.{part}.parquet")
        spilled |= dict.fromkeys(kept, spill_dir / str(kept[0]))
    return [delivery.rejected(rejected[delivery.delivery_id]) if delivery.delivery_id in rejected
            else replace(delivery, spilled=spilled[delivery.delivery_id]) for delivery, _ in read]


def ingest_deliveries(deliveries: list[Delivery], archive_dir: Path, reference_dir: Path, spill_dir: Path) -> list[Delivery]:
    """Archive and read each file of a batch of one source; type the rows of the files read a chunk of
    about STAGE_CHUNK_ROWS at a time and write them to the spill folder. In the order given."""
    ingested, read, chunk_rows = {}, [], 0

    def stage_and_spill_read():
        ingested.update((d.delivery_id, d) for d in _stage_and_spill(read, contract, load_reference(reference_dir), spill_dir))

    for delivery in deliveries:
        delivery = archive_raw_file(delivery, archive_dir)
        if delivery.is_settled:  # e.g. a folder no contract knows
            ingested[delivery.delivery_id] = delivery
            continue
        contract = contract_for(delivery.source)
        assert not read or read[0][0].source == delivery.source, "a batch holds one source"
        try:
            text_rows = read_text_rows(delivery.path, contract)
        except RejectedFile as rejection:
            ingested[delivery.delivery_id] = delivery.rejected(str(rejection))
            continue
        read.append((replace(delivery, encoding=text_rows.encoding, warnings="; ".join(text_rows.warnings) or None,
                             rows_read=text_rows.frame.height), text_rows))
        chunk_rows += text_rows.frame.height
        if chunk_rows >= STAGE_CHUNK_ROWS:
            stage_and_spill_read()
            read, chunk_rows = [], 0
    if read:
        stage_and_spill_read()
    return [ingested[delivery.delivery_id] for delivery in deliveries]


def delivery_batches(deliveries: list[Delivery], max_bytes: int | None = None) -> list[list[Delivery]]:
    """The deliveries in batches of one source and at most max_bytes of delivered files (a larger file
    is a batch of its own), in landing order within each source; the source with the most bytes first,
    so that its loads, the longest, overlap the intake of the smaller sources instead of following it."""
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
    size_of_source = {}
    for delivery in deliveries:
        size_of_source[delivery.source] = size_of_source.get(delivery.source, 0) + delivery.size_bytes
    # sorted() is stable: a source's batches keep their order
    return sorted(batches, key=lambda batch: (-size_of_source[batch[0].source], batch[0].source))


def validate_deliveries(deliveries: list[Delivery], reference_dir: Path, today: dt.date | None = None,
                        order: int = 0) -> list[Delivery]:
    """Check a batch of ingested deliveries of one source in one suite run and write each delivery's
    problems (typing and suite, with the delivered value and the row's partition key) beside its rows.
    ORDER: the batch's place in the run (delivery_batches), in which the process validates the batches
    waiting for GX."""
    pending = [d for d in deliveries if not d.is_settled]
    if not pending:
        return deliveries
    contract = contract_for(pending[0].source)
    assert all(d.source == contract.source for d in pending), "a validation batch holds one source"

    def spilled(part: str) -> pl.LazyFrame:  # deliveries staged together share their files
        return pl.scan_parquet(list(dict.fromkeys(d.spill_path(part) for d in pending)))

    with validation_turn(order):
        staged = spilled("staged").collect()
        problems, held_back = validate_holding_back(staged, spilled("type_problems").collect(), spilled("raw"), contract,
                                                    load_reference(reference_dir), today)
    # the partition keys of the problems' rows: picked out of the staged rows before the join, so that its hash
    # table holds the problems' few thousand lines, not the batch's million (0.09 -> 0.025 CPU-s per police batch)
    lines = problems.select("delivery_id", "line_number").unique()
    located = (staged.select(pl.col("delivery_id").cast(pl.Int64), pl.col("line_number").cast(pl.Int64), "partition_key")
               .join(lines, on=["delivery_id", "line_number"], how="semi"))
    problems = problems.join(located, on=["delivery_id", "line_number"], how="left")
    shared_ids = ids_in_several_deliveries(staged, contract)
    staged_together = {}
    for delivery in pending:
        staged_together.setdefault(delivery.spilled, []).append(delivery)
    for together in staged_together.values():
        of_these = pl.col("delivery_id").is_in([delivery.delivery_id for delivery in together])
        for part, frame in (("problems", problems), ("held_back", held_back), ("shared_ids", shared_ids)):
            _spill(frame.filter(of_these), together[0].spill_path(part))
    return deliveries
