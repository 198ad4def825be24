-- The events idempotency key gains `type`: a track's `person_entered` and
-- `person_left` may share camera, track and instant, and both must be stored
-- (V1 kept only the first). SQLite cannot change a table's constraints, so
-- the table is rebuilt with the same rows, ids and AUTOINCREMENT high-water
-- mark (ids are the stream cursor and are never reused).
CREATE TABLE events_v4 (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    camera_id      TEXT NOT NULL,
    type           TEXT NOT NULL,
    label          TEXT,
    score          REAL,
    track_id       INTEGER,
    started_at     INTEGER NOT NULL,
    ended_at       INTEGER,
    bbox           TEXT,
    snapshot_path  TEXT,
    model_id       TEXT,
    model_sha256   TEXT,
    payload        TEXT NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL,
    UNIQUE (camera_id, type, track_id, started_at)
);
INSERT INTO events_v4 (id, camera_id, type, label, score, track_id, started_at, ended_at, bbox,
                       snapshot_path, model_id, model_sha256, payload, created_at)
    SELECT id, camera_id, type, label, score, track_id, started_at, ended_at, bbox,
           snapshot_path, model_id, model_sha256, payload, created_at
    FROM events ORDER BY id;
-- The old table's sequence may be above its highest id (retention deleted the newest).
DELETE FROM sqlite_sequence WHERE name = 'events_v4';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'events_v4', max(seq) FROM sqlite_sequence WHERE name = 'events'
    HAVING count(*) > 0;
DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;
CREATE INDEX events_camera_started ON events (camera_id, started_at);
CREATE INDEX events_started ON events (started_at);
