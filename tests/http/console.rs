//! The web console (port 8000's pages), in-process on real state: the
//! cookie session, CSRF, the security headers, roles, logout, media with
//! Range and confinement, and the login limiter on the sign-in form.
//! The same pages in real Chromium: tests/daemon (the browser tests).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Method;
use axum::Router;
use opennvr_edge::console::{self, ConsoleState, COOKIE, CSP};
use opennvr_edge::nvr::{self, store::Role};

use crate::harness::{request, App, Nvr, Resp, T0_MS};

/// The NVR core with the console merged in, as `run` serves them.
pub(crate) struct Console {
    pub(crate) nvr: Nvr,
    router: Router,
}

impl App for Console {
    fn router(&self) -> Router {
        self.router.clone()
    }
}

impl Console {
    async fn start() -> Console {
        Self::start_with(&[]).await
    }

    async fn start_with(env: &[(&str, &str)]) -> Console {
        Self::start_on(Nvr::start_with(env).await, None)
    }

    /// On `nvr`, with `/health`'s figures from `health` when given (as `run` wires them).
    fn start_on(nvr: Nvr, health: Option<console::HealthFn>) -> Console {
        let mut cs = ConsoleState::new(&nvr.cfg, nvr.state.clone());
        cs.health = health;
        let router = console::router(Arc::new(cs)).merge(nvr::router(nvr.state.clone()));
        Console { nvr, router }
    }

    /// On a fresh NVR core, with `[console]` as `edit` leaves it and the
    /// cameras' status read from `live` when given (as `run` sets it).
    pub(crate) async fn start_edited(
        edit: impl FnOnce(&mut opennvr_edge::config::Config),
        live: Option<Arc<dyn nvr::live::LiveCameras>>,
    ) -> Console {
        let nvr = Nvr::start().await;
        let mut cfg = nvr.cfg.clone();
        edit(&mut cfg);
        let mut state = nvr::NvrState::new(
            &cfg,
            nvr.state.store.clone(),
            std::fs::read_to_string(nvr.data_dir().join("jwt-secret"))
                .unwrap()
                .trim()
                .as_bytes(),
            nvr.state.clock.clone(),
            tokio_util::sync::CancellationToken::new(),
        )
        .unwrap();
        state.cameras = live;
        let state = Arc::new(state);
        let cs = ConsoleState::new(&cfg, state.clone());
        let router = console::router(Arc::new(cs)).merge(nvr::router(state));
        Console { nvr, router }
    }

    /// A browser signed in as the initial admin.
    pub(crate) async fn admin(&self) -> Browser<'_> {
        let mut b = Browser::new(self);
        let r = b.sign_in("admin", &self.nvr.admin_password()).await;
        assert_eq!(r.status, 303, "{}", r.text());
        b
    }

    /// A browser signed in as a new viewer `name`.
    pub(crate) async fn viewer(&self, name: &str) -> Browser<'_> {
        self.nvr
            .add_user(name, Role::Viewer, "viewer-password")
            .await;
        let mut b = Browser::new(self);
        let r = b.sign_in(name, "viewer-password").await;
        assert_eq!(r.status, 303, "{}", r.text());
        b
    }
}

/// A browser: keeps the cookies it is given and sends them back.
pub(crate) struct Browser<'a> {
    app: &'a Console,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a Console) -> Self {
        Browser {
            app,
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, rb: axum::http::request::Builder, body: Body) -> Resp {
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let rb = if jar.is_empty() {
            rb
        } else {
            rb.header("cookie", jar.join("; "))
        };
        let r = self.app.send(rb.body(body).unwrap()).await;
        for c in r.headers.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (kv, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        r
    }

    pub(crate) async fn get(&mut self, path: &str) -> Resp {
        self.send(request(Method::GET, path), Body::empty()).await
    }

    async fn get_range(&mut self, path: &str, range: &str) -> Resp {
        self.send(
            request(Method::GET, path).header("range", range),
            Body::empty(),
        )
        .await
    }

    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(
            request(Method::POST, path).header("content-type", "application/x-www-form-urlencoded"),
            Body::from(body),
        )
        .await
    }

    /// Posts `fields` with the CSRF token of the page at `from`.
    pub(crate) async fn submit(&mut self, from: &str, path: &str, fields: &[(&str, &str)]) -> Resp {
        let page = self.get(from).await;
        assert_eq!(page.status, 200, "{from}: {}", page.text());
        let csrf = csrf_of(&page.text());
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }

    async fn sign_in(&mut self, user: &str, password: &str) -> Resp {
        self.submit(
            "/login",
            "/login",
            &[("username", user), ("password", password)],
        )
        .await
    }
}

/// The value of the first `name="csrf"` hidden input of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf input");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The Set-Cookie header that sets `name`, if any.
fn set_cookie<'r>(r: &'r Resp, name: &str) -> Option<&'r str> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// Adds camera `id` through the API with `url`.
pub(crate) async fn add_camera(c: &Console, id: &str, url: &str) {
    add_camera_as(
        c,
        serde_json::json!({"id": id, "source_url": url, "enabled": false}),
    )
    .await;
}

