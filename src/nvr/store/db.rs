//! Connections and SQL. Every query is a plain function on a `Connection`, so
//! the writer task, the read pool and the CLI all run the same code.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use super::{
    ApiToken, Camera, CameraPatch, Event, EventFilter, EventPage, NewEvent, Payload, RecordMode,
    Recording, Role, StoreError, User,
};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long a connection waits for another process's lock (the CLI writing
/// while the daemon runs) before reporting busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the read-write connection, creating the file if needed, and brings
/// the schema up to date.
///
/// WAL lets readers run during commits; `synchronous=FULL` fsyncs the WAL on
/// every commit, so a committed transaction survives power loss, not only a
/// process crash.
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    embedded::migrations::runner()
        .run(&mut conn)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(conn)
}

/// Opens a read-only connection (the file must exist: the writer made it).
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// `PRAGMA integrity_check` and `foreign_key_check`; the problems found, empty if none.
pub fn check(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let mut st = conn.prepare("PRAGMA integrity_check")?;
    for r in st.query_map([], |r| r.get::<_, String>(0))? {
        let r = r?;
        if r != "ok" {
            problems.push(r);
        }
    }
    let mut st = conn.prepare("PRAGMA foreign_key_check")?;
    for r in st.query_map([], |r| r.get::<_, String>(0))? {
        problems.push(format!("foreign key violation in table {}", r?));
    }
    Ok(problems)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn role_col(r: &Row, idx: usize) -> rusqlite::Result<Role> {
    let s: String = r.get(idx)?;
    Role::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, s.into())
    })
}

// ---------------------------------------------------------------- users

const USER_COLS: &str = "id, username, password_hash, role, token_version, created_at";

fn user_row(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        role: role_col(r, 3)?,
        token_version: r.get(4)?,
        created_at: r.get(5)?,
    })
}

/// Adds a user; `Conflict` when the name is taken.
pub fn create_user(
    conn: &Connection,
    username: &str,
    password_hash: &str,
    role: Role,
    now: i64,
) -> Result<User, StoreError> {
    conn.execute(
        "INSERT INTO users (username, password_hash, role, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![username, password_hash, role.as_str(), now],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("user")
        } else {
            e.into()
        }
    })?;
    user_by_name(conn, username)?.ok_or(StoreError::NotFound("user"))
}

/// Looks a user up by name.
pub fn user_by_name(conn: &Connection, username: &str) -> Result<Option<User>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLS} FROM users WHERE username = ?1"),
            [username],
            user_row,
        )
        .optional()?)
}

/// Looks a user up by id.
pub fn user_by_id(conn: &Connection, id: i64) -> Result<Option<User>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
            [id],
            user_row,
        )
        .optional()?)
}

/// Every user, by name.
pub fn list_users(conn: &Connection) -> Result<Vec<User>, StoreError> {
    let mut st = conn.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))?;
    let rows = st.query_map([], user_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many users exist; zero at first start means "create the initial admin".
pub fn count_users(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
}

/// Replaces a password and bumps the token version, which revokes every
/// refresh token issued before.
pub fn set_password(
    conn: &Connection,
    username: &str,
    password_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE users SET password_hash = ?2, token_version = token_version + 1, updated_at = ?3
         WHERE username = ?1",
        params![username, password_hash, now],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

/// Bumps a user's token version: every refresh token issued before stops
/// working (logout; JWTs are stateless, so this is what can be revoked).
pub fn end_sessions(conn: &Connection, user_id: i64, now: i64) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE users SET token_version = token_version + 1, updated_at = ?2 WHERE id = ?1",
        params![user_id, now],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

// ---------------------------------------------------------------- api tokens

const TOKEN_COLS: &str = "id, user_id, name, role, created_at, expires_at, revoked_at";

fn token_row(r: &Row) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        role: role_col(r, 3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

/// Stores a token's hash.
pub fn create_token(
    conn: &Connection,
    user_id: i64,
    name: &str,
    token_hash: &str,
    role: Role,
    now: i64,
    expires_at: Option<i64>,
) -> Result<ApiToken, StoreError> {
    conn.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, role, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![user_id, name, token_hash, role.as_str(), now, expires_at],
    )?;
    let id = conn.last_insert_rowid();
    Ok(conn.query_row(
        &format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE id = ?1"),
        [id],
        token_row,
    )?)
}

/// Tokens, newest first; all users' when `user_id` is `None`.
pub fn list_tokens(conn: &Connection, user_id: Option<i64>) -> Result<Vec<ApiToken>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {TOKEN_COLS} FROM api_tokens WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id DESC"
    ))?;
    let rows = st.query_map([user_id], token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks a token revoked (kept for the audit trail). `NotFound` if it does
/// not exist or belongs to someone else when `user_id` is given.
pub fn revoke_token(
    conn: &Connection,
    id: i64,
    user_id: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?3)
         WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)",
        params![id, user_id, now],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("token"));
    }
    Ok(())
}

