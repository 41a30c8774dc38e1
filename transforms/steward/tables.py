"""How list and show commands print: a table that fits a terminal (80 columns, numbers rounded for
people), or every value exact as JSON or CSV for scripts."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import sys
from collections.abc import Sequence

WIDTH = 80
FORMATS = ("table", "json", "csv")


def _plain(value):
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_json(data) -> str:
    return json.dumps(_plain(data), ensure_ascii=False, indent=1, default=str)


def to_csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else ("; ".join(map(str, row[c])) if isinstance(row[c], list) else
                                                        _plain(row[c])) for c in columns])
    return out.getvalue()


def _human(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}".replace(",", " ") if abs(value) >= 10000 else f"{value:.1f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return " ".join(str(value).split())


def to_table(rows: Sequence[dict], columns: Sequence[str], width: int = WIDTH, headers: dict[str, str] | None = None) -> str:
    """Columns padded to their content; the widest shrink (cut with …) until a line fits WIDTH."""
    headers = headers or {}
    names = [headers.get(c, c) for c in columns]
    cells = [[_human(row.get(c)) for c in columns] for row in rows]
    numeric = [all(isinstance(row.get(c), (int, float)) and not isinstance(row.get(c), bool) or row.get(c) is None
                   for row in rows) for c in columns]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    floor = [min(w, max(4, min(len(n), 8))) for w, n in zip(widths, names)]
    while sum(widths) + 2 * (len(widths) - 1) > width:
        shrinkable = [i for i, w in enumerate(widths) if w > floor[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1

    def cut(text: str, w: int) -> str:
        return text if len(text) <= w else text[: max(w - 1, 0)] + "…"

    def line(values: list[str]) -> str:
        return "  ".join(cut(v, w).rjust(w) if numeric[i] and values is not names else cut(v, w).ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return "\n".join([line(names), "  ".join("-" * w for w in widths)] + [line(r) for r in cells])


def emit(rows: Sequence[dict], columns: Sequence[str], fmt: str, empty: str, headers: dict[str, str] | None = None,
         json_data=None, stream=None) -> None:
    """Print ROWS as FMT. json prints JSON_DATA if given (a richer document), else the rows."""
    stream = stream or sys.stdout
    if fmt == "json":
        print(to_json(json_data if json_data is not None else [{c: r.get(c) for c in columns} for r in rows]), file=stream)
    elif fmt == "csv":
        stream.write(to_csv(rows, columns))
    elif not rows:
        print(empty, file=stream)
    else:
        print(to_table(rows, columns, headers=headers), file=stream)
