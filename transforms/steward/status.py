"""The steward's desk: one current view of everything open now, and its history.

Open now: rejected files that no later delivery of the same source and name has replaced (and that no
steward has dismissed), and open quarantine rows, by source and rule. Columns are named as the sender
wrote them (the header in the source's declaration); an unknown name gets the closest known names of
the reference data as a hint. Closed: who closed what, when and how (meta.quarantine resolved_*,
meta.steward_actions).

`status_page(...)` is the standing page `<warehouse>_reports/status.html`, rewritten by every command
that changes what is open (run, retry, waive, a reference edit through the desk); the per-run pages
stay as history."""

from __future__ import annotations

import datetime as dt
import difflib
import html
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import duckdb
import polars as pl

from transforms.file_versions import kept_per_version, write_whole
from transforms.reference import (
    DEFAULT_REFERENCE_DIR,
    ReferenceDataError,
    changed_defaults,
    read_reference_table,
    reference_files,
    reference_for,
)
from transforms.sources import contract_for
from transforms.steward.quarantine import describe_rule
from warehouse.files import internal_file

HINTED_RULES = ("unknown_area", "unknown_organisation", "unknown_department", "unknown_plan", "unknown_measure",
                "unknown_indicator")
RECENTLY_CLOSED = 50
# Open rows listed per source and rule on the page; a national first run can hold tens of thousands, and
# the group's own line acts on all of them (every row: boligdata status --format csv)
ROWS_SHOWN_PER_GROUP = 200


def header_of(source: str, column: str | None) -> str | None:
    """The column as the sender writes it (`Område`, not `omraade`)."""
    contract = contract_for(source)
    if column is None or contract is None:
        return column
    try:
        return contract.column(column).header
    except (KeyError, StopIteration, ValueError):
        return column


@kept_per_version(reference_files)  # the status page is written after every run; the names change with the files
def known_names(reference_dir: Path) -> dict[str, dict[str, str]]:
    """Per unknown_* rule, the names it compares against as the reference data spells them, each with
    what it stands for (an alias and the area's name both stand for the area id)."""
    def names(table: str, name: str, key: str | None = None, where=None) -> dict[str, str]:
        frame = read_reference_table(reference_dir, table)
        if where is not None:
            frame = frame.filter(where)
        return {str(row[name]): str(row[key or name]) for row in frame.iter_rows(named=True) if row[name] is not None}

    return {
        "unknown_area": {**names("scope_aliases", "alias", "scope_id", pl.col("level") != "kommune"),
                         **names("areas", "name", "area_id"), **names("areas", "area_id")},
        "unknown_organisation": names("departments", "boligorganisation"),
        "unknown_department": names("departments", "afdeling"),
        "unknown_plan": {**names("plans", "plan_id"), **names("plans", "name", "plan_id")},
        "unknown_measure": names("indicators", "indicator", where=pl.col("source") == "indsats_registreringer"),
        "unknown_indicator": names("indicators", "indicator", where=pl.col("source") == "kommune_noegletal"),
    }


def closest(value: str | None, names: dict[str, str], n: int = 3) -> list[str]:
    """The closest known names (difflib), one per thing they stand for."""
    if not value:
        return []
    by_folded = {}
    for name in names:
        by_folded.setdefault(name.casefold(), name)
    found, seen = [], set()
    for folded in difflib.get_close_matches(value.strip().casefold(), list(by_folded), n=10, cutoff=0.5):
        name = by_folded[folded]
        if names[name] not in seen:
            seen.add(names[name])
            found.append(name)
    return found[:n]


