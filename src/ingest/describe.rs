//! The describer: turns the snapshots of `person_entered` events into
//! sentences (`scene_description`) for `[events] describe`, off the
//! detection path.
//!
//! One thread of its own, at a lower CPU priority (nice 10), behind a
//! bounded queue shared by every camera (`describe_queue`): it takes no
//! runner from the engine's gate, so a slow captioner never makes a camera
//! frame wait, and the operating system serves detection first when both
//! want a core. A request that finds the queue full is refused at once
//! ([`Describer::request`] says `false`); the event then goes out without
//! a description. Results come back on the asking camera's channel, tagged
//! with its sequence number ([`Reply`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

/// A snapshot's description and what produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub caption: String,
    pub model_id: String,
}

/// What describing one snapshot produced: the description, or why not.
pub type Outcome = Result<Description, String>;

/// A result on its way back to the camera that asked: `(sequence, outcome)`.
/// The channel is unbounded, but at most `describe_queue` + 1 results are
/// ever owed, so it stays bounded by the queue.
pub type Reply = UnboundedSender<(u64, Outcome)>;

/// Describes one snapshot (blocking; runs on the describer's thread). The
/// daemon's snapshots are decoded frames ([`image::RgbImage`]); the unit
/// tests describe plain bytes.
pub type DescribeFn<T> = dyn Fn(&T) -> Outcome + Send + Sync;

struct Job<T> {
    snapshot: Arc<T>,
    seq: u64,
    reply: Reply,
}

/// The bounded queue in front of the describer thread; the thread ends
/// when this is dropped.
pub struct Describer<T = image::RgbImage> {
    tx: SyncSender<Job<T>>,
}

/// The nice value of the describer thread: it yields to detection.
const NICE: i32 = 10;

impl<T: Send + Sync + 'static> Describer<T> {
    /// Starts the thread, which runs `describe` on queued snapshots, one at
    /// a time, `queue` of them waiting at most.
    pub fn start(describe: Arc<DescribeFn<T>>, queue: usize) -> Describer<T> {
        let (tx, rx) = sync_channel::<Job<T>>(queue.max(1));
        let spawned = std::thread::Builder::new()
            .name("describer".into())
            .spawn(move || {
                lower_priority();
                while let Ok(job) = rx.recv() {
                    // The camera stopped waiting (it stopped): no work for nobody.
                    if job.reply.is_closed() {
                        continue;
                    }
                    let out = catch_unwind(AssertUnwindSafe(|| describe(&job.snapshot)))
                        .unwrap_or_else(|_| Err("the describer panicked".into()));
                    let _ = job.reply.send((job.seq, out));
                }
            });
        if let Err(e) = spawned {
            // Every request is then refused as if the queue were full.
            tracing::error!(error = %e, "cannot start the describer thread");
        }
        Describer { tx }
    }

    /// Queues `snapshot` for description; its result comes back on `reply` as
    /// `(seq, outcome)`. `false` when the queue is full (nothing queued).
    pub fn request(&self, snapshot: Arc<T>, seq: u64, reply: &Reply) -> bool {
        let reply = reply.clone();
        self.tx
            .try_send(Job {
                snapshot,
                seq,
                reply,
            })
            .is_ok()
    }
}

/// Lowers the calling thread's CPU priority (Linux: per thread).
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread's own id; no memory is shared.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE)
    };
    if r != 0 {
        tracing::debug!("the describer thread keeps the default priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    type Started = std::sync::mpsc::Receiver<()>;

    /// A describe function that says when it starts a snapshot, then waits
    /// for a go from the test.
    fn gated() -> (
        Arc<DescribeFn<Vec<u8>>>,
        std::sync::mpsc::Sender<()>,
        Started,
    ) {
        let (go, gate) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (gate, started_tx) = (Mutex::new(gate), Mutex::new(started_tx));
        let f: Arc<DescribeFn<Vec<u8>>> = Arc::new(move |jpeg: &Vec<u8>| {
            let _ = started_tx.lock().unwrap().send(());
            gate.lock().unwrap().recv().map_err(|e| e.to_string())?;
            if jpeg == b"boom" {
                panic!("a broken model");
            }
            Ok(Description {
                caption: String::from_utf8_lossy(jpeg).into_owned(),
                model_id: "test".into(),
            })
        });
        (f, go, started)
    }

    async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Outcome)>) -> (u64, Outcome) {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a result")
            .expect("open")
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_frees_as_it_drains() {
        let (f, go, started) = gated();
        let d = Describer::start(f, 1);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let snap = |s: &str| Arc::new(s.as_bytes().to_vec());
        // One running (taken off the queue) and one waiting.
        assert!(d.request(snap("a"), 1, &tx));
        started.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(d.request(snap("b"), 2, &tx), "the queue's one place");
        assert!(!d.request(snap("c"), 3, &tx), "full: refused, not queued");
        go.send(()).unwrap();
        assert_eq!(next(&mut rx).await.1.unwrap().caption, "a");
        go.send(()).unwrap();
        assert_eq!(next(&mut rx).await.0, 2);
        assert!(d.request(snap("d"), 4, &tx), "room again");
        go.send(()).unwrap();
        assert_eq!(
            next(&mut rx).await,
            (
                4,
                Ok(Description {
                    caption: "d".into(),
                    model_id: "test".into()
                })
            )
        );
    }

    #[tokio::test]
    async fn a_panic_is_an_error_and_the_thread_goes_on() {
        let (f, go, _started) = gated();
        let d = Describer::start(f, 4);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        assert!(d.request(Arc::new(b"boom".to_vec()), 1, &tx));
        assert!(d.request(Arc::new(b"fine".to_vec()), 2, &tx));
        go.send(()).unwrap();
        go.send(()).unwrap();
        assert!(next(&mut rx).await.1.unwrap_err().contains("panicked"));
        assert_eq!(next(&mut rx).await.1.unwrap().caption, "fine");
    }
}
