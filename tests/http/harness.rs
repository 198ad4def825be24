//! The in-process harness: both ports' routers built the way `run` builds
//! them (same `Config` loading, same `cmd::init::prepare`), on a temp data dir,
//! called with `tower::ServiceExt::oneshot`. No ports, no processes: time is
//! a `ManualClock` the test moves.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request};
use axum::Router;
use futures_util::StreamExt as _;
use opennvr_edge::api::{self, AiState};
use opennvr_edge::clock::{Clock, ManualClock};
use opennvr_edge::config::Config;
use opennvr_edge::hw::Hardware;
use opennvr_edge::nvr::store::Store;
use opennvr_edge::nvr::{self, NvrState};
use serde_json::{json, Value};

pub use crate::common::SseMsg;
use tower::ServiceExt as _;

/// Where the manual clock starts: 2023-11-14T22:13:20Z, a plain recent instant.
pub const T0_MS: i64 = 1_700_000_000_000;

/// How long a stream read waits for a message: long enough for a loaded CI
/// box, only ever reached when a test is failing.
const STREAM_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Bodies read back are capped (the largest answer a test reads is a page of events).
const MAX_READ: usize = 64 << 20;

/// A config as `run` would load it with no file and `env` as the environment,
/// its data dir under `dir`; models from the test models dir unless `env` names one.
pub fn config(dir: &Path, env: &[(&str, &str)]) -> Config {
    let data = dir.join("data").display().to_string();
    let models = crate::common::models_dir().display().to_string();
    Config::load(None, |k| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
            .or_else(|| match k {
                "OPENNVR_DATA_DIR" => Some(data.clone()),
                "OPENNVR_MODELS_DIR" => Some(models.clone()),
                _ => None,
            })
    })
    .expect("test config")
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: status {}, body {:?}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error.code` of a JSON error answer.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {}", self.text()))
            .to_owned()
    }

    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

/// A request: method, path, headers, body; sent with [`App::send`].
pub fn request(method: Method, path: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(path)
}

/// `Authorization: Bearer <token>`.
pub fn bearer(rb: axum::http::request::Builder, token: &str) -> axum::http::request::Builder {
    rb.header(header::AUTHORIZATION, format!("Bearer {token}"))
}

/// What both ports' harnesses share: a router and the calls tests make on it.
pub trait App {
    fn router(&self) -> Router;

    /// Sends `req` through the router, as from `127.0.0.1`, and reads the whole answer.
    async fn send(&self, req: Request<Body>) -> Resp {
        self.send_from([127, 0, 0, 1], req).await
    }

    /// As [`App::send`], as from client address `ip` (the login rate limit sees it).
    async fn send_from(&self, ip: [u8; 4], mut req: Request<Body>) -> Resp {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
        // As an HTTP client would: a body of known size says its length.
        if !req.headers().contains_key(header::CONTENT_LENGTH) {
            if let Some(n) = http_body::Body::size_hint(req.body()).exact() {
                if n > 0 {
                    req.headers_mut().insert(header::CONTENT_LENGTH, n.into());
                }
            }
        }
        let r = self.router().oneshot(req).await.expect("infallible router");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), MAX_READ)
            .await
            .expect("answer body")
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Sends `req` and keeps the answer's body open: for the event stream.
    async fn open(&self, mut req: Request<Body>) -> Sse {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let r = self.router().oneshot(req).await.expect("infallible router");
        Sse {
            status: r.status().as_u16(),
            body: r.into_body().into_data_stream(),
            buf: String::new(),
        }
    }

    /// GET `path`, with a bearer token when `token` is given.
    async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        let rb = request(Method::GET, path);
        let rb = match token {
            Some(t) => bearer(rb, t),
            None => rb,
        };
        self.send(rb.body(Body::empty()).unwrap()).await
    }

    /// DELETE `path` with a bearer token.
    async fn delete(&self, path: &str, token: &str) -> Resp {
        self.send(
            bearer(request(Method::DELETE, path), token)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// `method path` with `body` as JSON, with a bearer token when given.
    async fn json(&self, method: Method, path: &str, token: Option<&str>, body: &Value) -> Resp {
        let rb = request(method, path);
        let rb = match token {
            Some(t) => bearer(rb, t),
            None => rb,
        };
        self.send(
            rb.header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
    }

    /// POST `path` with `body` as JSON.
    async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.json(Method::POST, path, token, body).await
    }

    /// POST `path` with raw bytes labelled `content_type`.
    async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        self.send(
            request(Method::POST, path)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// POST `path` as `multipart/form-data`: text fields, then file parts
    /// `(name, file_name, bytes)`.
    async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Resp {
        self.send(multipart(request(Method::POST, path), fields, files))
            .await
    }
}

/// `rb` with a `multipart/form-data` body: text fields, then file parts
/// `(name, file_name, bytes)`; for a form that also needs a header.
pub fn multipart(
    rb: axum::http::request::Builder,
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> Request<Body> {
    const B: &str = "opennvr-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    for (name, file, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{B}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{B}--\r\n").as_bytes());
    rb.header(
        header::CONTENT_TYPE,
        format!("multipart/form-data; boundary={B}"),
    )
    .body(Body::from(body))
    .unwrap()
}

/// An SSE answer read message by message (see [`App::open`]).
pub struct Sse {
    pub status: u16,
    body: axum::body::BodyDataStream,
    buf: String,
}

impl Sse {
    /// The next message, skipping keep-alive comments; `None` when the
    /// stream ends, or nothing came within `STREAM_WAIT` (a failing test).
    pub async fn next(&mut self) -> Option<SseMsg> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(m) = parse_sse(&block) {
                    return Some(m);
                }
                continue;
            }
            let chunk = tokio::time::timeout(STREAM_WAIT, self.body.next())
                .await
                .ok()??
                .ok()?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// One SSE message from its lines; `None` for a comment-only block.
fn parse_sse(block: &str) -> Option<SseMsg> {
    let mut msg = SseMsg {
        id: None,
        event: None,
        data: String::new(),
    };
    let mut any = false;
    for line in block
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(':'))
    {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        any = true;
        match field {
            "id" => msg.id = Some(value),
            "event" => msg.event = Some(value),
            "data" if msg.data.is_empty() => msg.data = value,
            "data" => msg.data = format!("{}\n{value}", msg.data),
            _ => {}
        }
    }
    any.then_some(msg)
}

// ---------------------------------------------------------------- port 9100

/// The AI adapter's router on a temp data dir, with the test models.
pub struct Ai {
    router: Router,
    _dir: tempfile::TempDir,
}

impl Ai {
    /// With the test models and `env` as the environment (`OPENNVR_*`, as the daemon reads it).
    pub fn start(env: &[(&str, &str)]) -> Ai {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), env);
        std::fs::create_dir_all(&cfg.paths.data_dir).unwrap();
        let engine = opennvr_edge::cmd::build_engine(&cfg).expect("engine");
        let state = AiState::new(&cfg, engine, Arc::new(Hardware::probe())).expect("frames dir");
        Ai {
            router: api::router(Arc::new(state)),
            _dir: dir,
        }
    }
}

impl App for Ai {
    fn router(&self) -> Router {
        self.router.clone()
    }
}

/// POST /infer `body`; returns (status, JSON body or `null`).
pub async fn infer(ai: &Ai, body: &Value) -> (u16, Value) {
    let r = ai.post_json("/infer", None, body).await;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

// ---------------------------------------------------------------- port 8000

/// The NVR core's router on a temp data dir, prepared as `run` prepares it
/// (JWT secret, initial admin), on a manual clock.
pub struct Nvr {
    router: Router,
    pub state: Arc<NvrState>,
    pub clock: Arc<ManualClock>,
    pub cfg: Config,
    /// Keeps live streams open until dropped (the daemon's shutdown signal).
    _stop: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

impl Nvr {
    /// With the default settings.
    pub async fn start() -> Nvr {
        Self::start_with(&[]).await
    }

    /// With `env` as the environment (`OPENNVR_*`, as the daemon reads it).
    pub async fn start_with(env: &[(&str, &str)]) -> Nvr {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), env);
        std::fs::create_dir_all(&cfg.paths.data_dir).unwrap();
        let clock = Arc::new(ManualClock::new(T0_MS));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let store = Store::open(
            &opennvr_edge::cmd::db_path(&cfg),
            dyn_clock.clone(),
            cfg.nvr.stream_buffer,
        )
        .expect("store");
        let prepared = opennvr_edge::cmd::init::prepare(&cfg, &store)
            .await
            .expect("prepare");
        let stop = tokio_util::sync::CancellationToken::new();
        let state = Arc::new(
            NvrState::new(
                &cfg,
                store,
                prepared.jwt_secret.as_bytes(),
                dyn_clock,
                stop.clone(),
            )
            .expect("state"),
        );
        Nvr {
            router: nvr::router(state.clone()),
            state,
            clock,
            cfg,
            _stop: stop.drop_guard(),
            _dir: dir,
        }
    }

    /// The data dir (database, secrets, recordings).
    pub fn data_dir(&self) -> &Path {
        &self.cfg.paths.data_dir
    }

    /// Moves the clock by `s` seconds.
    pub fn advance_s(&self, s: i64) {
        self.clock.advance(s * 1000);
    }

    /// The password `prepare` generated for `admin`.
    pub fn admin_password(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("initial-admin-password"))
            .expect("initial-admin-password")
            .trim()
            .to_owned()
    }

    /// Logs in over JSON; returns the whole token pair.
    pub async fn login_pair(&self, username: &str, password: &str) -> Value {
        let r = self
            .post_json(
                "/api/v1/auth/login-json",
                None,
                &json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "login {username}: {}", r.text());
        r.json()
    }

    /// Logs in over JSON; returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        self.login_pair(username, password).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// An access token for the initial admin.
    pub async fn admin_token(&self) -> String {
        self.login("admin", &self.admin_password()).await
    }

    /// Creates an API token with `body` (name, role, expiry) as `admin`;
    /// returns the token and its id.
    pub async fn api_token(&self, admin: &str, body: &Value) -> (String, i64) {
        let r = self.post_json("/api/v1/tokens", Some(admin), body).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        (
            v["token"].as_str().unwrap().to_owned(),
            v["id"].as_i64().unwrap(),
        )
    }

    /// Adds user `name` with `role` and `password` to the store, as `user add` does.
    pub async fn add_user(&self, name: &str, role: nvr::store::Role, password: &str) {
        let hash = nvr::hash_password(password).unwrap();
        let name = name.to_owned();
        self.state
            .store
            .writer()
            .call(move |c, now| nvr::store::db::create_user(c, &name, &hash, role, now))
            .await
            .expect("create user");
    }

    /// Adds a viewer and returns its access token.
    pub async fn viewer_token(&self, name: &str) -> String {
        self.add_user(name, nvr::store::Role::Viewer, "viewer-password")
            .await;
        self.login(name, "viewer-password").await
    }
}

impl App for Nvr {
    fn router(&self) -> Router {
        self.router.clone()
    }
}
