//! Drop-in compatibility with OpenNVR's own clients and the DeepStack
//! ecosystem (issue 13), end to end on the real daemon. The root API's
//! legacy clients, DeepStack's and port 8000's plain HTTP are tested
//! in-process: `tests/http/compat_*.rs`.
//!
//! One module per family of clients.

mod nvr;
mod v1;
