/*
name: marts.targets_without_data
materialized: table
description: >-
  The agreed targets no delivery feeds yet, listed rather than dropped: targets whose measure no source
  of the pipeline delivers (no catalog indicator), and targets whose indicator has no value for their
  scope yet.
depends_on: [ref.targets, ref.indicators, core.indicator_figures]
grain: [plan_id, target_id, scope_id]
columns:
  plan_id: Plan whose agreement sets the target.
  target_id: Target id within the plan (ref.targets).
  scope_id: Area, plan or bydel id the target is set for (NULL where the agreement names none).
  indicator: Catalog id, NULL when no source delivers the measure.
  description: The target in the agreement's words.
  source: The agreement's document and section (seeds).
  data_source: The data source the agreement names for it.
  reason: Why there is no verdict.
audits:
  not_null: [plan_id, target_id, reason]
*/
SELECT DISTINCT t.plan_id, t.target_id, t.scope_id, t.indicator, t.description, coalesce(t.source, 'not recorded') AS source,
       t.data_source,
       CASE WHEN t.indicator IS NULL THEN 'no source of the pipeline delivers this measure yet'
            ELSE format('no {} value for {} yet (source {})', t.indicator, t.scope_id, i.source) END AS reason
FROM ref.targets AS t
LEFT JOIN ref.indicators AS i ON i.indicator = t.indicator
WHERE t.indicator IS NULL
   OR NOT EXISTS (SELECT 1 FROM core.indicator_figures AS v
                  WHERE v.indicator = t.indicator AND v.level = t.level AND v.scope_id = t.scope_id)
ORDER BY t.plan_id, t.target_id, t.scope_id
