"""What a data steward reads and does: rules in plain words, the ledger and the quarantine, waivers
and retries. Reads take the published warehouse; writes take a build (see warehouse/build.py)."""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

from transforms.intake.read import RejectedFile
from transforms.intake.stage import TYPE_WORDS, stage_rows
from transforms.intake.validate import validate_rows
from transforms.ledger import records
from transforms.reference import load_reference
from transforms.sources import contract_for
from transforms.sources.suite import DUPLICATE_RULE, key_rule, suite_for
from warehouse.files import internal_file
from warehouse.load import rows_for_loading

LOAD_TIME_RULES = {"duplicate_id": "The id is already loaded by another delivery of this source"}


@cache
def _suite_descriptions(source: str) -> dict[tuple[str, str | None], str]:
    suite = suite_for(contract_for(source))
    found = {}
    for expectation in suite["expectations"]:
        meta, kwargs = expectation.get("meta", {}), expectation["kwargs"]
        column = meta.get("column") or kwargs.get("column") or kwargs.get("column_A")
        found[(meta.get("rule"), column)] = meta.get("description", expectation["type"])
    return found


def describe_rule(source: str, rule: str, column: str | None) -> str:
    """The rule in plain words, as the source's suite (or the typing step) states it."""
    contract = contract_for(source)
    if contract is None:
        return rule
    if rule.startswith("type_"):
        header = contract.column(column).header if column else "the value"
        return f"{header} must be {TYPE_WORDS.get(rule.removeprefix('type_'), rule)}"
    if rule in LOAD_TIME_RULES:
        return LOAD_TIME_RULES[rule]
    if rule == DUPLICATE_RULE and key_rule(contract):
        return key_rule(contract)[1]
    descriptions = _suite_descriptions(source)
    return descriptions.get((rule, column)) or next(
        (text for (name, _), text in descriptions.items() if name == rule), rule)


def steward_user() -> str:
    try:
        return getpass.getuser()
    except OSError:  # no user name in the environment (some containers)
        return "unknown"


def read_deliveries(warehouse: Path, source: str | None = None, status: str | None = None) -> pl.DataFrame:
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        return conn.sql("""
            SELECT delivery_id, source, file_name, status, reason, rows_read, rows_loaded, rows_quarantined,
                   encoding, received_at
            FROM meta.deliveries
            WHERE ($source IS NULL OR source = $source) AND ($status IS NULL OR status = $status)
            ORDER BY delivery_id""", params={"source": source, "status": status}).pl()


def read_quarantine(warehouse: Path, source: str | None = None, status: str | None = "open",
                    rule: str | None = None, delivery_id: int | None = None, run_id: str | None = None) -> pl.DataFrame:
    """Quarantined rows with their file and the rule in plain words; status None means every status."""
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        frame = conn.sql("""
            SELECT q.delivery_id, d.source, d.file_name, q.line_number, q.rule, q.column_name, q.value,
                   q.status, q.note, q.resolved_by, q.resolved_at
            FROM meta.quarantine AS q JOIN meta.deliveries AS d USING (delivery_id)
            WHERE ($source IS NULL OR d.source = $source) AND ($status IS NULL OR q.status = $status)
              AND ($rule IS NULL OR q.rule = $rule) AND ($delivery IS NULL OR q.delivery_id = $delivery)
              AND ($run IS NULL OR d.run_id = $run)
            ORDER BY q.delivery_id, q.line_number, q.rule""",
            params={"source": source, "status": status, "rule": rule, "delivery": delivery_id, "run": run_id}).pl()
    rules = frame.select("source", "rule", "column_name").unique()
    descriptions = rules.with_columns(pl.Series("rule_description", [describe_rule(*row) for row in rules.iter_rows()],
                                                dtype=pl.Utf8))
    return frame.join(descriptions, on=["source", "rule", "column_name"], how="left", nulls_equal=True, maintain_order="left")


def read_raw_record(warehouse: Path, delivery_id: int, line_number: int) -> dict:
    """The row exactly as delivered, by header (for `quarantine show`)."""
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        (source,) = conn.execute("SELECT source FROM meta.deliveries WHERE delivery_id = ?", [delivery_id]).fetchall()[0]
        contract = contract_for(source)
        rows = conn.sql(f"SELECT * FROM {contract.raw_table} WHERE delivery_id = ? AND line_number = ?",
                        params=[delivery_id, line_number]).pl()
    if rows.is_empty():
        return {}
    record = rows.row(0, named=True)
    return {column.header: record[column.name] for column in contract.columns}


