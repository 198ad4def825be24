//! Cameras end to end: a real RTSP server (GStreamer) or a looped file,
//! the real ffmpeg, the real detector on the vtest street clip.

use crate::common;

use std::process::Command;
use std::time::Duration;

use crate::common::camera::{
    add_camera, chunks, events, get_auth, probe_duration, vtest_mp4, wait_events, RtspServer,
};
use crate::common::{client, wait_for, Daemon};

const MIN: Duration = Duration::from_secs(60);

fn start(extra: &[(&str, &str)]) -> Daemon {
    let mut env = vec![
        ("OPENNVR_SEGMENT_S", "2"),
        ("OPENNVR_IO_TIMEOUT_S", "3"),
        ("OPENNVR_BACKOFF_MAX_MS", "1000"),
    ];
    env.extend_from_slice(extra);
    Daemon::start(&env)
}

fn wait_chunks(d: &Daemon, token: &str, cam: &str, n: usize) -> Vec<serde_json::Value> {
    wait_for(2 * MIN, || {
        let c = chunks(d, token, cam);
        (c.len() >= n).then_some(c)
    })
    .unwrap_or_else(|| panic!("{cam}: fewer than {n} chunks"))
}

fn get_bytes(d: &Daemon, token: &str, path: &str) -> (u16, Vec<u8>) {
    let r = client()
        .get(d.nvr_url(path))
        .bearer_auth(token)
        .send()
        .unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

/// Every chunk downloads, plays, and lasts what the index says (±0.5 s).
fn assert_chunks_play(d: &Daemon, token: &str, chunks: &[serde_json::Value]) {
    let dir = common::temp_dir("dl");
    for c in chunks {
        let (status, body) = get_bytes(d, token, c["url"].as_str().unwrap());
        assert_eq!(status, 200);
        assert_eq!(body.len() as i64, c["size_bytes"].as_i64().unwrap());
        let f = dir.join("c.mp4");
        std::fs::write(&f, &body).unwrap();
        let (dur, indexed) = (probe_duration(&f), c["duration_s"].as_f64().unwrap());
        assert!(
            (dur - indexed).abs() <= 0.5,
            "chunk {c}: plays {dur} s, indexed {indexed} s"
        );
        assert!(indexed > 0.5, "{c}");
    }
}

/// `check` (index vs folder) with the daemon stopped.
fn assert_index_matches_folder(d: &Daemon) {
    let (ok, out, err) = d.cli(&["check"], "");
    assert!(ok, "check failed:\n{out}{err}");
    assert!(!out.contains("pending"), "{out}");
}

#[test]
fn rtsp_camera_records_detects_and_serves_frames() {
    let rtsp = RtspServer::start(&vtest_mp4());
    let mut d = start(&[]);
    let token = d.admin_token();
    add_camera(&d, &token, "street", &rtsp.url(), 5.0);

    let got = wait_chunks(&d, &token, "street", 3);
    assert_chunks_play(&d, &token, &got);
    for pair in got.windows(2) {
        let (a_end, b_start) = (
            pair[0]["end_unix"].as_f64().unwrap(),
            pair[1]["start_unix"].as_f64().unwrap(),
        );
        assert!(
            (b_start - a_end).abs() < 0.01,
            "chunks of one run are contiguous: {pair:?}"
        );
    }

    // The vtest clip has pedestrians from its first frame.
    let entered = wait_events(&d, &token, "street", "person_entered", 1, 2 * MIN);
    let e = &entered[0];
    assert_eq!(e["label"], "person");
    assert!(e["score"].as_f64().unwrap() >= 0.35);
    // On onnxruntime (installed by scripts/setup.sh) the cameras run the int8 copy.
    assert_eq!(e["model_id"], "yolov4-tiny-416-int8");
    assert_eq!(e["model_sha256"].as_str().unwrap().len(), 64);
    let bbox: Vec<f64> = serde_json::from_value(e["bbox"].clone()).unwrap();
    assert!(
        bbox[2] > 5.0 && bbox[3] > 10.0 && bbox[0] + bbox[2] <= 768.5,
        "{bbox:?}"
    );
    let (status, snap) = get_bytes(
        &d,
        &token,
        &format!("/api/v1/events/{}/snapshot.jpg", e["id"]),
    );
    assert_eq!(status, 200);
    let img = image::load_from_memory(&snap).expect("snapshot is a JPEG");
    assert_eq!((img.width(), img.height()), (768, 576));
    let online = events(&d, &token, "street", "camera_online");
    assert_eq!(online.len(), 1);
    assert!(
        online[0]["payload"]["down_ms"].is_null(),
        "first start: {}",
        online[0]
    );

    // latest.jpg: over the API, and to /infer by URI, like OpenNVR does.
    let (status, latest) = get_bytes(&d, &token, "/api/v1/cameras/street/snapshot.jpg");
    assert_eq!(status, 200);
    assert_eq!(image::load_from_memory(&latest).unwrap().width(), 768);
    let found = wait_for(MIN, || {
        let r: serde_json::Value = client()
            .post(d.ai_url("/infer"))
            .json(&serde_json::json!({"task": "person_detection",
                "data": {"frame": {"uri": "opennvr://frames/street/latest.jpg"}}}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        (r["count"].as_u64().unwrap_or(0) >= 1).then_some(r)
    });
    assert!(found.is_some(), "no person in latest.jpg");

    let st = get_auth(&d, &token, "/api/v1/cameras/street/status");
    assert_eq!(st["online"], true);
    assert!(
        st["frames"].as_u64().unwrap() > 10 && st["analysed"].as_u64().unwrap() > 0,
        "{st}"
    );
    assert_eq!(st["restarts"], 0);
    // No auth, no frame.
    let r = client()
        .get(d.nvr_url("/api/v1/cameras/street/snapshot.jpg"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    assert!(d.terminate(), "daemon stops with a camera running");
    assert_index_matches_folder(&d);
}

#[test]
fn camera_outage_and_ffmpeg_crash_are_reported_and_recovered() {
    let mut rtsp = RtspServer::start(&vtest_mp4());
    let d = start(&[("OPENNVR_STALL_TIMEOUT_S", "4")]);
    let token = d.admin_token();
    add_camera(&d, &token, "door", &rtsp.url(), 0.0);
    wait_chunks(&d, &token, "door", 1);
    wait_events(&d, &token, "door", "camera_online", 1, MIN);

    // The camera loses power: offline, once, however many retries fail.
    rtsp.stop();
    let off = wait_events(&d, &token, "door", "camera_offline", 1, MIN);
    assert!(
        off[0]["payload"]["last_frame_at"].as_i64().is_some(),
        "{}",
        off[0]
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(events(&d, &token, "door", "camera_offline").len(), 1);
    let down_at = off[0]["started_at"].as_i64().unwrap();

    // It comes back: online again with how long it was down, and recording resumes.
    rtsp.resume();
    let on = wait_events(&d, &token, "door", "camera_online", 2, MIN);
    assert!(
        on[1]["payload"]["down_ms"].as_i64().unwrap() >= 1_000,
        "{}",
        on[1]
    );
    wait_for(MIN, || {
        chunks(&d, &token, "door")
            .iter()
            .any(|c| c["start_unix"].as_f64().unwrap() * 1000.0 > down_at as f64)
            .then_some(())
    })
    .expect("recording resumed after the outage");

    // ffmpeg itself dies: restarted, recording goes on.
    let st = get_auth(&d, &token, "/api/v1/cameras/door/status");
    let (pid, restarts) = (
        st["ffmpeg_pid"].as_u64().unwrap(),
        st["restarts"].as_u64().unwrap(),
    );
    assert!(Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let st = wait_for(MIN, || {
        let st = get_auth(&d, &token, "/api/v1/cameras/door/status");
        let new_pid = st["ffmpeg_pid"].as_u64();
        (st["online"] == true && new_pid.is_some() && new_pid != Some(pid)).then_some(st)
    })
    .expect("ffmpeg restarted");
    assert_eq!(st["restarts"].as_u64().unwrap(), restarts + 1);

    // ffmpeg hangs (stopped, frames cease): killed as stalled, reported, restarted.
    let pid = st["ffmpeg_pid"].as_u64().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let stalled = wait_events(&d, &token, "door", "camera_stalled", 1, MIN);
    assert!(
        stalled[0]["payload"]["stalled_ms"].as_u64().unwrap() >= 4_000,
        "{}",
        stalled[0]
    );
    wait_for(MIN, || {
        let st = get_auth(&d, &token, "/api/v1/cameras/door/status");
        (st["online"] == true
            && st["ffmpeg_pid"].as_u64().map(|p| p.to_string()) != Some(pid.clone()))
        .then_some(())
    })
    .expect("restarted after the stall");
    // The status flips before the camera_online row is written: wait for the rows.
    let online = wait_events(&d, &token, "door", "camera_online", 4, MIN);
    assert_eq!(online.len(), 4, "one per start: {online:?}");
    assert_chunks_play(&d, &token, &chunks(&d, &token, "door"));
}

#[test]
fn kill9_mid_chunk_then_restart_keeps_index_and_folder_in_step() {
    let clip = format!("file://{}", vtest_mp4().display());
    let d = start(&[("OPENNVR_SEGMENT_S", "3")]);
    let token = d.admin_token();
    add_camera(&d, &token, "yard", &clip, 0.0);
    wait_chunks(&d, &token, "yard", 2);
    std::thread::sleep(Duration::from_millis(1500));
    let before = chunks(&d, &token, "yard").len();
    let data = d.data_dir.clone();

    // Power cut for the daemon mid-chunk; its ffmpeg is told to stop by the
    // kernel, closes the chunk, and the next start indexes it.
    let cut = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut d = d.restart();
    let token = d.admin_token();
    let after = wait_chunks(&d, &token, "yard", before + 2);
    let salvaged = after
        .iter()
        .filter(|c| c["start_unix"].as_f64().unwrap() < cut)
        .count();
    assert!(
        salvaged > before,
        "the chunk cut by the crash is kept: {before} before, then {after:?}"
    );
    assert_chunks_play(&d, &token, &after);
    assert!(d.terminate());
    assert_index_matches_folder(&d);
    let leftovers = std::fs::read_dir(data.join("recordings/yard/.inprogress"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(
        leftovers, 0,
        "nothing left in .inprogress after a clean stop"
    );
    assert!(after.len() > before);
}

#[test]
fn retention_budget_deletes_oldest_chunks_first() {
    let clip = format!("file://{}", vtest_mp4().display());
    // About two 2-second chunks of this clip.
    let budget = 400_000;
    let mut d = start(&[("OPENNVR_RETENTION_MAX_BYTES", "400000")]);
    let token = d.admin_token();
    add_camera(&d, &token, "lot", &clip, 0.0);
    // Watch the index while six chunks are recorded, remembering every chunk seen.
    let mut seen = std::collections::BTreeMap::new();
    wait_for(2 * MIN, || {
        for c in chunks(&d, &token, "lot") {
            seen.insert(c["id"].as_i64().unwrap(), c["start_unix"].as_f64().unwrap());
        }
        let st = get_auth(&d, &token, "/api/v1/cameras/lot/status");
        (st["chunks"].as_u64().unwrap() >= 6).then_some(())
    })
    .expect("six chunks recorded");
    let kept = wait_for(MIN, || {
        let c = chunks(&d, &token, "lot");
        let total: i64 = c.iter().map(|c| c["size_bytes"].as_i64().unwrap()).sum();
        (total <= budget || c.len() == 1).then_some(c)
    })
    .expect("retention brings the total under the budget");
    let kept_ids: Vec<i64> = kept.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    let deleted: Vec<f64> = seen
        .iter()
        .filter(|(id, _)| !kept_ids.contains(id))
        .map(|(_, start)| *start)
        .collect();
    assert!(!deleted.is_empty(), "seen {seen:?}, kept {kept_ids:?}");
    let oldest_kept = kept[0]["start_unix"].as_f64().unwrap();
    assert!(
        deleted.iter().all(|s| *s < oldest_kept),
        "only older chunks go: deleted {deleted:?}, kept {kept:?}"
    );
    assert!(d.terminate());
    assert_index_matches_folder(&d);
}

#[test]
fn camera_events_reach_mqtt_with_snapshots() {
    let broker = common::mqtt::Mosquitto::start();
    let sub = common::mqtt::Sub::start(&broker, "ingest-e2e", "opennvr/#");
    let env = broker.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("OPENNVR_SEGMENT_S", "2"));
    let d = Daemon::start(&all);
    let token = d.admin_token();
    let clip = format!("file://{}", vtest_mp4().display());
    add_camera(&d, &token, "gate", &clip, 5.0);

    // The camera's own pipeline, not a POST: online, then a tracked person.
    sub.next_matching(MIN, |m| {
        m.topic == "opennvr/gate/status" && m.text() == "online"
    })
    .expect("gate online");
    let new = sub
        .next_matching(2 * MIN, |m| {
            m.topic == "opennvr/events" && m.json()["type"] == "new"
        })
        .expect("a person event on opennvr/events");
    let after = &new.json()["after"];
    assert_eq!(after["camera"], "gate");
    assert_eq!(after["label"], "person");
    assert_eq!(after["event_type"], "person_entered");
    assert_eq!(after["has_snapshot"], true);
    let snap = sub.next_on("opennvr/gate/person/snapshot");
    let img = image::load_from_memory(&snap.payload).expect("the snapshot is the event's JPEG");
    assert_eq!(img.width(), 768);
}
