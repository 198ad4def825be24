//! `/admin/system`: the figures of `/health` (CPU, RAM, GPU, models loaded
//! and their latency, MQTT), handed in at wiring as a value; the cameras'
//! pipeline counters (through `nvr::live`); disk use and retention.

use std::path::Path;
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde_json::Value;

use super::html;
use crate::console::error::ConsoleResult;
use crate::console::guard::{AdminOnly, Nav};
use crate::console::ConsoleState;
use crate::nvr::store::db;
use crate::redact;

/// A titled list of figures.
pub struct Section {
    pub title: String,
    pub figures: Vec<(String, String)>,
}

/// One camera's pipeline, as the page shows it.
pub struct CameraLine {
    pub id: String,
    pub state: &'static str,
    pub frames: u64,
    pub analysed: u64,
    pub dropped: u64,
    pub restarts: u64,
    pub retention_days: i64,
    pub last_error: String,
}

#[derive(Template)]
#[template(path = "admin_system.html")]
struct SystemView {
    nav: Option<Nav>,
    sections: Vec<Section>,
    cameras: Vec<CameraLine>,
}

/// `v` as `key: value` lines, nested keys joined by dots.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| flatten(&key(k), v, out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten(&key(&i.to_string()), v, out)),
        Value::Null => out.push((prefix.to_owned(), "–".into())),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Size and free space of the filesystem holding `dir` (the mount with the
/// longest matching prefix).
fn disk(dir: &Path) -> Option<(u64, u64)> {
    let dir = dir.canonicalize().ok()?;
    let disks = sysinfo::Disks::new_with_refreshed_list();
    let d = disks
        .list()
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())?;
    Some((d.total_space(), d.available_space()))
}

fn storage(st: &ConsoleState) -> Section {
    let r = &st.retention;
    let mut figures = Vec::new();
    if let Some((total, free)) = disk(&st.data_dir) {
        figures.push(("data disk size".into(), gib(total)));
        figures.push(("data disk free".into(), gib(free)));
        let used = 100.0 * (total.saturating_sub(free)) as f64 / total.max(1) as f64;
        figures.push(("data disk used".into(), format!("{used:.0} %")));
    }
    figures.push(("data dir".into(), st.data_dir.display().to_string()));
    let budget = match r.max_bytes {
        0 => "none".to_owned(),
        b => gib(b),
    };
    figures.push(("recordings byte budget".into(), budget));
    figures.push(("keep free at least".into(), gib(r.min_free_bytes)));
    figures.push(("retention runs every".into(), format!("{} s", r.interval_s)));
    Section {
        title: "Storage and retention".into(),
        figures,
    }
}

/// `GET /admin/system`.
pub async fn page(
    State(st): State<Arc<ConsoleState>>,
    AdminOnly(who): AdminOnly,
) -> ConsoleResult<Response> {
    // Each object of `/health` (hardware, models, auth...) is a section;
    // its plain values (status, version, uptime, mqtt when off) one more.
    let mut sections = Vec::new();
    let mut daemon = Vec::new();
    if let Some(Value::Object(h)) = st.health.as_ref().map(|f| f()) {
        for (name, v) in h {
            if v.is_object() {
                let mut figures = Vec::new();
                flatten("", &v, &mut figures);
                sections.push(Section {
                    title: name,
                    figures,
                });
            } else {
                flatten(&name, &v, &mut daemon);
            }
        }
    }
    if !daemon.is_empty() {
        sections.insert(
            0,
            Section {
                title: "daemon".into(),
                figures: daemon,
            },
        );
    }
    let st2 = st.clone();
    let store_section = tokio::task::spawn_blocking(move || storage(&st2))
        .await
        .map_err(|e| crate::console::error::ConsoleError::Render(e.to_string()))?;
    sections.push(store_section);
    let cams = st.nvr.store.read(db::list_cameras).await?;
    let cameras = cams
        .into_iter()
        .map(|c| {
            let s = st.nvr.cameras.as_ref().and_then(|l| l.status(&c.id));
            let s = s.unwrap_or_default();
            let err = s.last_error.as_deref().unwrap_or_default();
            CameraLine {
                state: if c.enabled && s.online {
                    "online"
                } else {
                    "offline"
                },
                frames: s.frames,
                analysed: s.analysed,
                dropped: s.dropped,
                restarts: s.restarts,
                retention_days: c.retention_days,
                last_error: redact::Secrets::of_camera(&c.source_url, c.detect_url.as_deref())
                    .scrub(err),
                id: c.id,
            }
        })
        .collect();
    html(&SystemView {
        nav: Some(who.nav()),
        sections,
        cameras,
    })
}
