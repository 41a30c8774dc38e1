/*
name: core.department_membership
materialized: view
description: >-
  The one membership rule: a housing department counts, for a year, for the area it belonged to on
  1 July of that year (ref.departments validity). Staging (transforms/reference.py, MEMBERSHIP_DAY)
  applies the same day when it checks a delivered department.
depends_on: [ref.departments, ref.areas]
grain: [organisation, afdeling, year]
*/
SELECT d.boligorganisation AS organisation, d.afdeling, d.area_id, a.kommune_code, y.year::INTEGER AS year
FROM ref.departments AS d
JOIN ref.areas AS a ON a.area_id = d.area_id
JOIN range(2000, year(current_date) + 1) AS y(year)
  ON make_date(y.year::INTEGER, 7, 1) BETWEEN d.valid_from AND coalesce(d.valid_to, DATE '9999-12-31')
