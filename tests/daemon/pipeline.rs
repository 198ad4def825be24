//! The frame path with several streams: a camera's `detect_url` sub-stream
//! feeding the detector while its main stream is recorded (and a dead
//! sub-stream sparing the recording), and busy cameras sharing the
//! detector: turns taken, drops counted per camera, latency measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::camera::{chunks, events, get_auth, vtest_mp4, wait_events, RtspServer};
use crate::common::{client, temp_dir, wait_for, Daemon};

const MIN: Duration = Duration::from_secs(60);

/// The vtest clip at half size (384x288): a camera's low-resolution sub-stream.
fn half_size_clip() -> PathBuf {
    let dest = temp_dir("sub").join("vtest-384.mp4");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(vtest_mp4())
        .args([
            "-vf",
            "scale=384:288",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args(["-pix_fmt", "yuv420p", "-g", "10"])
        .arg(&dest)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ffmpeg could not make the sub-stream clip");
    dest
}

/// The width of the first video stream of `file`, by ffprobe.
fn video_width(file: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn n(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap()
}

fn get_bytes(d: &Daemon, token: &str, path: &str) -> Vec<u8> {
    let r = client()
        .get(d.nvr_url(path))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.bytes().unwrap().to_vec()
}

fn post_camera(d: &Daemon, token: &str, body: serde_json::Value) -> serde_json::Value {
    let r = client()
        .post(d.nvr_url("/api/v1/cameras"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "create camera {body}");
    r.json().unwrap()
}

#[test]
fn sub_stream_is_analysed_while_the_main_stream_records_and_its_loss_spares_the_recording() {
    let mut sub = RtspServer::start(&half_size_clip());
    let mut d = Daemon::start(&[
        ("OPENNVR_SEGMENT_S", "2"),
        ("OPENNVR_IO_TIMEOUT_S", "3"),
        ("OPENNVR_BACKOFF_MAX_MS", "1000"),
    ]);
    let token = d.admin_token();
    let main = vtest_mp4();
    let detect_url = format!("rtsp://viewer:s3cret-sub@127.0.0.1:{}/cam", sub.port);
    let cam = post_camera(
        &d,
        &token,
        serde_json::json!({"id": "door", "source_url": main.display().to_string(),
            "detect_fps": 5, "detect_url": detect_url}),
    );
    let shown = cam["detect_url"].as_str().unwrap();
    assert!(
        shown.contains("***") && !shown.contains("s3cret"),
        "{shown}"
    );

    // Detection saw the sub-stream: its snapshots are 384 wide, the live frame too.
    let entered = wait_events(&d, &token, "door", "person_entered", 1, 2 * MIN);
    let snap = get_bytes(
        &d,
        &token,
        &format!("/api/v1/events/{}/snapshot.jpg", entered[0]["id"]),
    );
    assert_eq!(image::load_from_memory(&snap).unwrap().width(), 384);
    let live = get_bytes(&d, &token, "/api/v1/cameras/door/snapshot.jpg");
    assert_eq!(image::load_from_memory(&live).unwrap().width(), 384);

    // The recording is the main stream, by stream copy: 768 wide.
    let got = wait_for(MIN, || {
        let c = chunks(&d, &token, "door");
        (!c.is_empty()).then_some(c)
    })
    .expect("no chunk recorded");
    let f = temp_dir("door").join("c.mp4");
    std::fs::write(&f, get_bytes(&d, &token, got[0]["url"].as_str().unwrap())).unwrap();
    assert_eq!(video_width(&f), 768);
    let st = get_auth(&d, &token, "/api/v1/cameras/door/status");
    let (main_pid, sub_pid) = (st["ffmpeg_pid"].as_u64(), st["detect_ffmpeg_pid"].as_u64());
    assert!(
        main_pid.is_some() && sub_pid.is_some() && main_pid != sub_pid,
        "{st}"
    );
    assert_eq!(st["online"], true);
    // Each sub-stream frame is read once, by the sub-stream's run alone: at
    // most the detect rate (5 fps) arrives, not twice it.
    let t0 = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    let later = get_auth(&d, &token, "/api/v1/cameras/door/status");
    let rate = (n(&later, "frames") - n(&st, "frames")) as f64 / t0.elapsed().as_secs_f64();
    assert!(rate <= 7.5, "{rate} frames/s read at 5 fps");

    // The sub-stream dies: the status says so, the recording goes on.
    sub.stop();
    let failed = wait_for(MIN, || {
        let st = get_auth(&d, &token, "/api/v1/cameras/door/status");
        let e = st["last_error"].as_str().unwrap_or_default().to_owned();
        e.starts_with("detect_url").then_some(e)
    })
    .expect("the sub-stream's loss is not in the status");
    assert!(!failed.contains("s3cret"), "{failed}");
    let before = chunks(&d, &token, "door").len();
    wait_for(MIN, || {
        (chunks(&d, &token, "door").len() >= before + 2).then_some(())
    })
    .expect("recording stopped with the sub-stream");
    for kind in ["camera_offline", "camera_stalled"] {
        assert!(events(&d, &token, "door", kind).is_empty(), "{kind}");
    }
    assert_eq!(
        get_auth(&d, &token, "/api/v1/cameras/door/status")["online"],
        true
    );
    assert!(d.terminate());
}

#[test]
fn busy_cameras_take_turns_count_their_own_drops_and_measure_latency() {
    let mut d = Daemon::start(&[]);
    let token = d.admin_token();
    let clip = vtest_mp4().display().to_string();
    let cams = ["c0", "c1", "c2", "c3"];
    // Four cameras at 10 fps ask for more than one runner gives (the
    // default): each must still be served, and count what it drops.
    for id in cams {
        post_camera(
            &d,
            &token,
            serde_json::json!({"id": id, "source_url": clip, "detect_fps": 10, "record": false}),
        );
    }
    let status = |id: &str| get_auth(&d, &token, &format!("/api/v1/cameras/{id}/status"));
    wait_for(2 * MIN, || {
        cams.iter()
            .all(|c| n(&status(c), "analysed") >= 4)
            .then_some(())
    })
    .unwrap_or_else(|| {
        let all: Vec<_> = cams.iter().map(|c| status(c)).collect();
        panic!("a camera starved: {all:?}")
    });
    let all: Vec<serde_json::Value> = cams.iter().map(|c| status(c)).collect();
    let analysed: Vec<u64> = all.iter().map(|s| n(s, "analysed")).collect();
    let (lo, hi) = (
        analysed.iter().min().unwrap(),
        analysed.iter().max().unwrap(),
    );
    assert!(lo * 2 >= *hi, "turns are unfair: {analysed:?}");
    for s in &all {
        let (frames, done, dropped) = (n(s, "frames"), n(s, "analysed"), n(s, "dropped"));
        assert!(dropped > 0, "an overloaded camera drops: {s}");
        // What was read was analysed, dropped, or is still in the mailbox or in flight.
        assert!(
            frames >= done + dropped && frames <= done + dropped + 3,
            "{s}"
        );
        assert!(s["latency_p95_ms"].as_u64().is_some_and(|ms| ms > 0), "{s}");
    }
    let metrics = client()
        .get(d.ai_url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for c in cams {
        let line = format!("opennvr_camera_frame_to_event_seconds_count{{camera=\"{c}\"}}");
        assert!(metrics.contains(&line), "{line} missing");
    }
    assert!(d.terminate());
}
