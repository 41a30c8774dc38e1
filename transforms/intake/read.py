"""Landing file -> text rows: decode, parse, map headers to the contract's canonical column names.

Everything stays text here (typing is staging's job) so that what the sender wrote is kept exactly,
each row with its 1-based line number in the file (the header is line 1).
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from transforms.intake.personal_data import CPR_SHAPE, cpr_like, holds_cpr
from transforms.ledger.deliveries import XLSX_MAGIC
from transforms.sources import Contract, normalize_label

DEFAULT_MAX_INFLATED_BYTES = 256 << 20  # what an XLSX's parts may inflate to; BOLIGDATA_MAX_INFLATED_BYTES overrides
DEFAULT_MAX_ROWS = 10_000_000  # lines of one CSV delivery; BOLIGDATA_MAX_ROWS overrides
DEFAULT_MAX_FILE_BYTES = 1 << 30  # 1 GiB; BOLIGDATA_MAX_FILE_BYTES overrides
CPR_REASON = "extracts must carry no personal data"
UTF8_BOM = b"\xef\xbb\xbf"
# Bytes that Windows-1252 leaves undefined; a file containing them can only be ISO-8859-1.
CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")


class RejectedFile(Exception):
    """The whole delivery is refused; the message is the reason the steward reads."""


@dataclass(frozen=True)
class TextRows:
    frame: pl.DataFrame  # line_number + one Utf8 column per contract column
    encoding: str  # utf-8, utf-8-sig, cp1252, iso-8859-1 or xlsx
    warnings: tuple[str, ...] = ()  # what was delivered but not read (columns the contract does not know)


def _decoded(data: bytes, keep_text: bool = True) -> tuple[str, str | None]:
    """(encoding, text) of a delivered file's bytes: the decision of detect_encoding and, if KEEP_TEXT,
    the text, decoded once (a UTF-8 file is decoded to know that it is one)."""
    if data.startswith(UTF8_BOM):
        return "utf-8-sig", data.decode("utf-8-sig") if keep_text else None
    try:
        return "utf-8", data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # a byte search each, not a Python loop over the file
    encoding = "iso-8859-1" if any(byte in data for byte in CP1252_UNDEFINED) else "cp1252"
    return encoding, data.decode(encoding) if keep_text else None


def detect_encoding(data: bytes) -> str:
    """Decide from the bytes, never from the file name: UTF-8 if they decode as UTF-8, else the
    Windows code page Danish senders use, unless bytes only ISO-8859-1 defines occur."""
    return _decoded(data, keep_text=False)[0]


def _parse_csv(data: bytes) -> tuple[pl.DataFrame, str]:
    encoding, text = _decoded(data)
    if "\x00" in text:
        raise RejectedFile("not a text file: it contains NUL bytes")
    if not text or text.isspace():  # not text.strip(): no copy of the file's text
        raise RejectedFile("empty file")
    start = len(text) - len(text.lstrip("\ufeff"))  # lstrip copies nothing when there is nothing to strip
    end = text.find("\n", start)
    header = text[start:end if end >= 0 else None]
    if header.count('"') % 2:  # the CSV reader would read the rest of the file as one quoted header
        raise RejectedFile('the header line has an unclosed quote ("), which would swallow the rows below it; '
                           "remove or close it")
    # polars reads UTF-8: the delivered bytes where they are (UTF-8 is what most deliveries are), else transcoded
    utf8 = data.removeprefix(UTF8_BOM) if encoding.startswith("utf-8") else text.encode("utf-8")
    try:
        frame = pl.read_csv(
            io.BytesIO(utf8),
            separator=";",
            infer_schema=False,
            raise_if_empty=True,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as error:
        # polars quotes the line it could not parse: a CPR-like value must not reach the reason that way
        cpr = _cpr_like_in_lines(text)
        if cpr:
            raise reject_cpr_like(cpr) from None
        # polars' message quotes delivered content, which may be personal: the reason never does
        raise RejectedFile("unreadable CSV: a row does not split into the header's columns (an unclosed quote, "
                           "or more fields than the header); the content is not repeated") from error
    return frame, encoding


def _parse_xlsx(path: Path) -> dict[str, pl.DataFrame]:
    """Every sheet by name, in workbook order: the first is read, the others only checked for personal data."""
    try:
        sheets = pl.read_excel(path, sheet_id=0, engine="calamine", infer_schema_length=0, raise_if_empty=False)
    except Exception as error:  # calamine raises its own error types for every kind of broken workbook
        raise RejectedFile(f"unreadable XLSX: {str(error).strip().splitlines()[0]}") from error
    if not sheets:
        raise RejectedFile("unreadable XLSX: the workbook has no sheet")
    return sheets


def max_file_bytes() -> int:
    return _limit("BOLIGDATA_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)


def _limit(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _check_inflation(path: Path, data: bytes, is_xlsx: bool) -> None:
    """Bound what a delivery may grow into before it is parsed, so memory stays bounded by configuration:
    an XLSX is a zip whose sheets may inflate a thousandfold (a 527 KB file to 512 MiB), and a CSV's
    rows become frame rows. Reject, with the reason, what exceeds the limits."""
    rows_limit = _limit("BOLIGDATA_MAX_ROWS", DEFAULT_MAX_ROWS)
    if is_xlsx:
        inflated_limit = _limit("BOLIGDATA_MAX_INFLATED_BYTES", DEFAULT_MAX_INFLATED_BYTES)
        try:
            with zipfile.ZipFile(path) as workbook:
                inflated = sum(entry.file_size for entry in workbook.infolist())
        except (zipfile.BadZipFile, OSError) as error:
            raise RejectedFile(f"unreadable XLSX: {error}") from error
        if inflated > inflated_limit:
            raise RejectedFile(f"XLSX inflates to {inflated:,} bytes, over the limit of {inflated_limit:,} "
                               "(BOLIGDATA_MAX_INFLATED_BYTES)")
        return
    rows = data.count(b"\n")
    if rows > rows_limit:
        raise RejectedFile(f"file has {rows:,} lines, over the limit of {rows_limit:,} (BOLIGDATA_MAX_ROWS)")


def _delivered_header(frame: pl.DataFrame, index: int) -> str:
    """A column's header in words for a reason or a warning, as delivered where the reader kept it."""
    name = frame.columns[index]
    original, _, number = name.rpartition("_duplicated_")  # polars renames a repeated header
    if original in frame.columns and number.isdigit():
        name = original
    if not name.strip() or name.startswith("__UNNAMED__"):  # calamine's name for a cell left empty
        return f"column {index + 1} (no header)"
    return f"column {name!r}"


