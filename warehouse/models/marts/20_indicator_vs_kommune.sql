-- Each area and plan value beside its kommune's value (the LBF baseline) and the national one.
CREATE OR REPLACE TABLE marts.indicator_vs_kommune AS
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
    l.value - k.value AS difference,
    l.value / nullif(k.value, 0) AS ratio,
    CASE i.direction WHEN 'lower' THEN l.value < k.value WHEN 'higher' THEN l.value > k.value END
        AS better_than_kommune,
    l.unit,
    l.suppressed
FROM local_values AS l
JOIN ref.indicators AS i ON i.indicator = l.indicator
LEFT JOIN kommune_values AS k ON k.indicator = l.indicator AND k.kommune_code = l.kommune_code AND k.year = l.year
LEFT JOIN national_values AS n ON n.indicator = l.indicator AND n.year = l.year
ORDER BY l.indicator, l.level, l.scope_id, l.year;

COMMENT ON TABLE marts.indicator_vs_kommune IS 'One row per (indicator, area or plan, year): the value beside the kommune baseline and the national level.';
COMMENT ON COLUMN marts.indicator_vs_kommune.indicator IS 'Catalog id (ref.indicators).';
COMMENT ON COLUMN marts.indicator_vs_kommune.level IS 'area or plan.';
COMMENT ON COLUMN marts.indicator_vs_kommune.scope_id IS 'Area id or plan id.';
COMMENT ON COLUMN marts.indicator_vs_kommune.year IS 'Calendar year.';
COMMENT ON COLUMN marts.indicator_vs_kommune.value IS 'The area or plan value (marts.indicator_values.value).';
COMMENT ON COLUMN marts.indicator_vs_kommune.kommune_code IS 'Kommune the area or plan lies in.';
COMMENT ON COLUMN marts.indicator_vs_kommune.kommune_value IS 'The same indicator for the whole kommune (Hele kommunen); NULL where none.';
COMMENT ON COLUMN marts.indicator_vs_kommune.national_value IS 'The same indicator for Landsplan; NULL where none.';
COMMENT ON COLUMN marts.indicator_vs_kommune.difference IS 'value - kommune_value.';
COMMENT ON COLUMN marts.indicator_vs_kommune.ratio IS 'value / kommune_value.';
COMMENT ON COLUMN marts.indicator_vs_kommune.better_than_kommune IS 'Whether value beats the kommune by the indicator''s direction; NULL when either side is NULL.';
COMMENT ON COLUMN marts.indicator_vs_kommune.unit IS 'pct, per_1000, count, grade or kr.';
COMMENT ON COLUMN marts.indicator_vs_kommune.suppressed IS 'True when the value is hidden by disclosure control.';
