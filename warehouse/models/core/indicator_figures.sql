/*
name: core.indicator_figures
materialized: table
description: >-
  Every catalog indicator (ref.indicators) at every level with data, before disclosure control: the
  value with its numerator and denominator, and whether disclosure control hides it. Rates combine
  areas by summing numerators and denominators; a plan figure needs every one of the plan's areas,
  unless a source delivers the measure for the plan as such (housing, like for like: only the plan's
  departments; own records). Where a source delivers only the rate (no weights), it is taken as
  delivered. Internal: marts.indicator_values publishes it with small cells hidden; target verdicts
  are judged on it.
depends_on: [core.measures, ref.indicators, ref.plan_areas, ref.disclosure]
grain: [indicator, level, scope_id, year]
partition_by: year
# which plans a source delivers a measure for as such is decided over all years (delivered_for_plans)
partition_guard: SELECT DISTINCT measure, scope_id FROM core.measures WHERE level = 'plan'
audits:
  not_null: [indicator, level, scope_id, year, unit, suppressed]
  accepted_values: {level: [area, plan, kommune, bydel, national]}
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
delivered_for_plans AS (
    -- measures a source delivers for a plan as such (housing like for like, own records): never summed from areas
    SELECT DISTINCT measure, scope_id AS plan_id FROM core.measures WHERE level = 'plan'
),
plan_measures AS (
    -- summed as decimals: a sum of doubles depends on the order the threads add them in (0.1 + 0.2 + 0.3 is
    -- 0.6 or 0.6000000000000001), and the same deliveries must give the same figures in every build
    SELECT m.measure, 'plan' AS level, pa.plan_id AS scope_id, m.year, sum(m.value::DECIMAL(38, 10))::DOUBLE AS value
    FROM additive_measures AS m
    JOIN ref.plan_areas AS pa ON m.level = 'area' AND m.scope_id = pa.area_id
    JOIN plan_sizes AS ps ON ps.plan_id = pa.plan_id
    WHERE NOT EXISTS (SELECT 1 FROM delivered_for_plans AS d WHERE d.measure = m.measure AND d.plan_id = pa.plan_id)
    GROUP BY m.measure, pa.plan_id, m.year, ps.area_count
    HAVING count(DISTINCT m.scope_id) = ps.area_count
),
scoped_measures AS (
    SELECT measure, level, scope_id, year, value FROM core.measures
    UNION ALL
    SELECT measure, level, scope_id, year, value FROM plan_measures
),
-- one pass over the measures, each picked by its role in the indicator: referenced once, plan_measures is
-- not materialized, so that a partial build's filter on year reaches core.measures
indicator_inputs AS (
    SELECT i.indicator, m.level, m.scope_id, m.year, any_value(i.unit) AS unit, any_value(i.scale) AS scale,
           any_value(i.denominator_measure) AS denominator_measure, any_value(i.person_based) AS person_based,
           any_value(m.value) FILTER (WHERE m.measure = i.numerator_measure) AS numerator,
           any_value(m.value) FILTER (WHERE m.measure = i.denominator_measure) AS denominator,
           any_value(m.value) FILTER (WHERE m.measure = i.delivered_measure) AS delivered_value
    FROM ref.indicators AS i
    JOIN scoped_measures AS m
      ON m.measure IN (i.numerator_measure, i.denominator_measure, i.delivered_measure)
     AND list_contains(string_split(i.levels, ','), m.level)
    GROUP BY i.indicator, m.level, m.scope_id, m.year
    -- a figure exists where its numerator (or its delivered rate) does, not where only its denominator does
    HAVING count(*) FILTER (WHERE m.measure IN (i.numerator_measure, i.delivered_measure)) > 0
),
disclosure AS (
    SELECT max(value) FILTER (WHERE setting = 'min_denominator') AS min_denominator,
           max(value) FILTER (WHERE setting = 'small_numerator_min') AS small_numerator_min,
           max(value) FILTER (WHERE setting = 'small_numerator_max') AS small_numerator_max
    FROM ref.disclosure
),
checked AS (
    -- person-based figures of small groups are hidden (ref.disclosure; primary suppression)
    -- the small-numerator rule counts persons: a sum of grades or kroner is no head count
    SELECT x.*, coalesce(x.person_based AND (x.denominator < d.min_denominator
                     OR (x.unit NOT IN ('grade', 'kr') AND x.numerator BETWEEN d.small_numerator_min AND d.small_numerator_max)),
                     false) AS suppressed
    FROM indicator_inputs AS x CROSS JOIN disclosure AS d
)
SELECT
    indicator,
    level,
    scope_id,
    year::INTEGER AS year,
    CASE WHEN numerator IS NULL THEN delivered_value
         WHEN denominator_measure IS NULL THEN numerator
         WHEN denominator > 0 THEN scale * numerator / denominator END AS value,
    numerator,
    denominator,
    unit,
    suppressed
FROM checked
