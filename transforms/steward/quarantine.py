"""What a data steward reads and does: rules in plain words, the ledger and the quarantine, waivers
and retries. Reads take the published warehouse; writes take a build (see warehouse/build.py)."""

from __future__ import annotations

import datetime as dt
import difflib
import getpass
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

from transforms.intake.read import RejectedFile, read_text_rows
from transforms.intake.stage import TYPE_WORDS, stage_rows
from transforms.intake.validate import validate_rows
from transforms.ledger import records
from transforms.reference import add_alias, load_reference
from transforms.sources import contract_for
from transforms.sources.suite import DUPLICATE_RULE, key_rule, suite_for
from warehouse import staged_ids
from warehouse.files import internal_file
from warehouse.load import rows_for_loading
from warehouse.transaction import transaction

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
                   warnings, encoding, received_at
            FROM meta.deliveries
            WHERE ($source IS NULL OR source = $source) AND ($status IS NULL OR status = $status)
            ORDER BY delivery_id""", params={"source": source, "status": status}).pl()


def read_quarantine(warehouse: Path, source: str | None = None, status: str | None = "open",
                    rule: str | None = None, delivery_id: int | None = None, run_id: str | None = None) -> pl.DataFrame:
    """Quarantined rows with their file and the rule in plain words; status None means every status."""
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        return select_quarantine(conn, source, status, rule, delivery_id, run_id)


def select_quarantine(conn: duckdb.DuckDBPyConnection, source: str | None = None, status: str | None = "open",
                      rule: str | None = None, delivery_id: int | None = None, run_id: str | None = None) -> pl.DataFrame:
    """read_quarantine over an open connection to the warehouse."""
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


class StewardError(ValueError):
    """A steward's command names something that does not exist, or selects nothing: nothing changes."""


def known_rules() -> list[str]:
    """Every rule id a quarantine row can carry."""
    from transforms.sources import all_contracts

    rules = set(LOAD_TIME_RULES) | {DUPLICATE_RULE} | {f"type_{t}" for t in TYPE_WORDS}
    for contract in all_contracts().values():
        rules |= {rule for rule, _ in _suite_descriptions(contract.source)}
    return sorted(r for r in rules if r)


def known_sources() -> list[str]:
    from transforms.sources import all_contracts

    return sorted(all_contracts())


def check_names(rule: str | None = None, source: str | None = None) -> None:
    """An unknown --rule or --source is a mistake, not an empty selection."""
    if rule is not None and rule not in known_rules():
        close = difflib.get_close_matches(rule, known_rules(), n=1)
        raise StewardError(f"no rule {rule!r}" + (f" (did you mean {close[0]}?)" if close else "")
                           + f"; rules: {', '.join(known_rules())}")
    if source is not None and source not in known_sources():
        raise StewardError(f"no source {source!r}; sources: {', '.join(known_sources())}")


def _delivery_ids(conn) -> list[int]:
    return [d for (d,) in conn.execute("SELECT delivery_id FROM meta.deliveries ORDER BY 1").fetchall()]


def describe_ids(ids: list[int]) -> str:
    """1, 2, 3, 7 -> '1-3, 7'."""
    ranges, start, previous = [], None, None
    for i in ids:
        if start is None:
            start = previous = i
        elif i == previous + 1:
            previous = i
        else:
            ranges.append((start, previous))
            start = previous = i
    if start is not None:
        ranges.append((start, previous))
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges) or "none"


def check_delivery(conn, delivery_id: int) -> None:
    ids = _delivery_ids(conn)
    if delivery_id not in ids:
        raise StewardError(f"no delivery {delivery_id}; deliveries: {describe_ids(ids)}")


def open_summary(conn, delivery_id: int | None = None) -> str:
    """What is open, in a few words (for a selection that found nothing)."""
    rows = conn.execute("""SELECT delivery_id, list(DISTINCT line_number ORDER BY line_number), list(DISTINCT rule ORDER BY rule)
                           FROM meta.quarantine WHERE status = 'open' AND ($d IS NULL OR delivery_id = $d)
                           GROUP BY 1 ORDER BY 1""", {"d": delivery_id}).fetchall()
    if not rows:
        return "nothing is open" + (f" in delivery {delivery_id}" if delivery_id is not None else "")
    return "open: " + "; ".join(f"delivery {d} lines {describe_ids(lines)} ({', '.join(rules)})" for d, lines, rules in rows[:10])


def waive(build: Path, reason: str, delivery_id: int | None = None, line_number: int | None = None,
          rule: str | None = None, source: str | None = None, who: str | None = None) -> int:
    """Close open quarantine rows without loading them, with who, when and why; returns how many.
    A selection that names nothing that exists, or finds nothing open, is an error (StewardError)."""
    if not reason.strip():
        raise StewardError("a waiver needs a reason")
    if delivery_id is None and rule is None and source is None:
        raise StewardError("say which rows to waive: a delivery (and line), a rule or a source")
    if line_number is not None and delivery_id is None:
        raise StewardError("--line needs --delivery")
    check_names(rule, source)
    who = who or steward_user()
    with duckdb.connect(str(build)) as conn:
        if delivery_id is not None:
            check_delivery(conn, delivery_id)
        selection = """($delivery IS NULL OR delivery_id = $delivery)
              AND ($line IS NULL OR line_number = $line) AND ($rule IS NULL OR rule = $rule)
              AND ($source IS NULL OR delivery_id IN (SELECT delivery_id FROM meta.deliveries WHERE source = $source))"""
        params = {"delivery": delivery_id, "line": line_number, "rule": rule, "source": source}
        target = ", ".join(f"{name} {value}" for name, value in (("delivery", delivery_id), ("line", line_number),
                                                                 ("rule", rule), ("source", source)) if value is not None)
        count = records.close_quarantine_rows(conn, selection, params, "waived", who, reason.strip())
        if count == 0:
            raise StewardError(f"no open quarantined row matches {target}; {open_summary(conn, delivery_id)}")
        records.record_action(conn, who, "waive", target, reason.strip(), f"waived {count} row problem(s)", delivery_id)
        return count


