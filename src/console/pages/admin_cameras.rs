//! `/admin/cameras`: list, add, edit, enable or disable, delete. The forms
//! go through the camera API's own validation and store calls
//! (`nvr::web::cameras`); source URLs are shown masked as the API masks them.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::live::one_camera;
use super::{html, html_with, shown_status};
use crate::console::error::{redirect, ConsoleError, ConsoleResult};
use crate::console::guard::{AdminOnly, Nav, NoFields, Posted, Signed};
use crate::console::ConsoleState;
use crate::nvr::store::{db, Camera};
use crate::nvr::web::cameras::{add as add_camera, change, CameraBody};
use crate::nvr::web::valid_camera_id;
use crate::redact;

/// A camera as the admin pages show it: the URL masked.
pub struct CameraRow {
    pub id: String,
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub record: bool,
    pub detect_fps: f64,
    pub retention_days: i64,
}

impl From<Camera> for CameraRow {
    fn from(c: Camera) -> Self {
        CameraRow {
            url: redact::url(&c.source_url),
            id: c.id,
            name: c.name,
            enabled: c.enabled,
            record: c.record,
            detect_fps: c.detect_fps,
            retention_days: c.retention_days,
        }
    }
}

#[derive(Template)]
#[template(path = "admin_cameras.html")]
struct ListView {
    nav: Option<Nav>,
    cameras: Vec<CameraRow>,
    error: Option<String>,
}

async fn list_page(
    st: &ConsoleState,
    who: &Signed,
    error: Option<String>,
    status: StatusCode,
) -> ConsoleResult<Response> {
    let cams = st.nvr.store.read(db::list_cameras).await?;
    let view = ListView {
        nav: Some(who.nav()),
        cameras: cams.into_iter().map(CameraRow::from).collect(),
        error,
    };
    html_with(&view, status)
}

/// `GET /admin/cameras`.
pub async fn list(
    State(st): State<Arc<ConsoleState>>,
    AdminOnly(who): AdminOnly,
) -> ConsoleResult<Response> {
    list_page(&st, &who, None, StatusCode::OK).await
}

/// The camera forms' fields; a checkbox is present when ticked.
#[derive(Deserialize)]
pub struct CameraForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    source_url: String,
    enabled: Option<String>,
    record: Option<String>,
    #[serde(default)]
    detect_fps: String,
    #[serde(default)]
    retention_days: String,
}

fn ticked(v: &Option<String>) -> bool {
    v.as_deref()
        .is_some_and(|v| !matches!(v, "false" | "0" | "off"))
}

impl CameraForm {
    /// The form as the camera API's body, so it passes the API's checks;
    /// empty fields are left out (unchanged on edit, defaults on add).
    fn body(&self, edit: bool) -> ConsoleResult<CameraBody> {
        let mut m = Map::new();
        for (k, v) in [("name", &self.name), ("source_url", &self.source_url)] {
            if !v.trim().is_empty() {
                m.insert(k.into(), json!(v.trim()));
            }
        }
        m.insert("enabled".into(), json!(ticked(&self.enabled)));
        if edit {
            m.insert("record".into(), json!(ticked(&self.record)));
        }
        let num = |name: &str, v: &str| -> ConsoleResult<Option<Value>> {
            match v.trim() {
                "" => Ok(None),
                t => t
                    .parse::<f64>()
                    .map(|n| Some(json!(n)))
                    .map_err(|_| ConsoleError::BadRequest(format!("{name} must be a number"))),
            }
        };
        if let Some(f) = num("detect_fps", &self.detect_fps)? {
            m.insert("detect_fps".into(), f);
        }
        if let Some(d) = num("retention_days", &self.retention_days)? {
            let days = d.as_f64().unwrap_or(-1.0);
            m.insert("retention_days".into(), json!(days as i64));
        }
        serde_json::from_value(Value::Object(m))
            .map_err(|e| ConsoleError::BadRequest(format!("bad camera form: {e}")))
    }
}

/// A validation or conflict error shown on the list page with its status;
/// anything else is the error page.
async fn shown(st: &ConsoleState, who: &Signed, e: ConsoleError) -> ConsoleResult<Response> {
    match shown_status(&e) {
        Some(status) => list_page(st, who, Some(e.to_string()), status).await,
        None => Err(e),
    }
}

/// `POST /admin/cameras` (form `camera-add`): adds a camera.
pub async fn add(
    State(st): State<Arc<ConsoleState>>,
    Posted(who, form): Posted<CameraForm>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    let id = form.id.trim().to_owned();
    let added = async {
        let patch = form.body(false)?.patch()?;
        Ok::<_, ConsoleError>(add_camera(&st.nvr, id, patch).await?)
    }
    .await;
    match added {
        Ok(_) => Ok(redirect("/admin/cameras")),
        Err(e) => shown(&st, &who, e).await,
    }
}

#[derive(Template)]
#[template(path = "admin_camera.html")]
struct EditView {
    nav: Option<Nav>,
    cam: CameraRow,
    motion: MotionView,
}

