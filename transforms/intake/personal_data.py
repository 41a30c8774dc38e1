"""What counts as a CPR number (personal data, never stored or repeated), for file contents and names alike.

A CPR-like value is DDMMYY-XXXX or DDMMYYXXXX whose first six digits are a real date DDMMYY, alone or
inside text, where it is not part of a longer number. Senders' tools write it in many ways, all
detected: with a space or any dash (en dash, non-breaking hyphen, minus) instead of the hyphen, in
digit pairs (`15 05 85 11 15`), in full-width digits. CPR_SHAPE is the cheap test over every cell
(Unicode digits, any of those separators); the date is checked only where it matches (holds_cpr),
on the value with its digits normalized and its separators between digits removed."""

from __future__ import annotations

import polars as pl

_SEPARATOR = r"[\s\-\u2010-\u2015\u2212\u00ad]"
CPR_SHAPE = (rf"(?:^|\D)\d\d{_SEPARATOR}?\d\d{_SEPARATOR}?\d\d{_SEPARATOR}{{0,3}}\d\d{_SEPARATOR}?\d\d(?:\D|$)")


def holds_cpr(values: pl.Expr) -> pl.Expr:
    """Per text value: does it hold a CPR-like number? Meant for the few values whose shape already
    matched. The regex engine has no look-around, so a match consumes the non-digit on each side of it;
    each non-digit is doubled first, so that two numbers one character apart are both found."""
    digits = values.str.normalize("NFKC").str.replace_all(rf"(\d){_SEPARATOR}+(\d)", "${1}${2}")
    doubled = digits.str.replace_all(r"(\D)", "${1}${1}")
    found = doubled.str.extract_all(r"(?:^|\D)\d{10}(?:\D|$)")
    birth_dates = pl.element().str.replace_all(r"\D", "").str.slice(0, 6).str.strptime(pl.Date, "%d%m%y", strict=False)
    return found.list.eval(birth_dates.is_not_null().any()).list.first().fill_null(False)


def cpr_like(values: list[str] | pl.Series) -> pl.Series:
    """Per value (a header, a name, a line): does it hold a CPR-like number? The date check runs only if
    a value has the shape: every delivery's headers and sheet names pass here, and the check costs
    0.3 ms a call even for none."""
    values = pl.Series("v", values, dtype=pl.Utf8)
    shaped = values.str.contains(CPR_SHAPE).fill_null(False)
    if not shaped.any():
        return shaped
    return shaped & values.to_frame().select(holds_cpr(pl.col("v")))["v"]


def cpr_like_names(names: list[str]) -> set[str]:
    """The names (of files and folders) that hold a CPR-like number; all in one pass, as a landing
    folder lists hundreds."""
    return set(pl.Series(names, dtype=pl.Utf8).filter(cpr_like(names)).to_list())
