from transforms.sources import AAR, KOMMUNEKODE, OMRAADE, Column, Contract, between
from transforms.sources._survey import SHARES_SUM, survey_columns, survey_measures_sql

CONTRACT = Contract(
    source="kommune_tryghed",
    description="A kommune's own yearly safety survey (Københavns Kommunes tryghedsundersøgelse) by bydel, area "
                "and the whole kommune.",
    columns=(
        AAR,
        KOMMUNEKODE,
        OMRAADE,
        *survey_columns(
            Column("respondenter", "Respondenter", "int", "Number of respondents; may be empty.", required=False,
                   checks=(between("respondents_not_positive", "Respondenter must be greater than 0", minimum=1),)),
            trygge_required=False),
    ),
    levels=("area", "kommune", "bydel"),
    key=("aar", "kommune_code", "scope_level", "scope_id"),
    partition_by=("kommunekode", "aar"),
    formats=("csv", "xlsx"),
    rule_columns=SHARES_SUM,
    # Bydele are this survey's alone, so its bydel rows feed tryghed_andel/utryghed_andel; its area and
    # kommune rows stay apart (kommune_tryghed_*) so two surveys of one area never add up.
    measures_sql=survey_measures_sql("staging.kommune_tryghed",
                                     "CASE WHEN scope_level = 'bydel' THEN 'tryghed_' ELSE 'kommune_tryghed_' END"),
)