def first_cpr_like(frame: pl.DataFrame, where: str = "") -> str | None:
    """Where the first CPR-like value of a parsed file (sheet) is, in words, or None: a header, else
    the column and line of the first such value; the value itself is never part of the answer."""
    in_headers = cpr_like(frame.columns)
    if in_headers.any():
        return f"{where}a header (column {in_headers.arg_true()[0] + 1}, line 1)"
    if frame.width == 0 or frame.height == 0:
        return None
    # one pass over every column for the shape; dates are checked only in the cells where it occurs
    text = frame.select(pl.all().cast(pl.Utf8)).with_row_index("line", offset=2)
    shaped = text.select(pl.all().exclude("line").str.contains(CPR_SHAPE).any()).row(0)
    first: tuple[int, int] | None = None  # (line, column index)
    for index, header in enumerate(frame.columns):
        if not shaped[index]:
            continue
        hits = text.filter(pl.col(header).str.contains(CPR_SHAPE)).filter(holds_cpr(pl.col(header)))
        if hits.height and (first is None or hits["line"][0] < first[0]):
            first = (hits["line"][0], index)
    if first is None:
        return None
    return f"{where}{_delivered_header(frame, first[1])}, first at line {first[0]}"


def _cpr_like_in_lines(text: str) -> str | None:
    """For a CSV polars cannot parse: the first CPR-like value by line, and its column if the header
    names it (fields split at ;)."""
    lines = pl.Series(text.splitlines(), dtype=pl.Utf8)
    found = cpr_like(lines)
    if not found.any():
        return None
    index = found.arg_true()[0]
    if index == 0:
        return "a header (line 1)"
    fields = cpr_like(lines[int(index)].split(";"))
    headers = lines[0].lstrip("\ufeff").split(";")
    position = int(fields.arg_true()[0]) if fields.any() else None  # a quoted ; may hide it
    if position is not None and position < len(headers) and headers[position].strip():
        return f"column {headers[position]!r}, first at line {index + 1}"
    return f"line {index + 1}"


