//! Test harness: starts the real `opennvr-edge` binary on ephemeral ports
//! and stops it on drop, so integration tests talk real HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod camera;
pub mod contract;
pub mod mqtt;
pub mod webdriver;

/// A daemon child process with its data dir.
pub struct Daemon {
    child: Child,
    pub ai: String,
    pub nvr: String,
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
    /// Where the daemon's stderr (its log) goes; `None`: inherited.
    log: Option<PathBuf>,
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("opennvr-test-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The models dir the tests use: `OPENNVR_TEST_MODELS_DIR`, else `models/dist`.
/// Tests fail (not skip) when models are missing: run `scripts/setup.sh`.
pub fn models_dir() -> PathBuf {
    let d = std::env::var_os("OPENNVR_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/dist"));
    assert!(
        d.join("manifest.json").is_file(),
        "no models at {} — run scripts/setup.sh first",
        d.display()
    );
    d
}

/// A file shipped by a Debian or PyPI package the setup script installs.
pub fn fixture(path: &str) -> PathBuf {
    let p = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        models_dir().join(path)
    };
    assert!(
        p.is_file(),
        "missing fixture {} — run scripts/setup.sh",
        p.display()
    );
    p
}

/// Debian's street clip (opencv-doc), the footage every camera test uses.
pub const VTEST_AVI: &str = opennvr_edge::ingest::demo::VTEST;

/// vtest frames `first..=last` as JPEGs `f1.jpg`, `f2.jpg`... in `dir`.
pub fn vtest_frames(dir: &Path, first: u32, last: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let st = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(fixture(VTEST_AVI))
        .args([
            "-vf",
            &format!(r"select=between(n\,{first}\,{last})"),
            "-vsync",
            "vfr",
            "-q:v",
            "2",
        ])
        .arg(dir.join("f%d.jpg"))
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not cut vtest frames");
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_opennvr-edge")
}

impl Daemon {
    /// Starts `opennvr-edge run` with a temp data dir, the test models and `env`.
    pub fn start(env: &[(&str, &str)]) -> Daemon {
        Self::start_with(env, None)
    }

    /// As [`Daemon::start`], with the daemon's log (stderr) captured in a
    /// file that [`Daemon::log_text`] reads, for tests about what it logs.
    pub fn start_logged(env: &[(&str, &str)]) -> Daemon {
        Self::start_with(env, Some(temp_dir("log").join("stderr.log")))
    }

    fn start_with(env: &[(&str, &str)], log: Option<PathBuf>) -> Daemon {
        let data_dir = temp_dir("daemon");
        let mut all: Vec<(String, String)> = vec![
            ("OPENNVR_AI_LISTEN".into(), "127.0.0.1:0".into()),
            ("OPENNVR_NVR_LISTEN".into(), "127.0.0.1:0".into()),
            ("OPENNVR_DATA_DIR".into(), data_dir.display().to_string()),
            ("OPENNVR_LOG".into(), "warn".into()),
        ];
        if !env.iter().any(|(k, _)| *k == "OPENNVR_MODELS_DIR") {
            all.push((
                "OPENNVR_MODELS_DIR".into(),
                models_dir().display().to_string(),
            ));
        }
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self::spawn(all, data_dir, log)
    }

    /// Everything the daemon has logged so far (needs [`Daemon::start_logged`]).
    pub fn log_text(&self) -> String {
        let log = self.log.as_ref().expect("started with start_logged");
        String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned()
    }

