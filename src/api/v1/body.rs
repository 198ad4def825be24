//! Reading a `/v1` or DeepStack request body: JSON (an object) or
//! `multipart/form-data` (one file part plus text fields). Bytes are read
//! by the adapter's budgeted reader ([`read_limited`]), so a body is only
//! read for an admitted request and every byte held is reserved first.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Map, Value};

use crate::ai::{Admission, AiError};
use crate::api::request::read_limited;

/// Text fields one form may carry; every client here sends a handful.
const MAX_FIELDS: usize = 64;

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
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    if mime != "application/json" && mime != "multipart/form-data" {
        return Err(AiError::UnsupportedMedia(format!(
            "Content-Type {:?} is not supported: send multipart/form-data or application/json",
            if mime.is_empty() { "(missing)" } else { &mime }
        )));
    }
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let (parts, body) = req.into_parts();
    let bytes = read_limited(body, declared, limit, ticket).await?;
    if mime == "application/json" {
        return match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(Parsed::Json(m)),
            Ok(_) => Err(AiError::BadRequest("the body must be a JSON object".into())),
            Err(e) => Err(AiError::BadRequest(format!("invalid JSON body: {e}"))),
        };
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    read_form(req, ticket, file_fields).await
}

async fn read_form(
    req: Request,
    ticket: &mut Admission,
    file_fields: &[&str],
) -> Result<Parsed, AiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        AiError::BadRequest(format!("invalid multipart body: {e}"))
    };
    let mut mp = Multipart::from_request(req, &())
        .await
        .map_err(|e| AiError::BadRequest(format!("invalid multipart body: {e}")))?;
    let (mut file, mut fields) = (None, Vec::new());
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_owned();
        if field.file_name().is_some() || file_fields.contains(&name.as_str()) {
            if file.is_some() {
                return Err(AiError::BadRequest("only one file part is accepted".into()));
            }
            let bytes = field.bytes().await.map_err(bad)?;
            // The part may be gathered into a buffer of its own.
            ticket.reserve(bytes.len())?;
            file = Some(bytes);
            continue;
        }
        if fields.len() == MAX_FIELDS {
            return Err(AiError::BadRequest(format!(
                "at most {MAX_FIELDS} form fields are accepted"
            )));
        }
        fields.push((name, field.text().await.map_err(bad)?));
    }
    Ok(Parsed::Form { file, fields })
}
