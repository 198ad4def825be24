//! The DeepStack / CodeProject.AI vision API, for the software that speaks
//! it (Frigate's `deepstack` detector, Blue Iris, Home Assistant's
//! integrations, Agent DVR): `POST /v1/vision/detection` and
//! `POST /v1/vision/face`, multipart with an `image` part, an optional
//! `min_confidence` and an `api_key` (checked only when the adapter has a
//! token). Answers `{success, predictions: [{label, confidence, x_min,
//! y_min, x_max, y_max}], count, inferenceMs, processMs, ...}` with
//! predictions best first, COCO labels and pixel coordinates; errors are
//! `{success: false, error, code}`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{status_of, with_retry_after};
use super::v1::{read_body, run, Image, Job, Parsed};
use super::AiState;
use crate::ai::{AiError, Params, Task};

/// DeepStack's and CodeProject.AI's default `min_confidence` for objects
/// (CodeProject.AI's; Frigate keeps what scores 0.4 or more).
const DEFAULT_MIN_CONFIDENCE: f32 = 0.4;

/// Darknet's COCO names where they differ from the COCO names DeepStack
/// answers with (and Frigate's label map expects).
const COCO_NAMES: [(&str, &str); 6] = [
    ("motorbike", "motorcycle"),
    ("aeroplane", "airplane"),
    ("sofa", "couch"),
    ("pottedplant", "potted plant"),
    ("diningtable", "dining table"),
    ("tvmonitor", "tv"),
];

fn coco(label: &str) -> &str {
    COCO_NAMES
        .iter()
        .find(|(ours, _)| *ours == label)
        .map_or(label, |(_, theirs)| theirs)
}

/// Why a DeepStack request failed.
enum Failure {
    Ai(AiError),
    Unauthorized,
}

impl From<AiError> for Failure {
    fn from(e: AiError) -> Self {
        Failure::Ai(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Failure::Ai(e) => (status_of(e), e.to_string()),
            Failure::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "invalid api_key (or Authorization: Bearer)".to_owned(),
            ),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %message, "DeepStack request failed");
        }
        let body = json!({"success": false, "error": message, "code": status.as_u16()});
        let resp = (status, Json(body)).into_response();
        match self {
            // The same headers as the rest of the port's refusals.
            Failure::Ai(e) => with_retry_after(&e, resp),
            Failure::Unauthorized => {
                let mut resp = resp;
                resp.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
                resp
            }
        }
    }
}

/// A request's image, `min_confidence`, and whether it may run.
struct Form {
    image: axum::body::Bytes,
    min_confidence: Option<f32>,
}

fn form_of(parsed: Parsed, st: &AiState, header_ok: bool) -> Result<Form, Failure> {
    let Parsed::Form { file, fields } = parsed else {
        return Err(AiError::UnsupportedMedia(
            "send multipart/form-data with an `image` part".into(),
        )
        .into());
    };
    let (mut min_confidence, mut api_key) = (None, None);
    for (name, text) in fields {
        match name.as_str() {
            "min_confidence" => {
                let v: f32 = text
                    .trim()
                    .parse()
                    .map_err(|_| AiError::BadRequest("min_confidence must be a number".into()))?;
                min_confidence = Some(v);
            }
            "api_key" => api_key = Some(text),
            other => {
                return Err(AiError::BadRequest(format!("unexpected form field {other:?}")).into())
            }
        }
    }
    if !header_ok && st.auth.check_secret(api_key.as_deref()).is_err() {
        return Err(Failure::Unauthorized);
    }
    let image =
        file.ok_or_else(|| AiError::BadRequest("an `image` file part is required".into()))?;
    Ok(Form {
        image,
        min_confidence,
    })
}

/// Reads, authorizes and runs one request for `task`; returns the answer
/// and the time the handler took (ms).
async fn serve(st: Arc<AiState>, req: Request, task: Task) -> Result<(Value, u64), Failure> {
    let t0 = Instant::now();
    let client = crate::serve::peer_ip(req.extensions());
    let header_ok = st
        .auth
        .check_header(req.headers().get(header::AUTHORIZATION))
        .is_ok();
    let mut ticket = st.engine.admit(client)?;
    let parsed = read_body(req, st.max_body, &mut ticket, &["image"]).await?;
    let form = form_of(parsed, &st, header_ok)?;
    let min = form.min_confidence.unwrap_or(DEFAULT_MIN_CONFIDENCE);
    let params = match task {
        Task::FaceDetection => Params {
            min_confidence: Some(min),
            ..Params::default()
        },
        _ => Params {
            confidence: Some(min),
            ..Params::default()
        },
    };
    let job = Job {
        task,
        image: Image::Bytes(form.image),
        camera: None,
        timestamp_ms: None,
        params,
    };
    let done = run(&st, ticket, client, job).await?;
    Ok((done.answer, t0.elapsed().as_millis() as u64))
}

