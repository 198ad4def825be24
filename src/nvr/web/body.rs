//! Refusing oversized request bodies cleanly. A server that answers 413 and
//! closes while the client is still sending makes the client's kernel see a
//! reset, and the client never reads the 413. So past the limit the rest of
//! the body is read and discarded (up to [`DRAIN_BYTES`]) before answering.

use axum::body::{Body, BodyDataStream};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::error::WebError;

/// How much of a refused body is read and thrown away before answering;
/// beyond it the connection is closed (the client may then see a reset).
const DRAIN_BYTES: u64 = 64 << 20;

/// Reads and discards what is left of a body, up to [`DRAIN_BYTES`] in all
/// (`seen` of them already read).
async fn drain(mut stream: BodyDataStream, mut seen: u64) {
    while seen <= DRAIN_BYTES {
        match stream.next().await {
            Some(Ok(chunk)) => seen += chunk.len() as u64,
            _ => break,
        }
    }
}

fn too_large(limit: usize) -> Response {
    WebError::TooLarge(format!("request body exceeds {limit} bytes")).into_response()
}

/// Middleware: a body declared (`Content-Length`) or found (chunked) to be
/// over `limit` gets a 413 after its rest is drained. A body within the
/// limit passes untouched when its length is declared (hyper holds it to
/// that length), and buffered (at most `limit` bytes) when chunked.
pub async fn refuse_oversized(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let chunked = req.headers().contains_key(TRANSFER_ENCODING);
    match declared {
        Some(n) if n > limit as u64 => {
            drain(req.into_body().into_data_stream(), 0).await;
            too_large(limit)
        }
        None if chunked => {
            let (parts, body) = req.into_parts();
            let mut stream = body.into_data_stream();
            let mut buf = Vec::new();
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else {
                    return WebError::BadRequest("the request body could not be read".into())
                        .into_response();
                };
                if buf.len() + chunk.len() > limit {
                    drain(stream, (buf.len() + chunk.len()) as u64).await;
                    return too_large(limit);
                }
                buf.extend_from_slice(&chunk);
            }
            next.run(Request::from_parts(parts, Body::from(buf))).await
        }
        _ => next.run(req).await,
    }
}
