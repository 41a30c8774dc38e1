"""What a run did, for the terminal, the Prefect UI and meta.runs."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

STATUS_ORDER = ("loaded", "loaded_with_quarantine", "duplicate", "rejected", "superseded")


@dataclass
class RunSummary:
    run_id: str
    landing_dir: str
    warehouse: str
    started_at: dt.datetime
    model_fingerprint: str | None  # what the marts were built from; None when this run did not build them
    ledger_rows: list[dict] = field(default_factory=list)  # meta.deliveries rows this run wrote
    mart_rows: dict[str, int] = field(default_factory=dict)  # empty when the warehouse was unchanged
    report: Path | None = None  # the steward's HTML report of the run
    warnings: list[str] = field(default_factory=list)  # what went wrong after the warehouse was published

    @staticmethod
    def describe(ledger_row: dict) -> str:
        where = f"{ledger_row['source']}/{ledger_row['file_name']}"
        status = ledger_row["status"]
        if status == "rejected":
            return f"{where}: rejected: {ledger_row['reason']}"
        if status == "duplicate":
            return f"{where}: duplicate ({ledger_row['reason']})"
        detail = f"{ledger_row['rows_loaded']} of {ledger_row['rows_read']} rows loaded"
        if ledger_row["rows_quarantined"]:
            detail += f", {ledger_row['rows_quarantined']} quarantined"
        warnings = f"; warning: {ledger_row['warnings']}" if ledger_row.get("warnings") else ""
        return f"{where}: {status} ({detail}){warnings}"

    @property
    def status_counts(self) -> dict[str, int]:
        counts = Counter(row["status"] for row in self.ledger_rows)
        return {status: counts[status] for status in STATUS_ORDER if counts[status]}

    def total(self, column: str) -> int:
        return sum(row[column] or 0 for row in self.ledger_rows)

    def render(self) -> str:
        if not self.ledger_rows and not self.mart_rows:
            return f"Nothing new under {self.landing_dir}; warehouse unchanged: {self.warehouse}"
        marts = (", ".join(f"marts.{name} ({rows} rows)" for name, rows in self.mart_rows.items())
                 or "not rebuilt by this run (the materialization deployment follows)")
        by_status = ", ".join(f"{n} {status}" for status, n in self.status_counts.items()) or "no new files"
        return "\n".join([
            f"Deliveries: {len(self.ledger_rows)} ({by_status})",
            f"Rows: {self.total('rows_loaded')} loaded, {self.total('rows_quarantined')} quarantined",
            f"Marts: {marts}",
            f"Warehouse: {self.warehouse}",
            *([f"Steward report: {self.report}"] if self.report else []),
            *(f"Warning: {warning}" for warning in self.warnings),
        ])


def record_run(warehouse: Path, summary: RunSummary) -> None:
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute(
            "INSERT INTO meta.runs VALUES (?, ?, ?, ?, ?, ?)",
            [summary.run_id, summary.started_at, dt.datetime.now(dt.UTC).replace(tzinfo=None),
             summary.landing_dir, len(summary.ledger_rows), summary.model_fingerprint],
        )
