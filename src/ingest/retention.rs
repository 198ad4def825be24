//! Ages recordings out: per camera by `retention_days`, then oldest first
//! across cameras while over the byte budget or short of free disk space.
//! Events and their snapshots age out too ([`super::events_retention`]);
//! snapshot files that no row names (an event write that failed after its
//! snapshot was written) are swept once past their camera's retention.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::events_retention::{self, ORPHAN_DAYS};
use super::recorder::Chunks;
use super::Ctx;
use crate::nvr::store::{db, Recording};

const DAY_MS: i64 = 86_400_000;

/// Which chunks to delete, as indexes into `recs` (which is oldest first).
///
/// First everything older than its camera's retention; then, oldest first,
/// while the rest is over `max_bytes` (0 = no budget) or less than
/// `must_free` bytes were freed. The newest chunk of each camera always stays.
pub fn select(
    recs: &[Recording],
    days: &HashMap<String, i64>,
    now: i64,
    max_bytes: u64,
    must_free: u64,
) -> Vec<usize> {
    let mut newest: HashMap<&str, usize> = HashMap::new();
    for (i, r) in recs.iter().enumerate() {
        newest.insert(&r.camera_id, i);
    }
    let keep = |i: usize, r: &Recording| newest.get(r.camera_id.as_str()) == Some(&i);
    let mut doomed = vec![false; recs.len()];
    let (mut total, mut freed) = (0u64, 0u64);
    for (i, r) in recs.iter().enumerate() {
        let d = days.get(&r.camera_id).copied().unwrap_or(ORPHAN_DAYS);
        let size = r.size_bytes.max(0) as u64;
        if d > 0 && r.end_ms < now - d * DAY_MS && !keep(i, r) {
            doomed[i] = true;
            freed += size;
        } else {
            total += size;
        }
    }
    for (i, r) in recs.iter().enumerate() {
        let over = max_bytes > 0 && total > max_bytes;
        if !over && freed >= must_free {
            break;
        }
        if doomed[i] || keep(i, r) {
            continue;
        }
        doomed[i] = true;
        let size = r.size_bytes.max(0) as u64;
        total -= size;
        freed += size;
    }
    (0..recs.len()).filter(|i| doomed[*i]).collect()
}

/// Free bytes on the filesystem holding `path` (the mount with the longest
/// matching prefix), or `None` when it cannot be told.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let path = path.canonicalize().ok()?;
    let disks = sysinfo::Disks::new_with_refreshed_list();
    disks
        .list()
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| d.available_space())
}

