"""Deliveries -> warehouse rows. Each delivery's raw rows, its valid rows into staging (delete-then-insert
per partition it contains), its problems into the quarantine and its ledger row are applied together
with those of the other deliveries of its batch, in one transaction. Partitions it does not contain stay
as they were."""

from __future__ import annotations

from collections.abc import Iterator
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


def rows_for_loading(contract: Contract, delivery_id: int, staged: pl.DataFrame,
                     problems: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Staged rows as staging.<source> stores them, and the problems with each row's partition key."""
    staged = staged.with_columns(pl.lit(delivery_id, dtype=pl.Int32).alias("delivery_id"))
    problems = problems.join(staged.select("line_number", "partition_key"), on="line_number", how="left")
    return staged.select(list(staging_columns(contract))), problems


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


def _replace_partitions(conn: duckdb.DuckDBPyConnection, delivery: Delivery, contract: Contract) -> None:
    """Register the delivery's partitions; those it shares with earlier deliveries are replaced: their
    staged rows deleted, their open quarantine rows answered, a delivery left with none superseded."""
    source, delivery_id = _quote(contract.source), delivery.delivery_id
    (replaced,) = conn.execute(f"""
        SELECT count(*) FROM meta.partitions WHERE source = {source} AND superseded_by IS NULL
          AND partition_key IN (SELECT partition_key FROM incoming_partitions)""").fetchall()[0]
    if replaced:  # a correction; a delivery of new partitions only needs none of these scans
        conn.execute(f"""
            DELETE FROM {contract.staging_table}
            WHERE partition_key IN (SELECT partition_key FROM incoming_partitions);
            UPDATE meta.partitions SET superseded_by = {delivery_id}
            WHERE source = {source} AND superseded_by IS NULL
              AND partition_key IN (SELECT partition_key FROM incoming_partitions);
            UPDATE meta.deliveries SET status = 'superseded'
            WHERE source = {source} AND status IN ('loaded', 'loaded_with_quarantine')
              AND delivery_id IN (SELECT delivery_id FROM meta.partitions WHERE source = {source})
              AND delivery_id NOT IN (
                  SELECT delivery_id FROM meta.partitions WHERE source = {source} AND superseded_by IS NULL);
        """)
        # the corrected delivery answers the held-back rows of the partitions it replaces
        conn.execute(
            """UPDATE meta.quarantine
               SET status = 'waived', resolved_at = now()::TIMESTAMP, resolved_by = 'boligdata', note = ?
               WHERE status = 'open' AND partition_key IN (SELECT partition_key FROM incoming_partitions)
                 AND delivery_id IN (SELECT delivery_id FROM meta.deliveries WHERE source = ?)""",
            [f"superseded by delivery {delivery_id} ({delivery.file_name})", contract.source],
        )
    conn.execute(f"INSERT INTO meta.partitions (source, partition_key, delivery_id) "
                 f"SELECT {source}, partition_key, {delivery_id} FROM incoming_partitions")


def _spilled(deliveries: list[Delivery], source: str, part: str) -> str | None:
    """read_parquet() of one spilled part of a source's deliveries (None if it has none): one scan of
    many files, which DuckDB reads in parallel."""
    paths = [_quote(str(d.spill_path(part))) for d in deliveries if d.source == source and not d.is_settled]
    return f"read_parquet([{', '.join(paths)}])" if paths else None


def _note_possible_duplicates(conn: duckdb.DuckDBPyConnection, deliveries: list[Delivery]) -> None:
    """possible_duplicates: the ids (of sources unique across deliveries) that these deliveries share
    with staging or with each other; a superset of the duplicates, found with one scan of staging, so
    that a delivery with none of them skips its exact check."""
    conn.execute("CREATE OR REPLACE TEMP TABLE possible_duplicates (source VARCHAR, id VARCHAR)")
    for source, contract in all_contracts().items():
        incoming, column = _spilled(deliveries, source, "staged"), contract.unique_across_deliveries
        if not column or not incoming:
            continue
        conn.execute(f"""
            INSERT INTO possible_duplicates
            WITH incoming AS (SELECT delivery_id, {column} AS id FROM {incoming})
            SELECT {_quote(source)}, id FROM incoming WHERE id IN (SELECT {column} FROM {contract.staging_table})
            UNION SELECT {_quote(source)}, id FROM incoming GROUP BY id HAVING count(DISTINCT delivery_id) > 1""")


def _sources_applied_set_wise(conn: duckdb.DuckDBPyConnection, deliveries: list[Delivery]) -> set[str]:
    """Sources whose deliveries here bring only new partitions (shared with no current partition and with
    no other delivery of the batch) and no id that may be a duplicate: nothing of one can replace or
    judge another, so the batch is applied with a few set-wise statements instead of delivery by
    delivery, with the same result (a first national run, a month's new files)."""
    set_wise = set()
    for source in {d.source for d in deliveries if not d.is_settled}:
        (clashes,) = conn.execute(f"""
            WITH incoming AS (SELECT DISTINCT delivery_id, partition_key FROM {_spilled(deliveries, source, "staged")}
                              WHERE partition_key IS NOT NULL)
            SELECT (SELECT count(*) FROM (SELECT partition_key FROM incoming GROUP BY 1 HAVING count(*) > 1))
                 + (SELECT count(*) FROM meta.partitions WHERE source = $source AND superseded_by IS NULL
                      AND partition_key IN (SELECT partition_key FROM incoming))
                 + (SELECT count(*) FROM possible_duplicates WHERE source = $source)""", {"source": source}).fetchall()[0]
        if not clashes:
            set_wise.add(source)
    return set_wise


def _apply_set_wise(conn: duckdb.DuckDBPyConnection, deliveries: list[Delivery], source: str) -> dict[int, int]:
    """Problems, partitions and valid staged rows of a source's deliveries in one statement each;
    returns the rows quarantined per delivery id."""
    contract = contract_for(source)
    staged, problems = _spilled(deliveries, source, "staged"), _spilled(deliveries, source, "problems")
    conn.execute(f"""
        INSERT INTO meta.quarantine (delivery_id, line_number, rule, column_name, value, status, partition_key)
        SELECT delivery_id, line_number, rule, column_name, value, 'open', partition_key FROM {problems};
        INSERT INTO meta.partitions (source, partition_key, delivery_id)
        SELECT DISTINCT {_quote(source)}, partition_key, delivery_id FROM {staged} WHERE partition_key IS NOT NULL;
        INSERT INTO {contract.staging_table} BY NAME
        SELECT {", ".join(staging_columns(contract))} FROM {staged} AS s
        WHERE NOT EXISTS (SELECT 1 FROM {problems} AS p
                          WHERE p.delivery_id = s.delivery_id AND p.line_number = s.line_number);
    """)
    return dict(conn.execute(f"SELECT delivery_id, count(DISTINCT line_number) FROM {problems} GROUP BY 1").fetchall())


def _insert_raw_rows(conn: duckdb.DuckDBPyConnection, deliveries: list[Delivery]) -> None:
    """Every delivered row as text, whatever became of it, one statement per source."""
    for contract in all_contracts().values():
        if raw := _spilled(deliveries, contract.source, "raw"):
            conn.execute(f"INSERT INTO {contract.raw_table} BY NAME SELECT * FROM {raw}")


def _apply_rows(conn: duckdb.DuckDBPyConnection, delivery: Delivery, contract: Contract) -> int:
    """Write one validated, spilled delivery's problems, partitions and staged rows; returns the rows
    quarantined."""
    for part, columns in (("staged", ", ".join(staging_columns(contract))), ("problems", "*")):
        conn.execute(f"CREATE OR REPLACE TEMP VIEW incoming_{part} AS "
                     f"SELECT {columns} FROM read_parquet({_quote(str(delivery.spill_path(part)))})")
    conn.execute("CREATE OR REPLACE TEMP VIEW incoming_partitions AS "
                 "SELECT DISTINCT partition_key FROM incoming_staged WHERE partition_key IS NOT NULL")
    conn.execute("CREATE TEMP TABLE delivery_problems AS SELECT *, NULL::VARCHAR AS note FROM incoming_problems")
    _replace_partitions(conn, delivery, contract)
    column = contract.unique_across_deliveries
    if column and conn.execute(f"""SELECT count(*) FROM incoming_staged WHERE {column} IN
                                   (SELECT id FROM possible_duplicates WHERE source = ?)""", [contract.source]).fetchall()[0][0]:
        conn.execute(f"""
            INSERT INTO delivery_problems BY NAME
            SELECT i.line_number, 'duplicate_id' AS rule, '{column}' AS column_name, i.{column} AS value,
                   i.partition_key, 'already loaded by delivery ' || s.delivery_id || ', line ' || s.line_number AS note
            FROM incoming_staged AS i JOIN {contract.staging_table} AS s ON s.{column} = i.{column}
            WHERE i.line_number NOT IN (SELECT line_number FROM delivery_problems)
        """)
    conn.execute(f"""
        INSERT INTO {contract.staging_table} BY NAME SELECT * FROM incoming_staged
        WHERE line_number NOT IN (SELECT line_number FROM delivery_problems);
        INSERT INTO meta.quarantine (delivery_id, line_number, rule, column_name, value, status, partition_key, note)
        SELECT {delivery.delivery_id}, line_number, rule, column_name, value, 'open', partition_key, note FROM delivery_problems
    """)
    (quarantined,) = conn.execute("SELECT count(DISTINCT line_number) FROM delivery_problems").fetchall()[0]
    conn.execute("DROP TABLE delivery_problems")
    for name in ("incoming_staged", "incoming_partitions", "incoming_problems"):
        conn.execute(f"DROP VIEW {name}")
    return quarantined


def _insert_ledger_rows(conn: duckdb.DuckDBPyConnection, ledger_rows: pl.DataFrame) -> None:
    conn.register("incoming_deliveries", ledger_rows)
    conn.execute("INSERT INTO meta.deliveries BY NAME SELECT * FROM incoming_deliveries")
    conn.unregister("incoming_deliveries")


def record_deliveries(warehouse: Path, deliveries: list[Delivery], run_id: str | None = None) -> Iterator[dict]:
    """Apply deliveries in the order given (each replaces the partitions it shares with earlier ones),
    all in one transaction over one connection; yields each delivery's ledger row (as a dict) as it is
    applied. Nothing is written if any delivery fails."""
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            _note_possible_duplicates(conn, deliveries)
            set_wise = _sources_applied_set_wise(conn, deliveries)
            quarantined = {}
            for source in set_wise:
                quarantined |= _apply_set_wise(conn, deliveries, source)
            set_wise_rows = []  # recorded together at the end: no later delivery here can change them
            for delivery in deliveries:
                if delivery.is_settled:
                    status, counts = delivery.status, (None, None, None)
                else:
                    if delivery.source not in set_wise:
                        quarantined[delivery.delivery_id] = _apply_rows(conn, delivery, contract_for(delivery.source))
                    held_back = quarantined.get(delivery.delivery_id, 0)
                    status = "loaded_with_quarantine" if held_back else "loaded"
                    counts = (delivery.rows_read, delivery.rows_read - held_back, held_back)
                ledger_row = _ledger_row(delivery, status, *counts, run_id)
                if delivery.source in set_wise:
                    set_wise_rows.append(ledger_row)
                else:  # a later delivery of the batch may supersede it
                    _insert_ledger_rows(conn, ledger_row)
                yield ledger_row.to_dicts()[0]
            if set_wise_rows:
                _insert_ledger_rows(conn, pl.concat(set_wise_rows, how="vertical_relaxed"))
            conn.execute("DROP TABLE possible_duplicates")
            _insert_raw_rows(conn, deliveries)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
