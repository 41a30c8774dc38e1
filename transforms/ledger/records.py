"""The ledger's writes: every statement that changes meta.deliveries, meta.quarantine and
meta.partitions (meta.runs: runs.py). Callers pass their open connection, so each write joins the
caller's transaction; the SQL relations they pass hold the rows to record."""

from __future__ import annotations

import duckdb
import polars as pl

from transforms.ledger.deliveries import Delivery


def quarantine_rows(conn: duckdb.DuckDBPyConnection, problems: str, delivery_id: str = "delivery_id",
                    note: str = "note", params: dict | None = None) -> None:
    """Open quarantine rows for the problems in relation `problems` (line_number, rule, column_name,
    value, partition_key; delivery_id and note unless given as SQL expressions)."""
    conn.execute(f"""
        INSERT INTO meta.quarantine (delivery_id, line_number, rule, column_name, value, status, partition_key, note)
        SELECT {delivery_id}, line_number, rule, column_name, value, 'open', partition_key, {note} FROM {problems}""",
        params)


def requarantine_rows(conn: duckdb.DuckDBPyConnection, delivery_id: int, problems: str, note: str) -> None:
    """A delivery's lines checked again: their open quarantine rows become the problems found now."""
    conn.execute(f"""DELETE FROM meta.quarantine WHERE delivery_id = $delivery AND status = 'open'
                     AND line_number IN (SELECT line_number FROM {problems})""", {"delivery": delivery_id})
    quarantine_rows(conn, problems, delivery_id=str(delivery_id), note="coalesce(note, $note)", params={"note": note})


def close_quarantine_rows(conn: duckdb.DuckDBPyConnection, selection: str, params: dict, status: str, who: str,
                          note: str) -> int:
    """Close the open quarantine rows `selection` picks (a condition on meta.quarantine), as `released`
    (loaded after a fix) or `waived` (closed without loading), with who, when and why; returns how many."""
    where = f"status = 'open' AND ({selection})"
    (count,) = conn.execute(f"SELECT count(*) FROM meta.quarantine WHERE {where}", params).fetchall()[0]
    conn.execute(f"UPDATE meta.quarantine SET status = $new_status, resolved_at = now()::TIMESTAMP, resolved_by = $who, "
                 f"note = $note WHERE {where}", params | {"new_status": status, "who": who, "note": note})
    return count


def ledger_row(delivery: Delivery, status: str, rows_read, rows_loaded, rows_quarantined, run_id) -> pl.DataFrame:
    return pl.DataFrame([{
        "delivery_id": delivery.delivery_id, "source": delivery.source, "file_name": delivery.file_name,
        "sha256": delivery.sha256, "received_at": delivery.received_at, "status": status,
        "reason": delivery.reason, "rows_read": rows_read, "rows_loaded": rows_loaded,
        "rows_quarantined": rows_quarantined, "encoding": delivery.encoding,
        "size_bytes": delivery.size_bytes, "archive_path": delivery.archive_path, "run_id": run_id,
        "warnings": delivery.warnings,
    }], schema_overrides={"reason": pl.Utf8, "warnings": pl.Utf8})


def insert_ledger_rows(conn: duckdb.DuckDBPyConnection, ledger_rows: pl.DataFrame) -> None:
    conn.register("incoming_deliveries", ledger_rows)
    conn.execute("INSERT INTO meta.deliveries BY NAME SELECT * FROM incoming_deliveries")
    conn.unregister("incoming_deliveries")


def count_released_rows(conn: duckdb.DuckDBPyConnection, delivery_id: int, released: int) -> None:
    """A delivery whose held-back rows were loaded later: its counts, and `loaded` once none is held back."""
    conn.execute("""
        UPDATE meta.deliveries
        SET rows_loaded = rows_loaded + $n, rows_quarantined = rows_quarantined - $n,
            status = CASE WHEN status = 'loaded_with_quarantine' AND rows_quarantined - $n = 0 THEN 'loaded' ELSE status END
        WHERE delivery_id = $delivery""", {"n": released, "delivery": delivery_id})


