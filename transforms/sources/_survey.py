"""What the two safety surveys (the police's and a kommune's own) share: their share columns and how
shares become additive measures. Not a source itself (no CONTRACT)."""

from dataclasses import replace

import polars as pl

from transforms.sources import Column, between, share


def survey_columns(respondents: Column, trygge_required: bool) -> tuple[Column, ...]:
    """Andel trygge, Andel utrygge (their sum at most 100) and Respondenter."""
    utrygge = share("andel_utrygge", "Andel utrygge (%)", "Weighted share (%) answering 5-7: feel unsafe.",
                    ("Andel utrygge", "Utrygge (%)"), required=not trygge_required)
    return (
        share("andel_trygge", "Andel trygge (%)", "Weighted share (%) answering 1-3: feel safe.",
              ("Andel trygge", "Trygge (%)"), required=trygge_required),
        replace(utrygge, checks=(*utrygge.checks, replace(
            between("shares_above_100", "Andel trygge + Andel utrygge cannot exceed 100", maximum=100),
            checked="andel_trygge_og_utrygge"))),
        respondents,
    )


SHARES_SUM = {"andel_trygge_og_utrygge": pl.col("andel_trygge") + pl.col("andel_utrygge")}


def survey_measures_sql(staging_table: str, measure_prefix: str) -> str:
    """Shares as respondent-weighted counts, so areas combine weighted by respondents: <prefix>trygge =
    share/100 x respondents, summed, over <prefix>respondenter. Rows without respondents (e.g. Landsplan)
    keep the share as delivered (tryghed_andel_delivered, utryghed_andel_delivered). `measure_prefix` is
    SQL for the prefix of a row's measure names."""
    return f"""
WITH survey AS (
    SELECT scope_level AS level, scope_id, kommune_code, aar AS year, andel_trygge, andel_utrygge,
           respondenter::DOUBLE AS respondents, {measure_prefix} AS prefix
    FROM {staging_table}
)
SELECT level, scope_id, kommune_code, year, prefix || 'respondenter' AS measure, respondents AS value
FROM survey WHERE respondents IS NOT NULL
UNION ALL
SELECT level, scope_id, kommune_code, year, prefix || 'trygge', andel_trygge / 100 * respondents
FROM survey WHERE respondents IS NOT NULL AND andel_trygge IS NOT NULL
UNION ALL
SELECT level, scope_id, kommune_code, year, prefix || 'utrygge', andel_utrygge / 100 * respondents
FROM survey WHERE respondents IS NOT NULL AND andel_utrygge IS NOT NULL
UNION ALL
SELECT level, scope_id, kommune_code, year, 'tryghed_andel_delivered', andel_trygge
FROM survey WHERE respondents IS NULL AND andel_trygge IS NOT NULL
UNION ALL
SELECT level, scope_id, kommune_code, year, 'utryghed_andel_delivered', andel_utrygge
FROM survey WHERE respondents IS NULL AND andel_utrygge IS NOT NULL"""
