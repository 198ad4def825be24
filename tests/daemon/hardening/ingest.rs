//! Hardening of the ingest side; see main.rs. A viewer must never read a
//! camera's password (ffmpeg repeats the URL in its errors), a camera in a
//! codec MP4 cannot hold by stream copy must still record, and a camera the
//! API accepts must be one ingest can start.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::camera::{chunks, events, get_auth, probe_duration, wait_events, RtspServer};
use crate::common::{client, fixture, temp_dir, wait_for, Daemon, SseClient, VTEST_AVI};

const MIN: Duration = Duration::from_secs(60);

/// A camera password with a percent-escape, and a query token: neither may
/// appear, in any spelling, in anything a viewer or the log sees.
const PASS_RAW: &str = "Zq9%21Wv7Xk";
const PASS_PARTS: &[&str] = &["Zq9%21Wv7Xk", "Zq9!Wv7Xk", "Wv7Xk", "Tk55Rr8Yy"];

fn start(extra: &[(&str, &str)], logged: bool) -> Daemon {
    let mut env = vec![
        ("OPENNVR_SEGMENT_S", "2"),
        ("OPENNVR_IO_TIMEOUT_S", "3"),
        ("OPENNVR_BACKOFF_MAX_MS", "1000"),
    ];
    env.extend_from_slice(extra);
    if logged {
        Daemon::start_logged(&env)
    } else {
        Daemon::start(&env)
    }
}

/// POSTs a camera as admin; the status and JSON answer.
fn post_camera(d: &Daemon, token: &str, body: Value) -> (u16, Value) {
    send(client().post(d.nvr_url("/api/v1/cameras")), token, body)
}

/// PUTs a change to camera `id` as admin; the status and JSON answer.
fn put_camera(d: &Daemon, token: &str, id: &str, body: Value) -> (u16, Value) {
    let url = d.nvr_url(&format!("/api/v1/cameras/{id}"));
    send(client().put(url), token, body)
}

