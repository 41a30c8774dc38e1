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
                SELECT s.delivery_id, d.source, d.file_name, d.received_at, count(*) AS rows
                FROM {contract_for(source).staging_table} AS s JOIN meta.deliveries AS d USING (delivery_id)
                WHERE {condition} GROUP BY ALL ORDER BY s.delivery_id""", params).fetchall()
    return {
        "indicator": indicator, "level": level, "scope_id": scope_id, "year": year, "value": value,
        "numerator": numerator, "denominator": denominator, "unit": unit, "suppressed": suppressed,
        "definition": definition, "measures": measures,
        "deliveries": [dict(zip(("delivery_id", "source", "file_name", "received_at", "rows"), row)) for row in deliveries],
    }
