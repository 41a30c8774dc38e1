/*
name: marts.indicator_values
materialized: table
description: >-
  One row per (indicator, level, scope_id, year): the indicator value with its numerator and denominator.
  Rates combine areas by summing numerators and denominators; a plan figure needs every one of the
  plan's areas for that measure. Where a source delivers only the rate (no weights), it is taken as delivered.
depends_on: [core.measures, ref.indicators, ref.plan_areas, ref.disclosure]
grain: [indicator, level, scope_id, year]
columns:
  indicator: Catalog id (ref.indicators), e.g. afgoerelser_pr_1000.
  level: area, plan, kommune or national.
  scope_id: Area id, plan id, kommune code (text), landsplan or sub.
  year: Calendar year.
  value: The indicator in its unit; NULL when suppressed (see suppressed) or not computable (e.g. a zero denominator).
  numerator: "Summed numerator (for counts: the count); NULL where the rate was delivered without one."
  denominator: Summed denominator; NULL for counts.
  unit: pct, per_1000, count, grade or kr.
  suppressed: True when disclosure control hides the value, numerator and denominator (person-based indicator, small group, ref.disclosure).
audits:
  not_null: [indicator, level, scope_id, year, unit, suppressed]
  accepted_values: {level: [area, plan, kommune, national], unit: [pct, per_1000, count, grade, kr]}
  relationships: {indicator: ref.indicators.indicator}
*/
WITH plan_sizes AS (
    SELECT plan_id, count(*) AS area_count FROM ref.plan_areas GROUP BY plan_id
),
additive_measures AS (
    -- everything but rates delivered ready-made (e.g. the national survey rows), which do not add up
    SELECT * FROM core.measures
    WHERE measure NOT IN (SELECT delivered_measure FROM ref.indicators WHERE delivered_measure IS NOT NULL)
),
plan_measures AS (
    SELECT m.measure, 'plan' AS level, pa.plan_id AS scope_id, m.year, sum(m.value) AS value
    FROM additive_measures AS m
    JOIN ref.plan_areas AS pa ON m.level = 'area' AND m.scope_id = pa.area_id
    JOIN plan_sizes AS ps ON ps.plan_id = pa.plan_id
    GROUP BY m.measure, pa.plan_id, m.year, ps.area_count
    HAVING count(DISTINCT m.scope_id) = ps.area_count
),
scoped_measures AS (
    SELECT measure, level, scope_id, year, value FROM core.measures
    UNION ALL
    SELECT measure, level, scope_id, year, value FROM plan_measures
),
indicator_scopes AS (
    SELECT DISTINCT i.indicator, m.level, m.scope_id, m.year
    FROM ref.indicators AS i
    JOIN scoped_measures AS m ON m.measure IN (i.numerator_measure, i.delivered_measure)
),
indicator_inputs AS (
    SELECT s.indicator, s.level, s.scope_id, s.year, i.unit, i.scale, i.denominator_measure, i.person_based,
           n.value AS numerator, d.value AS denominator, v.value AS delivered_value
    FROM indicator_scopes AS s
    JOIN ref.indicators AS i
      ON i.indicator = s.indicator AND list_contains(string_split(i.levels, ','), s.level)
    LEFT JOIN scoped_measures AS n
        ON n.measure = i.numerator_measure AND n.level = s.level AND n.scope_id = s.scope_id AND n.year = s.year
    LEFT JOIN scoped_measures AS d
        ON d.measure = i.denominator_measure AND d.level = s.level AND d.scope_id = s.scope_id AND d.year = s.year
    LEFT JOIN scoped_measures AS v
        ON v.measure = i.delivered_measure AND v.level = s.level AND v.scope_id = s.scope_id AND v.year = s.year
),
disclosure AS (
    SELECT max(value) FILTER (WHERE setting = 'min_denominator') AS min_denominator,
           max(value) FILTER (WHERE setting = 'small_numerator_min') AS small_numerator_min,
           max(value) FILTER (WHERE setting = 'small_numerator_max') AS small_numerator_max
    FROM ref.disclosure
),
checked AS (
    -- person-based figures of small groups are hidden (ref.disclosure); numerator and denominator too,
    -- or the value could be recomputed from them
    SELECT x.*, coalesce(x.person_based AND (x.denominator < d.min_denominator
                     OR x.numerator BETWEEN d.small_numerator_min AND d.small_numerator_max), false) AS suppressed
    FROM indicator_inputs AS x CROSS JOIN disclosure AS d
)
SELECT
    indicator,
    level,
    scope_id,
    year::INTEGER AS year,
    CASE WHEN suppressed THEN NULL
         WHEN numerator IS NULL THEN delivered_value
         WHEN denominator_measure IS NULL THEN numerator
         WHEN denominator > 0 THEN scale * numerator / denominator END AS value,
    CASE WHEN NOT suppressed THEN numerator END AS numerator,
    CASE WHEN NOT suppressed THEN denominator END AS denominator,
    unit,
    suppressed
FROM checked
ORDER BY indicator, level, scope_id, year
