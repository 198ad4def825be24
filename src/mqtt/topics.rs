//! Topic names and the messages derived from one stored event.
//!
//! Pure functions of the event and a little remembered state (counts, the
//! previous state of a track), so they are unit-tested without a broker.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::nvr::store::Event;

/// The label used for counts when an event has none (the pipeline counts people).
pub const DEFAULT_LABEL: &str = "person";

/// Tracks remembered for `before`; beyond this the memory is cleared (a
/// `before` then equals `after`, as for a new object).
const MAX_TRACKS: usize = 4096;

/// (camera, label) counts kept; events for further pairs get no count topic.
const MAX_COUNTS: usize = 4096;

/// Every topic the mirror publishes or listens to, from the two prefixes.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
    discovery: String,
}

impl Topics {
    /// `prefix` is the mirror's root (`opennvr`), `discovery` Home Assistant's
    /// (`homeassistant`, empty when discovery is off).
    pub fn new(prefix: &str, discovery: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_owned(),
            discovery: discovery.trim_end_matches('/').to_owned(),
        }
    }

    /// `online` / `offline` (Last Will) / `stopped`, retained.
    pub fn available(&self) -> String {
        format!("{}/available", self.prefix)
    }

    /// One JSON message per stored event.
    pub fn events(&self) -> String {
        format!("{}/events", self.prefix)
    }

    /// The `/health` body, every `stats_interval_s`.
    pub fn stats(&self) -> String {
        format!("{}/stats", self.prefix)
    }

    /// `online` / `offline` of one camera, retained.
    pub fn camera_status(&self, camera: &str) -> String {
        format!("{}/{camera}/status", self.prefix)
    }

    /// The current count of `label` on `camera`, retained.
    pub fn count(&self, camera: &str, label: &str) -> String {
        format!("{}/{camera}/{label}", self.prefix)
    }

    /// The JPEG of the last event of `label` on `camera`, retained.
    pub fn snapshot(&self, camera: &str, label: &str) -> String {
        format!("{}/{camera}/{label}/snapshot", self.prefix)
    }

    /// Whether Home Assistant discovery is on.
    pub fn discovery_on(&self) -> bool {
        !self.discovery.is_empty()
    }

    /// Where Home Assistant announces `online` after it (re)starts.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery)
    }

    /// The device-based discovery topic of one device.
    pub fn ha_device(&self, object_id: &str) -> String {
        format!("{}/device/{object_id}/config", self.discovery)
    }

    /// The filter that returns every retained device config (ours among them).
    pub fn ha_device_filter(&self) -> String {
        self.ha_device("+")
    }

    /// The device object id of a `ha_device` topic, if `topic` is one.
    pub fn ha_device_id<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.discovery.as_str())?
            .strip_prefix("/device/")?
            .strip_suffix("/config")
            .filter(|id| !id.contains('/'))
    }
}

/// Whether `s` can be one topic level: not empty, no separator, wildcard or NUL.
pub fn is_topic_level(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.contains(['/', '+', '#', '\0'])
}

/// Frigate's event type for one of ours: a track that starts is `new`, one
/// that ends is `end`, everything else (counts, camera health, external
/// events) is an `update`.
pub fn event_type(e: &Event) -> &'static str {
    let k = e.kind.as_str();
    if k.ends_with("_left") || k.ends_with("_ended") || e.ended_at.is_some() {
        "end"
    } else if k.ends_with("_entered") || k.ends_with("_started") {
        "new"
    } else {
        "update"
    }
}

/// A retained state message derived from an event (counts, camera status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMsg {
    /// Where it goes (always retained).
    pub topic: String,
    /// The value as text (`3`, `online`).
    pub payload: String,
}

/// What the mirror remembers between events: counts per camera and label,
/// camera status, and the last `after` of each live track.
///
/// After a lost connection the outbox is replayed from the acknowledged
/// cursor, so an event may come through here twice. A replayed event (id not
/// above the newest applied) changes nothing; its state topics are
/// republished with the current values, so `+1` is never counted twice.
#[derive(Debug, Default)]
pub struct Derived {
    applied: i64,
    counts: HashMap<(String, String), i64>,
    status: HashMap<String, &'static str>,
    tracks: HashMap<(String, i64), Value>,
}

