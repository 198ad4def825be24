//! Test harness: starts the real `opennvr-edge` binary on ephemeral ports
//! and stops it on drop, so integration tests talk real HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon child process with its data dir.
pub struct Daemon {
    child: Child,
    pub ai: String,
    pub nvr: String,
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
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

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_opennvr-edge")
}

impl Daemon {
    /// Starts `opennvr-edge run` with a temp data dir, the test models and `env`.
    pub fn start(env: &[(&str, &str)]) -> Daemon {
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
        Self::spawn(all, data_dir)
    }

    fn spawn(env: Vec<(String, String)>, data_dir: PathBuf) -> Daemon {
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .env_remove("OPENNVR_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
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
        let data_dir = self.data_dir.clone();
        Self::spawn(env, data_dir)
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
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
