"""Staged rows -> row problems, by the source's Great Expectations suite (expectations/<source>.json,
generated from its declaration in transforms/sources).

One suite run checks a batch of one or more deliveries of a source: GX costs about 0.1-0.2 s per run
whatever the row count, so a run validates its deliveries in a few batches, not one by one. Rows are
keyed by (delivery_id, line_number); rules across rows name delivery_id so that they hold within a
delivery. Only the columns the suite reads go to GX.

Date columns reach the suite as yyyymmdd integers (2016-03-01 -> 20160301). Each expectation carries
`meta.rule` (a short id stewards filter on) and `meta.column` (the delivered column to blame when the
checked column is derived, e.g. the normalized area name). Sets that come from reference data are
suite parameters (`{"$PARAMETER": ...}`) filled in here, so the suite files stay
declarative and the reference files stay the one place to edit them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import json
import logging
import os
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import polars as pl

from transforms.intake.stage import ROW_KEY
from transforms.reference import Reference
from transforms.sources import Contract
from transforms.sources.suite import DUPLICATE_RULE, key_rule, suite_path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
MISSING_VALUE_CHECKS = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null")
# One GX context serves the process; it is not documented as thread-safe and files are staged in threads.
# Re-entrant: a batch's validation takes it before reading its rows (validation_turn), then GX takes it again.
_GX_LOCK = threading.RLock()


@cache
def _context():
    import great_expectations as gx

    # GX pins some of its loggers to INFO (e.g. a line per context about its docs folder).
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from great_expectations.execution_engine import pandas_execution_engine

    # A private GX setting, kept on purpose (the other intervention: _configurations_built_once). GX 1.24.1
    # (pinned in pyproject.toml/uv.lock) md5-hashes every row of a pandas batch under 1 GB
    # (PandasExecutionEngine.get_batch_data_and_markers -> hash_pandas_dataframe), in get_batch and again in
    # batch.validate, only for result.meta["batch_markers"]. GX has no public switch; the public
    # ValidationDefinition.run still hashes once and keeps every result in memory. Measured, 1M rows x 6
    # columns: 0.52 s default, 0.32 s ValidationDefinition, 0.22 s with HASH_THRESHOLD = 0.
    # tests/test_validate.py fails if GX hashes again.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    return context


@contextlib.contextmanager
def _configurations_built_once() -> Iterator[None]:
    """The second private GX intervention, kept on purpose, for one suite run and under _GX_LOCK (so no
    other thread sees it). GX 1.24.1 (pinned) rebuilds an expectation's configuration from its pydantic
    fields (`Expectation.configuration`: `.dict()` and a new ExpectationConfiguration) every time it
    reads one of its arguments: about 130 times per expectation and suite run (16 with this), 0.07 s
    of the 0.13 s a served month's suite run takes, whatever the row count. GX changes no expectation
    object while it validates, so each object's configuration is built once. It does fill the suite
    parameters into the configurations of the suite's own expectations in place, which are then the
    ones kept: harmless, as the suite is read anew for every run (load_suite) with one set of
    parameters. GX has no public switch; tests/test_validate.py checks, for suites with every kind of
    expectation we use, that the results are GX's own and that GX is left as it was."""
    from great_expectations.expectations.expectation import Expectation

    built_each_time = Expectation.__dict__["configuration"]
    built: dict[int, tuple] = {}  # id -> (expectation, configuration): the expectation held, so its id stays its own

    def configuration(expectation):
        found = built.get(id(expectation))
        if found is None:
            found = built[id(expectation)] = (expectation, built_each_time.fget(expectation))
        return found[1]

    Expectation.configuration = property(configuration)
    try:
        yield
    finally:
        Expectation.configuration = built_each_time


