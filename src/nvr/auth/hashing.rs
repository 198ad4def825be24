//! A bound on concurrent password checks. One Argon2id check holds ~19 MiB
//! for its duration, so without a bound a burst of logins (even ones the
//! rate limit lets through: many usernames, many addresses) takes the box's
//! memory. Checks beyond the bound wait their turn for a bounded time, then
//! are refused as busy.
//!
//! The checks run on their own few threads, each hashing in memory it
//! allocated once and reuses: with an allocation per check the allocator
//! kept freed 19 MiB blocks around (RSS grew to 1.9 GB on the blocking pool,
//! and still to 450 MB on two threads); this way the memory is
//! `concurrency` x 19 MiB, whatever the load.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Block;
use tokio::sync::{oneshot, Semaphore};

use super::{password, AuthError};

/// A password check for a hashing thread, given the thread's Argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The slots for password checks, and the threads that run them.
pub struct HashGate {
    permits: Arc<Semaphore>,
    wait: Duration,
    jobs: SyncSender<Job>,
}

fn work(jobs: Arc<Mutex<Receiver<Job>>>) {
    let mut memory = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&mut memory),
            // The gate is gone: the daemon is stopping.
            Err(_) => return,
        }
    }
}

impl HashGate {
    /// At most `concurrency` checks at once (at least one), on as many
    /// threads; a check waits at most `wait` for a slot.
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        let n = concurrency.max(1);
        let (jobs, rx) = mpsc::sync_channel::<Job>(n);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            if let Err(e) = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || work(rx))
            {
                tracing::error!(error = %e, "could not start a password-check thread");
            }
        }
        Self {
            permits: Arc::new(Semaphore::new(n)),
            wait,
            jobs,
        }
    }

    /// Checks `password` against `phc` (the dummy hash when `None`, so an
    /// unknown user costs the same) on a hashing thread. The slot travels
    /// with the job, so it is released when the hashing ends, not when a
    /// client that hung up drops the request. `Busy` when no slot freed up
    /// within the wait.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, AuthError> {
        self.run(move |memory| {
            let phc = phc.as_deref().unwrap_or_else(|| password::dummy_hash());
            password::verify_in(memory, &password, phc)
        })
        .await
    }

    /// Hashes a new password (an admin setting one over HTTP) in a slot, so
    /// that hashing, which takes as much memory as a check, is bounded the same way.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.run(move |_| password::hash(&password)).await?
    }

    /// Runs `f` on a hashing thread once a slot is free (`Busy` after the wait).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| AuthError::Busy(self.wait.as_secs().max(1) as i64))?
            .map_err(|_| AuthError::Hash("password check slots closed".into()))?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let out = f(memory);
            drop(permit);
            let _ = reply.send(out);
        });
        // Never full: there are as many places as slots.
        self.jobs
            .try_send(job)
            .map_err(|_| AuthError::Hash("password-check threads are gone".into()))?;
        answer
            .await
            .map_err(|_| AuthError::Hash("password check failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_beyond_the_bound_wait_then_are_refused() {
        let phc = password::hash("correct horse").unwrap();
        let gate = HashGate::new(1, Duration::from_millis(1));
        // Hold the only slot: a check cannot start and is refused as busy.
        let held = gate.permits.clone().acquire_owned().await.unwrap();
        let r = gate.verify("correct horse".into(), Some(phc.clone())).await;
        assert!(matches!(r, Err(AuthError::Busy(1))), "{r:?}");
        drop(held);
        assert!(gate
            .verify("correct horse".into(), Some(phc.clone()))
            .await
            .unwrap());
        assert!(!gate.verify("wrong".into(), Some(phc)).await.unwrap());
        assert!(!gate.verify("wrong".into(), None).await.unwrap());
        assert_eq!(gate.permits.available_permits(), 1, "slots come back");
    }
}
