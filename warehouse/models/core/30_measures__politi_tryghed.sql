-- Survey shares as respondent-weighted counts, so areas combine weighted by respondents:
-- tryghed_trygge = share/100 x respondents, summed, over tryghed_respondenter.
-- Rows without respondents (Landsplan, SUB-gennemsnit) keep the share as delivered (*_delivered).
CREATE OR REPLACE VIEW core.measures__politi_tryghed AS
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
FROM survey WHERE respondents IS NULL AND andel_utrygge IS NOT NULL;
