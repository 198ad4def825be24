//! HTTP serving for both ports, with the limits a box on a LAN it does not
//! control needs: a cap on connections per port and per client address, a
//! deadline for request headers (which also closes idle keep-alive
//! connections), a deadline for each request body, and a deadline for a
//! response write that the client stopped reading.
//!
//! `axum::serve` has none of these knobs, so this module runs hyper's HTTP/1
//! connection itself (with upgrades, for WebSockets) and hands every request
//! to the port's router with `ConnectInfo<SocketAddr>` in its extensions, as
//! `into_make_service_with_connect_info` would. HTTP/2 is not offered: no
//! client of either port needs it, and its streams would slip past the
//! per-connection limits. Limits and defaults: `docs/security.md`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum::Router;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::HttpLimits;
use crate::slots::{Slot, Slots};

/// Largest request head (request line and headers) accepted; hyper answers
/// 431 past it. Nothing we serve needs more than a few KiB.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How long shutdown waits for open connections to finish their requests.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting, asks every connection to finish its request, and returns once
/// they have (or after a bounded drain).
///
/// Accepting never stops for good: when the process is out of file
/// descriptors the loop waits and tries again, and connections over a cap
/// are answered with a 503 and closed at once. Idle sockets are closed after
/// `header_timeout_s`; one client address never holds more than its share,
/// so filling a port takes `max_connections / max_connections_per_ip`
/// addresses (see docs/security.md, "Known limits").
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let slots = Slots::new(limits.max_connections, limits.max_connections_per_ip);
    let tracker = TaskTracker::new();
    let port = listener.local_addr()?.port();
    let mut warned = false;
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: back off instead of spinning; the
                    // connections we hold time out and free descriptors.
                    if !warned {
                        tracing::warn!(port, error = %e, "accept failed; retrying");
                        warned = true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        warned = false;
        let Some(slot) = slots.take(peer.ip()) else {
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            io: Guarded::new(stream, limits.send_timeout(), slot),
            peer,
            router: router.clone(),
            limits: limits.clone(),
        };
        tracker.spawn(conn.serve(shutdown.clone()));
    }
    tracker.close();
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!(port, "connections still open after the drain; closing them");
    }
    Ok(())
}

/// The 503 a connection over a cap gets before it is closed: best effort, one
/// non-blocking write into a fresh socket's empty send buffer, so refusing
/// costs no task, no timer and no wait.
fn refuse(stream: TcpStream) {
    const BODY: &str = r#"{"error":{"code":"too_many_connections","message":"too many open connections; retry later"},"detail":"too many open connections; retry later"}"#;
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.try_write(resp.as_bytes());
}

/// One accepted connection on its way to being served.
struct Connection {
    io: Guarded,
    peer: SocketAddr,
    router: Router,
    limits: HttpLimits,
}

impl Connection {
    async fn serve(self, shutdown: CancellationToken) {
        let Connection {
            io,
            peer,
            router,
            limits,
        } = self;
        let body_timeout = limits.body_timeout();
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(|b| Body::new(Deadline::new(b, body_timeout)));
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout())
            .max_header_size(MAX_HEADER_BYTES)
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades();
        tokio::pin!(conn);
        let done = tokio::select! {
            r = conn.as_mut() => Some(r),
            _ = shutdown.cancelled() => None,
        };
        let result = match done {
            Some(r) => r,
            None => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            // Timeouts, resets and malformed requests are the client's doing.
            tracing::debug!(%peer, error = %e, "connection ended");
        }
    }
}

/// The socket, with its connection slot and a deadline for writes that make
/// no progress (a client that stopped reading a response or a stream).
struct Guarded {
    stream: TcpStream,
    send_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    _slot: Slot,
}

impl Guarded {
    fn new(stream: TcpStream, send_timeout: Duration, slot: Slot) -> Self {
        Self {
            stream,
            send_timeout,
            stalled: None,
            _slot: slot,
        }
    }

    /// Passes a ready write result through (the stall is over); on `Pending`
    /// starts or checks the stall deadline.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let timeout = self.send_timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Why a request body stopped: the client did not send it in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {0:?}")]
struct BodyTimeout(Duration);

/// A request body that fails once its deadline, counted from the request's
/// arrival, has passed: a client dripping a body byte by byte cannot hold a
/// handler (and what it buffered) for longer than that.
struct Deadline {
    inner: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        // No timer for bodiless requests (most GETs): nothing to wait for.
        let sleep = (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(timeout)));
        Self {
            inner,
            timeout,
            sleep,
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let timeout = self.timeout;
        if let Some(s) = self.sleep.as_mut() {
            if s.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout)))));
            }
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(|e| Box::new(e) as Self::Error)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft limit on open files to the hard limit (systemd's
/// `LimitNOFILE`), and warns when even that leaves too little room for the
/// configured connection caps besides cameras, models and the database.
pub fn raise_fd_limit(connections: usize) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        // Each camera holds a handful of descriptors; keep 256 for them and the rest.
        let need = (connections + 256) as libc::rlim_t;
        if lim.rlim_cur < need {
            tracing::warn!(
                limit = lim.rlim_cur,
                need,
                "open-file limit is below the connection caps plus headroom; lower [http] caps or raise LimitNOFILE"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = connections;
}

/// The client's address as both ports key their per-client bounds (the
/// login limiter, the adapter's queue share and trackers): canonical (an
/// IPv4-mapped IPv6 peer is its IPv4 address), from the `ConnectInfo` that
/// [`run`] puts on every request; unspecified for a router served without it
/// (in-process tests).
pub fn peer_ip(ext: &axum::http::Extensions) -> std::net::IpAddr {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// The JSON error body both ports answer with: our `error` object, and
/// FastAPI's `detail` beside it (upstream OpenNVR's clients read `.detail`).
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}, "detail": message});
    (status, Json(body)).into_response()
}

/// Unknown paths answer in the same JSON shape as every other error, on both ports.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Wrong methods too, on both ports.
pub async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that never reads: writes fill both socket buffers, then the
    /// stall deadline ends the connection with `TimedOut`.
    #[tokio::test]
    async fn a_write_that_makes_no_progress_times_out() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _peer = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let slot = Slots::new(1, 1).take(addr.ip()).unwrap();
        let mut io = Guarded::new(server, Duration::from_secs(1), slot);
        let chunk = vec![0u8; 64 * 1024];
        let wrote = tokio::time::timeout(Duration::from_secs(60), async {
            let mut total = 0usize;
            loop {
                match io.write(&chunk).await {
                    Ok(n) => total += n,
                    Err(e) => return (total, e.kind()),
                }
            }
        })
        .await
        .expect("the stalled write must end");
        assert_eq!(wrote.1, io::ErrorKind::TimedOut);
        assert!(wrote.0 > 0, "the buffers took something first");
    }
}
