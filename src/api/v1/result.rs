//! Our task answers in contract v1's detection convention (§5.1): each
//! detection a `label`, `confidence`, a `bbox` of `{x, y, w, h}` in 0..1 of
//! the frame, `track_id` and `attributes`; plus `frame_dimensions`. The
//! `task` and `count` are kept beside them (the convention allows extras).
//! `scene_description` has no boxes: its `caption` rides beside an empty list.

use serde_json::{json, Map, Value};

use crate::ai::Task;

/// A coordinate in 0..1, rounded to 6 decimals.
fn unit(v: f64) -> f64 {
    (v.clamp(0.0, 1.0) * 1e6).round() / 1e6
}

/// `[x, y, w, h]` in pixels to the normalized box, kept inside the frame.
fn normalized(x: f64, y: f64, w: f64, h: f64, fw: f64, fh: f64) -> Value {
    let (nx, ny) = (unit(x / fw), unit(y / fh));
    json!({"x": nx, "y": ny, "w": unit(w / fw).min(unit(1.0 - nx)), "h": unit(h / fh).min(unit(1.0 - ny))})
}

fn num(v: &Value, i: usize) -> f64 {
    v.get(i).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Converts one task answer (the root API's shape) for a `width` x `height` frame.
pub fn to_v1(task: Task, answer: &Value, width: u32, height: u32) -> Value {
    let (fw, fh) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let detections: Vec<Value> = if task == Task::FaceDetection {
        let faces = answer["faces"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        faces
            .iter()
            .map(|f| {
                let b = &f["bbox"];
                let (x1, y1) = (num(b, 0), num(b, 1));
                let mut attributes = Map::new();
                for key in ["age", "gender", "gender_confidence", "landmarks"] {
                    if let Some(v) = f.get(key) {
                        attributes.insert(key.into(), v.clone());
                    }
                }
                json!({
                    "label": "face",
                    "confidence": f["confidence"],
                    "bbox": normalized(x1, y1, num(b, 2) - x1, num(b, 3) - y1, fw, fh),
                    "track_id": null,
                    "attributes": attributes,
                })
            })
            .collect()
    } else {
        let dets = answer["detections"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        dets.iter()
            .map(|d| {
                let b = &d["bbox"];
                json!({
                    "label": d.get("label").and_then(Value::as_str).unwrap_or("person"),
                    "confidence": d["confidence"],
                    "bbox": normalized(num(b, 0), num(b, 1), num(b, 2), num(b, 3), fw, fh),
                    "track_id": d.get("track_id").cloned().unwrap_or(Value::Null),
                    "attributes": {"bbox_px": b},
                })
            })
            .collect()
    };
    let mut out = json!({
        "task": task.name(),
        "count": detections.len(),
        "detections": detections,
        "frame_dimensions": {"w": width, "h": height},
    });
    if task == Task::SceneDescription {
        out["caption"] = answer["caption"].clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_normalized_and_stay_inside_the_frame() {
        let answer = json!({"detections": [
            {"bbox": [100, 50, 200, 100], "confidence": 0.9, "label": "dog"},
            {"bbox": [350, 150, 100, 100], "confidence": 0.5, "track_id": 3}]});
        let v = to_v1(Task::PersonCounting, &answer, 400, 200);
        assert_eq!(v["count"], 2);
        assert_eq!(v["frame_dimensions"], json!({"w": 400, "h": 200}));
        let d = &v["detections"];
        assert_eq!(
            d[0]["bbox"],
            json!({"x": 0.25, "y": 0.25, "w": 0.5, "h": 0.5})
        );
        assert_eq!(d[0]["label"], "dog");
        assert_eq!(d[1]["label"], "person");
        assert_eq!(d[1]["track_id"], 3);
        assert_eq!(
            d[1]["bbox"],
            json!({"x": 0.875, "y": 0.75, "w": 0.125, "h": 0.25})
        );
    }

    #[test]
    fn a_scene_is_its_caption_and_no_boxes() {
        let answer = json!({"task": "scene_description", "caption": "Day. Nothing detected.",
            "model_id": "detections:yolov4-tiny-416", "latency_ms": 40, "executed_at": 1});
        let v = to_v1(Task::SceneDescription, &answer, 100, 100);
        assert_eq!(v["caption"], "Day. Nothing detected.");
        assert_eq!(v["count"], 0);
        assert_eq!(v["detections"], json!([]));
    }

    #[test]
    fn faces_carry_their_attributes() {
        let answer = json!({"faces": [{"bbox": [10, 20, 30, 60], "confidence": 0.99,
            "age": 31, "gender": "F", "landmarks": [[1, 2]]}]});
        let v = to_v1(Task::FaceDetection, &answer, 100, 100);
        let f = &v["detections"][0];
        assert_eq!(f["label"], "face");
        assert_eq!(f["bbox"], json!({"x": 0.1, "y": 0.2, "w": 0.2, "h": 0.4}));
        assert_eq!(f["attributes"]["age"], 31);
        assert_eq!(f["attributes"]["gender"], "F");
    }
}
