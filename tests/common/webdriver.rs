//! A small W3C WebDriver client for the browser tests: chromedriver and a
//! headless Chromium (Debian's `chromium` + `chromium-driver`), driven with
//! JSON over HTTP (the blocking `reqwest` client the other tests use).
//!
//! Only what the console tests need: navigate, find, click, type, read a
//! property, run a script, cookies, viewport size, full-page screenshot
//! (the last two through chromedriver's Chrome DevTools passthrough). A crate such
//! as `fantoccini` would bring an async runtime and a second HTTP stack into
//! tests that are otherwise blocking, for the same dozen endpoints.
//!
//! chromedriver runs in its own process group with Chromium under it, and
//! Chromium gets a fresh empty profile and flags that stop its background
//! connections (this machine's network refuses them; CI's may not exist).
//! [`Browser`]'s `Drop` ends the session, kills the group and removes the
//! profile, so a failing test leaves no process behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::{temp_dir, wait_for};

/// The W3C key of an element reference in a WebDriver answer.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's flags: headless, no sandbox (CI runs as root in a container),
/// no GPU, and nothing that phones home (QUIC, component updates, sync,
/// background networking, first-run pages).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--disable-crash-reporter",
];

/// The tallest screenshot taken, CSS pixels: long lists are cut there.
const MAX_SHOT_HEIGHT: f64 = 3000.0;

/// An element found on the page (valid until the page changes).
#[derive(Clone, Debug)]
pub struct Element(String);

/// A WebDriver error answer (`error` and `message`), or a transport failure.
#[derive(Debug)]
pub struct WdError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error, self.message)
    }
}

/// chromedriver, one Chromium session on it, and the profile they use.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    profile: PathBuf,
}

