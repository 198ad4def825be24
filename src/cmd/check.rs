//! `opennvr-edge check`: is the database intact? For after a crash, before
//! an upgrade, and in the packaging's health checks.

use std::process::ExitCode;

use crate::config::Config;
use crate::nvr::store::db;

/// Runs SQLite's integrity and foreign-key checks (migrating first if needed);
/// exits non-zero with the problems listed when anything is wrong.
pub fn check(cfg: Config) -> anyhow::Result<ExitCode> {
    let conn = super::open_db(&cfg)?;
    let problems = db::check(&conn)?;
    if problems.is_empty() {
        let events: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        println!("ok: {} ({events} events)", super::db_path(&cfg).display());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        println!("problem: {p}");
    }
    Ok(ExitCode::FAILURE)
}
