-- Which event-level rows each count measure counts: one row per (source, event type); event_type NULL
-- counts every type of the source.
CREATE OR REPLACE VIEW core.event_types AS
SELECT * FROM (VALUES
    ('politi_anmeldelser', 'Hærværk', 'anmeldelser_haervaerk'),
    ('politi_anmeldelser', 'Indbrud', 'anmeldelser_indbrud'),
    ('politi_anmeldelser', 'Vold', 'anmeldelser_vold'),
    ('politi_anmeldelser', 'Tyveri', 'anmeldelser_tyveri'),
    ('politi_anmeldelser', 'Narkotika', 'anmeldelser_narkotika'),
    ('politi_anmeldelser', 'Brandstiftelse', 'anmeldelser_brandstiftelse'),
    ('politi_anmeldelser', 'Andet', 'anmeldelser_andet'),
    ('politi_anmeldelser', NULL, 'anmeldelser'),
    ('brand_haendelser', 'Påsat brand', 'paasatte_brande')
) AS t(source, event_type, measure);
