//! Event retention's SQL: which events go, deleting them with their
//! snapshots' paths moved to `snapshot_trash` in the same transaction, and
//! that to-do list (migration V6). The order of work that makes it
//! crash-safe lives in `ingest::events_retention`.
//!
//! Every deleting function takes `guard`: no event above that id is touched
//! (the MQTT mirror's acknowledged cursor while the mirror is on), and at
//! most `limit` rows, so one call holds the writer for one short batch.

use rusqlite::{params, Connection};

use crate::nvr::store::{outbox, StoreError};

/// Cameras with events: a loose scan, one seek of `events_camera_id` each.
const CAMERAS: &str = "WITH RECURSIVE cams(id) AS (
        SELECT min(camera_id) FROM events
        UNION ALL
        SELECT (SELECT min(camera_id) FROM events WHERE camera_id > cams.id)
        FROM cams WHERE cams.id IS NOT NULL)
    SELECT id FROM cams WHERE id IS NOT NULL";
/// The newest id of a camera's that is over its budget (`?2` rows kept).
const BUDGET_CUT: &str =
    "SELECT id FROM events WHERE camera_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2";
/// Events started before `?3`, oldest first (`?1` guard, `?2` limit).
const AGED: &str = "SELECT id FROM events WHERE started_at < ?3 AND id <= ?1
    ORDER BY started_at LIMIT ?2";
/// A camera's (`?3`) events up to id `?4`, oldest first (`?1` guard, `?2` limit).
const OVER_BUDGET: &str = "SELECT id FROM events WHERE camera_id = ?3 AND id <= ?4 AND id <= ?1
    ORDER BY id LIMIT ?2";
/// A camera's (`?1`) events started before `?2` that still hold a snapshot
/// (`?3` guard, `?4` limit); only the partial index's rows are read.
const OLD_SNAPSHOTS: &str = "SELECT id FROM events INDEXED BY events_snapshot
    WHERE camera_id = ?1 AND started_at < ?2 AND snapshot_path IS NOT NULL AND id <= ?3
    LIMIT ?4";

/// Trash entries still named by a remaining row (a POSTed event may name
/// another's snapshot): forgotten, not unlinked. One seek of
/// `events_snapshot_path` per trash entry; run after each delete or detach,
/// in its transaction.
const STILL_NAMED: &str = "DELETE FROM snapshot_trash WHERE path IN (
        SELECT snapshot_path FROM events INDEXED BY events_snapshot_path
        WHERE snapshot_path IN (SELECT path FROM snapshot_trash))";

/// The highest event id retention may delete: every id when the mirror is
/// off (`None`), else the mirror's acknowledged cursor (0 before it first
/// ran: nothing is known to be published).
pub fn prune_guard(conn: &Connection, mirror_on: bool) -> Result<Option<i64>, StoreError> {
    if !mirror_on {
        return Ok(None);
    }
    Ok(Some(outbox::state(conn)?.last_sent_id))
}

/// Cameras that have events, deleted cameras included: one index seek per
/// camera (a loose scan of `events_camera_id`), not a pass over the rows.
pub fn event_camera_ids(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut st = conn.prepare_cached(CAMERAS)?;
    let ids = st.query_map([], |r| r.get(0))?;
    Ok(ids.collect::<Result<_, _>>()?)
}

/// At least as many as there are events (the span of their ids), found
/// in two seeks: when it is within a camera's budget no camera can be over.
pub fn event_id_span(conn: &Connection) -> Result<u64, StoreError> {
    let span: i64 = conn.query_row(
        "SELECT coalesce(max(id) - min(id) + 1, 0) FROM events",
        [],
        |r| r.get(0),
    )?;
    Ok(span.max(0) as u64)
}

/// The newest id of `camera`'s events that is over its budget of `keep`
/// rows (so every event of the camera up to it may go), or `None` when the
/// camera is within budget. Reads `keep` index entries, on a reader.
pub fn budget_cut(conn: &Connection, camera: &str, keep: u64) -> Result<Option<i64>, StoreError> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let mut st = conn.prepare_cached(BUDGET_CUT)?;
    let mut rows = st.query(params![camera, keep])?;
    Ok(match rows.next()? {
        Some(r) => Some(r.get(0)?),
        None => None,
    })
}

/// Deletes the rows `select` names (a query of ids taking `?1` = guard and
/// `?2` = limit, then its own parameters from `?3`), recording their
/// snapshots in `snapshot_trash` first. Both statements run the same
/// query on the same rows in one transaction, so they pick the same ids.
/// Returns how many rows went.
fn delete_selected(
    conn: &Connection,
    select: &str,
    guard: Option<i64>,
    limit: usize,
    extra: &[&dyn rusqlite::ToSql],
) -> Result<usize, StoreError> {
    let guard = guard.unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&guard, &limit];
    args.extend_from_slice(extra);
    conn.execute(
        &format!(
            "INSERT OR IGNORE INTO snapshot_trash (path)
             SELECT snapshot_path FROM events
             WHERE id IN ({select}) AND snapshot_path IS NOT NULL"
        ),
        args.as_slice(),
    )?;
    let n = conn.execute(
        &format!("DELETE FROM events WHERE id IN ({select})"),
        args.as_slice(),
    )?;
    conn.execute(STILL_NAMED, [])?;
    Ok(n)
}

