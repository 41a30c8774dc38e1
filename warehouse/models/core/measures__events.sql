/*
name: core.measures__events
materialized: view
description: >-
  Event counts per area and per kommune (all rows of the kommune, inside an area or not), per year.
  A kommune-year some file of the source covers gets a count for each of the kommune's areas, so an
  area without events counts 0 rather than going missing.
depends_on: [core.events, core.event_types, ref.areas]
grain: [level, scope_id, year, measure]
*/
WITH event_counts AS (
    SELECT source, kommune_code, area_id, year, event_type, count(*) AS events
    FROM core.events
    GROUP BY ALL
),
covered_years AS (
    SELECT DISTINCT source, kommune_code, year FROM event_counts
),
scopes AS (
    SELECT c.source, c.kommune_code, c.year, 'area' AS level, a.area_id AS scope_id
    FROM covered_years AS c JOIN ref.areas AS a ON a.kommune_code = c.kommune_code
    UNION ALL
    SELECT source, kommune_code, year, 'kommune', kommune_code FROM covered_years
)
SELECT s.level, s.scope_id, s.kommune_code, s.year, t.measure, coalesce(sum(e.events), 0)::DOUBLE AS value
FROM scopes AS s
JOIN core.event_types AS t ON t.source = s.source
LEFT JOIN event_counts AS e
    ON e.source = s.source AND e.kommune_code = s.kommune_code AND e.year = s.year
   AND (s.level = 'kommune' OR e.area_id = s.scope_id)
   AND (t.event_type IS NULL OR e.event_type = t.event_type)
GROUP BY s.level, s.scope_id, s.kommune_code, s.year, t.measure
