"""Where a figure comes from: `boligdata explain INDICATOR SCOPE YEAR`."""

from __future__ import annotations

from pathlib import Path

import duckdb

from transforms.sources import all_contracts, contract_for
from warehouse.files import internal_file
from warehouse.materialize import MEASURE_VIEW_PREFIX


def _measure_sources(conn: duckdb.DuckDBPyConnection, measures: list[str]) -> list[str]:
    """The sources whose core.measures__* views produce any of these measures."""
    views = [v for (v,) in conn.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'core' "
                                        "AND starts_with(view_name, ?)", [MEASURE_VIEW_PREFIX]).fetchall()]
    producing = [v for v in views if conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM core.{v} WHERE list_contains(?, measure) LIMIT 1)", [measures]).fetchall()[0][0]]
    if f"{MEASURE_VIEW_PREFIX}events" in producing:  # one view serves every event-level source
        producing.remove(f"{MEASURE_VIEW_PREFIX}events")
        producing += [s for (s,) in conn.execute("SELECT DISTINCT source FROM core.event_types WHERE list_contains(?, measure)",
                                                 [measures]).fetchall()]
    return sorted(v.removeprefix(MEASURE_VIEW_PREFIX) for v in producing)


def _row_filter(conn, source: str, level: str, scope_id: str, year: int) -> tuple[str, list]:
    """SQL condition (and parameters) selecting a source's staged rows that feed one scope and year."""
    contract = contract_for(source)
    year_condition = f"{contract.year_sql} = ?"
    if contract.department_columns and level == "plan":  # like for like: the plan's own departments
        return (f"{year_condition} AND (organisation, afdeling) IN (SELECT (organisation, afdeling) "
                "FROM core.plan_departments WHERE plan_id = ?)", [year, scope_id])
    if level in ("area", "plan"):
        areas = [scope_id] if level == "area" else [a for (a,) in conn.execute(
            "SELECT area_id FROM ref.plan_areas WHERE plan_id = ?", [scope_id]).fetchall()]
        if contract.department_columns:
            return (f"{year_condition} AND (organisation, afdeling) IN (SELECT (organisation, afdeling) "
                    "FROM core.department_membership WHERE list_contains(?, area_id) AND year = ?)", [year, areas, year])
        if "plan" in (contract.levels or ()):  # own records: the plan's own rows, or its areas'
            return (f"{year_condition} AND ((scope_level = 'plan' AND scope_id = ?) "
                    "OR (scope_level = 'area' AND list_contains(?, scope_id)))", [year, scope_id, areas])
        return f"{year_condition} AND scope_level = 'area' AND list_contains(?, scope_id)", [year, areas]
    if level in ("national", "bydel"):
        return f"{year_condition} AND scope_level = ? AND scope_id = ?", [year, level, scope_id]
    has_total_rows = conn.execute(f"SELECT count(*) FROM {contract.staging_table} WHERE scope_level = 'kommune' "
                                  "AND scope_id = ?", [scope_id]).fetchall()[0][0]
    if has_total_rows:  # a `Hele kommunen` row
        return f"{year_condition} AND scope_level = 'kommune' AND scope_id = ?", [year, scope_id]
    return f"{year_condition} AND kommune_code = ?", [year, scope_id]  # event sources: every row of the kommune


def explain(warehouse: Path, indicator: str, scope_id: str, year: int) -> dict | None:
    """The value with its parts, the catalog's definition, and per delivery the staged rows it came from."""
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        found = conn.execute("""
            SELECT v.level, v.value, v.numerator, v.denominator, v.unit, v.suppressed, i.definition,
                   i.numerator_measure, i.denominator_measure, i.delivered_measure
            FROM marts.indicator_values AS v JOIN ref.indicators AS i USING (indicator)
            WHERE v.indicator = ? AND v.scope_id = ? AND v.year = ?""", [indicator, scope_id, year]).fetchall()
        if not found:
            return None
        level, value, numerator, denominator, unit, suppressed, definition, *measures = found[0]
        measures = [m for m in measures if m]
        deliveries = []
        for source in _measure_sources(conn, measures):
            if source not in all_contracts():
                continue
            condition, params = _row_filter(conn, source, level, scope_id, year)
            deliveries += conn.execute(f"""
                SELECT s.delivery_id, d.source, d.file_name, d.received_at, count(*) AS rows, d.sha256,
                       list(s.line_number ORDER BY s.line_number) AS lines
                FROM {contract_for(source).staging_table} AS s JOIN meta.deliveries AS d USING (delivery_id)
                WHERE {condition} GROUP BY s.delivery_id, d.source, d.file_name, d.received_at, d.sha256
                ORDER BY s.delivery_id""", params).fetchall()
    return {
        "indicator": indicator, "level": level, "scope_id": scope_id, "year": year, "value": value,
        "numerator": numerator, "denominator": denominator, "unit": unit, "suppressed": suppressed,
        "definition": definition, "measures": measures,
        "deliveries": [dict(zip(("delivery_id", "source", "file_name", "received_at", "rows", "sha256"), row[:6]))
                       | {"line_ranges": line_ranges(row[6])} for row in deliveries],
    }


def line_ranges(lines: list[int]) -> str:
    """[2, 3, 4, 9] -> '2-4, 9' (file lines; the header is line 1)."""
    ranges: list[list[int]] = []
    for line in sorted(lines):
        if ranges and line == ranges[-1][1] + 1:
            ranges[-1][1] = line
        else:
            ranges.append([line, line])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in ranges)