/// Sorts best first and fills the common fields around `predictions`.
fn answer(mut predictions: Vec<Value>, inference_ms: u64, process_ms: u64, command: &str) -> Value {
    predictions.sort_by(|a, b| {
        let c = |v: &Value| v["confidence"].as_f64().unwrap_or(0.0);
        c(b).total_cmp(&c(a))
    });
    let mut seen: Vec<&str> = Vec::new();
    for p in &predictions {
        let l = p["label"].as_str().unwrap_or("");
        if !seen.contains(&l) {
            seen.push(l);
        }
    }
    let message = if predictions.is_empty() {
        "No objects found".to_owned()
    } else {
        format!("Found {}", seen.join(", "))
    };
    json!({
        "success": true,
        "message": message,
        "count": predictions.len(),
        "predictions": predictions,
        "inferenceMs": inference_ms,
        "processMs": process_ms,
        "analysisRoundTripMs": process_ms,
        "duration": 0,
        "code": 200,
        "command": command,
        "moduleId": "opennvr-edge",
        "moduleName": "opennvr-edge",
        "inferenceDevice": "CPU",
        "processedBy": "opennvr-edge",
        "timestampUTC": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default(),
    })
}

fn corners(b: &Value) -> (i64, i64, i64, i64) {
    let n = |i: usize| {
        b.get(i)
            .and_then(Value::as_f64)
            .map_or(0, |v| v.round() as i64)
    };
    (n(0), n(1), n(2), n(3))
}

/// Runs `task` for the request and answers DeepStack's shape, with the
/// predictions `predict` makes of the task's answer.
async fn respond(
    st: Arc<AiState>,
    req: Request,
    task: Task,
    command: &str,
    predict: fn(&Value) -> Vec<Value>,
) -> Response {
    match serve(st, req, task).await {
        Ok((v, process_ms)) => {
            let ms = v["latency_ms"].as_u64().unwrap_or(0);
            Json(answer(predict(&v), ms, process_ms, command)).into_response()
        }
        Err(f) => f.into_response(),
    }
}

/// Detections (`[x, y, w, h]` boxes) as predictions with COCO names.
fn objects(v: &Value) -> Vec<Value> {
    let dets = v["detections"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    dets.iter()
        .map(|d| {
            let (x, y, w, h) = corners(&d["bbox"]);
            json!({"label": coco(d["label"].as_str().unwrap_or("")),
                   "confidence": d["confidence"],
                   "x_min": x, "y_min": y, "x_max": x + w, "y_max": y + h})
        })
        .collect()
}

/// Faces (`[x1, y1, x2, y2]` boxes) as predictions, with age and gender.
fn faces(v: &Value) -> Vec<Value> {
    let faces = v["faces"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    faces
        .iter()
        .map(|f| {
            let (x1, y1, x2, y2) = corners(&f["bbox"]);
            let mut p = json!({"label": "face", "confidence": f["confidence"],
                "x_min": x1, "y_min": y1, "x_max": x2, "y_max": y2});
            for key in ["age", "gender"] {
                if let Some(v) = f.get(key) {
                    p[key] = v.clone();
                }
            }
            p
        })
        .collect()
}

/// `POST /v1/vision/detection`: every COCO class the detector finds.
pub async fn detection(State(st): State<Arc<AiState>>, req: Request) -> Response {
    respond(st, req, Task::ObjectDetection, "detect", objects).await
}

/// `POST /v1/vision/face`: faces from our face model, with age and gender
/// when the attribute models are installed.
pub async fn face(State(st): State<Arc<AiState>>, req: Request) -> Response {
    respond(st, req, Task::FaceDetection, "detect-faces", faces).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_sort_best_first_and_labels_are_cocos() {
        assert_eq!(coco("motorbike"), "motorcycle");
        assert_eq!(coco("person"), "person");
        let p = vec![
            json!({"label": "car", "confidence": 0.5}),
            json!({"label": "person", "confidence": 0.9}),
            json!({"label": "car", "confidence": 0.7}),
        ];
        let a = answer(p, 12, 15, "detect");
        let c: Vec<f64> = a["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["confidence"].as_f64().unwrap())
            .collect();
        assert_eq!(c, [0.9, 0.7, 0.5]);
        assert_eq!(a["count"], 3);
        assert_eq!(a["message"], "Found person, car");
        assert_eq!(
            answer(vec![], 0, 0, "detect")["message"],
            "No objects found"
        );
    }
}
