//! The MQTT mirror against a real mosquitto: availability and Last Will,
//! Home Assistant discovery, counts, snapshots and events; and durability:
//! a broker outage (with and without a daemon restart) loses, duplicates
//! and reorders nothing, and the outbox cap drops the oldest, counted.

use crate::common;

use std::time::Instant;

use crate::common::mqtt::{Mosquitto, Msg, Sub, WAIT};
use crate::common::{client, get_json, wait_for, Daemon};
use serde_json::{json, Value};

/// Starts the daemon (no models) mirroring to `broker`, with `extra` env.
fn start(broker: &Mosquitto, extra: &[(&str, &str)]) -> Daemon {
    let env = broker.env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    common::start_nvr(&all)
}

/// POSTs an event, expecting 201; returns the stored row.
fn post_event(d: &Daemon, token: &str, body: &Value) -> Value {
    let r = client()
        .post(d.nvr_url("/api/v1/events"))
        .bearer_auth(token)
        .json(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{body}");
    r.json().unwrap()
}

/// The `mqtt` block of the adapter's `/health`.
fn mqtt_health(d: &Daemon) -> Value {
    get_json(&d.ai_url("/health"))["mqtt"].clone()
}

/// Waits until `/health` says `key` is `want`.
fn wait_health(d: &Daemon, key: &str, want: Value) {
    let got = wait_for(WAIT, || (mqtt_health(d)[key] == want).then_some(()));
    assert!(
        got.is_some(),
        "health mqtt.{key} != {want}: {}",
        mqtt_health(d)
    );
}

fn counter(n: i64) -> Value {
    json!({"camera_id": "yard", "type": "count_changed", "payload": {"count": n}})
}

/// Reads `<prefix>/events` until `n` messages came; returns their event ids.
fn event_ids(sub: &Sub, n: usize) -> Vec<i64> {
    (0..n)
        .map(|_| {
            sub.next_on("opennvr/events").json()["event_id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// After the expected messages, a fresh event must be the very next one:
/// nothing duplicated or stray came in between.
fn assert_next_is_sentinel(d: &Daemon, token: &str, sub: &Sub) {
    let id = post_event(d, token, &counter(9999))["id"].as_i64().unwrap();
    let next = sub.next_on("opennvr/events").json();
    assert_eq!(
        next["event_id"], id,
        "unexpected message before the sentinel: {next}"
    );
}

#[test]
fn availability_discovery_states_and_events() {
    let broker = Mosquitto::start();
    let sub = Sub::start(&broker, "all", "#");
    let mut d = start(
        &broker,
        &[
            ("OPENNVR_MQTT_NODE_ID", "box1"),
            ("OPENNVR_MQTT_STATS_INTERVAL_S", "1"),
        ],
    );
    let t = d.admin_token();
    let avail = sub.next_on("opennvr/available");
    assert_eq!((avail.text().as_str(), avail.retained), ("online", false));

    // A camera becomes a Home Assistant device.
    let r = client()
        .post(d.nvr_url("/api/v1/cameras"))
        .bearer_auth(&t)
        .json(&json!({"id": "front.door", "name": "Front door", "source_url": "rtsp://cam/1"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let cfg_topic = "homeassistant/device/box1_front_door/config";
    let m = sub.next_on(cfg_topic);
    let c = m.json();
    assert_eq!(c["dev"]["ids"], json!(["box1_front_door"]));
    assert_eq!(c["dev"]["name"], "Front door");
    assert_eq!(c["availability"][0]["topic"], "opennvr/available");
    assert_eq!(c["availability"][0]["payload_available"], "online");
    let cmps = &c["cmps"];
    let count = &cmps["person_count"];
    assert_eq!(count["p"], "sensor");
    assert_eq!(count["state_class"], "measurement");
    assert_eq!(count["state_topic"], "opennvr/front.door/person");
    assert_eq!(count["unique_id"], "box1_front_door_person_count");
    let occ = &cmps["occupancy"];
    assert_eq!(
        (occ["p"].as_str(), occ["device_class"].as_str()),
        (Some("binary_sensor"), Some("occupancy"))
    );
    assert_eq!(occ["state_topic"], "opennvr/front.door/person");
    assert_eq!(occ["unique_id"], "box1_front_door_occupancy");
    let online = &cmps["online"];
    assert_eq!(
        (online["p"].as_str(), online["device_class"].as_str()),
        (Some("binary_sensor"), Some("connectivity"))
    );
    assert_eq!(online["state_topic"], "opennvr/front.door/status");
    assert_eq!(
        (
            online["payload_on"].as_str(),
            online["payload_off"].as_str()
        ),
        (Some("online"), Some("offline"))
    );
    let snap = &cmps["snapshot"];
    assert_eq!(snap["p"], "image");
    assert_eq!(snap["image_topic"], "opennvr/front.door/person/snapshot");
    assert_eq!(snap["content_type"], "image/jpeg");
    let ids: Vec<&str> = ["person_count", "occupancy", "online", "snapshot"]
        .iter()
        .map(|k| cmps[*k]["unique_id"].as_str().unwrap())
        .collect();
    assert!(ids.iter().all(|u| u.starts_with("box1_")), "{ids:?}");

    // Home Assistant restarting: everything is announced again.
    broker.publish("homeassistant/status", "online", false);
    assert_eq!(sub.next_on(cfg_topic).json(), c);

    // Counts and the events topic, in the order they were stored.
    let cam = "front.door";
    let jpeg = b"\xff\xd8\xff\xe0 not really a picture \xff\xd9".to_vec();
    common::write_file(&d.data_dir.join("snapshots/front.door/7.jpg"), &jpeg);
    let e1 = post_event(
        &d,
        &t,
        &json!({"camera_id": cam, "type": "person_entered", "label": "person",
        "track_id": 7, "score": 0.9, "bbox": [1, 2, 3, 4], "snapshot_path": "front.door/7.jpg"}),
    );
    assert_eq!(sub.next_on("opennvr/front.door/person").text(), "1");
    let s = sub.next_on("opennvr/front.door/person/snapshot");
    assert_eq!((s.payload.clone(), s.retained), (jpeg, false));
    let m = sub.next_on("opennvr/events").json();
    assert_eq!(m["type"], "new");
    assert_eq!(m["event_id"], e1["id"]);
    assert_eq!(m["after"]["camera"], cam);
    assert_eq!(m["after"]["label"], "person");
    assert_eq!(m["after"]["has_snapshot"], true);
    assert_eq!(m["after"]["box"], json!([1.0, 2.0, 4.0, 6.0]));
    assert_eq!(m["before"], m["after"]);

    post_event(
        &d,
        &t,
        &json!({"camera_id": cam, "type": "person_entered", "label": "person", "track_id": 8}),
    );
    assert_eq!(sub.next_on("opennvr/front.door/person").text(), "2");
    // A snapshot leading outside the snapshots dir is not read (`../` paths
    // are refused at POST; a symlink is how one could still point out).
    let snaps = d.data_dir.join("snapshots").join(cam);
    std::fs::create_dir_all(&snaps).unwrap();
    std::os::unix::fs::symlink(d.data_dir.join("jwt-secret"), snaps.join("out.jpg")).unwrap();
    let e3 = post_event(
        &d,
        &t,
        &json!({"camera_id": cam, "type": "person_left", "label": "person",
        "track_id": 7, "snapshot_path": format!("{cam}/out.jpg")}),
    );
    assert_eq!(sub.next_on("opennvr/front.door/person").text(), "1");
    let m = sub.next_matching(WAIT, |m| {
        m.topic == "opennvr/events" || m.topic.ends_with("/snapshot")
    });
    let m = m.expect("end event").json();
    assert_eq!(
        (m["type"].as_str(), m["event_id"].clone()),
        (Some("end"), e3["id"].clone())
    );
    assert_eq!(
        m["before"]["event_id"], e1["id"],
        "before is the track's previous state"
    );
    assert_eq!(m["after"]["has_snapshot"], false);

    post_event(
        &d,
        &t,
        &json!({"camera_id": cam, "type": "count_changed", "label": "person", "payload": {"count": 0}}),
    );
    assert_eq!(sub.next_on("opennvr/front.door/person").text(), "0");
    post_event(&d, &t, &json!({"camera_id": cam, "type": "camera_offline"}));
    assert_eq!(sub.next_on("opennvr/front.door/status").text(), "offline");
    post_event(&d, &t, &json!({"camera_id": cam, "type": "camera_online"}));
    assert_eq!(sub.next_on("opennvr/front.door/status").text(), "online");

    // Stats: the /health body, with the mirror's own counters.
    let stats = sub.next_on("opennvr/stats").json();
    assert_eq!(stats["status"], "ok");
    assert!(stats["hardware"]["cpu_cores"].as_u64().unwrap() >= 1);
    assert_eq!(stats["mqtt"]["connected"], true);

    // Deleting the camera removes its device: an empty retained config.
    let r = client()
        .delete(d.nvr_url("/api/v1/cameras/front.door"))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(sub.next_on(cfg_topic).payload.is_empty());

    // kill -9: the broker sends the Last Will.
    d.kill9();
    assert_eq!(sub.next_on("opennvr/available").text(), "offline");
    // Back, then a clean stop says `stopped`, not `offline`.
    let mut d = d.restart();
    assert_eq!(sub.next_on("opennvr/available").text(), "online");
    assert!(d.terminate());
    assert_eq!(sub.next_on("opennvr/available").text(), "stopped");
    // Retained: a newcomer learns the last state at once.
    let late = Sub::start(&broker, "late", "opennvr/#");
    let m = late.next_on("opennvr/available");
    assert_eq!((m.text().as_str(), m.retained), ("stopped", true));
    let counts: Msg = late.next_on("opennvr/front.door/person");
    assert_eq!((counts.text().as_str(), counts.retained), ("0", true));
}

/// Stops the broker once the mirror has caught up (cursor saved), so what
/// follows starts from a known point.
fn outage_begins(d: &Daemon, t: &str, sub: &Sub, broker: &mut Mosquitto) {
    let warm = post_event(d, t, &counter(0))["id"].as_i64().unwrap();
    assert_eq!(event_ids(sub, 1), vec![warm]);
    wait_health(d, "last_sent_id", json!(warm));
    broker.stop();
    wait_health(d, "connected", json!(false));
}

fn post_counters(d: &Daemon, t: &str, n: i64) -> Vec<i64> {
    (1..=n)
        .map(|i| post_event(d, t, &counter(i))["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn broker_outage_delivers_every_event_in_order_once() {
    let mut broker = Mosquitto::start();
    let sub = Sub::start(&broker, "events", "opennvr/events");
    let d = start(&broker, &[]);
    let t = d.admin_token();
    outage_begins(&d, &t, &sub, &mut broker);

    let t0 = Instant::now();
    let ids = post_counters(&d, &t, 100);
    let posting = t0.elapsed();
    wait_health(&d, "pending", json!(100));

    broker.resume();
    let t0 = Instant::now();
    assert_eq!(event_ids(&sub, 100), ids, "every event, in id order, once");
    eprintln!(
        "outage: 100 POSTs took {posting:?} with the broker down; delivered {:?} after it returned",
        t0.elapsed()
    );
    assert_next_is_sentinel(&d, &t, &sub);
    wait_health(&d, "pending", json!(0));
    let h = mqtt_health(&d);
    assert_eq!(
        (h["connected"].clone(), h["dropped"].clone()),
        (json!(true), json!(0))
    );
}

#[test]
fn broker_outage_with_daemon_restart_loses_nothing() {
    let mut broker = Mosquitto::start();
    let sub = Sub::start(&broker, "events", "opennvr/events");
    let d = start(&broker, &[]);
    let t = d.admin_token();
    outage_begins(&d, &t, &sub, &mut broker);

    let mut ids = post_counters(&d, &t, 50);
    let d = d.restart();
    let t = d.admin_token();
    ids.extend(post_counters(&d, &t, 50));
    wait_health(&d, "pending", json!(100));

    broker.resume();
    assert_eq!(event_ids(&sub, 100), ids, "every event, in id order, once");
    assert_next_is_sentinel(&d, &t, &sub);
}

#[test]
fn outbox_cap_drops_the_oldest_and_counts_them() {
    let mut broker = Mosquitto::start();
    let sub = Sub::start(&broker, "events", "opennvr/events");
    let d = start(&broker, &[("OPENNVR_MQTT_OUTBOX_CAP", "10")]);
    let t = d.admin_token();
    outage_begins(&d, &t, &sub, &mut broker);

    let ids = post_counters(&d, &t, 25);
    wait_health(&d, "dropped", json!(15));
    assert_eq!(mqtt_health(&d)["pending"], 10);

    broker.resume();
    assert_eq!(event_ids(&sub, 10), ids[15..], "the newest 10, in order");
    assert_next_is_sentinel(&d, &t, &sub);
}

#[test]
fn a_device_whose_camera_is_gone_is_removed_on_connect() {
    let broker = Mosquitto::start();
    let node = [("OPENNVR_MQTT_NODE_ID", "box1")];
    let mut d = start(&broker, &node);
    let r = client()
        .post(d.nvr_url("/api/v1/cameras"))
        .bearer_auth(d.admin_token())
        .json(&json!({"id": "gate", "source_url": "rtsp://cam/2"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let topic = "homeassistant/device/box1_gate/config";
    let sub = Sub::start(&broker, "ha", "homeassistant/#");
    assert!(!sub.next_on(topic).payload.is_empty());
    assert!(d.terminate());
    // The same node reinstalled (empty database) or the camera deleted while
    // the daemon was down: the retained config is found and removed.
    let other = start(&broker, &node);
    let m = sub.next_on(topic);
    assert!(
        m.payload.is_empty(),
        "stale config not removed: {}",
        m.text()
    );
    let late = Sub::start(&broker, "ha-late", "#");
    let retained = late.retained_at_start();
    assert!(
        retained.iter().any(|m| m.topic == "opennvr/available"),
        "retained messages were not captured: {retained:?}"
    );
    assert!(
        retained.iter().all(|m| m.topic != topic),
        "the broker still retains a config for the gone camera"
    );
    drop(other);
}

#[test]
fn credentials_are_used_and_health_is_null_without_mqtt() {
    let broker = Mosquitto::start_with_password("nvr", "s3cret pass");
    let sub = Sub::start(&broker, "auth", "opennvr/available");
    // Anonymous clients are refused by this broker, so `online` proves the login.
    let d = start(
        &broker,
        &[
            ("OPENNVR_MQTT_USERNAME", "nvr"),
            ("OPENNVR_MQTT_PASSWORD", "s3cret pass"),
        ],
    );
    assert_eq!(sub.next_on("opennvr/available").text(), "online");
    wait_health(&d, "connected", json!(true));
    let off = common::start_nvr(&[]);
    assert_eq!(get_json(&off.ai_url("/health"))["mqtt"], Value::Null);
}

#[test]
fn events_sent_but_never_acknowledged_are_published_again() {
    let mut broker = Mosquitto::start();
    let sub = Sub::start(&broker, "events", "opennvr/events");
    let mut d = start(&broker, &[]);
    let t = d.admin_token();
    let warm = post_event(&d, &t, &counter(0))["id"].as_i64().unwrap();
    assert_eq!(event_ids(&sub, 1), vec![warm]);
    wait_health(&d, "last_sent_id", json!(warm));

    // The broker stops reading: the daemon's PUBLISHes pile up in the
    // broker's socket, unacknowledged.
    broker.pause();
    let ids = post_counters(&d, &t, 10);
    let sent = wait_for(WAIT, || (broker.unread_bytes() >= 10 * 400).then_some(()));
    assert!(
        sent.is_some(),
        "the daemon did not publish: {} bytes",
        broker.unread_bytes()
    );
    // Both die: the broker never read those packets, nobody acknowledged them.
    d.kill9();
    broker.kill9();
    broker.resume();
    sub.wait_ready(&broker);
    let d = d.restart();
    let t = d.admin_token();
    assert_eq!(
        event_ids(&sub, 10),
        ids,
        "published again from the saved cursor"
    );
    assert_next_is_sentinel(&d, &t, &sub);
}
