-- Every current event-level row, one shape for all event sources.
CREATE OR REPLACE VIEW core.events AS
SELECT 'politi_anmeldelser' AS source, kommune_code, scope_id AS area_id, year(anmeldt_dato) AS year, kategori AS event_type
FROM staging.politi_anmeldelser
UNION ALL
SELECT 'brand_haendelser', kommune_code, scope_id, year(dato), haendelsestype
FROM staging.brand_haendelser;
