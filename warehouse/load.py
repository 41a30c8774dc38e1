"""Deliveries -> warehouse rows. Each delivery's valid rows into staging (delete-then-insert per partition
it contains), its problems into the quarantine with the delivered text of the rows held back (raw), and
its ledger row are applied together with those of the other deliveries of its batch, in one transaction.
Partitions it does not contain stay as they were."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

from transforms.ledger import records
from transforms.ledger.deliveries import Delivery
from transforms.sources import Contract, all_contracts, contract_for
from warehouse import staged_ids
from warehouse.transaction import transaction

SCHEMA_SQL = Path(__file__).resolve().parent / "schema.sql"


def rows_for_loading(contract: Contract, delivery_id: int, staged: pl.DataFrame,
                     problems: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Staged rows as staging.<source> stores them, and the problems with each row's partition key."""
    staged = staged.with_columns(pl.lit(delivery_id, dtype=pl.Int32).alias("delivery_id"))
    problems = problems.join(staged.select("line_number", "partition_key"), on="line_number", how="left")
    return staged.select(list(contract.staging_columns())), problems


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _source_table_sql(contract: Contract, tables: dict[str, str | None], columns: dict[tuple, str | None]) -> list[str]:
    """DDL for what raw.<source> (held-back rows, text as delivered) and staging.<source> (typed, current,
    valid rows) lack, given the warehouse's tables and columns with their comments."""
    statements = []
    for table, declared, what in (
        (contract.raw_table, contract.raw_columns(), "Rows held back in quarantine, each value as delivered (every row as "
                                                     "delivered is in the archived file, meta.deliveries.archive_path)"),
        (contract.staging_table, contract.staging_columns(), "Typed rows of current partitions that passed validation"),
    ):
        if table not in tables:
            statements.append(f"CREATE TABLE {table} (" + ", ".join(f"{n} {t}" for n, (t, _) in declared.items()) + ")")
        statements += [f"ALTER TABLE {table} ADD COLUMN {n} {t}" for n, (t, _) in declared.items()
                       if table in tables and (table, n) not in columns]
        if tables.get(table) != (description := f"{what}: {contract.description}"):
            statements.append(f"COMMENT ON TABLE {table} IS {_quote(description)}")
        statements += [f"COMMENT ON COLUMN {table}.{n} IS {_quote(d)}" for n, (_, d) in declared.items()
                       if columns.get((table, n)) != d]
    return statements


def _catalog(conn: duckdb.DuckDBPyConnection) -> tuple[set[str], dict[str, str | None], dict[tuple, str | None]]:
    """The schemas, the tables of meta, raw and staging with their comments, and their columns with theirs."""
    schemas = {name for (name,) in conn.execute("SELECT schema_name FROM duckdb_schemas()").fetchall()}
    tables = dict(conn.execute("SELECT schema_name || '.' || table_name, comment FROM duckdb_tables() "
                               "WHERE schema_name IN ('meta', 'raw', 'staging')").fetchall())
    columns = {(table, column): comment for table, column, comment in conn.execute(
        "SELECT schema_name || '.' || table_name, column_name, comment FROM duckdb_columns() "
        "WHERE schema_name IN ('meta', 'raw', 'staging')").fetchall()}
    return schemas, tables, columns