    fn spawn(env: Vec<(String, String)>, data_dir: PathBuf, log: Option<PathBuf>) -> Daemon {
        let stderr = match &log {
            Some(p) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap(),
            ),
            None => Stdio::inherit(),
        };
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .env_remove("OPENNVR_CONFIG")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn daemon");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).unwrap();
        // Keep draining stdout so a later line never meets a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let addr = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("daemon did not report {key}: {line:?}"))
                .to_owned()
        };
        let (ai, nvr) = (addr("ai="), addr("nvr="));
        Daemon {
            child,
            ai,
            nvr,
            data_dir,
            env,
            log,
        }
    }

    pub fn ai_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ai)
    }

    pub fn nvr_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.nvr)
    }

    /// SIGKILL, as a power cut would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same data dir and settings (new ports).
    pub fn restart(mut self) -> Daemon {
        self.kill9();
        let env = std::mem::take(&mut self.env);
        // Taken, so dropping the old handle does not delete the data.
        let data_dir = std::mem::take(&mut self.data_dir);
        Self::spawn(env, data_dir, self.log.take())
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/<pid>/status` figure in its own unit (kB for memory):
    /// `VmRSS`, `VmHWM` (peak RSS), `Threads`.
    pub fn proc_status(&self, key: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc status"))
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> u64 {
        self.proc_status("VmRSS") / 1024
    }

    /// Open file descriptors of the daemon.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        if !self.data_dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// A blocking HTTP client with a generous timeout (slow CI must not fail tests).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

/// Polls `f` until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// GETs `url` and parses the JSON body, whatever the status.
pub fn get_json(url: &str) -> serde_json::Value {
    client().get(url).send().unwrap().json().unwrap()
}

// ---------------------------------------------------------------- NVR core helpers

/// Starts the daemon for NVR tests: an empty models dir (no models needed).
pub fn start_nvr(env: &[(&str, &str)]) -> Daemon {
    let models = temp_dir("nomodels").display().to_string();
    let mut all = vec![("OPENNVR_MODELS_DIR", models.as_str())];
    all.extend_from_slice(env);
    Daemon::start(&all)
}

impl Daemon {
    /// The NVR core's `host:port`, for raw-socket clients.
    pub fn nvr_addr(&self) -> &str {
        &self.nvr
    }

    /// Runs another subcommand with the daemon's settings (same data dir),
    /// feeding `stdin`. Returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_remove("OPENNVR_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// SIGTERM, then waits (bounded) for a clean exit; true if it exited.
    pub fn terminate(&mut self) -> bool {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(60)).is_some()
    }

    /// Sends the signal `kill -{name}` names (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{name} {pid}");
    }

    /// Waits (bounded by `limit`) for the daemon to exit; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        wait_for(limit, || self.child.try_wait().ok().flatten())
    }

    /// The password `run` generated for `admin` at first start.
    pub fn admin_password(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("initial-admin-password"))
            .expect("initial-admin-password")
            .trim()
            .to_owned()
    }

    /// Logs in over JSON and returns the access token.
    pub fn login(&self, username: &str, password: &str) -> String {
        let r = client()
            .post(self.nvr_url("/api/v1/auth/login-json"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "login {username}");
        let v: serde_json::Value = r.json().unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// An access token for the initial admin.
    pub fn admin_token(&self) -> String {
        self.login("admin", &self.admin_password())
    }

    /// Adds a viewer through the CLI and returns its access token.
    pub fn viewer_token(&self, name: &str) -> String {
        let (ok, _, err) = self.cli(
            &[
                "user",
                "add",
                "--username",
                name,
                "--role",
                "viewer",
                "--password-stdin",
            ],
            "viewer-password\n",
        );
        assert!(ok, "user add: {err}");
        self.login(name, "viewer-password")
    }
}

/// The `error.code` of a JSON error answer.
pub fn error_code(r: reqwest::blocking::Response) -> String {
    let v: serde_json::Value = r.json().expect("JSON error body");
    v["error"]["code"].as_str().expect("error.code").to_owned()
}

/// Writes `bytes` to `path`, creating parents.
pub fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// One SSE message.
#[derive(Debug, Clone, PartialEq)]
pub struct SseMsg {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// The event id an event-stream message carries, checking that its SSE `id:`
/// is the event's id (what `Last-Event-ID` resumes from).
pub fn event_id(m: &SseMsg) -> i64 {
    let v: serde_json::Value = serde_json::from_str(&m.data).unwrap();
    assert_eq!(
        m.id.as_deref(),
        Some(v["id"].to_string().as_str()),
        "SSE id = event id"
    );
    v["id"].as_i64().unwrap()
}

/// A minimal SSE client over a raw socket, so a test controls reads with
/// timeouts and disconnects by dropping it. It speaks HTTP/1.0, so the body
/// is the plain event stream (no chunked framing).
pub struct SseClient {
    reader: BufReader<TcpStream>,
    pub status: u16,
}

impl SseClient {
    /// Opens `path` on `addr` with extra header lines (`"Name: value"`).
    pub fn connect(addr: &str, path: &str, headers: &[String]) -> SseClient {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut req =
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        loop {
            let mut l = String::new();
            if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" || l == "\n" {
                break;
            }
        }
        SseClient { reader, status }
    }

    /// The rest of the body (for error answers).
    pub fn body(mut self) -> String {
        let mut s = String::new();
        let _ = self.reader.read_to_string(&mut s);
        s
    }

    /// The next message within `timeout`, skipping keep-alive comments.
    pub fn next(&mut self, timeout: Duration) -> Option<SseMsg> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
        let mut msg = SseMsg {
            id: None,
            event: None,
            data: String::new(),
        };
        let mut any = false;
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if any {
                    return Some(msg);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any = true;
            match field {
                "id" => msg.id = Some(value.to_owned()),
                "event" => msg.event = Some(value.to_owned()),
                "data" => {
                    if !msg.data.is_empty() {
                        msg.data.push('\n');
                    }
                    msg.data.push_str(value);
                }
                _ => {}
            }
        }
    }
}

/// Runs `cmd` to completion and asserts it succeeded (showing its stderr if not).
pub fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The binary as a one-shot command on the test models (config file ignored, quiet logs).
pub fn cli() -> Command {
    let mut c = Command::new(bin());
    c.env("OPENNVR_MODELS_DIR", models_dir())
        .env("OPENNVR_LOG", "warn")
        .env_remove("OPENNVR_CONFIG");
    c
}