def current_partitions_among(conn: duckdb.DuckDBPyConnection, source: str, partitions: str) -> int:
    """How many of the partition keys in relation `partitions` a delivery of the source already holds."""
    return conn.execute(f"""
        SELECT count(*) FROM meta.partitions WHERE source = $source AND superseded_by IS NULL
          AND partition_key IN (SELECT partition_key FROM {partitions})""", {"source": source}).fetchall()[0][0]


def register_partitions(conn: duckdb.DuckDBPyConnection, source: str, partitions: str, delivery_id: str = "delivery_id") -> None:
    """Record which delivery holds each partition key in relation `partitions`."""
    conn.execute(f"INSERT INTO meta.partitions (source, partition_key, delivery_id) "
                 f"SELECT DISTINCT $source, partition_key, {delivery_id} FROM {partitions} WHERE partition_key IS NOT NULL",
                 {"source": source})


def supersede_partitions(conn: duckdb.DuckDBPyConnection, source: str, partitions: str, delivery: Delivery) -> None:
    """The delivery replaces the current holders of the partition keys in relation `partitions`: they
    are superseded (a delivery left with no current partition too), and their open quarantine rows
    are answered by the correction."""
    params = {"source": source, "by": delivery.delivery_id}
    conn.execute(f"""
        UPDATE meta.partitions SET superseded_by = $by
        WHERE source = $source AND superseded_by IS NULL AND partition_key IN (SELECT partition_key FROM {partitions})""",
                 params)
    conn.execute("""
        UPDATE meta.deliveries SET status = 'superseded'
        WHERE source = $source AND status IN ('loaded', 'loaded_with_quarantine')
          AND delivery_id IN (SELECT delivery_id FROM meta.partitions WHERE source = $source)
          AND delivery_id NOT IN (SELECT delivery_id FROM meta.partitions WHERE source = $source AND superseded_by IS NULL)""",
                 {"source": source})
    close_quarantine_rows(
        conn, f"partition_key IN (SELECT partition_key FROM {partitions}) "
              "AND delivery_id IN (SELECT delivery_id FROM meta.deliveries WHERE source = $source)",
        {"source": source}, "waived", "boligdata", f"superseded by delivery {delivery.delivery_id} ({delivery.file_name})")


def next_report_id(conn: duckdb.DuckDBPyConnection) -> int:
    return conn.execute("SELECT coalesce(max(report_id), 0) + 1 FROM meta.reports").fetchall()[0][0]


def record_report(conn: duckdb.DuckDBPyConnection, report: dict, figures: pl.DataFrame) -> None:
    """A board report as written: its row in meta.reports and every figure it showed in
    meta.reported_figures. Rows are only ever added: a later correction never changes what a report said."""
    conn.register("incoming_report", pl.DataFrame([report]))
    conn.execute("INSERT INTO meta.reports BY NAME SELECT * FROM incoming_report")
    conn.unregister("incoming_report")
    if figures.height:
        conn.register("incoming_figures", figures.with_columns(pl.lit(report["report_id"]).alias("report_id")))
        conn.execute("INSERT INTO meta.reported_figures BY NAME SELECT * FROM incoming_figures")
        conn.unregister("incoming_figures")


def record_action(conn: duckdb.DuckDBPyConnection, who: str, action: str, target: str | None, reason: str | None,
                  result: str | None, delivery_id: int | None = None) -> None:
    """One steward action in meta.steward_actions (the desk's history of who did what, when)."""
    conn.execute("""
        INSERT INTO meta.steward_actions
        SELECT coalesce(max(action_id), 0) + 1, now()::TIMESTAMP, $who, $action, $target, $reason, $result, $delivery
        FROM meta.steward_actions""",
                 {"who": who, "action": action, "target": target, "reason": reason, "result": result, "delivery": delivery_id})
