"""Reference data the project owns and stewards may edit: kommuner, areas and their aliases, plans,
department membership. Kept as `;`-separated CSV files (warehouse/reference by default) and copied
into the warehouse's `ref` schema on every run."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import polars as pl

from transforms.file_versions import kept_per_version, write_whole
from transforms.sources import normalize_label
from transforms.sources.kommune_noegletal import POPULATION_MEASURES

DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parents[1] / "warehouse" / "reference"

TEXT, CODE, DATE = pl.Utf8, pl.Utf8, pl.Date


@dataclass(frozen=True)
class ReferenceTable:
    description: str
    columns: dict[str, tuple[pl.DataType, str]]  # column -> (type, description)


# file stem -> what it holds; ref.<stem> in the warehouse carries these descriptions
REFERENCE_TABLES: dict[str, ReferenceTable] = {
    "kommuner": ReferenceTable("The 98 Danish kommuner.", {
        "kommune_code": (CODE, "Kommune code as text, e.g. 330 (Slagelse), 101 (København)."),
        "name": (TEXT, "The kommune's name.")}),
    "areas": ReferenceTable("Boligområder (areas) the plans cover.", {
        "area_id": (TEXT, "Area id used in every table, e.g. motalavej."),
        "name": (TEXT, "The area's display name."),
        "kommune_code": (CODE, "Kommune the area lies in.")}),
    "bydele": ReferenceTable("A kommune's districts (bydele), the level of its own safety survey.", {
        "bydel_id": (TEXT, "Bydel id, e.g. amager-oest."),
        "name": (TEXT, "The bydel's name as the kommune writes it, e.g. Amager Øst."),
        "kommune_code": (CODE, "Kommune the bydel lies in.")}),
    "scope_aliases": ReferenceTable("Spellings senders use for areas, bydele, Hele kommunen and the national levels.", {
        "alias": (TEXT, "A spelling as delivered in Område (compared case-insensitively)."),
        "level": (TEXT, "area, bydel, kommune or national."),
        "scope_id": (TEXT, "The id it stands for; empty for Hele kommunen (the row's own kommune).")}),
    "plans": ReferenceTable("Boligsociale helhedsplaner and their periods.", {
        "plan_id": (TEXT, "Plan id used in every table, e.g. slagelse-2017."),
        "name": (TEXT, "The plan's name (senders may use it instead of the id)."),
        "kommune_code": (CODE, "Kommune of the plan."),
        "start_date": (DATE, "First day of the plan; its own years start with the first whole year."),
        "end_date": (DATE, "Last day of the plan."),
        "baseline_year": (pl.Int32, "Year the plan's development is measured from (LBF's rule); default the year before it starts.")}),
    "plan_areas": ReferenceTable("Which areas each plan covers.", {
        "plan_id": (TEXT, "Plan id."),
        "area_id": (TEXT, "Area id.")}),
    "departments": ReferenceTable("Housing departments (boligorganisation, afdeling) and the area each belongs to, with validity.", {
        "boligorganisation": (TEXT, "The housing organisation as spelled here (senders' spellings are matched to it)."),
        "afdeling": (pl.Int64, "Department number."),
        "area_id": (TEXT, "Area the department belongs to while valid."),
        "valid_from": (DATE, "First day of membership."),
        "valid_to": (DATE, "Last day of membership; empty while it lasts."),
        "note": (TEXT, "Free text, e.g. a department's name or why it left.")}),
    "indicators": ReferenceTable("The indicator catalog: what each indicator means and how it is computed.", {
        "indicator": (TEXT, "Catalog id used in every mart."),
        "definition": (TEXT, "What the indicator measures."),
        "unit": (TEXT, "pct, per_1000, count, grade or kr."),
        "direction": (TEXT, "higher or lower: which way is better."),
        "source": (TEXT, "The source (landing folder) that delivers its measures."),
        "numerator_measure": (TEXT, "Measure (core.measures) summed as numerator."),
        "denominator_measure": (TEXT, "Measure summed as denominator; empty for counts."),
        "scale": (pl.Float64, "Factor applied to numerator / denominator (100 for pct, 1000 for per_1000)."),
        "delivered_measure": (TEXT, "Measure holding a rate delivered ready-made (no weights), used where there is no numerator."),
        "person_based": (pl.Boolean, "Whether it describes persons, so that disclosure control applies (ref.disclosure)."),
        "levels": (TEXT, "Levels it is published at, comma-separated.")}),
    "disclosure": ReferenceTable("Disclosure control settings for person-based indicators.", {
        "setting": (TEXT, "min_denominator, small_numerator_min or small_numerator_max."),
        "value": (pl.Float64, "The setting's value."),
        "meaning": (TEXT, "What it means.")}),
    "targets": ReferenceTable("The agreements' targets (succeskriterier), each with the section it comes from.", {
        "plan_id": (TEXT, "Plan whose agreement sets the target."),
        "target_id": (TEXT, "Target id within the plan, numbered as in the agreement."),
        "indicator": (TEXT, "Catalog id that measures it; empty when no source delivers the measure yet."),
        "level": (TEXT, "area, plan or bydel."),
        "scope_id": (TEXT, "Area, plan or bydel id."),
        "rule": (TEXT, "How it is judged (marts.target_status.rule)."),
        "target_value": (pl.Float64, "Threshold, or the yearly change (-0.10 is 10 % down) for change rules."),
        "reference_level": (TEXT, "Level of the reference value for above_reference."),
        "reference_scope_id": (TEXT, "Scope of the reference value for above_reference, e.g. sub."),
        "baseline_year": (pl.Int32, "Baseline year of baseline and change rules (and the reference year, see reading)."),
        "first_year": (pl.Int32, "First year judged (within the plan's own years)."),
        "last_year": (pl.Int32, "Last year judged."),
        "description": (TEXT, "The target in the agreement's words (Danish)."),
        "reading": (TEXT, "The reading in force where the agreement leaves a choice: for above_reference baseline_year or same_year."),
        "provisional": (pl.Boolean, "True when the agreement leaves the target to be set later."),
        "source": (TEXT, "Document and section of the agreement (seeds), e.g. 003 §5.2."),
        "data_source": (TEXT, "The data source the agreement names.")}),
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
    columns = {column: dtype for column, (dtype, _) in REFERENCE_TABLES[name].columns.items()}
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


# What the reference data must hold together: (table, what, SQL finding the offending rows). Run on the
# tables as read, in an in-memory DuckDB, before a run changes anything.
REFERENCE_CHECKS = [
    ("kommuner", "a kommune code twice", "SELECT kommune_code FROM kommuner GROUP BY 1 HAVING count(*) > 1"),
    ("areas", "an area id twice", "SELECT area_id FROM areas GROUP BY 1 HAVING count(*) > 1"),
    ("areas", "an area without id or name, or with an unknown kommune (a short row?)",
     "SELECT coalesce(area_id, '(empty)') FROM areas WHERE area_id IS NULL OR name IS NULL "
     "OR coalesce(kommune_code, '') NOT IN (SELECT kommune_code FROM kommuner)"),
    ("bydele", "a bydel id twice or with an unknown kommune",
     "SELECT bydel_id FROM bydele GROUP BY bydel_id HAVING count(*) > 1 OR bool_or(coalesce(kommune_code, '') NOT IN (SELECT kommune_code FROM kommuner))"),
    ("plans", "a plan id twice, or ending before it starts",
     "SELECT plan_id FROM plans GROUP BY plan_id HAVING count(*) > 1 OR bool_or(end_date < start_date OR start_date IS NULL)"),
    ("plan_areas", "a plan or area that does not exist",
     "SELECT plan_id || '/' || area_id FROM plan_areas WHERE plan_id NOT IN (SELECT plan_id FROM plans) "
     "OR area_id NOT IN (SELECT area_id FROM areas) OR plan_id IS NULL OR area_id IS NULL"),
    ("departments", "a department of an unknown area, or listed twice for the same start",
     "SELECT boligorganisation || ' ' || afdeling FROM departments GROUP BY boligorganisation, afdeling, valid_from "
     "HAVING count(*) > 1 OR bool_or(area_id IS NULL OR area_id NOT IN (SELECT area_id FROM areas))"),
    ("scope_aliases", "an alias for an unknown area or bydel, or a level that does not exist",
     "SELECT alias FROM scope_aliases WHERE level NOT IN ('area', 'bydel', 'kommune', 'national') "
     "OR (level = 'area' AND coalesce(scope_id, '') NOT IN (SELECT area_id FROM areas)) "
     "OR (level = 'bydel' AND coalesce(scope_id, '') NOT IN (SELECT bydel_id FROM bydele)) OR alias IS NULL"),
    ("scope_aliases", "an alias that names two places",
     "SELECT any_value(alias) FROM scope_aliases GROUP BY lower(trim(alias)) HAVING count(DISTINCT (level, coalesce(scope_id, ''))) > 1"),
    ("indicators", "an indicator twice, or without unit, direction or numerator",
     "SELECT coalesce(indicator, '(empty)') FROM indicators GROUP BY indicator HAVING count(*) > 1 OR indicator IS NULL "
     "OR bool_or(unit NOT IN ('pct', 'per_1000', 'count', 'grade', 'kr') OR direction NOT IN ('higher', 'lower') "
     "OR coalesce(numerator_measure, delivered_measure) IS NULL)"),
    ("targets", "a target twice for the same scope, or of an indicator the catalog lacks",
     "SELECT plan_id || '/' || target_id FROM targets GROUP BY plan_id, target_id, scope_id "
     "HAVING count(*) > 1 OR bool_or(indicator IS NOT NULL AND indicator NOT IN (SELECT indicator FROM indicators))"),
    ("disclosure", "a missing setting",
     "SELECT s FROM (VALUES ('min_denominator'), ('small_numerator_min'), ('small_numerator_max')) AS t(s) "
     "WHERE s NOT IN (SELECT setting FROM disclosure WHERE value IS NOT NULL)"),
]


def reference_files(reference_dir: Path) -> list[Path]:
    """The files what is read from the reference data is kept under (transforms/file_versions.py)."""
    return sorted(Path(reference_dir).glob("*.csv"))


@kept_per_version(reference_files)  # a served worker checks them once per version, not at every run (0.07 s)
def check_reference_tables(reference_dir: Path) -> None:
    """Read every reference file and check they hold together (keys, references, completeness), so a
    broken or contradictory one stops a run before it has done anything."""
    import duckdb

    tables = {name: read_reference_table(reference_dir, name) for name in REFERENCE_TABLES}
    with duckdb.connect() as conn:
        for name, frame in tables.items():
            conn.register(name, frame)
        for name, what, query in REFERENCE_CHECKS:
            found = [str(row[0]) for row in conn.execute(query).fetchall()]
            if found:
                raise ReferenceDataError(f"reference file {Path(reference_dir) / f'{name}.csv'}: {what}: "
                                         + ", ".join(found[:5]) + (" ..." if len(found) > 5 else ""))


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
        for year in years:
            areas |= self._department_areas_of_year(year)
        return areas

    @cached_property
    def _department_areas_by_year(self) -> dict[int, dict[str, str]]:
        return {}  # filled per year as files ask: every delivery of departments asks for the same few years

    def _department_areas_of_year(self, year: int) -> dict[str, str]:
        if not dt.MINYEAR <= year <= dt.MAXYEAR:  # a mistyped year (20199) belongs nowhere; the suite quarantines it
            return {}
        if year not in self._department_areas_by_year:
            day = dt.date(year, *MEMBERSHIP_DAY)
            self._department_areas_by_year[year] = {
                f"{org_key}|{afdeling}|{year}": area_id for org_key, afdeling, area_id, valid_from, valid_to in self.memberships
                if valid_from <= day <= (valid_to or dt.date.max)}
        return self._department_areas_by_year[year]


def load_reference(reference_dir: Path | str = DEFAULT_REFERENCE_DIR) -> Reference:
    """The reference data as of the files' current content (re-read when a steward edits them)."""
    return _read_reference(reference_dir)