def explain_department(warehouse: Path, department: str, year: int) -> dict | None:
    """A housing department's delivered figures for a year ("ORGANISATION/AFDELING"): the staged row(s),
    the area it belongs to that year, and the delivery (file, sha256, lines)."""
    organisation, _, afdeling = department.partition("/")
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        rows = conn.execute("""
            SELECT s.*, d.source, d.file_name, d.sha256 FROM staging.boligorg_afdelinger AS s
            JOIN meta.deliveries AS d USING (delivery_id)
            WHERE lower(s.organisation) = lower(?) AND (CAST(s.afdeling AS VARCHAR) = ?
                  OR try_cast(s.afdeling AS BIGINT) = try_cast(? AS BIGINT)) AND s.aar = ?""",
                            [organisation, afdeling, afdeling, year])
        names = [c[0] for c in rows.description]
        found = [dict(zip(names, r)) for r in rows.fetchall()]
        area = conn.execute("""SELECT area_id FROM core.department_membership WHERE lower(organisation) = lower(?)
            AND (CAST(afdeling AS VARCHAR) = ? OR try_cast(afdeling AS BIGINT) = try_cast(? AS BIGINT)) AND year = ?""",
                            [organisation, afdeling, afdeling, year]).fetchall()
    if not found:
        return None
    return {"department": department, "year": year, "area_id": area[0][0] if area else None, "rows": found}


def explain_target(warehouse: Path, target_id: str, scope_id: str, year: int) -> dict | None:
    """A target verdict: the rule, baseline, target and actual values, the note, the agreement's section."""
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        cursor = conn.execute("""
            SELECT s.*, t.baseline_year, t.target_value AS agreed_value, t.reference_level, t.reference_scope_id,
                   t.data_source, b.value AS baseline_value, b.suppressed AS baseline_suppressed
            FROM marts.target_status AS s
            JOIN ref.targets AS t USING (plan_id, target_id, scope_id)
            LEFT JOIN marts.indicator_values AS b ON b.indicator = s.indicator AND b.level = s.level
                 AND b.scope_id = s.scope_id AND b.year = t.baseline_year
            WHERE s.target_id = ? AND s.scope_id = ? AND s.year = ?""", [target_id, scope_id, year])
        names = [c[0] for c in cursor.description]
        rows = cursor.fetchall()
    return dict(zip(names, rows[0])) if rows else None


def reported(warehouse: Path, report_id: int, indicator: str, scope_id: str, period: str) -> dict | None:
    """A figure as a report showed it (meta.reported_figures), with its deliveries as they were recorded."""
    with duckdb.connect(str(internal_file(warehouse)), read_only=True) as conn:
        report = conn.execute("SELECT report_id, plan_id, period, created_at, created_by, pdf_file, pdf_sha256 "
                              "FROM meta.reports WHERE report_id = ?", [report_id]).fetchall()
        if not report:
            return None
        cursor = conn.execute("""SELECT * FROM meta.reported_figures WHERE report_id = ? AND scope_id = ? AND period = ?
            AND (indicator = ? OR target_id = ?) ORDER BY kind, target_id""", [report_id, scope_id, period, indicator, indicator])
        names = [c[0] for c in cursor.description]
        figures = [dict(zip(names, r)) for r in cursor.fetchall()]
        ids = sorted({d for f in figures for d in f["delivery_ids"]})
        deliveries = conn.execute("SELECT delivery_id, source, file_name, sha256, status FROM meta.deliveries "
                                  "WHERE list_contains(?, delivery_id) ORDER BY 1", [ids]).fetchall()
    return {"report": dict(zip(("report_id", "plan_id", "period", "created_at", "created_by", "pdf_file", "pdf_sha256"),
                               report[0])),
            "figures": figures,
            "deliveries": [dict(zip(("delivery_id", "source", "file_name", "sha256", "status"), d)) for d in deliveries]}


def measure_sources_map(conn: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Every measure -> the sources that produce it (one query per measure view, for bulk lineage)."""
    views = [v for (v,) in conn.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'core' "
                                        "AND starts_with(view_name, ?)", [MEASURE_VIEW_PREFIX]).fetchall()]
    found: dict[str, set[str]] = {}
    for view in views:
        if view == f"{MEASURE_VIEW_PREFIX}events":
            rows = conn.execute("SELECT DISTINCT measure, source FROM core.event_types").fetchall()
        else:
            source = view.removeprefix(MEASURE_VIEW_PREFIX)
            rows = [(m, source) for (m,) in conn.execute(f"SELECT DISTINCT measure FROM core.{view}").fetchall()]
        for measure, source in rows:
            found.setdefault(measure, set()).add(source)
    return {m: sorted(s) for m, s in found.items()}


class DeliveryLineage:
    """The deliveries behind many figures, with each (source, level, scope, year) asked once."""

    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self.conn = conn
        self.sources_of = measure_sources_map(conn)
        self.measures_of = {i: [m for m in ms if m] for i, *ms in conn.execute(
            "SELECT indicator, numerator_measure, denominator_measure, delivered_measure FROM ref.indicators").fetchall()}
        self.cache: dict[tuple, list[int]] = {}

    def sources(self, indicator: str) -> list[str]:
        found = {s for m in self.measures_of.get(indicator, []) for s in self.sources_of.get(m, [])}
        return sorted(s for s in found if s in all_contracts())

    def delivery_ids(self, indicator: str, level: str, scope_id: str, year: int) -> list[int]:
        ids: set[int] = set()
        for source in self.sources(indicator):
            key = (source, level, scope_id, year)
            if key not in self.cache:
                condition, params = _row_filter(self.conn, source, level, scope_id, year)
                self.cache[key] = [d for (d,) in self.conn.execute(
                    f"SELECT DISTINCT delivery_id FROM {contract_for(source).staging_table} WHERE {condition}",
                    params).fetchall()]
            ids.update(self.cache[key])
        return sorted(ids)
