//! Ages event rows out with their snapshots: by age (`[retention]
//! events_max_age_days`), by a per-camera row budget
//! (`events_max_per_camera`), and each camera's snapshots by its own
//! `retention_days` (the row stays, without its snapshot).
//!
//! Why this order of work: a row goes (or lets go of its snapshot) in the
//! same transaction that writes the file's path to `snapshot_trash`; the
//! file is unlinked after that commit, and its trash entry forgotten after
//! the unlink. A crash before the commit changes nothing; a crash after it
//! leaves a to-do list that the next pass finishes (the first pass runs at
//! start), so there is never a file without its row, nor a row naming a
//! file that is gone.
//!
//! Every deletion is a batch of at most `events_batch` rows, one writer job
//! each, so the one writer is never held for long; and no event the MQTT
//! mirror has not yet published and had acknowledged is deleted (while the
//! mirror is on, nothing above its cursor is touched; its `outbox_cap`
//! bounds how many that can be).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Ctx, IngestError};
use crate::nvr::store::{db, Store, StoreError};

const DAY_MS: i64 = 86_400_000;
/// Snapshot retention for cameras that were deleted (as for their recordings).
pub const ORPHAN_DAYS: i64 = 7;
/// Trash entries unlinked per round.
const TRASH_ROUND: usize = 1_000;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Event rows deleted (age and budget).
    pub rows: usize,
    /// Rows that let go of their snapshot (their camera's retention).
    pub detached: usize,
    /// Snapshot files unlinked (or found already gone).
    pub files: usize,
}

impl Pruned {
    /// Counts rows deleted and their files.
    fn add_deleted(&mut self, (rows, files): (usize, usize)) {
        self.rows += rows;
        self.files += files;
    }

    /// Counts snapshots let go of and their files.
    fn add_detached(&mut self, (rows, files): (usize, usize)) {
        self.detached += rows;
        self.files += files;
    }
}

/// The rules of one pass, from `[retention]` and the cameras.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Events older than this go; 0 = no age limit.
    pub max_age_days: u64,
    /// Rows kept per camera, newest first; 0 = no budget.
    pub max_per_camera: u64,
    /// Rows per writer job.
    pub batch: usize,
    /// Snapshot retention per camera, days (0 = forever); cameras not
    /// listed (deleted ones) keep snapshots [`ORPHAN_DAYS`].
    pub snapshot_days: HashMap<String, i64>,
    /// Whether the MQTT mirror runs (its cursor then guards unsent events).
    pub mirror_on: bool,
}

/// One pass at `now`: finishes the trash, then ages rows out, then trims
/// each camera to its budget, then detaches old snapshots.
pub async fn prune(
    store: &Store,
    snapshots: &Path,
    rules: &Rules,
    now: i64,
) -> Result<Pruned, IngestError> {
    let mut done = Pruned {
        files: empty_trash(store, snapshots).await?,
        ..Pruned::default()
    };
    let batch = rules.batch.max(1);
    if rules.max_age_days > 0 {
        let days = i64::try_from(rules.max_age_days).unwrap_or(i64::MAX);
        let cutoff = days_before(now, days);
        let job = move |c: &_, guard| db::delete_events_before(c, cutoff, guard, batch);
        done.add_deleted(in_batches(store, snapshots, rules, job).await?);
    }
    let cameras = store.read(db::event_camera_ids).await?;
    let span = store.read(db::event_id_span).await?;
    if rules.max_per_camera > 0 && span > rules.max_per_camera {
        for cam in &cameras {
            let (c2, keep) = (cam.clone(), rules.max_per_camera);
            let Some(cut) = store.read(move |c| db::budget_cut(c, &c2, keep)).await? else {
                continue;
            };
            let cam = cam.clone();
            let job = move |c: &_, guard| db::delete_camera_events_upto(c, &cam, cut, guard, batch);
            done.add_deleted(in_batches(store, snapshots, rules, job).await?);
        }
    }
    for cam in &cameras {
        let days = snapshot_days(rules, cam);
        if days <= 0 {
            continue;
        }
        let (cam, cutoff) = (cam.clone(), days_before(now, days));
        let job = move |c: &_, guard| db::detach_snapshots_before(c, &cam, cutoff, guard, batch);
        done.add_detached(in_batches(store, snapshots, rules, job).await?);
    }
    Ok(done)
}

