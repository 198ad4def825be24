//! NVR core benchmark on the real daemon; prints numbers for
//! docs/performance.md (it measures, it does not assert speed). Run with
//! `cargo bench --bench nvr` (release profile), or `cargo test --bench nvr`
//! (the test profile, as docs/performance.md measured).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Daemon, SseClient};
use opennvr_edge::clock::SystemClock;
use opennvr_edge::nvr::store::{NewEvent, Store};
use serde_json::{json, Value};

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn http_post_throughput(d: &Daemon, token: &str, threads: usize, per_thread: usize) -> f64 {
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|w| {
            let (url, token) = (d.nvr_url("/api/v1/events"), token.to_owned());
            std::thread::spawn(move || {
                let c = common::client();
                for n in 0..per_thread {
                    let r = c
                        .post(&url)
                        .bearer_auth(&token)
                        .json(
                            &json!({"camera_id": format!("bench{w}"), "type": "count_changed",
                                      "track_id": n, "label": "person", "score": 0.9,
                                      "bbox": [1, 2, 3, 4], "payload": {"count": n}}),
                        )
                        .send()
                        .unwrap();
                    assert!(r.status().is_success());
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    (threads * per_thread) as f64 / t0.elapsed().as_secs_f64()
}

fn internal_writer_throughput(total: usize, in_flight: usize) -> f64 {
    let dir = std::env::temp_dir().join(format!("onvr-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rate = rt.block_on(async {
        let store = Store::open(&dir.join("b.db"), Arc::new(SystemClock), 1024).unwrap();
        let t0 = Instant::now();
        let per = total / in_flight;
        let tasks: Vec<_> = (0..in_flight)
            .map(|w| {
                let s = store.clone();
                tokio::spawn(async move {
                    for n in 0..per {
                        s.insert_event(NewEvent {
                            camera_id: format!("bench{w}"),
                            kind: "count_changed".into(),
                            track_id: Some(n as i64),
                            label: Some("person".into()),
                            score: Some(0.9),
                            bbox: Some([1.0, 2.0, 3.0, 4.0]),
                            ..NewEvent::default()
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        (per * in_flight) as f64 / t0.elapsed().as_secs_f64()
    });
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

fn sse_latency(d: &Daemon, token: &str, clients: usize, events: usize) -> Vec<i64> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut hs = Vec::new();
    for _ in 0..clients {
        let mut c = SseClient::connect(
            d.nvr_addr(),
            "/api/v1/events/stream",
            &[format!("Authorization: Bearer {token}")],
        );
        assert_eq!(c.status, 200);
        let tx = tx.clone();
        hs.push(std::thread::spawn(move || {
            for _ in 0..events {
                let m = c.next(Duration::from_secs(60)).expect("event");
                let got = now_us();
                let v: Value = serde_json::from_str(&m.data).unwrap();
                let sent = v["payload"]["sent_us"].as_i64().unwrap();
                tx.send(got - sent).unwrap();
            }
        }));
    }
    drop(tx);
    // Give every stream time to subscribe before publishing.
    std::thread::sleep(Duration::from_millis(500));
    let c = common::client();
    for n in 0..events {
        let r = c
            .post(d.nvr_url("/api/v1/events"))
            .bearer_auth(token)
            .json(&json!({"camera_id": "lat", "type": "count_changed",
                          "payload": {"n": n, "sent_us": now_us()}}))
            .send()
            .unwrap();
        assert!(r.status().is_success());
        std::thread::sleep(Duration::from_millis(20));
    }
    for h in hs {
        h.join().unwrap();
    }
    let mut lat: Vec<i64> = rx.iter().collect();
    lat.sort_unstable();
    lat
}

fn main() {
    let d = common::start_nvr(&[]);
    let token = d.admin_token();
    for threads in [1, 4, 16] {
        let r = http_post_throughput(&d, &token, threads, 2000 / threads.min(4));
        println!("POST /api/v1/events, {threads} client threads: {r:.0} events/s");
    }
    for in_flight in [1, 64] {
        let r = internal_writer_throughput(20_000, in_flight);
        println!("internal writer (Store::insert_event), {in_flight} in flight: {r:.0} events/s");
    }
    let lat = sse_latency(&d, &token, 100, 50);
    println!(
        "SSE delivery latency, 100 clients x 50 events ({} samples): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.5) as f64 / 1000.0,
        percentile(&lat, 0.99) as f64 / 1000.0,
        *lat.last().unwrap() as f64 / 1000.0
    );
}
