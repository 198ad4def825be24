//! The recordings index: one row per finished chunk, written by ingest through the writer.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::nvr::store::{Recording, StoreError};

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
