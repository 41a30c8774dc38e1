"""Source contracts: one declarative module per landing folder (spec/extracts.md).

A contract names the folder, its columns (canonical name, the header the sender uses, accepted
aliases, type), the column that holds the reporting level (Område) and the partition key. The rules a
row must satisfy live beside it, in the source's Great Expectations suite
(`expectations/<source>.json`). Adding a source is one module here plus that suite.
"""

from __future__ import annotations

import importlib
import pkgutil
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import polars as pl

ColumnType = Literal["text", "int", "decimal", "date"]

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"


def normalize_label(label: str) -> str:
    """How headers and place names are compared: NFC, case-folded, inner whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", label).casefold().split())


def label_key(text: pl.Expr) -> pl.Expr:
    """normalize_label for a column of text."""
    return text.str.normalize("NFC").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


@dataclass(frozen=True)
class Column:
    name: str  # canonical snake_case name used in every warehouse layer
    header: str  # the spelling extracts.md gives
    type: ColumnType
    description: str
    aliases: tuple[str, ...] = ()  # further header spellings accepted from senders

    def accepted_headers(self) -> set[str]:
        return {normalize_label(h) for h in (self.header, *self.aliases)}


# Columns several senders share, spelled once.
AAR = Column("aar", "År", "int", "Calendar year of the figures.", aliases=("Aar", "Year"))
KOMMUNEKODE = Column("kommunekode", "Kommunekode", "int", "Danish kommune code.", aliases=("Kommune",))
OMRAADE = Column("omraade", "Område", "text", "Area name or alias, or `Hele kommunen`.", aliases=("Omraade",))


@dataclass(frozen=True)
class Contract:
    source: str  # the landing folder name
    description: str
    columns: tuple[Column, ...]
    # Columns whose values form the partition key; "year:<col>" / "month:<col>" derive it from a date.
    partition_by: tuple[str, ...]
    scope_column: str | None = "omraade"  # holds an area, `Hele kommunen`, or a national level
    # (organisation, department number) columns that place a row in an area through reference data
    department_columns: tuple[str, str] | None = None
    formats: tuple[str, ...] = ("csv",)
    # A column whose values must be unique across every delivery of the source (checked when loading).
    unique_across_deliveries: str | None = None
    # Helper columns computed from typed values for the suite's cross-column rules; not stored.
    rule_columns: dict[str, pl.Expr] = field(default_factory=dict)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def year_sql(self) -> str:
        """SQL for the calendar year a staged row speaks for (År, or the year of its event date)."""
        if any(c.name == "aar" for c in self.columns):
            return "aar"
        dated = next(part.rpartition(":")[2] for part in self.partition_by if ":" in part)
        return f"year({dated})"

    @property
    def suite_path(self) -> Path:
        return EXPECTATIONS_DIR / f"{self.source}.json"

    @property
    def raw_table(self) -> str:
        return f"raw.{self.source}"

    @property
    def staging_table(self) -> str:
        return f"staging.{self.source}"


@cache
def all_contracts() -> dict[str, Contract]:
    """Every contract module in this package, keyed by its landing folder name."""
    contracts = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        contract = module.CONTRACT
        contracts[contract.source] = contract
    return contracts


def contract_for(source: str) -> Contract | None:
    return all_contracts().get(source)