def _first_cpr_like_in_sheets(sheets: dict[str, pl.DataFrame]) -> str | None:
    """first_cpr_like over every sheet of a workbook (a CSV is one sheet without a name), names first."""
    in_names = cpr_like(list(sheets))
    if in_names.any():
        return f"a sheet name (sheet {in_names.arg_true()[0] + 1})"
    for name, sheet in sheets.items():
        found = first_cpr_like(sheet, f"sheet {name!r}, " if len(sheets) > 1 else "")
        if found:
            return found
    return None


def reject_cpr_like(where: str) -> RejectedFile:
    return RejectedFile(f"CPR-like values (personal data) in {where}; {CPR_REASON} (the value is not repeated)")


def _map_headers(frame: pl.DataFrame, contract: Contract) -> tuple[pl.DataFrame, list[str]]:
    """Rename known headers to canonical names; columns the contract does not know are not kept, and
    are named (as delivered) for the steward, unless they have neither a header nor a value."""
    by_header = {header: column.name for column in contract.columns for header in column.accepted_headers()}
    renames: dict[str, str] = {}
    unknown: list[str] = []
    for index, header in enumerate(frame.columns):
        canonical = by_header.get(normalize_label(header))
        if canonical is None:
            words = _delivered_header(frame, index)
            if not words.endswith("(no header)") or frame[header].cast(pl.Utf8).str.strip_chars().drop_nulls().str.len_chars().sum():
                unknown.append(words)
            continue
        if canonical in renames.values():
            raise RejectedFile(f"column {contract.column(canonical).header!r} appears twice in the header")
        else:
            renames[header] = canonical
    missing = [c.header for c in contract.columns if c.name not in renames.values()]
    if missing:
        raise RejectedFile("missing required column(s): " + ", ".join(missing))
    frame = frame.select(pl.col(h).alias(c) for h, c in renames.items())
    return frame.select(c.name for c in contract.columns), unknown


def read_text_rows(path: Path, contract: Contract) -> TextRows:
    """Parse a landed file into text rows keyed by line number, or raise RejectedFile."""
    path = Path(path)
    size, limit = path.stat().st_size, max_file_bytes()
    if size > limit:
        raise RejectedFile(f"file is {size:,} bytes, over the limit of {limit:,} (BOLIGDATA_MAX_FILE_BYTES)")
    data = path.read_bytes()
    if not data or data.isspace():  # not data.strip(): no copy of the file
        raise RejectedFile("empty file")
    _check_inflation(path, data, data.startswith(XLSX_MAGIC))
    if data.startswith(XLSX_MAGIC):
        if "xlsx" not in contract.formats:
            raise RejectedFile(f"XLSX is not accepted for {contract.source}; deliver ;-separated CSV")
        sheets, encoding = _parse_xlsx(path), "xlsx"
    else:
        frame, encoding = _parse_csv(data)
        sheets = {"": frame}
    # personal data anywhere (every column, known or not, every header, every sheet) refuses the file
    # before anything of it is kept beyond the archive copy; the value itself is never repeated
    cpr = _first_cpr_like_in_sheets(sheets)
    if cpr:
        raise reject_cpr_like(cpr)
    (_, frame), *other_sheets = sheets.items()
    if frame.height == 0:
        raise RejectedFile("no data rows below the header")
    frame, unknown = _map_headers(frame, contract)
    warnings = []
    if unknown:
        warnings.append(f"not loaded, the contract does not know them: {', '.join(unknown)}")
    unread = [name for name, sheet in other_sheets if sheet.width]
    if unread:
        warnings.append(f"not read, only the first sheet is: sheet(s) {', '.join(map(repr, unread))}")
    frame = frame.with_columns(pl.col(c).cast(pl.Utf8) for c in frame.columns)
    frame = frame.with_row_index("line_number", offset=2).with_columns(pl.col("line_number").cast(pl.Int64))
    return TextRows(frame=frame, encoding=encoding, warnings=tuple(warnings))
