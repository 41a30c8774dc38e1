/*
name: core.plan_departments
materialized: view
description: >-
  Plans like for like: the housing departments that belong to a plan are those that belong to one of
  its areas at some time during the plan's period. A plan's housing figures count these departments
  in every year, baseline years included (Schackenborgvænge, gone before en-faelles-indsats-2021
  started, is in none of its years).
depends_on: [ref.plans, ref.plan_areas, ref.departments]
grain: [plan_id, organisation, afdeling]
*/
SELECT DISTINCT p.plan_id, p.kommune_code, d.boligorganisation AS organisation, d.afdeling
FROM ref.plans AS p
JOIN ref.plan_areas AS pa ON pa.plan_id = p.plan_id
JOIN ref.departments AS d ON d.area_id = pa.area_id
WHERE d.valid_from <= p.end_date AND coalesce(d.valid_to, DATE '9999-12-31') >= p.start_date
