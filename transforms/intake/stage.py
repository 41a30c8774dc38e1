"""Text rows -> staged, typed rows: Danish number and date formats, missing markers, the reporting
level each row speaks for, and the partition key. Values that do not fit their type become row
problems (the row is quarantined); a column in which no value fits rejects the file."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from transforms.intake.read import RejectedFile
from transforms.reference import Reference
from transforms.sources import Contract, label_key

MISSING_MARKERS = ("", "..")
PROBLEM_SCHEMA = {"line_number": pl.Int64, "rule": pl.Utf8, "column_name": pl.Utf8, "value": pl.Utf8}
ROW_KEY = ["delivery_id", "line_number"]  # what keys a row of a batch, from here to the load

# Danish CSV numbers: "." groups thousands, "," is the decimal mark. XLSX cells carry plain numbers.
_DANISH_INT = r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)$"
_DANISH_DECIMAL = r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$"
_PLAIN_INT = r"^[+-]?\d+(\.0+)?$"
_PLAIN_DECIMAL = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}( 00:00:00)?$"
_LARGEST_NUMBER = 2.0**53  # beyond this doubles lose whole numbers; no count or amount of ours gets near
_PERIOD = r"^\d{4}(-H[12]|-Q[1-4])?$"
_LOOKUP_FROM_ROWS = 10_000  # fewer rows (of the files typed together) are typed row by row: the lookup would cost more

TYPE_WORDS = {"int": "a whole number", "decimal": "a number", "date": "a date YYYY-MM-DD",
              "period": "a year, half-year or quarter (2019, 2019-H1, 2019-Q3)"}


@dataclass(frozen=True)
class StagedRows:
    frame: pl.DataFrame  # [delivery_id,] line_number, typed columns, resolved scope / organisation, partition key, rule columns
    problems: pl.DataFrame  # [delivery_id,] PROBLEM_SCHEMA: one row per value that did not fit its type


def _cleaned(column: str) -> pl.Expr:
    value = pl.col(column).str.strip_chars()
    return pl.when(value.is_in(MISSING_MARKERS)).then(None).otherwise(value)


def _typed(column: str, column_type: str, plain_numbers: bool) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, does-the-text-fit) for one column, _cleaned already."""
    text = pl.col(column)
    if column_type == "text":
        return text, pl.lit(True)
    if column_type == "period":
        period = text.str.to_uppercase()
        fits = period.str.contains(_PERIOD)
        return pl.when(fits).then(period), fits
    if column_type == "date":
        fits = text.str.contains(_ISO_DATE)
        return text.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False), fits
    danish_pattern = _DANISH_INT if column_type == "int" else _DANISH_DECIMAL
    danish = text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
    if plain_numbers:  # a numeric cell reads "1234.5"; a number typed as text may still be Danish "1.234,5"
        plain_pattern = _PLAIN_INT if column_type == "int" else _PLAIN_DECIMAL
        is_plain = text.str.contains(plain_pattern)
        number = pl.when(is_plain).then(text.cast(pl.Float64, strict=False)).otherwise(danish)
        fits = is_plain | text.str.contains(danish_pattern)
    else:
        number, fits = danish, text.str.contains(danish_pattern)
    # 1 followed by 400 zeros reads as inf, and a whole number past 2^63 does not fit: neither is a value
    fits = fits & number.is_finite() & (number.abs() < _LARGEST_NUMBER)
    number = pl.when(fits).then(number)
    return (number.cast(pl.Int64, strict=False) if column_type == "int" else number), fits


def _typed_once_per_value(cleaned: pl.DataFrame, column: str, column_type: str, plain_numbers: bool) -> tuple[pl.Expr, pl.Expr]:
    """_typed, computed once per distinct text and looked up per row where values repeat (codes, dates,
    counts): the patterns and casts of a number column were half of staging a police file."""
    typed, fits = _typed(column, column_type, plain_numbers)
    if column_type == "text" or cleaned.height < _LOOKUP_FROM_ROWS:
        return typed, fits
    distinct = cleaned.get_column(column).unique().drop_nulls()
    if distinct.len() > cleaned.height // 4:  # mostly distinct values: the lookup would cost more than it saves
        return typed, fits
    table = distinct.to_frame().select(column, typed.alias("typed"), fits.alias("fits"))
    by_value = pl.col(column).replace_strict
    return (by_value(table[column], table["typed"], default=None, return_dtype=table.schema["typed"]),
            by_value(table[column], table["fits"], default=None, return_dtype=pl.Boolean))


