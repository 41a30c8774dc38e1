"""Reference data and models -> the `ref`, `core` and `marts` schemas of the warehouse."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from transforms.reference import REFERENCE_TABLES, read_reference_table

MODELS_DIR = Path(__file__).resolve().parents[1] / "warehouse" / "models"
LAYERS = ("core", "marts")  # run in this order; inside a layer, in file-name order
MEASURE_VIEW_PREFIX = "measures__"  # core views that feed core.measures


def model_files(layer: str | None = None) -> list[Path]:
    """SQL model files of one layer, or of all layers in run order."""
    layers = LAYERS if layer is None else (layer,)
    return [path for name in layers for path in sorted((MODELS_DIR / name).glob("*.sql"))]


def model_fingerprint(reference_dir: Path) -> str:
    """Changes whenever reference data or a model changes, i.e. whenever the marts must be rebuilt."""
    digest = hashlib.sha256()
    for path in [*sorted(Path(reference_dir).glob("*.csv")), *model_files()]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_reference_tables(conn: duckdb.DuckDBPyConnection, reference_dir: Path) -> None:
    for name in REFERENCE_TABLES:
        frame = read_reference_table(reference_dir, name)
        conn.register("reference_frame", frame)
        conn.execute(f"CREATE OR REPLACE TABLE ref.{name} AS SELECT * FROM reference_frame")
        conn.unregister("reference_frame")
        conn.execute(f"COMMENT ON TABLE ref.{name} IS 'Reference data from {name}.csv (steward-editable).'")


def _create_measures_union(conn: duckdb.DuckDBPyConnection) -> None:
    views = [row[0] for row in conn.execute(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = 'core' AND starts_with(view_name, ?) "
        "ORDER BY view_name", [MEASURE_VIEW_PREFIX]).fetchall()]
    union = "\nUNION ALL\n".join(
        f"SELECT level, scope_id, kommune_code, year::INTEGER AS year, measure, value::DOUBLE AS value FROM core.{v}"
        for v in views
    )
    conn.execute(f"CREATE OR REPLACE VIEW core.measures AS {union}")
    conn.execute("COMMENT ON VIEW core.measures IS 'Additive measures per level, scope and year from every source "
                 "(union of the core.measures__<source> views).'")


class ModelError(Exception):
    """A model file failed to build; the message names it."""


def _run_model(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        conn.execute(path.read_text(encoding="utf-8"))
    except duckdb.Error as error:
        raise ModelError(f"model {path.parent.name}/{path.name}: {str(error).splitlines()[0]}") from error


def materialize(warehouse: Path, reference_dir: Path, only_marts: bool = False) -> dict[str, int]:
    """Rebuild ref tables, core views and marts tables in one transaction; returns mart row counts.
    `only_marts` when the warehouse's ref tables and core views were built from the current reference
    data and models (same model fingerprint) and only new deliveries changed."""
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("BEGIN TRANSACTION")
        try:
            if not only_marts:
                load_reference_tables(conn, reference_dir)
            for layer in ("marts",) if only_marts else LAYERS:
                for path in model_files(layer):
                    _run_model(conn, path)
                if layer == "core":
                    _create_measures_union(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        tables = conn.execute(
            "SELECT table_name, estimated_size FROM duckdb_tables() WHERE schema_name = 'marts' ORDER BY 1"
        ).fetchall()
    return {name: rows for name, rows in tables}
