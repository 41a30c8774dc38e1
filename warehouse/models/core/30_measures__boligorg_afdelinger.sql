-- Department figures summed per area and year. A department counts for the area it belonged to on
-- 1 July of the year (ref.departments validity); an area-year needs every member department's row.
CREATE OR REPLACE VIEW core.measures__boligorg_afdelinger AS
WITH delivered_years AS (
    SELECT DISTINCT aar AS year FROM staging.boligorg_afdelinger
),
membership AS (
    SELECT d.boligorganisation AS organisation, d.afdeling, d.area_id, a.kommune_code, y.year
    FROM ref.departments AS d
    JOIN ref.areas AS a ON a.area_id = d.area_id
    JOIN delivered_years AS y
      ON make_date(y.year, 7, 1) BETWEEN d.valid_from AND coalesce(d.valid_to, DATE '9999-12-31')
),
department_figures AS (
    SELECT m.area_id, m.kommune_code, m.year, f.lejemaal, f.fraflytninger, f.udsaettelser, f.tomgangsdage,
           f.haervaerkssager, f.haervaerksudgift,
           f.lejemaal * datediff('day', make_date(m.year, 1, 1), make_date(m.year + 1, 1, 1)) AS lejemaal_dage
    FROM membership AS m
    LEFT JOIN staging.boligorg_afdelinger AS f
      ON f.organisation = m.organisation AND f.afdeling = m.afdeling AND f.aar = m.year
),
area_figures AS (
    SELECT area_id, kommune_code, year,
           sum(lejemaal)::DOUBLE AS lejemaal, sum(fraflytninger)::DOUBLE AS fraflytninger,
           sum(udsaettelser)::DOUBLE AS udsaettelser, sum(tomgangsdage)::DOUBLE AS tomgangsdage,
           sum(lejemaal_dage)::DOUBLE AS lejemaal_dage, sum(haervaerkssager)::DOUBLE AS haervaerkssager,
           sum(haervaerksudgift)::DOUBLE AS haervaerksudgift
    FROM department_figures
    GROUP BY area_id, kommune_code, year
    HAVING count(lejemaal) = count(*)
)
SELECT 'area' AS level, area_id AS scope_id, kommune_code, year, measure, value
FROM (UNPIVOT area_figures
      ON lejemaal, fraflytninger, udsaettelser, tomgangsdage, lejemaal_dage, haervaerkssager, haervaerksudgift
      INTO NAME measure VALUE value);
