"""The per-file steps, as plain functions on a Delivery: archive and read, stage, validate.

A bad file is an outcome, not an error: each step turns RejectedFile into a `rejected` delivery with
its reason, and the later steps pass a settled delivery through untouched."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

from transforms.contracts import contract_for
from transforms.deliveries import Delivery, archive_raw_file
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
