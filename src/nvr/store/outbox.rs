//! The MQTT mirror's outbox: a cursor into the events table (migration V3).
//!
//! Why a cursor and not a second queue table: events are already stored
//! durably and in id order, so "what is still to publish" is exactly "the
//! events above the cursor". Nothing extra is written per event, the event
//! insert path stays untouched, and the cursor is one row the writer updates
//! after the broker acknowledges.

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// Where the mirror stands: the last acknowledged event id and how many
/// events were skipped because the outbox was over its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxState {
    /// Every event up to this id is acknowledged by the broker (or dropped).
    pub last_sent_id: i64,
    /// Events skipped over the cap, ever (shown in `/health`).
    pub dropped: i64,
}

/// Reads the cursor, starting it at the newest event the first time the
/// mirror runs (history from before MQTT was configured is not replayed).
/// Runs on the writer, so no event can commit between the two statements.
pub fn init(conn: &Connection) -> Result<OutboxState, StoreError> {
    conn.execute(
        "UPDATE mqtt_outbox SET last_sent_id = (SELECT coalesce(max(id), 0) FROM events)
         WHERE id = 1 AND last_sent_id IS NULL",
        [],
    )?;
    state(conn)
}

/// The cursor as stored (0 when the mirror never ran).
pub fn state(conn: &Connection) -> Result<OutboxState, StoreError> {
    let row = conn
        .query_row(
            "SELECT coalesce(last_sent_id, 0), dropped FROM mqtt_outbox WHERE id = 1",
            [],
            |r| {
                Ok(OutboxState {
                    last_sent_id: r.get(0)?,
                    dropped: r.get(1)?,
                })
            },
        )
        .optional()?;
    row.ok_or(StoreError::NotFound("mqtt outbox"))
}

/// Moves the cursor forward to `id` (never back: a late acknowledgement of
/// an older event must not resurrect what the cap already dropped).
pub fn mark_sent(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE mqtt_outbox SET last_sent_id = max(coalesce(last_sent_id, 0), ?1) WHERE id = 1",
        [id],
    )?;
    Ok(())
}

/// Events waiting above `after_id`.
pub fn pending(conn: &Connection, after_id: i64) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM events WHERE id > ?1",
        [after_id],
        |r| r.get(0),
    )?)
}

/// Enforces the cap: when more than `cap` events wait, skips the oldest so
/// that `cap` remain, counting them in `dropped`. Returns the new state.
pub fn enforce_cap(conn: &Connection, cap: i64) -> Result<OutboxState, StoreError> {
    let cur = state(conn)?;
    let waiting = pending(conn, cur.last_sent_id)?;
    if waiting <= cap {
        return Ok(cur);
    }
    // The newest id that is dropped: everything up to it goes, `cap` stay.
    let cut: i64 = conn.query_row(
        "SELECT id FROM events WHERE id > ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
        params![cur.last_sent_id, cap],
        |r| r.get(0),
    )?;
    let n = waiting - cap;
    conn.execute(
        "UPDATE mqtt_outbox SET last_sent_id = ?1, dropped = dropped + ?2 WHERE id = 1",
        params![cut, n],
    )?;
    state(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvr::store::{db, NewEvent};

    fn conn() -> Connection {
        let dir = std::env::temp_dir().join(format!("onvr-outbox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        db::open_writer(&dir.join("t.db")).unwrap()
    }

    fn add(c: &Connection, n: i64) {
        for i in 0..n {
            let ev = NewEvent {
                camera_id: "c".into(),
                kind: "count_changed".into(),
                ..NewEvent::default()
            };
            db::insert_event(c, &ev, 1000 + i).unwrap();
        }
    }

    #[test]
    fn cursor_starts_at_newest_moves_forward_only_and_cap_drops_oldest() {
        let c = conn();
        add(&c, 3);
        let s = init(&c).unwrap();
        assert_eq!(
            s,
            OutboxState {
                last_sent_id: 3,
                dropped: 0
            },
            "history is not replayed"
        );
        add(&c, 10);
        assert_eq!(
            init(&c).unwrap().last_sent_id,
            3,
            "init only starts it once"
        );
        assert_eq!(pending(&c, 3).unwrap(), 10);
        mark_sent(&c, 5).unwrap();
        mark_sent(&c, 4).unwrap();
        assert_eq!(state(&c).unwrap().last_sent_id, 5, "never moves back");
        assert_eq!(enforce_cap(&c, 100).unwrap().last_sent_id, 5);
        let s = enforce_cap(&c, 3).unwrap();
        assert_eq!(
            s,
            OutboxState {
                last_sent_id: 10,
                dropped: 5
            }
        );
        assert_eq!(pending(&c, s.last_sent_id).unwrap(), 3);
        let s = enforce_cap(&c, 0).unwrap();
        assert_eq!(
            s,
            OutboxState {
                last_sent_id: 13,
                dropped: 8
            }
        );
    }
}