@kept_per_version(reference_files)
def _read_reference(reference_dir: Path) -> Reference:
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


# --- the warehouse's own reference data --------------------------------------------------------------
# Stewards edit the reference data of *their* warehouse: `<warehouse>_reference/` beside FILE, made from
# warehouse/reference the first time a command needs it. A copy of the defaults it was made from (or last
# brought up to date with) is kept in its `.defaults/`, so that a later change of a shipped default is
# reported (`boligdata status`, the run's output, `boligdata reference diff`) and never applied over a
# local edit.

DEFAULTS_SNAPSHOT = ".defaults"


def warehouse_reference_dir(warehouse: Path) -> Path:
    warehouse = Path(warehouse)
    return warehouse.with_name(f"{warehouse.stem}_reference")


def _copy_defaults(folder: Path, names: list[str]) -> None:
    import shutil

    snapshot = folder / DEFAULTS_SNAPSHOT
    snapshot.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(DEFAULT_REFERENCE_DIR / name, snapshot / name)


def reference_for(warehouse: Path, given: Path | str | None = None, create: bool = True) -> Path:
    """The reference folder a command uses: --reference if given, else the warehouse's own folder,
    initialised from the defaults the first time (when CREATE)."""
    if given:
        return Path(given).resolve()
    folder = warehouse_reference_dir(Path(warehouse).resolve())
    if not folder.exists() and create:
        import shutil

        partial = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(DEFAULT_REFERENCE_DIR, partial)
        _copy_defaults(partial, sorted(p.name for p in DEFAULT_REFERENCE_DIR.glob("*.csv")))
        (partial / "README.txt").write_text(
            "Reference data of this warehouse (boligdata run, retry, serve and the deployments read it).\n"
            "Edit the ;-separated files here (keep this folder under version control if you like);\n"
            "`boligdata reference diff --warehouse FILE` shows how they differ from the shipped defaults.\n"
            ".defaults/ holds the defaults this folder was made from: do not edit it.\n", encoding="utf-8")
        partial.rename(folder)
    return folder


