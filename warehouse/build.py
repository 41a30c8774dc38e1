"""The published warehouse file and how every writer replaces it (`warehouse_write`).

Analysts open FILE read-only at any time, and DuckDB lets no writer in while they do. So a run never
writes FILE: it copies it to a build file beside it, writes there, checkpoints, and atomically renames
the build over FILE. Open readers keep the snapshot they opened; new connections see the new run; a
run that dies leaves FILE untouched. A lock file keeps runs from building at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb

from transforms.ledger.runs import RunSummary, record_run
from warehouse.files import PUBLISHED_SCHEMAS, internal_file, internal_path
from warehouse.load import ensure_schema
from warehouse.materialize import all_models
from warehouse.transaction import transaction


class WarehouseUnavailable(Exception):
    """The run cannot start: the warehouse path is unusable."""


def check_warehouse_path(warehouse: Path) -> Path:
    warehouse = Path(warehouse).resolve()
    if warehouse.is_dir():
        raise WarehouseUnavailable(f"--warehouse {warehouse} is a directory; give a file path such as {warehouse}/boligdata.duckdb")
    if not warehouse.parent.is_dir():
        raise WarehouseUnavailable(f"folder {warehouse.parent} for the warehouse does not exist")
    if not os.access(warehouse.parent, os.W_OK):
        raise WarehouseUnavailable(f"folder {warehouse.parent} is not writable")
    return warehouse


def check_writable_folder(folder: Path, what: str) -> Path:
    """A folder the run will write to (created if missing), or one line saying why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WarehouseUnavailable(f"{what} {folder} cannot be created: {error.strerror}") from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise WarehouseUnavailable(f"{what} {folder} is not writable")
    return folder


def build_path(warehouse: Path) -> Path:
    return warehouse.with_name(f".{warehouse.name}.building")


def default_archive_dir(warehouse: Path) -> Path:
    return warehouse.with_name(f"{warehouse.stem}_archive")


@contextlib.contextmanager
def writer_lock(warehouse: Path) -> Iterator[None]:
    """Hold the one-writer lock for FILE for the duration of a run (waits for a running one)."""
    lock_path = warehouse.with_name(f".{warehouse.name}.lock")
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def spill_dir(build: Path) -> Path:
    """Where validated deliveries wait for their load (removed with the build): beside the build, or
    under BOLIGDATA_SPILL_DIR, a folder every intake worker reads and writes at the same path (a network
    folder, when the intake runs on other machines: docs/scaling.md). Named after the build's full path,
    so warehouses sharing that folder do not share a spill."""
    root = os.environ.get("BOLIGDATA_SPILL_DIR", "").strip()
    if not root:
        return build.with_name(f"{build.name}.spill")
    digest = hashlib.sha256(str(build.resolve()).encode()).hexdigest()[:12]
    return Path(root).resolve() / f"{build.name.lstrip('.')}.{digest}.spill"


def _remove_build(build: Path) -> None:
    """The build, its write-ahead log (DuckDB would replay a stale one into a fresh copy), its spill and
    a half-written published file."""
    build.unlink(missing_ok=True)
    build.with_name(build.name.replace(".building", ".publishing")).unlink(missing_ok=True)
    build.with_name(f"{build.name}.wal").unlink(missing_ok=True)
    shutil.rmtree(spill_dir(build), ignore_errors=True)


# The oldest storage version analysts' clients read: DuckDB 1.4 LTS and 1.5 (Python, CLI, R, JDBC) refuse
# a file in 2.0's own format ("can only read 64-68"); tests/test_published.py opens FILE with 1.4 and 1.5.
PUBLISHED_STORAGE_VERSION = "v1.4.0"


def _last_run(path: Path) -> str | None:
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            rows = conn.execute("SELECT run_id FROM meta.runs ORDER BY finished_at DESC, run_id LIMIT 1").fetchall()
    except duckdb.Error:
        return None
    return rows[0][0] if rows else None


def published_is_current(warehouse: Path) -> bool:
    """Whether FILE shows the internal file's last run (a run killed between the two renames leaves
    FILE one run behind; the next writer publishes it again)."""
    internal = internal_path(warehouse)
    return not internal.exists() or (warehouse.exists() and _last_run(warehouse) == _last_run(internal))


