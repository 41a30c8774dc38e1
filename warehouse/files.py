"""Where a warehouse keeps what. FILE (the path given as --warehouse) is what analysts open: the marts,
the ledger (meta) and the reference data (ref), disclosure-safe, written in a storage version the
DuckDB releases analysts have can read. Beside it, FILE's internal file holds every layer (raw,
staging, core as well): the pipeline and the stewards' commands read and write that one."""

from __future__ import annotations

from pathlib import Path

PUBLISHED_SCHEMAS = ("marts", "meta", "ref")


def internal_path(warehouse: Path) -> Path:
    """w.duckdb -> w.internal.duckdb beside it."""
    warehouse = Path(warehouse)
    return warehouse.with_name(f"{warehouse.stem}.internal{warehouse.suffix or '.duckdb'}")


def internal_file(warehouse: Path) -> Path:
    """The file with every layer: the internal file, or FILE itself for a warehouse written in one file
    (before the split, or by tests that load without the write sequence)."""
    internal = internal_path(warehouse)
    return internal if internal.exists() else Path(warehouse)