class _TurnsInOrder:
    """A lock whose waiters get it lowest key first, not in the order the threads happen to wake."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: list[int] = []  # a heap of the keys waiting
        self._held = False

    @contextlib.contextmanager
    def turn(self, key: int) -> Iterator[None]:
        with self._changed:
            heapq.heappush(self._waiting, key)
            while self._held or self._waiting[0] != key:
                self._changed.wait()
            heapq.heappop(self._waiting)
            self._held = True
        try:
            yield
        finally:
            with self._changed:
                self._held = False
                self._changed.notify_all()


_VALIDATION_TURNS = _TurnsInOrder()


@contextlib.contextmanager
def validation_turn(order: int = 0) -> Iterator[None]:
    """A batch's turn to be validated: one at a time per process, as GX runs one suite at a time anyway,
    and of the batches waiting, the one with the lowest ORDER first (the run loads batches in order: the
    batch the writer waits for goes first; in a national first run the two first batches, ingested
    together, were validated in the wrong order about half the time, and the first load began 0.8 s
    later). Taken before the batch's rows are read, so that batches waiting for GX do not hold theirs in
    memory."""
    with _VALIDATION_TURNS.turn(order), _GX_LOCK:
        yield


def warm_up() -> None:
    """Import GX and set up its context now (about 2.5 s of CPU; 5-6 s with no compiled bytecode) rather
    than at the first validation."""
    with _GX_LOCK:
        _context()


@cache
def _batch_definition():
    asset = _context().data_sources.add_pandas("staged_rows").add_dataframe_asset("delivery")
    return asset.add_batch_definition_whole_dataframe("whole_delivery")


class SuiteError(Exception):
    """A suite cannot be read or one of its expectations cannot run: a pipeline problem, not a data problem."""


def load_suite(path: Path):
    """The suite file as a GX ExpectationSuite (re-read on every call: stewards may edit it)."""
    _context()  # GX fully imported and its expectations registered before a suite is built
    from great_expectations.core.expectation_suite import ExpectationSuite

    try:
        return ExpectationSuite(**json.loads(Path(path).read_text(encoding="utf-8")))
    except Exception as error:  # JSON, pydantic and GX each raise their own kinds
        raise SuiteError(f"{Path(path).name}: not a valid suite: {str(error).splitlines()[0]}") from error


def suite_parameters(reference: Reference, today: dt.date | None = None) -> dict:
    today = today or dt.date.today()
    return {
        "current_year": today.year,
        "today": int(today.strftime("%Y%m%d")),
        "kommune_codes": sorted(reference.kommune_codes),
        "known_scopes": sorted(reference.scopes_by_label),
        "municipal_indicators": sorted(reference.municipal_indicators),
        "activity_measures": sorted(reference.activity_measures),
    }


def _exception_message(exception_info: dict) -> str | None:
    """GX reports an exception either flat or nested per metric; find it in either form."""
    if exception_info.get("raised_exception"):
        return exception_info.get("exception_message") or "unknown error"
    nested = (info for info in exception_info.values() if isinstance(info, dict))
    return next((info.get("exception_message") or "unknown error" for info in nested if info.get("raised_exception")), None)


def _as_yyyymmdd(dates: pl.Expr) -> pl.Expr:
    """Dates go to GX as yyyymmdd integers: GX compares datetimes with string bounds neither reliably
    under pandas 3 nor vectorized, and 20000101 reads plainly in a suite file."""
    # Int64: GX takes its vectorized path only for int64/float64 columns
    return dates.dt.year().cast(pl.Int64) * 10000 + dates.dt.month().cast(pl.Int64) * 100 + dates.dt.day().cast(pl.Int64)


def _with_delivered_values(problems: pl.DataFrame, held_back: pl.DataFrame) -> pl.DataFrame:
    """Fill in the value as the sender wrote it, which is what a steward needs to see."""
    delivered = held_back.unpivot(index=ROW_KEY, variable_name="column_name", value_name="delivered")
    return (
        problems.join(delivered, on=[*ROW_KEY, "column_name"], how="left")
        .with_columns(pl.coalesce("value", "delivered").alias("value"))
        .select(problems.columns)
    )


def _column_names(value) -> Iterator[str]:
    """The columns an expectation's arguments (KWARGS) name, its row condition's included."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("column", "column_A", "column_B", "name") and isinstance(inner, str):
                yield inner
            elif key == "column_list":
                yield from inner
            else:
                yield from _column_names(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _column_names(inner)


def _suite_columns(suite) -> set[str]:
    """The columns the suite's expectations and their row conditions read."""
    return {name for expectation in suite.expectations for name in _column_names(expectation.configuration.kwargs)}


def _read_only_by(suite, expectation_types: tuple[str, ...]) -> set[str]:
    """The columns that only expectations of these types read, each as its `column` (named nowhere else,
    row conditions included)."""
    only, read_otherwise = set(), set()
    for expectation in suite.expectations:
        kwargs = dict(expectation.configuration.kwargs)
        if expectation.configuration.type in expectation_types:
            only.add(kwargs.pop("column"))
        read_otherwise.update(_column_names(kwargs))
    return only - read_otherwise


def _as_gx_reads_it(staged_rows: pl.DataFrame, suite) -> list[pl.Expr]:
    """The columns the suite reads, each in the form that costs GX least for what the suite asks of it.
    GX filters the whole frame once per metric it computes (about 26 times per suite run), copying
    every column each time; Arrow-backed text is the dearest to copy (0.19 of 0.45 s per 918,000 police
    rows). So:
    - a column only null checks read (the police reports' ids) goes as a stand-in, missing where the
      value is, a small number elsewhere;
    - a text column only null and set checks read (codes, names, levels) goes as a pandas Categorical,
      which GX's filters copy as integer codes (0.39 -> 0.30 CPU-s per 918,000 police rows);
    - dates go as yyyymmdd integers (_as_yyyymmdd)."""
    read_by_suite = _suite_columns(suite)
    missing_only = _read_only_by(suite, MISSING_VALUE_CHECKS)
    membership_only = _read_only_by(suite, (*MISSING_VALUE_CHECKS, "expect_column_values_to_be_in_set"))
    columns = []
    for column, dtype in staged_rows.schema.items():
        if column not in read_by_suite:
            continue
        if column in missing_only:
            columns.append(pl.when(pl.col(column).is_not_null()).then(pl.lit(0, dtype=pl.Int8)).alias(column))
        elif column in membership_only and dtype == pl.Utf8:
            columns.append(pl.col(column).cast(pl.Categorical))
        elif dtype == pl.Date:
            columns.append(_as_yyyymmdd(pl.col(column)))
        else:
            columns.append(pl.col(column))
    return columns


def _repeated(rows: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """A superset of the rows whose values of COLUMNS (none missing) occur more than once among ROWS:
    those whose values' 64-bit hash does. Callers group what it returns by the values themselves, so a
    hash shared by two different values (a row kept for nothing) changes no result. Hashes sorted and
    compared with their neighbour: 0.02 s for 918,000 police ids, `is_duplicated` on the text 0.18 s."""
    values = pl.col(columns[0]) if len(columns) == 1 else pl.struct(columns)
    hashed = rows.drop_nulls(list(columns)).with_columns(values.hash().alias("_hash"))
    ordered = hashed["_hash"].sort()
    repeated_hashes = ordered.filter(ordered == ordered.shift(1))
    return hashed.filter(pl.col("_hash").is_in(repeated_hashes.implode())).drop("_hash")


def ids_in_several_deliveries(staged_rows: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """For a source whose ids are unique across deliveries: (delivery_id, id) of every id that more than
    one delivery of the batch holds. Not a problem yet (a later delivery may replace the partition of
    an earlier one); the load looks at those ids with the ones already in staging."""
    column = contract.unique_across_deliveries
    if not column or column not in staged_rows.columns:
        return pl.DataFrame(schema={"delivery_id": pl.Int32, "id": pl.Utf8})
    repeated = _repeated(staged_rows.select("delivery_id", column), (column,))
    return (repeated.filter(pl.col("delivery_id").n_unique().over(column) > 1).unique()
            .select(pl.col("delivery_id").cast(pl.Int32), pl.col(column).cast(pl.Utf8).alias("id")))


def duplicates_in_delivery(staged_rows: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """Later copies of a key within one delivery (the first occurrence is not a problem), with the line
    of the first in `note`. Rows with a missing key part are not compared (as GX's ignore_row_if)."""
    schema = {"delivery_id": pl.Int64, "line_number": pl.Int64, "rule": pl.Utf8, "column_name": pl.Utf8,
              "value": pl.Utf8, "note": pl.Utf8}
    rule = key_rule(contract)
    if rule is None or not set(contract.key) <= set(staged_rows.columns):
        return pl.DataFrame(schema=schema)
    blamed, _ = rule
    keyed = _repeated(staged_rows.select(*ROW_KEY, *contract.key), contract.key).with_columns(pl.col(ROW_KEY).cast(pl.Int64))
    first = pl.col("line_number").min().over(["delivery_id", *contract.key]).alias("first_line")
    return (keyed.with_columns(first).filter(pl.col("line_number") != pl.col("first_line"))
            .select(*ROW_KEY, rule=pl.lit(DUPLICATE_RULE), column_name=pl.lit(blamed), value=pl.lit(None, dtype=pl.Utf8),
                    note=pl.format("already in this delivery at line {}", pl.col("first_line")))
            .cast(schema))


def _suite_outcomes(staged_rows: pl.DataFrame, contract: Contract, reference: Reference, today: dt.date | None) -> list:
    """GX's result per expectation of the source's suite, in one suite run over the columns it reads.
    The pandas copy GX validated is let go on return, before the problems are put together."""
    with _GX_LOCK:  # also around the suite: GX fills its expectation registry on first import, not thread-safely
        suite = load_suite(suite_path(contract))
        # a column the suite names but the rows lack stays missing, so GX reports the broken suite
        frame = staged_rows.select(_as_gx_reads_it(staged_rows, suite)).to_pandas()
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
        with _configurations_built_once():
            return batch.validate(
                suite,
                expectation_parameters=suite_parameters(reference, today),
                # failing rows by their position in FRAME (its default index): naming key columns instead makes
                # GX look up each failing row's keys one value at a time (a third of a large batch's validation)
                result_format={"result_format": "COMPLETE"},
            ).results


def validate_rows(staged_rows: pl.DataFrame, type_problems: pl.DataFrame, text_rows: pl.DataFrame | pl.LazyFrame,
                  contract: Contract, reference: Reference, today: dt.date | None = None,
                  with_notes: bool = False) -> pl.DataFrame:
    """Every (line, rule, column, delivered value) the suite finds broken, typing problems and later
    copies of a key within a delivery included; WITH_NOTES adds `note` (e.g. the line a copy repeats).

    The frames hold a batch of deliveries of one source keyed by (delivery_id, line_number), or a single
    delivery keyed by line_number alone; the problems come keyed the same way."""
    if "delivery_id" not in staged_rows.columns:
        one_delivery = pl.lit(0, dtype=pl.Int64).alias("delivery_id")
        problems = validate_rows(staged_rows.with_columns(one_delivery), type_problems.with_columns(one_delivery),
                                 text_rows.with_columns(one_delivery), contract, reference, today, with_notes)
        return problems.drop("delivery_id")
    problems, _ = validate_holding_back(staged_rows, type_problems, text_rows, contract, reference, today)
    return problems if with_notes else problems.drop("note")


def validate_holding_back(staged_rows: pl.DataFrame, type_problems: pl.DataFrame, text_rows: pl.DataFrame | pl.LazyFrame,
                          contract: Contract, reference: Reference, today: dt.date | None = None
                          ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """validate_rows of a batch keyed by (delivery_id, line_number), with notes, and the text rows of the
    lines with problems: what the warehouse keeps of a held-back row (text_rows are read once)."""
    outcomes = _suite_outcomes(staged_rows, contract, reference, today)
    row_keys = staged_rows.select(pl.col(ROW_KEY).cast(pl.Int64))
    findings = []
    for outcome in outcomes:
        if outcome.success:
            continue
        config = outcome.expectation_config
        failure = _exception_message(outcome.exception_info)
        if failure:  # a broken suite is a pipeline error, never a verdict on the data
            raise SuiteError(f"{suite_path(contract).name}: {config.type} on {config.kwargs.get('column')} could not run: {failure}")
        rule = config.meta.get("rule", config.type)
        column = config.meta.get("column") or config.kwargs.get("column") or config.kwargs.get("column_A")
        positions = pl.Series(outcome.result.get("unexpected_index_list") or [], dtype=pl.Int64)
        findings.append(row_keys[positions].with_columns(rule=pl.lit(rule), column_name=pl.lit(column),
                                                         value=pl.lit(None, dtype=pl.Utf8)))
    no_note = pl.lit(None, dtype=pl.Utf8).alias("note")
    type_problems = type_problems.select(pl.col(ROW_KEY).cast(pl.Int64), "rule", "column_name", "value", no_note)
    suite_problems = pl.concat(findings).with_columns(no_note) if findings else type_problems.clear()
    suite_problems = pl.concat([suite_problems, duplicates_in_delivery(staged_rows, contract)])
    # A value that could not be typed reads as missing to the suite; report it once, as the type problem.
    suite_problems = suite_problems.join(type_problems, on=[*ROW_KEY, "column_name"], how="anti")
    problems = pl.concat([type_problems, suite_problems]).unique(maintain_order=True).sort(ROW_KEY, maintain_order=True)
    text_rows = text_rows.lazy()
    key_types = text_rows.collect_schema()
    lines = problems.lazy().select(pl.col(key).cast(key_types[key]) for key in ROW_KEY).unique()
    held_back = text_rows.join(lines, on=ROW_KEY, how="semi").collect()
    return _with_delivered_values(problems, held_back.with_columns(pl.col(ROW_KEY).cast(pl.Int64))), held_back
