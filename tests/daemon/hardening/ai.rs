//! Hardening of the AI adapter (port 9100, no auth); see main.rs.
//!
//! Each test attacks the real daemon the way a LAN host could: rewriting the
//! cameras' events through `/infer`, resetting another client's track ids,
//! hanging up on large requests, stalling bodies, costly parameters, torn
//! JPEGs and misspelt keys.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::camera::{add_camera, events, get_auth, vtest_mp4, wait_events, RtspServer};
use crate::common::{client, temp_dir, vtest_frames, wait_for, Daemon};

const PERSON_JPG: &str = "/usr/share/darknet/data/person.jpg";
const MIN: Duration = Duration::from_secs(60);
/// 2100-01-01: a timestamp no camera clock is near.
const FAR_FUTURE_MS: i64 = 4_102_444_800_000;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A client whose connections come from `ip` (any 127/8 address works on loopback).
fn client_from(ip: [u8; 4]) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(IpAddr::from(ip))
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

fn post_with(c: &reqwest::blocking::Client, d: &Daemon, path: &str, body: &Value) -> (u16, Value) {
    let r = c.post(d.ai_url(path)).json(body).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn post(d: &Daemon, path: &str, body: &Value) -> (u16, Value) {
    post_with(&client(), d, path, body)
}

fn track_ids(v: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = v["detections"]
        .as_array()
        .unwrap_or_else(|| panic!("no detections: {v}"))
        .iter()
        .filter_map(|d| d["track_id"].as_u64())
        .collect();
    ids.sort();
    ids
}

fn analysed(d: &Daemon, token: &str, cam: &str) -> u64 {
    get_auth(d, token, &format!("/api/v1/cameras/{cam}/status"))["analysed"]
        .as_u64()
        .unwrap()
}

fn start_with_camera(cam: &str) -> (RtspServer, Daemon, String) {
    let rtsp = RtspServer::start(&vtest_mp4());
    let d = Daemon::start(&[
        ("OPENNVR_SEGMENT_S", "2"),
        ("OPENNVR_IO_TIMEOUT_S", "3"),
        ("OPENNVR_BACKOFF_MAX_MS", "1000"),
    ]);
    let token = d.admin_token();
    add_camera(&d, &token, cam, &rtsp.url(), 5.0);
    wait_for(2 * MIN, || (analysed(&d, &token, cam) > 0).then_some(()))
        .unwrap_or_else(|| panic!("{cam} is never analysed"));
    (rtsp, d, token)
}

/// Runs `f` on `n` threads until the returned flag is set.
fn hammer(
    n: usize,
    f: impl Fn(usize) + Send + Sync + 'static,
) -> (Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let f = Arc::new(f);
    let handles = (0..n)
        .map(|t| {
            let (stop, f) = (stop.clone(), f.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && i < 100_000 {
                    f(t * 100_000 + i);
                    i += 1;
                }
            })
        })
        .collect();
    (stop, handles)
}

