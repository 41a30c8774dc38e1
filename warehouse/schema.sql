-- Tables the pipeline keeps across runs. Applied to a build that lacks any of it (warehouse/load.py:
-- ensure_schema compares the catalog with what this file makes of an empty database), so it holds only
-- what that comparison sees: CREATE SCHEMA/TABLE IF NOT EXISTS, ALTER TABLE ... ADD COLUMN IF NOT EXISTS
-- and COMMENT ON (tests/test_declarations.py).
CREATE SCHEMA IF NOT EXISTS meta;
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS ref;

CREATE TABLE IF NOT EXISTS meta.deliveries (
    delivery_id INTEGER PRIMARY KEY,
    source VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    received_at TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,
    reason VARCHAR,
    rows_read INTEGER,
    rows_loaded INTEGER,
    rows_quarantined INTEGER,
    encoding VARCHAR,
    size_bytes BIGINT,
    archive_path VARCHAR,
    run_id VARCHAR,
    warnings VARCHAR
);
-- columns added after the first release: older warehouses gain them here
ALTER TABLE meta.deliveries ADD COLUMN IF NOT EXISTS warnings VARCHAR;
COMMENT ON TABLE meta.deliveries IS 'The ledger: one row per landed file, whatever became of it.';
COMMENT ON COLUMN meta.deliveries.delivery_id IS 'Sequential id of the delivery; every raw, staged and quarantined row carries it.';
COMMENT ON COLUMN meta.deliveries.source IS 'Contract (landing folder) the file arrived in, e.g. politi_sigtelser.';
COMMENT ON COLUMN meta.deliveries.file_name IS 'Path of the file below its source folder, as landed.';
COMMENT ON COLUMN meta.deliveries.sha256 IS 'SHA-256 of the file bytes; the archived copy is stored under this name.';
COMMENT ON COLUMN meta.deliveries.received_at IS 'When the pipeline took the file in (UTC).';
COMMENT ON COLUMN meta.deliveries.status IS 'loaded, loaded_with_quarantine, rejected, duplicate or superseded (every partition replaced by a later delivery).';
COMMENT ON COLUMN meta.deliveries.reason IS 'Why the file was rejected, or which delivery it duplicates.';
COMMENT ON COLUMN meta.deliveries.rows_read IS 'Data rows in the file (header excluded).';
COMMENT ON COLUMN meta.deliveries.rows_loaded IS 'Rows that passed validation into staging.';
COMMENT ON COLUMN meta.deliveries.rows_quarantined IS 'Rows held back in meta.quarantine.';
COMMENT ON COLUMN meta.deliveries.encoding IS 'Detected text encoding (utf-8, utf-8-sig, cp1252, iso-8859-1) or xlsx.';
COMMENT ON COLUMN meta.deliveries.size_bytes IS 'File size in bytes.';
COMMENT ON COLUMN meta.deliveries.archive_path IS 'Where the unchanged raw file is kept (content-addressed).';
COMMENT ON COLUMN meta.deliveries.run_id IS 'The pipeline run (Prefect flow run id) that took the file in.';
COMMENT ON COLUMN meta.deliveries.warnings IS 'What was delivered but not read, for the steward: columns the contract does not know (by header as delivered; their values are not stored), XLSX sheets after the first. NULL when none.';

