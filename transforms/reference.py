"""Reference data the project owns and stewards may edit: kommuner, areas and their aliases, plans,
department membership. Kept as `;`-separated CSV files (warehouse/reference by default) and copied
into the warehouse's `ref` schema on every run."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from transforms.contracts import normalize_label

DEFAULT_REFERENCE_DIR = Path(__file__).resolve().parents[1] / "warehouse" / "reference"

# file stem -> column types (everything else is text)
REFERENCE_TABLES: dict[str, dict[str, pl.DataType]] = {
    "kommuner": {"kommune_code": pl.Utf8},
    "areas": {"kommune_code": pl.Utf8},
    "scope_aliases": {},
    "plans": {"kommune_code": pl.Utf8, "start_date": pl.Date, "end_date": pl.Date},
    "plan_areas": {},
    "departments": {"afdeling": pl.Int64, "valid_from": pl.Date, "valid_to": pl.Date},
    "indicators": {"scale": pl.Float64},
}


def read_reference_table(reference_dir: Path, name: str) -> pl.DataFrame:
    path = Path(reference_dir) / f"{name}.csv"
    frame = pl.read_csv(path, separator=";", infer_schema=False, encoding="utf8")
    casts = [
        pl.col(column).str.strptime(dtype, "%Y-%m-%d") if dtype == pl.Date else pl.col(column).cast(dtype)
        for column, dtype in REFERENCE_TABLES[name].items()
    ]
    return frame.with_columns(casts) if casts else frame


@dataclass(frozen=True)
class Scope:
    level: str  # area, kommune or national
    scope_id: str | None  # area id, national level id; None for kommune (the row's own code)


# kommune_noegletal rows that are denominators rather than catalog indicators (spec/extracts.md)
POPULATION_MEASURES = ("befolkning", "befolkning_15_29", "befolkning_18plus")


@dataclass(frozen=True)
class Reference:
    kommune_codes: frozenset[int]
    scopes_by_label: dict[str, Scope]  # normalized alias -> scope
    municipal_indicators: frozenset[str]  # what kommune_noegletal's Indikator may hold

    def resolve_scope(self, label: str | None) -> Scope | None:
        if label is None:
            return None
        return self.scopes_by_label.get(normalize_label(label))


@cache
def _load_reference(reference_dir: Path, stamp: tuple[float, ...]) -> Reference:
    kommuner = read_reference_table(reference_dir, "kommuner")
    aliases = read_reference_table(reference_dir, "scope_aliases")
    scopes = {normalize_label(row["alias"]): Scope(row["level"], row["scope_id"]) for row in aliases.iter_rows(named=True)}
    # An area's id and display name are always accepted, so aliases only list the variants.
    for row in read_reference_table(reference_dir, "areas").iter_rows(named=True):
        for label in (row["area_id"], row["name"]):
            scopes.setdefault(normalize_label(label), Scope("area", row["area_id"]))
    indicators = read_reference_table(reference_dir, "indicators")
    municipal = indicators.filter(pl.col("source") == "kommune_noegletal")["indicator"]
    return Reference(
        kommune_codes=frozenset(int(code) for code in kommuner["kommune_code"]),
        scopes_by_label=scopes,
        municipal_indicators=frozenset([*municipal, *POPULATION_MEASURES]),
    )


def load_reference(reference_dir: Path | str = DEFAULT_REFERENCE_DIR) -> Reference:
    """The reference data as of the files' current content (re-read when a steward edits them)."""
    reference_dir = Path(reference_dir).resolve()
    stamp = tuple(p.stat().st_mtime for p in sorted(reference_dir.glob("*.csv")))
    return _load_reference(reference_dir, stamp)
