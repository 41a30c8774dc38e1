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
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb

from transforms.ledger.runs import RunSummary, record_run
from warehouse.files import PUBLISHED_SCHEMAS, internal_file, internal_path
from warehouse.load import ensure_schema
from warehouse.materialize import all_models, of_years
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


# In FILE the delivered values of quarantined rows are not kept (cells nobody checked for disclosure).
_WITHHELD_COLUMNS = {("meta", "quarantine", "value"):
                     "The offending value as delivered: kept in the internal file for stewards (boligdata quarantine list)."}


def _published_select(schema: str, table: str) -> str:
    withheld = [column for (s, t, column) in _WITHHELD_COLUMNS if (s, t) == (schema, table)]
    return f"* REPLACE ({', '.join(f'NULL::VARCHAR AS {c}' for c in withheld)})" if withheld else "*"


def _catalog(conn: duckdb.DuckDBPyConnection, database: str) -> dict[tuple[str, str], tuple]:
    """(schema, table) -> (table comment, ((column, type, comment), ...)) of the published schemas of one
    attached database, as FILE shows them."""
    tables = {(schema, table): comment for schema, table, comment in conn.execute(f"""
        SELECT schema_name, table_name, comment FROM duckdb_tables()
        WHERE database_name = ? AND schema_name IN {PUBLISHED_SCHEMAS}""", [database]).fetchall()}
    columns: dict[tuple[str, str], list] = {key: [] for key in tables}
    for schema, table, column, data_type, comment in conn.execute(f"""
            SELECT schema_name, table_name, column_name, data_type, comment FROM duckdb_columns()
            WHERE database_name = ? AND schema_name IN {PUBLISHED_SCHEMAS} ORDER BY column_index""", [database]).fetchall():
        columns[(schema, table)].append((column, data_type, _WITHHELD_COLUMNS.get((schema, table, column), comment)))
    return {key: (comment, tuple(columns[key])) for key, comment in tables.items()}


def _changed_years(conn: duckdb.DuckDBPyConnection, schema: str, table: str, by_year: bool) -> list:
    """The years (or [0] for a table without `year`) whose rows differ between the internal file and
    FILE's copy, by row count and the sum of the rows' hashes (a collision would need 2^64 luck)."""
    key = "year" if by_year else "0"
    return [year for (year,) in conn.execute(f"""
        WITH src AS (SELECT {key} AS k, count(*) AS n, sum(hash(r)::HUGEINT) AS h
                     FROM (SELECT {_published_select(schema, table)} FROM src.{schema}.{table}) AS r GROUP BY 1),
             pub AS (SELECT {key} AS k, count(*) AS n, sum(hash(r)::HUGEINT) AS h FROM pub.{schema}.{table} AS r GROUP BY 1)
        SELECT coalesce(src.k, pub.k) FROM src FULL JOIN pub ON src.k IS NOT DISTINCT FROM pub.k
        WHERE src.n IS DISTINCT FROM pub.n OR src.h IS DISTINCT FROM pub.h""").fetchall()]


