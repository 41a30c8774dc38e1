"""The published file for other tools: one Parquet file per table of the marts and the ledger (and the
indicator catalog and targets), each column carrying its description as Parquet field metadata
(`description`) and each file its table's (schema metadata), read from the published file only."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

EXPORTED = [("marts", None), ("meta", None), ("ref", "indicators"), ("ref", "targets")]  # None: every table


def export_marts(warehouse: Path, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for schema, only in EXPORTED:
            tables = conn.execute("SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = ? ORDER BY 1",
                                  [schema]).fetchall()
            for table, table_comment in tables:
                if only not in (None, table):
                    continue
                described = dict(conn.execute("SELECT column_name, comment FROM duckdb_columns() "
                                              "WHERE schema_name = ? AND table_name = ?", [schema, table]).fetchall())
                # in value order: a run writes only the years that changed, and those come last in FILE
                data = conn.sql(f"SELECT * FROM {schema}.{table} ORDER BY ALL").to_arrow_table()
                fields = [field.with_metadata({"description": described.get(field.name) or ""}) for field in data.schema]
                schema_with_descriptions = pa.schema(fields, metadata={"description": table_comment or ""})
                target = directory / f"{schema}.{table}.parquet"
                pq.write_table(data.cast(schema_with_descriptions), target)
                written.append(target)
    return written
