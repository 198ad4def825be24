//! Home Assistant MQTT discovery, device-based (one config topic per camera).
//!
//! Each camera becomes a device with four entities: a person count sensor,
//! an occupancy binary sensor, a camera-online binary sensor and the last
//! snapshot as an image. Unique ids start with the node id, so two boxes
//! with a camera of the same name never collide.

use serde_json::{json, Value};

use super::topics::{Topics, DEFAULT_LABEL};
use crate::nvr::store::Camera;

/// An id made of what Home Assistant accepts in object ids (`[A-Za-z0-9_-]`).
pub fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The device object id of `camera` on node `node`: `<node>_<camera>`.
pub fn object_id(node: &str, camera: &str) -> String {
    format!("{node}_{}", sanitize(camera))
}

/// The retained device config of one camera.
pub fn device_config(topics: &Topics, node: &str, cam: &Camera) -> Value {
    let obj = object_id(node, &cam.id);
    let count_topic = topics.count(&cam.id, DEFAULT_LABEL);
    json!({
        "dev": {
            "ids": [obj],
            "name": cam.name,
            "mf": "OpenNVR",
            "mdl": "opennvr-edge camera",
            "sw": env!("CARGO_PKG_VERSION"),
        },
        "o": {"name": "opennvr-edge", "sw": env!("CARGO_PKG_VERSION")},
        // `stopped` (clean shutdown) must read as unavailable too, hence the template.
        "availability": [{
            "topic": topics.available(),
            "value_template": "{{ 'online' if value == 'online' else 'offline' }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }],
        "qos": 1,
        "cmps": {
            "person_count": {
                "p": "sensor",
                "name": "Person count",
                "unique_id": format!("{obj}_person_count"),
                "state_topic": count_topic,
                "state_class": "measurement",
                "unit_of_measurement": "persons",
                "icon": "mdi:account-group",
            },
            "occupancy": {
                "p": "binary_sensor",
                "name": "Occupancy",
                "unique_id": format!("{obj}_occupancy"),
                "device_class": "occupancy",
                "state_topic": count_topic,
                "value_template": "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}",
                "payload_on": "ON",
                "payload_off": "OFF",
            },
            "online": {
                "p": "binary_sensor",
                "name": "Camera online",
                "unique_id": format!("{obj}_online"),
                "device_class": "connectivity",
                "state_topic": topics.camera_status(&cam.id),
                "payload_on": "online",
                "payload_off": "offline",
            },
            "snapshot": {
                "p": "image",
                "name": "Last person",
                "unique_id": format!("{obj}_snapshot"),
                "image_topic": topics.snapshot(&cam.id, DEFAULT_LABEL),
                "content_type": "image/jpeg",
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sanitized_and_prefixed_by_the_node() {
        assert_eq!(object_id("box1", "front.door"), "box1_front_door");
        let cam = Camera {
            id: "front.door".into(),
            name: "Front".into(),
            source_url: String::new(),
            enabled: true,
            detect_fps: 5.0,
            record: true,
            record_mode: Default::default(),
            detect_url: None,
            motion: None,
            retention_days: 7,
            created_at: 0,
            updated_at: 0,
        };
        let c = device_config(&Topics::new("opennvr", "homeassistant"), "box1", &cam);
        assert_eq!(
            c["cmps"]["person_count"]["unique_id"],
            "box1_front_door_person_count"
        );
        assert_eq!(
            c["cmps"]["person_count"]["state_topic"],
            "opennvr/front.door/person"
        );
        assert_eq!(
            c["cmps"]["snapshot"]["image_topic"],
            "opennvr/front.door/person/snapshot"
        );
    }
}
