//! Subcommands, one per file. `anyhow` lives here and in `main`, at the edges.

pub mod check;
pub mod infer;
pub mod init;
pub mod logging;
pub mod models;
pub mod run;
pub mod user;

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::sync::Arc;

use crate::ai::backend::onnxruntime::default_lib;
use crate::ai::backend::select::{cpu_runtime, open_cuda, open_onnxruntime, select};
use crate::ai::backend::TractBackend;
use crate::ai::Engine;
use crate::catalog::{Catalog, CatalogError};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::hw::Hardware;
use crate::paths::DataDir;

/// Loads the config from `path` (if any) and the process environment.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(Config::load(path, |k| std::env::var(k).ok())?)
}

/// Opens the models dir; a missing manifest leaves the daemon up with no tasks.
pub fn open_catalog(cfg: &Config) -> anyhow::Result<Catalog> {
    match Catalog::open(&cfg.paths.models_dir) {
        Ok(c) => Ok(c),
        Err(e @ CatalogError::NoManifest(_)) => {
            tracing::warn!("{e}; no AI tasks available");
            Ok(Catalog::empty(&cfg.paths.models_dir))
        }
        Err(e) => Err(e.into()),
    }
}

/// The engine every command shares, on the hardware probed now.
pub fn build_engine(cfg: &Config) -> anyhow::Result<Arc<Engine>> {
    build_engine_on(cfg, &Hardware::probe())
}

/// The engine on `hw`: the backend `[ai] device` and `[ai] cpu_runtime`
/// ask for (one log line says which and why; `cuda` without a usable GPU
/// or `onnxruntime` without its library is an error), the wall clock. `hw`
/// learns the backend for `/health`.
pub fn build_engine_on(cfg: &Config, hw: &Hardware) -> anyhow::Result<Arc<Engine>> {
    TractBackend::set_threads(cfg.ai.runner_threads());
    let lib = match cfg.ai.onnxruntime_lib.as_os_str().is_empty() {
        true => default_lib(&cfg.paths.models_dir),
        false => cfg.ai.onnxruntime_lib.clone(),
    };
    let ort = || open_onnxruntime(&lib, cfg.ai.runner_threads(), cfg.ai.runners());
    let on_cpu = || cpu_runtime(cfg.ai.cpu_runtime, &ort);
    let chosen = select(cfg.ai.device, hw, &|| open_cuda(cfg.ai.cuda_f16), &on_cpu)?;
    if chosen.degraded {
        tracing::warn!("{}", chosen.message);
    } else {
        tracing::info!("{}", chosen.message);
    }
    hw.set_ai_backend(chosen.backend.name());
    let catalog = open_catalog(cfg)?;
    Ok(Arc::new(Engine::new(
        cfg,
        catalog,
        chosen.backend,
        Arc::new(SystemClock),
    )))
}

/// The database file: one SQLite file in the data dir.
pub fn db_path(cfg: &Config) -> PathBuf {
    DataDir::new(&cfg.paths).database()
}

/// Opens (creating and migrating) the database for a CLI command.
pub fn open_db(cfg: &Config) -> anyhow::Result<rusqlite::Connection> {
    std::fs::create_dir_all(&cfg.paths.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.paths.data_dir.display()))?;
    let path = db_path(cfg);
    crate::nvr::store::db::open_writer(&path)
        .with_context(|| format!("opening database {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `main` prints `{:#}`, which walks `source()`: each cause must show once.
    #[test]
    fn a_printed_error_chain_says_each_cause_once() {
        let dir = std::env::temp_dir().join(format!("opennvr-chain-{}", std::process::id()));
        let missing = dir.join("missing.toml");
        let e = load_config(Some(&missing)).unwrap_err();
        let io = std::fs::read(&missing).unwrap_err().to_string();
        let text = format!("{e:#}");
        assert_eq!(text.matches(&io).count(), 1, "{text}");
        assert!(text.contains("missing.toml"), "{text}");

        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bad.toml"), "[ai\n").unwrap();
        let e = load_config(Some(&dir.join("bad.toml"))).unwrap_err();
        let text = format!("{e:#}");
        assert_eq!(text.matches("invalid config").count(), 1, "{text}");
        assert_eq!(text.matches("TOML parse error").count(), 1, "{text}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
