"""Source declarations: one module per landing folder (spec/extracts.md), each a `CONTRACT`.

A declaration is the one place a source is described. From it derive:
- the reader: headers and their aliases (transforms/intake/read.py);
- the stager: types, the reporting level of Område, departments, the partition key (intake/stage.py);
- the Great Expectations suite: every value rule below, generated into expectations/<source>.json
  (transforms/sources/suite.py; a test keeps the files in step with the declarations);
- the raw and staging tables (warehouse/load.py) and the source's core measures (warehouse/materialize.py).

Rules shared by every source (a year in range, a known kommune, a known area...) are written once:
on the shared columns here, and from the levels a source reports (suite.py). Only bespoke cross-row
rules (the `I alt` sum) are written by hand, as helper columns next to the declaration that uses them.
"""

from __future__ import annotations

import importlib
import pkgutil
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import polars as pl

# period: a year, half-year or quarter as the initiative writes it (2019, 2019-H1, 2019-Q3)
ColumnType = Literal["text", "int", "decimal", "date", "period"]
SQL_TYPES = {"text": "VARCHAR", "int": "BIGINT", "decimal": "DOUBLE", "date": "DATE", "period": "VARCHAR"}


def normalize_label(label: str) -> str:
    """How headers and place names are compared: NFC, case-folded, inner whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", label).casefold().split())


def label_key(text: pl.Expr) -> pl.Expr:
    """normalize_label for a column of text."""
    return text.str.normalize("NFC").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


@dataclass(frozen=True)
class When:
    """The rows a rule applies to: `column operator value` (GX's row condition)."""
    column: str
    operator: Literal["==", "!=", "NOT_IN"]
    value: object

    def as_gx(self) -> dict:
        return {"type": "comparison", "column": {"name": self.column}, "operator": self.operator, "parameter": self.value}


@dataclass(frozen=True)
class Check:
    """One value rule: a GX expectation with the rule id stewards filter on and its plain words.
    `checked` names a derived column the expectation reads instead of the declared one."""
    rule: str
    description: str
    expectation: str
    kwargs: dict = field(default_factory=dict)
    when: When | None = None
    checked: str | None = None


# Parameters the suites take from reference data and the clock at validation time (intake/validate.py).
def parameter(name: str) -> dict:
    return {"$PARAMETER": name}


def between(rule: str, description: str, minimum=None, maximum=None, when: When | None = None) -> Check:
    bounds = {k: v for k, v in (("min_value", minimum), ("max_value", maximum)) if v is not None}
    return Check(rule, description, "expect_column_values_to_be_between", bounds, when)


def at_least_zero(header: str, noun: str = "count") -> Check:
    return between(f"negative_{noun}", f"{header} cannot be negative", minimum=0)


def one_of(header: str, values: list[str] | tuple[str, ...], description: str | None = None) -> Check:
    words = ", ".join(values)
    return Check("value_not_in_set", description or f"{header} must be one of {words}",
                 "expect_column_values_to_be_in_set", {"value_set": list(values)})


def in_reference(rule: str, description: str, parameter_name: str) -> Check:
    return Check(rule, description, "expect_column_values_to_be_in_set", {"value_set": parameter(parameter_name)})


def not_above(limit_column: str, rule: str, description: str, when: When | None = None) -> Check:
    """The value may not exceed `limit_column` of the same row (a declared or helper column)."""
    return Check(rule, description, "expect_column_pair_values_a_to_be_greater_than_b",
                 {"column_A": limit_column, "or_equal": True, "ignore_row_if": "either_value_is_missing"}, when)


def equal_to(other_column: str, rule: str, description: str, when: When | None = None) -> Check:
    return Check(rule, description, "expect_column_pair_values_to_be_equal",
                 {"column_B": other_column, "ignore_row_if": "either_value_is_missing"}, when)


def empty(rule: str, description: str, when: When) -> Check:
    return Check(rule, description, "expect_column_values_to_be_null", {}, when)


def share(name: str, header: str, description: str, aliases: tuple[str, ...] = (), required: bool = True) -> Column:
    """A survey share in per cent (0..100)."""
    return Column(name, header, "decimal", description, aliases=aliases, required=required,
                  required_description=f"{header} must be filled in",
                  checks=(between("share_out_of_range", f"{header} must lie between 0 and 100", minimum=0, maximum=100),))


def date_since_2000(header: str) -> Check:
    # dates reach the suite as yyyymmdd integers (intake/validate.py)
    return between("date_out_of_range", f"{header} must lie between 2000-01-01 and today",
                   minimum=20000101, maximum=parameter("today"))


@dataclass(frozen=True)
class Column:
    name: str  # canonical snake_case name used in every warehouse layer
    header: str  # the spelling extracts.md gives
    type: ColumnType
    description: str
    aliases: tuple[str, ...] = ()  # further header spellings accepted from senders
    # must every row fill it in? `When`: only the rows it names; False: empty is allowed
    required: bool | When = True
    required_description: str | None = None  # when "<header> must be filled in" says too little
    checks: tuple[Check, ...] = ()

    def accepted_headers(self) -> set[str]:
        return {normalize_label(h) for h in (self.header, *self.aliases)}

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


# Columns several senders share, spelled and checked once.
AAR = Column("aar", "År", "int", "Calendar year of the figures.", aliases=("Aar", "Year"),
             checks=(between("year_out_of_range", "År must lie between 2000 and the current year",
                             minimum=2000, maximum=parameter("current_year")),))
KOMMUNEKODE = Column("kommunekode", "Kommunekode", "int", "Danish kommune code.", aliases=("Kommune",),
                     checks=(in_reference("unknown_kommune", "Kommunekode must be one of the 98 Danish kommune codes",
                                          "kommune_codes"),))
OMRAADE = Column("omraade", "Område", "text", "Area name or alias, or `Hele kommunen`.", aliases=("Omraade",))

NATIONAL_ROWS = When("scope_level", "!=", "national")


@dataclass(frozen=True)
class Events:
    """An event-level source: one row per incident, counted per area, kommune and year. `counts` maps
    an event type to the measure counting it; `total` counts every type."""
    date: str
    type: str
    counts: dict[str, str]
    total: str | None = None


@dataclass(frozen=True)
class Contract:
    source: str  # the landing folder name
    description: str
    columns: tuple[Column, ...]
    # Columns whose values form the partition key; "year:<col>" / "month:<col>" derive it from a date.
    # The last part is the period (År, a period, a date's year or month): it starts with the year, which
    # is how the marts find the years a delivery touched (PARTITION_YEAR_SQL; tests/test_declarations.py).
    partition_by: tuple[str, ...]
    # Levels Område may name (area, kommune, bydel, national; plan: Område empty for the whole plan);
    # None: the source has no Område column.
    levels: tuple[str, ...] | None = ("area", "kommune")
    # The column naming a plan (by id or name, reference plans.csv); staging resolves it to plan_id.
    plan_column: str | None = None
    # (organisation, department number) columns that place a row in an area through reference data
    department_columns: tuple[str, str] | None = None
    formats: tuple[str, ...] = ("csv",)
    # Columns that identify a row within a delivery (duplicates are quarantined); those of an id column
    # that must also be unique across every delivery of the source (checked when loading).
    key: tuple[str, ...] = ()
    unique_across_deliveries: str | None = None
    # Helper columns computed from typed values for bespoke cross-row rules; not stored.
    rule_columns: dict[str, pl.Expr] = field(default_factory=dict)
    # Core measures: how the source's staged rows become (level, scope_id, kommune_code, year, measure,
    # value) rows; event sources derive theirs from `events`.
    measures_sql: str | None = None
    events: Events | None = None

    @property
    def scope_column(self) -> str | None:
        return "omraade" if self.levels else None

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def year_sql(self) -> str:
        """SQL for the calendar year a staged row speaks for (År, or the year of its event date)."""
        if any(c.name == "aar" for c in self.columns):
            return "aar"
        if period := next((c.name for c in self.columns if c.type == "period"), None):
            return f"CAST(left({period}, 4) AS INTEGER)"
        dated = next(part.rpartition(":")[2] for part in self.partition_by if ":" in part)
        return f"year({dated})"

    @property
    def raw_table(self) -> str:
        return f"raw.{self.source}"

    @property
    def staging_table(self) -> str:
        return f"staging.{self.source}"

    def staging_columns(self) -> dict[str, tuple[str, str]]:
        """What staging.<source> stores: name -> (SQL type, description)."""
        columns = ROW_KEYS | PARTITION_KEY
        if self.scope_column:
            columns |= SCOPE_KEYS
        if self.department_columns:
            columns |= ORGANISATION_KEY
        if self.plan_column:
            columns |= PLAN_KEY
        return columns | {c.name: (c.sql_type, f"{c.header}: {c.description}") for c in self.columns}

    def raw_columns(self) -> dict[str, tuple[str, str]]:
        """What raw.<source> stores of a row held back in quarantine: every delivered value as text."""
        return ROW_KEYS | {c.name: ("VARCHAR", f"{c.header} as delivered: {c.description}") for c in self.columns}


# Columns raw and staging tables carry besides the declaration's own: name -> (type, description).
ROW_KEYS = {
    "delivery_id": ("INTEGER", "Delivery (meta.deliveries) the row came in."),
    "line_number": ("INTEGER", "1-based line in the delivered file; the header is line 1."),
}
PARTITION_KEY = {"partition_key": ("VARCHAR", "The contract's partition key, parts joined by |.")}
PARTITION_YEAR_SQL = "CAST(left(split_part(partition_key, '|', -1), 4) AS INTEGER)"
SCOPE_KEYS = {
    "scope_level": ("VARCHAR", "Level the row speaks for: area, kommune or national (NULL: outside every area)."),
    "scope_id": ("VARCHAR", "Area id, kommune code or national level id resolved from Område."),
    "kommune_code": ("VARCHAR", "Kommune code as text."),
}
ORGANISATION_KEY = {"organisation": ("VARCHAR", "The housing organisation as spelled in the reference data.")}
PLAN_KEY = {"plan_id": ("VARCHAR", "Plan id resolved from the delivered plan id or name (ref.plans).")}


@cache
def all_contracts() -> dict[str, Contract]:
    """Every declaration module in this package, keyed by its landing folder name."""
    contracts = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        if hasattr(module, "CONTRACT"):
            contracts[module.CONTRACT.source] = module.CONTRACT
    return dict(sorted(contracts.items()))


def contract_for(source: str) -> Contract | None:
    return all_contracts().get(source)
