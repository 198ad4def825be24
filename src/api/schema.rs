//! `GET /schema?task=...`: JSON Schemas of a task's request and response,
//! so agents and integrators can discover the contract at run time;
//! without `task`, every task's as `{schemas: {<task>: ...}}` (what
//! upstream's web UI asks for).
//!
//! Written by hand rather than derived (`schemars`): one Rust result type
//! serves three tasks whose schemas differ (`task` constants, `track_id`
//! only on counting, the top-level best box only on person detection), and
//! the request's options may sit in three places under two spellings, which
//! no single Rust type describes. A unit test below holds these schemas to
//! what the result types really serialise.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::{respond, ApiError};
use crate::ai::task::{MAX_CLASSES, MAX_DETECTIONS_LIMIT, MAX_FACES_LIMIT, SCENE_ENGINES};
use crate::ai::{AiError, Task};

/// The options, as properties (also valid straight inside `data`).
fn option_properties() -> Value {
    let unit = json!({"type": "number", "minimum": 0, "maximum": 1});
    json!({
        "confidence": unit,
        "confidence_threshold": {"type": "number", "minimum": 0, "maximum": 1,
                                 "description": "alias of confidence (KAI-C's spelling)"},
        "iou": unit,
        "max_detections": {"type": "integer", "minimum": 1, "maximum": MAX_DETECTIONS_LIMIT},
        "model": {"type": "string", "maxLength": 128},
        "classes": {"type": "array", "items": {"type": "string", "maxLength": 64},
                    "maxItems": MAX_CLASSES},
        "min_confidence": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "face_detection: minimum face score"},
        "max_faces": {"type": "integer", "minimum": 1, "maximum": MAX_FACES_LIMIT,
                      "description": "face_detection: cap on reported faces"},
        "attributes": {"type": "boolean",
                       "description": "face_detection: false skips age and gender"},
        "engine": {"enum": SCENE_ENGINES,
                   "description": "scene_description: blip (a captioning model, the default when installed) or detections (the sentence grounded in the detectors)"}
    })
}

fn request_schema(task: Task) -> Value {
    let params = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": option_properties(),
        "description": "an option given in several places must agree, or the request is a 400"
    });
    let mut data_props = json!({
        "frame": {
            "type": "object",
            "oneOf": [{"required": ["uri"]}, {"required": ["b64"]}],
            "additionalProperties": false,
            "properties": {
                "uri": {"type": "string", "pattern": "^opennvr://"},
                "b64": {"type": "string", "contentEncoding": "base64"},
                "timestamp_ms": {"type": "integer"}
            }
        },
        "camera_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "params": params
    });
    if let (Some(d), Some(o)) = (data_props.as_object_mut(), option_properties().as_object()) {
        d.extend(o.clone());
    }
    let data = json!({
        "type": "object",
        "required": ["frame"],
        "additionalProperties": false,
        "description": "options may also sit here directly, as upstream's legacy adapters read them",
        "properties": data_props
    });
    let mut input = data.clone();
    input["description"] = json!("the same object as data (upstream's name); give one of the two");
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["task"],
        "oneOf": [{"required": ["data"]}, {"required": ["input"]}],
        "additionalProperties": false,
        "properties": {
            "task": {"const": task.name()},
            "data": data,
            "input": input,
            "params": params
        }
    })
}

fn executed_at() -> Value {
    json!({"type": "integer", "description": "epoch milliseconds"})
}