def waive(build: Path, reason: str, delivery_id: int | None = None, line_number: int | None = None,
          rule: str | None = None, source: str | None = None, who: str | None = None) -> int:
    """Close open quarantine rows without loading them, with who, when and why; returns how many."""
    if not reason.strip():
        raise ValueError("a waiver needs a reason")
    if delivery_id is None and rule is None and source is None:
        raise ValueError("say which rows to waive: a delivery (and line), a rule or a source")
    with duckdb.connect(str(build)) as conn:
        selection = """($delivery IS NULL OR delivery_id = $delivery)
              AND ($line IS NULL OR line_number = $line) AND ($rule IS NULL OR rule = $rule)
              AND ($source IS NULL OR delivery_id IN (SELECT delivery_id FROM meta.deliveries WHERE source = $source))"""
        params = {"delivery": delivery_id, "line": line_number, "rule": rule, "source": source}
        return records.close_quarantine_rows(conn, selection, params, "waived", who or steward_user(), reason.strip())


@dataclass
class RetryOutcome:
    delivery_id: int
    source: str
    file_name: str
    released_rows: int = 0
    still_open_rows: int = 0
    problems: list[str] = field(default_factory=list)


def _open_lines(conn: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, str, str | None, list[int]]]:
    rows = conn.execute("""
        SELECT q.delivery_id, d.source, d.file_name, d.encoding, list(DISTINCT q.line_number ORDER BY q.line_number)
        FROM meta.quarantine AS q JOIN meta.deliveries AS d USING (delivery_id)
        WHERE q.status = 'open' GROUP BY ALL ORDER BY q.delivery_id""").fetchall()
    return {did: (source, name, encoding, lines) for did, source, name, encoding, lines in rows}


def retry_quarantined(build: Path, reference_dir: Path, today: dt.date | None = None, who: str | None = None) -> list[RetryOutcome]:
    """Check every open quarantined row again against today's reference data and suites. Rows that pass
    go into staging (if their partition still belongs to their delivery) and are `released`; rows that
    still fail keep open quarantine rows with the problems found now. Costs one delivery's validation per
    delivery with open rows."""
    reference = load_reference(reference_dir)
    who = who or steward_user()
    outcomes = []
    with duckdb.connect(str(build)) as conn:
        for delivery_id, (source, file_name, encoding, lines) in _open_lines(conn).items():
            contract = contract_for(source)
            outcome = RetryOutcome(delivery_id, source, file_name)
            outcomes.append(outcome)
            # the whole delivery is checked again, so rules across rows (sums, duplicate keys) see their context;
            # only the verdict on the held-back lines is used
            text_rows = conn.sql(f"SELECT * EXCLUDE (delivery_id) FROM {contract.raw_table} WHERE delivery_id = ? "
                                 "ORDER BY line_number", params=[delivery_id]).pl()
            try:
                staged = stage_rows(text_rows, contract, reference, plain_numbers=encoding == "xlsx")
            except RejectedFile as still_wrong:
                outcome.still_open_rows, outcome.problems = len(lines), [str(still_wrong)]
                continue
            held_back = pl.col("line_number").is_in(lines)
            problems = validate_rows(staged.frame, staged.problems, text_rows, contract, reference, today,
                                     with_notes=True).filter(held_back)
            passing = staged.frame.filter(held_back & ~pl.col("line_number").is_in(problems["line_number"].implode()))
            outcome.released_rows, outcome.still_open_rows = _apply_retry(
                conn, contract, delivery_id, staged.frame, passing, problems, who)
    return outcomes


def _apply_retry(conn, contract, delivery_id, staged, passing, problems, who) -> tuple[int, int]:
    """One transaction: load what passes into current partitions, re-record what still fails."""
    staged_rows, located_problems = rows_for_loading(contract, delivery_id, staged, problems)
    conn.register("retried_passing", staged_rows.filter(pl.col("line_number").is_in(passing["line_number"].implode())))
    conn.register("retried_problems", located_problems)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"""
            CREATE TEMP TABLE releasable AS
            SELECT p.* FROM retried_passing AS p
            JOIN meta.partitions AS mp
              ON mp.source = '{contract.source}' AND mp.delivery_id = p.delivery_id
             AND mp.partition_key = p.partition_key AND mp.superseded_by IS NULL""")
        if contract.unique_across_deliveries:
            column = contract.unique_across_deliveries
            conn.execute(f"DELETE FROM releasable WHERE {column} IN (SELECT {column} FROM {contract.staging_table})")
        conn.execute(f"INSERT INTO {contract.staging_table} BY NAME SELECT * FROM releasable")
        records.close_quarantine_rows(conn, "delivery_id = $delivery AND line_number IN (SELECT line_number FROM releasable)",
                                      {"delivery": delivery_id}, "released", who,
                                      "passed the checks again on retry and was loaded")
        records.requarantine_rows(conn, delivery_id, "retried_problems", "still failing on retry")
        (released,) = conn.execute("SELECT count(*) FROM releasable").fetchall()[0]
        (still_open,) = conn.execute("SELECT count(DISTINCT line_number) FROM meta.quarantine "
                                     "WHERE delivery_id = ? AND status = 'open'", [delivery_id]).fetchall()[0]
        records.count_released_rows(conn, delivery_id, released)
        conn.execute("DROP TABLE releasable")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("retried_passing")
        conn.unregister("retried_problems")
    return released, still_open
