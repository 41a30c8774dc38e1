"""Landing file -> text rows: decode, parse, map headers to the contract's canonical column names.

Everything stays text here (typing is staging's job) so that what the sender wrote is kept exactly,
each row with its 1-based line number in the file (the header is line 1).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from transforms.sources import Contract, normalize_label

DEFAULT_MAX_FILE_BYTES = 1 << 30  # 1 GiB; BOLIGDATA_MAX_FILE_BYTES overrides
XLSX_MAGIC = b"PK\x03\x04"
# DDMMYY-XXXX or DDMMYYXXXX with a real date: a Danish CPR number (personal data, never stored)
_CPR = r"^\s*(\d{6})-?\d{4}\s*$"
UTF8_BOM = b"\xef\xbb\xbf"
# Bytes that Windows-1252 leaves undefined; a file containing them can only be ISO-8859-1.
CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")


class RejectedFile(Exception):
    """The whole delivery is refused; the message is the reason the steward reads."""


@dataclass(frozen=True)
class TextRows:
    frame: pl.DataFrame  # line_number + one Utf8 column per contract column
    encoding: str  # utf-8, utf-8-sig, cp1252, iso-8859-1 or xlsx


def detect_encoding(data: bytes) -> str:
    """Decide from the bytes, never from the file name: UTF-8 if they decode as UTF-8, else the
    Windows code page Danish senders use, unless bytes only ISO-8859-1 defines occur."""
    if data.startswith(UTF8_BOM):
        return "utf-8-sig"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if CP1252_UNDEFINED.intersection(data):
        return "iso-8859-1"
    return "cp1252"


def _parse_csv(data: bytes) -> tuple[pl.DataFrame, str]:
    encoding = detect_encoding(data)
    text = data.decode(encoding)
    if "\x00" in text:
        raise RejectedFile("not a text file: it contains NUL bytes")
    if not text.strip():
        raise RejectedFile("empty file")
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            separator=";",
            infer_schema=False,
            raise_if_empty=True,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise RejectedFile(f"unreadable CSV: {first_line}") from error
    return frame, encoding


def _parse_xlsx(path: Path) -> pl.DataFrame:
    try:
        return pl.read_excel(path, sheet_id=1, engine="calamine", infer_schema_length=0)
    except Exception as error:  # calamine raises its own error types for every kind of broken workbook
        raise RejectedFile(f"unreadable XLSX: {str(error).strip().splitlines()[0]}") from error


def max_file_bytes() -> int:
    return int(os.environ.get("BOLIGDATA_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES))


def _first_cpr_like(frame: pl.DataFrame) -> tuple[str, int] | None:
    """(header, line) of the first value that looks like a CPR number, in any column of the file."""
    # a cheap pattern test over every column at once; dates are parsed only where the pattern occurs
    shaped = frame.select(pl.col(h).cast(pl.Utf8).str.contains(_CPR).any() for h in frame.columns).row(0)
    for header in (h for h, found in zip(frame.columns, shaped) if found):
        digits = pl.col(header).cast(pl.Utf8).str.extract(_CPR, 1)
        birth_date = digits.str.strptime(pl.Date, "%d%m%y", strict=False)
        hits = frame.with_row_index("line", offset=2).filter(birth_date.is_not_null())
        if hits.height:
            return header, hits["line"][0]
    return None


def _map_headers(frame: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """Rename known headers to canonical names; columns the contract does not know are dropped."""
    by_header = {header: column.name for column in contract.columns for header in column.accepted_headers()}
    renames: dict[str, str] = {}
    for header in frame.columns:
        canonical = by_header.get(normalize_label(header))
        if canonical is None:
            continue
        if canonical in renames.values():
            raise RejectedFile(f"column {contract.column(canonical).header!r} appears twice in the header")
        else:
            renames[header] = canonical
    missing = [c.header for c in contract.columns if c.name not in renames.values()]
    if missing:
        raise RejectedFile("missing required column(s): " + ", ".join(missing))
    frame = frame.select(pl.col(h).alias(c) for h, c in renames.items())
    return frame.select(c.name for c in contract.columns)


def read_text_rows(path: Path, contract: Contract) -> TextRows:
    """Parse a landed file into text rows keyed by line number, or raise RejectedFile."""
    path = Path(path)
    size, limit = path.stat().st_size, max_file_bytes()
    if size > limit:
        raise RejectedFile(f"file is {size:,} bytes, over the limit of {limit:,} (BOLIGDATA_MAX_FILE_BYTES)")
    data = path.read_bytes()
    if not data.strip():
        raise RejectedFile("empty file")
    if data.startswith(XLSX_MAGIC):
        if "xlsx" not in contract.formats:
            raise RejectedFile(f"XLSX is not accepted for {contract.source}; deliver ;-separated CSV")
        frame, encoding = _parse_xlsx(path), "xlsx"
    else:
        frame, encoding = _parse_csv(data)
    if frame.height == 0:
        raise RejectedFile("no data rows below the header")
    cpr = _first_cpr_like(frame)
    if cpr:  # the value itself is never repeated: it is personal data
        raise RejectedFile(f"CPR-like values (personal data) in column {cpr[0]!r}, first at line {cpr[1]}; "
                           "extracts must carry no personal data")
    frame = _map_headers(frame, contract)
    frame = frame.with_columns(pl.col(c).cast(pl.Utf8) for c in frame.columns)
    frame = frame.with_row_index("line_number", offset=2).with_columns(pl.col("line_number").cast(pl.Int64))
    return TextRows(frame=frame, encoding=encoding)
