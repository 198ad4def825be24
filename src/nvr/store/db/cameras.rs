//! Cameras: what ingest runs and the camera API edits.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::is_unique_violation;
use crate::config::CameraMotion;
use crate::nvr::store::{Camera, CameraPatch, RecordMode, StoreError};

const CAMERA_COLS: &str = "id, name, source_url, enabled, detect_fps, record, retention_days,
    created_at, updated_at, record_mode, detect_url, motion";

fn camera_row(r: &Row) -> rusqlite::Result<Camera> {
    let id: String = r.get(0)?;
    Ok(Camera {
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
        detect_url: r.get(10)?,
        // Only the camera API writes it, after checking it; a value that no
        // longer reads (a future schema) is said, not silently dropped: the
        // camera then runs on the config file's masks.
        motion: r.get::<_, Option<String>>(11)?.and_then(|j| {
            serde_json::from_str(&j)
                .inspect_err(|e| {
                    tracing::warn!(camera = %id, error = %e, "a camera's stored motion settings do not read; the config file's apply")
                })
                .ok()
        }),
        id,
    })
}

/// The `motion` column's text for a patch's settings (`None`: NULL).
fn motion_json(m: Option<&CameraMotion>) -> Result<Option<String>, StoreError> {
    m.map(serde_json::to_string)
        .transpose()
        .map_err(|_| StoreError::Internal("motion settings as JSON"))
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
                              created_at, updated_at, record_mode, detect_url, motion)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, nullif(?10, ''), ?11)",
        params![
            id,
            c.name.as_deref().unwrap_or(id),
            c.source_url.as_deref().unwrap_or_default(),
            c.enabled.unwrap_or(true),
            c.detect_fps.unwrap_or(5.0),
            c.record.unwrap_or(true),
            c.retention_days.unwrap_or(7),
            now,
            c.record_mode.unwrap_or_default().as_str(),
            c.detect_url,
            motion_json(c.motion.as_ref().and_then(Option::as_ref))?
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
            updated_at = ?8, record_mode = coalesce(?9, record_mode),
            detect_url = CASE WHEN ?10 IS NULL THEN detect_url ELSE nullif(?10, '') END,
            motion = CASE WHEN ?11 THEN ?12 ELSE motion END
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
            c.record_mode.map(RecordMode::as_str),
            c.detect_url,
            c.motion.is_some(),
            motion_json(c.motion.as_ref().and_then(Option::as_ref))?
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
