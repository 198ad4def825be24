//! Reading a `/v1` or DeepStack request body: JSON (an object) or
//! `multipart/form-data` (one file part plus text fields). Bytes are read
//! by the adapter's budgeted reader (`request::read_whole`), so a body is only
//! read for an admitted request and every byte held is reserved first.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use serde_json::{Map, Value};

use crate::ai::{Admission, AiError};
use crate::api::request::{mime_of, read_form, read_whole};

/// A parsed body.
#[derive(Debug)]
pub enum Parsed {
    /// A JSON object.
    Json(Map<String, Value>),
    /// A form: the file part (if any) and the text fields in order.
    Form {
        file: Option<Bytes>,
        fields: Vec<(String, String)>,
    },
}

/// Reads `req`'s body (at most `limit` bytes, reserved on `ticket`) as JSON
/// or as a form whose file part is named one of `file_fields` (or carries a
/// file name). Any other content type is a 415.
pub async fn read(
    req: Request,
    limit: usize,
    ticket: &mut Admission,
    file_fields: &[&str],
) -> Result<Parsed, AiError> {
    let mime = mime_of(&req);
    if mime != "application/json" && mime != "multipart/form-data" {
        return Err(AiError::UnsupportedMedia(format!(
            "Content-Type {:?} is not supported: send multipart/form-data or application/json",
            if mime.is_empty() { "(missing)" } else { &mime }
        )));
    }
    let (parts, bytes) = read_whole(req, limit, ticket).await?;
    if mime == "application/json" {
        return match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(Parsed::Json(m)),
            Ok(_) => Err(AiError::BadRequest("the body must be a JSON object".into())),
            Err(e) => Err(AiError::BadRequest(format!("invalid JSON body: {e}"))),
        };
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    let (file, fields) = read_form(req, limit, ticket, file_fields).await?;
    Ok(Parsed::Form { file, fields })
}