@dataclass
class DeskStatus:
    warehouse: Path
    generated_at: dt.datetime
    reference_dir: Path
    rejected: list[dict] = field(default_factory=list)
    # open quarantine rows, one per broken rule, described (column, rule_description, hint); as dicts: `problems`
    problem_rows: pl.DataFrame = field(default_factory=pl.DataFrame)
    groups: list[dict] = field(default_factory=list)  # open problems by source and rule
    closed: list[dict] = field(default_factory=list)  # recently closed problems and dismissed files
    actions: list[dict] = field(default_factory=list)  # the steward action log, newest first
    reference_notes: list[str] = field(default_factory=list)

    @cached_property
    def problems(self) -> list[dict]:
        return self.problem_rows.to_dicts()

    @property
    def open_rows(self) -> int:
        """Quarantined rows open (a row may break several rules)."""
        return self.problem_rows.select("delivery_id", "line_number").n_unique() if self.problem_rows.height else 0

    @property
    def open_count(self) -> int:
        return len(self.rejected) + self.problem_rows.height

    def as_dict(self) -> dict:
        def plain(value):
            if isinstance(value, (dt.datetime, dt.date)):
                return value.isoformat()
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, list):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value
        return plain({"warehouse": self.warehouse, "generated_at": self.generated_at, "reference_dir": self.reference_dir,
                      "open_rejected_files": self.rejected, "open_problems_by_rule": self.groups,
                      "open_problems": self.problems, "recently_closed": self.closed, "actions": self.actions,
                      "reference_notes": self.reference_notes})


def _has_table(conn, schema: str, table: str) -> bool:
    return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                             [schema, table]).fetchall()[0][0])


def read_status(warehouse: Path, reference_dir: Path | None = None) -> DeskStatus:
    warehouse = Path(warehouse)
    reference = reference_dir or reference_for(warehouse, create=False)
    if not Path(reference).is_dir():
        reference = DEFAULT_REFERENCE_DIR
    status = DeskStatus(warehouse, dt.datetime.now(), Path(reference))
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        actions = _has_table(conn, "meta", "steward_actions")
        dismissed = ("SELECT delivery_id FROM meta.steward_actions WHERE action = 'dismiss_file'" if actions
                     else "SELECT NULL::INTEGER WHERE false")
        status.rejected = [dict(zip(("delivery_id", "source", "file_name", "reason", "received_at"), row)) for row in conn.execute(f"""
            SELECT d.delivery_id, d.source, d.file_name, d.reason, d.received_at FROM meta.deliveries AS d
            WHERE d.status = 'rejected'
              AND NOT EXISTS (SELECT 1 FROM meta.deliveries AS later WHERE later.source = d.source
                              AND later.file_name = d.file_name AND later.delivery_id > d.delivery_id
                              AND later.status <> 'rejected')
              AND d.delivery_id NOT IN ({dismissed})
            ORDER BY d.delivery_id""").fetchall()]
        problems = conn.sql("""
            SELECT q.delivery_id, d.source, d.file_name, q.line_number, q.rule, q.column_name, q.value, q.note,
                   d.received_at AS appeared_at
            FROM meta.quarantine AS q JOIN meta.deliveries AS d USING (delivery_id)
            WHERE q.status = 'open' ORDER BY d.source, q.rule, q.delivery_id, q.line_number""").pl()
        closed = conn.sql(f"""
            SELECT q.delivery_id, d.source, d.file_name, q.line_number, q.rule, q.column_name, q.value, q.status,
                   q.resolved_by, q.resolved_at, q.note, d.received_at AS appeared_at
            FROM meta.quarantine AS q JOIN meta.deliveries AS d USING (delivery_id)
            WHERE q.status <> 'open' ORDER BY q.resolved_at DESC NULLS LAST, q.delivery_id, q.line_number
            LIMIT {RECENTLY_CLOSED}""").pl()
        if actions:
            status.actions = conn.sql("SELECT action_id, acted_at, who, action, target, reason, result "
                                      "FROM meta.steward_actions ORDER BY action_id DESC LIMIT 100").pl().to_dicts()
    try:
        names = known_names(status.reference_dir)
    except ReferenceDataError as problem:
        names = {}
        status.reference_notes.append(str(problem))
    # a national run holds tens of thousands of open rows with a handful of distinct (rule, column, value):
    # each is described, and its closest names found (difflib), once, and joined to its rows
    keys = ["source", "rule", "column_name", "value"]
    described = problems.select(keys).unique(maintain_order=True)
    described = described.with_columns(
        column=pl.Series([header_of(source, column) for source, _, column, _ in described.iter_rows()], dtype=pl.Utf8),
        rule_description=pl.Series([describe_rule(source, rule, column) for source, rule, column, _ in described.iter_rows()],
                                   dtype=pl.Utf8),
        hint=pl.Series([closest(value, names.get(rule, {})) if rule in HINTED_RULES else []
                        for _, rule, _, value in described.iter_rows()], dtype=pl.List(pl.Utf8)))
    status.problem_rows = problems.join(described, on=keys, how="left", nulls_equal=True, maintain_order="left")
    for row in closed.iter_rows(named=True):
        row["column"] = header_of(row["source"], row["column_name"])
        status.closed.append(row)
    grouped = problems.group_by("source", "rule", maintain_order=True).agg(
        pl.col("column_name").first(), pl.len().alias("rows"),
        pl.col("delivery_id").unique(maintain_order=True).alias("deliveries"), pl.col("appeared_at").min().alias("since"),
        pl.col("value").unique(maintain_order=True).head(5).alias("values"))
    status.groups = [{"source": g["source"], "rule": g["rule"], "column": header_of(g["source"], g["column_name"]),
                      "rule_description": describe_rule(g["source"], g["rule"], g["column_name"]), "rows": g["rows"],
                      "deliveries": g["deliveries"], "since": g["since"], "values": g["values"]}
                     for g in grouped.iter_rows(named=True)]
    status.reference_notes += [c.describe() for c in changed_defaults(status.reference_dir)]
    return status


