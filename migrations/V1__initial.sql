-- The NVR core's first schema. Times are integer epoch milliseconds (UTC).

CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE,
    password_hash    TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    -- Bumped on password change; refresh tokens carry it, so old ones die.
    token_version    INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- sha256 of the token, hex; the token itself is shown once and never stored.
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE cameras (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    source_url      TEXT NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    detect_fps      REAL NOT NULL DEFAULT 5,
    record          INTEGER NOT NULL DEFAULT 1 CHECK (record IN (0, 1)),
    retention_days  INTEGER NOT NULL DEFAULT 7,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- No foreign key to cameras: recordings outlive a deleted camera (evidence).
CREATE TABLE recordings (
    id          INTEGER PRIMARY KEY,
    camera_id   TEXT NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    size_bytes  INTEGER NOT NULL CHECK (size_bytes >= 0),
    -- Relative to <data_dir>/recordings.
    path        TEXT NOT NULL UNIQUE,
    CHECK (end_ms >= start_ms)
);
CREATE INDEX recordings_camera_start ON recordings (camera_id, start_ms);

-- AUTOINCREMENT: ids are the stream cursor and must never be reused, even
-- after retention deletes the newest rows.
CREATE TABLE events (
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
    UNIQUE (camera_id, track_id, started_at)
);
CREATE INDEX events_camera_started ON events (camera_id, started_at);
CREATE INDEX events_started ON events (started_at);
