from dataclasses import replace

from transforms.sources import (
    OMRAADE,
    Check,
    Column,
    Contract,
    at_least_zero,
    in_reference,
)

CONTRACT = Contract(
    source="indsats_registreringer",
    description="The initiative's own records (egne registreringer): counts of its activities per plan or area, "
                "by year, half-year or quarter (the secretariat).",
    columns=(
        Column("plan", "Plan", "text", "Plan id or the plan's name.",
               checks=(replace(Check("unknown_plan", "Plan must be a plan id or name of the reference data (plans.csv)",
                                     "expect_column_values_to_not_be_null"), checked="plan_id"),)),
        replace(OMRAADE, description="Area name or alias; empty for the whole plan."),
        Column("periode", "Periode", "period", "2019 (year), 2019-H1/2019-H2 (half-year) or 2019-Q3 (quarter)."),
        Column("maaling", "Måling", "text", "An activity measure of the catalog, e.g. frivillige.", aliases=("Maaling",),
               checks=(in_reference("unknown_measure", "Måling must be an activity measure of the catalog "
                                    "(indicators.csv, source indsats_registreringer)", "activity_measures"),)),
        Column("vaerdi", "Værdi", "decimal", "The count (or amount) for the period.", aliases=("Vaerdi",),
               checks=(at_least_zero("Værdi", "value"),)),
        Column("kommentar", "Kommentar", "text", "Free text; never personal data.", required=False),
    ),
    levels=("area", "plan"),
    plan_column="plan",
    key=("plan_id", "scope_level", "scope_id", "periode", "maaling"),
    partition_by=("plan_id", "periode"),
    formats=("csv", "xlsx"),
    # A year's value is its whole-year row if there is one, else the sum of half-years and quarters
    # once they cover all twelve months (periods add up to the year for counts); a partial year has none.
    measures_sql="""
WITH records AS (
    SELECT r.scope_level AS level, r.scope_id, p.kommune_code, CAST(left(r.periode, 4) AS INTEGER) AS year,
           r.maaling AS measure, r.vaerdi, r.periode,
           CASE WHEN length(r.periode) = 4 THEN 12 WHEN r.periode LIKE '%-H_' THEN 6 ELSE 3 END AS months
    FROM staging.indsats_registreringer AS r JOIN ref.plans AS p ON p.plan_id = r.plan_id
),
years AS (
    SELECT level, scope_id, kommune_code, year, measure,
           -- exact sums (as decimals): doubles summed differ in the last bit by the order the threads add them in
           sum(vaerdi::DECIMAL(38, 10)) FILTER (WHERE months = 12)::DOUBLE AS whole_year,
           sum(vaerdi::DECIMAL(38, 10)) FILTER (WHERE months < 12)::DOUBLE AS parts,
           sum(months) FILTER (WHERE months < 12) AS months_covered
    FROM records
    GROUP BY ALL
)
SELECT level, scope_id, kommune_code, year, measure, coalesce(whole_year, CASE WHEN months_covered = 12 THEN parts END) AS value
FROM years
WHERE whole_year IS NOT NULL OR months_covered = 12""",
)
