//! `opennvr-edge init`: create what a first start needs (data dir, database,
//! JWT secret, the first admin) and exit.
//!
//! `run` does the same at every start, through [`prepare`]; this command
//! exists so that a package's `postinst` can generate the secrets at install
//! time, as the service user, and tell the operator where the password is
//! before anything listens on a port.

use std::path::PathBuf;

use anyhow::Context;

use crate::config::Config;
use crate::nvr::auth::{password, secret};
use crate::nvr::store::{db, Role, Store};
use crate::paths::DataDir;

/// What [`prepare`] found or created on disk.
pub struct Prepared {
    /// The JWT signing secret (hex), read from or written to `<data_dir>/jwt-secret`.
    pub jwt_secret: String,
    /// `Some(file)` when this call created user `admin`; its password is in `file`.
    pub created_admin: Option<PathBuf>,
}

/// Loads (or creates, 0600) the JWT secret and, when there are no users at
/// all, creates `admin` with a random password written to
/// `<data_dir>/initial-admin-password` (0600), so a fresh box is never open
/// and never has a default password. Idempotent: a second call changes nothing.
pub async fn prepare(cfg: &Config, store: &Store) -> anyhow::Result<Prepared> {
    let secret_path = DataDir::new(&cfg.paths).jwt_secret();
    let jwt_secret = secret::load_or_create(&secret_path, 32)
        .with_context(|| format!("loading JWT secret {}", secret_path.display()))?;
    let created_admin = ensure_initial_admin(cfg, store).await?;
    Ok(Prepared {
        jwt_secret,
        created_admin,
    })
}

async fn ensure_initial_admin(cfg: &Config, store: &Store) -> anyhow::Result<Option<PathBuf>> {
    if store.read(db::count_users).await? > 0 {
        return Ok(None);
    }
    let pw = secret::random_hex(12);
    let hash = tokio::task::spawn_blocking({
        let pw = pw.clone();
        move || password::hash(&pw)
    })
    .await??;
    let path = DataDir::new(&cfg.paths).initial_admin_password();
    // Write the file before the user exists: a crash in between leaves a
    // file for a user that is not there yet, and the next start replaces it.
    let _ = std::fs::remove_file(&path);
    secret::write_private(&path, format!("{pw}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    store
        .writer()
        .call(move |c, now| db::create_user(c, "admin", &hash, Role::Admin, now))
        .await?;
    tracing::warn!(
        path = %path.display(),
        "created user admin; its password is in this file: log in, change it (opennvr-edge user passwd), delete the file"
    );
    Ok(Some(path))
}

/// Opens (creating and migrating) the database, runs [`prepare`], and says
/// on stdout what it did: the one line a package's `postinst` shows.
pub fn init(cfg: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.paths.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.paths.data_dir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let db_path = super::db_path(&cfg);
    let prepared = rt.block_on(async {
        let store = Store::open(
            &db_path,
            std::sync::Arc::new(crate::clock::SystemClock),
            cfg.nvr.stream_buffer,
        )
        .with_context(|| format!("opening database {}", db_path.display()))?;
        prepare(&cfg, &store).await
    })?;
    match prepared.created_admin {
        Some(path) => println!(
            "created user admin; its password is in {} (readable by the service user and root only)",
            path.display()
        ),
        None => println!(
            "ready: {} (users exist, secrets kept)",
            cfg.paths.data_dir.display()
        ),
    }
    Ok(())
}
