"""Disclosure control that holds under subtraction: complementary (secondary) suppression.

Primary suppression (core.indicator_figures.suppressed, the rule in ref.disclosure) hides a small
person-based cell. Published figures must not give it back by difference: plan minus plan
(slagelse-2017 minus en-faelles-indsats-2021 is Skælskør), a plan minus its other areas, and so on.
So for every hidden cell X and every pair of published cells A and B of the same indicator, year and
kommune with A - B = X (numerator and denominator alike), A is hidden too: the figure that holds X,
while B keeps its meaning; one cell per difference, so that as few as possible are hidden. Hidden
cells are protected alike, primary or complementary, so no chain of two-cell differences opens them
either; the loop runs until no difference gives a hidden cell back. A published cell equal to a
hidden one is hidden too.

The check is on numbers, not on which areas a figure covers, so it also catches coincidences (a plan
minus another plan that happens to equal an area); it may hide a little more than a cover-set
argument would, never less. Differences across kommuner recover nothing (the figures do not
overlap), so cells are compared within their kommune.
"""

from __future__ import annotations

from collections import defaultdict

import duckdb

# values are sums of doubles: compared at this many decimals
_PRECISION = 6
# Person-based cells with the kommune they lie in: a difference gives a cell back only between
# figures that overlap on the map, so cells are compared within their kommune (national levels alone).
CELLS = """
WITH kommuner AS (
    SELECT 'area' AS level, area_id AS scope_id, kommune_code FROM ref.areas
    UNION ALL SELECT 'plan', plan_id, kommune_code FROM ref.plans
    UNION ALL SELECT 'bydel', bydel_id, kommune_code FROM ref.bydele
),
cells AS (
    SELECT f.indicator, f.year, CASE f.level WHEN 'kommune' THEN f.scope_id ELSE coalesce(k.kommune_code, f.level) END AS kommune,
           f.level, f.scope_id, f.numerator, f.denominator, f.suppressed
    FROM core.indicator_figures AS f
    JOIN ref.indicators AS i ON i.indicator = f.indicator
    LEFT JOIN kommuner AS k ON k.level = f.level AND k.scope_id = f.scope_id
    WHERE i.person_based AND f.numerator IS NOT NULL AND {rows}
)
SELECT * FROM cells
-- a group with no primary cell has nothing to protect (most groups at national scale)
QUALIFY bool_or(suppressed) OVER (PARTITION BY indicator, year, kommune)
ORDER BY ALL
"""


def _key(numerator: float, denominator: float | None) -> tuple:
    return round(numerator, _PRECISION), None if denominator is None else round(denominator, _PRECISION)


def _minus(a: tuple, b: tuple) -> tuple:
    numerator = round(a[0] - b[0], _PRECISION)
    denominator = None if a[1] is None or b[1] is None else round(a[1] - b[1], _PRECISION)
    return numerator, denominator


def complementary_cells(cells: list[tuple[str, tuple, bool]]) -> set[str]:
    """The cells (scope, (numerator, denominator), primary) of one indicator, year and kommune to hide
    besides the primary ones."""
    hidden = {scope for scope, _, primary in cells if primary}
    numbers = {scope: key for scope, key, _ in cells}
    extra: set[str] = set()
    changed = True
    while changed:
        changed = False
        published = defaultdict(list)
        for scope, key in numbers.items():
            if scope not in hidden:
                published[key].append(scope)
        for protected in sorted(hidden):
            target = numbers[protected]
            if target in published:  # a published cell with the very same numbers
                exposing = published[target][0]
                hidden.add(exposing), extra.add(exposing)
                changed = True
                break
            for a_key, a_scopes in published.items():
                b_scopes = published.get(_minus(a_key, target))
                if not b_scopes or (b_scopes == a_scopes and len(a_scopes) == 1):
                    continue
                # hide A, the figure that holds the hidden cell: B keeps its own meaning (slagelse-2017
                # minus en-faelles-indsats-2021 is Skælskør: the plan of four areas is hidden, the three stay)
                holder = a_scopes[0]
                hidden.add(holder), extra.add(holder)
                changed = True
                break
            if changed:
                break
    return extra


def build_disclosure(conn: duckdb.DuckDBPyConnection, rebuilt: str | None = None) -> None:
    """core.disclosure: every cell of core.indicator_figures with its suppression (primary or
    complementary, NULL when published); given `rebuilt` (a predicate on the year), only those cells are
    rebuilt (groups never span years)."""
    rows = rebuilt or "true"
    groups = defaultdict(list)
    for indicator, year, kommune, level, scope_id, numerator, denominator, primary in conn.execute(
            CELLS.format(rows=rows)).fetchall():
        groups[(indicator, year, kommune)].append((f"{level}|{scope_id}", _key(numerator, denominator), primary))
    complementary = [(indicator, year, *scope.split("|", 1))
                     for (indicator, year, _), cells in groups.items() for scope in sorted(complementary_cells(cells))]
    conn.execute("CREATE OR REPLACE TEMP TABLE complementary (indicator VARCHAR, year INTEGER, level VARCHAR, scope_id VARCHAR)")
    if complementary:
        conn.executemany("INSERT INTO complementary VALUES (?, ?, ?, ?)", complementary)
    cells = f"""
        SELECT f.indicator, f.level, f.scope_id, f.year,
               CASE WHEN f.suppressed THEN 'primary' WHEN c.indicator IS NOT NULL THEN 'complementary' END AS suppression
        FROM (SELECT * FROM core.indicator_figures WHERE {rows}) AS f
        LEFT JOIN complementary AS c
          ON c.indicator = f.indicator AND c.year = f.year AND c.level = f.level AND c.scope_id = f.scope_id"""
    if rebuilt is None:
        conn.execute(f"CREATE OR REPLACE TABLE core.disclosure AS {cells}")
    else:
        conn.execute(f"DELETE FROM core.disclosure WHERE {rebuilt}")
        conn.execute(f"INSERT INTO core.disclosure {cells}")
    conn.execute("DROP TABLE complementary")