def _label_key_of(frame: pl.DataFrame, column: str) -> pl.Expr:
    """label_key of a column, computed once per distinct value: names repeat on every row, and Unicode
    normalization is the dearest step of staging a large file."""
    distinct = frame.get_column(column).unique()
    return pl.col(column).replace_strict(distinct, distinct.to_frame().select(label_key(pl.col(column))).to_series(),
                                         default=None, return_dtype=pl.Utf8)


def _plan_id(frame: pl.DataFrame, contract: Contract, reference: Reference) -> pl.Expr:
    """The plan a row names, by id or name (NULL for an unknown plan)."""
    return _label_key_of(frame, contract.plan_column).replace_strict(reference.plans_by_label, default=None,
                                                                     return_dtype=pl.Utf8)


def _with_scope(frame: pl.DataFrame, contract: Contract, reference: Reference) -> pl.DataFrame:
    """scope_level/scope_id from Område (`omraade_key` is the normalized text the suite checks), looked up
    once per distinct name and joined to the rows (names repeat on every row: one lookup per row in all,
    where an expression per output looked the name up five times). A source reporting plans reads an
    empty Område as the whole plan; one without Kommunekode takes the plan's."""
    column, labels = contract.scope_column, reference.scopes_by_label
    by_name = (frame.get_column(column).unique().to_frame()
               .with_columns(label_key(pl.col(column)).alias("omraade_key"))
               .with_columns(pl.col("omraade_key").replace_strict({k: s.level for k, s in labels.items()}, default=None,
                                                                  return_dtype=pl.Utf8).alias("scope_level"),
                             pl.col("omraade_key").replace_strict({k: s.scope_id for k, s in labels.items()}, default=None,
                                                                  return_dtype=pl.Utf8).alias("named_scope_id")))
    frame = frame.join(by_name, on=column, how="left", nulls_equal=True, maintain_order="left")
    if contract.plan_column:
        kommune_code = pl.col("plan_id").replace_strict(reference.plan_kommuner, default=None, return_dtype=pl.Utf8)
    else:
        kommune_code = pl.col("kommunekode").cast(pl.Utf8)
    level = pl.col("scope_level")
    scope_id = pl.when(level == "kommune").then(kommune_code).otherwise(pl.col("named_scope_id"))
    if "plan" in contract.levels:
        whole_plan = pl.col(column).is_null()
        level = pl.when(whole_plan).then(pl.lit("plan")).otherwise(level)
        scope_id = pl.when(whole_plan).then(pl.col("plan_id")).otherwise(scope_id)
    return frame.with_columns(level.alias("scope_level"), scope_id.alias("scope_id"),
                              kommune_code.alias("kommune_code")).drop("named_scope_id")


def _department_expressions(frame: pl.DataFrame, contract: Contract, reference: Reference) -> list[pl.Expr]:
    """The organisation's reference spelling, and `department_area`: the area the department belongs to
    in the row's year (NULL for a department the reference data does not place in any area that year)."""
    organisation_column, number_column = contract.department_columns
    key = _label_key_of(frame, organisation_column)
    years = frame["aar"].drop_nulls().unique().to_list()
    department_year = pl.concat_str([key, pl.col(number_column).cast(pl.Utf8), pl.col("aar").cast(pl.Utf8)], separator="|")
    return [
        key.replace_strict(reference.organisations_by_label, default=None, return_dtype=pl.Utf8).alias("organisation"),
        department_year.replace_strict(reference.department_areas(years), default=None, return_dtype=pl.Utf8)
        .alias("department_area"),
    ]


def _partition_key(contract: Contract) -> pl.Expr:
    parts = []
    for part in contract.partition_by:
        kind, _, column = part.rpartition(":")
        if kind == "year":
            parts.append(pl.col(column).dt.year().cast(pl.Utf8))
        elif kind == "month":
            parts.append(pl.col(column).dt.strftime("%Y-%m"))
        elif column == "kommunekode" and contract.scope_column:
            # national rows (Landsplan, SUB-gennemsnit) carry no kommune: they form their own partitions
            national = pl.col("scope_level") == "national"
            parts.append(pl.when(national).then(pl.lit("national")).otherwise(pl.col(column).cast(pl.Utf8)))
        else:
            parts.append(pl.col(column).cast(pl.Utf8))
    return pl.concat_str(parts, separator="|").alias("partition_key")


