//! The web console on port 8000: server-rendered pages for people (live
//! cameras, events with their pictures, recordings, administration) beside
//! the JSON API, on the same users, limits and store.
//!
//! Pages are askama templates compiled into the binary; the browser loads
//! only our stylesheet, our small script and a vendored htmx, all embedded
//! (`assets`). Signing in gives a server-side cookie session (`session`),
//! every form carries a CSRF token (`guard`), and every answer a strict
//! Content-Security-Policy (`headers`). Media (live frames, snapshots, MP4
//! chunks with Range) are served to the cookie session by `media`, confined
//! to their folders. Lists are readable without JavaScript. docs/console.md.

mod assets;
mod error;
mod guard;
mod headers;
mod media;
mod pages;
mod session;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use assets::HTMX;
pub use headers::CSP;
pub use session::{COOKIE, LOGIN_COOKIE};

use crate::config::{Config, MotionConfig, RetentionConfig};
use crate::nvr::NvrState;

/// The figures of the adapter's `/health` (CPU, RAM, GPU, models and their
/// latency, MQTT), handed in at wiring: the console does not know the
/// adapter, it only shows what this gives.
pub type HealthFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Everything the console's handlers share.
pub struct ConsoleState {
    /// The NVR core: its store, login limiter, hashing slots, folders, live cameras.
    pub nvr: Arc<NvrState>,
    /// The signed-in browsers.
    pub sessions: session::Sessions,
    /// `/health`'s figures for the system page; `None` shows none.
    pub health: Option<HealthFn>,
    /// The retention settings, shown on the system page.
    pub retention: RetentionConfig,
    /// The data dir, whose disk use the system page shows.
    pub data_dir: PathBuf,
    /// `[ingest.motion]`: the camera page shows a camera's entry from the
    /// config file beside the settings made there.
    pub motion: MotionConfig,
}

impl ConsoleState {
    /// The console over `nvr`, with `[console]`'s session bounds and no health figures.
    pub fn new(cfg: &Config, nvr: Arc<NvrState>) -> Self {
        ConsoleState {
            sessions: session::Sessions::new(&cfg.console, nvr.clock.clone()),
            nvr,
            health: None,
            retention: cfg.retention.clone(),
            data_dir: cfg.paths.data_dir.clone(),
            motion: cfg.ingest.motion.clone(),
        }
    }
}

/// Largest form a page posts: a few short fields.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The console's routes, to merge with the NVR router (which keeps the
/// fallback): `console::router(c).merge(nvr::router(n))`. Served with
/// connect info, so the sign-in form's rate limit sees client addresses.
pub fn router(state: Arc<ConsoleState>) -> Router {
    use pages::{
        admin_cameras as cams, admin_system, admin_tokens as tokens, admin_users as users,
    };
    use pages::{events, live, login, recordings};
    Router::new()
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/", get(live::grid))
        .route("/cameras/{id}", get(live::camera))
        .route("/events", get(events::list))
        .route("/events/{id}", get(events::one))
        .route("/recordings", get(recordings::day))
        .route("/admin/cameras", get(cams::list).post(cams::add))
        .route("/admin/cameras/{id}", get(cams::edit).post(cams::update))
        .route("/admin/cameras/{id}/enable", post(cams::enable))
        .route("/admin/cameras/{id}/motion", post(cams::motion))
        .route("/admin/cameras/{id}/delete", post(cams::remove))
        .route("/admin/users", get(users::list).post(users::add))
        .route("/admin/users/{id}/role", post(users::role))
        .route("/admin/users/{id}/password", post(users::password))
        .route("/admin/users/{id}/delete", post(users::remove))
        .route("/admin/tokens", get(tokens::list).post(tokens::create))
        .route("/admin/tokens/{id}/revoke", post(tokens::revoke))
        .route("/admin/system", get(admin_system::page))
        .route("/console/assets/{name}", get(assets::asset))
        .route("/console/cameras/{id}/live.jpg", get(media::live))
        .route("/console/cameras/{id}/caption", get(live::caption))
        .route("/console/events/{id}/snapshot.jpg", get(media::snapshot))
        .route(
            "/console/recordings/{camera}/{id}/chunk.mp4",
            get(media::chunk),
        )
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            headers::finish,
        ))
        .with_state(state)
}
