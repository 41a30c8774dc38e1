import polars as pl

from transforms.sources import AAR, Column, Contract, at_least_zero, between, not_above

_DAYS_IN_YEAR = pl.date(pl.col("aar") + 1, 1, 1) - pl.date(pl.col("aar"), 1, 1)
_FIGURES = ("lejemaal", "fraflytninger", "udsaettelser", "tomgangsdage", "lejemaal_dage", "haervaerkssager",
            "haervaerksudgift")

CONTRACT = Contract(
    source="boligorg_afdelinger",
    description="Yearly figures per housing department (housing organisation).",
    columns=(
        Column("boligorganisation", "Boligorganisation", "text", "The housing organisation, as named in the reference data.",
               aliases=("Organisation", "Boligselskab")),
        Column("afdeling", "Afdeling", "int", "Department number (leading zeros allowed).", aliases=("Afdelingsnummer", "Afd."),
               required_description="Afdeling must be filled in"),
        AAR,
        Column("lejemaal", "Lejemål", "int", "Number of tenancies.", aliases=("Lejemaal", "Boliger"),
               checks=(between("not_positive", "Lejemål must be greater than 0", minimum=1),)),
        Column("fraflytninger", "Fraflytninger", "int", "Move-outs during the year.",
               checks=(at_least_zero("Fraflytninger"),
                       not_above("lejemaal", "above_limit", "Fraflytninger cannot exceed Lejemål"))),
        Column("udsaettelser", "Udsættelser", "int", "Evictions during the year.", aliases=("Udsaettelser",),
               checks=(at_least_zero("Udsættelser"),
                       not_above("fraflytninger", "above_limit", "Udsættelser cannot exceed Fraflytninger"))),
        Column("tomgangsdage", "Tomgangsdage", "int", "Vacancy days summed over tenancies.",
               checks=(at_least_zero("Tomgangsdage"),
                       not_above("tomgangsdage_max", "above_limit", "Tomgangsdage cannot exceed Lejemål x days in the year"))),
        Column("haervaerkssager", "Hærværkssager", "int", "Vandalism cases needing repair.", aliases=("Haervaerkssager",),
               checks=(at_least_zero("Hærværkssager"),)),
        Column("haervaerksudgift", "Hærværksudgift (kr.)", "decimal", "Vandalism repair cost in kr.",
               aliases=("Hærværksudgift", "Haervaerksudgift (kr.)", "Haervaerksudgift"),
               checks=(at_least_zero("Hærværksudgift (kr.)", "value"),)),
        Column("ventelistetal", "Ventelistetal", "int", "People on the waiting list; may be empty.", required=False,
               checks=(at_least_zero("Ventelistetal"),)),
    ),
    levels=None,  # rows name departments, which the reference data places in areas
    department_columns=("boligorganisation", "afdeling"),
    key=("organisation", "afdeling", "aar"),
    partition_by=("organisation", "aar"),
    formats=("csv", "xlsx"),
    rule_columns={"tomgangsdage_max": pl.col("lejemaal") * _DAYS_IN_YEAR.dt.total_days()},
    # Department figures summed per area and year with the membership of the year
    # (core.department_membership), and per plan with the plan's own departments in every year
    # (core.plan_departments, like for like); a scope-year needs every member department's row.
    measures_sql=f"""
WITH delivered_years AS (
    SELECT DISTINCT aar AS year FROM staging.boligorg_afdelinger
),
members AS (
    SELECT 'area' AS level, area_id AS scope_id, kommune_code, year, organisation, afdeling
    FROM core.department_membership WHERE year IN (SELECT year FROM delivered_years)
    UNION ALL
    SELECT 'plan', d.plan_id, d.kommune_code, y.year, d.organisation, d.afdeling
    FROM core.plan_departments AS d CROSS JOIN delivered_years AS y
),
department_figures AS (
    SELECT m.level, m.scope_id, m.kommune_code, m.year, f.lejemaal, f.fraflytninger, f.udsaettelser, f.tomgangsdage,
           f.haervaerkssager, f.haervaerksudgift,
           f.lejemaal * datediff('day', make_date(m.year, 1, 1), make_date(m.year + 1, 1, 1)) AS lejemaal_dage
    FROM members AS m
    LEFT JOIN staging.boligorg_afdelinger AS f
      ON f.organisation = m.organisation AND f.afdeling = m.afdeling AND f.aar = m.year
),
scope_figures AS (
    -- exact sums (as decimals): kroner with øre summed as doubles differ in the last bit by the threads' order
    SELECT level, scope_id, kommune_code, year, {", ".join(f"sum({f}::DECIMAL(38, 10))::DOUBLE AS {f}" for f in _FIGURES)}
    FROM department_figures
    GROUP BY level, scope_id, kommune_code, year
    HAVING count(lejemaal) = count(*)
)
SELECT level, scope_id, kommune_code, year, measure, value
FROM (UNPIVOT scope_figures ON {", ".join(_FIGURES)} INTO NAME measure VALUE value)""",
)
