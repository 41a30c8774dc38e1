"""The published warehouse file and how every writer replaces it (`warehouse_write`).

Analysts open FILE read-only at any time, and DuckDB lets no writer in while they do. So a run never
writes FILE: it copies the internal file (every layer, `<name>.internal.duckdb`) to a build file beside
it, writes there, checkpoints, writes FILE's next version (the published schemas) beside FILE, and
renames the build over the internal file and then that version over FILE. Open readers keep the
snapshot they opened; new connections see the new run; a run that dies leaves both files untouched.
A lock file keeps runs from building at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb

from transforms.ledger.runs import RunSummary, record_run
from warehouse import staged_ids
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


def _replaced_path(build: Path) -> Path:
    """Where the internal file a publish replaces waits for its removal (WarehouseWrite.publish)."""
    return build.with_name(build.name.replace(".building", ".replaced"))


def _remove_build(build: Path) -> None:
    """The build and a half-written published file, each with its write-ahead log (DuckDB would replay a
    stale one into a fresh copy), and the build's spill."""
    publishing = build.with_name(build.name.replace(".building", ".publishing"))
    for leftover in (build, publishing):
        leftover.unlink(missing_ok=True)
        leftover.with_name(f"{leftover.name}.wal").unlink(missing_ok=True)
    shutil.rmtree(spill_dir(build), ignore_errors=True)


# The oldest storage version analysts' clients read: DuckDB 1.4 LTS and 1.5 (Python, CLI, R, JDBC) refuse
# a file in 2.0's own format ("can only read 64-68"); tests/test_published.py opens FILE with 1.4 and 1.5.
PUBLISHED_STORAGE_VERSION = "v1.4.0"

# DuckDB (2.0) appends a write to a table stored before as a row group of its own, and merges small
# neighbouring row groups at the next checkpoint ("vacuum"). For a served month that rewrote up to a full
# row group of raw and of staging police reports (122,880 rows each) for 40,000 new ones: 0.33 s of a
# 1.6 s run. So a build's checkpoint merges row groups only every COMPACT_EVERY_RUNS-th published run
# (meta.runs), once for the small row groups the runs between left (at most one per table and run: a
# delivery's rows, a replaced year of the marts, whose deleted rows the merge also drops).
COMPACT_EVERY_RUNS = 12


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


def _changed_years(conn: duckdb.DuckDBPyConnection, source: str, target: str,
                   tables: dict[tuple[str, str], bool]) -> dict[tuple[str, str], list]:
    """Per (schema, table) -> by year?, the years (or [0] for a table without `year`) whose rows differ
    between the databases `source` and `target` (FILE's copy), by row count and the sum of the rows'
    hashes (a collision would need 2^64 luck); one query for all tables (0.06 -> 0.03 s at national scale)."""
    def counted(database: str, schema: str, table: str, by_year: bool) -> str:
        rows = (f"{target}.{schema}.{table}" if database == target
                else f"(SELECT {_published_select(schema, table)} FROM {database}.{schema}.{table})")
        return (f"SELECT '{schema}.{table}' AS t, {'year' if by_year else '0'} AS k, count(*) AS n, "
                f"sum(hash(r)::HUGEINT) AS h FROM {rows} AS r GROUP BY 2")
    if not tables:
        return {}
    src, pub = (" UNION ALL ".join(counted(database, *key, by_year) for key, by_year in tables.items())
                for database in (_identifier(source), target))
    changed: dict[tuple[str, str], list] = {}
    for name, year in conn.execute(f"""
            WITH src AS ({src}), pub AS ({pub})
            SELECT coalesce(src.t, pub.t), coalesce(src.k, pub.k)
            FROM src FULL JOIN pub ON src.t = pub.t AND src.k IS NOT DISTINCT FROM pub.k
            WHERE src.n IS DISTINCT FROM pub.n OR src.h IS DISTINCT FROM pub.h""").fetchall():
        changed.setdefault(tuple(name.split(".")), []).append(year)
    return changed


