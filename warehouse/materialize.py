"""Reference data and models -> the `ref`, `core` and `marts` schemas of the warehouse.

A model is a SELECT that declares itself: its name, materialization (view or table), what it depends
on, its grain, its columns' descriptions and its audits. Models come from two places:
- SQL files under warehouse/models/<schema>/<name>.sql, declared in a leading `/* ... */` YAML block;
- the source declarations (transforms/sources): each source's core.measures__<source>, and for event
  sources core.events and core.event_types.
They run in dependency order inside one transaction. After a model is built its audits run (unique
grain, not-null columns, accepted values, references, every column described); a failing audit stops
the build with the model and example rows, and the published file stays as the last run left it.

Incremental by year: a table model that declares `partition_by: year` holds rows whose every input is
of their own year (or reference data). When only deliveries changed since the last build (same model
fingerprint), such a model rebuilds only the years the run's deliveries touched: delete-then-insert
of those years, in the same transaction. It is rebuilt whole when anything it reads was rebuilt whole,
or when the answer of its `partition_guard` (a query over what it reads across years) changed.
tests/test_marts.py checks that an incremental build equals a full one.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import duckdb
import yaml

from transforms.reference import REFERENCE_TABLES, read_reference_table, reference_files
from transforms.sources import PARTITION_YEAR_SQL, all_contracts
from warehouse import disclosure
from warehouse.transaction import transaction

MODELS_DIR = Path(__file__).resolve().parent / "models"
MEASURE_VIEW_PREFIX = "measures__"  # core views that feed core.measures
_RELATION = re.compile(r"\b(?:core|marts)\.\w+")
# TRY_CAST: DuckDB moves no filter below a cast that may fail, so with ::INTEGER a partial build's year
# filter ran after all 5M police reports were counted (0.14 s, not 0.035); a year fits (audited not null)
MEASURE_COLUMNS = "level, scope_id, kommune_code, TRY_CAST(year AS INTEGER) AS year, measure, value::DOUBLE AS value"


class ModelError(Exception):
    """A model failed to build or to pass its audits; the message names it."""


@dataclass(frozen=True)
class Model:
    name: str  # schema.relation
    select: str
    materialized: str  # view or table
    description: str
    origin: str  # the file or declaration it comes from
    depends_on: tuple[str, ...] = ()
    grain: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)  # column -> description
    audits: dict = field(default_factory=dict)  # not_null, accepted_values, relationships
    # a model that is Python, not SQL: build(conn, rows) creates the table, or (rows: a SQL predicate on
    # its year column) rebuilds those rows of it (select then holds its source, so the fingerprint
    # changes with the code)
    build: Callable[[duckdb.DuckDBPyConnection, str | None], None] | None = None
    partition_by: str | None = None  # "year": a year's rows depend only on that year's inputs
    partition_guard: str | None = None  # a cross-year input: a partial rebuild needs its answer unchanged

    @property
    def schema(self) -> str:
        return self.name.partition(".")[0]

    def create_sql(self) -> str:
        kind = "TABLE" if self.materialized == "table" else "VIEW"
        return f"CREATE OR REPLACE {kind} {self.name} AS\n{self.select}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_model_file(path: Path) -> Model:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("/*") or "*/" not in text:
        raise ModelError(f"model {path.parent.name}/{path.name}: no /* ... */ declaration at the top")
    header, _, select = text[2:].partition("*/")
    try:
        declared = yaml.safe_load(header)
        return Model(name=declared["name"], select=select.strip().rstrip(";"), materialized=declared["materialized"],
                     description=declared["description"], origin=f"warehouse/models/{path.parent.name}/{path.name}",
                     depends_on=tuple(declared.get("depends_on", ())), grain=tuple(declared.get("grain", ())),
                     columns=declared.get("columns") or {}, audits=declared.get("audits") or {},
                     partition_by=declared.get("partition_by"), partition_guard=declared.get("partition_guard"))
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise ModelError(f"model {path.parent.name}/{path.name}: unreadable declaration: {error}") from error


def _event_models() -> list[Model]:
    """core.event_types and core.events from the event sources' declarations."""
    event_sources = [c for c in all_contracts().values() if c.events]
    type_rows = [f"({_quote(c.source)}, {_quote(event_type)}, {_quote(measure)})"
                 for c in event_sources for event_type, measure in c.events.counts.items()]
    type_rows += [f"({_quote(c.source)}, NULL, {_quote(c.events.total)})" for c in event_sources if c.events.total]
    events = "\nUNION ALL\n".join(
        f"SELECT {_quote(c.source)} AS source, {c.key[0]} AS event_id, kommune_code, scope_id AS area_id, "
        f"year({c.events.date}) AS year, {c.events.type} AS event_type FROM {c.staging_table}" for c in event_sources)
    origin = "transforms/sources (events of " + ", ".join(c.source for c in event_sources) + ")"
    return [
        Model("core.event_types", f"SELECT * FROM (VALUES {', '.join(type_rows)}) AS t(source, event_type, measure)",
              "view", "Which event-level rows each count measure counts; event_type NULL counts every type of the source.",
              origin, grain=("source", "event_type", "measure")),
        Model("core.events", events, "view", "Every current event-level row, one shape for all event sources.", origin,
              depends_on=tuple(c.staging_table for c in event_sources), grain=("source", "event_id")),
    ]


