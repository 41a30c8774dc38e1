from transforms.sources import (
    AAR,
    KOMMUNEKODE,
    OMRAADE,
    Column,
    Contract,
    When,
    at_least_zero,
    between,
    in_reference,
    not_above,
)

# Rows that are denominators (head counts) rather than catalog indicators (spec/extracts.md).
POPULATION_MEASURES = ("befolkning", "befolkning_15_29", "befolkning_18plus")

CONTRACT = Contract(
    source="kommune_noegletal",
    description="Municipal key figures as numerator/denominator per area and indicator, yearly (kommune).",
    columns=(
        AAR,
        KOMMUNEKODE,
        OMRAADE,
        Column("indikator", "Indikator", "text",
               "Municipal indicator id from the catalog, or befolkning, befolkning_15_29, befolkning_18plus.",
               checks=(in_reference("unknown_indicator", "Indikator must be a municipal indicator id of the catalog, "
                                    "or befolkning, befolkning_15_29, befolkning_18plus", "municipal_indicators"),)),
        Column("taeller", "Tæller", "decimal",
               "Numerator; for karakter_9kl_gns the sum of grades; the head count for befolkning*.",
               aliases=("Taeller",),
               checks=(at_least_zero("Tæller", "value"),
                       not_above("naevner", "numerator_above_denominator",
                                 "Tæller cannot exceed Nævner (except for karakter_9kl_gns, whose Tæller is a sum of grades)",
                                 When("indikator", "!=", "karakter_9kl_gns")))),
        Column("naevner", "Nævner", "int", "Denominator; empty for befolkning*.", aliases=("Naevner",),
               required=When("indikator", "NOT_IN", list(POPULATION_MEASURES)),
               required_description="Nævner must be filled in for every indicator but befolkning*",
               checks=(between("denominator_not_positive", "Nævner must be greater than 0", minimum=1),)),
    ),
    key=("aar", "kommune_code", "scope_level", "scope_id", "indikator"),
    partition_by=("kommunekode", "aar"),
    formats=("csv", "xlsx"),
    # numerator/denominator pairs as `<indikator>_taeller` / `<indikator>_naevner`; head counts as one measure
    measures_sql="""
WITH figures AS (
    SELECT scope_level AS level, scope_id, kommune_code, aar AS year, indikator, taeller, naevner::DOUBLE AS naevner,
           starts_with(indikator, 'befolkning') AS is_population
    FROM staging.kommune_noegletal
)
SELECT level, scope_id, kommune_code, year, indikator AS measure, taeller AS value FROM figures WHERE is_population
UNION ALL
SELECT level, scope_id, kommune_code, year, indikator || '_taeller', taeller FROM figures WHERE NOT is_population
UNION ALL
SELECT level, scope_id, kommune_code, year, indikator || '_naevner', naevner FROM figures WHERE NOT is_population""",
)