fn face_response_schema() -> Value {
    let point =
        json!({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["task", "faces", "face_count", "latency_ms", "executed_at", "model_id"],
        "properties": {
            "task": {"const": "face_detection"},
            "faces": {"type": "array", "items": {
                "type": "object",
                "required": ["bbox", "confidence", "landmarks"],
                "properties": {
                    "bbox": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                             "description": "[x1, y1, x2, y2] in source pixels"},
                    "confidence": {"type": "number"},
                    "landmarks": {"type": "array", "items": point, "minItems": 5, "maxItems": 5,
                                  "description": "image-left eye, image-right eye, nose tip, mouth left, mouth right, in whole pixels"},
                    "age": {"type": "integer", "minimum": 0,
                            "description": "expected age in whole years; absent with attributes: false"},
                    "gender": {"enum": ["M", "F"]},
                    "gender_confidence": {"type": "number"}
                }
            }},
            "face_count": {"type": "integer", "minimum": 0},
            "latency_ms": {"type": "integer"},
            "executed_at": executed_at(),
            "model_id": {"type": "string"}
        }
    })
}

/// Upstream's scene answer: exactly these fields (its model forbids others).
fn scene_response_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["task", "caption", "model_id", "latency_ms", "executed_at"],
        "additionalProperties": false,
        "properties": {
            "task": {"const": "scene_description"},
            "caption": {"type": "string", "minLength": 1,
                        "description": "one plain sentence about the frame"},
            "model_id": {"type": "string", "minLength": 1,
                         "description": "the captioning model's id, or detections:<detector>[+<face model>] for the grounded description"},
            "latency_ms": {"type": "integer"},
            "executed_at": executed_at()
        }
    })
}

