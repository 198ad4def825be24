//! Connections and SQL. Every query is a plain function on a `Connection`, so
//! the writer task, the read pool and the CLI all run the same code; one
//! file per table (`users`, `tokens`, `cameras`, `recordings`, `events`, and
//! `events_prune` for event retention; the MQTT cursor is `store::outbox`), all re-exported here as `db::*`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Row};

use super::{Role, StoreError};

mod cameras;
mod events;
mod events_prune;
mod recordings;
mod tokens;
mod users;

pub use cameras::*;
pub use events::*;
pub use events_prune::*;
pub use recordings::*;
pub use tokens::*;
pub use users::*;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long a connection waits for another process's lock (the CLI writing
/// while the daemon runs) before reporting busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the read-write connection, creating the file if needed, and brings
/// the schema up to date.
///
/// WAL lets readers run during commits; `synchronous=FULL` fsyncs the WAL on
/// every commit, so a committed transaction survives power loss, not only a
/// process crash.
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    embedded::migrations::runner()
        .run(&mut conn)
        .map_err(StoreError::Migration)?;
    Ok(conn)
}

/// Opens a read-only connection (the file must exist: the writer made it).
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// `PRAGMA integrity_check` and `foreign_key_check`; the problems found, empty if none.
pub fn check(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let mut st = conn.prepare("PRAGMA integrity_check")?;
    for r in st.query_map([], |r| r.get::<_, String>(0))? {
        let r = r?;
        if r != "ok" {
            problems.push(r);
        }
    }
    let mut st = conn.prepare("PRAGMA foreign_key_check")?;
    for r in st.query_map([], |r| r.get::<_, String>(0))? {
        problems.push(format!("foreign key violation in table {}", r?));
    }
    Ok(problems)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

fn role_col(r: &Row, idx: usize) -> rusqlite::Result<Role> {
    let s: String = r.get(idx)?;
    Role::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, s.into())
    })
}
