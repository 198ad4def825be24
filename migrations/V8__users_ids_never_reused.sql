-- User ids are never reused. Without AUTOINCREMENT SQLite hands out
-- max(id) + 1, so removing the newest user and adding another gave the new
-- one the old id; a JWT, stream ticket or console session of the removed
-- user (checked by id and token version) would then have worked as the new
-- user. Rebuilt with AUTOINCREMENT, keeping every id; api_tokens, the only
-- table that references users, is rebuilt beside it so no DROP cascades
-- into it (foreign keys are on during migrations). No indexes or triggers
-- exist on either table beyond their UNIQUE constraints, recreated here.

CREATE TABLE users_v8 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    username         TEXT NOT NULL UNIQUE,
    password_hash    TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    -- Bumped on password change; refresh tokens carry it, so old ones die.
    -- A new user's starts at a random value (set by the store).
    token_version    INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
INSERT INTO users_v8 (id, username, password_hash, role, token_version, created_at, updated_at)
    SELECT id, username, password_hash, role, token_version, created_at, updated_at FROM users;

CREATE TABLE api_tokens_v8 (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users_v8 (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- sha256 of the token, hex; the token itself is shown once and never stored.
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER
);
INSERT INTO api_tokens_v8 (id, user_id, name, token_hash, role, created_at, expires_at, revoked_at)
    SELECT id, user_id, name, token_hash, role, created_at, expires_at, revoked_at FROM api_tokens;

DROP TABLE api_tokens;
DROP TABLE users;
-- Renaming users_v8 also renames the reference in api_tokens_v8.
ALTER TABLE users_v8 RENAME TO users;
ALTER TABLE api_tokens_v8 RENAME TO api_tokens;
