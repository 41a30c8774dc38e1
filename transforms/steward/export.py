"""The marts for other tools: one Parquet file per table, written from a read-only connection."""

from __future__ import annotations

from pathlib import Path

import duckdb

EXPORTED = [("marts", None), ("ref", "indicators"), ("ref", "targets")]  # None: every table of the schema


def export_marts(warehouse: Path, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for schema, only in EXPORTED:
            tables = [t for (t,) in conn.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = ? "
                                                 "ORDER BY 1", [schema]).fetchall() if only in (None, t)]
            for table in tables:
                target = directory / f"{schema}.{table}.parquet"
                conn.execute(f"COPY (SELECT * FROM {schema}.{table}) TO '{target}' (FORMAT parquet)")
                written.append(target)
    return written