@dataclass(frozen=True)
class DefaultChange:
    file: str
    locally_edited: bool  # the steward's file differs from the defaults it was made from

    def describe(self) -> str:
        if self.locally_edited:
            return (f"the shipped default {self.file} changed since this warehouse's copy was made, and the copy has local "
                    "edits: not applied (see `boligdata reference diff`)")
        return f"the shipped default {self.file} changed since this warehouse's copy was made: not applied (see `boligdata reference diff`)"


def changed_defaults(folder: Path) -> list[DefaultChange]:
    """Shipped default files that differ from the ones FOLDER was made from (nothing for a folder
    given with --reference that has no .defaults/, nor for the defaults themselves)."""
    folder = Path(folder)
    snapshot = folder / DEFAULTS_SNAPSHOT
    if folder.resolve() == DEFAULT_REFERENCE_DIR or not snapshot.is_dir():
        return []
    changes = []
    for default in sorted(DEFAULT_REFERENCE_DIR.glob("*.csv")):
        made_from = snapshot / default.name
        if made_from.exists() and made_from.read_bytes() == default.read_bytes():
            continue
        local = folder / default.name
        edited = local.exists() and (not made_from.exists() or local.read_bytes() != made_from.read_bytes())
        changes.append(DefaultChange(default.name, edited))
    return changes


