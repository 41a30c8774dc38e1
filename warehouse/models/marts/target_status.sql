/*
name: marts.target_status
materialized: table
description: >-
  One row per (plan_id, target_id, scope_id, year): a target of the agreements (ref.targets) against the
  actual value, for every year of the target's window. A year without a value, or a suppressed one, is not
  evaluable: met is NULL and note says why. yearly_change compares with the latest earlier year that has
  a value, compounding over skipped years.
depends_on: [marts.indicator_values, ref.targets, ref.indicators]
grain: [plan_id, target_id, scope_id, year]
columns:
  plan_id: Plan whose agreement sets the target.
  target_id: Target id within the plan (ref.targets), numbered as in the agreement.
  scope_id: Area id or plan id the target is set for.
  year: Calendar year evaluated.
  level: area or plan.
  indicator: Catalog id of the indicator (ref.indicators).
  rule: below, at_most, above, at_least (fixed threshold), above_reference (a reference level, e.g. the SUB average or an own baseline year), at_most_baseline, compounded_change (from a baseline year), yearly_change (from the year before).
  target_value: The threshold this year's value is held against, as computed from the rule.
  actual_value: The indicator value (marts.indicator_values); NULL when missing or suppressed.
  met: Whether the target is met; NULL when not evaluable (see note).
  note: Why met is NULL, or which years a yearly comparison skipped.
  suppressed: True when disclosure control hides the actual value.
  description: The target in the agreement's words.
audits:
  not_null: [plan_id, target_id, scope_id, year, indicator, rule]
  relationships: {indicator: ref.indicators.indicator}
*/
WITH target_years AS (
    SELECT t.*, y.year::INTEGER AS year
    FROM ref.targets AS t, generate_series(t.first_year, t.last_year) AS y(year)
),
evaluated AS (
    SELECT
        ty.*,
        i.direction,
        actual.value AS actual_value,
        coalesce(actual.suppressed, false) AS actual_suppressed,
        reference.value AS reference_value,
        baseline.value AS baseline_value,
        previous.year AS previous_year,
        previous.value AS previous_value
    FROM target_years AS ty
    JOIN ref.indicators AS i ON i.indicator = ty.indicator
    LEFT JOIN marts.indicator_values AS actual
        ON actual.indicator = ty.indicator AND actual.level = ty.level AND actual.scope_id = ty.scope_id
       AND actual.year = ty.year
    LEFT JOIN marts.indicator_values AS reference
        ON reference.indicator = ty.indicator AND reference.level = ty.reference_level
       AND reference.scope_id = ty.reference_scope_id AND reference.year = ty.baseline_year
    LEFT JOIN marts.indicator_values AS baseline
        ON baseline.indicator = ty.indicator AND baseline.level = ty.level AND baseline.scope_id = ty.scope_id
       AND baseline.year = ty.baseline_year
    LEFT JOIN LATERAL (
        SELECT v.year, v.value FROM marts.indicator_values AS v
        WHERE v.indicator = ty.indicator AND v.level = ty.level AND v.scope_id = ty.scope_id
          AND v.year < ty.year AND v.year >= ty.baseline_year AND v.value IS NOT NULL
        ORDER BY v.year DESC LIMIT 1
    ) AS previous ON true
),
thresholds AS (
    SELECT *,
        CASE rule
            WHEN 'below' THEN target_value
            WHEN 'at_most' THEN target_value
            WHEN 'above' THEN target_value
            WHEN 'at_least' THEN target_value
            WHEN 'above_reference' THEN reference_value
            WHEN 'at_most_baseline' THEN baseline_value
            WHEN 'compounded_change' THEN baseline_value * power(1 + target_value, year - baseline_year)
            WHEN 'yearly_change' THEN previous_value * power(1 + target_value, year - previous_year)
        END AS threshold
    FROM evaluated
)
SELECT
    plan_id,
    target_id,
    scope_id,
    year,
    level,
    indicator,
    rule,
    threshold AS target_value,
    actual_value,
    CASE
        WHEN actual_value IS NULL OR threshold IS NULL THEN NULL
        WHEN rule = 'below' THEN actual_value < threshold
        WHEN rule IN ('above', 'above_reference') THEN actual_value > threshold
        WHEN rule = 'at_least' THEN actual_value >= threshold
        WHEN rule IN ('at_most', 'at_most_baseline') THEN actual_value <= threshold
        WHEN direction = 'lower' THEN actual_value <= threshold
        ELSE actual_value >= threshold
    END AS met,
    CASE
        WHEN actual_suppressed THEN 'value suppressed by disclosure control'
        WHEN actual_value IS NULL THEN format('no {} value for {} (missing, not zero)', indicator, year)
        WHEN rule = 'above_reference' AND threshold IS NULL
            THEN format('no reference value ({} {}, {})', reference_level, reference_scope_id, baseline_year)
        WHEN rule IN ('at_most_baseline', 'compounded_change') AND threshold IS NULL
            THEN format('no baseline value for {}', baseline_year)
        WHEN rule = 'yearly_change' AND threshold IS NULL THEN 'no earlier year with a value to compare with'
        WHEN rule = 'yearly_change' AND year - previous_year > 1
            THEN format('compared with {}: {} year(s) without a value skipped', previous_year, year - previous_year - 1)
    END AS note,
    actual_suppressed AS suppressed,
    description
FROM thresholds
ORDER BY plan_id, target_id, scope_id, year