def _quoted(text: str | None) -> str:
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def write_published(internal: Path, warehouse: Path) -> None:
    """FILE from the internal file: the published schemas only, with their descriptions, in the storage
    version analysts' clients read; written beside FILE and renamed over it in one step. Delivered values
    of quarantined rows stay internal (they are cells nobody checked for disclosure)."""
    partial = warehouse.with_name(f".{warehouse.name}.publishing")
    partial.unlink(missing_ok=True)
    with duckdb.connect() as conn:
        conn.execute(f"ATTACH {_quoted(str(internal))} AS src (READ_ONLY)")
        conn.execute(f"ATTACH {_quoted(str(partial))} AS pub (STORAGE_VERSION '{PUBLISHED_STORAGE_VERSION}')")
        tables = conn.execute(f"""SELECT schema_name, table_name, comment FROM duckdb_tables()
            WHERE database_name = 'src' AND schema_name IN {PUBLISHED_SCHEMAS} ORDER BY 1, 2""").fetchall()
        columns = conn.execute(f"""SELECT schema_name, table_name, column_name, comment FROM duckdb_columns()
            WHERE database_name = 'src' AND schema_name IN {PUBLISHED_SCHEMAS} ORDER BY 1, 2""").fetchall()
        with transaction(conn):  # one commit for the whole file, not one per statement (0.1 s of 0.55)
            for schema in PUBLISHED_SCHEMAS:
                conn.execute(f"CREATE SCHEMA pub.{schema}")
            # a mart rebuilt by year has its rows in build order: published in grain order, as a whole build has them
            grains = {model.name: model.grain for model in all_models() if model.materialized == "table" and model.grain}
            for schema, table, comment in tables:
                select = "* REPLACE (NULL::VARCHAR AS value)" if (schema, table) == ("meta", "quarantine") else "*"
                order = f" ORDER BY {', '.join(grains[f'{schema}.{table}'])}" if f"{schema}.{table}" in grains else ""
                conn.execute(f"CREATE TABLE pub.{schema}.{table} AS SELECT {select} FROM src.{schema}.{table}{order}")
                conn.execute(f"COMMENT ON TABLE pub.{schema}.{table} IS {_quoted(comment)}")
            for schema, table, column, comment in columns:
                if (schema, table, column) == ("meta", "quarantine", "value"):
                    comment = "The offending value as delivered: kept in the internal file for stewards (boligdata quarantine list)."
                conn.execute(f"COMMENT ON COLUMN pub.{schema}.{table}.{column} IS {_quoted(comment)}")
        conn.execute("DETACH pub")
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, warehouse)


def publish(build: Path, warehouse: Path) -> None:
    """Make the build the internal file, then FILE from it, each in one atomic step."""
    with duckdb.connect(str(build)) as conn:
        conn.execute("CHECKPOINT")
    with open(build, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(build, internal_path(warehouse))
    write_published(internal_path(warehouse), warehouse)


class WarehouseWrite:
    """A writer's private copy of FILE, made on first use (a run that finds nothing to do copies
    nothing) with the warehouse schema in place."""

    def __init__(self, warehouse: Path):
        self.warehouse = warehouse
        self.build_file = build_path(warehouse)
        self.started = False
        self.discarded = False

    @property
    def build(self) -> Path:
        if not self.started:
            if internal_file(self.warehouse).exists():
                shutil.copyfile(internal_file(self.warehouse), self.build_file)
            with duckdb.connect(str(self.build_file)) as conn:
                ensure_schema(conn)
            self.started = True
        return self.build_file

    def discard(self) -> None:
        """Publish nothing: the warehouse stays as it is."""
        self.discarded = True


@contextlib.contextmanager
def warehouse_write(warehouse: Path, run: RunSummary) -> Iterator[WarehouseWrite]:
    """The one write sequence every writer uses: take the writer lock, copy FILE to a build with the
    schema in place (on first use of `.build`), let the caller write, record the run in meta.runs and
    publish the build atomically. If the caller fails, or discards, FILE stays as it was; the build is
    removed either way."""
    with writer_lock(warehouse):
        write = WarehouseWrite(warehouse)
        _remove_build(write.build_file)  # left by a run that was killed
        if not published_is_current(warehouse):  # a run was killed between its two renames
            write_published(internal_path(warehouse), warehouse)
        try:
            yield write
            if write.started and not write.discarded:
                record_run(write.build, run)
                publish(write.build, warehouse)
        finally:
            _remove_build(write.build_file)
