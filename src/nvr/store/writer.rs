//! The one task that owns the write connection.
//!
//! Callers send a job (a closure over the connection) with a oneshot reply.
//! The writer takes whatever is queued (up to [`MAX_BATCH`]), runs each job in
//! its own savepoint inside ONE transaction, commits, and only then replies
//! and publishes the committed events. So a 2xx that followed a reply means
//! the row is on disk, one fsync covers a whole burst, and one bad job does
//! not roll back its neighbours.

use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{db, Event, NewEvent, StoreError};
use crate::clock::Clock;

/// Most jobs committed in one transaction; bounds the latency of the first.
const MAX_BATCH: usize = 512;

/// Jobs that may wait for the writer before senders are made to wait.
const QUEUE_DEPTH: usize = 4096;

/// A queued write. It gets the connection (inside its own savepoint) or why
/// the transaction or its savepoint could not begin, plus the writer's clock;
/// it returns whether to keep its savepoint and what to do after the commit.
type Job = Box<dyn FnOnce(Result<&Connection, Failed>, i64) -> (bool, Finish) + Send>;
/// Runs once the batch's fate is known: replies, and publishes on success.
type Finish = Box<dyn FnOnce(Result<(), &Failed>) + Send>;
/// A failure of the batch's transaction, shared by every job in it.
type Failed = Arc<rusqlite::Error>;

/// The cloneable handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`. It stops when every handle is dropped.
    pub fn start(conn: Connection, clock: Arc<dyn Clock>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(conn, clock, rx))
            .expect("spawning the database writer thread");
        Writer { tx }
    }

    /// Runs `f` in the writer's next transaction; resolves after the commit.
    /// `f` gets the connection (inside a savepoint) and the writer's clock.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
    {
        self.call_then(f, |_| {}).await
    }

    /// Like [`Writer::call`], with `after` run on the writer thread right after
    /// a successful commit, in commit order (how events are published).
    pub async fn call_then<T, F, A>(&self, f: F, after: A) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn: Result<&Connection, Failed>, now: i64| {
            let result = match conn {
                Ok(conn) => f(conn, now),
                Err(e) => Err(StoreError::Commit(e)),
            };
            let keep = result.is_ok();
            let finish: Finish = Box::new(move |commit: Result<(), &Failed>| {
                let out = match (result, commit) {
                    // However far the job got, a full disk is what the caller must hear.
                    (_, Err(e)) if super::is_disk_full(e) => Err(StoreError::DiskFull(e.clone())),
                    (Ok(v), Ok(())) => {
                        after(&v);
                        Ok(v)
                    }
                    (Ok(_), Err(e)) => Err(StoreError::Commit(e.clone())),
                    (Err(e), _) => Err(e),
                };
                // The caller may have gone away (client disconnected); the write stands.
                let _ = reply.send(out);
            });
            (keep, finish)
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Stores an event and publishes it to live subscribers once committed.
    /// Returns the row and whether it is new (`false`: an idempotent repeat).
    pub async fn insert_event(
        &self,
        ev: NewEvent,
        publish: broadcast::Sender<Arc<Event>>,
    ) -> Result<(Event, bool), StoreError> {
        self.call_then(
            move |conn, now| db::insert_event(conn, &ev, now),
            move |(ev, created)| {
                if *created {
                    // No receivers is fine: nobody is watching right now.
                    let _ = publish.send(Arc::new(ev.clone()));
                }
            },
        )
        .await
    }
}

fn run(mut conn: Connection, clock: Arc<dyn Clock>, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let (outcome, finishes) = run_batch(&mut conn, clock.now_ms(), &mut batch);
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "database commit failed");
        }
        for finish in finishes {
            finish(outcome.as_ref().map(|_| ()));
        }
    }
    tracing::debug!("database writer stopped");
}

/// Runs the queued jobs in one transaction, each in a savepoint that is
/// rolled back if the job fails, and commits.
fn run_batch(
    conn: &mut Connection,
    now: i64,
    batch: &mut Vec<Job>,
) -> (Result<(), Failed>, Vec<Finish>) {
    let mut finishes = Vec::with_capacity(batch.len());
    let mut tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            let e = Arc::new(e);
            for job in batch.drain(..) {
                finishes.push(job(Err(e.clone()), now).1);
            }
            return (Err(e), finishes);
        }
    };
    for job in batch.drain(..) {
        let (keep, finish) = match tx.savepoint() {
            Ok(sp) => {
                let (keep, finish) = job(Ok(&*sp), now);
                let ended = if keep { sp.commit() } else { sp.finish() };
                (keep && ended.is_ok(), finish)
            }
            Err(e) => job(Err(Arc::new(e)), now),
        };
        if !keep {
            tracing::debug!("database job failed; its savepoint was rolled back");
        }
        finishes.push(finish);
    }
    (tx.commit().map_err(Arc::new), finishes)
}