/// The live token with this hash and its owner's name, if it is usable at `now`.
pub fn token_by_hash(
    conn: &Connection,
    token_hash: &str,
    now: i64,
) -> Result<Option<(ApiToken, String)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT t.id, t.user_id, t.name, t.role, t.created_at, t.expires_at, t.revoked_at,
                    u.username
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ?1 AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > ?2)",
            params![token_hash, now],
            |r| Ok((token_row(r)?, r.get(7)?)),
        )
        .optional()?)
}

/// Whether the token with this id is usable at `now` (not revoked, not
/// expired, its user still there): what an open stream re-checks.
pub fn token_live(conn: &Connection, id: i64, now: i64) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.id = ?1 AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > ?2)",
            params![id, now],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

// ---------------------------------------------------------------- cameras

const CAMERA_COLS: &str = "id, name, source_url, enabled, detect_fps, record, retention_days,
    created_at, updated_at, record_mode";

fn camera_row(r: &Row) -> rusqlite::Result<Camera> {
    Ok(Camera {
        id: r.get(0)?,
        name: r.get(1)?,
        source_url: r.get(2)?,
        enabled: r.get(3)?,
        detect_fps: r.get(4)?,
        record: r.get(5)?,
        retention_days: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        // The column's CHECK admits only the three spellings.
        record_mode: RecordMode::parse(&r.get::<_, String>(9)?).unwrap_or_default(),
    })
}

/// Every camera, by id.
pub fn list_cameras(conn: &Connection) -> Result<Vec<Camera>, StoreError> {
    let mut st = conn.prepare(&format!("SELECT {CAMERA_COLS} FROM cameras ORDER BY id"))?;
    let rows = st.query_map([], camera_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One camera.
pub fn get_camera(conn: &Connection, id: &str) -> Result<Option<Camera>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {CAMERA_COLS} FROM cameras WHERE id = ?1"),
            [id],
            camera_row,
        )
        .optional()?)
}

/// Adds a camera from a complete patch (the web layer fills defaults).
pub fn create_camera(
    conn: &Connection,
    id: &str,
    c: &CameraPatch,
    now: i64,
) -> Result<Camera, StoreError> {
    conn.execute(
        "INSERT INTO cameras (id, name, source_url, enabled, detect_fps, record, retention_days,
                              created_at, updated_at, record_mode)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
        params![
            id,
            c.name.as_deref().unwrap_or(id),
            c.source_url.as_deref().unwrap_or_default(),
            c.enabled.unwrap_or(true),
            c.detect_fps.unwrap_or(5.0),
            c.record.unwrap_or(true),
            c.retention_days.unwrap_or(7),
            now,
            c.record_mode.unwrap_or_default().as_str()
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict("camera")
        } else {
            e.into()
        }
    })?;
    get_camera(conn, id)?.ok_or(StoreError::NotFound("camera"))
}

/// Changes the given fields of a camera.
pub fn update_camera(
    conn: &Connection,
    id: &str,
    c: &CameraPatch,
    now: i64,
) -> Result<Camera, StoreError> {
    let n = conn.execute(
        "UPDATE cameras SET name = coalesce(?2, name), source_url = coalesce(?3, source_url),
            enabled = coalesce(?4, enabled), detect_fps = coalesce(?5, detect_fps),
            record = coalesce(?6, record), retention_days = coalesce(?7, retention_days),
            updated_at = ?8, record_mode = coalesce(?9, record_mode)
         WHERE id = ?1",
        params![
            id,
            c.name,
            c.source_url,
            c.enabled,
            c.detect_fps,
            c.record,
            c.retention_days,
            now,
            c.record_mode.map(RecordMode::as_str)
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("camera"));
    }
    get_camera(conn, id)?.ok_or(StoreError::NotFound("camera"))
}