fn send(req: reqwest::blocking::RequestBuilder, token: &str, body: Value) -> (u16, Value) {
    let r = req.bearer_auth(token).json(&body).send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn status(d: &Daemon, token: &str, cam: &str) -> Value {
    get_auth(d, token, &format!("/api/v1/cameras/{cam}/status"))
}

fn assert_no_secret(what: &str, text: &str) {
    for p in PASS_PARTS {
        assert!(!text.contains(p), "{what} leaks {p:?}: {text}");
    }
}

#[test]
fn camera_passwords_never_reach_status_events_sse_or_log() {
    let rtsp = RtspServer::start(&crate::common::camera::vtest_mp4());
    let d = start(&[], true);
    let admin = d.admin_token();
    let viewer = d.viewer_token("watcher");
    let mut sse = SseClient::connect(
        d.nvr_addr(),
        "/api/v1/events/stream",
        &[format!("Authorization: Bearer {viewer}")],
    );
    assert_eq!(sse.status, 200);

    // Nothing listens on this port (recording: the codec probe fails first).
    let dead = crate::common::camera::free_port();
    let refused = format!("rtsp://admin:{PASS_RAW}@127.0.0.1:{dead}/cam?token=Tk55Rr8Yy");
    // The real RTSP server answers 404 (not recording, so no probe: ffmpeg itself fails).
    let missing = format!(
        "rtsp://admin:{PASS_RAW}@127.0.0.1:{}/nope?channel=1&token=Tk55Rr8Yy",
        rtsp.port
    );
    for (id, url, record) in [("refused", &refused, true), ("missing", &missing, false)] {
        let body = json!({"id": id, "source_url": url, "detect_fps": 0, "record": record});
        let (s, cam) = post_camera(&d, &admin, body);
        assert_eq!(s, 201, "{cam}");
        assert_no_secret("POST answer", &cam.to_string());
    }

    let mut seen_offline = 0;
    for id in ["refused", "missing"] {
        let off = wait_events(&d, &viewer, id, "camera_offline", 1, MIN);
        let err = off[0]["payload"]["error"].as_str().unwrap_or_default();
        assert!(!err.is_empty(), "{}", off[0]);
        assert_no_secret("stored camera_offline event", &off[0].to_string());
        let st = wait_for(MIN, || {
            let st = status(&d, &viewer, id);
            st["last_error"].is_string().then_some(st)
        })
        .expect("last_error set");
        assert_no_secret("status", &st.to_string());
        // Still says what went wrong, with the URL masked.
        assert!(
            st["last_error"].as_str().unwrap().contains("127.0.0.1"),
            "{st}"
        );
    }
    while seen_offline < 2 {
        let m = sse.next(MIN).expect("camera_offline on SSE");
        assert_no_secret("SSE", &m.data);
        if m.event.as_deref() == Some("camera_offline") || m.data.contains("camera_offline") {
            seen_offline += 1;
        }
    }
    let log = wait_for(MIN, || {
        let l = d.log_text();
        (l.contains("refused") && l.contains("missing") && l.contains("camera down")).then_some(l)
    })
    .expect("both cameras logged as down");
    assert_no_secret("daemon log", &log);
}

/// A daemon with camera `avi`: vtest.avi as it is, recorded, no detection,
/// plus the fields in `extra`. The daemon, an admin token, the camera.
fn avi_camera(extra: Value) -> (Daemon, String, Value) {
    let d = start(&[], false);
    let t = d.admin_token();
    // Debian opencv-doc's clip as it is: msmpeg4v3 in AVI, which MP4 cannot hold.
    let url = format!("file://{}", fixture(VTEST_AVI).display());
    let mut body = json!({"id": "avi", "source_url": url, "detect_fps": 0});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (s, cam) = post_camera(&d, &t, body);
    assert_eq!(s, 201, "{cam}");
    (d, t, cam)
}

/// vtest.avi as it is (msmpeg4v3): recorded by transcoding to H.264, and
/// the chunks play.
#[test]
fn msmpeg4_camera_is_recorded_by_transcoding() {
    let (d, t, cam) = avi_camera(json!({}));
    let got = wait_for(MIN, || {
        let c = chunks(&d, &t, "avi");
        (c.len() >= 2).then_some(c)
    })
    .unwrap_or_else(|| panic!("no chunks recorded: {}", status(&d, &t, "avi")));
    assert_eq!(cam["record_mode"], "auto", "{cam}");
    let st = status(&d, &t, "avi");
    assert_eq!(st["codec"], "msmpeg4v3", "{st}");
    assert_eq!(st["record_method"], "transcode", "{st}");
    let dir = temp_dir("avi-dl");
    for c in &got {
        let body = client()
            .get(d.nvr_url(c["url"].as_str().unwrap()))
            .bearer_auth(&t)
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let f = dir.join("c.mp4");
        std::fs::write(&f, &body).unwrap();
        assert!(probe_duration(&f) > 0.5, "{c}");
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0"])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "h264");
    }
}

/// The same clip with `record_mode = "copy"`: a clear error and one event,
/// not a silent restart loop.
#[test]
fn copy_mode_on_an_unrecordable_codec_says_so_once() {
    let (d, t, _) = avi_camera(json!({"record_mode": "copy"}));
    let off = wait_events(&d, &t, "avi", "camera_offline", 1, MIN);
    assert_eq!(off[0]["payload"]["reason"], "unrecordable", "{}", off[0]);
    assert_eq!(off[0]["payload"]["record_mode"], "copy", "{}", off[0]);
    let st = wait_for(MIN, || {
        let st = status(&d, &t, "avi");
        (st["restarts"].as_u64() >= Some(3)).then_some(st)
    })
    .expect("keeps retrying with backoff");
    let err = st["last_error"].as_str().unwrap();
    assert!(
        err.contains("msmpeg4v3") && err.contains("stream copy") && err.contains("\"transcode\""),
        "{st}"
    );
    assert_eq!(events(&d, &t, "avi", "camera_offline").len(), 1);
    assert!(chunks(&d, &t, "avi").is_empty());
    // Switching the camera to auto fixes it.
    let (s, cam) = put_camera(&d, &t, "avi", json!({"record_mode": "auto"}));
    assert_eq!(s, 200, "{cam}");
    wait_for(MIN, || (!chunks(&d, &t, "avi").is_empty()).then_some(()))
        .expect("records after switching to auto");
}

/// What the API accepts, ingest starts: `FILE:///` works, relative `file://`
/// and control characters in names are refused with a clear 400.
#[test]
fn file_urls_and_names_are_validated_as_ingest_reads_them() {
    let avi = fixture(VTEST_AVI);
    let d = start(&[], false);
    let t = d.admin_token();
    for bad in [
        "file://vtest.avi",
        "FILE://relative/vtest.avi",
        "file:vtest.avi",
    ] {
        let (s, e) = post_camera(&d, &t, json!({"id": "bad", "source_url": bad}));
        assert_eq!(s, 400, "{bad}: {e}");
        assert!(e.to_string().contains("file:///"), "{e}");
    }
    let url = format!("file://{}", avi.display());
    for name in ["a\u{0}b", "line\nbreak", "tab\there", "esc\u{1b}[31m"] {
        let body = json!({"id": "named", "name": name, "source_url": url});
        let (s, e) = post_camera(&d, &t, body);
        assert_eq!(s, 400, "{name:?}: {e}");
        assert!(e.to_string().contains("control characters"), "{e}");
    }
    let (s, _) = post_camera(&d, &t, json!({"id": "named", "source_url": url}));
    assert_eq!(s, 201);
    let (s, e) = put_camera(&d, &t, "named", json!({"name": "x\ny"}));
    assert_eq!(s, 400, "{e}");

    let upper = format!("FILE://{}", avi.display());
    let body = json!({"id": "upper", "source_url": upper, "detect_fps": 0, "record": false});
    let (s, e) = post_camera(&d, &t, body);
    assert_eq!(s, 201, "{e}");
    wait_for(MIN, || {
        let st = status(&d, &t, "upper");
        (st["frames"].as_u64() > Some(0)).then_some(())
    })
    .unwrap_or_else(|| panic!("FILE:/// camera never started: {}", status(&d, &t, "upper")));
}