fn response_schema(task: Task) -> Value {
    match task {
        Task::FaceDetection => return face_response_schema(),
        Task::SceneDescription => return scene_response_schema(),
        _ => {}
    }
    let bbox = json!({"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                      "description": "[x, y, w, h] in source pixels"});
    let mut det = json!({
        "type": "object",
        "required": ["bbox", "confidence"],
        "properties": {
            "bbox": bbox,
            "confidence": {"type": "number"},
            "label": {"type": "string"}
        }
    });
    if task == Task::PersonCounting {
        det["required"] = json!(["bbox", "confidence", "track_id"]);
        det["properties"]["track_id"] = json!({"type": ["integer", "null"]});
    }
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["task", "count", "confidence", "detections", "latency_ms", "executed_at", "model_id"],
        "properties": {
            "task": {"const": task.name()},
            "count": {"type": "integer", "minimum": 0},
            "confidence": {"type": "number", "description": "mean of the detections' confidences; 0 when there are none"},
            "detections": {"type": "array", "items": det},
            "latency_ms": {"type": "integer"},
            "executed_at": executed_at(),
            "model_id": {"type": "string"}
        }
    });
    if task == Task::PersonDetection {
        let p = &mut schema["properties"];
        p["confidence"] =
            json!({"type": "number", "description": "the best detection's; 0 when there is none"});
        p["label"] = json!({"const": "person"});
        p["bbox"] = json!({"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                           "description": "the best detection's [x, y, w, h]; absent when there is none"});
        schema["required"] = json!([
            "task",
            "count",
            "confidence",
            "label",
            "detections",
            "latency_ms",
            "executed_at",
            "model_id"
        ]);
    }
    schema
}

/// One task's entry: ours (`request`, `response`) plus the fields upstream's
/// web UI reads (`task`, `description`, `response_fields`: the response's
/// properties).
fn task_schemas(task: Task) -> Value {
    let response = response_schema(task);
    json!({
        "task": task.name(),
        "description": task.description(),
        "response_fields": response["properties"],
        "request": request_schema(task),
        "response": response,
    })
}

/// With `task`: `{task, description, response_fields, request, response}` for it (an unknown
/// task is a 404, like upstream's). Without: `{schemas: {<task>: {...}}}`
/// for every task.
pub async fn schema(Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let Some(name) = q.get("task") else {
        let all: Map<String, Value> = Task::ALL
            .into_iter()
            .map(|t| (t.name().to_owned(), task_schemas(t)))
            .collect();
        return Ok(Json(json!({ "schemas": all })).into_response());
    };
    match Task::parse(name) {
        Ok(task) => Ok(Json(task_schemas(task)).into_response()),
        Err(e @ AiError::UnknownTask(_)) => Ok(respond(StatusCode::NOT_FOUND, &e)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::task::{DetectionOut, DetectionResult, FaceOut, FaceResult, SceneResult};

    /// Every key `value` has is in `schema`'s properties, every required key
    /// is there, and integers are where the schema says integer.
    fn conforms(value: &Value, schema: &Value, at: &str) {
        let props = schema["properties"].as_object().expect(at);
        for key in schema["required"].as_array().into_iter().flatten() {
            let k = key.as_str().unwrap();
            assert!(
                value.get(k).is_some(),
                "{at}: required {k} missing in {value}"
            );
        }
        for (k, v) in value.as_object().expect(at) {
            let s = props
                .get(k)
                .unwrap_or_else(|| panic!("{at}: {k} not in schema"));
            if s["type"] == "integer" {
                assert!(v.is_i64() || v.is_u64(), "{at}.{k}: {v} is no integer");
            }
            if s["type"] == "array" && s["items"]["type"] == "object" {
                for item in v.as_array().unwrap() {
                    conforms(item, &s["items"], &format!("{at}.{k}[]"));
                }
            }
            if s["type"] == "array" && s["items"]["type"] == "array" {
                for pair in v
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|p| p.as_array().unwrap())
                {
                    assert!(pair.is_i64(), "{at}.{k}: {pair} is no integer");
                }
            }
        }
    }

    fn detections(task: Task) -> Value {
        let det = DetectionOut {
            bbox: [1, 2, 3, 4],
            confidence: 0.5,
            track_id: (task == Task::PersonCounting).then_some(Some(7)),
            label: (task != Task::PersonCounting).then(|| "person".into()),
        };
        let r = DetectionResult {
            task: task.name(),
            count: 1,
            confidence: 0.5,
            label: None,
            bbox: None,
            detections: vec![det],
            latency_ms: 3,
            executed_at: 1_764_345_600_000,
            model_id: "m".into(),
        };
        let r = if task == Task::PersonDetection {
            r.best()
        } else {
            r
        };
        serde_json::to_value(r).unwrap()
    }

    #[test]
    fn the_schemas_describe_what_the_result_types_serialise() {
        for task in [
            Task::PersonCounting,
            Task::PersonDetection,
            Task::ObjectDetection,
        ] {
            conforms(&detections(task), &response_schema(task), task.name());
        }
        let face = FaceResult {
            task: "face_detection",
            faces: vec![FaceOut {
                bbox: [1, 2, 3, 4],
                confidence: 0.9,
                landmarks: [[1, 2]; 5],
                age: Some(30),
                gender: Some("F".into()),
                gender_confidence: Some(0.8),
            }],
            face_count: 1,
            latency_ms: 3,
            executed_at: 1_764_345_600_000,
            model_id: "centerface".into(),
        };
        let v = serde_json::to_value(face).unwrap();
        conforms(&v, &response_schema(Task::FaceDetection), "face_detection");
        let scene = SceneResult {
            task: "scene_description",
            caption: "Day. A person in the centre.".into(),
            model_id: "detections:yolov4-tiny-416".into(),
            latency_ms: 3,
            executed_at: 1_764_345_600_000,
        };
        let v = serde_json::to_value(scene).unwrap();
        let schema = response_schema(Task::SceneDescription);
        conforms(&v, &schema, "scene_description");
        assert_eq!(
            v.as_object().unwrap().len(),
            schema["properties"].as_object().unwrap().len(),
            "upstream's five fields, no more"
        );
    }

    #[test]
    fn every_option_is_in_the_request_schema() {
        let req = request_schema(Task::ObjectDetection);
        for name in crate::ai::Params::NAMES {
            let p = &req["properties"];
            assert!(p["params"]["properties"].get(name).is_some(), "{name}");
            assert!(p["data"]["properties"].get(name).is_some(), "{name}");
            assert!(
                p["input"]["properties"]["params"]["properties"]
                    .get(name)
                    .is_some(),
                "{name}"
            );
        }
    }
}
