//! Process-level tests: the real `opennvr-edge` binary, started per test on
//! ephemeral loopback ports. Only what needs a process lives here: cameras
//! with the real ffmpeg, crashes (`kill -9`), the MQTT mirror against a real
//! broker, the CLI, signals, the connection handling of `serve.rs`, the
//! hardening cases that read the daemon's RSS and file descriptors, and
//! upstream clients' WebSocket streams and the demo camera's metrics
//! (`compat`). The HTTP behaviour of both ports, upstream clients' included,
//! is tested in-process by `tests/http`.
//!
//! One test binary (each links the whole crate), one module per area.

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod cli;
mod compat;
mod crash;
mod gpu;
mod hardening;
mod ingest;
mod motion;
mod mqtt;
mod pipeline;
mod scene;
mod streams;
