/*
name: marts.indicator_values
materialized: table
description: >-
  One row per (indicator, level, scope_id, year): the indicator value with its numerator and denominator
  (core.indicator_figures), small groups hidden by disclosure control. A plan's figure counts the
  plan's own departments in every year (like for like).
depends_on: [core.indicator_figures]
grain: [indicator, level, scope_id, year]
columns:
  indicator: Catalog id (ref.indicators), e.g. afgoerelser_pr_1000.
  level: area, plan, kommune, bydel (a kommune's district) or national.
  scope_id: Area id, plan id, kommune code (text), bydel id, landsplan or sub.
  year: Calendar year.
  value: The indicator in its unit; NULL when suppressed (see suppressed) or not computable (e.g. a zero denominator).
  numerator: "Summed numerator (for counts: the count); NULL where the rate was delivered without one."
  denominator: Summed denominator; NULL for counts.
  unit: pct, per_1000, count, grade or kr.
  suppressed: True when disclosure control hides the value, numerator and denominator (person-based indicator, small group, ref.disclosure).
audits:
  not_null: [indicator, level, scope_id, year, unit, suppressed]
  accepted_values: {level: [area, plan, kommune, bydel, national], unit: [pct, per_1000, count, grade, kr]}
  relationships: {indicator: ref.indicators.indicator}
*/
-- person-based figures of small groups are hidden; numerator and denominator too, or the value could be
-- recomputed from them
SELECT
    indicator,
    level,
    scope_id,
    year,
    CASE WHEN NOT suppressed THEN value END AS value,
    CASE WHEN NOT suppressed THEN numerator END AS numerator,
    CASE WHEN NOT suppressed THEN denominator END AS denominator,
    unit,
    suppressed
FROM core.indicator_figures
ORDER BY indicator, level, scope_id, year