def _is_starting_point(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether the attached copy of FILE (`pub`) is a published file in the storage version analysts'
    clients read: a warehouse from before the split held every layer in FILE."""
    (tags,) = conn.execute("SELECT tags FROM duckdb_databases() WHERE database_name = 'pub'").fetchall()[0]
    foreign = conn.execute(f"""SELECT count(*) FROM duckdb_tables()
        WHERE database_name = 'pub' AND schema_name NOT IN {PUBLISHED_SCHEMAS}""").fetchall()[0][0]
    return tags.get("storage_version") == f"{PUBLISHED_STORAGE_VERSION}+" and not foreign


def _write_partial(internal: Path, partial: Path, last: Path | None) -> None:
    """The published schemas of the internal file into `partial`: from a copy of `last` (FILE as the
    last run published it), rewriting only what differs, or (None, or not a starting point) anew."""
    for leftover in (partial, partial.with_name(f"{partial.name}.wal")):
        leftover.unlink(missing_ok=True)
    with duckdb.connect() as conn:
        conn.execute(f"ATTACH {_quoted(str(internal))} AS src (READ_ONLY)")
        if last is not None:
            shutil.copyfile(last, partial)
            conn.execute(f"ATTACH {_quoted(str(partial))} AS pub")
            if not _is_starting_point(conn):
                conn.execute("DETACH pub")
                partial.unlink()
                last = None
        if last is None:
            conn.execute(f"ATTACH {_quoted(str(partial))} AS pub (STORAGE_VERSION '{PUBLISHED_STORAGE_VERSION}')")
        wanted, present = _catalog(conn, "src"), _catalog(conn, "pub")
        # the rows of a table written anew, or of a year written again, come in grain order
        grains = {model.name: model.grain for model in all_models() if model.materialized == "table" and model.grain}
        with transaction(conn):  # one commit for the whole file, not one per statement
            for schema, table in present.keys() - wanted.keys():
                conn.execute(f"DROP TABLE pub.{schema}.{table}")
            for schema in PUBLISHED_SCHEMAS:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS pub.{schema}")
            for (schema, table), (comment, columns) in sorted(wanted.items()):
                name, select = f"{schema}.{table}", _published_select(schema, table)
                order = f" ORDER BY {', '.join(grains[name])}" if name in grains else ""
                if present.get((schema, table)) != (comment, columns):
                    conn.execute(f"DROP TABLE IF EXISTS pub.{name}")
                    conn.execute(f"CREATE TABLE pub.{name} AS SELECT {select} FROM src.{name}{order}")
                    conn.execute(f"COMMENT ON TABLE pub.{name} IS {_quoted(comment)}")
                    for column, _, description in columns:
                        conn.execute(f"COMMENT ON COLUMN pub.{name}.{column} IS {_quoted(description)}")
                    continue
                by_year = any(column == "year" for column, _, _ in columns)
                changed = _changed_years(conn, schema, table, by_year)
                if not changed:
                    continue
                rows = of_years(tuple(changed)) if by_year and None not in changed else "true"
                conn.execute(f"DELETE FROM pub.{name} WHERE {rows}")
                conn.execute(f"INSERT INTO pub.{name} SELECT {select} FROM src.{name} WHERE {rows}{order}")
        conn.execute("DETACH pub")


def write_published(internal: Path, warehouse: Path) -> None:
    """FILE from the internal file: the published schemas only, with their descriptions, in the storage
    version analysts' clients read; written beside FILE and renamed over it in one step.

    FILE's last version is the starting point and only what differs is written: a table whose columns
    or descriptions changed is written anew, other tables by the years whose rows changed (one new month
    rewrites a year of each mart, not all of them: 0.45 -> 0.15 s at national scale). The result holds
    the same rows as a file written anew; a year written again comes after the others. A FILE that
    cannot serve (damaged, or copied while an analyst's session checkpointed it) is written anew."""
    partial = warehouse.with_name(f".{warehouse.name}.publishing")
    try:
        _write_partial(internal, partial, warehouse if warehouse.exists() else None)
    except duckdb.Error:
        if not warehouse.exists():
            raise
        _write_partial(internal, partial, None)  # what fails again here is not FILE's fault: it is raised
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
    nothing) with the warehouse schema in place, or begun early in a thread (`start_building`)."""

    def __init__(self, warehouse: Path):
        self.warehouse = warehouse
        self.build_file = build_path(warehouse)
        self.started = False
        self.discarded = False
        self._making: Future | None = None

    def _make_build(self) -> None:
        if internal_file(self.warehouse).exists():
            shutil.copyfile(internal_file(self.warehouse), self.build_file)
        with duckdb.connect(str(self.build_file)) as conn:
            ensure_schema(conn)

    def start_building(self) -> None:
        """Make the build in a thread from now on: copying a large internal file is the kernel's work,
        which the intake can overlap (0.2 s of a served month's 1.5 s at national scale)."""
        if self._making is None and not self.started:
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="boligdata-build")
            self._making = pool.submit(self._make_build)
            pool.shutdown(wait=False)

    def wait_for_building(self) -> None:
        """Let a build begun in a thread finish (its error, if any, is raised here)."""
        if self._making is not None:
            self._making.result()

    @property
    def build(self) -> Path:
        if not self.started:
            if self._making is None:
                self._make_build()
            self.wait_for_building()
            self.started = True
        return self.build_file

    def discard(self) -> None:
        """Publish nothing: the warehouse stays as it is."""
        self.discarded = True


@contextlib.contextmanager
def warehouse_write(warehouse: Path, run: RunSummary) -> Iterator[WarehouseWrite]:
    """The one write sequence every writer uses: take the writer lock, copy FILE to a build with the
    schema in place (on first use of `.build`, or in a thread from `.start_building()`), let the caller
    write, record the run in meta.runs and publish the build atomically. If the caller fails, or
    discards, FILE stays as it was; the build is removed either way."""
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
            with contextlib.suppress(Exception):  # a build still being copied is not removed under its writer
                write.wait_for_building()
            _remove_build(write.build_file)