@cache
def all_models() -> tuple[Model, ...]:
    """Every model, in dependency order."""
    models = [read_model_file(path) for path in sorted(MODELS_DIR.glob("*/*.sql"))]
    contracts = all_contracts().values()
    if any(c.events for c in contracts):
        models += _event_models()
    measure_views = [m.name for m in models if m.name.startswith(f"core.{MEASURE_VIEW_PREFIX}")]
    for contract in contracts:
        if contract.measures_sql:
            name = f"core.{MEASURE_VIEW_PREFIX}{contract.source}"
            models.append(Model(name, contract.measures_sql.strip(), "view",
                                f"Additive measures of {contract.source} per level, scope and year.",
                                f"transforms/sources/{contract.source}.py", depends_on=(contract.staging_table,),
                                grain=("level", "scope_id", "year", "measure")))
            measure_views.append(name)
    # a table: the marts read it several times, and a view would aggregate every event row each time
    models.append(Model(
        "core.measures", "\nUNION ALL\n".join(f"SELECT {MEASURE_COLUMNS} FROM {v}" for v in sorted(measure_views)), "table",
        "Additive measures per level, scope and year from every source (union of the core.measures__<source> views).",
        "warehouse/materialize.py", depends_on=tuple(sorted(measure_views)), grain=("level", "scope_id", "year", "measure"),
        audits={"not_null": ["level", "scope_id", "year", "measure"]},
        partition_by="year"))  # every source's measures are per year (tests/test_marts.py checks it)
    models.append(Model(
        "core.disclosure", inspect.getsource(disclosure), "table",
        "Disclosure control per cell of core.indicator_figures: primary (the rule in ref.disclosure) or "
        "complementary (hidden so that no difference of two published figures gives a hidden one back).",
        "warehouse/disclosure.py", depends_on=("core.indicator_figures", "ref.indicators"),
        grain=("indicator", "level", "scope_id", "year"), build=disclosure.build_disclosure,
        audits={"accepted_values": {"suppression": ["primary", "complementary"]}}, partition_by="year"))
    by_name = {m.name: m for m in models}
    try:
        # sorted, so the order is the same in every process (sets of strings iterate by hash)
        order = TopologicalSorter({m.name: sorted(upstream(m, by_name))
                                   for m in sorted(models, key=lambda m: m.name)}).static_order()
        return tuple(by_name[name] for name in order)
    except CycleError as cycle:
        raise ModelError(f"models depend on each other in a cycle: {' -> '.join(cycle.args[1])}") from cycle


def upstream(model: Model, names) -> set[str]:
    """The models a model reads: what it declares and every model its SELECT names (a declaration's
    measures read core views without listing them)."""
    return ({d for d in model.depends_on if d in names}
            | {name for name in _RELATION.findall(model.select) if name in names and name != model.name})


def model_fingerprint(reference_dir: Path) -> str:
    """Changes whenever reference data or a model changes, i.e. whenever the marts must be rebuilt; a
    model's declaration too (its descriptions: a table rebuilt by year keeps those it has, see _build)."""
    digest = hashlib.sha256()
    for path in reference_files(reference_dir):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for model in sorted(all_models(), key=lambda m: m.name):
        declared = (model.materialized, model.select, model.description, model.grain, model.columns, model.audits,
                    model.partition_by, model.partition_guard)
        digest.update(f"{model.name}\n{declared!r}".encode())
    return digest.hexdigest()