/// The edit page's motion form: the settings made through the API or
/// this form, and the config file's entry they replace.
pub struct MotionView {
    /// The gating select: `""` (as `[ingest.motion] enabled`), `on`, `off`.
    gating: &'static str,
    /// The masks as JSON polygons (what was posted, after an error).
    masks: String,
    /// Whether settings were made here (else the config file's apply).
    set_here: bool,
    /// The config file's entry for this camera, as JSON.
    file: String,
    error: Option<String>,
}

impl MotionView {
    fn of(st: &ConsoleState, cam: &Camera) -> Self {
        let shown = cam.motion.clone().unwrap_or_default();
        MotionView {
            gating: match shown.enabled {
                None => "",
                Some(true) => "on",
                Some(false) => "off",
            },
            // Plain numbers in arrays: serialising cannot fail.
            masks: serde_json::to_string(&shown.masks).unwrap_or_default(),
            set_here: cam.motion.is_some(),
            file: serde_json::to_string(&st.motion.camera(&cam.id)).unwrap_or_default(),
            error: None,
        }
    }
}

/// `GET /admin/cameras/{id}`: the edit form.
pub async fn edit(
    State(st): State<Arc<ConsoleState>>,
    AdminOnly(who): AdminOnly,
    Path(id): Path<String>,
) -> ConsoleResult<Response> {
    let cam = one_camera(&st, id).await?;
    html(&EditView {
        nav: Some(who.nav()),
        motion: MotionView::of(&st, &cam),
        cam: cam.into(),
    })
}

/// The motion form's fields.
#[derive(Deserialize)]
pub struct MotionForm {
    /// `""` (as `[ingest.motion] enabled`), `on` or `off`.
    #[serde(default)]
    gating: String,
    /// JSON polygons; blank is none.
    #[serde(default)]
    masks: String,
    /// `file` drops the settings made here (the config file's apply again).
    #[serde(default)]
    action: String,
}

impl MotionForm {
    /// The form as the camera API's body, so it passes the API's checks.
    fn body(&self) -> ConsoleResult<CameraBody> {
        let motion = if self.action == "file" {
            Value::Null
        } else {
            let enabled = match self.gating.as_str() {
                "" => Value::Null,
                "on" => json!(true),
                "off" => json!(false),
                _ => {
                    return Err(ConsoleError::BadRequest(
                        "gating must be on, off or blank".into(),
                    ))
                }
            };
            let masks: Value = match self.masks.trim() {
                "" => json!([]),
                t => serde_json::from_str(t).map_err(|e| {
                    ConsoleError::BadRequest(format!("masks are not JSON polygons: {e}"))
                })?,
            };
            json!({"enabled": enabled, "masks": masks})
        };
        serde_json::from_value(json!({ "motion": motion }))
            .map_err(|e| ConsoleError::BadRequest(format!("bad motion form: {e}")))
    }
}

/// `POST /admin/cameras/{id}/motion`: saves the camera's motion settings
/// (the running camera takes them up without a restart), or drops them.
/// A refused form shows the page again with the error and the text posted.
pub async fn motion(
    State(st): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    Posted(who, form): Posted<MotionForm>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    let cam = one_camera(&st, id).await?;
    let saved = async {
        let patch = form.body()?.patch()?;
        Ok::<_, ConsoleError>(change(&st.nvr, cam.id.clone(), patch).await?)
    }
    .await;
    let e = match saved {
        Ok(_) => return Ok(redirect("/admin/cameras")),
        Err(e) => e,
    };
    let Some(status) = shown_status(&e) else {
        return Err(e);
    };
    let mut motion = MotionView::of(&st, &cam);
    motion.masks = form.masks;
    motion.error = Some(e.to_string());
    let view = EditView {
        nav: Some(who.nav()),
        motion,
        cam: cam.into(),
    };
    html_with(&view, status)
}

/// `POST /admin/cameras/{id}`: saves the edit form.
pub async fn update(
    State(st): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    Posted(who, form): Posted<CameraForm>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    valid_camera_id(&id)?;
    let saved = async {
        let patch = form.body(true)?.patch()?;
        Ok::<_, ConsoleError>(change(&st.nvr, id, patch).await?)
    }
    .await;
    match saved {
        Ok(_) => Ok(redirect("/admin/cameras")),
        Err(e) => shown(&st, &who, e).await,
    }
}

/// The enable/disable form.
#[derive(Deserialize)]
pub struct EnableForm {
    enabled: String,
}

/// `POST /admin/cameras/{id}/enable` with `enabled=true|false`.
pub async fn enable(
    State(st): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    Posted(who, form): Posted<EnableForm>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    valid_camera_id(&id)?;
    let patch = crate::nvr::store::CameraPatch {
        enabled: Some(ticked(&Some(form.enabled))),
        ..Default::default()
    };
    change(&st.nvr, id, patch).await?;
    Ok(redirect("/admin/cameras"))
}

/// `POST /admin/cameras/{id}/delete`: removes the camera (its recordings and events stay).
pub async fn remove(
    State(st): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    Posted(who, NoFields {}): Posted<NoFields>,
) -> ConsoleResult<Response> {
    who.require_admin()?;
    valid_camera_id(&id)?;
    st.nvr
        .store
        .writer()
        .call(move |c, _| db::delete_camera(c, &id))
        .await?;
    Ok(redirect("/admin/cameras"))
}