CREATE TABLE IF NOT EXISTS meta.quarantine (
    delivery_id INTEGER NOT NULL,
    line_number INTEGER NOT NULL,
    rule VARCHAR NOT NULL,
    column_name VARCHAR,
    value VARCHAR,
    status VARCHAR NOT NULL,
    resolved_at TIMESTAMP,
    resolved_by VARCHAR,
    note VARCHAR,
    partition_key VARCHAR
);
-- columns added after the first release: older warehouses gain them here
ALTER TABLE meta.quarantine ADD COLUMN IF NOT EXISTS resolved_by VARCHAR;
COMMENT ON TABLE meta.quarantine IS 'One row per broken rule of a quarantined row; the row itself stays in raw.<source>.';
COMMENT ON COLUMN meta.quarantine.delivery_id IS 'Delivery (meta.deliveries) the row came in.';
COMMENT ON COLUMN meta.quarantine.line_number IS '1-based line in the file; the header is line 1.';
COMMENT ON COLUMN meta.quarantine.rule IS 'Short id of the broken rule (e.g. unknown_area, type_int); the expectation suite describes each.';
COMMENT ON COLUMN meta.quarantine.column_name IS 'Canonical name of the offending column.';
COMMENT ON COLUMN meta.quarantine.value IS 'The offending value exactly as delivered.';
COMMENT ON COLUMN meta.quarantine.status IS 'open, released (loaded after a fix) or waived (closed without loading: by a steward with a reason, or because a corrected delivery replaced the partition).';
COMMENT ON COLUMN meta.quarantine.resolved_at IS 'When the row was released or waived (UTC).';
COMMENT ON COLUMN meta.quarantine.resolved_by IS 'Who released or waived it: a steward''s user name, or boligdata when a corrected delivery replaced its partition.';
COMMENT ON COLUMN meta.quarantine.note IS 'More about the problem (e.g. which delivery already holds a duplicate id), or why it was released or waived.';
COMMENT ON COLUMN meta.quarantine.partition_key IS 'Partition the row belongs to, where it could be determined.';

CREATE TABLE IF NOT EXISTS meta.partitions (
    source VARCHAR NOT NULL,
    partition_key VARCHAR NOT NULL,
    delivery_id INTEGER NOT NULL,
    superseded_by INTEGER
);
COMMENT ON TABLE meta.partitions IS 'Which delivery holds each partition of each source; older holders keep superseded_by.';
COMMENT ON COLUMN meta.partitions.source IS 'Contract (landing folder).';
COMMENT ON COLUMN meta.partitions.partition_key IS 'The contract''s partition key, parts joined by |, e.g. 330|2016.';
COMMENT ON COLUMN meta.partitions.delivery_id IS 'Delivery that loaded this partition.';
COMMENT ON COLUMN meta.partitions.superseded_by IS 'Later delivery that replaced it; NULL while current.';

CREATE TABLE IF NOT EXISTS meta.runs (
    run_id VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    landing_dir VARCHAR,
    new_deliveries INTEGER,
    model_fingerprint VARCHAR
);
COMMENT ON TABLE meta.runs IS 'Completed pipeline runs that changed the warehouse.';
COMMENT ON COLUMN meta.runs.run_id IS 'Prefect flow run id.';
COMMENT ON COLUMN meta.runs.started_at IS 'Start of the run (UTC).';
COMMENT ON COLUMN meta.runs.finished_at IS 'When the run published the warehouse (UTC).';
COMMENT ON COLUMN meta.runs.landing_dir IS 'Landing folder the run scanned.';
COMMENT ON COLUMN meta.runs.new_deliveries IS 'Files the run took in.';
COMMENT ON COLUMN meta.runs.model_fingerprint IS 'Hash of the reference data and models the marts were built with.';

CREATE TABLE IF NOT EXISTS meta.reports (
    report_id INTEGER PRIMARY KEY,
    plan_id VARCHAR NOT NULL,
    period VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by VARCHAR NOT NULL,
    html_file VARCHAR NOT NULL,
    html_sha256 VARCHAR NOT NULL,
    pdf_file VARCHAR NOT NULL,
    pdf_sha256 VARCHAR NOT NULL,
    verdict_year INTEGER,
    previous_report_id INTEGER
);
COMMENT ON TABLE meta.reports IS 'Board and auditor reports (boligdata report): one row per report written, never changed afterwards.';
COMMENT ON COLUMN meta.reports.report_id IS 'Sequential id of the report; meta.reported_figures rows carry it.';
COMMENT ON COLUMN meta.reports.plan_id IS 'Plan the report is about (ref.plans).';
COMMENT ON COLUMN meta.reports.period IS 'Period reported: a year (2019) or a half-year (2019-H1).';
COMMENT ON COLUMN meta.reports.created_at IS 'When the report was written (UTC).';
COMMENT ON COLUMN meta.reports.created_by IS 'User who wrote the report.';
COMMENT ON COLUMN meta.reports.html_file IS 'File name of the HTML page as written (in the --out folder).';
COMMENT ON COLUMN meta.reports.html_sha256 IS 'SHA-256 of the HTML file as written.';
COMMENT ON COLUMN meta.reports.pdf_file IS 'File name of the PDF as written (in the --out folder).';
COMMENT ON COLUMN meta.reports.pdf_sha256 IS 'SHA-256 of the PDF as written.';
COMMENT ON COLUMN meta.reports.verdict_year IS 'The year whose target verdicts the report gives (the period''s year; for a half-year the latest whole year with data).';
COMMENT ON COLUMN meta.reports.previous_report_id IS 'The plan''s report before this one, whose figures this one lists revisions against; NULL for the first.';