def reference_diff(folder: Path) -> str:
    """A unified diff per file: the shipped defaults (a/) against this folder (b/)."""
    import difflib

    folder = Path(folder)
    out = []
    names = sorted({p.name for p in DEFAULT_REFERENCE_DIR.glob("*.csv")} | {p.name for p in folder.glob("*.csv")})
    for name in names:
        a, b = DEFAULT_REFERENCE_DIR / name, folder / name
        a_lines = a.read_text(encoding="utf-8").splitlines(keepends=True) if a.exists() else []
        b_lines = b.read_text(encoding="utf-8").splitlines(keepends=True) if b.exists() else []
        out += difflib.unified_diff(a_lines, b_lines, f"defaults/{name}", f"{folder.name}/{name}")
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def adopt_defaults(folder: Path, names: list[str] | None = None) -> list[str]:
    """Take the shipped defaults of NAMES (default: every changed file without a local edit) into the
    folder, and record them as the defaults it is made from; returns the files taken."""
    import shutil

    changes = {c.file: c for c in changed_defaults(folder)}
    names = names if names is not None else [n for n, c in changes.items() if not c.locally_edited]
    for name in names:
        if not (DEFAULT_REFERENCE_DIR / name).exists():
            raise ReferenceDataError(f"no shipped default {name}; defaults: "
                                     + ", ".join(sorted(p.name for p in DEFAULT_REFERENCE_DIR.glob('*.csv'))))
        shutil.copyfile(DEFAULT_REFERENCE_DIR / name, Path(folder) / name)
    _copy_defaults(Path(folder), names)
    return names