def _is_starting_point(conn: duckdb.DuckDBPyConnection, target: str) -> bool:
    """Whether the attached copy of FILE (`target`) is a published file in the storage version analysts'
    clients read: a warehouse from before the split held every layer in FILE."""
    (tags,) = conn.execute("SELECT tags FROM duckdb_databases() WHERE database_name = ?", [target]).fetchall()[0]
    foreign = conn.execute(f"""SELECT count(*) FROM duckdb_tables()
        WHERE database_name = ? AND schema_name NOT IN {PUBLISHED_SCHEMAS}""", [target]).fetchall()[0][0]
    return tags.get("storage_version") == f"{PUBLISHED_STORAGE_VERSION}+" and not foreign


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _write_partial(conn: duckdb.DuckDBPyConnection, source: str, partial: Path, last: Path | None) -> None:
    """The published schemas of the database `source` (of `conn`) into `partial`: from a copy of `last`
    (FILE as the last run published it), rewriting only what differs, or (None, or not a starting
    point) anew."""
    for leftover in (partial, partial.with_name(f"{partial.name}.wal")):
        leftover.unlink(missing_ok=True)
    src = _identifier(source)
    pub = "pub" if source != "pub" else "pub_next"  # `source` is named after its file: a warehouse may be pub.duckdb
    try:
        if last is not None:
            shutil.copyfile(last, partial)
            conn.execute(f"ATTACH {_quoted(str(partial))} AS {pub}")
            if not _is_starting_point(conn, pub):
                conn.execute(f"DETACH {pub}")
                partial.unlink()
                last = None
        if last is None:
            conn.execute(f"ATTACH {_quoted(str(partial))} AS {pub} (STORAGE_VERSION '{PUBLISHED_STORAGE_VERSION}')")
        wanted, present = _catalog(conn, source), _catalog(conn, pub)
        # the rows of a table written anew, or of a year written again, come in grain order
        grains = {model.name: model.grain for model in all_models() if model.materialized == "table" and model.grain}
        by_year = {key: any(column == "year" for column, _, _ in columns) for key, (_, columns) in wanted.items()}
        same_columns = {key: by_year[key] for key, described in wanted.items() if present.get(key) == described}
        changed_years = _changed_years(conn, source, pub, same_columns)
        with transaction(conn):  # one commit for the whole file, not one per statement
            for schema, table in present.keys() - wanted.keys():
                conn.execute(f"DROP TABLE {pub}.{schema}.{table}")
            for schema in PUBLISHED_SCHEMAS:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {pub}.{schema}")
            for (schema, table), (comment, columns) in sorted(wanted.items()):
                name, select = f"{schema}.{table}", _published_select(schema, table)
                order = f" ORDER BY {', '.join(grains[name])}" if name in grains else ""
                if (schema, table) not in same_columns:
                    conn.execute(f"DROP TABLE IF EXISTS {pub}.{name}")
                    conn.execute(f"CREATE TABLE {pub}.{name} AS SELECT {select} FROM {src}.{name}{order}")
                    conn.execute(f"COMMENT ON TABLE {pub}.{name} IS {_quoted(comment)}")
                    for column, _, description in columns:
                        conn.execute(f"COMMENT ON COLUMN {pub}.{name}.{column} IS {_quoted(description)}")
                    continue
                changed = changed_years.get((schema, table))
                if not changed:
                    continue
                rows = of_years(tuple(changed)) if by_year[(schema, table)] and None not in changed else "true"
                conn.execute(f"DELETE FROM {pub}.{name} WHERE {rows}")
                conn.execute(f"INSERT INTO {pub}.{name} SELECT {select} FROM {src}.{name} WHERE {rows}{order}")
    finally:
        conn.execute(f"DETACH DATABASE IF EXISTS {pub}")


def _write_publishing(conn: duckdb.DuckDBPyConnection, source: str, warehouse: Path, last: Path | None) -> Path:
    """FILE's next version, beside it, from the database `source` (of `conn`): the published schemas
    only, with their descriptions, in the storage version analysts' clients read.

    FILE's last version (`last`; None: written anew) is the starting point and only what differs is
    written: a table whose columns or descriptions changed is written anew, other tables by the years
    whose rows changed (one new month rewrites a year of each mart, not all of them: 0.45 -> 0.15 s at
    national scale). The result holds the same rows as a file written anew; a year written again comes
    after the others."""
    partial = warehouse.with_name(f".{warehouse.name}.publishing")
    _write_partial(conn, source, partial, last)
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    return partial


def _publishing_from(database: Path, warehouse: Path, last: Path | None) -> Path:
    """_write_publishing from a closed database file, in a DuckDB instance of its own."""
    with duckdb.connect() as conn:
        conn.execute(f"ATTACH {_quoted(str(database))} AS src (READ_ONLY)")
        return _write_publishing(conn, "src", warehouse, last)


def write_published(internal: Path, warehouse: Path) -> None:
    """FILE from the internal file (_write_publishing), renamed over FILE in one step. A FILE that
    cannot serve as the starting point (damaged, or copied while an analyst's session checkpointed it)
    is written anew."""
    last = warehouse if warehouse.exists() else None
    try:
        partial = _publishing_from(internal, warehouse, last)
    except duckdb.Error:
        if last is None:
            raise
        partial = _publishing_from(internal, warehouse, None)  # what fails again here is not FILE's fault: it is raised
    os.replace(partial, warehouse)