/// Removes a camera (its recordings and events stay).
pub fn delete_camera(conn: &Connection, id: &str) -> Result<(), StoreError> {
    if conn.execute("DELETE FROM cameras WHERE id = ?1", [id])? == 0 {
        return Err(StoreError::NotFound("camera"));
    }
    Ok(())
}

// ---------------------------------------------------------------- recordings

const RECORDING_COLS: &str = "id, camera_id, start_ms, end_ms, size_bytes, path";

fn recording_row(r: &Row) -> rusqlite::Result<Recording> {
    Ok(Recording {
        id: r.get(0)?,
        camera_id: r.get(1)?,
        start_ms: r.get(2)?,
        end_ms: r.get(3)?,
        size_bytes: r.get(4)?,
        path: r.get(5)?,
    })
}

/// Indexes a finished chunk (the ingest pipeline calls this through the writer).
pub fn add_recording(
    conn: &Connection,
    camera_id: &str,
    start_ms: i64,
    end_ms: i64,
    size_bytes: i64,
    path: &str,
) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO recordings (camera_id, start_ms, end_ms, size_bytes, path)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![camera_id, start_ms, end_ms, size_bytes, path],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Chunks of `camera_id` that overlap `[start_ms, end_ms)`, oldest first.
/// A chunk that ends exactly where the range starts does not overlap.
pub fn recordings_in_range(
    conn: &Connection,
    camera_id: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<Recording>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {RECORDING_COLS} FROM recordings
         WHERE camera_id = ?1 AND start_ms < ?3 AND end_ms > ?2
         ORDER BY start_ms, id"
    ))?;
    let rows = st.query_map(params![camera_id, start_ms, end_ms], recording_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One chunk of one camera.
pub fn get_recording(
    conn: &Connection,
    camera_id: &str,
    id: i64,
) -> Result<Option<Recording>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {RECORDING_COLS} FROM recordings WHERE id = ?1 AND camera_id = ?2"),
            params![id, camera_id],
            recording_row,
        )
        .optional()?)
}

/// Every indexed chunk, oldest first: what retention and the startup
/// reconciliation walk.
pub fn all_recordings(conn: &Connection) -> Result<Vec<Recording>, StoreError> {
    let mut st = conn.prepare(&format!(
        "SELECT {RECORDING_COLS} FROM recordings ORDER BY start_ms, id"
    ))?;
    let rows = st.query_map([], recording_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether a chunk file is already indexed.
pub fn recording_indexed(conn: &Connection, path: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM recordings WHERE path = ?1", [path], |_| {
            Ok(())
        })
        .optional()?
        .is_some())
}

/// Removes chunks from the index (retention, or files found missing).
pub fn delete_recordings(conn: &Connection, ids: &[i64]) -> Result<usize, StoreError> {
    let mut st = conn.prepare("DELETE FROM recordings WHERE id = ?1")?;
    let mut n = 0;
    for id in ids {
        n += st.execute([id])?;
    }
    Ok(n)
}

// ---------------------------------------------------------------- events

const EVENT_COLS: &str = "id, camera_id, type, label, score, track_id, started_at, ended_at, bbox,
    snapshot_path, model_id, model_sha256, payload, created_at";

/// What a row costs in a page besides its payload and snapshot path:
/// field names, numbers, bbox, model id and hash (a generous round figure).
const EVENT_ROW_OVERHEAD: usize = 512;

fn event_row<P: Payload>(r: &Row) -> rusqlite::Result<Event<P>> {
    let bad_json = |idx: usize, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    };
    let bbox: Option<String> = r.get(8)?;
    let bbox = match bbox {
        Some(s) => Some(serde_json::from_str(&s).map_err(|e| bad_json(8, e))?),
        None => None,
    };
    let payload: String = r.get(12)?;
    Ok(Event {
        id: r.get(0)?,
        camera_id: r.get(1)?,
        kind: r.get(2)?,
        label: r.get(3)?,
        score: r.get(4)?,
        track_id: r.get(5)?,
        started_at: r.get(6)?,
        ended_at: r.get(7)?,
        bbox,
        snapshot_path: r.get(9)?,
        model_id: r.get(10)?,
        model_sha256: r.get(11)?,
        payload: P::from_stored(payload).map_err(|e| bad_json(12, e))?,
        created_at: r.get(13)?,
    })
}

