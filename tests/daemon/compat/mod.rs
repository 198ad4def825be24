//! Drop-in compatibility with OpenNVR's own clients and the DeepStack
//! ecosystem (issue 13), end to end on the real daemon. The root API's
//! legacy clients and DeepStack's are tested in-process:
//! `tests/http/compat_legacy.rs`, `tests/http/compat_deepstack.rs`.
//!
//! One module per family of clients.

mod nvr;
mod v1;
