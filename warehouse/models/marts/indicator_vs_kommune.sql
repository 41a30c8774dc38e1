/*
name: marts.indicator_vs_kommune
materialized: table
description: "One row per (indicator, area or plan, year): the value beside the kommune baseline and the national level."
depends_on: [marts.indicator_values, ref.areas, ref.plans, ref.indicators]
grain: [indicator, level, scope_id, year]
partition_by: year
columns:
  indicator: Catalog id (ref.indicators).
  level: area or plan.
  scope_id: Area id or plan id.
  year: Calendar year.
  value: The area or plan value (marts.indicator_values.value).
  kommune_code: Kommune the area or plan lies in.
  kommune_value: The same indicator for the whole kommune (Hele kommunen); NULL where none.
  national_value: The same indicator for Landsplan; NULL where none.
  difference: value - kommune_value; NULL for counts (a count is not comparable with the whole kommune's).
  ratio: value / kommune_value; NULL for counts.
  better_than_kommune: Whether value beats the kommune by the indicator's direction; NULL when either side is NULL, and for counts (only rates and shares are compared).
  unit: pct, per_1000, count, grade or kr.
  suppressed: True when the value is hidden by disclosure control.
audits:
  not_null: [indicator, level, scope_id, year, kommune_code]
  accepted_values: {level: [area, plan]}
  relationships: {indicator: ref.indicators.indicator, kommune_code: ref.kommuner.kommune_code}
*/
WITH scope_kommuner AS (
    SELECT 'area' AS level, area_id AS scope_id, kommune_code FROM ref.areas
    UNION ALL
    SELECT 'plan', plan_id, kommune_code FROM ref.plans
),
local_values AS (
    SELECT v.indicator, v.level, v.scope_id, v.year, v.value, v.unit, v.suppressed, sk.kommune_code
    FROM marts.indicator_values AS v
    JOIN scope_kommuner AS sk ON sk.level = v.level AND sk.scope_id = v.scope_id
),
kommune_values AS (
    SELECT indicator, scope_id AS kommune_code, year, value FROM marts.indicator_values WHERE level = 'kommune'
),
national_values AS (
    SELECT indicator, year, value FROM marts.indicator_values WHERE level = 'national' AND scope_id = 'landsplan'
)
SELECT
    l.indicator,
    l.level,
    l.scope_id,
    l.year,
    l.value,
    l.kommune_code,
    k.value AS kommune_value,
    n.value AS national_value,
    -- a count of the area (70 vandalism reports) says nothing beside the whole kommune's count (598):
    -- only rates and shares are held against the kommune
    CASE WHEN i.unit <> 'count' THEN l.value - k.value END AS difference,
    CASE WHEN i.unit <> 'count' THEN l.value / nullif(k.value, 0) END AS ratio,
    CASE WHEN i.unit = 'count' THEN NULL
         WHEN i.direction = 'lower' THEN l.value < k.value WHEN i.direction = 'higher' THEN l.value > k.value END
        AS better_than_kommune,
    l.unit,
    l.suppressed
FROM local_values AS l
JOIN ref.indicators AS i ON i.indicator = l.indicator
LEFT JOIN kommune_values AS k ON k.indicator = l.indicator AND k.kommune_code = l.kommune_code AND k.year = l.year
LEFT JOIN national_values AS n ON n.indicator = l.indicator AND n.year = l.year
ORDER BY l.indicator, l.level, l.scope_id, l.year