/// Stores an event; when `(camera_id, type, track_id, started_at)` already exists
/// the existing row comes back with `false`, so a writer that retries after a
/// lost reply does not duplicate it.
pub fn insert_event(
    conn: &Connection,
    e: &NewEvent,
    now: i64,
) -> Result<(Event, bool), StoreError> {
    let started = e.started_at.unwrap_or(now);
    let bbox = e.bbox.map(|b| serde_json::to_string(&b)).transpose();
    let payload = serde_json::to_string(&e.payload.clone().unwrap_or_default());
    let (bbox, payload) = match (bbox, payload) {
        (Ok(b), Ok(p)) => (b, p),
        _ => return Err(StoreError::Corrupt("event does not serialise".into())),
    };
    // Look first: a repeat then costs no insert and burns no AUTOINCREMENT id.
    // (The writer is the only writer, so nothing can slip in between.)
    let existing = |conn: &Connection| {
        conn.query_row(
            &format!(
                "SELECT {EVENT_COLS} FROM events
                 WHERE camera_id = ?1 AND type = ?2 AND track_id IS ?3 AND started_at = ?4"
            ),
            params![e.camera_id, e.kind, e.track_id, started],
            event_row,
        )
        .optional()
    };
    if e.track_id.is_some() {
        if let Some(row) = existing(conn)? {
            return Ok((row, false));
        }
    }
    let inserted = conn.execute(
        "INSERT INTO events (camera_id, type, label, score, track_id, started_at, ended_at, bbox,
                             snapshot_path, model_id, model_sha256, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (camera_id, type, track_id, started_at) DO NOTHING",
        params![
            e.camera_id,
            e.kind,
            e.label,
            e.score,
            e.track_id,
            started,
            e.ended_at,
            bbox,
            e.snapshot_path,
            e.model_id,
            e.model_sha256,
            payload,
            now
        ],
    )?;
    let row = if inserted == 1 {
        conn.query_row(
            &format!("SELECT {EVENT_COLS} FROM events WHERE id = ?1"),
            [conn.last_insert_rowid()],
            event_row,
        )?
    } else {
        existing(conn)?.ok_or(StoreError::NotFound("event"))?
    };
    Ok((row, inserted == 1))
}

/// One event.
pub fn get_event(conn: &Connection, id: i64) -> Result<Option<Event>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {EVENT_COLS} FROM events WHERE id = ?1"),
            [id],
            event_row,
        )
        .optional()?)
}

/// Events matching `f`, by id in the order it asks for.
pub fn list_events(conn: &Connection, f: &EventFilter) -> Result<Vec<Event>, StoreError> {
    Ok(event_page(conn, f)?.events)
}

/// Events matching `f`, stopping early at `f.max_bytes` of stored text
/// (never before the first event), so no page is larger than the budget
/// plus one event.
pub fn event_page<P: Payload>(
    conn: &Connection,
    f: &EventFilter,
) -> Result<EventPage<P>, StoreError> {
    let order = if f.ascending { "ASC" } else { "DESC" };
    let mut st = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLS},
                length(CAST(payload AS BLOB)) + coalesce(length(snapshot_path), 0)
         FROM events
         WHERE (?1 IS NULL OR camera_id = ?1) AND (?2 IS NULL OR type = ?2)
           AND (?3 IS NULL OR label = ?3) AND (?4 IS NULL OR started_at >= ?4)
           AND (?5 IS NULL OR started_at < ?5) AND (?6 IS NULL OR id > ?6)
           AND (?7 IS NULL OR id < ?7)
         ORDER BY id {order} LIMIT ?8"
    ))?;
    let mut rows = st.query(params![
        f.camera_id,
        f.kind,
        f.label,
        f.after,
        f.before,
        f.after_id,
        f.before_id,
        f.limit
    ])?;
    let budget = f.max_bytes.unwrap_or(usize::MAX);
    let (mut events, mut used) = (Vec::new(), 0usize);
    while let Some(r) = rows.next()? {
        let cost = r.get::<_, i64>(14)?.max(0) as usize + EVENT_ROW_OVERHEAD;
        if !events.is_empty() && used.saturating_add(cost) > budget {
            return Ok(EventPage {
                events,
                truncated: true,
            });
        }
        used += cost;
        events.push(event_row(r)?);
    }
    Ok(EventPage {
        events,
        truncated: false,
    })
}

/// The highest event id, 0 when there are none.
pub fn last_event_id(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))?)
}