/// `days` days before `now`, epoch ms (saturating).
fn days_before(now: i64, days: i64) -> i64 {
    now.saturating_sub(days.saturating_mul(DAY_MS))
}

/// A camera's snapshot retention in days (0 = forever).
pub fn snapshot_days(rules: &Rules, camera: &str) -> i64 {
    rules
        .snapshot_days
        .get(camera)
        .copied()
        .unwrap_or(ORPHAN_DAYS)
}

/// Runs `job` on the writer, with the id it must not delete above (read
/// in the same transaction: the mirror's cursor, while it runs), until it
/// touches fewer than a batch of rows, unlinking each batch's files before
/// the next. Returns (rows, files).
async fn in_batches<F>(
    store: &Store,
    snapshots: &Path,
    rules: &Rules,
    job: F,
) -> Result<(usize, usize), IngestError>
where
    F: Fn(&rusqlite::Connection, Option<i64>) -> Result<usize, StoreError> + Clone + Send + 'static,
{
    let (batch, mirror_on) = (rules.batch.max(1), rules.mirror_on);
    let (mut rows, mut files) = (0, 0);
    loop {
        let job = job.clone();
        let n = store
            .writer()
            .call(move |c, _| job(c, db::prune_guard(c, mirror_on)?))
            .await?;
        rows += n;
        files += empty_trash(store, snapshots).await?;
        if n < batch {
            return Ok((rows, files));
        }
    }
}

/// Unlinks every file on the trash list, then forgets it; how many there
/// were. The start-up reconciliation: a crash between a commit and its
/// unlinks leaves exactly this list.
pub async fn empty_trash(store: &Store, snapshots: &Path) -> Result<usize, IngestError> {
    let mut total = 0;
    loop {
        let paths = store.read(|c| db::snapshot_trash(c, TRASH_ROUND)).await?;
        if paths.is_empty() {
            return Ok(total);
        }
        let (root, list) = (snapshots.to_owned(), paths.clone());
        tokio::task::spawn_blocking(move || {
            for rel in &list {
                remove_confined(&root, rel);
            }
        })
        .await
        .map_err(|_| IngestError::Internal("unlinking snapshots"))?;
        total += paths.len();
        store
            .writer()
            .call(move |c, _| db::snapshot_trash_done(c, &paths))
            .await?;
    }
}

/// Unlinks `rel` under `root` if it is there and inside it: a plain
/// relative path whose folder, symlinks resolved, is under the root (the
/// last component is never followed: unlinking a link removes the link).
fn remove_confined(root: &Path, rel: &str) {
    let Some(rel) = crate::confine::plain_relative(Path::new(rel)) else {
        return;
    };
    let (Ok(root), Some(name)) = (root.canonicalize(), rel.file_name()) else {
        return;
    };
    let dir: PathBuf = match rel.parent() {
        Some(p) if !p.as_os_str().is_empty() => match root.join(p).canonicalize() {
            Ok(d) => d,
            Err(_) => return,
        },
        _ => root.clone(),
    };
    if !dir.starts_with(&root) {
        tracing::warn!(path = %rel.display(), "a snapshot path leads out of its folder; not unlinked");
        return;
    }
    match std::fs::remove_file(dir.join(name)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %rel.display(), error = %e, "cannot unlink a snapshot"),
    }
}

