/*
name: marts.target_status
materialized: table
description: >-
  One row per (plan_id, target_id, scope_id, year): a target of the agreements (ref.targets, each with
  the document and section it comes from) against the actual value, for the plan's own years only
  (years before are baselines, never verdicts). A suppressed value still gets its verdict, judged on
  the unsuppressed value, and says so; a year without a value is not evaluable: met is NULL and note
  says why. yearly_change compares with the latest earlier year that has a value, compounding over
  skipped years.
depends_on: [core.indicator_figures, marts.indicator_values, marts.development_vs_kommune, ref.targets, ref.indicators, ref.plans]
grain: [plan_id, target_id, scope_id, year]
columns:
  plan_id: Plan whose agreement sets the target.
  target_id: Target id within the plan (ref.targets), numbered as in the agreement.
  scope_id: Area, plan or bydel id the target is set for.
  year: Calendar year evaluated (one of the plan's own years).
  level: area, plan or bydel.
  indicator: Catalog id of the indicator (ref.indicators).
  rule: below, at_most, above, at_least (fixed threshold); above_reference (a reference level, e.g. the SUB average, of the baseline year or of each year, see reading); at_most_baseline, rising_vs_baseline, falling_vs_baseline, compounded_change (from a baseline year); yearly_change (from the year before); development_vs_kommune (the change since the plan's baseline beats the kommune's).
  target_value: The threshold this year's value is held against, as computed from the rule (for development_vs_kommune the kommune's change).
  actual_value: The indicator value (marts.indicator_values); NULL when missing or suppressed.
  met: Whether the target is met; NULL when not evaluable (see note). A suppressed value is judged on its unsuppressed value.
  note: Why met is NULL, that the value is suppressed, which years a yearly comparison skipped, or that the target is provisional.
  suppressed: True when disclosure control hides the actual value (the verdict is still given).
  reading: How the target is read where the agreement leaves a choice (e.g. which SUB average), as set in ref.targets.
  provisional: True when the agreement leaves the target to be set later and this is the reading in force until then.
  source: The agreement's document and section the target comes from (seeds, e.g. 003 §5.2).
  description: The target in the agreement's words.
audits:
  not_null: [plan_id, target_id, scope_id, year, indicator, rule, source]
  accepted_values: {rule: [below, at_most, above, at_least, above_reference, at_most_baseline, rising_vs_baseline, falling_vs_baseline, compounded_change, yearly_change, development_vs_kommune]}
  relationships: {indicator: ref.indicators.indicator}
*/
WITH named_figures AS (
    -- the figures of the scopes the targets name (their own and their reference's), not all 150,000:
    -- this model is rebuilt whole at every run
    SELECT f.* FROM core.indicator_figures AS f
    WHERE (f.indicator, f.level, f.scope_id) IN (SELECT (indicator, level, scope_id) FROM ref.targets
                                                UNION SELECT (indicator, reference_level, reference_scope_id) FROM ref.targets)
),
named_values AS (
    -- the same for the published values (suppressed or not) and the developments the targets read: joined
    -- whole, each was the build side of its join (150,000 and 78,000 rows for 173 target years)
    SELECT indicator, level, scope_id, year, suppressed FROM marts.indicator_values
    WHERE (indicator, level, scope_id) IN (SELECT (indicator, level, scope_id) FROM ref.targets)
),
named_developments AS (
    SELECT * FROM marts.development_vs_kommune
    WHERE (indicator, plan_id, scope_id) IN (SELECT (indicator, plan_id, scope_id) FROM ref.targets)
),
own_years AS (
    -- a plan's own years: from its first whole year (the start year when it starts on 1 January) to its end
    SELECT plan_id,
           CASE WHEN month(start_date) = 1 AND day(start_date) = 1 THEN year(start_date) ELSE year(start_date) + 1 END
               AS first_own_year,
           year(end_date) AS last_own_year
    FROM ref.plans
),
target_years AS (
    SELECT t.*, y.year::INTEGER AS year,
           CASE WHEN t.rule = 'above_reference' AND t.reading = 'same_year' THEN y.year ELSE t.baseline_year END
               AS reference_year
    FROM ref.targets AS t
    CROSS JOIN generate_series(t.first_year, t.last_year) AS y(year)
    LEFT JOIN own_years AS o ON o.plan_id = t.plan_id
    WHERE t.indicator IS NOT NULL
      -- a target of a plan the reference data names is judged in the plan's own years only
      AND (o.plan_id IS NULL OR y.year BETWEEN o.first_own_year AND o.last_own_year)
),
evaluated AS (
    SELECT
        ty.*,
        i.direction,
        actual.value AS actual_value,
        coalesce(published.suppressed, false) AS actual_suppressed,
        reference.value AS reference_value,
        baseline.value AS baseline_value,
        previous.year AS previous_year,
        previous.value AS previous_value,
        development.kommune_change,
        development.developed_better_than_kommune,
        development.note AS development_note
    FROM target_years AS ty
    JOIN ref.indicators AS i ON i.indicator = ty.indicator
    LEFT JOIN named_figures AS actual
        ON actual.indicator = ty.indicator AND actual.level = ty.level AND actual.scope_id = ty.scope_id
       AND actual.year = ty.year
    LEFT JOIN named_values AS published
        ON published.indicator = ty.indicator AND published.level = ty.level AND published.scope_id = ty.scope_id
       AND published.year = ty.year
    LEFT JOIN named_figures AS reference
        ON reference.indicator = ty.indicator AND reference.level = ty.reference_level
       AND reference.scope_id = ty.reference_scope_id AND reference.year = ty.reference_year
    LEFT JOIN named_figures AS baseline
        ON baseline.indicator = ty.indicator AND baseline.level = ty.level AND baseline.scope_id = ty.scope_id
       AND baseline.year = ty.baseline_year
    LEFT JOIN named_developments AS development
        ON development.indicator = ty.indicator AND development.plan_id = ty.plan_id
       AND development.scope_id = ty.scope_id AND development.year = ty.year
    LEFT JOIN LATERAL (
        SELECT v.year, v.value FROM named_figures AS v
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
            WHEN 'rising_vs_baseline' THEN baseline_value
            WHEN 'falling_vs_baseline' THEN baseline_value
            WHEN 'compounded_change' THEN baseline_value * power(1 + target_value, year - baseline_year)
            WHEN 'yearly_change' THEN previous_value * power(1 + target_value, year - previous_year)
            WHEN 'development_vs_kommune' THEN kommune_change
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
    CASE WHEN NOT actual_suppressed THEN actual_value END AS actual_value,
    CASE
        WHEN rule = 'development_vs_kommune' THEN developed_better_than_kommune
        WHEN actual_value IS NULL OR threshold IS NULL THEN NULL
        WHEN rule = 'below' THEN actual_value < threshold
        WHEN rule IN ('above', 'above_reference', 'rising_vs_baseline') THEN actual_value > threshold
        WHEN rule = 'falling_vs_baseline' THEN actual_value < threshold
        WHEN rule = 'at_least' THEN actual_value >= threshold
        WHEN rule IN ('at_most', 'at_most_baseline') THEN actual_value <= threshold
        WHEN direction = 'lower' THEN actual_value <= threshold
        ELSE actual_value >= threshold
    END AS met,
    nullif(concat_ws('; ',
        CASE WHEN actual_suppressed THEN 'value suppressed by disclosure control; the verdict is judged on the unsuppressed value' END,
        CASE
            WHEN rule = 'development_vs_kommune' THEN
                coalesce(development_note, CASE WHEN developed_better_than_kommune IS NULL
                                                THEN format('no {} value for {} (missing, not zero)', indicator, year) END)
            WHEN actual_value IS NULL THEN format('no {} value for {} (missing, not zero)', indicator, year)
            WHEN rule = 'above_reference' AND threshold IS NULL
                THEN format('no reference value ({} {}, {})', reference_level, reference_scope_id, reference_year)
            WHEN rule IN ('at_most_baseline', 'rising_vs_baseline', 'falling_vs_baseline', 'compounded_change')
                 AND threshold IS NULL THEN format('no baseline value for {}', baseline_year)
            WHEN rule = 'yearly_change' AND threshold IS NULL THEN 'no earlier year with a value to compare with'
            WHEN rule = 'yearly_change' AND year - previous_year > 1
                THEN format('compared with {}: {} year(s) without a value skipped', previous_year, year - previous_year - 1)
        END,
        CASE WHEN coalesce(provisional, false) THEN 'provisional target (see reading)' END), '') AS note,
    actual_suppressed AS suppressed,
    CASE WHEN rule = 'above_reference' AND reading = 'same_year'
             THEN format('the {} level {} of each evaluated year', reference_level, reference_scope_id)
         WHEN rule = 'above_reference'
             THEN format('the {} level {} of {}', reference_level, reference_scope_id, reference_year)
         ELSE reading END AS reading,
    coalesce(provisional, false) AS provisional,
    coalesce(source, 'not recorded') AS source,
    description
FROM thresholds
ORDER BY plan_id, target_id, scope_id, year
