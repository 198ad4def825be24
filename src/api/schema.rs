//! `GET /schema?task=...`: JSON Schemas of a task's request and response,
//! so agents and integrators can discover the contract at run time.

use std::collections::HashMap;

use axum::extract::Query;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::ai::task::{MAX_CLASSES, MAX_DETECTIONS_LIMIT, MAX_FACES_LIMIT};
use crate::ai::{AiError, Task};

fn request_schema(task: Task) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["task", "data"],
        "properties": {
            "task": {"const": task.name()},
            "data": {
                "type": "object",
                "description": "`input` is accepted as a synonym",
                "required": ["frame"],
                "properties": {
                    "frame": {
                        "type": "object",
                        "oneOf": [{"required": ["uri"]}, {"required": ["b64"]}],
                        "properties": {
                            "uri": {"type": "string", "pattern": "^opennvr://"},
                            "b64": {"type": "string", "contentEncoding": "base64"},
                            "timestamp_ms": {"type": "integer"}
                        }
                    },
                    "camera_id": {"type": "string", "maxLength": 128}
                }
            },
            "params": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "iou": {"type": "number", "minimum": 0, "maximum": 1},
                    "max_detections": {"type": "integer", "minimum": 1, "maximum": MAX_DETECTIONS_LIMIT},
                    "model": {"type": "string", "maxLength": 128},
                    "classes": {"type": "array", "items": {"type": "string", "maxLength": 64},
                                "maxItems": MAX_CLASSES},
                    "min_confidence": {"type": "number", "minimum": 0, "maximum": 1,
                                       "description": "face_detection: minimum face score"},
                    "max_faces": {"type": "integer", "minimum": 1, "maximum": MAX_FACES_LIMIT,
                                  "description": "face_detection: cap on reported faces"},
                    "attributes": {"type": "boolean",
                                   "description": "face_detection: false skips age and gender"}
                }
            }
        }
    })
}

fn face_response_schema() -> Value {
    let point = json!({"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2});
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
                                  "description": "image-left eye, image-right eye, nose tip, mouth left, mouth right"},
                    "age": {"type": "number", "description": "expected age in years; absent with attributes: false"},
                    "gender": {"enum": ["M", "F"]},
                    "gender_confidence": {"type": "number"}
                }
            }},
            "face_count": {"type": "integer", "minimum": 0},
            "latency_ms": {"type": "integer"},
            "executed_at": {"type": "string", "format": "date-time"},
            "model_id": {"type": "string"}
        }
    })
}

fn response_schema(task: Task) -> Value {
    if task == Task::FaceDetection {
        return face_response_schema();
    }
    let mut det = json!({
        "type": "object",
        "required": ["bbox", "confidence"],
        "properties": {
            "bbox": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
                     "description": "[x, y, w, h] in source pixels"},
            "confidence": {"type": "number"},
            "label": {"type": "string"}
        }
    });
    if task == Task::PersonCounting {
        det["required"] = json!(["bbox", "confidence", "track_id"]);
        det["properties"]["track_id"] = json!({"type": ["integer", "null"]});
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["task", "count", "confidence", "detections", "latency_ms", "executed_at", "model_id"],
        "properties": {
            "task": {"const": task.name()},
            "count": {"type": "integer", "minimum": 0},
            "confidence": {"type": "number"},
            "detections": {"type": "array", "items": det},
            "latency_ms": {"type": "integer"},
            "executed_at": {"type": "string", "format": "date-time"},
            "model_id": {"type": "string"}
        }
    })
}

/// Answers with `{task, request, response}` schemas for one task.
pub async fn schema(Query(q): Query<HashMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let name = q
        .get("task")
        .ok_or_else(|| AiError::BadRequest("query parameter `task` is required".into()))?;
    let task = Task::parse(name)?;
    Ok(Json(json!({
        "task": task.name(),
        "request": request_schema(task),
        "response": response_schema(task),
    })))
}
