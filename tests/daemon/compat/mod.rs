//! Drop-in compatibility with OpenNVR's own clients (issue 13), what needs
//! a process: the WebSocket streams (contract v1's `/v1/infer/stream` and
//! its token, the NVR's `/events/ws`) and the metrics of a running demo
//! camera, on the real models and the real daemon. The plain HTTP of every
//! client family (legacy root API, DeepStack, contract v1, port 8000) is
//! tested in-process: `tests/http/compat_*.rs`. No upstream code: the
//! requests are described in our own words.

mod nvr;
mod v1;
