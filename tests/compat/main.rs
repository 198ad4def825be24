//! Drop-in compatibility with OpenNVR's own clients (issue 13): each test
//! sends what an upstream client sends, on the real models and the real
//! daemon, and checks the fields that client reads. No upstream code: the
//! requests are described in our own words.
//!
//! One test binary (one link of the daemon's dependencies), one module per
//! surface.

#[path = "../common/mod.rs"]
mod common;

mod legacy;
mod nvr;
