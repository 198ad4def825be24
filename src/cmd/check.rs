//! `opennvr-edge check`: is the database intact, and do the recordings
//! folder and its index agree? For after a crash, before an upgrade, and in
//! the packaging's health checks. Run it with the daemon stopped: a running
//! daemon may be between placing a chunk and indexing it.

use std::collections::BTreeSet;
use std::process::ExitCode;

use crate::config::Config;
use crate::ingest::recorder::{camera_dirs, entries};
use crate::nvr::store::db;
use crate::paths::{DataDir, Recordings};

/// Runs SQLite's integrity and foreign-key checks (migrating first if
/// needed) and compares the recordings index with the files; exits non-zero
/// with the problems listed when anything is wrong.
pub fn check(cfg: Config) -> anyhow::Result<ExitCode> {
    let conn = super::open_db(&cfg)?;
    let mut problems = db::check(&conn)?;
    let indexed: BTreeSet<String> = db::all_recordings(&conn)?
        .into_iter()
        .map(|r| r.path)
        .collect();
    let (on_disk, pending) = chunk_files(&DataDir::new(&cfg.paths).recordings());
    for p in indexed.difference(&on_disk) {
        problems.push(format!("recording {p} is indexed but its file is missing"));
    }
    for p in on_disk.difference(&indexed) {
        problems.push(format!("recording file {p} is not indexed"));
    }
    for p in &pending {
        // Left by a crash; the next start indexes or deletes them.
        println!("pending: {p} (repaired at next start)");
    }
    if problems.is_empty() {
        let events: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        println!(
            "ok: {} ({events} events, {} recordings)",
            super::db_path(&cfg).display(),
            indexed.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        println!("problem: {p}");
    }
    Ok(ExitCode::FAILURE)
}

/// `<camera>/<file>.mp4` paths under the recordings root, and files still in
/// a camera's `.inprogress` or `.trash`.
fn chunk_files(recs: &Recordings) -> (BTreeSet<String>, Vec<String>) {
    let (mut chunks, mut pending) = (BTreeSet::new(), Vec::new());
    for cam in camera_dirs(recs.root()) {
        let dir = recs.camera(&cam);
        for f in entries(&dir, false)
            .into_iter()
            .filter(|f| f.ends_with(".mp4"))
        {
            chunks.insert(format!("{cam}/{f}"));
        }
        for sub in [recs.inprogress(&cam), recs.trash(&cam)] {
            for f in entries(&sub, false) {
                let path = sub.join(f);
                let rel = path.strip_prefix(recs.root()).unwrap_or(&path);
                pending.push(rel.display().to_string());
            }
        }
    }
    (chunks, pending)
}