/// Runs retention every `interval_s`, and whenever `kick` fires (a new
/// chunk landed), until `stop` is cancelled.
pub async fn run(ctx: Arc<Ctx>, chunks: Chunks, kick: Arc<Notify>, stop: CancellationToken) {
    let every = Duration::from_secs(ctx.retention.interval_s.max(1));
    loop {
        if let Err(e) = pass(&ctx, &chunks).await {
            tracing::warn!(error = %e, "retention pass failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = kick.notified() => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One retention pass over recordings and snapshots.
pub async fn pass(ctx: &Ctx, chunks: &Chunks) -> Result<usize, super::IngestError> {
    let recs = ctx.store.read(db::all_recordings).await?;
    let days: HashMap<String, i64> = ctx
        .store
        .read(db::list_cameras)
        .await?
        .into_iter()
        .map(|c| (c.id, c.retention_days))
        .collect();
    let must_free = match free_bytes(ctx.recordings_dir.root()) {
        Some(free) => ctx.retention.min_free_bytes.saturating_sub(free),
        None => 0,
    };
    let now = ctx.clock.now_ms();
    let doomed: Vec<Recording> = select(&recs, &days, now, ctx.retention.max_bytes, must_free)
        .into_iter()
        .map(|i| recs[i].clone())
        .collect();
    let n = chunks.retire(doomed).await?;
    if n > 0 {
        tracing::info!(chunks = n, "retention deleted recordings");
    }
    let rules = events_retention::rules(ctx, days);
    let pruned = events_retention::prune(&ctx.store, &ctx.snapshots_dir, &rules, now).await?;
    if pruned != events_retention::Pruned::default() {
        tracing::info!(?pruned, "retention deleted events and snapshots");
    }
    let mirror_on = rules.mirror_on;
    let spare_from = ctx
        .store
        .read(move |c| {
            let guard = db::prune_guard(c, mirror_on)?;
            db::oldest_guarded_start(c, guard)
        })
        .await?;
    let snaps = ctx.snapshots_dir.clone();
    tokio::task::spawn_blocking(move || {
        sweep_snapshots(&snaps, &rules.snapshot_days, now, spare_from)
    })
    .await
    .map_err(|_| super::IngestError::Internal("sweeping snapshots"))?;
    Ok(n)
}

/// Deletes `<camera>/<ms>-*.jpg` files (and `.<ms>-*.tmp` leftovers of a
/// torn write) older than the camera's snapshot retention. Runs after
/// [`events_retention::prune`] detached every row's snapshot past it, so
/// what is left there is named by no row; except the snapshots of events
/// the MQTT mirror has yet to publish (from `spare_from` on), which stay.
fn sweep_snapshots(root: &Path, days: &HashMap<String, i64>, now: i64, spare_from: Option<i64>) {
    let Ok(cams) = std::fs::read_dir(root) else {
        return;
    };
    for cam in cams.flatten() {
        let name = cam.file_name().to_string_lossy().into_owned();
        let d = days.get(&name).copied().unwrap_or(ORPHAN_DAYS);
        if d <= 0 {
            continue;
        }
        let cutoff = (now - d * DAY_MS).min(spare_from.unwrap_or(i64::MAX));
        let Ok(files) = std::fs::read_dir(cam.path()) else {
            continue;
        };
        for f in files.flatten() {
            let fname = f.file_name().to_string_lossy().into_owned();
            let at: Option<i64> = fname
                .trim_start_matches('.')
                .split('-')
                .next()
                .and_then(|s| s.parse().ok());
            if matches!(at, Some(at) if at < cutoff) {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: i64, cam: &str, start: i64, size: i64) -> Recording {
        Recording {
            id,
            camera_id: cam.into(),
            start_ms: start,
            end_ms: start + 1000,
            size_bytes: size,
            path: format!("{cam}/{start}.mp4"),
        }
    }

    #[test]
    fn age_then_budget_oldest_first_newest_always_kept() {
        let now = 10 * DAY_MS;
        let recs = vec![
            rec(1, "a", now - 3 * DAY_MS, 100),
            rec(2, "b", now - 3 * DAY_MS + 1, 100),
            rec(3, "a", now - 5000, 100),
            rec(4, "b", now - 4000, 100),
            rec(5, "a", now - 3000, 100),
        ];
        let days: HashMap<String, i64> = [("a".into(), 2), ("b".into(), 30)].into();
        // Only a's 3-day-old chunk is past a's 2 days.
        assert_eq!(select(&recs, &days, now, 0, 0), vec![0]);
        // A 250-byte budget: then b's old chunk and a's next-oldest go.
        assert_eq!(select(&recs, &days, now, 250, 0), vec![0, 1, 2]);
        // A budget smaller than anything keeps each camera's newest chunk.
        assert_eq!(select(&recs, &days, now, 1, 0), vec![0, 1, 2]);
        // Free-space pressure: oldest first until 150 bytes are freed.
        assert_eq!(select(&recs, &days, now, 0, 150), vec![0, 1]);
        // Deleted cameras age out after the default.
        let orphan = vec![
            rec(9, "gone", now - 8 * DAY_MS, 1),
            rec(10, "gone", now - 1, 1),
        ];
        assert_eq!(select(&orphan, &days, now, 0, 0), vec![0]);
    }

    #[test]
    fn the_sweep_takes_old_unnamed_files_and_spares_unsent_events() {
        let dir = tempfile::tempdir().unwrap();
        let now = 30 * DAY_MS;
        let names = [
            (now - 3 * DAY_MS, "1-entered.jpg"),
            (now - 3 * DAY_MS + 5, "2-left.jpg"),
            (now - 3 * DAY_MS, "3-entered.jpg.tmp"),
            (now - DAY_MS, "4-entered.jpg"),
        ];
        for cam in ["a", "b", "gone"] {
            std::fs::create_dir_all(dir.path().join(cam)).unwrap();
            for (at, rest) in names {
                let dot = if rest.ends_with(".tmp") { "." } else { "" };
                std::fs::write(dir.path().join(cam).join(format!("{dot}{at}-{rest}")), b"j")
                    .unwrap();
            }
        }
        let left = |cam: &str| std::fs::read_dir(dir.path().join(cam)).unwrap().count();
        let days: HashMap<String, i64> = [("a".into(), 2), ("b".into(), 0)].into();
        // An unsent event started 3 days ago + 5 ms: its file and newer stay.
        sweep_snapshots(dir.path(), &days, now, Some(now - 3 * DAY_MS + 5));
        assert_eq!(
            left("a"),
            2,
            "a's 2 days: the 3-day-old file and torn write went"
        );
        assert_eq!(left("b"), 4, "b keeps snapshots forever");
        assert_eq!(left("gone"), 4, "deleted cameras: 7 days");
        sweep_snapshots(dir.path(), &days, now, None);
        assert_eq!(left("a"), 1);
        sweep_snapshots(dir.path(), &days, now + 5 * DAY_MS, None);
        assert_eq!((left("a"), left("b"), left("gone")), (0, 4, 1));
    }

    #[test]
    fn free_bytes_finds_the_disk_of_a_path() {
        let free = free_bytes(&std::env::temp_dir()).expect("a mounted temp dir");
        assert!(free > 0);
    }
}