def load_reference_tables(conn: duckdb.DuckDBPyConnection, reference_dir: Path) -> None:
    for name, table in REFERENCE_TABLES.items():
        frame = read_reference_table(reference_dir, name)
        conn.register("reference_frame", frame)
        conn.execute(f"CREATE OR REPLACE TABLE ref.{name} AS SELECT * FROM reference_frame")
        conn.unregister("reference_frame")
        conn.execute(f"COMMENT ON TABLE ref.{name} IS {_quote(f'{table.description} Reference data from {name}.csv (steward-editable).')}")
        for column, (_, description) in table.columns.items():
            conn.execute(f"COMMENT ON COLUMN ref.{name}.{column} IS {_quote(description)}")


def of_years(years: tuple[int, ...]) -> str:
    """SQL: the rows of these years."""
    return f"year IN ({', '.join(map(str, years))})" if years else "false"


def _failing_rows(conn: duckdb.DuckDBPyConnection, model: Model, rebuilt: str | None = None) -> list[tuple[str, str]]:
    """(audit, example rows) for every audit of the model that finds rows; of a model rebuilt in part,
    in the `rebuilt` rows (the grain holds the year, and the other years' rows passed when they were built)."""
    rows = model.name if rebuilt is None else f"(SELECT * FROM {model.name} WHERE {rebuilt})"
    checks = []
    if model.grain and model.materialized == "table":  # auditing a view's grain would compute the view again
        keys = ", ".join(model.grain)
        checks.append((f"unique grain ({keys})",
                       f"SELECT {keys}, count(*) AS copies FROM {rows} GROUP BY ALL HAVING count(*) > 1"))
    for column in model.audits.get("not_null", ()):
        checks.append((f"not_null {column}", f"SELECT * FROM {rows} WHERE {column} IS NULL"))
    for column, values in (model.audits.get("accepted_values") or {}).items():
        accepted = ", ".join(_quote(str(v)) for v in values)
        checks.append((f"accepted_values {column}", f"SELECT DISTINCT {column} FROM {rows} "
                                                    f"WHERE {column} NOT IN ({accepted})"))
    for column, target in (model.audits.get("relationships") or {}).items():
        table, _, key = target.rpartition(".")
        checks.append((f"relationships {column} -> {target}", f"SELECT DISTINCT {column} FROM {rows} "
                                                             f"WHERE {column} NOT IN (SELECT {key} FROM {table})"))
    if not checks:
        return []
    # one statement for all of a model's audits (a statement's fixed cost is about 1 ms): up to three
    # example rows of each, as JSON, so that audits of different columns share one result
    found = conn.execute(" UNION ALL ".join(
        f"(SELECT {number} AS audit, to_json(failing)::VARCHAR AS example FROM ({query} LIMIT 3) AS failing)"
        for number, (_, query) in enumerate(checks))).fetchall()
    examples: dict[int, list[str]] = {}
    for number, example in found:
        examples.setdefault(number, []).append(example)
    return [(checks[number][0], "; ".join(rows)) for number, rows in sorted(examples.items())]


def _build(conn: duckdb.DuckDBPyConnection, model: Model, years: tuple[int, ...] | None = None) -> None:
    """Build the model whole, or (`years`) only those years of a table partitioned by year."""
    rebuilt = None if years is None else of_years(years)
    try:
        if model.build:
            model.build(conn, rebuilt)
        elif rebuilt is None:
            conn.execute(model.create_sql())
        else:
            conn.execute(f"DELETE FROM {model.name} WHERE {rebuilt}")
            conn.execute(f"INSERT INTO {model.name} BY NAME SELECT * FROM ({model.select}) WHERE {rebuilt}")
    except duckdb.Error as error:
        raise ModelError(f"model {model.name} ({model.origin}): {str(error).splitlines()[0]}") from error
    if rebuilt is None:  # rebuilt by year: the model and its descriptions are as at its last build (model_fingerprint)
        _describe(conn, model)
    failures = _failing_rows(conn, model, rebuilt)
    if failures:
        raise ModelError(f"model {model.name} ({model.origin}): audit failed: "
                         + " | ".join(f"{audit}: {rows}" for audit, rows in failures))


