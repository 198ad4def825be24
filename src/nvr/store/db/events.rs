//! The event log: idempotent inserts, filtered pages bounded in bytes.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::nvr::store::{Event, EventFilter, EventPage, NewEvent, Payload, StoreError};

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

/// The start times of one camera's events in `[from, to)`, oldest first, at
/// most `limit`: all a timeline draws, without the rows' payloads (a
/// console page asks for a whole day's worth).
pub fn event_starts(
    conn: &Connection,
    camera_id: &str,
    from: i64,
    to: i64,
    limit: u32,
) -> Result<Vec<i64>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT started_at FROM events WHERE camera_id = ?1 AND started_at >= ?2 AND started_at < ?3
         ORDER BY started_at LIMIT ?4",
    )?;
    let rows = st.query_map(rusqlite::params![camera_id, from, to, limit], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The SQL of a page query and its parameters, with only the filters `f`
/// sets, so SQLite picks the index for them (V6): a statement that keeps
/// every filter behind `?n IS NULL OR ...` is planned once for all of them
/// and so scans the table by id.
pub fn event_page_sql(f: &EventFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conds: Vec<&str> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let text = |v: &Option<String>| v.clone().map(Value::Text);
    for (cond, arg) in [
        ("camera_id = ?", text(&f.camera_id)),
        ("type = ?", text(&f.kind)),
        ("label = ?", text(&f.label)),
        ("started_at >= ?", f.after.map(Value::Integer)),
        ("started_at < ?", f.before.map(Value::Integer)),
        ("id > ?", f.after_id.map(Value::Integer)),
        ("id < ?", f.before_id.map(Value::Integer)),
    ] {
        if let Some(arg) = arg {
            conds.push(cond);
            args.push(arg);
        }
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let order = if f.ascending { "ASC" } else { "DESC" };
    args.push(Value::Integer(i64::from(f.limit)));
    // The page's ids first, then its rows: the ids of a time window come
    // from the index on `started_at` alone (it holds the rowid), so even a
    // wide window is sorted by id without reading the rows it skips.
    let sql = format!(
        "SELECT {EVENT_COLS},
                length(CAST(payload AS BLOB)) + coalesce(length(snapshot_path), 0)
         FROM events WHERE id IN (SELECT id FROM events {filter} ORDER BY id {order} LIMIT ?)
         ORDER BY id {order}"
    );
    (sql, args)
}

/// Events matching `f`, stopping early at `f.max_bytes` of stored text
/// (never before the first event), so no page is larger than the budget
/// plus one event.
pub fn event_page<P: Payload>(
    conn: &Connection,
    f: &EventFilter,
) -> Result<EventPage<P>, StoreError> {
    let (sql, args) = event_page_sql(f);
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(args))?;
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

/// The highest event id, 0 when there are none (test-only).
#[cfg(test)]
pub fn last_event_id(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan's detail lines for the page query of `f`.
    fn plan(conn: &Connection, f: &EventFilter) -> Vec<String> {
        let (sql, args) = event_page_sql(f);
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = st
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn page_queries_search_an_index_for_every_common_filter() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::nvr::store::db::open_writer(&dir.path().join("t.db")).unwrap();
        let s = |v: &str| Some(v.to_string());
        let base = EventFilter {
            limit: 100,
            ..EventFilter::default()
        };
        let cam = EventFilter {
            camera_id: s("door"),
            ..base.clone()
        };
        let window = EventFilter {
            after: Some(1),
            before: Some(2),
            ..base.clone()
        };
        let filters = [
            cam.clone(),
            EventFilter {
                kind: s("person_entered"),
                ..cam.clone()
            },
            EventFilter {
                kind: s("person_entered"),
                ..base.clone()
            },
            EventFilter {
                before_id: Some(5),
                ..base.clone()
            },
            EventFilter {
                before_id: Some(5),
                ..cam.clone()
            },
            // Stream and MQTT catch-up, and the API's.
            EventFilter {
                after_id: Some(5),
                ascending: true,
                ..base.clone()
            },
            EventFilter {
                after_id: Some(5),
                ascending: true,
                ..cam.clone()
            },
            window.clone(),
            EventFilter {
                camera_id: s("door"),
                ..window.clone()
            },
        ];
        for f in &filters {
            let p = plan(&c, f);
            assert!(p.iter().all(|l| !l.starts_with("SCAN")), "{f:?}: {p:?}");
            assert!(p
                .iter()
                .any(|l| l.contains("INDEX") || l.contains("PRIMARY KEY (rowid")));
            // Only a time window sorts, and then its index entries alone.
            let sorts = p.iter().any(|l| l.contains("TEMP B-TREE"));
            assert_eq!(sorts, f.after.is_some(), "{f:?}: {p:?}");
            assert!(!sorts || p.iter().any(|l| l.contains("COVERING INDEX")));
        }
        // No filter: the newest rows in id order, stopped by the limit (no sort).
        let p = plan(&c, &base);
        assert!(p.iter().all(|l| !l.contains("TEMP B-TREE")), "{p:?}");
    }
}
