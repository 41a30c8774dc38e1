"""The per-file steps, as plain functions on a Delivery: archive and read, stage, validate, spill.

A bad file is an outcome, not an error: each step turns RejectedFile into a `rejected` delivery with
its reason, and the later steps pass a settled delivery through untouched."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import polars as pl

from transforms.contracts import contract_for
from transforms.deliveries import Delivery, archive_raw_file
from transforms.load import raw_columns, rows_for_loading
from transforms.read import RejectedFile, read_text_rows
from transforms.reference import load_reference
from transforms.stage import stage_rows
from transforms.validate import validate_rows


def read_delivery(delivery: Delivery, archive_dir: Path) -> Delivery:
    delivery = archive_raw_file(delivery, archive_dir)
    if delivery.is_settled:
        return delivery
    try:
        text_rows = read_text_rows(delivery.path, contract_for(delivery.source))
    except RejectedFile as rejection:
        return delivery.rejected(str(rejection))
    return replace(delivery, text_rows=text_rows.frame, encoding=text_rows.encoding)


def stage_delivery(delivery: Delivery, reference_dir: Path) -> Delivery:
    if delivery.is_settled:
        return delivery
    contract = contract_for(delivery.source)
    try:
        staged = stage_rows(delivery.text_rows, contract, load_reference(reference_dir), plain_numbers=delivery.encoding == "xlsx")
    except RejectedFile as rejection:
        return delivery.rejected(str(rejection))
    return replace(delivery, staged_rows=staged.frame, problems=staged.problems)


def validate_delivery(delivery: Delivery, reference_dir: Path, today: dt.date | None = None) -> Delivery:
    if delivery.is_settled:
        return delivery
    contract = contract_for(delivery.source)
    problems = validate_rows(
        delivery.staged_rows, delivery.problems, delivery.text_rows, contract, load_reference(reference_dir), today
    )
    return replace(delivery, problems=problems)


def spill_delivery(delivery: Delivery, spill_dir: Path) -> Delivery:
    """Write a validated delivery's rows to Parquet (what `load` reads) and let go of the frames."""
    if delivery.is_settled:
        return delivery
    contract = contract_for(delivery.source)
    spill_dir.mkdir(parents=True, exist_ok=True)
    spilled = replace(delivery, spilled=spill_dir / str(delivery.delivery_id), rows_read=delivery.text_rows.height,
                      text_rows=None, staged_rows=None, problems=None)
    staged, problems = rows_for_loading(contract, delivery.delivery_id, delivery.staged_rows, delivery.problems)
    delivery.text_rows.with_columns(pl.lit(delivery.delivery_id, dtype=pl.Int32).alias("delivery_id")).select(
        list(raw_columns(contract))).write_parquet(spilled.spill_path("raw"))
    staged.write_parquet(spilled.spill_path("staged"))
    problems.write_parquet(spilled.spill_path("problems"))
    return spilled
