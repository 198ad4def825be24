//! The NVR's one SQLite file: schema, typed rows, reads, and the single writer.
//!
//! Why SQLite and one writer: the box is an appliance, so state lives in one
//! file next to the recordings; SQLite allows one writer at a time anyway, so
//! a single task that owns the write connection batches whatever is queued
//! into one transaction (one fsync for many events) instead of contending on
//! the file lock. Readers use their own connections (WAL lets them run while
//! the writer commits).

pub mod db;
pub(crate) mod outbox;
mod types;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::broadcast;

pub use types::*;
pub use writer::Writer;

use crate::clock::Clock;

/// Why a store operation failed; the web layer maps these to HTTP in one place.
/// A variant that wraps a cause says it in its message and keeps it typed,
/// but does not also return it from `source()` (so no cause prints twice).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no (I/O, corruption, a constraint we did not expect).
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The disk holding the database is full (SQLITE_FULL, which is how
    /// SQLite reports ENOSPC); nothing of the write is stored. Shared: one
    /// failed commit answers every write of its batch.
    #[error("the disk is full: {0}")]
    DiskFull(Arc<rusqlite::Error>),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(refinery::Error),
    /// The row asked for does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique key already holds this value (username, camera id).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The change would break a rule the store keeps (the last admin stays,
    /// the user count stays bounded); the message says which. Nothing changed.
    #[error("{0}")]
    Refused(String),
    /// The writer task is gone (shutting down, or it died).
    #[error("database writer is not running")]
    WriterGone,
    /// The transaction holding this write did not begin or did not commit;
    /// nothing of it is stored. Shared by every write of the batch.
    #[error("commit failed: {0}")]
    Commit(Arc<rusqlite::Error>),
    /// A blocking store task panicked; a bug, reported as 500.
    #[error("internal store failure: {0}")]
    Internal(&'static str),
    /// A stored JSON column does not parse; only a hand-edited file does this.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    /// A full disk gets its own variant (it is the operator's to fix, not a bug).
    fn from(e: rusqlite::Error) -> Self {
        if is_disk_full(&e) {
            StoreError::DiskFull(Arc::new(e))
        } else {
            StoreError::Sqlite(e)
        }
    }
}

/// Whether SQLite refused for want of disk space.
fn is_disk_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// The handle every request shares: a pool of read connections, the writer,
/// and the broadcast of committed events.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    readers: Arc<Mutex<Vec<Connection>>>,
    writer: Writer,
    events: broadcast::Sender<Arc<Event>>,
}

/// Reader connections kept idle; more are opened on demand under load.
const MAX_IDLE_READERS: usize = 8;

impl Store {
    /// Opens (creating and migrating) the database at `path` and starts the
    /// writer thread. `stream_buffer` is the per-subscriber live buffer.
    pub fn open(
        path: &Path,
        clock: Arc<dyn Clock>,
        stream_buffer: usize,
    ) -> Result<Self, StoreError> {
        let conn = db::open_writer(path)?;
        let (events, _) = broadcast::channel(stream_buffer.max(1));
        let writer = Writer::start(conn, clock);
        Ok(Self {
            path: path.to_owned(),
            readers: Arc::new(Mutex::new(Vec::new())),
            writer,
            events,
        })
    }

    /// The write side: every mutation goes through here.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Stores an event through the writer and publishes it once committed;
    /// the pipeline and `POST /api/v1/events` both come through here.
    pub async fn insert_event(&self, ev: NewEvent) -> Result<(Event, bool), StoreError> {
        self.writer.insert_event(ev, self.events.clone()).await
    }

    /// Live events, in commit order, from the moment of subscribing.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Runs `f` on a read connection off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut v| v.pop());
            let conn = match pooled {
                Some(c) => c,
                None => db::open_reader(&path)?,
            };
            let out = f(&conn);
            if let Ok(mut v) = readers.lock() {
                if v.len() < MAX_IDLE_READERS {
                    v.push(conn);
                }
            }
            out
        })
        .await
        .map_err(|_| StoreError::Internal("reader task failed"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn temp_db(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("onvr-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("t.db")
    }

    fn ev(cam: &str, track: i64) -> NewEvent {
        NewEvent {
            camera_id: cam.into(),
            kind: "person_entered".into(),
            track_id: Some(track),
            started_at: Some(1000 + track),
            ..NewEvent::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_writes_commit_publish_in_order_and_isolate_failures() {
        let path = temp_db("batch");
        let store = Store::open(&path, Arc::new(ManualClock::new(5_000)), 1024).unwrap();
        let mut live = store.subscribe();
        store
            .writer()
            .call(|c, now| db::create_user(c, "ann", "h", Role::Admin, now))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = store.clone();
            tasks.push(tokio::spawn(
                async move { s.insert_event(ev("c", i)).await },
            ));
        }
        // A failing job queued among them must not take the others down.
        let dup = store
            .writer()
            .call(|c, now| db::create_user(c, "ann", "h", Role::Admin, now))
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict("user"))));
        for t in tasks {
            let (e, created) = t.await.unwrap().unwrap();
            assert!(created);
            assert_eq!(e.created_at, 5_000);
        }
        let mut last = 0;
        for _ in 0..200 {
            let e = live.recv().await.unwrap();
            assert!(e.id > last, "published in id order");
            last = e.id;
        }
        // Idempotent: same key, same row, not published again.
        let (again, created) = store.insert_event(ev("c", 3)).await.unwrap();
        assert!(!created);
        assert_eq!(again.track_id, Some(3));
        assert!(live.try_recv().is_err());
        let n = store.read(db::last_event_id).await.unwrap();
        assert_eq!(n, 200);
        let problems = store.read(db::check).await.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }
}
