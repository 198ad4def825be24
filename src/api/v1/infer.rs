//! `POST /v1/infer`: one frame, as contract v1's clients send it. JSON
//! `{frame_b64, task?, camera_id?, timestamp_ms?, params?, ...flat params}`
//! (KAI-C and OpenNVR's app SDK put params at the top level) or multipart
//! `frame` + `params` (JSON) and optional text fields. The answer is the
//! envelope `{status: "ok", model_name, model_version, inference_ms,
//! result}`; failures are the §7 envelope.
//!
//! [`run`] is also how the stream and the DeepStack routes reach the engine.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::body::{self, Parsed};
use super::envelope::V1Error;
use super::result::to_v1;
use crate::ai::{Admission, AiError, Params, Task};
use crate::api::options::gather;
use crate::api::request::camera_id_of;
use crate::api::AiState;
use crate::frame::{decode_b64, decode_image, Frame};

/// The task a request without one gets: the detector's whole answer.
pub const DEFAULT_TASK: Task = Task::ObjectDetection;

/// The frame's bytes, still encoded.
#[derive(Debug)]
pub enum Image {
    Bytes(Bytes),
    /// Base64, decoded on the blocking pool.
    B64(String),
}

/// One inference to run.
#[derive(Debug)]
pub struct Job {
    /// What to run.
    pub task: Task,
    /// The frame, still encoded.
    pub image: Image,
    /// The camera it came from (keys `person_counting`'s tracker).
    pub camera: Option<String>,
    /// Its capture time, for the tracker's clock.
    pub timestamp_ms: Option<i64>,
    /// The task's options.
    pub params: Params,
}

/// What a job produced: the task's answer (the root API's shape) and the
/// frame's size.
#[derive(Debug)]
pub struct Done {
    /// The root API's answer for the task.
    pub answer: Value,
    /// The decoded frame's width, pixels (v1 boxes are fractions of it).
    pub width: u32,
    /// The decoded frame's height, pixels.
    pub height: u32,
}

/// Runs `job` for an admitted request: decoding and inference on the
/// blocking pool, through the engine's runner gate.
pub async fn run(
    st: &Arc<AiState>,
    ticket: Admission,
    client: IpAddr,
    job: Job,
) -> Result<Done, AiError> {
    job.params.validate()?;
    let max_pixels = st.max_pixels;
    st.engine
        .submit_admitted(ticket, move |engine| {
            let decoded = match &job.image {
                Image::Bytes(b) => decode_image(b, max_pixels),
                Image::B64(s) => decode_b64(s).and_then(|b| decode_image(&b, max_pixels)),
            }
            .map_err(AiError::from);
            let image = decoded.inspect_err(|e| {
                engine.infer_metrics().record_failure(Some(job.task), e);
            })?;
            let (width, height) = image.dimensions();
            let frame = Frame {
                image: image.into(),
                camera: job.camera,
                timestamp_ms: job.timestamp_ms,
            };
            let answer = engine.run(job.task, &frame, &job.params, client)?;
            Ok(Done {
                answer,
                width,
                height,
            })
        })
        .await
}

/// Task, camera and params from a flat map of a request's fields: the
/// envelope keys are taken out, and the rest and `params` (an object) are
/// options under the root API's rules (`api::options`): the contract's
/// `confidence_threshold` is our `confidence`, an option given twice must
/// agree, an unknown key is a 400 that names it.
pub fn split_params(mut m: Map<String, Value>) -> Result<(Task, Option<String>, Params), AiError> {
    let mut inner = match m.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(inner)) => inner,
        Some(_) => return Err(AiError::BadRequest("`params` must be a JSON object".into())),
    };
    // `task` and `camera_id` may ride in `params` (the contract's multipart).
    let mut take = |key: &str| match (m.remove(key), inner.remove(key)) {
        (Some(_), Some(_)) => Err(AiError::BadRequest(format!(
            "`{key}` is given both in params and beside it"
        ))),
        (a, b) => Ok(a.or(b)),
    };
    let task = match take("task")? {
        None | Some(Value::Null) => DEFAULT_TASK,
        Some(Value::String(t)) => Task::parse(&t)?,
        Some(_) => return Err(AiError::BadRequest("`task` must be a string".into())),
    };
    let camera = take("camera_id")?.map(camera_id_of).transpose()?.flatten();
    // The root API's rules: aliases, agreement, unknown keys named.
    let params = gather(&[("params".into(), &inner), ("body".into(), &m)])?;
    Ok((task, camera, params))
}