@contextlib.contextmanager
def undone_on_failure(edits: list[tuple[Path, bytes, bytes]]) -> Iterator[None]:
    """The reference edits the block records in EDITS ((path, before, after), see add_alias) put back if
    the block fails (its recording, retry or publish), each only while the file still holds what the
    edit wrote: an edit someone made meanwhile is never undone."""
    try:
        yield
    except BaseException:
        for path, before, after in reversed(edits):
            with contextlib.suppress(OSError):
                if path.read_bytes() == after:
                    write_whole(path, before)
        raise


def add_alias(folder: Path, alias: str, scope_id: str, edits: list | None = None) -> str:
    """Add ALIAS (a spelling a sender uses) for the area or bydel SCOPE_ID to the folder's
    scope_aliases.csv, the steward's usual fix for an unknown area, and check the reference data with
    it (the file is put back if the check fails). Returns the line added; the edit is appended to EDITS
    for undone_on_failure."""
    alias = " ".join(alias.split())
    if not alias or any(c in alias for c in ';"'):
        raise ReferenceDataError("an alias is a name as delivered: not empty, without ; or \"")
    known = load_reference(folder).scopes_by_label.get(normalize_label(alias))
    if known is not None:
        raise ReferenceDataError(f"{alias!r} is known already: it stands for {known.level} {known.scope_id or 'Hele kommunen'}")
    levels = {row: level for level, table, column in (("area", "areas", "area_id"), ("bydel", "bydele", "bydel_id"))
              for row in read_reference_table(folder, table)[column]}
    if scope_id not in levels:
        raise ReferenceDataError(f"no area or bydel with id {scope_id!r} in {Path(folder) / 'areas.csv'} or bydele.csv")
    path = Path(folder) / "scope_aliases.csv"
    line = f"{alias};{levels[scope_id]};{scope_id}"
    before = path.read_bytes()
    after = before + (b"" if before.endswith(b"\n") else b"\n") + f"{line}\n".encode("utf-8")
    write_whole(path, after)
    try:
        check_reference_tables(folder)
    except ReferenceDataError:
        write_whole(path, before)
        raise
    if edits is not None:
        edits.append((path, before, after))
    return line


def acknowledge_defaults(folder: Path, names: list[str]) -> None:
    """Keep the local files of NAMES as they are and stop reporting the shipped change."""
    _copy_defaults(Path(folder), names)
