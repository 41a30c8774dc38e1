"""Reference data the project owns and stewards may edit: kommuner, areas and their aliases, plans,
department membership. Kept as `;`-separated CSV files (warehouse/reference by default) and copied
into the warehouse's `ref` schema on every run."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from transforms.sources import normalize_label
from transforms.sources.kommune_noegletal import POPULATION_MEASURES

DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parents[1] / "warehouse" / "reference"

# file stem -> its columns and their types
TEXT, CODE, DATE = pl.Utf8, pl.Utf8, pl.Date
REFERENCE_TABLES: dict[str, dict[str, pl.DataType]] = {
    "kommuner": {"kommune_code": CODE, "name": TEXT},
    "areas": {"area_id": TEXT, "name": TEXT, "kommune_code": CODE},
    "bydele": {"bydel_id": TEXT, "name": TEXT, "kommune_code": CODE},
    "scope_aliases": {"alias": TEXT, "level": TEXT, "scope_id": TEXT},
    "plans": {"plan_id": TEXT, "name": TEXT, "kommune_code": CODE, "start_date": DATE, "end_date": DATE,
              "baseline_year": pl.Int32},
    "plan_areas": {"plan_id": TEXT, "area_id": TEXT},
    "departments": {"boligorganisation": TEXT, "afdeling": pl.Int64, "area_id": TEXT, "valid_from": DATE,
                    "valid_to": DATE, "note": TEXT},
    "indicators": {"indicator": TEXT, "definition": TEXT, "unit": TEXT, "direction": TEXT, "source": TEXT,
                   "numerator_measure": TEXT, "denominator_measure": TEXT, "scale": pl.Float64,
                   "delivered_measure": TEXT, "person_based": pl.Boolean, "levels": TEXT},
    "disclosure": {"setting": TEXT, "value": pl.Float64, "meaning": TEXT},
    "targets": {"plan_id": TEXT, "target_id": TEXT, "indicator": TEXT, "level": TEXT, "scope_id": TEXT, "rule": TEXT,
                "target_value": pl.Float64, "reference_level": TEXT, "reference_scope_id": TEXT,
                "baseline_year": pl.Int32, "first_year": pl.Int32, "last_year": pl.Int32, "description": TEXT,
                "reading": TEXT, "provisional": pl.Boolean, "source": TEXT, "data_source": TEXT},
}
# Columns a steward's older copy of a file may lack: read as empty.
OPTIONAL_COLUMNS = {"plans": {"baseline_year"}, "targets": {"reading", "provisional", "source", "data_source"}}


def _typed(column: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == DATE:
        return pl.col(column).str.strptime(DATE, "%Y-%m-%d")
    if dtype == pl.Boolean:  # written true/false; anything else is an error
        return pl.col(column).str.to_lowercase().replace_strict({"true": True, "false": False}, return_dtype=pl.Boolean)
    return pl.col(column).cast(dtype)


class ReferenceDataError(Exception):
    """A reference file is unusable; the run stops before it changes anything."""


def read_reference_table(reference_dir: Path, name: str) -> pl.DataFrame:
    path = Path(reference_dir) / f"{name}.csv"
    columns = REFERENCE_TABLES[name]
    try:
        frame = pl.read_csv(path, separator=";", infer_schema=False, encoding="utf8")
        frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(c) for c in OPTIONAL_COLUMNS.get(name, ())
                                   if c not in frame.columns)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ReferenceDataError(f"reference file {path}: missing column(s) {', '.join(missing)}")
        return frame.select(_typed(c, t) for c, t in columns.items())
    except (OSError, pl.exceptions.PolarsError) as error:
        raise ReferenceDataError(f"reference file {path}: {str(error).strip().splitlines()[0]}") from error


def check_reference_tables(reference_dir: Path) -> None:
    """Read every reference file once, so a broken one stops a run before it has done anything."""
    for name in REFERENCE_TABLES:
        read_reference_table(reference_dir, name)


@dataclass(frozen=True)
class Scope:
    level: str  # area, bydel, kommune or national
    scope_id: str | None  # area, bydel or national level id; None for kommune (the row's own code)


# A department counts for the area it belongs to on this day of the year (month, day); the warehouse's
# core.department_membership applies the same day.
MEMBERSHIP_DAY = (7, 1)


@dataclass(frozen=True)
class Reference:
    kommune_codes: frozenset[int]
    scopes_by_label: dict[str, Scope]  # normalized alias -> scope
    municipal_indicators: frozenset[str]  # what kommune_noegletal's Indikator may hold
    activity_measures: frozenset[str]  # what the initiative's own records may count (indsats_registreringer)
    plans_by_label: dict[str, str]  # normalized plan id or name -> plan id
    plan_kommuner: dict[str, str]  # plan id -> kommune code
    organisations_by_label: dict[str, str]  # normalized name -> the spelling in departments.csv
    memberships: tuple[tuple[str, int, str, dt.date, dt.date | None], ...]  # (org key, afdeling, area, from, to)

    def department_areas(self, years) -> dict[str, str]:
        """"<org key>|<afdeling>|<year>" -> area id, for departments that belong to an area on
        MEMBERSHIP_DAY of the year."""
        areas = {}
        for org_key, afdeling, area_id, valid_from, valid_to in self.memberships:
            for year in years:
                if valid_from <= dt.date(year, *MEMBERSHIP_DAY) <= (valid_to or dt.date.max):
                    areas[f"{org_key}|{afdeling}|{year}"] = area_id
        return areas


@cache
def _load_reference(reference_dir: Path, stamp: tuple[float, ...]) -> Reference:
    kommuner = read_reference_table(reference_dir, "kommuner")
    aliases = read_reference_table(reference_dir, "scope_aliases")
    scopes = {normalize_label(row["alias"]): Scope(row["level"], row["scope_id"]) for row in aliases.iter_rows(named=True)}
    # An area's id and display name are always accepted, so aliases only list the variants.
    for level, table in (("area", "areas"), ("bydel", "bydele")):
        for row in read_reference_table(reference_dir, table).iter_rows(named=True):
            for label in (row[f"{level}_id"], row["name"]):
                scopes.setdefault(normalize_label(label), Scope(level, row[f"{level}_id"]))
    plans = read_reference_table(reference_dir, "plans")
    departments = read_reference_table(reference_dir, "departments")
    organisations = {normalize_label(name): name for name in departments["boligorganisation"]}
    indicators = read_reference_table(reference_dir, "indicators")
    municipal = indicators.filter(pl.col("source") == "kommune_noegletal")["indicator"]
    return Reference(
        kommune_codes=frozenset(int(code) for code in kommuner["kommune_code"]),
        scopes_by_label=scopes,
        municipal_indicators=frozenset([*municipal, *POPULATION_MEASURES]),
        activity_measures=frozenset(indicators.filter(pl.col("source") == "indsats_registreringer")["indicator"]),
        plans_by_label={normalize_label(label): row["plan_id"] for row in plans.iter_rows(named=True)
                        for label in (row["plan_id"], row["name"])},
        plan_kommuner=dict(zip(plans["plan_id"], plans["kommune_code"])),
        organisations_by_label=organisations,
        memberships=tuple(
            (normalize_label(row["boligorganisation"]), row["afdeling"], row["area_id"], row["valid_from"], row["valid_to"])
            for row in departments.iter_rows(named=True)
        ),
    )


def load_reference(reference_dir: Path | str = DEFAULT_REFERENCE_DIR) -> Reference:
    """The reference data as of the files' current content (re-read when a steward edits them)."""
    reference_dir = Path(reference_dir).resolve()
    stamp = tuple(p.stat().st_mtime for p in sorted(reference_dir.glob("*.csv")))
    return _load_reference(reference_dir, stamp)