/// Item 1: `/infer person_counting` naming the camera, with far-future
/// timestamps and hundreds of invented names, cannot touch the camera
/// pipeline's tracks: its entries keep their rate and ids are never reused.
#[test]
fn infer_cannot_rewrite_a_cameras_events() {
    let cam = "camera_0";
    let (_rtsp, d, token) = start_with_camera(cam);
    wait_events(&d, &token, cam, "person_entered", 1, 2 * MIN);
    // Baseline: entries over a window of the clip with no attack.
    let window = Duration::from_secs(20);
    let before = events(&d, &token, cam, "person_entered").len();
    std::thread::sleep(window);
    let baseline = events(&d, &token, cam, "person_entered").len() - before;

    let uri = format!("opennvr://frames/{cam}/latest.jpg");
    let ai = d.ai_url("/infer");
    let refused = Arc::new(AtomicUsize::new(0));
    let (stop, handles) = hammer(2, {
        let refused = refused.clone();
        move |i| {
            // Every other request targets the camera itself, far in the future;
            // the rest invent one of 256 names.
            let name = if i % 2 == 0 {
                cam.to_owned()
            } else {
                format!("x{}", i % 256)
            };
            let r = client()
                .post(&ai)
                .json(
                    &json!({"task": "person_counting", "data": {"camera_id": name,
                    "frame": {"uri": uri, "timestamp_ms": FAR_FUTURE_MS + i as i64 * 1000}}}),
                )
                .send();
            if r.is_ok_and(|r| r.status() == 400) {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let at_attack = events(&d, &token, cam, "person_entered").len();
    std::thread::sleep(window);
    let during = events(&d, &token, cam, "person_entered").len() - at_attack;
    stop.store(true, Ordering::Relaxed);
    handles.into_iter().for_each(|h| h.join().unwrap());

    let all = events(&d, &token, cam, "person_entered");
    let mut ids: Vec<i64> = all
        .iter()
        .map(|e| e["track_id"].as_i64().unwrap())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    eprintln!(
        "person_entered: baseline {baseline}, under attack {during}; {} ids reused; {} hostile requests refused",
        n - ids.len(),
        refused.load(Ordering::Relaxed)
    );
    assert_eq!(
        ids.len(),
        n,
        "track ids reused: the camera's tracker was reset"
    );
    assert!(
        during <= 2 * baseline + 6,
        "entries under attack {during} vs {baseline} without"
    );
    // The camera keeps being analysed.
    let a = analysed(&d, &token, cam);
    wait_for(MIN, || (analysed(&d, &token, cam) > a).then_some(()))
        .expect("camera still analysed after the attack");
}

/// Item 1: one client's flood (far-future time on the same camera name,
/// 256 invented names) neither ends nor resets another client's tracks.
#[test]
fn one_client_cannot_reset_anothers_track_ids() {
    let frames = temp_dir("frames");
    vtest_frames(&frames.join("street"), 40, 41);
    let d = Daemon::start(&[("OPENNVR_FRAMES_DIR", frames.to_str().unwrap())]);
    let (a, b) = (client_from([127, 0, 0, 1]), client_from([127, 0, 0, 2]));
    let frame = |file: &str, ts: i64| {
        json!({"task": "person_counting",
               "data": {"frame": {"uri": format!("opennvr://frames/street/{file}"), "timestamp_ms": ts}}})
    };
    let run = |c: &reqwest::blocking::Client, body: Value| {
        let (s, v) = post_with(c, &d, "/infer", &body);
        assert_eq!(s, 200, "{v}");
        v
    };
    let first = track_ids(&run(&a, frame("f1.jpg", 1_000)));
    assert!(first.len() >= 2, "pedestrians in vtest: {first:?}");
    // Past max_lost_ms: every track ends, the next ones get new ids.
    let second = track_ids(&run(&a, frame("f1.jpg", 10_000)));
    assert!(
        second[0] > *first.last().unwrap(),
        "{first:?} then {second:?}"
    );

    // Client b: the same camera name far in the future, then 256 names.
    run(&b, frame("f1.jpg", FAR_FUTURE_MS));
    for i in 0..256 {
        let (s, v) = post_with(
            &b,
            &d,
            "/infer",
            &json!({"task": "person_counting", "data": {"camera_id": format!("x{i}"),
                "frame": {"uri": "opennvr://frames/street/f1.jpg", "timestamp_ms": FAR_FUTURE_MS}}}),
        );
        assert_eq!(s, 200, "{v}");
    }

    let third = track_ids(&run(&a, frame("f2.jpg", 10_100)));
    eprintln!("client a ids: {first:?}, {second:?}, after b's flood {third:?}");
    assert!(
        third.iter().filter(|id| second.contains(id)).count() >= 2,
        "client a's tracks were ended or reset by client b: {second:?} then {third:?}"
    );
    assert!(
        third[0] > *first.last().unwrap(),
        "ids restarted: {third:?}"
    );

    // Far ahead of a's own camera clock: refused, with a message that says why.
    let (s, v) = post_with(&a, &d, "/infer", &frame("f2.jpg", FAR_FUTURE_MS));
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timestamp_ms"),
        "{v}"
    );
}

/// A photo scaled to `w`x`h` as a JPEG (real content, real size).
fn big_jpeg(w: u32, h: u32) -> Vec<u8> {
    let out = temp_dir("big").join("big.jpg");
    let st = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i", PERSON_JPG, "-vf"])
        .arg(format!("scale={w}:{h}"))
        .args(["-q:v", "3"])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    std::fs::read(out).unwrap()
}

fn raw_request(addr: &str, path: &str, body_len: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
    )
    .unwrap();
    s
}

/// Item 5: requests for a 20 MP JPEG whose clients give up 300 ms after
/// sending (when the work has started): the work keeps its queue place and
/// runner until it ends, so memory and threads stay bounded.
#[test]
fn abandoned_large_requests_keep_their_queue_place() {
    let jpeg = big_jpeg(5472, 3648);
    let body = serde_json::to_vec(
        &json!({"task": "person_detection", "data": {"frame": {"b64": b64(&jpeg)}}}),
    )
    .unwrap();
    let d = Daemon::start(&[]);
    let (rss0, threads0) = (d.rss_mib(), d.proc_status("Threads"));
    let mut peak_threads = threads0;
    for _ in 0..40 {
        let mut s = raw_request(&d.ai, "/infer", body.len());
        let _ = s.write_all(&body);
        // A client with a 300 ms timeout.
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let _ = s.read(&mut [0u8; 64]);
        drop(s);
        peak_threads = peak_threads.max(d.proc_status("Threads"));
    }
    // Settled: a small request is served again.
    let small = json!({"task": "person_detection",
        "data": {"frame": {"b64": b64(&std::fs::read(PERSON_JPG).unwrap())}}});
    wait_for(5 * MIN, || {
        peak_threads = peak_threads.max(d.proc_status("Threads"));
        (post(&d, "/infer", &small).0 == 200).then_some(())
    })
    .expect("the daemon serves again");
    let hwm = d.proc_status("VmHWM") / 1024;
    eprintln!(
        "20 MP x40 abandoned: RSS {rss0} MiB -> peak {hwm} MiB; threads {threads0} -> peak {peak_threads}"
    );
    assert!(hwm < rss0 + 900, "peak RSS {hwm} MiB from {rss0} MiB");
    assert!(
        peak_threads < threads0 + 16,
        "threads {threads0} -> {peak_threads}"
    );
}

/// The status line of whatever the server answered so far, if anything.
fn answered(s: &mut TcpStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(n) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

/// Item 6: 48 clients send the headers of a 16 MB body, then 8 MB of it,
/// then stall. Those beyond admission (or the body budget) get 503 +
/// Retry-After at once, before their bodies are read, and memory stays
/// bounded while the rest stall.
#[test]
fn stalled_bodies_are_refused_before_they_are_read() {
    let d = Daemon::start(&[]);
    let rss0 = d.rss_mib();
    let len = 16_000_000;
    // Headers only first: nothing unread on a refused connection, so the
    // answer is not lost to a reset when the server closes it.
    let mut socks: Vec<TcpStream> = (0..48).map(|_| raw_request(&d.ai, "/infer", len)).collect();
    let mut answers: Vec<Option<String>> = vec![None; socks.len()];
    wait_for(MIN, || {
        for (s, a) in socks.iter_mut().zip(answers.iter_mut()) {
            if a.is_none() {
                *a = answered(s);
            }
        }
        (answers.iter().filter(|a| a.is_some()).count() >= 40).then_some(())
    });
    let busy = answers
        .iter()
        .flatten()
        .filter(|a| a.starts_with("HTTP/1.1 503") && a.to_ascii_lowercase().contains("retry-after"))
        .count();
    // The ones still waiting send 8 MB each, then stall.
    let mut more = b"{\"task\":\"person_detection\",\"data\":{\"frame\":{\"b64\":\"".to_vec();
    more.resize(8 << 20, b'A');
    for (s, a) in socks.iter_mut().zip(&answers) {
        if a.is_none() {
            s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
            let _ = s.write_all(&more);
        }
    }
    let grown = d.rss_mib().saturating_sub(rss0);
    eprintln!("48 stalled bodies: {busy} answered 503 at once; RSS +{grown} MiB");
    assert!(busy >= 40, "only {busy} of 48 refused: {answers:?}");
    assert!(grown < 200, "RSS grew {grown} MiB");
    drop(socks);
    assert_eq!(
        crate::common::get_json(&d.ai_url("/health"))["status"],
        "ok"
    );
}

/// Item 7: costly parameters are bounded or refused, pipelines cannot
/// repeat steps, and a camera keeps being analysed while `/infer` is
/// hammered with `confidence: 0, iou: 1`.
#[test]
fn costly_parameters_cannot_starve_the_cameras() {
    let cam = "street";
    let (_rtsp, d, token) = start_with_camera(cam);
    let uri = format!("opennvr://frames/{cam}/latest.jpg");
    let frame = json!({"frame": {"uri": uri}});
    let ai = d.ai_url("/infer");
    let served = Arc::new(AtomicUsize::new(0));
    let (stop, handles) = hammer(6, {
        let served = served.clone();
        move |_| {
            let r = client()
                .post(&ai)
                .json(
                    &json!({"task": "object_detection", "data": {"frame": {"uri": uri}},
                              "params": {"confidence": 0, "iou": 1}}),
                )
                .send();
            if let Ok(r) = r {
                if r.status() == 200 {
                    let v: Value = r.json().unwrap();
                    assert!(v["count"].as_u64().unwrap() <= 300, "{}", v["count"]);
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    let a0 = analysed(&d, &token, cam);
    let grew = wait_for(MIN, || {
        let a = analysed(&d, &token, cam);
        (a >= a0 + 5).then_some(a)
    });
    stop.store(true, Ordering::Relaxed);
    handles.into_iter().for_each(|h| h.join().unwrap());
    eprintln!(
        "analysed {a0} -> {:?} while hammered; {} costly requests served",
        grew,
        served.load(Ordering::Relaxed)
    );
    assert!(grew.is_some(), "the camera starved behind /infer");
    for (path, body) in [
        (
            "/infer",
            json!({"task": "object_detection", "data": frame, "params": {"max_detections": 1_000_000}}),
        ),
        (
            "/infer",
            json!({"task": "object_detection", "data": frame, "params": {"classes": vec!["person"; 1000]}}),
        ),
        (
            "/pipeline/run",
            json!({"steps": ["person_detection", "person_detection"], "data": frame}),
        ),
        (
            "/pipeline/run",
            json!({"steps": vec!["object_detection"; 16], "data": frame}),
        ),
    ] {
        let (s, v) = post(&d, path, &body);
        assert_eq!(s, 400, "{path} {body}: {v}");
    }
}

/// Item 10: a torn JPEG with an end marker appended is undecodable, not
/// grey; unknown top-level keys are a 400 that names them.
#[test]
fn torn_jpegs_and_unknown_keys_are_refused() {
    let d = Daemon::start(&[]);
    let good = std::fs::read(PERSON_JPG).unwrap();
    let mut torn = good[..good.len() / 2].to_vec();
    torn.extend_from_slice(&[0xFF, 0xD9]);
    let (s, v) = post(
        &d,
        "/infer",
        &json!({"task": "person_detection", "data": {"frame": {"b64": b64(&torn)}}}),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("undecodable_image")),
        "{v}"
    );
    let (s, v) = post(
        &d,
        "/infer",
        &json!({"task": "person_detection", "data": {"frame": {"b64": b64(&good)}}}),
    );
    assert_eq!(s, 200, "{v}");
    for (path, body) in [
        (
            "/infer",
            json!({"task": "person_detection", "parms": {"confidence": 0.9},
                          "data": {"frame": {"b64": b64(&good)}}}),
        ),
        (
            "/pipeline/run",
            json!({"steps": ["person_detection"], "parms": {},
                                 "data": {"frame": {"b64": b64(&good)}}}),
        ),
    ] {
        let (s, v) = post(&d, path, &body);
        assert_eq!(s, 400, "{path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("parms"),
            "{v}"
        );
    }
}