/// The rules as `ctx` configures them, with each camera's snapshot days.
pub fn rules(ctx: &Ctx, snapshot_days: HashMap<String, i64>) -> Rules {
    Rules {
        max_age_days: ctx.retention.events_max_age_days,
        max_per_camera: ctx.retention.events_max_per_camera,
        batch: ctx.retention.events_batch,
        snapshot_days,
        mirror_on: ctx.mirror_on,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::nvr::store::{outbox, NewEvent};

    const T0: i64 = 100 * DAY_MS;
    const HOUR: i64 = 3_600_000;

    struct World {
        _dir: tempfile::TempDir,
        db: PathBuf,
        snaps: PathBuf,
        clock: Arc<ManualClock>,
        store: Store,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let (db, snaps) = (dir.path().join("t.db"), dir.path().join("snapshots"));
        let clock = Arc::new(ManualClock::new(T0));
        let store = Store::open(&db, clock.clone(), 16).unwrap();
        World {
            _dir: dir,
            db,
            snaps,
            clock,
            store,
        }
    }

    /// A `person_entered` at `at` with its snapshot file written first (as the pipeline does).
    async fn event(w: &World, cam: &str, at: i64, track: i64) -> i64 {
        let rel = format!("{cam}/{at}-{track}-entered.jpg");
        let path = w.snaps.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"jpeg").unwrap();
        let ev = NewEvent {
            camera_id: cam.into(),
            kind: "person_entered".into(),
            track_id: Some(track),
            started_at: Some(at),
            snapshot_path: Some(rel),
            ..NewEvent::default()
        };
        w.store.insert_event(ev).await.unwrap().0.id
    }

    /// Event ids with whether each still holds its snapshot, and the files there are.
    async fn state(w: &World) -> (Vec<(i64, bool)>, BTreeSet<String>) {
        let rows: Vec<(i64, Option<String>)> = w
            .store
            .read(|c| {
                let mut st = c.prepare("SELECT id, snapshot_path FROM events ORDER BY id")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        let mut files = BTreeSet::new();
        for cam in std::fs::read_dir(&w.snaps).unwrap().flatten() {
            for f in std::fs::read_dir(cam.path()).unwrap().flatten() {
                let (c, n) = (cam.file_name(), f.file_name());
                files.insert(format!("{}/{}", c.to_string_lossy(), n.to_string_lossy()));
            }
        }
        // Together: every row's snapshot is there, and every file has its row.
        let named: BTreeSet<String> = rows.iter().filter_map(|r| r.1.clone()).collect();
        assert_eq!(named, files, "rows and snapshot files disagree");
        let ids = rows.iter().map(|(id, p)| (*id, p.is_some())).collect();
        (ids, files)
    }

    fn rules(age: u64, budget: u64, snap_days: &[(&str, i64)], mirror_on: bool) -> Rules {
        Rules {
            max_age_days: age,
            max_per_camera: budget,
            batch: 2,
            snapshot_days: snap_days.iter().map(|(c, d)| (c.to_string(), *d)).collect(),
            mirror_on,
        }
    }

    async fn pass(w: &World, r: &Rules) -> Pruned {
        prune(&w.store, &w.snaps, r, w.clock.now_ms())
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_and_snapshots_age_out_together_as_time_moves() {
        let w = world();
        // Camera a: ten events an hour apart; camera b: three.
        for i in 0..10 {
            event(&w, "a", T0 + i * HOUR, i).await;
        }
        for i in 0..3 {
            event(&w, "b", T0 + i * HOUR, i).await;
        }
        // Snapshots: a keeps them 1 day, b forever; rows: 2 days, 6 per camera.
        let r = rules(2, 6, &[("a", 1), ("b", 0)], false);
        w.clock.advance(10 * HOUR);
        let done = pass(&w, &r).await;
        assert_eq!((done.rows, done.detached, done.files), (4, 0, 4));
        let (ids, files) = state(&w).await;
        assert_eq!(
            ids.first(),
            Some(&(5, true)),
            "a's four oldest went over budget"
        );
        assert_eq!(files.len(), 9);
        assert_eq!(pass(&w, &r).await, Pruned::default(), "nothing more to do");
        // A day later: a's snapshots, all older than 1 day, are let go; the rows stay.
        w.clock.advance(DAY_MS - HOUR / 2);
        let done = pass(&w, &r).await;
        assert_eq!((done.rows, done.detached), (0, 6));
        let (ids, files) = state(&w).await;
        assert_eq!(ids.len(), 9);
        assert!(ids
            .iter()
            .filter(|(id, _)| *id <= 10)
            .all(|(_, snap)| !snap));
        assert_eq!(files.len(), 3, "b's stay: {files:?}");
        // Past two days every row goes, b's with their snapshots.
        w.clock.advance(DAY_MS);
        let done = pass(&w, &r).await;
        assert_eq!((done.rows, done.files), (9, 3));
        let (ids, files) = state(&w).await;
        assert!(ids.is_empty() && files.is_empty());
        // Ids are never reused (the stream cursor): the next event is 14.
        assert_eq!(event(&w, "a", w.clock.now_ms(), 1).await, 14);
        let problems = w.store.read(db::check).await.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_the_mqtt_mirror_has_not_published_are_never_deleted() {
        let w = world();
        for i in 0..3 {
            event(&w, "a", T0 + i, i).await;
        }
        // The mirror starts: the cursor is at 3, then five more wait for it.
        w.store.writer().call(|c, _| outbox::init(c)).await.unwrap();
        for i in 3..8 {
            event(&w, "a", T0 + i, i).await;
        }
        w.clock.advance(40 * DAY_MS);
        let r = rules(30, 1, &[("a", 7)], true);
        let done = pass(&w, &r).await;
        assert_eq!(
            (done.rows, done.files),
            (3, 3),
            "only the acknowledged ones"
        );
        let (ids, _) = state(&w).await;
        assert_eq!(ids, (4..=8).map(|id| (id, true)).collect::<Vec<_>>());
        // Acknowledged up to 6: those go, 7 and 8 still wait.
        w.store
            .writer()
            .call(|c, _| outbox::mark_sent(c, 6))
            .await
            .unwrap();
        assert_eq!(pass(&w, &r).await.rows, 3);
        let (ids, _) = state(&w).await;
        assert_eq!(ids, vec![(7, true), (8, true)]);
        // With the mirror off, its stale cursor guards nothing.
        let off = Rules {
            mirror_on: false,
            ..r
        };
        assert_eq!(pass(&w, &off).await.rows, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_between_commit_and_unlink_is_finished_at_start() {
        let w = world();
        for i in 0..4 {
            event(&w, "a", T0 + i * HOUR, i).await;
        }
        // The first two rows go and the last lets go of its snapshot, and the
        // daemon dies after those commits, before any file is unlinked.
        let cutoff = T0 + HOUR + 1;
        let n = w
            .store
            .writer()
            .call(move |c, _| db::delete_events_before(c, cutoff, None, 10))
            .await
            .unwrap();
        assert_eq!(n, 2);
        let late = T0 + 4 * HOUR;
        let n = w
            .store
            .writer()
            .call(move |c, _| {
                db::detach_snapshots_before(c, "a", late, None, 10)?;
                db::delete_events_before(c, 0, None, 10)
            })
            .await
            .unwrap();
        assert_eq!(n, 0);
        let on_disk = std::fs::read_dir(w.snaps.join("a")).unwrap().count();
        assert_eq!(on_disk, 4, "files outlived their rows");
        let World {
            _dir,
            db,
            snaps,
            clock,
            store,
        } = w;
        drop(store);
        // Start again on the same files: the first pass finishes the trash.
        let store = Store::open(&db, clock.clone(), 16).unwrap();
        let w = World {
            _dir,
            db,
            snaps,
            clock,
            store,
        };
        let done = pass(&w, &rules(0, 0, &[], false)).await;
        assert_eq!((done.rows, done.detached, done.files), (0, 0, 4));
        let (ids, files) = state(&w).await;
        assert_eq!(ids, vec![(3, false), (4, false)]);
        assert!(files.is_empty());
        let left = w.store.read(|c| db::snapshot_trash(c, 10)).await.unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
}