CREATE TABLE IF NOT EXISTS meta.reported_figures (
    report_id INTEGER NOT NULL,
    kind VARCHAR NOT NULL,
    indicator VARCHAR NOT NULL,
    level VARCHAR NOT NULL,
    scope_id VARCHAR NOT NULL,
    period VARCHAR NOT NULL,
    year INTEGER NOT NULL,
    target_id VARCHAR,
    value DOUBLE,
    suppressed BOOLEAN NOT NULL,
    met BOOLEAN,
    verdict VARCHAR,
    delivery_ids INTEGER[] NOT NULL
);
COMMENT ON TABLE meta.reported_figures IS 'Every figure a report showed, as it showed it: what the board was told, kept when later deliveries correct the figure.';
COMMENT ON COLUMN meta.reported_figures.report_id IS 'Report (meta.reports) that showed the figure.';
COMMENT ON COLUMN meta.reported_figures.kind IS 'indicator (a yearly value of marts.indicator_values), target (a verdict of marts.target_status) or half_year (an event count or own record by half-year).';
COMMENT ON COLUMN meta.reported_figures.indicator IS 'Catalog id (ref.indicators), or for half_year the event measure or own-record measure.';
COMMENT ON COLUMN meta.reported_figures.level IS 'area, plan, kommune or bydel.';
COMMENT ON COLUMN meta.reported_figures.scope_id IS 'Area, plan, kommune code or bydel id.';
COMMENT ON COLUMN meta.reported_figures.period IS 'The figure''s period: a year (2019) or a half-year (2019-H1).';
COMMENT ON COLUMN meta.reported_figures.year IS 'Calendar year of the period.';
COMMENT ON COLUMN meta.reported_figures.target_id IS 'For kind target: the target (ref.targets); else NULL.';
COMMENT ON COLUMN meta.reported_figures.value IS 'The value as reported; NULL when suppressed by disclosure control or missing.';
COMMENT ON COLUMN meta.reported_figures.suppressed IS 'True when the value was hidden by disclosure control.';
COMMENT ON COLUMN meta.reported_figures.met IS 'For kind target: the verdict (true met, false not met, NULL not evaluable).';
COMMENT ON COLUMN meta.reported_figures.verdict IS 'For kind target: the verdict as the report put it (opfyldt, ikke opfyldt, kan ikke vurderes: why).';
COMMENT ON COLUMN meta.reported_figures.delivery_ids IS 'The deliveries (meta.deliveries) whose staged rows the figure was computed from.';

CREATE TABLE IF NOT EXISTS meta.steward_actions (
    action_id INTEGER NOT NULL,
    acted_at TIMESTAMP NOT NULL,
    who VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    target VARCHAR,
    reason VARCHAR,
    result VARCHAR,
    delivery_id INTEGER
);
COMMENT ON TABLE meta.steward_actions IS 'What stewards did through boligdata (waive, retry, dismiss a rejected file, reference edits), with who and when.';
COMMENT ON COLUMN meta.steward_actions.action_id IS 'Sequential id of the action.';
COMMENT ON COLUMN meta.steward_actions.acted_at IS 'When the action was taken (UTC).';
COMMENT ON COLUMN meta.steward_actions.who IS 'The steward''s user name (the desk''s user for actions in the browser).';
COMMENT ON COLUMN meta.steward_actions.action IS 'waive, retry, dismiss_file or reference_edit.';
COMMENT ON COLUMN meta.steward_actions.target IS 'What it applied to, e.g. delivery 3 line 4, rule unknown_area, scope_aliases.csv.';
COMMENT ON COLUMN meta.steward_actions.reason IS 'The reason the steward gave.';
COMMENT ON COLUMN meta.steward_actions.result IS 'What it did, e.g. waived 2 row problem(s).';
COMMENT ON COLUMN meta.steward_actions.delivery_id IS 'The delivery it applied to, where it applied to one.';
