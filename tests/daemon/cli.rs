//! The subcommands: the one-shot `infer`, the `models` integrity check,
//! `init`, and `user` against a running daemon.

use crate::common::{self, cli, client, fixture, models_dir, temp_dir};
use serde_json::{json, Value};

#[test]
fn infer_prints_the_api_json() {
    let out = common::succeed(
        cli()
            .args(["infer", "--task", "person_counting"])
            .arg(fixture("samples/bus.jpg")),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "person_counting");
    assert!(v["count"].as_u64().unwrap() >= 3, "{v}");
    for key in [
        "confidence",
        "detections",
        "latency_ms",
        "executed_at",
        "model_id",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }

    let out = cli()
        .args(["infer", "--task", "person_counting", "/nonexistent.jpg"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn models_verifies_checksums() {
    let ok = cli().args(["models", "--json"]).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&ok.stdout).unwrap();
    assert!(rows.iter().all(|r| r["integrity"]["status"] == "ok"));

    // A copy with one flipped byte in the detector is reported and fails.
    let copy = temp_dir("altered");
    for entry in std::fs::read_dir(models_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, copy.join(p.file_name().unwrap())).unwrap();
        }
    }
    let target = copy.join("yolov4-tiny-416.onnx");
    let mut bytes = std::fs::read(&target).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&target, bytes).unwrap();
    let bad = cli()
        .env("OPENNVR_MODELS_DIR", &copy)
        .args(["models"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("ALTERED"));

    // The daemon refuses to run an altered model rather than running it.
    let out = cli()
        .env("OPENNVR_MODELS_DIR", &copy)
        .args(["infer", "--task", "person_detection"])
        .arg(fixture("samples/bus.jpg"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sha256"));
}

#[test]
fn init_creates_secrets_once_and_is_idempotent() {
    // What the .deb's postinst runs: secrets and the first admin, before any port opens.
    let data = temp_dir("init");
    // `log` filter -> (stdout, stderr); the default filter when `None`.
    let run = |log: Option<&str>| {
        let mut c = cli();
        match log {
            Some(f) => c.env("OPENNVR_LOG", f),
            None => c.env_remove("OPENNVR_LOG"),
        };
        let out = common::succeed(c.env("OPENNVR_DATA_DIR", &data).arg("init"));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (text(&out.stdout), text(&out.stderr))
    };
    let (first, log) = run(None);
    assert!(first.starts_with("created user admin"), "{first}");
    // The default log: ours, the migrations library's routine steps (its
    // `log` records at info) kept out, no colour codes off a terminal.
    assert!(log.contains("WARN opennvr_edge::cmd::init"), "{log}");
    assert!(
        !log.contains("refinery") && !log.contains('\u{1b}'),
        "{log}"
    );
    let secret = std::fs::read_to_string(data.join("jwt-secret")).unwrap();
    let password = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    assert_eq!(secret.trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["jwt-secret", "initial-admin-password"] {
            let mode = std::fs::metadata(data.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    // Named in OPENNVR_LOG, the dependency's `log` records reach our log.
    let (second, log) = run(Some("warn,refinery_core=info"));
    assert!(second.starts_with("ready:"), "{second}");
    assert!(log.contains("INFO refinery_core::"), "{log}");
    assert_eq!(
        std::fs::read_to_string(data.join("jwt-secret")).unwrap(),
        secret
    );
    assert_eq!(
        std::fs::read_to_string(data.join("initial-admin-password")).unwrap(),
        password
    );
    let users = cli()
        .env("OPENNVR_DATA_DIR", &data)
        .args(["user", "list"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&users.stdout).lines().count(), 1);
    let _ = std::fs::remove_dir_all(&data);
}

/// `user list` and `user passwd` against a running daemon's data dir: a new
/// password revokes the user's refresh tokens at once; weak passwords and
/// duplicate users are refused.
#[test]
fn user_cli_lists_and_passwd_revokes_refresh_tokens() {
    let d = common::start_nvr(&[]);
    d.viewer_token("vera");
    let (ok, out, _) = d.cli(&["user", "list"], "");
    assert!(ok);
    assert!(out.contains("admin") && out.contains("vera"), "{out}");
    let r = client()
        .post(d.nvr_url("/api/v1/auth/login-json"))
        .json(&json!({"username": "vera", "password": "viewer-password"}))
        .send()
        .unwrap();
    let refresh = r.json::<Value>().unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, _, err) = d.cli(
        &["user", "passwd", "--username", "vera", "--password-stdin"],
        "new-password-1\n",
    );
    assert!(ok, "{err}");
    let r = client()
        .post(d.nvr_url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    d.login("vera", "new-password-1");
    let (ok, _, _) = d.cli(
        &["user", "add", "--username", "x", "--password-stdin"],
        "short\n",
    );
    assert!(!ok);
    let (ok, _, _) = d.cli(
        &["user", "add", "--username", "vera", "--password-stdin"],
        "long-enough-1\n",
    );
    assert!(!ok);
}

#[test]
fn infer_cli_reports_faces_and_dumps_chips() {
    let out_dir = temp_dir("chips");
    let out = common::succeed(
        cli()
            .args(["infer", "--task", "face_detection", "--dump-chips"])
            .arg(&out_dir)
            .arg(fixture("samples/astronaut.png")),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["face_count"], 1, "{v}");
    let dump = out_dir.join("astronaut");
    let doc: Value =
        serde_json::from_slice(&std::fs::read(dump.join("faces.json")).unwrap()).unwrap();
    let f = &doc["faces"][0];
    assert_eq!(f["age_probs"].as_array().unwrap().len(), 81);
    assert_eq!(f["gender"], "F");
    let chip = image::open(dump.join(f["age_chip"]["file"].as_str().unwrap())).unwrap();
    assert_eq!((chip.width(), chip.height()), (64, 64));
    let chip = image::open(dump.join(f["gender_chip"]["file"].as_str().unwrap())).unwrap();
    assert_eq!((chip.width(), chip.height()), (32, 32));
    assert!(dump.join("image.png").is_file());
    // The age in the dump is the one the API reports (rounded to whole years).
    let age = f["age"].as_f64().unwrap();
    assert_eq!(v["faces"][0]["age"].as_u64(), Some(age.round() as u64));
}
