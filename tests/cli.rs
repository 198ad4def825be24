//! The one-shot `infer` and the `models` integrity check.

mod common;

use common::{cli, fixture, models_dir, temp_dir};
use serde_json::Value;

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
    let run = || {
        let out = common::succeed(cli().env("OPENNVR_DATA_DIR", &data).arg("init"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = run();
    assert!(first.starts_with("created user admin"), "{first}");
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
    let second = run();
    assert!(second.starts_with("ready:"), "{second}");
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
