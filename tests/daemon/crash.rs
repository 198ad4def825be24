//! Crash test: `kill -9` the daemon in the middle of a burst of event POSTs;
//! after a restart every event whose POST got a 2xx is there, and `check` passes.

use crate::common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::client;
use serde_json::{json, Value};

#[test]
fn acknowledged_events_survive_kill_9() {
    let mut d = common::start_nvr(&[]);
    let token = d.admin_token();
    let url = d.nvr_url("/api/v1/events");
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // Recent start times: events older than `[retention] events_max_age_days`
    // are retention's to delete (its first pass runs at start), not lost.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut workers = Vec::new();
    for w in 0..4 {
        let (url, token, acked, stop) = (url.clone(), token.clone(), acked.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut n = 0i64;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"camera_id": format!("cam{w}"), "type": "count_changed",
                                  "track_id": n, "started_at": base + n});
                match client.post(&url).bearer_auth(&token).json(&body).send() {
                    Ok(r) if r.status().is_success() => {
                        let v: Value = match r.json() {
                            Ok(v) => v,
                            Err(_) => break,
                        };
                        acked.lock().unwrap().insert(v["id"].as_i64().unwrap());
                    }
                    // The daemon died under us: stop.
                    _ => break,
                }
                n += 1;
            }
        }));
    }
    // Let the burst run until a good number of events are acknowledged, then kill.
    for _ in 0..600 {
        if acked.lock().unwrap().len() >= 300 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    d.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "burst too small to mean anything: {}",
        acked.len()
    );

    let (ok, out, err) = d.cli(&["check"], "");
    assert!(ok, "check failed after kill -9: {out} {err}");
    assert!(out.starts_with("ok"), "{out}");

    let d = d.restart();
    let token = d.admin_token();
    let mut stored = BTreeSet::new();
    let mut after = 0i64;
    loop {
        let page: Vec<Value> = client()
            .get(d.nvr_url(&format!("/api/v1/events?after_id={after}&limit=1000")))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if page.is_empty() {
            break;
        }
        for e in &page {
            stored.insert(e["id"].as_i64().unwrap());
        }
        after = page.last().unwrap()["id"].as_i64().unwrap();
    }
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // Ids keep increasing after the crash.
    let r = client()
        .post(d.nvr_url("/api/v1/events"))
        .bearer_auth(&token)
        .json(&json!({"camera_id": "cam0", "type": "after_crash"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().unwrap()["id"].as_i64().unwrap();
    assert!(id > *stored.iter().next_back().unwrap());
}

/// A second signal during a slow clean stop exits at once, with the shell's
/// code for it (143 for SIGTERM, 130 for SIGINT) and one log line, instead of
/// waiting for what the clean stop waits on.
///
/// The slow part is made deterministic without timing: a run left by a dead
/// daemon whose "ffmpeg" is still alive. Before any camera starts, the
/// recordings reconciliation waits for it (up to 30 s, then kills it), so a
/// clean stop waits too. Exiting at once shows as that process still alive
/// after the daemon is gone; a clean stop would have killed it first and
/// exited with 0.
#[test]
fn a_second_signal_during_a_slow_stop_exits_at_once() {
    for (second, code) in [("TERM", 143), ("INT", 130)] {
        let (status, still_running, log) = stop_twice(second);
        assert_eq!(status, Some(code), "second signal {second}: {log}");
        assert_eq!(
            log.matches("second signal: exiting now").count(),
            1,
            "{log}"
        );
        assert!(still_running, "the daemon waited out the clean stop: {log}");
    }
}

/// Starts a daemon whose clean stop is slow, sends SIGTERM, then `second`
/// once the stop has begun. Returns the exit code, whether the dead run's
/// process outlived the daemon, and the daemon's log.
fn stop_twice(second: &str) -> (Option<i32>, bool, String) {
    let data = common::temp_dir("second-signal");
    let inprogress = data.join("recordings").join("cam0").join(".inprogress");
    std::fs::create_dir_all(&inprogress).unwrap();
    // Its command line names run 17's segment list, as a real ffmpeg's would.
    // Its own process group, killed whole at the end (`sleep` is the shell's
    // child), and no stdio: an orphaned `sleep` holding the test's stdout
    // would keep CI's log pipe open for ten minutes.
    let mut dead_runs_ffmpeg = std::process::Command::new("sh")
        .args(["-c", "sleep 600; :", "17.csv"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = dead_runs_ffmpeg.id().to_string();
    std::fs::write(inprogress.join("17.pid"), &pid).unwrap();
    let models = common::temp_dir("nomodels").display().to_string();
    let data_s = data.display().to_string();
    let mut d = common::Daemon::start_logged(&[
        ("OPENNVR_MODELS_DIR", models.as_str()),
        ("OPENNVR_DATA_DIR", data_s.as_str()),
        ("OPENNVR_LOG", "info"),
    ]);
    d.signal("TERM");
    let stopping = common::wait_for(Duration::from_secs(60), || {
        d.log_text().contains("stopping;").then_some(())
    });
    assert!(stopping.is_some(), "no clean stop began: {}", d.log_text());
    assert!(d.alive(), "the clean stop must still be waiting");
    d.signal(second);
    let status = d.wait_exit(Duration::from_secs(60));
    let still_running = matches!(dead_runs_ffmpeg.try_wait(), Ok(None));
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
    let _ = dead_runs_ffmpeg.wait();
    let _ = std::fs::remove_dir_all(&data);
    (status.and_then(|s| s.code()), still_running, d.log_text())
}