/// Deletes up to `limit` events that started before `cutoff` (epoch ms),
/// oldest first, none above `guard`; their snapshots go to the trash list.
pub fn delete_events_before(
    conn: &Connection,
    cutoff: i64,
    guard: Option<i64>,
    limit: usize,
) -> Result<usize, StoreError> {
    delete_selected(conn, AGED, guard, limit, &[&cutoff])
}

/// Deletes up to `limit` of `camera`'s events with ids up to `cut` (from
/// [`budget_cut`]), oldest first, none above `guard`.
pub fn delete_camera_events_upto(
    conn: &Connection,
    camera: &str,
    cut: i64,
    guard: Option<i64>,
    limit: usize,
) -> Result<usize, StoreError> {
    delete_selected(conn, OVER_BUDGET, guard, limit, &[&camera, &cut])
}

/// Lets go of the snapshots of up to `limit` of `camera`'s events that
/// started before `cutoff` (the camera's own retention), none above
/// `guard`: the paths go to the trash list and the rows keep no path (so
/// the API answers 404 for their snapshot, never a path to nothing).
pub fn detach_snapshots_before(
    conn: &Connection,
    camera: &str,
    cutoff: i64,
    guard: Option<i64>,
    limit: usize,
) -> Result<usize, StoreError> {
    let guard = guard.unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let doomed = OLD_SNAPSHOTS;
    conn.execute(
        &format!(
            "INSERT OR IGNORE INTO snapshot_trash (path)
             SELECT snapshot_path FROM events WHERE id IN ({doomed})"
        ),
        params![camera, cutoff, guard, limit],
    )?;
    let n = conn.execute(
        &format!("UPDATE events SET snapshot_path = NULL WHERE id IN ({doomed})"),
        params![camera, cutoff, guard, limit],
    )?;
    conn.execute(STILL_NAMED, [])?;
    Ok(n)
}

/// Up to `limit` snapshot paths whose rows are gone, still to unlink.
pub fn snapshot_trash(conn: &Connection, limit: usize) -> Result<Vec<String>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut st = conn.prepare_cached("SELECT path FROM snapshot_trash LIMIT ?1")?;
    let paths = st.query_map([limit], |r| r.get(0))?;
    Ok(paths.collect::<Result<_, _>>()?)
}

/// Forgets trash entries whose files are unlinked (or were never there).
pub fn snapshot_trash_done(conn: &Connection, paths: &[String]) -> Result<(), StoreError> {
    let mut st = conn.prepare_cached("DELETE FROM snapshot_trash WHERE path = ?1")?;
    for p in paths {
        st.execute([p])?;
    }
    Ok(())
}

/// The earliest start among events the mirror has yet to publish (those
/// above `guard`), so the snapshot sweep spares their files; `None` when
/// nothing waits.
pub fn oldest_guarded_start(
    conn: &Connection,
    guard: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let Some(guard) = guard else { return Ok(None) };
    Ok(conn.query_row(
        "SELECT min(started_at) FROM events WHERE id > ?1",
        [guard],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_queries_seek_indexes_and_never_scan_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::nvr::store::db::open_writer(&dir.path().join("t.db")).unwrap();
        let plan = |sql: &str, n: usize| -> Vec<String> {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let args = vec![rusqlite::types::Value::Integer(1); n];
            let rows = st
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap();
            rows.map(Result::unwrap).collect()
        };
        for (sql, n, index) in [
            (CAMERAS, 0, "events_camera_id"),
            (BUDGET_CUT, 2, "events_camera_id"),
            (AGED, 3, "events_started"),
            (OVER_BUDGET, 4, "events_camera_id"),
            (OLD_SNAPSHOTS, 4, "events_snapshot"),
            (STILL_NAMED, 0, "events_snapshot_path"),
        ] {
            let p = plan(sql, n);
            let events: Vec<&String> = p.iter().filter(|l| l.contains("events")).collect();
            assert!(!events.is_empty(), "{sql}: {p:?}");
            for l in events {
                assert!(l.starts_with("SEARCH") && l.contains(index), "{sql}: {p:?}");
            }
            assert!(!p.iter().any(|l| l.contains("TEMP B-TREE")), "{sql}: {p:?}");
        }
    }

    #[test]
    fn a_snapshot_another_row_still_names_is_not_trashed() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::nvr::store::db::open_writer(&dir.path().join("t.db")).unwrap();
        let add = |id: i64, cam: &str, at: i64, path: &str| {
            c.execute(
                "INSERT INTO events (id, camera_id, type, started_at, snapshot_path, created_at)
                 VALUES (?1, ?2, 'person_entered', ?3, ?4, ?3)",
                params![id, cam, at, path],
            )
            .unwrap();
        };
        add(1, "a", 100, "a/100-1-entered.jpg");
        add(2, "a", 200, "a/200-2-entered.jpg");
        // A POSTed event naming the first one's snapshot.
        add(3, "b", 900, "a/100-1-entered.jpg");
        assert_eq!(delete_events_before(&c, 300, None, 10).unwrap(), 2);
        assert_eq!(snapshot_trash(&c, 10).unwrap(), ["a/200-2-entered.jpg"]);
        // Once no row names it, it goes.
        assert_eq!(
            detach_snapshots_before(&c, "b", 1_000, None, 10).unwrap(),
            1
        );
        let mut left = snapshot_trash(&c, 10).unwrap();
        left.sort();
        assert_eq!(left, ["a/100-1-entered.jpg", "a/200-2-entered.jpg"]);
    }
}