fn find_program(candidates: &[&str]) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("none of {candidates:?} is installed: run scripts/setup.sh (chromium, chromium-driver)")
        })
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless
    /// Chromium session with an empty profile at `width` x `height`.
    pub fn start(width: u32, height: u32) -> Browser {
        let driver_bin = find_program(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let chromium = find_program(&["/usr/bin/chromium", "/usr/lib/chromium/chromium"]);
        let port = super::camera::free_port();
        let profile = temp_dir("chromium-profile");
        let mut cmd = Command::new(driver_bin);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            // Chromium keeps crash reports and caches under these, not in
            // the profile: point them into it, so nothing lands in $HOME.
            .env("XDG_CONFIG_HOME", profile.join("config"))
            .env("XDG_CACHE_HOME", profile.join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: Drop kills chromedriver and every Chromium
        // process under it with one signal.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().expect("start chromedriver");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            http,
            profile,
        };
        let ready = wait_for(Duration::from_secs(30), || {
            let r = b.http.get(format!("{}/status", b.base)).send().ok()?;
            let v: Value = r.json().ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        });
        assert!(
            ready.is_some(),
            "chromedriver did not get ready on port {port}"
        );
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", b.profile.display()));
        args.push(format!("--window-size={width},{height}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": 60_000, "script": 30_000, "implicit": 0},
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let v = b
            .call(reqwest::Method::POST, "/session", Some(caps))
            .unwrap_or_else(|e| panic!("new Chromium session: {e}"));
        b.session = v["sessionId"].as_str().expect("sessionId").to_owned();
        b.set_viewport(width, height, false);
        b
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().map_err(|e| WdError {
            status: 0,
            error: "transport".into(),
            message: e.to_string(),
        })?;
        let status = r.status().as_u16();
        let v: Value = r.json().map_err(|e| WdError {
            status,
            error: "bad answer".into(),
            message: e.to_string(),
        })?;
        if status >= 400 {
            return Err(WdError {
                status,
                error: v["value"]["error"].as_str().unwrap_or("?").to_owned(),
                message: v["value"]["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(v["value"].clone())
    }

    /// A command on this session (`path` after `/session/{id}`).
    fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body))
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    fn get(&self, path: &str) -> Value {
        self.cmd(reqwest::Method::GET, path, None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Loads `url` and waits for the page's load event.
    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    /// The address the browser shows now (after redirects).
    pub fn url(&self) -> String {
        self.get("/url").as_str().unwrap_or_default().to_owned()
    }

    /// The elements matching a CSS selector now (none is not an error).
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.post("/elements", json!({"using": "css selector", "value": css}));
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element(id.to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, if there is one now.
    pub fn try_find(&self, css: &str) -> Option<Element> {
        self.find_all(css).into_iter().next()
    }

    /// The first element matching `css`; panics (naming the page) if none.
    pub fn find(&self, css: &str) -> Element {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no {css} on {}", self.url()))
    }

    /// Waits (bounded) for `css` to match, reloading the page every
    /// `reload` when given (for lists that fill as the daemon works).
    pub fn wait_find(&self, css: &str, limit: Duration, reload: Option<Duration>) -> Element {
        let mut last = std::time::Instant::now();
        wait_for(limit, || {
            if let Some(r) = reload {
                if last.elapsed() >= r {
                    self.post("/refresh", json!({}));
                    last = std::time::Instant::now();
                }
            }
            self.try_find(css)
        })
        .unwrap_or_else(|| panic!("no {css} on {} within {limit:?}", self.url()))
    }

    /// Clicks an element (scrolled into view first, as a user would).
    pub fn click(&self, e: &Element) {
        self.post(&format!("/element/{}/click", e.0), json!({}));
    }

    /// Clears a field, then types `text` into it.
    pub fn type_into(&self, e: &Element, text: &str) {
        self.post(&format!("/element/{}/clear", e.0), json!({}));
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text }));
    }

    /// An attribute as the markup has it (`None` when absent).
    pub fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.get(&format!("/element/{}/attribute/{name}", e.0))
            .as_str()
            .map(str::to_owned)
    }

    /// A DOM property of an element (`naturalWidth`, `readyState`, `href`...).
    pub fn prop(&self, e: &Element, name: &str) -> Value {
        self.get(&format!("/element/{}/property/{name}", e.0))
    }

    /// Runs `script` (a function body; `arguments` holds `args`, elements
    /// passed with [`Browser::el`]) and returns what it returns.
    pub fn script(&self, script: &str, args: Vec<Value>) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
    }

    /// An element as a script argument.
    pub fn el(e: &Element) -> Value {
        json!({ ELEMENT_KEY: e.0 })
    }

    /// Every cookie the browser holds for the current page, HttpOnly ones
    /// included, as one `Cookie:` header value.
    pub fn cookie_header(&self) -> String {
        let v = self.get("/cookie");
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        format!(
                            "{}={}",
                            c["name"].as_str().unwrap_or(""),
                            c["value"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    /// A Chrome DevTools command, through chromedriver.
    fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post("/goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
    }

    /// Sets the page's viewport: `mobile` as a phone would report it (the
    /// meta viewport honoured, touch events), through Chrome DevTools.
    pub fn set_viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
    }

    /// Saves a PNG of the whole page (not only the viewport; at most
    /// [`MAX_SHOT_HEIGHT`] pixels tall) to `path`.
    pub fn screenshot(&self, path: &Path) {
        let size = &self.cdp("Page.getLayoutMetrics", json!({}))["cssContentSize"];
        let (w, h) = (
            size["width"].as_f64().unwrap_or(800.0),
            size["height"]
                .as_f64()
                .unwrap_or(600.0)
                .min(MAX_SHOT_HEIGHT),
        );
        let shot = self.cdp(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// The processes whose command line mentions `path` (this test's fresh
/// profile directory, so only processes this `Browser` started).
fn processes_naming(path: &Path) -> Vec<i32> {
    let needle = path.as_os_str().as_encoded_bytes();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .http
                .delete(format!("{}/session/{}", self.base, self.session))
                .timeout(Duration::from_secs(10))
                .send();
        }
        // The whole group: chromedriver and the Chromium processes it started.
        let pgid = self.driver.id() as i32;
        // SAFETY: kill(2) with a negative pid signals that process group
        // only; the group is the one `start` made for chromedriver.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
        // Chromium's crash handler makes its own session, out of the group:
        // it is found by the profile path on its command line (its database
        // is under XDG_CONFIG_HOME, in the profile).
        for pid in processes_naming(&self.profile) {
            // SAFETY: as above, a pid we found running with our profile.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
