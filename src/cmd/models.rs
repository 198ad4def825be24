//! `opennvr-edge models`: what is installed, and is it what was installed.

use std::process::ExitCode;

use crate::catalog::{Catalog, Integrity};
use crate::config::Config;

/// Lists every manifest entry with its integrity; fails when the configured
/// detector is missing or any file differs from its recorded sha256.
pub fn models(cfg: Config, json: bool) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::open(&cfg.paths.models_dir)?;
    let mut ok = catalog.get(&cfg.detector.model).is_some();
    if !ok {
        eprintln!(
            "configured detector {:?} is not in the manifest",
            cfg.detector.model
        );
    }
    let mut rows = Vec::new();
    for e in catalog.entries() {
        let status = catalog.verify(e);
        ok &= status == Integrity::Ok;
        rows.push(serde_json::json!({"id": e.id, "kind": e.kind, "file": e.file, "sha256": e.sha256, "integrity": status}));
        if !json {
            let s = match &status {
                Integrity::Ok => "ok".to_owned(),
                Integrity::Missing => "MISSING".to_owned(),
                Integrity::Altered { file, actual } => format!("ALTERED ({file} is now {actual})"),
            };
            println!("{:<24} {:<18} {:<28} {}", e.id, e.kind, e.file, s);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
