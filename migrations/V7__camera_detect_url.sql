-- A camera's optional low-resolution sub-stream (docs/ingest.md#sub-streams):
-- detection decodes it while `source_url` is recorded by stream copy. NULL:
-- detection decodes the main stream.
ALTER TABLE cameras ADD COLUMN detect_url TEXT;