impl Derived {
    /// Starts handling event `id`; `true` when it is a replay.
    pub fn begin(&mut self, id: i64) -> bool {
        let replay = id <= self.applied;
        self.applied = self.applied.max(id);
        replay
    }

    /// The `<prefix>/events` message for `e`, remembering it as the track's
    /// last state (unless `replay`). `has_snapshot`: its JPEG was published.
    pub fn event_message(&mut self, e: &Event, has_snapshot: bool, replay: bool) -> Value {
        let kind = event_type(e);
        let after = after_of(e, has_snapshot);
        let key = e.track_id.map(|t| (e.camera_id.clone(), t));
        let before = key
            .as_ref()
            .and_then(|k| self.tracks.get(k))
            .filter(|_| kind != "new")
            .cloned()
            .unwrap_or_else(|| after.clone());
        if let Some(k) = key.filter(|_| !replay) {
            if kind == "end" {
                self.tracks.remove(&k);
            } else {
                if self.tracks.len() >= MAX_TRACKS {
                    self.tracks.clear();
                }
                self.tracks.insert(k, after.clone());
            }
        }
        json!({"type": kind, "event_id": e.id, "before": before, "after": after})
    }

    /// The retained states `e` changes: the camera's status for
    /// `camera_online`/`camera_offline`; the label's count for
    /// `count_changed` (its `payload.count`), `*_entered` (+1) and `*_left` (-1).
    /// On a `replay`, the current values of those topics instead.
    pub fn states(&mut self, topics: &Topics, e: &Event, replay: bool) -> Vec<StateMsg> {
        let mut out = Vec::new();
        if !is_topic_level(&e.camera_id) {
            return out;
        }
        let status = match e.kind.as_str() {
            "camera_online" => Some("online"),
            "camera_offline" => Some("offline"),
            _ => None,
        };
        if let Some(mut st) = status {
            let known = self.status.contains_key(&e.camera_id);
            if replay {
                st = self.status.get(&e.camera_id).copied().unwrap_or(st);
            } else if known || self.status.len() < MAX_COUNTS {
                self.status.insert(e.camera_id.clone(), st);
            }
            out.push(StateMsg {
                topic: topics.camera_status(&e.camera_id),
                payload: st.to_owned(),
            });
        }
        let label = label_of(e);
        if !is_topic_level(label) {
            return out;
        }
        let key = (e.camera_id.clone(), label.to_owned());
        let counted =
            e.kind == "count_changed" || e.kind.ends_with("_entered") || e.kind.ends_with("_left");
        if replay {
            if let Some(n) = self.counts.get(&key).filter(|_| counted) {
                out.push(StateMsg {
                    topic: topics.count(&e.camera_id, label),
                    payload: n.to_string(),
                });
            }
            return out;
        }
        let count = if e.kind == "count_changed" {
            e.payload
                .get("count")
                .and_then(Value::as_i64)
                .map(|n| n.max(0))
        } else if e.kind.ends_with("_entered") {
            Some(self.counts.get(&key).copied().unwrap_or(0) + 1)
        } else if e.kind.ends_with("_left") {
            Some((self.counts.get(&key).copied().unwrap_or(0) - 1).max(0))
        } else {
            None
        };
        let room = self.counts.len() < MAX_COUNTS || self.counts.contains_key(&key);
        if let Some(n) = count.filter(|_| room) {
            self.counts.insert(key, n);
            out.push(StateMsg {
                topic: topics.count(&e.camera_id, label),
                payload: n.to_string(),
            });
        }
        out
    }
}

/// The label counts and snapshots are filed under.
pub fn label_of(e: &Event) -> &str {
    e.label.as_deref().unwrap_or(DEFAULT_LABEL)
}

