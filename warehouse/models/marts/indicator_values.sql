/*
name: marts.indicator_values
materialized: table
description: >-
  One row per (indicator, level, scope_id, year): the indicator value with its numerator and denominator
  (core.indicator_figures), small groups hidden by disclosure control. A plan's figure counts the
  plan's own departments in every year (like for like).
depends_on: [core.indicator_figures, core.disclosure]
grain: [indicator, level, scope_id, year]
partition_by: year
columns:
  indicator: Catalog id (ref.indicators), e.g. afgoerelser_pr_1000.
  level: area, plan, kommune, bydel (a kommune's district) or national.
  scope_id: Area id, plan id, kommune code (text), bydel id, landsplan or sub.
  year: Calendar year.
  value: The indicator in its unit; NULL when suppressed (see suppressed) or not computable (e.g. a zero denominator).
  numerator: "Summed numerator (for counts: the count); NULL where the rate was delivered without one."
  denominator: Summed denominator; NULL for counts.
  unit: pct, per_1000, count, grade or kr.
  suppressed: True when disclosure control hides the value, numerator and denominator (see suppression).
  suppression: "Why it is hidden: primary (a small group of persons, ref.disclosure) or complementary (hidden so that no difference of two published figures gives a hidden one back); NULL when published."
audits:
  not_null: [indicator, level, scope_id, year, unit, suppressed]
  accepted_values: {level: [area, plan, kommune, bydel, national], unit: [pct, per_1000, count, grade, kr], suppression: [primary, complementary]}
  relationships: {indicator: ref.indicators.indicator}
*/
-- hidden cells (core.disclosure) lose value, numerator and denominator, or the value could be recomputed
SELECT
    f.indicator,
    f.level,
    f.scope_id,
    f.year,
    CASE WHEN d.suppression IS NULL THEN f.value END AS value,
    CASE WHEN d.suppression IS NULL THEN f.numerator END AS numerator,
    CASE WHEN d.suppression IS NULL THEN f.denominator END AS denominator,
    f.unit,
    d.suppression IS NOT NULL AS suppressed,
    d.suppression
FROM core.indicator_figures AS f
JOIN core.disclosure AS d USING (indicator, level, scope_id, year)
ORDER BY f.indicator, f.level, f.scope_id, f.year
