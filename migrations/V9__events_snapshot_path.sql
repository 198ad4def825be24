-- A POSTed event may name a snapshot another event already names: retention
-- must not unlink a file a remaining row still points at. This index lets it
-- check each doomed path with one seek (only rows holding a snapshot are
-- indexed, so it stays as small as the snapshots kept).
CREATE INDEX events_snapshot_path ON events (snapshot_path)
    WHERE snapshot_path IS NOT NULL;