def dismiss_file(build: Path, delivery_id: int, reason: str, who: str | None = None) -> None:
    """A rejected file the steward decides needs no correction: off the desk's open list, with who and why."""
    if not reason.strip():
        raise StewardError("dismissing a rejected file needs a reason")
    who = who or steward_user()
    with duckdb.connect(str(build)) as conn:
        check_delivery(conn, delivery_id)
        (status, name) = conn.execute("SELECT status, source || '/' || file_name FROM meta.deliveries WHERE delivery_id = ?",
                                      [delivery_id]).fetchall()[0]
        if status != "rejected":
            raise StewardError(f"delivery {delivery_id} ({name}) is {status}, not rejected; {open_summary(conn, delivery_id)}")
        records.record_action(conn, who, "dismiss_file", f"delivery {delivery_id} ({name})", reason.strip(),
                              "rejected file closed without a correction", delivery_id)


def add_scope_alias(build: Path, reference_dir: Path, alias: str, scope_id: str, who: str | None = None,
                    edits: list | None = None) -> str:
    """Add ALIAS for the area or bydel SCOPE_ID to the reference data (reference.add_alias) and record it
    in BUILD (meta.steward_actions, reference_edit); the rows it held back load at the next retry.
    Returns the line added. The edit goes into EDITS: callers put it back with reference.undone_on_failure
    if the write is not published."""
    line = add_alias(reference_dir, alias, scope_id, edits)
    with duckdb.connect(str(build)) as conn:
        records.record_action(conn, who or steward_user(), "reference_edit", "scope_aliases.csv", None, f"added {line}")
    return line


@dataclass
class RetryOutcome:
    delivery_id: int
    source: str
    file_name: str
    released_rows: int = 0
    still_open_rows: int = 0
    problems: list[str] = field(default_factory=list)


def _open_lines(conn: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, str, str, list[int]]]:
    rows = conn.execute("""
        SELECT q.delivery_id, d.source, d.file_name, d.archive_path, list(DISTINCT q.line_number ORDER BY q.line_number)
        FROM meta.quarantine AS q JOIN meta.deliveries AS d USING (delivery_id)
        WHERE q.status = 'open' GROUP BY ALL ORDER BY q.delivery_id""").fetchall()
    return {did: (source, name, archive, lines) for did, source, name, archive, lines in rows}


def retry_quarantined(build: Path, reference_dir: Path, today: dt.date | None = None, who: str | None = None) -> list[RetryOutcome]:
    """Check every open quarantined row again against today's reference data and suites. Rows that pass
    go into staging (if their partition still belongs to their delivery) and are `released`; rows that
    still fail keep open quarantine rows with the problems found now. Costs one delivery's validation per
    delivery with open rows."""
    reference = load_reference(reference_dir)
    who = who or steward_user()
    outcomes = []
    staged_ids.forget(build)  # released rows add ids to staging that no load counted
    with duckdb.connect(str(build)) as conn:
        for delivery_id, (source, file_name, archive, lines) in _open_lines(conn).items():
            contract = contract_for(source)
            outcome = RetryOutcome(delivery_id, source, file_name)
            outcomes.append(outcome)
            # the whole delivery is read again from its archived file and checked again, so rules across rows
            # (sums, duplicate keys) see their context; only the verdict on the held-back lines is used
            if not archive or not Path(archive).is_file():
                outcome.still_open_rows, outcome.problems = len(lines), [f"its archived file is missing: {archive}"]
                continue
            try:
                delivered = read_text_rows(Path(archive), contract)
                text_rows = delivered.frame
                staged = stage_rows(text_rows, contract, reference, plain_numbers=delivered.encoding == "xlsx")
            except RejectedFile as still_wrong:
                outcome.still_open_rows, outcome.problems = len(lines), [str(still_wrong)]
                continue
            held_back = pl.col("line_number").is_in(lines)
            problems = validate_rows(staged.frame, staged.problems, text_rows, contract, reference, today,
                                     with_notes=True).filter(held_back)
            passing = staged.frame.filter(held_back & ~pl.col("line_number").is_in(problems["line_number"].implode()))
            outcome.released_rows, outcome.still_open_rows = _apply_retry(
                conn, contract, delivery_id, staged.frame, passing, problems, who)
        if outcomes:
            records.record_action(conn, who, "retry", f"{len(outcomes)} deliver(ies) with open rows", None,
                                  f"{sum(o.released_rows for o in outcomes)} row(s) released, "
                                  f"{sum(o.still_open_rows for o in outcomes)} still quarantined")
    return outcomes


def _apply_retry(conn, contract, delivery_id, staged, passing, problems, who) -> tuple[int, int]:
    """One transaction: load what passes into current partitions, re-record what still fails."""
    staged_rows, located_problems = rows_for_loading(contract, delivery_id, staged, problems)
    conn.register("retried_passing", staged_rows.filter(pl.col("line_number").is_in(passing["line_number"].implode())))
    conn.register("retried_problems", located_problems)
    try:
        with transaction(conn):
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
    finally:
        conn.unregister("retried_passing")
        conn.unregister("retried_problems")
    return released, still_open
