-- Additive counts per area / kommune and year from the police's `I alt` rows (all three laws).
CREATE OR REPLACE VIEW core.measures__politi_sigtelser AS
WITH totals AS (
    SELECT scope_level, scope_id, kommune_code, aar,
           afgoerelser::DOUBLE AS afgoerelser, sigtelser::DOUBLE AS sigtelser,
           sigtede::DOUBLE AS sigtede, sigtede_15_29::DOUBLE AS sigtede_15_29
    FROM staging.politi_sigtelser
    WHERE lovomraade = 'I alt'
)
SELECT scope_level AS level, scope_id, kommune_code, aar AS year, measure, value
FROM (UNPIVOT totals ON afgoerelser, sigtelser, sigtede, sigtede_15_29 INTO NAME measure VALUE value);
