-- The kommune's numerator/denominator pairs as measures `<indikator>_taeller` / `<indikator>_naevner`;
-- population rows (befolkning*) are a single measure named after the row.
CREATE OR REPLACE VIEW core.measures__kommune_noegletal AS
WITH figures AS (
    SELECT scope_level AS level, scope_id, kommune_code, aar AS year, indikator, taeller, naevner::DOUBLE AS naevner,
           starts_with(indikator, 'befolkning') AS is_population
    FROM staging.kommune_noegletal
)
SELECT level, scope_id, kommune_code, year, indikator AS measure, taeller AS value FROM figures WHERE is_population
UNION ALL
SELECT level, scope_id, kommune_code, year, indikator || '_taeller', taeller FROM figures WHERE NOT is_population
UNION ALL
SELECT level, scope_id, kommune_code, year, indikator || '_naevner', naevner FROM figures WHERE NOT is_population;
