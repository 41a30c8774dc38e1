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
-- NOT MATERIALIZED: inlined where used, so that a partial build's filter on year reaches core.events
-- (one year of 5M police reports scanned, not all; a filter does not pass a materialized CTE)
WITH event_counts AS NOT MATERIALIZED (
    SELECT source, kommune_code, area_id, year, event_type, count(*) AS events
    FROM core.events
    GROUP BY ALL
),
covered_years AS (
    SELECT DISTINCT source, kommune_code, year FROM event_counts
),
counted AS (
    -- every area and the kommune of a covered kommune-year start at 0 for each of the source's measures
    SELECT 'area' AS level, a.area_id AS scope_id, c.kommune_code, c.year, t.measure, 0 AS events
    FROM covered_years AS c JOIN ref.areas AS a ON a.kommune_code = c.kommune_code
    JOIN core.event_types AS t ON t.source = c.source
    UNION ALL
    SELECT 'kommune', c.kommune_code, c.kommune_code, c.year, t.measure, 0
    FROM covered_years AS c JOIN core.event_types AS t ON t.source = c.source
    UNION ALL
    -- events in an area of their kommune
    SELECT 'area', e.area_id, e.kommune_code, e.year, t.measure, e.events
    FROM event_counts AS e JOIN ref.areas AS a ON a.area_id = e.area_id AND a.kommune_code = e.kommune_code
    JOIN core.event_types AS t ON t.source = e.source AND (t.event_type IS NULL OR e.event_type = t.event_type)
    UNION ALL
    -- every event of the kommune, inside an area or not
    SELECT 'kommune', e.kommune_code, e.kommune_code, e.year, t.measure, e.events
    FROM event_counts AS e
    JOIN core.event_types AS t ON t.source = e.source AND (t.event_type IS NULL OR e.event_type = t.event_type)
)
SELECT level, scope_id, kommune_code, year, measure, sum(events)::DOUBLE AS value
FROM counted
GROUP BY ALL