class WarehouseWrite:
    """A writer's private copy of FILE, made on first use (a run that finds nothing to do copies
    nothing) with the warehouse schema in place, or begun early in a thread (`start_building`).

    The write holds the build's database open until it publishes: the steps' own connections to the
    build (the load, the marts, the ledger) join that one DuckDB instance, as DuckDB's Python client
    shares an open file's instance within a process. A step's close then neither checkpoints nor
    makes the next step read the catalog again; the publish checkpoints once (0.08 s of a served
    month's 1.6 s at national scale). DuckDB still checkpoints by itself when its write-ahead log grows."""

    def __init__(self, warehouse: Path):
        self.warehouse = warehouse
        self.build_file = build_path(warehouse)
        self.started = False
        self.discarded = False
        self._making: Future | None = None
        self._database: duckdb.DuckDBPyConnection | None = None

    def _make_build(self) -> None:
        staged_ids.building(self.build_file, internal_file(self.warehouse))
        if internal_file(self.warehouse).exists():
            shutil.copyfile(internal_file(self.warehouse), self.build_file)
            with open(self.build_file, "rb") as handle:  # the copy on disk now, beside the intake, not at the publish
                os.fsync(handle.fileno())
        self._database = duckdb.connect(str(self.build_file))
        ensure_schema(self._database)

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

    def close(self) -> None:
        """Let go of the build's database (once the steps' connections to it are closed), without the
        checkpoint DuckDB makes on closing: a published build has had its own, and one that is not
        published is removed."""
        database, self._database = self._database, None
        if database is not None:
            database.execute("PRAGMA disable_checkpoint_on_shutdown")
            database.close()

    def publish(self) -> None:
        """Make the build the internal file and FILE from it, each in one atomic step, FILE last (a run
        killed in between leaves FILE one run behind, which the next writer publishes again). FILE's
        next version is written before either file is replaced, so a failure changes neither: from the
        open build, or, when FILE cannot serve as the starting point, anew from the closed build by an
        instance of its own (an error may have left this one unusable)."""
        (runs,) = self._database.execute("SELECT count(*) FROM meta.runs").fetchall()[0]
        if runs % COMPACT_EVERY_RUNS:
            self._database.execute("SET max_vacuum_tasks = 0")
        self._database.execute("CHECKPOINT")
        self._database.execute("RESET max_vacuum_tasks")
        (build_name,) = self._database.execute("SELECT current_database()").fetchall()[0]
        last = self.warehouse if self.warehouse.exists() else None
        try:
            publishing = _write_publishing(self._database, build_name, self.warehouse, last)
        except duckdb.Error:
            if last is None:
                raise
            publishing = None
        self.close()
        if publishing is None:
            publishing = _publishing_from(self.build_file, self.warehouse, None)
        with open(self.build_file, "rb") as handle:
            os.fsync(handle.fileno())
        internal, replaced = internal_path(self.warehouse), _replaced_path(self.build_file)
        # The replaced internal file's blocks are freed after the renames, beside the run's reports: renamed
        # over, the kernel frees them in the rename (25 ms for 100 MB on ext4), a link kept, in its unlink.
        with contextlib.suppress(OSError):  # no internal file yet, or a file system without hard links
            replaced.unlink(missing_ok=True)
            os.link(internal, replaced)
        os.replace(self.build_file, internal)
        staged_ids.published(self.build_file, internal)
        os.replace(publishing, self.warehouse)
        if replaced.exists():
            threading.Thread(target=replaced.unlink, kwargs={"missing_ok": True}, name="boligdata-free",
                             daemon=True).start()


@contextlib.contextmanager
def warehouse_write(warehouse: Path, run: RunSummary) -> Iterator[WarehouseWrite]:
    """The one write sequence every writer uses: take the writer lock, copy FILE to a build with the
    schema in place (on first use of `.build`, or in a thread from `.start_building()`), let the caller
    write, record the run in meta.runs and publish the build atomically. If the caller fails, or
    discards, FILE stays as it was; the build is removed either way."""
    with writer_lock(warehouse):
        write = WarehouseWrite(warehouse)
        _remove_build(write.build_file)  # left by a run that was killed
        _replaced_path(write.build_file).unlink(missing_ok=True)  # left by a run that ended before removing it
        if not published_is_current(warehouse):  # a run was killed between its two renames
            write_published(internal_path(warehouse), warehouse)
        try:
            yield write
            if write.started and not write.discarded:
                record_run(write.build, run)
                write.publish()
        finally:
            with contextlib.suppress(Exception):  # a build still being copied is not removed under its writer
                write.wait_for_building()
            with contextlib.suppress(duckdb.Error):  # the error that got here is the one to report
                write.close()
            staged_ids.finished(write.build_file)
            _remove_build(write.build_file)
