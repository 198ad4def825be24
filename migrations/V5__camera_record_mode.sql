-- How a camera's video is recorded (docs/ingest.md): `auto` probes the codec
-- and stream-copies H.264/H.265, transcoding anything else to H.264; `copy`
-- and `transcode` force one way.
ALTER TABLE cameras ADD COLUMN record_mode TEXT NOT NULL DEFAULT 'auto'
    CHECK (record_mode IN ('auto', 'copy', 'transcode'));
