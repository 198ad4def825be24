-- A camera's motion settings set through the camera API (docs/ingest.md#masks-through-the-camera-api):
-- JSON `{"enabled": true|false|null, "masks": [[[x, y], ...], ...]}`, checked
-- by the API before it is stored. NULL: the config file's
-- `[ingest.motion.cameras.<id>]` entry applies.
ALTER TABLE cameras ADD COLUMN motion TEXT;
