-- Tables the pipeline keeps across runs. Idempotent: applied at the start of every run.
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
    run_id VARCHAR
);
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
