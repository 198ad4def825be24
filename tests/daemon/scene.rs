//! `[events] describe` end to end: the demo camera (Debian's vtest street
//! clip through the real ffmpeg and detector) with descriptions on; its
//! `person_entered` events carry the sentence of their snapshot (on the
//! API and the live stream), and the camera's events keep their order.

use std::time::Duration;

use crate::common::camera::events;
use crate::common::{temp_dir, wait_for, Daemon, SseClient};

const MIN: Duration = Duration::from_secs(60);

#[test]
fn demo_person_entered_events_carry_a_description_of_their_snapshot() {
    // A generous wait for a loaded CI box: a "timeout" here would be a
    // description that never came, not a slow one.
    let conf = temp_dir("scene-conf").join("config.toml");
    // One runner, as a box that wants descriptions would set (docs/ingest.md):
    // with one per core the niced describer waits behind the detector.
    std::fs::write(
        &conf,
        "[ai]\nworkers = 1\n[events]\ndescribe_timeout_ms = 120000\n",
    )
    .unwrap();
    let mut d = Daemon::start(&[
        ("OPENNVR_DEMO", "true"),
        ("OPENNVR_EVENTS_DESCRIBE", "true"),
        ("OPENNVR_CONFIG", conf.to_str().unwrap()),
    ]);
    let token = d.admin_token();
    let auth = format!("Authorization: Bearer {token}");
    let mut live = SseClient::connect(d.nvr_addr(), "/api/v1/events/stream", &[auth]);
    assert_eq!(live.status, 200);
    let cam = opennvr_edge::ingest::demo::CAMERA_ID;
    // The first entries may go out undescribed ("backlog") while the model
    // loads and the describer's thread, niced, waits behind the detector:
    // wait for one that was described.
    let described = wait_for(3 * MIN, || {
        events(&d, &token, cam, "person_entered")
            .into_iter()
            .find(|e| e["payload"]["description"].is_string())
    })
    .unwrap_or_else(|| {
        let e = events(&d, &token, cam, "person_entered");
        panic!("no described person_entered within 3 min: {e:?}")
    });
    let p = &described["payload"];
    let caption = p["description"].as_str().unwrap();
    assert!(
        caption.starts_with("Day. ") && (caption.contains("person") || caption.contains("people")),
        "the street clip's sentence names its pedestrians: {caption:?}"
    );
    assert!(
        p["description_model"]
            .as_str()
            .unwrap()
            .starts_with("detections:yolov4-tiny-416"),
        "{p}"
    );
    // The live stream carries the same payload.
    let mut streamed = None;
    while let Some(m) = live.next(MIN) {
        let v: serde_json::Value = serde_json::from_str(&m.data).unwrap();
        if v["id"] == described["id"] {
            streamed = Some(v);
            break;
        }
    }
    let streamed = streamed.expect("the entry on the live stream");
    assert_eq!(streamed["payload"]["description"], caption);

    // Every person_left so far follows its own person_entered (ids are
    // store order; waiting for one would cost a minute: the ordering rules
    // are unit-tested in ingest::outlet).
    let left = events(&d, &token, cam, "person_left");
    let all_entered = events(&d, &token, cam, "person_entered");
    for l in &left {
        let e = all_entered
            .iter()
            .find(|e| e["track_id"] == l["track_id"])
            .unwrap_or_else(|| panic!("no entry for {l}"));
        assert!(e["id"].as_i64() < l["id"].as_i64(), "{e} after {l}");
    }
    for e in &all_entered {
        let p = &e["payload"];
        assert!(
            p.get("description").is_some(),
            "every entry says its description or why not: {e}"
        );
    }
    assert!(d.terminate(), "the daemon stops with descriptions owed");
}