def stage_batch(raw: pl.DataFrame, contract: Contract, reference: Reference,
                plain_numbers: bool = False) -> tuple[StagedRows, dict[int, str]]:
    """Type the text rows of several deliveries of one source, keyed by (delivery_id, line_number), in
    one pass: a pass per file costs more than a small file's rows. `plain_numbers` for XLSX cells, which
    carry no Danish formatting. A delivery with a column that has values of which none fits its type is
    rejected whole: its reason comes by delivery id, and its rows are left out."""
    names = [column.name for column in contract.columns]
    # every column cleaned once and typed once, each in one pass (polars runs the columns in parallel)
    cleaned = raw.select(*ROW_KEY, *(_cleaned(n).alias(n) for n in names))
    typed, fits = zip(*(_typed_once_per_value(cleaned, column.name, column.type, plain_numbers) for column in contract.columns))
    checked = cleaned.select(*ROW_KEY, *(t.alias(n) for t, n in zip(typed, names)),
                             *(f.alias(f"fits {n}") for f, n in zip(fits, names)),
                             *(pl.col(n).is_not_null().alias(f"present {n}") for n in names))
    unfit = checked.select(*ROW_KEY, *((pl.col(f"present {n}") & (~pl.col(f"fits {n}") | pl.col(n).is_null())).alias(n)
                                       for n in names))
    counts = unfit.group_by("delivery_id").agg(*(pl.col(n).sum() for n in names)).join(
        checked.group_by("delivery_id").agg(pl.col(f"present {n}").sum() for n in names), on="delivery_id")
    rejected: dict[int, str] = {}
    for column in contract.columns:  # a delivery's reason names its first such column
        n = column.name
        nothing_fits = counts.filter((pl.col(n) == pl.col(f"present {n}")) & (pl.col(n) > 0))["delivery_id"]
        if nothing_fits.is_empty():
            continue
        first_values = (raw.filter(unfit[n] & pl.col("delivery_id").is_in(nothing_fits.implode()))
                        .group_by("delivery_id", maintain_order=True).agg(pl.col(n).first()))
        for delivery_id, value in first_values.iter_rows():
            rejected.setdefault(delivery_id, f"column {column.header!r}: no value is {TYPE_WORDS[column.type]} "
                                             f"(first value {value!r})")
    kept = ~pl.col("delivery_id").is_in(list(rejected))
    problems = [raw.filter(unfit[column.name]).filter(kept)
                .select(*ROW_KEY, rule=pl.lit(f"type_{column.type}"), column_name=pl.lit(column.name),
                        value=pl.col(column.name))
                for column in contract.columns if counts[column.name].sum()]
    frame = checked.select(*ROW_KEY, *names).filter(kept)
    if contract.plan_column:
        frame = frame.with_columns(_plan_id(frame, contract, reference).alias("plan_id"))
    if contract.scope_column:
        frame = _with_scope(frame, contract, reference)
    if contract.department_columns:
        frame = frame.with_columns(_department_expressions(frame, contract, reference))
    frame = frame.with_columns(_partition_key(contract), **contract.rule_columns)
    no_problems = pl.DataFrame(schema={"delivery_id": raw.schema["delivery_id"], **PROBLEM_SCHEMA})
    return StagedRows(frame=frame, problems=pl.concat(problems) if problems else no_problems), rejected


def stage_rows(raw: pl.DataFrame, contract: Contract, reference: Reference, plain_numbers: bool = False) -> StagedRows:
    """Type the text rows of one delivery, keyed by line_number (stage_batch), or raise RejectedFile."""
    staged, rejected = stage_batch(raw.with_columns(pl.lit(0, dtype=pl.Int32).alias("delivery_id")), contract,
                                   reference, plain_numbers)
    if rejected:
        raise RejectedFile(rejected[0])
    return StagedRows(frame=staged.frame.drop("delivery_id"), problems=staged.problems.drop("delivery_id"))
