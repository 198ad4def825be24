//! `POST /infer` and `POST /pipeline/run`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::{error_body, status_of, with_retry_after, ApiError};
use super::request::parse;
use super::AiState;
use crate::ai::{AiError, Task};

/// Runs one task on one frame.
///
/// Admission comes first: a request the queue cannot take is refused (503)
/// before its body is read or parsed.
pub async fn infer(State(st): State<Arc<AiState>>, req: Request) -> Result<Json<Value>, ApiError> {
    let client = crate::serve::peer_ip(req.extensions());
    let mut ticket = st.engine.admit(client)?;
    let r = parse(req, st.max_body, &mut ticket).await?;
    let name = r
        .task
        .as_deref()
        .ok_or_else(|| AiError::BadRequest("field `task` is required".into()))?;
    let task = Task::parse(name)?;
    r.params.validate()?;
    let frames = st.frames.clone();
    let max_pixels = st.max_pixels;
    let value = st
        .engine
        .submit_admitted(ticket, move |engine| {
            // A frame that cannot be read is a failed inference in the
            // metrics, as on `/v1` (the engine never saw it).
            let frame = r
                .load_frame(&frames, max_pixels)
                .inspect_err(|e| engine.infer_metrics().record_failure(Some(task), e))?;
            engine.run(task, &frame, &r.params, client)
        })
        .await?;
    Ok(Json(value))
}

/// How a pipeline ended.
enum Outcome {
    Done(Map<String, Value>),
    Failed {
        step: String,
        error: AiError,
        partial: Map<String, Value>,
    },
}

fn failure(step: &str, error: AiError, partial: Map<String, Value>) -> Response {
    let body = json!({
        "status": "error",
        "failed_at": step,
        "error": error_body(&error),
        "detail": error.to_string(),
        "partial_results": partial,
    });
    let resp = (status_of(&error), Json(body)).into_response();
    with_retry_after(&error, resp)
}

/// Runs several tasks on one frame, decoded once.
///
/// Unknown steps are refused before anything runs; a step that fails stops
/// the pipeline and the results so far come back as `partial_results`.
/// Steps may not repeat, so a pipeline costs at most one run of each task.
pub async fn pipeline(State(st): State<Arc<AiState>>, req: Request) -> Result<Response, ApiError> {
    let client = crate::serve::peer_ip(req.extensions());
    let mut ticket = st.engine.admit(client)?;
    let r = parse(req, st.max_body, &mut ticket).await?;
    let steps = r
        .steps
        .clone()
        .ok_or_else(|| AiError::BadRequest("field `steps` is required".into()))?;
    let max = Task::ALL.len();
    if steps.is_empty() || steps.len() > max {
        return Err(AiError::BadRequest(format!("`steps` must hold 1..{max} task names")).into());
    }
    let mut seen = HashSet::new();
    if let Some(dup) = steps.iter().find(|s| !seen.insert(s.as_str())) {
        return Err(AiError::BadRequest(format!("`steps` repeats {dup:?}")).into());
    }
    let mut tasks = Vec::with_capacity(steps.len());
    for s in &steps {
        match Task::parse(s) {
            Ok(t) => tasks.push((s.clone(), t)),
            Err(e) => return Ok(failure(s, e, Map::new())),
        }
    }
    r.params.validate()?;
    let frames = st.frames.clone();
    let max_pixels = st.max_pixels;
    let outcome = st
        .engine
        .submit_admitted(ticket, move |engine| {
            let frame = r
                .load_frame(&frames, max_pixels)
                .inspect_err(|e| engine.infer_metrics().record_failure(None, e))?;
            let mut results = Map::new();
            for (name, task) in tasks {
                match engine.run(task, &frame, &r.params, client) {
                    Ok(v) => {
                        results.insert(name, v);
                    }
                    Err(error) => {
                        return Ok(Outcome::Failed {
                            step: name,
                            error,
                            partial: results,
                        })
                    }
                }
            }
            Ok(Outcome::Done(results))
        })
        .await?;
    Ok(match outcome {
        Outcome::Done(results) => {
            Json(json!({"status": "success", "results": results})).into_response()
        }
        Outcome::Failed {
            step,
            error,
            partial,
        } => failure(&step, error, partial),
    })
}
