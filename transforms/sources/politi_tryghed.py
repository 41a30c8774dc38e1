from dataclasses import replace

from transforms.sources import (
    AAR,
    KOMMUNEKODE,
    NATIONAL_ROWS,
    OMRAADE,
    Column,
    Contract,
    between,
)
from transforms.sources._survey import SHARES_SUM, survey_columns, survey_measures_sql

_NATIONAL_EMPTY = " must be filled in (empty only for Landsplan and SUB-gennemsnit)"

CONTRACT = Contract(
    source="politi_tryghed",
    description="The police's yearly safety survey (tryghedsmåling): weighted shares per area, kommune and nation.",
    columns=(
        AAR,
        replace(KOMMUNEKODE, required=NATIONAL_ROWS, required_description="Kommunekode" + _NATIONAL_EMPTY),
        OMRAADE,
        *survey_columns(
            Column("respondenter", "Respondenter", "int", "Number of respondents; may be empty for national levels.",
                   required=NATIONAL_ROWS, required_description="Respondenter" + _NATIONAL_EMPTY,
                   checks=(between("respondents_not_positive", "Respondenter must be greater than 0", minimum=1),)),
            trygge_required=True),
    ),
    levels=("area", "kommune", "national"),
    key=("aar", "scope_level", "scope_id"),
    partition_by=("kommunekode", "aar"),
    rule_columns=SHARES_SUM,
    measures_sql=survey_measures_sql("staging.politi_tryghed", "'tryghed_'"),
)