@cache
def _declared_meta() -> tuple[set[str], dict[str, str | None], dict[tuple, str | None]]:
    """What schema.sql makes of an empty database."""
    with duckdb.connect() as conn:
        conn.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
        return _catalog(conn)


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing: schemas and meta tables (schema.sql), and raw/staging tables for every
    contract. A warehouse that has them all, described as declared, costs three catalog queries and
    writes nothing (schema.sql applied again took 0.1 s of a served month's build)."""
    schemas, tables, columns = _catalog(conn)
    declared_schemas, declared_tables, declared_columns = _declared_meta()
    if not (declared_schemas <= schemas and declared_tables.items() <= tables.items()
            and declared_columns.items() <= columns.items()):
        conn.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
        schemas, tables, columns = _catalog(conn)
    for contract in all_contracts().values():
        for statement in _source_table_sql(contract, tables, columns):
            conn.execute(statement)


def _replace_partitions(conn: duckdb.DuckDBPyConnection, delivery: Delivery, contract: Contract) -> None:
    """Register the delivery's partitions; those it shares with earlier deliveries are replaced: their
    staged rows deleted, their holders superseded (records.supersede_partitions)."""
    if records.current_partitions_among(conn, contract.source, "incoming_partitions"):
        # a correction; a delivery of new partitions only needs none of these scans
        conn.execute(f"DELETE FROM {contract.staging_table} "
                     "WHERE partition_key IN (SELECT partition_key FROM incoming_partitions)")
        records.supersede_partitions(conn, contract.source, "incoming_partitions", delivery)
    records.register_partitions(conn, contract.source, "incoming_partitions", str(delivery.delivery_id))


def _spilled(deliveries: list[Delivery], source: str, part: str) -> str | None:
    """read_parquet() of one spilled part of a source's deliveries (None if it has none): one scan of
    many files, which DuckDB reads in parallel."""
    paths = list(dict.fromkeys(_quote(str(d.spill_path(part))) for d in deliveries if d.source == source and not d.is_settled))
    return f"read_parquet([{', '.join(paths)}])" if paths else None


def _note_possible_duplicates(conn: duckdb.DuckDBPyConnection, deliveries: list[Delivery], build: Path) -> None:
    """possible_duplicates: the ids (of sources unique across deliveries) that these deliveries share
    with staging or with each other (found by validation: the spilled shared_ids); a superset of the
    duplicates, so that a delivery with none of them skips its exact check. Staging is asked only for
    the incoming ids whose hash the staged ids may share (warehouse/staged_ids.py): usually none, and
    no scan of every staged id."""
    conn.execute("CREATE OR REPLACE TEMP TABLE possible_duplicates (source VARCHAR, id VARCHAR)")
    for source, contract in all_contracts().items():
        incoming, column = _spilled(deliveries, source, "staged"), contract.unique_across_deliveries
        if not column or not incoming:
            continue
        # not DISTINCT: a repeated hash searches twice, cheaper than the hash aggregate (0.05-0.1 s per 918,000 ids)
        hashes = conn.execute(f"SELECT {staged_ids.id_hash(column)} AS h FROM {incoming} "
                              f"WHERE {column} IS NOT NULL").fetchnumpy()["h"]
        maybe = staged_ids.possibly_staged(conn, build, source, contract.staging_table, column, hashes)
        if len(maybe):
            conn.register("maybe_staged", pl.DataFrame({"h": maybe}))
            conn.execute(f"""
                INSERT INTO possible_duplicates
                SELECT {_quote(source)}, {column} FROM {contract.staging_table}
                WHERE {column} IN (SELECT {column} FROM {incoming}
                                   WHERE {staged_ids.id_hash(column)} IN (SELECT h FROM maybe_staged))""")
            conn.unregister("maybe_staged")
        conn.execute(f"INSERT INTO possible_duplicates SELECT {_quote(source)}, id FROM {_spilled(deliveries, source, 'shared_ids')}")


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
    records.quarantine_rows(conn, problems)
    records.register_partitions(conn, source, staged)
    # ANTI JOIN, not NOT EXISTS: DuckDB plans the correlated form with more work (0.78 -> 0.64 CPU-s per police batch)
    conn.execute(f"""
        INSERT INTO {contract.staging_table} BY NAME
        SELECT {", ".join("s." + column for column in contract.staging_columns())} FROM {staged} AS s
        ANTI JOIN {problems} AS p ON p.delivery_id = s.delivery_id AND p.line_number = s.line_number""")
    return dict(conn.execute(f"SELECT delivery_id, count(DISTINCT line_number) FROM {problems} GROUP BY 1").fetchall())


def _insert_held_back_rows(conn: duckdb.DuckDBPyConnection, deliveries: list[Delivery]) -> None:
    """The delivered text of the rows validation held back (the spilled held_back part), one statement per
    source: what a steward reads (`quarantine show`). Every row as delivered is in the archived file, from
    which a retry reads its delivery again; storing each row's text in the warehouse too cost a fifth of a
    national first run's load and a third of the file. (Rows the load itself holds back, duplicate ids,
    are added by _apply_rows.)"""
    for contract in all_contracts().values():
        if held_back := _spilled(deliveries, contract.source, "held_back"):
            conn.execute(f"INSERT INTO {contract.raw_table} BY NAME SELECT * FROM {held_back}")


def _apply_rows(conn: duckdb.DuckDBPyConnection, delivery: Delivery, contract: Contract) -> int:
    """Write one validated, spilled delivery's problems, partitions and staged rows; returns the rows
    quarantined."""
    for part, columns in (("staged", ", ".join(contract.staging_columns())), ("problems", "*")):
        conn.execute(f"CREATE OR REPLACE TEMP VIEW incoming_{part} AS "
                     f"SELECT {columns} FROM read_parquet({_quote(str(delivery.spill_path(part)))}) "
                     f"WHERE delivery_id = {delivery.delivery_id}")  # files staged together share the spill
    conn.execute("CREATE OR REPLACE TEMP VIEW incoming_partitions AS "
                 "SELECT DISTINCT partition_key FROM incoming_staged WHERE partition_key IS NOT NULL")
    conn.execute("CREATE TEMP TABLE delivery_problems AS SELECT * FROM incoming_problems")
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
            INSERT INTO {contract.raw_table} BY NAME
            SELECT * FROM read_parquet({_quote(str(delivery.spill_path("raw")))})
            WHERE delivery_id = {delivery.delivery_id}
              AND line_number IN (SELECT line_number FROM delivery_problems WHERE rule = 'duplicate_id')""")
    conn.execute(f"""
        INSERT INTO {contract.staging_table} BY NAME SELECT * FROM incoming_staged
        WHERE line_number NOT IN (SELECT line_number FROM delivery_problems)""")
    records.quarantine_rows(conn, "delivery_problems", delivery_id=str(delivery.delivery_id))
    (quarantined,) = conn.execute("SELECT count(DISTINCT line_number) FROM delivery_problems").fetchall()[0]
    conn.execute("DROP TABLE delivery_problems")
    for name in ("incoming_staged", "incoming_partitions", "incoming_problems"):
        conn.execute(f"DROP VIEW {name}")
    return quarantined


def _judged_like_its_original(conn: duckdb.DuckDBPyConnection, copy: Delivery, batch: list[Delivery]) -> Delivery:
    """A copy of a file that this same run rejected is rejected for the same reason, not called a
    duplicate of a delivery that loaded nothing."""
    original = next((d for d in batch if d.delivery_id == copy.duplicate_of), None)
    if original is not None:
        status, reason = original.status, original.reason
    else:  # recorded earlier in this run, or in an earlier run (then it loaded)
        found = conn.execute("SELECT status, reason FROM meta.deliveries WHERE delivery_id = ?", [copy.duplicate_of]).fetchall()
        status, reason = found[0] if found else (None, None)
    if status == "rejected":
        return copy.rejected(f"same bytes as delivery {copy.duplicate_of}, which was rejected: {reason}")
    return copy


def record_deliveries(warehouse: Path, deliveries: list[Delivery], run_id: str | None = None) -> Iterator[dict]:
    """Apply deliveries in the order given (each replaces the partitions it shares with earlier ones),
    all in one transaction over one connection; yields each delivery's ledger row (as a dict) as it is
    applied. Nothing is written if any delivery fails."""
    with duckdb.connect(str(warehouse)) as conn:
        # rows go in in any order (a quarter less CPU for a large batch): staged rows are only ever read
        # by key or aggregated, and raw rows looked up by key
        conn.execute("SET SESSION preserve_insertion_order = false")
        with transaction(conn):
            _note_possible_duplicates(conn, deliveries, warehouse)
            set_wise = _sources_applied_set_wise(conn, deliveries)
            quarantined = {}
            for source in set_wise:
                quarantined |= _apply_set_wise(conn, deliveries, source)
            set_wise_rows = []  # recorded together at the end: no later delivery here can change them
            for delivery in deliveries:
                if delivery.status == "duplicate":
                    delivery = _judged_like_its_original(conn, delivery, deliveries)
                if delivery.is_settled:
                    status, counts = delivery.status, (None, None, None)
                else:
                    if delivery.source not in set_wise:
                        quarantined[delivery.delivery_id] = _apply_rows(conn, delivery, contract_for(delivery.source))
                    held_back = quarantined.get(delivery.delivery_id, 0)
                    status = "loaded_with_quarantine" if held_back else "loaded"
                    counts = (delivery.rows_read, delivery.rows_read - held_back, held_back)
                ledger_row = records.ledger_row(delivery, status, *counts, run_id)
                if delivery.source in set_wise:
                    set_wise_rows.append(ledger_row)
                else:  # a later delivery of the batch may supersede it
                    records.insert_ledger_rows(conn, ledger_row)
                yield ledger_row.to_dicts()[0]
            if set_wise_rows:
                records.insert_ledger_rows(conn, pl.concat(set_wise_rows, how="vertical_relaxed"))
            conn.execute("DROP TABLE possible_duplicates")
            _insert_held_back_rows(conn, deliveries)
