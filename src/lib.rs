//! opennvr-edge: a network video recorder with on-device AI.
//!
//! See `ARCHITECTURE.md` at the repository root for the map.

pub mod ai;
pub mod api;
pub mod catalog;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod confine;
pub mod frame;
pub mod hw;
pub mod ingest;
pub mod metrics;
pub mod mqtt;
pub mod nvr;
pub mod redact;
pub mod serve;
pub mod slots;
pub mod source_url;
pub mod tracker;