# --- the page ------------------------------------------------------------------------------------------

STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem 2rem; color: #1a1a1a; max-width: 80rem; }
h1 { font-size: 1.45rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 2px solid #e4e4e4; }
h3 { font-size: 1rem; margin: 1.2rem 0 .3rem; }
table { border-collapse: collapse; margin: .4rem 0 1rem; width: 100%; font-size: .93rem; }
th, td { border: 1px solid #d4d4d4; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #5a5a5a; } .ok { color: #176b1f; font-weight: 600; } .bad { color: #a40000; font-weight: 600; }
.summary { display: flex; gap: 1rem; margin: 1rem 0; flex-wrap: wrap; }
.card { border: 1px solid #d4d4d4; border-radius: 6px; padding: .6rem 1rem; min-width: 11rem; background: #fafafa; }
.card b { display: block; font-size: 1.6rem; }
.note { background: #fff6d6; border: 1px solid #e8d48a; padding: .5rem .8rem; border-radius: 4px; }
code, .value { background: #f4f4f4; padding: 0 .25rem; font-family: ui-monospace, monospace; white-space: pre-wrap; }
form { display: inline; } input[type=text] { width: 16rem; } button { cursor: pointer; }
.actions { white-space: nowrap; } .hint { color: #1f4e8c; }
"""


def _e(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{cell}</td>' for i, cell in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_status_html(status: DeskStatus, links: bool = False, controls=None) -> str:
    """The standing page. LINKS: same-origin links to each problem's rows (the desk); CONTROLS(kind, item)
    returns the desk's forms for an item (none on the offline page)."""
    controls = controls or (lambda kind, item: "")
    open_rows = status.open_rows
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        "<title>boligdata: the steward's desk</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>The steward's desk: what is open now</h1>",
        f"<p class=muted>Warehouse {_e(status.warehouse)}; reference data {_e(status.reference_dir)}. "
        f"As of {status.generated_at:%Y-%m-%d %H:%M}.</p>",
        "<div class=summary>",
        f"<div class=card><b class={'bad' if status.rejected else 'ok'}>{len(status.rejected)}</b>rejected file(s) not replaced</div>",
        f"<div class=card><b class={'bad' if open_rows else 'ok'}>{open_rows}</b>quarantined row(s) open</div>",
        f"<div class=card><b>{len(status.groups)}</b>source/rule group(s)</div>",
        "</div>",
        "<!--desk-toolbar-->",
    ]
    if not status.open_count:
        parts.append("<p class=ok>Nothing is open: every file was taken in and every held-back row is closed.</p>")
    for note in status.reference_notes:
        parts.append(f"<p class=note>Reference data: {_e(note)}</p>")
    parts.append("<h2>Rejected files</h2>")
    if status.rejected:
        parts.append(_table(["delivery", "file", "received", "reason", ""], [
            [_e(r["delivery_id"]), f"{_e(r['source'])}/{_e(r['file_name'])}", _e(r["received_at"]), _e(r["reason"]),
             controls("file", r)] for r in status.rejected], {0}))
        parts.append("<p class=muted>Nothing of these files was loaded. A corrected file under the same name (or one that "
                     "replaces the same partitions) closes them.</p>")
    else:
        parts.append("<p>None open.</p>")
    parts.append("<h2>Quarantined rows by source and rule</h2>")
    if status.groups:
        parts.append(_table(["source", "rule", "column", "rows", "deliveries", "open since", "what the rule says", ""], [
            [_e(g["source"]), f"<code>{_e(g['rule'])}</code>", _e(g["column"]), str(g["rows"]),
             ", ".join(_e(d) for d in g["deliveries"]), _e(g["since"]), _e(g["rule_description"]), controls("group", g)]
            for g in status.groups], {3}))
        for (source, rule), group in status.problem_rows.group_by("source", "rule", maintain_order=True):
            rows = group.head(ROWS_SHOWN_PER_GROUP).to_dicts()  # a page lists a group's first rows, not 24,701
            parts.append(f"<h3>{_e(source)}: <code>{_e(rule)}</code></h3>")
            parts.append(_table(["delivery", "file", "line", "column", "value as delivered", "closest known", "note", ""], [
                [(f'<a href="/delivery/{p["delivery_id"]}">{p["delivery_id"]}</a>' if links else _e(p["delivery_id"])),
                 _e(p["file_name"]), _e(p["line_number"]), _e(p["column"]), f"<span class=value>{_e(p['value'])}</span>",
                 "<span class=hint>" + _e(", ".join(p["hint"])) + "</span>", _e(p["note"]), controls("row", p)]
                for p in rows], {0, 2}))
            if group.height > ROWS_SHOWN_PER_GROUP:
                parts.append(f"<p class=muted>The first {ROWS_SHOWN_PER_GROUP} of {group.height} rows; the group's line above "
                             "acts on all of them. Every row: <code>boligdata status --format csv</code>.</p>")
    else:
        parts.append("<p>None open.</p>")
    parts.append("<h2>Recently closed</h2>")
    if status.closed:
        parts.append(_table(["delivery", "file", "line", "rule", "column", "value", "closed as", "by", "when", "why"], [
            [_e(c["delivery_id"]), _e(c["file_name"]), _e(c["line_number"]), f"<code>{_e(c['rule'])}</code>", _e(c["column"]),
             f"<span class=value>{_e(c['value'])}</span>", _e(c["status"]), _e(c["resolved_by"]), _e(c["resolved_at"]),
             _e(c["note"])] for c in status.closed], {0, 2}))
    else:
        parts.append("<p>Nothing closed yet.</p>")
    if status.actions:
        parts.append("<h2>Steward actions</h2>")
        parts.append(_table(["when", "who", "action", "on", "reason", "result"], [
            [_e(a["acted_at"]), _e(a["who"]), _e(a["action"]), _e(a["target"]), _e(a["reason"]), _e(a["result"])]
            for a in status.actions]))
    parts.append("<h2>How to close what is open</h2><ul>"
                 "<li>A wrong file: the sender delivers a corrected one; it replaces the partitions it contains and closes "
                 "their rows.</li>"
                 "<li>A name the reference data does not know: add it to the warehouse's reference folder "
                 f"(<code>{_e(status.reference_dir)}</code>, e.g. <code>scope_aliases.csv</code>; an area's spelling: "
                 "<code>boligdata reference alias NAME AREA_ID</code>, or the desk's Alias and retry), then "
                 "<code>boligdata quarantine retry</code>.</li>"
                 "<li>A row that is right to leave out: <code>boligdata quarantine waive --reason ...</code>.</li></ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def status_page_path(warehouse: Path) -> Path:
    from transforms.steward.report import report_dir

    return report_dir(Path(warehouse)) / "status.html"


def write_status_page(warehouse: Path, reference_dir: Path | None = None) -> Path:
    """Rewrite the standing page (atomically: a reader never sees half a page)."""
    path = status_page_path(warehouse)
    path.parent.mkdir(exist_ok=True)
    write_whole(path, render_status_html(read_status(warehouse, reference_dir)).encode("utf-8"))
    return path
