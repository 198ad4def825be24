//! In-process tests: the HTTP behaviour of both ports through
//! `tower::ServiceExt::oneshot` on `api::router` and `nvr::web::router`
//! (no ports, no processes, no sleeping; time is a `ManualClock` the test
//! moves), and the detector library on real models. See `harness.rs`.
//! `compat_*`: what upstream OpenNVR's clients and the DeepStack ecosystem
//! send (issue 13), each checked for the fields that client reads.
//!
//! One test binary (each links the whole crate), one module per area.

#[path = "../common/mod.rs"]
mod common;

mod ai_detection;
mod ai_errors;
mod ai_faces;
mod ai_scene;
mod camera_motion;
mod compat_deepstack;
mod compat_legacy;
mod compat_nvr;
mod compat_v1;
mod console;
mod decoder_onnx;
mod harness;
mod migrations;
mod nvr_api;
mod nvr_auth;
mod nvr_events;
mod nvr_hardening;
mod nvr_users;
mod parity_ort;
mod pipeline;