/// Adds the camera `body` describes through the API.
async fn add_camera_as(c: &Console, body: serde_json::Value) {
    let t = c.nvr.admin_token().await;
    let r = c.nvr.post_json("/api/v1/cameras", Some(&t), &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
}

const PAGES: [&str; 9] = [
    "/",
    "/events",
    "/recordings",
    "/cameras/cam1",
    "/admin/cameras",
    "/admin/users",
    "/admin/tokens",
    "/admin/system",
    "/console/cameras/cam1/live.jpg",
];

#[tokio::test]
async fn sign_in_sets_an_httponly_strict_session_cookie_and_a_wrong_password_does_not() {
    let c = Console::start().await;
    let mut b = Browser::new(&c);
    let r = b.sign_in("admin", "not-the-password").await;
    assert_eq!(r.status, 401);
    assert!(
        set_cookie(&r, COOKIE).is_none(),
        "no session for a wrong password"
    );
    assert!(r.text().contains("Wrong username or password"));
    assert_eq!(b.get("/").await.status, 303);

    let r = b.sign_in("admin", &c.nvr.admin_password()).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), "/");
    let cookie = set_cookie(&r, COOKIE).expect("a session cookie");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("; Path=/"), "{cookie}");
    let home = b.get("/").await;
    assert_eq!(home.status, 200);
    let html = home.text();
    for link in ["/events", "/recordings", "/admin/cameras", "/admin/system"] {
        assert!(
            html.contains(&format!(r#"href="{link}""#)),
            "nav link {link}"
        );
    }
    assert!(html.contains(r#"<form id="logout" method="post" action="/logout">"#));
}

#[tokio::test]
async fn pages_and_media_without_a_session_redirect_to_the_sign_in_page() {
    let c = Console::start().await;
    add_camera(&c, "cam1", "rtsp://127.0.0.1:9/x").await;
    let mut b = Browser::new(&c);
    for path in PAGES {
        let r = b.get(path).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location"), "/login", "{path}");
    }
    // A forged cookie is no session either.
    b.cookies.insert(COOKIE.into(), "0".repeat(64));
    assert_eq!(b.get("/").await.status, 303);
    // The sign-in page itself and the assets need none.
    assert_eq!(b.get("/login").await.status, 200);
    let js = b.get(&format!("/console/assets/{}", console::HTMX)).await;
    assert_eq!(js.status, 200);
    assert!(js.header("cache-control").contains("immutable"));
}

#[tokio::test]
async fn every_page_carries_the_csp_and_the_other_security_headers_and_no_inline_code() {
    let c = Console::start().await;
    add_camera(&c, "cam1", "rtsp://127.0.0.1:9/x").await;
    let mut b = c.admin().await;
    let mut paths: Vec<&str> = PAGES[..8].to_vec();
    paths.extend(["/login", "/events/999", "/console/assets/console.js"]);
    for path in paths {
        let r = b.get(path).await;
        assert!(matches!(r.status, 200 | 404), "{path}: {}", r.status);
        assert_eq!(r.header("content-security-policy"), CSP, "{path}");
        assert_eq!(r.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(r.header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(r.header("x-content-type-options"), "nosniff", "{path}");
        if r.header("content-type").starts_with("text/html") {
            let html = r.text();
            assert!(!html.contains(" style="), "{path}: an inline style");
            assert!(!html.contains("<style"), "{path}: a style element");
            for tag in html.split("<script").skip(1) {
                let open = &tag[..tag.find('>').unwrap()];
                assert!(
                    open.contains(" src=\"/console/assets/"),
                    "{path}: inline script"
                );
                assert!(tag[open.len() + 1..].starts_with("</script>"), "{path}");
            }
        }
    }
    assert!(CSP.contains("script-src 'self'") && CSP.contains("frame-ancestors 'none'"));
    assert!(!CSP.contains("unsafe"));
}

#[tokio::test]
async fn a_form_without_its_csrf_token_or_with_another_is_refused() {
    let c = Console::start().await;
    let mut b = c.admin().await;
    let mut other = c.admin().await;
    let theirs = csrf_of(&other.get("/").await.text());
    let fields = [
        ("id", "yard"),
        ("source_url", "rtsp://127.0.0.1:9/y"),
        ("enabled", "true"),
    ];
    let r = b.post("/admin/cameras", &fields).await;
    assert_eq!(r.status, 403, "no token");
    assert!(r.text().contains("CSRF"));
    let mut with_theirs = vec![("csrf", theirs.as_str())];
    with_theirs.extend_from_slice(&fields);
    assert_eq!(
        b.post("/admin/cameras", &with_theirs).await.status,
        403,
        "another session's"
    );
    assert!(!b
        .get("/admin/cameras")
        .await
        .text()
        .contains("data-camera-id=\"yard\""));
    // Logout and sign-in are forms too.
    assert_eq!(b.post("/logout", &[]).await.status, 403);
    assert_eq!(b.get("/").await.status, 200, "still signed in");
    let mut fresh = Browser::new(&c);
    let pw = c.nvr.admin_password();
    let r = fresh
        .post("/login", &[("username", "admin"), ("password", &pw)])
        .await;
    assert_eq!(r.status, 403, "sign-in without the form's token");
    assert!(set_cookie(&r, COOKIE).is_none());
    // A form is a few fields: a large body is refused before it is read whole.
    let csrf = csrf_of(&b.get("/admin/cameras").await.text());
    let big = "x".repeat(100 * 1024);
    let r = b
        .post("/admin/cameras", &[("csrf", &csrf), ("name", &big)])
        .await;
    assert_eq!(r.status, 413);
    // With the right token the same form works.
    let r = b.submit("/admin/cameras", "/admin/cameras", &fields).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let list = b.get("/admin/cameras").await.text();
    assert!(list.contains(r#"<tr class="camera" data-camera-id="yard""#));
}

#[tokio::test]
async fn a_viewer_sees_no_administration_and_gets_403_there() {
    let c = Console::start().await;
    add_camera(&c, "cam1", "rtsp://127.0.0.1:9/x").await;
    let mut v = c.viewer("vic").await;
    let home = v.get("/").await;
    assert_eq!(home.status, 200);
    assert!(
        !home.text().contains("/admin/"),
        "admin links shown to a viewer"
    );
    assert!(home.text().contains(r#"data-camera="cam1""#));
    for path in [
        "/admin/cameras",
        "/admin/users",
        "/admin/tokens",
        "/admin/system",
        "/admin/cameras/cam1",
    ] {
        let r = v.get(path).await;
        assert_eq!(r.status, 403, "{path}");
        assert!(
            r.text().contains("<nav>"),
            "{path}: the error page has the nav"
        );
        assert!(!r.text().contains(r#"href="/admin/"#), "{path}");
    }
    let fields = [("id", "evil"), ("source_url", "rtsp://127.0.0.1:9/e")];
    assert_eq!(v.submit("/", "/admin/cameras", &fields).await.status, 403);
    assert_eq!(
        v.submit("/", "/admin/cameras/cam1/delete", &[])
            .await
            .status,
        403
    );
    assert_eq!(
        v.submit("/", "/admin/tokens", &[("name", "t")])
            .await
            .status,
        403
    );
    let mut a = c.admin().await;
    let list = a.get("/admin/cameras").await.text();
    assert!(list.contains(r#"data-camera-id="cam1""#) && !list.contains("evil"));
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server_so_the_old_cookie_is_refused() {
    let c = Console::start().await;
    let mut b = c.admin().await;
    let old = b.cookies.clone();
    let r = b.submit("/", "/logout", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), "/login");
    assert!(set_cookie(&r, COOKIE).unwrap().contains("Max-Age=0"));
    // A browser that kept the cookie (or a thief who copied it) is out.
    let mut replay = Browser::new(&c);
    replay.cookies = old;
    let r = replay.get("/").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), "/login");
    // An idle session ends too, on the clock.
    let mut b = c.admin().await;
    assert_eq!(b.get("/").await.status, 200);
    c.nvr.advance_s(c.nvr.cfg.console.session_idle_s + 1);
    assert_eq!(b.get("/").await.status, 303);
    // And a session whose password was reset elsewhere.
    let mut b = c.admin().await;
    let pw = c.nvr.admin_password();
    let hash = nvr::hash_password("a-new-password-1").unwrap();
    c.nvr
        .state
        .store
        .writer()
        .call(move |conn, now| {
            let admin = nvr::store::db::user_by_name(conn, "admin")?.unwrap();
            nvr::store::db::set_password(conn, admin.id, &hash, now)
        })
        .await
        .unwrap();
    assert_eq!(b.get("/").await.status, 303, "old password {pw} reset");
}

/// A real one-second H.264 chunk of Debian's street clip, indexed for `cam`.
async fn real_chunk(c: &Console, cam: &str, start_ms: i64) -> (i64, Vec<u8>) {
    let rel = format!("{cam}/{start_ms}.mp4");
    let path = c.nvr.data_dir().join("recordings").join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let st = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(crate::common::fixture(crate::common::VTEST_AVI))
        .args(["-t", "1", "-an", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-movflags", "+faststart"])
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    let bytes = std::fs::read(&path).unwrap();
    let (cam, len) = (cam.to_owned(), bytes.len() as i64);
    let id = c
        .nvr
        .state
        .store
        .writer()
        .call(move |conn, _| {
            nvr::store::db::add_recording(conn, &cam, start_ms, start_ms + 1000, len, &rel)
        })
        .await
        .unwrap();
    (id, bytes)
}

#[tokio::test]
async fn a_chunk_plays_with_range_to_the_cookie_session_and_the_pages_point_at_it() {
    let c = Console::start().await;
    add_camera(&c, "cam1", "rtsp://127.0.0.1:9/x").await;
    let (id, bytes) = real_chunk(&c, "cam1", T0_MS - 5_000).await;
    let mut b = c.viewer("vic").await;
    let url = format!("/console/recordings/cam1/{id}/chunk.mp4");
    let r = b.get_range(&url, "bytes=100-199").await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        format!("bytes 100-199/{}", bytes.len())
    );
    assert_eq!(r.body, &bytes[100..200]);
    assert_eq!(r.header("content-type"), "video/mp4");
    let whole = b.get(&url).await;
    assert_eq!((whole.status, whole.body.len()), (200, bytes.len()));
    assert_eq!(whole.header("accept-ranges"), "bytes");
    assert_eq!(whole.header("cache-control"), "no-store");
    // The recordings page lists it; an event in it opens at its moment.
    let day = b.get("/recordings?camera=cam1").await.text();
    assert!(day.contains(&format!(
        r#"<a class="chunk" data-recording-id="{id}" href="{url}""#
    )));
    assert!(day.contains(r#"<video id="player""#));
    let admin = c.nvr.admin_token().await;
    let ev = c
        .nvr
        .post_json(
            "/api/v1/events",
            Some(&admin),
            &serde_json::json!({"camera_id": "cam1", "type": "person_entered", "track_id": 3,
                                "score": 0.91, "started_at": T0_MS - 4_500}),
        )
        .await
        .json();
    let page = b.get(&format!("/events/{}", ev["id"])).await.text();
    assert!(
        page.contains(&format!(
            r#"<video id="playback" controls preload="metadata" src="{url}" data-offset="0.500">"#
        )),
        "{page}"
    );
    // Signed out, the chunk is not served.
    let mut anon = Browser::new(&c);
    assert_eq!(anon.get_range(&url, "bytes=0-9").await.status, 303);
}

#[tokio::test]
async fn media_routes_refuse_paths_out_of_their_folder_and_symlinks() {
    let c = Console::start().await;
    add_camera(&c, "cam1", "rtsp://127.0.0.1:9/x").await;
    let secret_path = c.nvr.data_dir().join("jwt-secret");
    let secret = std::fs::read(&secret_path).unwrap();
    let leaks = |body: &[u8]| body.windows(secret.len()).any(|w| w == secret.as_slice());
    let rec = c.nvr.data_dir().join("recordings/cam1");
    std::fs::create_dir_all(&rec).unwrap();
    std::os::unix::fs::symlink(&secret_path, rec.join("link.mp4")).unwrap();
    let rows = ["../jwt-secret", "cam1/link.mp4", "/etc/passwd"];
    let mut ids = Vec::new();
    for rel in rows {
        let rel = rel.to_owned();
        ids.push(
            c.nvr
                .state
                .store
                .writer()
                .call(move |conn, _| nvr::store::db::add_recording(conn, "cam1", 1, 2, 1, &rel))
                .await
                .unwrap(),
        );
    }
    let frames = c.nvr.data_dir().join("frames/cam1");
    std::fs::create_dir_all(&frames).unwrap();
    std::os::unix::fs::symlink(&secret_path, frames.join("latest.jpg")).unwrap();
    let mut b = c.admin().await;
    for id in ids {
        let r = b
            .get(&format!("/console/recordings/cam1/{id}/chunk.mp4"))
            .await;
        assert_eq!(r.status, 404, "row {id}");
        assert!(!leaks(&r.body));
    }
    let r = b.get("/console/cameras/cam1/live.jpg").await;
    assert_eq!(r.status, 404);
    assert!(!leaks(&r.body));
    for bad in [
        "/console/cameras/..%2F..%2Fjwt-secret/live.jpg",
        "/console/recordings/..%2Fx/1/chunk.mp4",
    ] {
        let r = b.get(bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(!leaks(&r.body));
    }
}

#[tokio::test]
async fn the_login_limiter_applies_to_the_sign_in_form() {
    let c = Console::start_with(&[("OPENNVR_LOGIN_FAILURES_PER_USER", "3")]).await;
    let mut b = Browser::new(&c);
    for _ in 0..3 {
        assert_eq!(b.sign_in("admin", "wrong").await.status, 401);
    }
    // Over the limit, even the right password is not checked.
    let r = b.sign_in("admin", &c.nvr.admin_password()).await;
    assert_eq!(r.status, 429);
    assert!(set_cookie(&r, COOKIE).is_none());
    assert!(r.text().contains("Too many sign-in attempts"));
    // The API shares the limit.
    let r = c
        .nvr
        .post_json(
            "/api/v1/auth/login-json",
            None,
            &serde_json::json!({"username": "admin", "password": c.nvr.admin_password()}),
        )
        .await;
    assert_eq!(r.status, 429);
    c.nvr.advance_s(c.nvr.cfg.nvr.login_window_s + 1);
    assert_eq!(
        b.sign_in("admin", &c.nvr.admin_password()).await.status,
        303
    );
}

/// A real JPEG of `w` x `h` (a gradient), written to `path`.
fn write_jpeg(path: &std::path::Path, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&img)
        .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, &out).unwrap();
    out
}

/// Stores `body` as an event through the API; returns its id.
async fn post_event(c: &Console, body: serde_json::Value) -> i64 {
    let t = c.nvr.admin_token().await;
    let r = c.nvr.post_json("/api/v1/events", Some(&t), &body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_i64().unwrap()
}

/// How many event rows `/events?q` lists.
async fn rows(b: &mut Browser<'_>, q: &str) -> usize {
    let html = b.get(&format!("/events?{q}")).await.text();
    html.matches(r#"<tr class="event""#).count()
}

/// The HTML of the element that starts at `start`, up to `end`.
fn section<'h>(html: &'h str, start: &str, end: &str) -> &'h str {
    let at = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {html}"));
    let rest = &html[at..];
    &rest[..rest.find(end).map(|e| e + end.len()).unwrap_or(rest.len())]
}

#[tokio::test]
async fn the_live_grid_shows_each_camera_with_its_frame_and_people_count() {
    let c = Console::start().await;
    add_camera(&c, "cam1", "rtsp://127.0.0.1:9/x").await;
    add_camera(&c, "cam2", "rtsp://127.0.0.1:9/y").await;
    let frame = write_jpeg(&c.nvr.data_dir().join("frames/cam1/latest.jpg"), 64, 48);
    for count in [2, 3] {
        let body = serde_json::json!({"camera_id": "cam1", "type": "count_changed",
            "track_id": count, "payload": {"count": count, "previous": count - 1}});
        post_event(&c, body).await;
    }
    let mut b = c.viewer("vic").await;
    let html = b.get("/").await.text();
    let one = section(
        &html,
        r#"<figure class="camera" data-camera="cam1""#,
        "</figure>",
    );
    assert!(
        one.contains(r#"data-state="offline""#),
        "not running in this test: {one}"
    );
    assert!(one.contains(
        r#"<a href="/cameras/cam1"><img class="live" src="/console/cameras/cam1/live.jpg""#
    ));
    assert!(
        one.contains(r#"<span class="people-count">3</span>"#),
        "{one}"
    );
    let two = section(
        &html,
        r#"<figure class="camera" data-camera="cam2""#,
        "</figure>",
    );
    assert!(two.contains(r#"<span class="people-count">0</span>"#));
    let img = b.get("/console/cameras/cam1/live.jpg").await;
    assert_eq!(
        (img.status, img.header("content-type")),
        (200, "image/jpeg")
    );
    assert_eq!(img.body, frame);
    assert_eq!(img.header("cache-control"), "no-store");
    assert_eq!(
        b.get("/console/cameras/cam2/live.jpg").await.status,
        404,
        "no frame yet"
    );
    // The polled status line, and what it answers once signed out.
    let cap = b.get("/console/cameras/cam1/caption").await.text();
    assert!(
        cap.starts_with("<figcaption") && cap.contains(r#"<span class="people-count">3</span>"#)
    );
    let mut anon = Browser::new(&c);
    let r = anon.get("/console/cameras/cam1/caption").await;
    assert_eq!((r.status, r.header("hx-redirect")), (401, "/login"));
    // The camera page: a larger view and today's events.
    let page = b.get("/cameras/cam1").await.text();
    assert!(page.contains(r#"<img id="live" class="live" src="/console/cameras/cam1/live.jpg""#));
    assert_eq!(page.matches(r#"<tr class="event""#).count(), 2);
    assert_eq!(b.get("/cameras/nope").await.status, 404);
}

#[tokio::test]
async fn the_event_list_shows_thumbnails_with_their_boxes_and_filters_without_javascript() {
    let c = Console::start().await;
    add_camera(&c, "cam1", "rtsp://127.0.0.1:9/x").await;
    let snap = write_jpeg(&c.nvr.data_dir().join("snapshots/cam1/a.jpg"), 320, 240);
    let entered = post_event(
        &c,
        serde_json::json!({"camera_id": "cam1", "type": "person_entered",
        "label": "person", "score": 0.87, "track_id": 5, "started_at": T0_MS - 60_000,
        "bbox": [10.5, 20.0, 30.0, 40.0], "snapshot_path": "cam1/a.jpg"}),
    )
    .await;
    let left = post_event(
        &c,
        serde_json::json!({"camera_id": "cam1", "type": "person_left",
        "track_id": 5, "started_at": T0_MS - 1_000, "payload": {"duration_ms": 65_000}}),
    )
    .await;
    let other = post_event(
        &c,
        serde_json::json!({"camera_id": "cam2", "type": "count_changed",
        "track_id": 1, "started_at": T0_MS, "payload": {"count": 1}}),
    )
    .await;
    let mut b = c.viewer("vic").await;
    let html = b.get("/events").await.text();
    assert!(html.contains(r#"<table id="events" class="cards">"#));
    let ids: Vec<i64> = html
        .split(r#"<tr class="event" data-event-id=""#)
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
        .collect();
    assert_eq!(ids, vec![other, left, entered], "newest first");
    let row = section(&html, &format!(r#"data-event-id="{entered}""#), "</tr>");
    assert!(row.contains(&format!(
        r#"<img class="thumb" src="/console/events/{entered}/snapshot.jpg""#
    )));
    assert!(
        row.contains(r#"<svg class="boxes" viewBox="0 0 320 240""#),
        "{row}"
    );
    assert!(
        row.contains(r#"<rect x="10.5" y="20" width="30" height="40">"#),
        "{row}"
    );
    assert!(
        row.contains(r#"<td class="score" data-label="Score">0.87</td>"#)
            && row.contains(r##"<td class="track" data-label="Track">#5</td>"##)
    );
    let row = section(&html, &format!(r#"data-event-id="{left}""#), "</tr>");
    assert!(
        row.contains(r#"<td class="duration" data-label="Duration">1 min 5 s</td>"#),
        "{row}"
    );
    // The filter form is a GET: the same URL without a script.
    assert_eq!(rows(&mut b, "camera=cam2&kind=&from=&to=").await, 1);
    assert_eq!(rows(&mut b, "camera=&kind=person_left&from=&to=").await, 1);
    assert_eq!(
        rows(&mut b, "camera=cam1&kind=&from=2023-11-14T22:13&to=").await,
        1
    );
    assert_eq!(
        rows(&mut b, "camera=&kind=&from=&to=2023-11-14T22:13").await,
        1
    );
    assert_eq!(b.get("/events?from=yesterday").await.status, 400);
    // One event: the snapshot large with its box.
    let page = b.get(&format!("/events/{entered}")).await.text();
    assert!(page.contains(r#"<img class="large" id="snapshot""#));
    assert!(page.contains("No recording covers this moment."));
    let pic = b
        .get(&format!("/console/events/{entered}/snapshot.jpg"))
        .await;
    assert_eq!((pic.status, pic.body == snap), (200, true));
    assert_eq!(pic.header("cache-control"), "no-store");
    assert_eq!(
        b.get(&format!("/console/events/{left}/snapshot.jpg"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn an_admin_manages_cameras_tokens_and_users_with_the_forms() {
    let c = Console::start().await;
    let mut a = c.admin().await;
    // Cameras: the credentials are masked everywhere and kept when the mask comes back.
    let url = "rtsp://cam:s3cret-pw@10.0.0.5:554/stream";
    let r = a
        .submit(
            "/admin/cameras",
            "/admin/cameras",
            &[
                ("id", "gate"),
                ("name", "Gate"),
                ("source_url", url),
                ("enabled", "true"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    for page in [
        "/admin/cameras",
        "/admin/cameras/gate",
        "/",
        "/admin/system",
    ] {
        let html = a.get(page).await.text();
        assert!(!html.contains("s3cret-pw"), "{page} shows the password");
    }
    let edit = a.get("/admin/cameras/gate").await.text();
    let masked = section(&edit, r#"name="source_url" value=""#, "\">");
    let masked = &masked[r#"name="source_url" value=""#.len()..masked.len() - 2];
    let r = a
        .submit(
            "/admin/cameras/gate",
            "/admin/cameras/gate",
            &[
                ("name", "Front gate"),
                ("source_url", masked),
                ("enabled", "true"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let stored = c
        .nvr
        .state
        .store
        .read(|conn| nvr::store::db::get_camera(conn, "gate"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.source_url.as_str()),
        ("Front gate", url)
    );
    let r = a
        .submit(
            "/admin/cameras",
            "/admin/cameras/gate/enable",
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(a
        .get("/admin/cameras")
        .await
        .text()
        .contains(r#"data-camera-id="gate" data-enabled="false""#));
    let r = a
        .submit(
            "/admin/cameras",
            "/admin/cameras",
            &[("id", "../x"), ("source_url", url)],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains(r#"id="form-error""#));
    let r = a
        .submit(
            "/admin/cameras",
            "/admin/cameras",
            &[("id", "gate"), ("source_url", url)],
        )
        .await;
    assert_eq!(r.status, 409, "taken");
    assert_eq!(
        a.submit("/admin/cameras", "/admin/cameras/gate/delete", &[])
            .await
            .status,
        303
    );
    assert!(!a
        .get("/admin/cameras")
        .await
        .text()
        .contains(r#"data-camera-id="gate""#));

    // Tokens: shown once, usable on the API, revocable.
    let r = a
        .submit(
            "/admin/tokens",
            "/admin/tokens",
            &[("name", "ha"), ("role", "viewer"), ("expires_days", "")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let html = r.text();
    let token = section(&html, "onvr_", "<");
    let token = &token[..token.len() - 1];
    assert_eq!(c.nvr.get("/api/v1/cameras", Some(token)).await.status, 200);
    let list = a.get("/admin/tokens").await.text();
    assert!(!list.contains(token), "shown only once");
    let id = section(&list, r#"data-token-id=""#, "\">");
    let id = &id[r#"data-token-id=""#.len()..id.len() - 2];
    let r = a
        .submit("/admin/tokens", &format!("/admin/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(c.nvr.get("/api/v1/cameras", Some(token)).await.status, 401);

    // Users: add, promote, reset (which ends their session), remove.
    let r = a
        .submit(
            "/admin/users",
            "/admin/users",
            &[
                ("username", "bob"),
                ("password", "bob-password-1"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = a.get("/admin/users").await.text();
    let row = section(&html, r#"data-username="bob""#, ">");
    assert!(row.contains(r#"data-role="viewer""#));
    let bob_id = {
        let r = section(
            &html,
            r#"<tr class="user" data-user-id=""#,
            "data-username=\"bob\"",
        );
        let ids: Vec<&str> = r
            .split(r#"data-user-id=""#)
            .skip(1)
            .map(|s| &s[..s.find('"').unwrap()])
            .collect();
        ids.last().unwrap().to_string()
    };
    let mut bob = Browser::new(&c);
    assert_eq!(bob.sign_in("bob", "bob-password-1").await.status, 303);
    assert!(!bob.get("/").await.text().contains("/admin/"));
    let r = a
        .submit(
            "/admin/users",
            &format!("/admin/users/{bob_id}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut bob = Browser::new(&c);
    assert_eq!(bob.sign_in("bob", "bob-password-1").await.status, 303);
    assert!(
        bob.get("/").await.text().contains(r#"href="/admin/users""#),
        "bob is an admin now"
    );
    let r = a
        .submit(
            "/admin/users",
            &format!("/admin/users/{bob_id}/password"),
            &[("password", "bob-password-2")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(bob.get("/").await.status, 303, "a reset ends bob's session");
    assert_eq!(
        Browser::new(&c)
            .sign_in("bob", "bob-password-1")
            .await
            .status,
        401
    );
    let r = a
        .submit(
            "/admin/users",
            &format!("/admin/users/{bob_id}/delete"),
            &[],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        Browser::new(&c)
            .sign_in("bob", "bob-password-2")
            .await
            .status,
        401
    );
    // Never the last admin, never oneself.
    let users = a.get("/admin/users").await.text();
    let me = users.split(r#"data-user-id=""#).nth(1).unwrap();
    let me = &me[..me.find('"').unwrap()];
    let r = a
        .submit(
            "/admin/users",
            &format!("/admin/users/{me}/role"),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = a
        .submit("/admin/users", &format!("/admin/users/{me}/delete"), &[])
        .await;
    assert_eq!(r.status, 400);
    let r = a
        .submit(
            "/admin/users",
            "/admin/users",
            &[
                ("username", "eve"),
                ("password", "short"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "a short password");
}

#[tokio::test]
async fn the_system_page_shows_the_health_figures_handed_in_at_wiring() {
    let nvr = Nvr::start().await;
    let engine = opennvr_edge::cmd::build_engine(&nvr.cfg).expect("engine");
    let hw = Arc::new(opennvr_edge::hw::Hardware::probe());
    let ai = Arc::new(opennvr_edge::api::AiState::new(&nvr.cfg, engine, hw).expect("ai state"));
    let health: console::HealthFn = Arc::new(move || opennvr_edge::api::health_body(&ai));
    let c = Console::start_on(nvr, Some(health));
    add_camera(&c, "cam1", "rtsp://127.0.0.1:9/x").await;
    let mut a = c.admin().await;
    let r = a.get("/admin/system").await;
    assert_eq!(r.status, 200);
    let html = r.text();
    for want in [
        r#"data-section="daemon""#,
        "<dt>uptime_s</dt>",
        r#"data-section="hardware""#,
        "<dt>cpu_cores</dt>",
        "<dt>ram_free_gb</dt>",
        r#"data-section="models""#,
        r#"data-section="Storage and retention""#,
        "<dt>data disk free</dt>",
        "<dt>keep free at least</dt>",
        r#"<tr data-camera-id="cam1">"#,
    ] {
        assert!(html.contains(want), "{want} missing");
    }
}

/// The id of user `name` as the users API lists it.
async fn user_id(c: &Console, admin: &str, name: &str) -> Option<i64> {
    let list = c.nvr.get("/api/v1/users", Some(admin)).await.json();
    list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name)
        .map(|u| u["id"].as_i64().unwrap())
}

#[tokio::test]
async fn a_removed_users_cookie_and_jwt_do_not_work_for_the_user_added_after() {
    let c = Console::start().await;
    let admin = c.nvr.admin_token().await;
    // Mallory is the newest user; she keeps her cookie and her access JWT.
    let mut mallory = c.viewer("mallory").await;
    let jwt = c.nvr.login("mallory", "viewer-password").await;
    let gone = user_id(&c, &admin, "mallory").await.unwrap();
    let r = c.nvr.delete(&format!("/api/v1/users/{gone}"), &admin).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Carol, an admin, is added next: she never gets Mallory's id, and
    // nothing of Mallory's opens anything as her.
    let r = c
        .nvr
        .post_json(
            "/api/v1/users",
            Some(&admin),
            &serde_json::json!({"username": "carol", "password": "long enough", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let carol = r.json()["id"].as_i64().unwrap();
    assert_ne!(carol, gone, "a removed user's id was handed out again");
    let r = mallory.get("/admin/users").await;
    assert_eq!((r.status, r.header("location")), (303, "/login"));
    assert_eq!(c.nvr.get("/api/v1/users", Some(&jwt)).await.status, 401);
}

#[tokio::test]
async fn a_day_that_is_not_a_date_is_refused_and_no_time_makes_a_page_panic() {
    let c = Console::start().await;
    add_camera(&c, "cam1", "rtsp://127.0.0.1:9/x").await;
    let mut b = c.viewer("vic").await;
    for day in [
        "9.99999e15",
        "1700000000",
        "2026-13-01",
        "2026-02-30",
        "+026-01-01",
        "2026-1-011",
    ] {
        let r = b.get(&format!("/recordings?camera=cam1&day={day}")).await;
        assert_eq!(r.status, 400, "{day}: {}", r.text());
    }
    for day in ["9999-12-31", "0000-01-01", "2026-02-28"] {
        let r = b.get(&format!("/recordings?camera=cam1&day={day}")).await;
        assert_eq!(r.status, 200, "{day}");
        assert!(r.text().contains(day), "{day}");
    }
    // The clock past year 9999: the pages show no date, and do not panic.
    c.nvr.advance_s(253_402_300_800 - T0_MS / 1000 + 86_400);
    let mut b = c.viewer("late").await;
    assert_eq!(b.get("/cameras/cam1").await.status, 200);
    assert_eq!(b.get("/recordings?camera=cam1").await.status, 200);
}

#[tokio::test]
async fn one_user_signing_in_again_and_again_signs_nobody_else_out() {
    let c = Console::start_edited(
        |cfg| {
            cfg.console.max_sessions = 4;
            cfg.console.max_sessions_per_user = 2;
        },
        None,
    )
    .await;
    let mut admin = c.admin().await;
    c.nvr.add_user("vic", Role::Viewer, "viewer-password").await;
    let mut vic: Vec<Browser<'_>> = Vec::new();
    for _ in 0..6 {
        let mut b = Browser::new(&c);
        assert_eq!(b.sign_in("vic", "viewer-password").await.status, 303);
        vic.push(b);
    }
    assert_eq!(admin.get("/").await.status, 200, "the admin is still in");
    // Vic keeps only the newest two of his own.
    assert_eq!(vic[0].get("/").await.status, 303);
    assert_eq!(vic[5].get("/").await.status, 200);
    // The table full of live sessions (admin, vic twice, eve): the next
    // sign-in is refused with a page that says why; nobody is signed out.
    let mut eve = c.viewer("eve").await;
    c.nvr.add_user("bob", Role::Viewer, "viewer-password").await;
    let mut bob = Browser::new(&c);
    let r = bob.sign_in("bob", "viewer-password").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("console.max_sessions"), "{}", r.text());
    for b in [&mut admin, &mut eve, &mut vic[4]] {
        assert_eq!(b.get("/").await.status, 200);
    }
}

/// Camera status as a running ingest reports it, with `error` as its last error.
struct Failing(String);

impl nvr::live::LiveCameras for Failing {
    fn status(&self, _camera: &str) -> Option<nvr::live::CameraStatus> {
        Some(nvr::live::CameraStatus {
            last_error: Some(self.0.clone()),
            ..Default::default()
        })
    }
}

#[tokio::test]
async fn the_system_page_masks_the_sub_streams_secrets_in_a_cameras_error() {
    let said = "rtsp://sub.example/s2: 401 for user watcher password sub-S3cret".to_owned();
    let c = Console::start_edited(|_| {}, Some(Arc::new(Failing(said)))).await;
    add_camera_as(
        &c,
        serde_json::json!({"id": "cam1", "source_url": "rtsp://main:M4in@10.0.0.5/s1",
                           "detect_url": "rtsp://watcher:sub-S3cret@10.0.0.5/s2",
                           "enabled": false}),
    )
    .await;
    let page = c.admin().await.get("/admin/system").await.text();
    assert!(page.contains("401 for user"), "{page}");
    assert!(!page.contains("sub-S3cret"), "{page}");
}