/// A form field's text as JSON when it parses (`0.5`, `["person"]`), else
/// as a string.
fn field_value(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

fn timestamp(v: Option<Value>) -> Result<Option<i64>, AiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| AiError::BadRequest("`timestamp_ms` must be an integer".into())),
    }
}

/// The job a `/v1/infer` body describes.
fn job_of(parsed: Parsed) -> Result<Job, AiError> {
    let (image, mut m) = match parsed {
        Parsed::Json(mut m) => match m.remove("frame_b64") {
            Some(Value::String(s)) if !s.is_empty() => (Image::B64(s), m),
            _ => {
                return Err(AiError::BadRequest(
                    "the JSON body must include `frame_b64` (a base64 JPEG or PNG)".into(),
                ))
            }
        },
        Parsed::Form { file, fields } => {
            let file = file.ok_or_else(|| {
                AiError::BadRequest("the form must include a `frame` file part".into())
            })?;
            let mut m = Map::new();
            for (k, text) in fields {
                let v = match k.as_str() {
                    "params" => serde_json::from_str(&text)
                        .map_err(|e| AiError::BadRequest(format!("`params` is not JSON: {e}")))?,
                    // Names, never numbers: camera `7` is the camera "7".
                    "task" | "camera_id" => Value::String(text),
                    _ => field_value(text),
                };
                if m.insert(k.clone(), v).is_some() {
                    return Err(AiError::BadRequest(format!("field `{k}` repeats")));
                }
            }
            (Image::Bytes(file), m)
        }
    };
    let timestamp_ms = timestamp(m.remove("timestamp_ms"))?;
    let (task, camera, params) = split_params(m)?;
    Ok(Job {
        task,
        image,
        camera,
        timestamp_ms,
        params,
    })
}

/// The contract's `model_version`: the first 12 hex digits of the weights'
/// sha256 (the full one is `/v1/capabilities`' fingerprint).
pub fn model_version(st: &AiState, model_id: &str) -> String {
    st.engine
        .model_sha256(model_id)
        .map(|s| s.chars().take(12).collect())
        .unwrap_or_else(|| "unknown".into())
}

/// Answers `POST /v1/infer`. Admission comes first: a full queue is a 503
/// (`overloaded`, `queue_full`, transient, `retry_after_ms`) before the
/// body is read.
pub async fn infer(State(st): State<Arc<AiState>>, req: Request) -> Result<Json<Value>, V1Error> {
    let client = crate::serve::peer_ip(req.extensions());
    let mut ticket = st.engine.admit(client)?;
    let parsed = body::read(req, st.max_body, &mut ticket, &["frame", "file", "image"]).await?;
    let job = job_of(parsed)?;
    let task = job.task;
    let done = run(&st, ticket, client, job).await?;
    let model = done.answer["model_id"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    Ok(Json(json!({
        "status": "ok",
        "model_version": model_version(&st, &model),
        "model_name": model,
        "inference_ms": done.answer["latency_ms"].as_u64().unwrap_or(0),
        "result": to_v1(task, &done.answer, done.width, done.height),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(v: Value) -> Result<(Task, Option<String>, Params), AiError> {
        split_params(v.as_object().unwrap().clone())
    }

    #[test]
    fn flat_and_nested_params_and_the_contracts_names() {
        let (t, cam, p) = split(json!({"task": "person_detection", "camera_id": "c1",
            "confidence_threshold": 0.7, "params": {"classes": ["person"]}}))
        .unwrap();
        assert_eq!(t, Task::PersonDetection);
        assert_eq!(cam.as_deref(), Some("c1"));
        assert_eq!(p.confidence, Some(0.7));
        assert_eq!(p.classes.unwrap(), ["person"]);
        let (t, _, p) = split(json!({})).unwrap();
        assert_eq!(t, DEFAULT_TASK);
        assert!(p.confidence.is_none());
    }

    #[test]
    fn unknown_repeated_and_clashing_keys_are_refused_by_name() {
        let e = split(json!({"confidence": 0.5, "colour": "red"})).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = split(json!({"confidence": 0.5, "confidence_threshold": 0.6})).unwrap_err();
        assert!(matches!(e, AiError::BadRequest(_)));
        let (_, _, p) = split(json!({"confidence": 0.5, "confidence_threshold": 0.5})).unwrap();
        assert_eq!(p.confidence, Some(0.5), "the same value twice agrees");
        let e = split(json!({"iou": 0.5, "params": {"iou": 0.4}})).unwrap_err();
        assert!(e.to_string().contains("iou"), "{e}");
        assert!(matches!(
            split(json!({"task": "fly"})),
            Err(AiError::UnknownTask(_))
        ));
    }
}
