//! The GPU path on a box without one (CI's, this one): `[ai] device`
//! refuses or explains, `/health` says where models run, and a camera asked
//! to decode with `-hwaccel cuda` falls back to software with the real
//! ffmpeg (which fails here for want of libcuda). On the CPU, `[ai]
//! cpu_runtime` picks onnxruntime (setup.sh installs its pinned library)
//! or tract, and says why when it cannot have the one asked for.

use std::time::Duration;

use crate::common::camera::{add_camera, get_auth, vtest_mp4};
use crate::common::{self, cli, fixture, get_json, temp_dir, wait_for, Daemon};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn device_cuda_without_a_gpu_refuses_to_start_and_says_why() {
    let data = temp_dir("gpu-refuse");
    let out = cli()
        .args(["run"])
        .env("OPENNVR_AI_DEVICE", "cuda")
        .env("OPENNVR_DATA_DIR", &data)
        .env("OPENNVR_AI_LISTEN", "127.0.0.1:0")
        .env("OPENNVR_NVR_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("[ai] device = \"cuda\", but no NVIDIA GPU found (NVML: "),
        "{err}"
    );
    assert!(err.contains("; CUDA: "), "the CUDA side is said too: {err}");

    let out = cli()
        .args(["infer", "--task", "person_counting"])
        .arg(fixture("samples/bus.jpg"))
        .env("OPENNVR_AI_DEVICE", "cuda")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[ai] device = \"cuda\", but"));
}

#[test]
fn auto_runs_on_the_cpu_logs_why_and_health_shows_the_backend_per_model() {
    let d = Daemon::start_logged(&[("OPENNVR_LOG", "info")]);
    let log = d.log_text();
    assert!(
        log.contains("inference on the CPU (onnxruntime-cpu): no NVIDIA GPU found (NVML: "),
        "{log}"
    );
    let r = common::client()
        .post(d.ai_url("/infer"))
        .multipart(
            reqwest::blocking::multipart::Form::new()
                .text("task", "person_counting")
                .file("frame", fixture("samples/bus.jpg"))
                .unwrap(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = get_json(&d.ai_url("/health"));
    assert!(h["hardware"]["gpu"].is_null(), "{h}");
    assert!(h["hardware"]["vram_total_gb"].is_null());
    assert_eq!(h["models"]["yolov4-tiny-416"]["loaded"], true, "{h}");
    assert_eq!(h["models"]["yolov4-tiny-416"]["backend"], "onnxruntime-cpu");
}

/// `infer` with `env`: its exit status and stderr.
fn infer_with(env: &[(&str, &std::ffi::OsStr)]) -> (bool, String) {
    let out = cli()
        .args(["infer", "--task", "person_counting"])
        .arg(fixture("samples/bus.jpg"))
        .envs(env.iter().copied())
        .env("OPENNVR_LOG", "info")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cpu_runtime_falls_back_to_tract_saying_why_or_refuses_when_onnxruntime_is_required() {
    let dir = temp_dir("ort-altered");
    let altered = dir.join("libonnxruntime.so.1.20.1");
    let mut bytes = std::fs::read(fixture("runtime/libonnxruntime.so.1.20.1")).unwrap();
    bytes[4096] ^= 1;
    std::fs::write(&altered, bytes).unwrap();
    let lib = ("OPENNVR_AI_ONNXRUNTIME_LIB", altered.as_os_str());

    let (ok, err) = infer_with(&[lib]);
    assert!(ok, "auto falls back to tract: {err}");
    assert!(
        err.contains("inference on the CPU (tract-cpu): no NVIDIA GPU found")
            && err.contains(&format!(
                "; onnxruntime unusable: {} is not the onnxruntime 1.20.1 this build pins (sha256 ",
                altered.display()
            )),
        "{err}"
    );

    let (ok, err) = infer_with(&[lib, ("OPENNVR_AI_CPU_RUNTIME", "onnxruntime".as_ref())]);
    assert!(!ok);
    assert!(
        err.contains("[ai] cpu_runtime = \"onnxruntime\", but ") && err.contains("this build pins"),
        "{err}"
    );

    let (ok, err) = infer_with(&[("OPENNVR_AI_CPU_RUNTIME", "tract".as_ref())]);
    assert!(ok, "{err}");
    assert!(
        err.contains("inference on the CPU (tract-cpu): no NVIDIA GPU found"),
        "{err}"
    );
    assert!(
        !err.contains("onnxruntime"),
        "tract asked for: onnxruntime is not even opened: {err}"
    );
}

#[test]
fn hwaccel_cuda_falls_back_to_software_decoding_when_ffmpeg_fails_with_it() {
    let mut d = Daemon::start_logged(&[("OPENNVR_HWACCEL", "cuda")]);
    let token = d.admin_token();
    let clip = format!("file://{}", vtest_mp4().display());
    add_camera(&d, &token, "street", &clip, 0.0);
    let st = wait_for(LIMIT, || {
        let st = get_auth(&d, &token, "/api/v1/cameras/street/status");
        (st["frames"].as_u64().unwrap_or(0) > 0).then_some(st)
    })
    .expect("frames flow after the fallback");
    assert_eq!(st["decode"], "software", "{st}");
    assert_eq!(st["restarts"], 0, "the fallback is not an outage: {st}");
    let log = d.log_text();
    assert!(
        log.contains("GPU decoding (-hwaccel cuda) failed; decoding in software from now on"),
        "{log}"
    );
    assert!(log.contains("cuda"), "ffmpeg's reason is logged: {log}");
    assert!(d.terminate());
}
