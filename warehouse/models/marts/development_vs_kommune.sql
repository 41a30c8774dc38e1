/*
name: marts.development_vs_kommune
materialized: table
description: >-
  LBF's rule: the area's development is held up against the kommune's development. One row per
  (indicator, plan_id, scope_id, year) from the plan's baseline year (ref.plans) on, for the plan and each
  of its areas: the change since the baseline beside the kommune's change. Rates and shares only: a
  count is never compared with the whole kommune's count.
depends_on: [marts.indicator_values, ref.plans, ref.plan_areas, ref.indicators]
grain: [indicator, plan_id, scope_id, year]
partition_by: year
# a year's rows also read the baseline years' values: when any of those changed, every year is rebuilt
partition_guard: >-
  SELECT count(*), sum(hash(indicator, level, scope_id, year, value, suppressed)::HUGEINT) FROM marts.indicator_values
  WHERE year IN (SELECT coalesce(baseline_year, year(start_date) - 1) FROM ref.plans)
columns:
  indicator: Catalog id (ref.indicators); rates and shares only.
  plan_id: Plan whose baseline year is used.
  level: plan or area.
  scope_id: The plan id or one of its area ids.
  year: Calendar year.
  baseline_year: The plan's baseline year (ref.plans.baseline_year).
  baseline_value: The scope's value in the baseline year.
  value: The scope's value this year.
  change: value - baseline_value.
  kommune_code: The kommune the plan lies in.
  kommune_baseline_value: The kommune's value in the baseline year.
  kommune_value: The kommune's value this year.
  kommune_change: kommune_value - kommune_baseline_value.
  developed_better_than_kommune: Whether change beats kommune_change by the indicator's direction; NULL when not comparable (see note).
  note: Why developed_better_than_kommune is NULL (a suppressed or missing value), else NULL.
audits:
  not_null: [indicator, plan_id, level, scope_id, year, baseline_year]
  accepted_values: {level: [plan, area]}
  relationships: {indicator: ref.indicators.indicator, plan_id: ref.plans.plan_id}
*/
WITH plan_scopes AS (
    SELECT plan_id, 'plan' AS level, plan_id AS scope_id, kommune_code,
           coalesce(baseline_year, year(start_date) - 1) AS baseline_year
    FROM ref.plans
    UNION ALL
    SELECT p.plan_id, 'area', pa.area_id, p.kommune_code, coalesce(p.baseline_year, year(p.start_date) - 1)
    FROM ref.plans AS p JOIN ref.plan_areas AS pa ON pa.plan_id = p.plan_id
),
compared AS (
    SELECT v.indicator, s.plan_id, s.level, s.scope_id, v.year, s.baseline_year, b.value AS baseline_value,
           v.value, v.value - b.value AS change, s.kommune_code, kb.value AS kommune_baseline_value,
           k.value AS kommune_value, k.value - kb.value AS kommune_change, i.direction,
           v.suppressed OR coalesce(b.suppressed, false) AS suppressed
    FROM plan_scopes AS s
    JOIN marts.indicator_values AS v ON v.level = s.level AND v.scope_id = s.scope_id AND v.year >= s.baseline_year
    JOIN ref.indicators AS i ON i.indicator = v.indicator AND i.unit <> 'count'
    LEFT JOIN marts.indicator_values AS b
        ON b.indicator = v.indicator AND b.level = s.level AND b.scope_id = s.scope_id AND b.year = s.baseline_year
    LEFT JOIN marts.indicator_values AS kb
        ON kb.indicator = v.indicator AND kb.level = 'kommune' AND kb.scope_id = s.kommune_code AND kb.year = s.baseline_year
    LEFT JOIN marts.indicator_values AS k
        ON k.indicator = v.indicator AND k.level = 'kommune' AND k.scope_id = s.kommune_code AND k.year = v.year
)
SELECT indicator, plan_id, level, scope_id, year, baseline_year, baseline_value, value, change, kommune_code,
       kommune_baseline_value, kommune_value, kommune_change,
       CASE direction WHEN 'lower' THEN change < kommune_change WHEN 'higher' THEN change > kommune_change END
           AS developed_better_than_kommune,
       CASE WHEN suppressed THEN 'a value is suppressed by disclosure control'
            WHEN baseline_value IS NULL THEN format('no {} value for the baseline year {}', level, baseline_year)
            WHEN value IS NULL THEN 'no value this year'
            WHEN kommune_baseline_value IS NULL THEN format('no kommune value for the baseline year {}', baseline_year)
            WHEN kommune_value IS NULL THEN 'no kommune value this year' END AS note
FROM compared
ORDER BY indicator, plan_id, level DESC, scope_id, year
