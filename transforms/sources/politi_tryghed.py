from dataclasses import replace

import polars as pl

from transforms.sources import (
    AAR,
    KOMMUNEKODE,
    NATIONAL_ROWS,
    OMRAADE,
    Column,
    Contract,
    between,
)

_NATIONAL_EMPTY = " must be filled in (empty only for Landsplan and SUB-gennemsnit)"


def _share(name: str, header: str, description: str, aliases: tuple[str, ...], required: bool) -> Column:
    return Column(name, header, "decimal", description, aliases=aliases, required=required,
                  required_description=f"{header} must be filled in",
                  checks=(between("share_out_of_range", f"{header} must lie between 0 and 100", minimum=0, maximum=100),))


_utrygge = _share("andel_utrygge", "Andel utrygge (%)", "Weighted share (%) answering 5-7: feel unsafe.",
                  ("Andel utrygge", "Utrygge (%)"), required=False)

CONTRACT = Contract(
    source="politi_tryghed",
    description="The police's yearly safety survey (tryghedsmåling): weighted shares per area, kommune and nation.",
    columns=(
        AAR,
        replace(KOMMUNEKODE, required=NATIONAL_ROWS, required_description="Kommunekode" + _NATIONAL_EMPTY),
        OMRAADE,
        _share("andel_trygge", "Andel trygge (%)", "Weighted share (%) answering 1-3: feel safe.",
               ("Andel trygge", "Trygge (%)"), required=True),
        replace(_utrygge, checks=(*_utrygge.checks, replace(
            between("shares_above_100", "Andel trygge + Andel utrygge cannot exceed 100", maximum=100),
            checked="andel_trygge_og_utrygge"))),
        Column("respondenter", "Respondenter", "int", "Number of respondents; may be empty for national levels.",
               required=NATIONAL_ROWS, required_description="Respondenter" + _NATIONAL_EMPTY,
               checks=(between("respondents_not_positive", "Respondenter must be greater than 0", minimum=1),)),
    ),
    levels=("area", "kommune", "national"),
    key=("aar", "scope_level", "scope_id"),
    partition_by=("kommunekode", "aar"),
    rule_columns={"andel_trygge_og_utrygge": pl.col("andel_trygge") + pl.col("andel_utrygge")},
    # Shares as respondent-weighted counts, so areas combine weighted by respondents: tryghed_trygge =
    # share/100 x respondents, summed, over tryghed_respondenter. Rows without respondents (Landsplan,
    # SUB-gennemsnit) keep the share as delivered (*_delivered).
    measures_sql="""
WITH survey AS (
    SELECT scope_level AS level, scope_id, kommune_code, aar AS year, andel_trygge, andel_utrygge,
           respondenter::DOUBLE AS respondents
    FROM staging.politi_tryghed
)
SELECT level, scope_id, kommune_code, year, 'tryghed_respondenter' AS measure, respondents AS value
FROM survey WHERE respondents IS NOT NULL
UNION ALL
SELECT level, scope_id, kommune_code, year, 'tryghed_trygge', andel_trygge / 100 * respondents
FROM survey WHERE respondents IS NOT NULL
UNION ALL
SELECT level, scope_id, kommune_code, year, 'tryghed_utrygge', andel_utrygge / 100 * respondents
FROM survey WHERE respondents IS NOT NULL AND andel_utrygge IS NOT NULL
UNION ALL
SELECT level, scope_id, kommune_code, year, 'tryghed_andel_delivered', andel_trygge
FROM survey WHERE respondents IS NULL
UNION ALL
SELECT level, scope_id, kommune_code, year, 'utryghed_andel_delivered', andel_utrygge
FROM survey WHERE respondents IS NULL AND andel_utrygge IS NOT NULL""",
)