/// Frigate's object fields (times in seconds, box as corners) plus ours.
fn after_of(e: &Event, has_snapshot: bool) -> Value {
    let secs = |ms: i64| ms as f64 / 1000.0;
    json!({
        "id": e.id.to_string(),
        "event_id": e.id,
        "camera": e.camera_id,
        "label": e.label,
        "score": e.score,
        "top_score": e.score,
        "start_time": secs(e.started_at),
        "end_time": e.ended_at.map(secs),
        "box": e.bbox.map(|[x, y, w, h]| [x, y, x + w, y + h]),
        "has_snapshot": has_snapshot,
        "has_clip": false,
        "track_id": e.track_id,
        "event_type": e.kind,
        "model_id": e.model_id,
        "payload": e.payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, kind: &str, track: Option<i64>) -> Event {
        Event {
            id,
            camera_id: "door".into(),
            kind: kind.into(),
            label: Some("person".into()),
            score: Some(0.5),
            track_id: track,
            started_at: 1_700_000_000_500,
            ended_at: None,
            bbox: Some([10.0, 20.0, 30.0, 40.0]),
            snapshot_path: None,
            model_id: None,
            model_sha256: None,
            payload: json!({}),
            created_at: 0,
        }
    }

    #[test]
    fn types_map_to_frigate_and_before_follows_the_track() {
        let mut d = Derived::default();
        let new = d.event_message(&ev(1, "person_entered", Some(7)), false, false);
        assert_eq!(new["type"], "new");
        assert_eq!(new["before"], new["after"]);
        assert_eq!(new["after"]["id"], "1");
        assert_eq!(new["after"]["start_time"], 1_700_000_000.5);
        assert_eq!(new["after"]["box"], json!([10.0, 20.0, 40.0, 60.0]));
        let upd = d.event_message(&ev(2, "count_changed", Some(7)), true, false);
        assert_eq!(upd["type"], "update");
        assert_eq!(upd["before"]["event_id"], 1);
        assert_eq!(upd["after"]["has_snapshot"], true);
        let end = d.event_message(&ev(3, "person_left", Some(7)), false, false);
        assert_eq!(
            (end["type"].as_str(), end["event_id"].as_i64()),
            (Some("end"), Some(3))
        );
        assert_eq!(end["before"]["event_id"], 2);
        let again = d.event_message(&ev(4, "person_left", Some(7)), false, false);
        assert_eq!(
            again["before"]["event_id"], 4,
            "the track was forgotten at its end"
        );
    }

    fn apply(d: &mut Derived, t: &Topics, e: &Event) -> Vec<StateMsg> {
        let replay = d.begin(e.id);
        d.states(t, e, replay)
    }

    #[test]
    fn states_follow_counts_and_camera_health_and_replays_count_once() {
        let t = Topics::new("nvr", "homeassistant");
        let mut d = Derived::default();
        let one = apply(&mut d, &t, &ev(1, "person_entered", Some(1)));
        let count = |n: &str| StateMsg {
            topic: "nvr/door/person".into(),
            payload: n.into(),
        };
        assert_eq!(one, vec![count("1")]);
        apply(&mut d, &t, &ev(2, "person_entered", Some(2)));
        let left = apply(&mut d, &t, &ev(3, "person_left", Some(1)));
        assert_eq!(left, vec![count("1")]);
        let mut c = ev(4, "count_changed", None);
        c.payload = json!({"count": 5});
        assert_eq!(apply(&mut d, &t, &c), vec![count("5")]);
        let mut off = ev(5, "camera_offline", None);
        off.label = None;
        let status = |s: &str| StateMsg {
            topic: "nvr/door/status".into(),
            payload: s.into(),
        };
        assert_eq!(apply(&mut d, &t, &off), vec![status("offline")]);
        let mut on = ev(6, "camera_online", None);
        on.label = None;
        apply(&mut d, &t, &on);
        let mut bad = ev(7, "person_entered", None);
        bad.label = Some("a/b".into());
        assert!(
            apply(&mut d, &t, &bad).is_empty(),
            "a label that is not one topic level is skipped"
        );
        // A replay after a lost connection: current values, nothing counted twice.
        assert_eq!(
            apply(&mut d, &t, &ev(1, "person_entered", Some(1))),
            vec![count("5")]
        );
        assert_eq!(apply(&mut d, &t, &off), vec![status("online")]);
        assert_eq!(
            apply(&mut d, &t, &ev(8, "person_entered", Some(3))),
            vec![count("6")]
        );
        assert_eq!(
            t.ha_device_id("homeassistant/device/x_y/config"),
            Some("x_y")
        );
        assert_eq!(t.ha_device_id("homeassistant/sensor/x/config"), None);
    }
}
