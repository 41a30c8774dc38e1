"""The warehouse's declarative parts: schema.sql (meta tables), models/ (core views, marts tables,
run in file-name order per layer) and reference/ (steward-editable reference data)."""
