"""Deliveries -> warehouse rows. Each delivery is applied in one transaction: its raw rows, its valid
rows into staging (delete-then-insert per partition it contains), its problems into the quarantine,
and its ledger row. Partitions it does not contain stay as they were."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from transforms.contracts import Contract, all_contracts, contract_for
from transforms.deliveries import Delivery

SQL_TYPES = {"text": "VARCHAR", "int": "BIGINT", "decimal": "DOUBLE", "date": "DATE"}
SCHEMA_SQL = Path(__file__).resolve().parents[1] / "warehouse" / "schema.sql"

# Columns raw and staging tables carry besides the contract's own: name -> (type, description).
ROW_KEYS = {
    "delivery_id": ("INTEGER", "Delivery (meta.deliveries) the row came in."),
    "line_number": ("INTEGER", "1-based line in the delivered file; the header is line 1."),
}
PARTITION_KEY = {"partition_key": ("VARCHAR", "The contract's partition key, parts joined by |.")}
SCOPE_KEYS = {
    "scope_level": ("VARCHAR", "Level the row speaks for: area, kommune or national (NULL: outside every area)."),
    "scope_id": ("VARCHAR", "Area id, kommune code or national level id resolved from Område."),
    "kommune_code": ("VARCHAR", "Kommune code as text."),
}
ORGANISATION_KEY = {"organisation": ("VARCHAR", "The housing organisation as spelled in the reference data.")}


def staging_columns(contract: Contract) -> dict[str, tuple[str, str]]:
    """What staging.<source> stores: name -> (SQL type, description)."""
    columns = ROW_KEYS | PARTITION_KEY
    if contract.scope_column:
        columns |= SCOPE_KEYS
    if contract.department_columns:
        columns |= ORGANISATION_KEY
    return columns | {c.name: (SQL_TYPES[c.type], f"{c.header}: {c.description}") for c in contract.columns}


def raw_columns(contract: Contract) -> dict[str, tuple[str, str]]:
    """What raw.<source> stores: every delivered value as text."""
    return ROW_KEYS | {c.name: ("VARCHAR", f"{c.header} as delivered: {c.description}") for c in contract.columns}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _source_table_sql(contract: Contract) -> list[str]:
    """DDL for raw.<source> (text as delivered) and staging.<source> (typed, current, valid rows)."""
    statements = []
    for table, columns, what in (
        (contract.raw_table, raw_columns(contract), "Every delivered row, as text"),
        (contract.staging_table, staging_columns(contract), "Typed rows of current partitions that passed validation"),
    ):
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} (" + ", ".join(f"{n} {t}" for n, (t, _) in columns.items()) + ")")
        statements += [f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {n} {t}" for n, (t, _) in columns.items()]
        statements.append(f"COMMENT ON TABLE {table} IS {_quote(f'{what}: {contract.description}')}")
        statements += [f"COMMENT ON COLUMN {table}.{n} IS {_quote(d)}" for n, (_, d) in columns.items()]
    return statements


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing: meta tables, and raw/staging tables for every contract."""
    conn.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
    for contract in all_contracts().values():
        for statement in _source_table_sql(contract):
            conn.execute(statement)


def _ledger_row(delivery: Delivery, status: str, rows_read, rows_loaded, rows_quarantined, run_id) -> pl.DataFrame:
    return pl.DataFrame([{
        "delivery_id": delivery.delivery_id, "source": delivery.source, "file_name": delivery.file_name,
        "sha256": delivery.sha256, "received_at": delivery.received_at, "status": status,
        "reason": delivery.reason, "rows_read": rows_read, "rows_loaded": rows_loaded,
        "rows_quarantined": rows_quarantined, "encoding": delivery.encoding,
        "size_bytes": delivery.size_bytes, "archive_path": delivery.archive_path, "run_id": run_id,
    }])


def _apply_rows(conn: duckdb.DuckDBPyConnection, delivery: Delivery, contract: Contract) -> tuple[int, int]:
    problems = delivery.problems
    staged = delivery.staged_rows
    bad_lines = problems["line_number"].unique().implode()
    clean = staged.filter(~pl.col("line_number").is_in(bad_lines))
    partitions = staged.select(pl.col("partition_key").drop_nulls().unique())
    with_id = pl.lit(delivery.delivery_id, dtype=pl.Int32).alias("delivery_id")
    conn.register("incoming_raw", delivery.text_rows.with_columns(with_id).select(list(raw_columns(contract))))
    conn.register("incoming_staged", clean.with_columns(with_id).select(list(staging_columns(contract))))
    conn.register("incoming_partitions", partitions)
    conn.register("incoming_problems", problems.join(
        staged.select("line_number", "partition_key"), on="line_number", how="left"
    ).with_columns(with_id))
    source = _quote(contract.source)
    conn.execute(f"""
        DELETE FROM {contract.staging_table}
        WHERE partition_key IN (SELECT partition_key FROM incoming_partitions);
        UPDATE meta.partitions SET superseded_by = {delivery.delivery_id}
        WHERE source = {source} AND superseded_by IS NULL
          AND partition_key IN (SELECT partition_key FROM incoming_partitions);
        INSERT INTO meta.partitions (source, partition_key, delivery_id)
        SELECT {source}, partition_key, {delivery.delivery_id} FROM incoming_partitions;
        UPDATE meta.deliveries SET status = 'superseded'
        WHERE source = {source} AND status IN ('loaded', 'loaded_with_quarantine')
          AND delivery_id IN (SELECT delivery_id FROM meta.partitions WHERE source = {source})
          AND delivery_id NOT IN (
              SELECT delivery_id FROM meta.partitions WHERE source = {source} AND superseded_by IS NULL);
        INSERT INTO {contract.raw_table} BY NAME SELECT * FROM incoming_raw;
        INSERT INTO {contract.staging_table} BY NAME SELECT * FROM incoming_staged;
        INSERT INTO meta.quarantine (delivery_id, line_number, rule, column_name, value, status, partition_key)
        SELECT delivery_id, line_number, rule, column_name, value, 'open', partition_key FROM incoming_problems;
    """)
    for name in ("incoming_raw", "incoming_staged", "incoming_partitions", "incoming_problems"):
        conn.unregister(name)
    return clean.height, staged.height - clean.height


def record_delivery(warehouse: Path, delivery: Delivery, run_id: str | None = None) -> dict:
    """Apply one delivery in one transaction and return its ledger row as a dict."""
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            if delivery.is_settled:
                status, counts = delivery.status, (None, None, None)
            else:
                loaded, quarantined = _apply_rows(conn, delivery, contract_for(delivery.source))
                status = "loaded_with_quarantine" if quarantined else "loaded"
                counts = (delivery.text_rows.height, loaded, quarantined)
            ledger_row = _ledger_row(delivery, status, *counts, run_id)
            conn.register("incoming_delivery", ledger_row)
            conn.execute("INSERT INTO meta.deliveries BY NAME SELECT * FROM incoming_delivery")
            conn.unregister("incoming_delivery")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return ledger_row.to_dicts()[0]
