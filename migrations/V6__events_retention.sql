-- Events at scale (docs/ingest.md "Event retention", docs/performance.md).
--
-- `GET /api/v1/events` lists by id (the cursor) under optional filters; these
-- indexes let SQLite walk only the matching rows in id order and stop at the
-- page's limit, instead of scanning the table (10 M rows on a busy box).
-- An index entry holds its key and the rowid, so `(camera_id, id)` is the
-- camera's events in id order.
CREATE INDEX events_camera_id ON events (camera_id, id);
CREATE INDEX events_camera_type_id ON events (camera_id, type, id);
CREATE INDEX events_type_id ON events (type, id);
-- Retention detaches snapshots older than their camera's retention: only
-- rows that still hold one are indexed, so the index stays as small as the
-- snapshots kept and a pass never rescans rows already done.
CREATE INDEX events_snapshot ON events (camera_id, started_at)
    WHERE snapshot_path IS NOT NULL;
-- Snapshot files whose rows are gone (or let go of them), still to unlink.
-- Written in the same transaction that deletes the rows, emptied after the
-- files are unlinked, so a crash in between leaves a to-do list that the
-- next pass (the first runs at start) finishes: never a file without a row
-- nor a row pointing at a deleted file.
CREATE TABLE snapshot_trash (
    path  TEXT PRIMARY KEY
) WITHOUT ROWID;