def _describe(conn: duckdb.DuckDBPyConnection, model: Model) -> None:
    """The model's descriptions on the relation and its columns; every column must have one."""
    kind = "TABLE" if model.materialized == "table" else "VIEW"
    conn.execute(f"COMMENT ON {kind} {model.name} IS {_quote(model.description)}")
    actual = [column for column, *_ in conn.execute(f"SELECT * FROM {model.name} LIMIT 0").description]
    if model.columns:
        undescribed = [c for c in actual if c not in model.columns]
        if undescribed:
            raise ModelError(f"model {model.name} ({model.origin}): audit failed: column(s) without a description: "
                             + ", ".join(undescribed))
        for column in actual:
            conn.execute(f"COMMENT ON COLUMN {model.name}.{column} IS {_quote(model.columns[column])}")


def touched_years(conn: duckdb.DuckDBPyConnection, delivery_ids: Sequence[int]) -> set[int]:
    """The years of the partitions these deliveries hold; a correction replaces partitions under the
    same keys, so the years it took from earlier deliveries are among them."""
    return {year for (year,) in conn.execute(f"SELECT DISTINCT {PARTITION_YEAR_SQL} FROM meta.partitions "
                                             "WHERE list_contains(?, delivery_id)", [list(delivery_ids)]).fetchall()}


def _guard_answer(conn: duckdb.DuckDBPyConnection, model: Model) -> list[tuple] | None:
    try:
        return sorted(conn.execute(model.partition_guard).fetchall(), key=repr)
    except duckdb.CatalogException:  # what it reads is not built yet
        return None


def materialize(warehouse: Path, reference_dir: Path, only_marts: bool = False,
                loaded_deliveries: Sequence[int] | None = None) -> dict[str, int]:
    """Rebuild ref tables, core views and the model tables in one transaction; returns mart row counts.
    `only_marts` when the warehouse's ref tables and views were built from the current reference data
    and models (same model fingerprint) and only new deliveries changed: then the tables alone are
    rebuilt; given the `loaded_deliveries` since the last build, the tables partitioned by year only in
    the years those touched, as far as the module's docstring allows."""
    with duckdb.connect(str(warehouse)) as conn:
        # rows in any order, unless a model asks for one (ORDER BY): nothing reads a model's table in the
        # order it was written (FILE gets each table in grain order), and a first national build took 0.1 s less
        conn.execute("SET SESSION preserve_insertion_order = false")
        partial = (tuple(sorted(touched_years(conn, loaded_deliveries)))
                   if only_marts and loaded_deliveries is not None else None)
        with transaction(conn):
            if not only_marts:
                load_reference_tables(conn, reference_dir)
            models = all_models()
            names = {m.name for m in models}
            guards = {m.name: _guard_answer(conn, m) for m in models if partial is not None and m.partition_guard}
            existing = dict(conn.execute("""
                SELECT schema_name || '.' || table_name, 'table' FROM duckdb_tables() WHERE NOT internal
                UNION ALL SELECT schema_name || '.' || view_name, 'view' FROM duckdb_views() WHERE NOT internal""").fetchall())
            rebuilt_whole: set[str] = set()
            for model in models:
                if model.materialized != "table" and only_marts:  # views are current by definition
                    continue
                if existing.get(model.name, model.materialized) != model.materialized:
                    # a model that changed from view to table (or back): CREATE OR REPLACE does not cross kinds
                    conn.execute(f"DROP {existing.pop(model.name).upper()} {model.name}")
                by_year = (partial is not None and model.partition_by == "year" and not upstream(model, names) & rebuilt_whole
                           and model.name in existing
                           and (not model.partition_guard or guards[model.name] is not None
                                and _guard_answer(conn, model) == guards[model.name]))
                _build(conn, model, partial if by_year else None)
                if model.materialized == "table" and not by_year:
                    rebuilt_whole.add(model.name)
        tables = conn.execute(
            "SELECT table_name, estimated_size FROM duckdb_tables() WHERE schema_name = 'marts' ORDER BY 1"
        ).fetchall()
    return {name: rows for name, rows in tables}
